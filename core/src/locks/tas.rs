//! Test-and-set spinlock: the simplest lock, and the worst-behaved under contention.
//!
//! Acquire: atomically set the flag and look at the old value, until it was clear. Every attempt
//! is a locked read-modify-write that takes the cache line exclusive, so waiting threads keep
//! pulling the line away from the holder and from each other (Anderson 1990, "The performance
//! of spin lock alternatives for shared-memory multiprocessors").
//!
//! The test-and-set is written `compare_exchange(false, true)`: on x86 a failing `lock cmpxchg`
//! is the same exclusive RMW as `xchg`, and unlike a `swap` a failed attempt stores nothing,
//! which lets loom model the spin loop (a loop of stores never yields to the holder there).
//!
//! Memory ordering: the successful exchange is `Acquire`, the releasing store `Release`; the
//! holder's writes happen-before the next holder's reads.
//!
//! | `locked` | meaning |
//! |---|---|
//! | false | free |
//! | true | held |

use super::RawLock;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::spin_yield;

#[derive(Debug, Default)]
pub struct TasLock {
    locked: AtomicBool,
}

// SAFETY: the exchange false → true (Acquire) succeeds for exactly one thread until the holder
// stores false with Release.
unsafe impl RawLock for TasLock {
    type Token = ();
    const NAME: &'static str = "tas";

    fn lock(&self) {
        while self.try_lock().is_none() {
            spin_yield();
        }
    }

    fn try_lock(&self) -> Option<()> {
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).ok().map(drop)
    }

    unsafe fn unlock(&self, _: ()) {
        self.locked.store(false, Ordering::Release);
    }
}
