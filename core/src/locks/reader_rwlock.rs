//! A reader-preferring reader-writer lock on one futex word: the books' listing.
//!
//! Courtois, Heymans & Parnas 1971, "Concurrent control with readers and writers", problem 1
//! (Downey's "lightswitch" in *The Little Book of Semaphores*): readers enter whenever no writer
//! holds the lock, even while writers wait. A reader never waits behind a writer that has not
//! got in yet — and a steady stream of overlapping readers keeps the count above zero, so a
//! writer waits until the stream dries up: writer starvation, the trade-off [`super::rwlock`]'s
//! writer preference makes the other way.
//!
//! `state` counts readers, or is `WRITE_LOCKED`. Readers and writers both sleep on `state`; the
//! last reader out and a writer's unlock wake all sleepers, who re-check — but only if `sleepers`
//! says anyone may be asleep, so uncontended use never enters the kernel.
//!
//! Memory ordering: acquisitions are `Acquire` CASes on `state`, releases `Release`. No lost
//! wake-up, by Dekker's argument with SeqCst fences (as in [`super::rwlock`]): a sleeper
//! increments `sleepers`, fences, and only then lets the futex re-check the word; a waker changes
//! the word, fences, and only then reads `sleepers`.
//!
//! | `state` | meaning | a new reader | a new writer |
//! |---|---|---|---|
//! | 0 | free | enters | enters |
//! | n > 0 | n readers | enters, even while writers wait | waits on `state` |
//! | WRITE_LOCKED | a writer | waits on `state` | waits on `state` |

use super::rwlock::Sleepers;
use super::RawRwLock;
use crate::sync::atomic::{AtomicU32, Ordering};

const WRITE_LOCKED: u32 = u32::MAX;
const MAX_READERS: u32 = u32::MAX - 1;

#[derive(Debug, Default)]
pub struct ReaderPreferringRwLock {
    state: AtomicU32,
    sleepers: Sleepers,
}

// SAFETY: a writer enters only by moving `state` from 0 (no readers) to WRITE_LOCKED, and a reader
// only by raising a count that is not WRITE_LOCKED, both with Acquire CASes; unlocks are Release.
unsafe impl RawRwLock for ReaderPreferringRwLock {
    fn read_lock(&self) {
        loop {
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
        while let Err(state) = self.state.compare_exchange(0, WRITE_LOCKED, Ordering::Acquire, Ordering::Relaxed) {
            self.sleepers.sleep_on(&self.state, state);
        }
    }

    unsafe fn write_unlock(&self) {
        self.state.store(0, Ordering::Release);
        self.sleepers.wake(&self.state);
    }
}
