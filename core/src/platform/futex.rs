//! Wait/wake on a 32-bit atomic — the futex interface every parking lock is built on.
//!
//! `wait(atom, expected)` blocks while `*atom == expected` (checked atomically against a
//! concurrent `wake_*`) and may return spuriously; callers re-check in a loop.
//!
//! | build | implementation |
//! |---|---|
//! | native | the OS primitive through `atomic-wait` (Linux `futex`, macOS `__ulock`, Windows `WaitOnAddress`) |
//! | wasm32 | `memory.atomic.wait32` / `memory.atomic.notify` — workers only: a page's main thread traps |
//! | `cfg(loom)` | one model-checked `Mutex` + `Condvar`: waiting really blocks, so a lost wake-up is a deadlock loom reports |

use crate::sync::atomic::AtomicU32;

#[cfg(all(not(loom), not(target_arch = "wasm32")))]
mod imp {
    use super::AtomicU32;

    pub fn wait(atom: &AtomicU32, expected: u32) {
        atomic_wait::wait(atom, expected)
    }

    pub fn wake_one(atom: &AtomicU32) {
        atomic_wait::wake_one(atom)
    }

    pub fn wake_all(atom: &AtomicU32) {
        atomic_wait::wake_all(atom)
    }
}

#[cfg(all(not(loom), target_arch = "wasm32"))]
mod imp {
    use core::arch::wasm32::{memory_atomic_notify, memory_atomic_wait32};

    use super::AtomicU32;

    pub fn wait(atom: &AtomicU32, expected: u32) {
        // SAFETY: `as_ptr` is a valid, aligned pointer into linear memory for the duration of
        // the call; the instruction only reads it. The value is reinterpreted bit for bit.
        unsafe { memory_atomic_wait32(atom.as_ptr().cast::<i32>(), expected as i32, -1) };
    }

    pub fn wake_one(atom: &AtomicU32) {
        // SAFETY: as in `wait`; notify does not access the memory, it only names the address.
        unsafe { memory_atomic_notify(atom.as_ptr().cast::<i32>(), 1) };
    }

    pub fn wake_all(atom: &AtomicU32) {
        // SAFETY: as in `wake_one`.
        unsafe { memory_atomic_notify(atom.as_ptr().cast::<i32>(), u32::MAX) };
    }
}

#[cfg(loom)]
mod imp {
    use super::AtomicU32;
    use crate::sync::atomic::Ordering;
    use crate::sync::{Condvar, Mutex};

    loom::lazy_static! {
        static ref PARKING: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub fn wait(atom: &AtomicU32, expected: u32) {
        let guard = PARKING.0.lock().unwrap();
        // Checked under the mutex every waker takes: no wake-up slips between check and sleep.
        if atom.load(Ordering::SeqCst) == expected {
            drop(PARKING.1.wait(guard).unwrap());
        }
    }

    pub fn wake_one(_: &AtomicU32) {
        // One condvar serves every address, so waking "one" could pick a waiter of another
        // word; waking all is the conservative equivalent (waiters re-check their word).
        wake_all(&AtomicU32::new(0))
    }

    pub fn wake_all(_: &AtomicU32) {
        let _guard = PARKING.0.lock().unwrap();
        PARKING.1.notify_all();
    }
}

/// Blocks while `*atom == expected`; may return spuriously. A profiled run records the wait
/// ([`crate::trace::ambient`]).
pub fn wait(atom: &AtomicU32, expected: u32) {
    if crate::trace::ambient::recording() {
        let start = super::Instant::now();
        imp::wait(atom, expected);
        crate::trace::ambient::blocked("blocked (futex wait)", start);
    } else {
        imp::wait(atom, expected)
    }
}

/// Wakes at least one thread blocked in [`wait`] on `atom`, if any.
pub fn wake_one(atom: &AtomicU32) {
    imp::wake_one(atom)
}

/// Wakes every thread blocked in [`wait`] on `atom`.
pub fn wake_all(atom: &AtomicU32) {
    imp::wake_all(atom)
}
