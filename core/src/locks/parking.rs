//! A parking mutex of our own: a futex word that holds the lock bit *and a count of sleepers*,
//! so unlock enters the kernel only while someone sleeps — Go's `sync.Mutex` (normal mode: a
//! waiter count and a "woken" flag in the state word) on the futex of Drepper, "Futexes Are
//! Tricky" (2004).
//!
//! Uncontended lock and unlock are one atomic each and never enter the kernel. A thread that
//! finds the lock held spins briefly while nobody sleeps (the holder may be about to release;
//! with sleepers queued a spinner would only barge past them), then counts itself a sleeper and
//! sleeps in [`platform::wait`](crate::platform::wait) — the OS futex natively,
//! `memory.atomic.wait32` in a browser worker. Back from the wait (woken, or the word changed
//! under it, or spuriously) it uncounts itself and competes again.
//!
//! | word | meaning |
//! |---|---|
//! | bit 0, `LOCKED` | held |
//! | bit 1, `WOKEN` | an unlock woke a sleeper that has not come back yet |
//! | bits 2–31 | sleepers: counted before they wait, uncounted when they return |
//!
//! | unlock finds | it does |
//! |---|---|
//! | no sleepers | clears `LOCKED`: no system call |
//! | sleepers, `WOKEN` set, or the lock taken again | clears `LOCKED`: the woken thread, or the new holder, wakes the next |
//! | sleepers, neither | clears `LOCKED`, sets `WOKEN`, wakes one |
//!
//! Why count: Drepper's mutex #3 (0 free, 1 held, 2 "maybe sleepers"; Linux's std mutex) cannot
//! tell when the last sleeper has left, so after any contention every unlock makes a wake call
//! and no waiter spins until the word is free again — under extreme contention that held us at
//! ~1.3× parking_lot's time. parking_lot clears its parked bit when its queue empties; the count
//! does the same on a bare futex. `WOKEN` keeps a burst of unlocks from waking one sleeper each
//! while the first one woken is still on its way; any returning thread clears it (it cannot know
//! whether it was the one woken), which at worst costs one needless wake, never a lost one: a
//! thread sleeps only on a word with `LOCKED` set, and the holder's unlock either wakes or finds
//! `WOKEN`, which a returning thread clears before it competes again.
//!
//! Fairness: none promised. A woken thread competes with newcomers and may lose (barging) —
//! what makes the lock fast, and a thread can in principle starve. parking_lot bounds that with
//! a hand-off every ~0.5 ms and Go with a starvation mode after 1 ms; we leave both out. The
//! `lock-contention` experiment measures what that costs: its Jain fairness index and per-thread
//! minimum and maximum acquisitions (at 2 threads in the extreme regime: 0.99 for ours, 0.98 for
//! std and parking_lot; the slowest thread got ~80% of the fastest one's acquisitions).
//!
//! Memory ordering: acquisition is an `Acquire` CAS, release a `Release` `fetch_sub`; counting
//! and `WOKEN` are `Relaxed` (they order nothing the lock protects), and the futex calls carry no
//! ordering — correctness comes from re-checking the word.

use super::RawLock;
use crate::platform;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::spin_yield;

const LOCKED: u32 = 1;
const WOKEN: u32 = 2;
const SLEEPER: u32 = 4;

/// Rounds of waiting on a held lock before sleeping (loom: none, to keep the model small).
#[cfg(not(loom))]
const SPINS: u32 = 10;
#[cfg(loom)]
const SPINS: u32 = 0;

/// parking_lot's `SpinWait`: rounds 1–3 pause 2, 4, 8 times (reading the word less often
/// leaves its cache line with the holder, which may take the lock again at once); later rounds
/// give the processor away (the holder may be waiting for it).
fn back_off(round: u32) {
    if round <= 3 {
        for _ in 0..1 << round {
            spin_yield();
        }
    } else {
        platform::yield_now();
    }
}

/// A word whose sleepers no unlock has woken yet, and that nobody holds (a holder wakes them
/// at its own unlock).
fn needs_waking(state: u32) -> bool {
    state >= SLEEPER && state & (LOCKED | WOKEN) == 0
}

#[derive(Debug, Default)]
pub struct ParkingMutex {
    state: AtomicU32,
}

impl ParkingMutex {
    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                if self.try_lock().is_some() {
                    return;
                }
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            if state < SLEEPER && spins < SPINS {
                spins += 1;
                back_off(spins);
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            let counted = state + SLEEPER;
            if let Err(now) = self.state.compare_exchange_weak(state, counted, Ordering::Relaxed, Ordering::Relaxed) {
                state = now;
                continue;
            }
            platform::wait(&self.state, counted);
            state = self.uncount();
            spins = 0;
        }
    }

    /// Back from a wait: one sleeper fewer, and `WOKEN` cleared. The word after.
    fn uncount(&self) -> u32 {
        let back = |state: u32| (state - SLEEPER) & !WOKEN;
        let before = self.state.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |state| Some(back(state)));
        back(before.unwrap_or_else(|state| state))
    }

    #[cold]
    fn wake_a_sleeper(&self) {
        let marked = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |state| needs_waking(state).then_some(state | WOKEN));
        if marked.is_ok() {
            platform::wake_one(&self.state);
        }
    }
}

// SAFETY: the lock is taken only by a CAS that sets LOCKED where it was clear (Acquire); only
// the holder clears it (fetch_sub, Release). The other bits never touch LOCKED.
unsafe impl RawLock for ParkingMutex {
    type Token = ();
    const NAME: &'static str = "parking";

    fn lock(&self) {
        if self.state.compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
    }

    fn try_lock(&self) -> Option<()> {
        let taken = |state: u32| (state & LOCKED == 0).then_some(state | LOCKED);
        self.state.fetch_update(Ordering::Acquire, Ordering::Relaxed, taken).ok().map(drop)
    }

    unsafe fn unlock(&self, _: ()) {
        let left = self.state.fetch_sub(LOCKED, Ordering::Release) - LOCKED;
        if needs_waking(left) {
            self.wake_a_sleeper();
        }
    }
}
