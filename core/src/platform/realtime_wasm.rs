//! Real-time scheduling in a browser: there is none. A page cannot pin a worker to a CPU or
//! give it a priority, so every call says so.

use super::PlatformError;

fn unavailable() -> PlatformError {
    PlatformError::Unavailable(
        "a browser does not let a page pin a worker to a CPU or give it a real-time priority".into(),
    )
}

pub fn pin_current_thread(_cpu: usize) -> Result<(), PlatformError> {
    Err(unavailable())
}

pub fn set_current_fifo_priority(_priority: i32) -> Result<(), PlatformError> {
    Err(unavailable())
}

pub fn request_time_slice(_slice: std::time::Duration) -> Result<(), PlatformError> {
    Err(unavailable())
}

/// A mutex with or without priority inheritance: none in a browser.
pub struct PriorityMutex;

impl PriorityMutex {
    pub fn new(_inherit: bool) -> Result<Self, PlatformError> {
        Err(unavailable())
    }

    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}
