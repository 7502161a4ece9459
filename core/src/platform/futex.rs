//! Wait/wake on a 32-bit atomic — the futex interface every parking lock is built on.
//!
//! `wait(atom, expected)` blocks while `*atom == expected` (checked atomically against a
//! concurrent `wake_*`) and may return spuriously; callers re-check in a loop.
//!
//! | build | implementation |
//! |---|---|
//! | native | the OS primitive through `atomic-wait` (Linux `futex`, macOS `__ulock`, Windows `WaitOnAddress`) |
//! | wasm32 | `memory.atomic.wait32` / `memory.atomic.notify` — workers only: a page's main thread traps |
//! | `cfg(loom)` | a model-checked `Mutex` + `Condvar` over a list of sleepers: waiting really blocks and `wake_one` wakes exactly one, so a lost wake-up is a deadlock loom reports |

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
    use crate::sync::atomic::{AtomicBool, Ordering};
    use crate::sync::{Arc, Condvar, Mutex};

    /// Sleepers in arrival order: the word each waits on (by address) and its "woken" flag.
    type Sleepers = Vec<(usize, Arc<AtomicBool>)>;

    loom::lazy_static! {
        static ref PARKING: (Mutex<Sleepers>, Condvar) = (Mutex::new(Vec::new()), Condvar::new());
    }

    fn address(atom: &AtomicU32) -> usize {
        std::ptr::from_ref(atom).addr()
    }

    pub fn wait(atom: &AtomicU32, expected: u32) {
        let mut sleepers = PARKING.0.lock().unwrap();
        // Checked under the mutex every waker takes: no wake-up slips between check and sleep.
        if atom.load(Ordering::SeqCst) != expected {
            return;
        }
        let woken = Arc::new(AtomicBool::new(false));
        sleepers.push((address(atom), Arc::clone(&woken)));
        while !woken.load(Ordering::SeqCst) {
            sleepers = PARKING.1.wait(sleepers).unwrap();
        }
    }

    /// Exactly one sleeper of this word, the longest waiting, as a futex wakes (a model that
    /// woke all would hide a protocol that loses a wake-up when only one is woken).
    pub fn wake_one(atom: &AtomicU32) {
        wake(atom, 1);
    }

    pub fn wake_all(atom: &AtomicU32) {
        wake(atom, usize::MAX);
    }

    fn wake(atom: &AtomicU32, count: usize) {
        let mut sleepers = PARKING.0.lock().unwrap();
        let mut left = count;
        sleepers.retain(|(at, woken)| {
            let wake = left > 0 && *at == address(atom);
            if wake {
                woken.store(true, Ordering::SeqCst);
                left -= 1;
            }
            !wake
        });
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
