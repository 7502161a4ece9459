//! A parking mutex of our own: the three-state futex mutex of Drepper, "Futexes Are Tricky"
//! (2004, mutex #3), the design of Linux's std mutex.
//!
//! Uncontended lock and unlock are one atomic each and never enter the kernel. A thread that
//! finds the lock held spins briefly (the holder may be about to release), then marks the word
//! "contended" and sleeps in [`platform::wait`](crate::platform::wait) — the OS futex natively,
//! `memory.atomic.wait32` in a browser worker. Unlock wakes one sleeper only when the word says
//! someone may be asleep.
//!
//! Memory ordering: acquisition is an `Acquire` CAS or swap, release a `Release` swap; the
//! futex calls themselves carry no ordering — correctness comes from re-checking the word.
//!
//! | `state` | meaning | unlock does |
//! |---|---|---|
//! | 0 | free | – |
//! | 1 | held, nobody asleep | swap → 0 |
//! | 2 | held, maybe sleepers | swap → 0, wake one |
//!
//! A woken thread swaps in 2, not 1: it cannot know whether others still sleep, so it keeps
//! the next unlock waking (at worst one needless wake, never a lost one).

use super::RawLock;
use crate::platform;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::spin_yield;

const FREE: u32 = 0;
const HELD: u32 = 1;
const CONTENDED: u32 = 2;

/// Spins on a held lock before sleeping (loom: none, to keep the model small).
#[cfg(not(loom))]
const SPINS: u32 = 100;
#[cfg(loom)]
const SPINS: u32 = 0;

#[derive(Debug, Default)]
pub struct ParkingMutex {
    state: AtomicU32,
}

impl ParkingMutex {
    /// Spins while the lock is held without sleepers, returning the last state seen.
    fn spin(&self) -> u32 {
        let mut spins = SPINS;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state != HELD || spins == 0 {
                return state;
            }
            spin_yield();
            spins -= 1;
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut state = self.spin();
        if state == FREE {
            match self.state.compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        loop {
            // Mark contended before sleeping; if it was free meanwhile, we now hold it.
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == FREE {
                return;
            }
            platform::wait(&self.state, CONTENDED);
            state = self.spin();
        }
    }
}

// SAFETY: the lock is taken only by a transition from FREE (CAS or swap, Acquire); only the
// holder sets FREE again (swap, Release).
unsafe impl RawLock for ParkingMutex {
    type Token = ();
    const NAME: &'static str = "parking";

    fn lock(&self) {
        if self.state.compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
    }

    fn try_lock(&self) -> Option<()> {
        self.state.compare_exchange(FREE, HELD, Ordering::Acquire, Ordering::Relaxed).ok().map(drop)
    }

    unsafe fn unlock(&self, _: ()) {
        if self.state.swap(FREE, Ordering::Release) == CONTENDED {
            platform::wake_one(&self.state);
        }
    }
}
