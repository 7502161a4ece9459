//! A writer-preferring reader-writer lock on two futex words.
//!
//! `state` counts readers, or is `WRITE_LOCKED`. `writers_waiting` counts writers that want
//! the lock: while it is non-zero, new readers stay out (writer preference: a steady stream of
//! readers cannot starve a writer; a steady stream of writers can starve readers — the classic
//! trade-off, Courtois, Heymans & Parnas 1971, "Concurrent control with readers and writers",
//! problem 2).
//!
//! Readers sleep on `writers_waiting` (until no writer waits) or on `state` (while write
//! locked); writers sleep on `state`. A transition that can unblock someone wakes all sleepers
//! on that word, who re-check — but only if `sleepers` says anyone may be asleep, so uncontended
//! use never enters the kernel.
//!
//! Memory ordering: acquisitions are `Acquire` CASes on `state`, releases `Release`. The
//! no-lost-wake-up argument is Dekker's, with SeqCst fences: a sleeper increments `sleepers`,
//! fences, and only then lets the futex re-check the word; a waker changes the word, fences, and
//! only then reads `sleepers`. In the single order of the two fences either the waker sees the
//! sleeper, or the sleeper's futex sees the new value and does not sleep. (Fences rather than
//! SeqCst accesses: loom models SeqCst fences exactly but SeqCst accesses only as AcqRel.)
//!
//! | `state` | `writers_waiting` | meaning | a new reader | a new writer |
//! |---|---|---|---|---|
//! | 0 | 0 | free | enters | enters |
//! | n > 0 | 0 | n readers | enters | waits on `state` |
//! | n > 0 | w > 0 | n readers draining | waits on `writers_waiting` | waits on `state` |
//! | WRITE_LOCKED | any | a writer | waits | waits on `state` |

use super::RawRwLock;
use crate::platform;
use crate::sync::atomic::{fence, AtomicU32, Ordering};

const WRITE_LOCKED: u32 = u32::MAX;
const MAX_READERS: u32 = u32::MAX - 1;

#[derive(Debug, Default)]
pub struct RwLock {
    state: AtomicU32,
    writers_waiting: AtomicU32,
    sleepers: Sleepers,
}

/// Threads in (or about to enter) a futex wait on a lock's words: the count that lets a
/// waker skip the kernel when nobody sleeps, with the module doc's Dekker fences (shared with
/// [`super::reader_rwlock`]).
#[derive(Debug, Default)]
pub(super) struct Sleepers(AtomicU32);

impl Sleepers {
    /// Sleeps while `word` still reads `seen`.
    pub(super) fn sleep_on(&self, word: &AtomicU32, seen: u32) {
        self.0.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        platform::wait(word, seen);
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Call after changing `word`: wakes its sleepers if anyone may be asleep.
    pub(super) fn wake(&self, word: &AtomicU32) {
        fence(Ordering::SeqCst);
        if self.0.load(Ordering::Relaxed) > 0 {
            platform::wake_all(word);
        }
    }
}

// SAFETY: a writer enters only by moving `state` from 0 (no readers) to WRITE_LOCKED, and a reader
// only by raising a count that is not WRITE_LOCKED, both with Acquire CASes; unlocks are Release.
unsafe impl RawRwLock for RwLock {
    fn read_lock(&self) {
        loop {
            let waiting = self.writers_waiting.load(Ordering::Relaxed);
            if waiting > 0 {
                self.sleepers.sleep_on(&self.writers_waiting, waiting);
                continue;
            }
            let state = self.state.load(Ordering::Relaxed);
            if state == WRITE_LOCKED {
                self.sleepers.sleep_on(&self.state, WRITE_LOCKED);
            } else if state < MAX_READERS
                && self.state.compare_exchange_weak(state, state + 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return;
            }
        }
    }

    unsafe fn read_unlock(&self) {
        if self.state.fetch_sub(1, Ordering::Release) == 1 {
            // The last reader out lets a waiting writer in.
            self.sleepers.wake(&self.state);
        }
    }

    fn write_lock(&self) {
        self.writers_waiting.fetch_add(1, Ordering::Relaxed);
        loop {
            match self.state.compare_exchange(0, WRITE_LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(state) => self.sleepers.sleep_on(&self.state, state),
            }
        }
        if self.writers_waiting.fetch_sub(1, Ordering::Relaxed) == 1 {
            // No writer waits any more: readers blocked at the gate may re-check (they will
            // find the lock write-held and wait on `state` until we release).
            self.sleepers.wake(&self.writers_waiting);
        }
    }

    unsafe fn write_unlock(&self) {
        self.state.store(0, Ordering::Release);
        self.sleepers.wake(&self.state);
    }
}
