//! Test-and-set spinlock: the simplest lock, and the worst-behaved under contention.
//!
//! Acquire: `swap(true)` until it returns false. Every attempt is a write, so waiting threads
//! keep pulling the lock's cache line away from the holder and from each other (Anderson 1990,
//! "The performance of spin lock alternatives for shared-memory multiprocessors").
//!
//! Memory ordering: the successful `swap` is `Acquire`, the releasing store `Release`; the
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

// SAFETY: `swap(true, Acquire)` returns false for exactly one thread until the holder stores
// false with Release.
unsafe impl RawLock for TasLock {
    type Token = ();
    const NAME: &'static str = "tas";

    fn lock(&self) {
        while self.locked.swap(true, Ordering::Acquire) {
            spin_yield();
        }
    }

    fn try_lock(&self) -> Option<()> {
        (!self.locked.swap(true, Ordering::Acquire)).then_some(())
    }

    unsafe fn unlock(&self, _: ()) {
        self.locked.store(false, Ordering::Release);
    }
}
