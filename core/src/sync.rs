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

/// An `UnsafeCell` whose accesses loom can check for data races (loom's own cell under
/// `cfg(loom)`), with one closure-based API for both.
pub mod cell {
    #[cfg(loom)]
    pub use loom::cell::UnsafeCell;

    /// std's `UnsafeCell` behind loom's `with`/`with_mut` API.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared pointer to the value.
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable pointer to the value.
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }

        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }
}

/// One iteration of a spin-wait: a CPU hint natively, a scheduling point under loom.
/// `thread_local!`: std's, or loom's under `cfg(loom)` (a value per thread of each model
/// execution). Written `static NAME: T = init;` — loom's takes no `const { }` initialiser.
#[cfg(loom)]
pub use loom::thread_local;
#[cfg(not(loom))]
pub use std::thread_local;

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
