//! Ticket lock: first come, first served.
//!
//! Each arrival takes a ticket (`fetch_add` on `next`) and waits until `serving` shows its
//! number; unlock advances `serving` (Mellor-Crummey & Scott 1991, §2.2, after Reed & Kanodia
//! 1979). Fair by construction — and for the same reason fragile under oversubscription: if the
//! thread whose turn it is is not running, everyone behind it waits.
//!
//! Memory ordering: taking a ticket is `Relaxed` (it only orders arrivals); a waiter's load of
//! `serving` that sees its ticket is `Acquire`, pairing with the holder's `Release` increment.
//! Counters wrap; only equality is compared, so 2³² simultaneous waiters would be needed to
//! confuse it.
//!
//! | state | meaning |
//! |---|---|
//! | next == serving | free |
//! | next == serving + 1 | held, nobody waiting |
//! | next == serving + k | held, k − 1 waiting in ticket order |

use super::RawLock;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::spin_yield;

#[derive(Debug, Default)]
pub struct TicketLock {
    next: AtomicU32,
    serving: AtomicU32,
}

// SAFETY: tickets are unique; only the holder of ticket `serving` proceeds, and only it
// advances `serving` (Release), which the next ticket's holder observes with Acquire.
unsafe impl RawLock for TicketLock {
    type Token = ();
    const NAME: &'static str = "ticket";

    fn lock(&self) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        while self.serving.load(Ordering::Acquire) != ticket {
            spin_yield();
        }
    }

    fn try_lock(&self) -> Option<()> {
        let serving = self.serving.load(Ordering::Acquire);
        // Take the ticket only if it would be served at once.
        self.next
            .compare_exchange(serving, serving.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(drop)
    }

    unsafe fn unlock(&self, _: ()) {
        // Only the holder writes `serving`, so a load + store is enough (no RMW needed).
        let serving = self.serving.load(Ordering::Relaxed);
        self.serving.store(serving.wrapping_add(1), Ordering::Release);
    }
}
