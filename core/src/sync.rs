//! The one door through which atomics and locks enter conlab-core.
//!
//! Every primitive imports `Arc`, `Mutex`, `Condvar` and the atomics from here, never from
//! `std::sync` directly, so that `RUSTFLAGS="--cfg loom"` swaps the whole crate onto
//! [loom](https://docs.rs/loom)'s model-checked versions (the pattern of crossbeam's `primitive`
//! module). Spin loops call [`spin_yield`], which under loom yields to the model's scheduler so
//! that bounded exploration terminates.

#[cfg(loom)]
pub use loom::sync::{atomic, Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub use std::sync::{atomic, Arc, Condvar, Mutex, MutexGuard};

/// One iteration of a spin-wait: a CPU hint natively, a scheduling point under loom.
#[inline]
pub fn spin_yield() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Locks a mutex, treating poisoning as recoverable: a panicking experiment thread must not
/// take the whole lab down with it (its panic is reported through the team's join instead).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
