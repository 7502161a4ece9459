//! Test-and-test-and-set spinlock with exponential backoff.
//!
//! Waiters spin on plain loads, which hit their own cached copy of the line, and only try the
//! `swap` when the lock looks free (Rudolph & Segall 1984). After each failed attempt a waiter
//! backs off for twice as long, up to a cap, so a release is not followed by a stampede of
//! writes (Anderson 1990). Under oversubscription it still burns the CPU a preempted holder
//! needs — which the lock experiments show.
//!
//! Memory ordering: as [`super::tas`]; the test loads are `Relaxed` (they only decide when to
//! try), the acquiring exchange is `Acquire`, the release store `Release`.
//!
//! | `locked` | meaning |
//! |---|---|
//! | false | free |
//! | true | held |

use super::RawLock;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::spin_yield;

/// Backoff doubles from 1 up to 2^MAX_STEP spins (loom: 1, to keep the model small).
#[cfg(not(loom))]
const MAX_STEP: u32 = 10;
#[cfg(loom)]
const MAX_STEP: u32 = 0;

#[derive(Debug, Default)]
pub struct TtasLock {
    locked: AtomicBool,
}

// SAFETY: only the thread whose exchange false → true (Acquire) succeeded holds the lock until
// it stores false with Release.
unsafe impl RawLock for TtasLock {
    type Token = ();
    const NAME: &'static str = "ttas";

    fn lock(&self) {
        let mut step = 0;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                spin_yield();
            }
            if self.try_lock().is_some() {
                return;
            }
            for _ in 0..1u32 << step {
                spin_yield();
            }
            step = (step + 1).min(MAX_STEP);
        }
    }

    fn try_lock(&self) -> Option<()> {
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).ok().map(drop)
    }

    unsafe fn unlock(&self, _: ()) {
        self.locked.store(false, Ordering::Release);
    }
}
