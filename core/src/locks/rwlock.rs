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

use crate::platform;
use crate::sync::atomic::{fence, AtomicU32, Ordering};

const WRITE_LOCKED: u32 = u32::MAX;
const MAX_READERS: u32 = u32::MAX - 1;

#[derive(Debug, Default)]
pub struct RwLock {
    state: AtomicU32,
    writers_waiting: AtomicU32,
    /// Threads in (or about to enter) a futex wait on either word.
    sleepers: AtomicU32,
}

impl RwLock {
    fn sleep_on(&self, word: &AtomicU32, seen: u32) {
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        platform::wait(word, seen);
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Call after changing `word`: wakes its sleepers if anyone may be asleep.
    fn wake(&self, word: &AtomicU32) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            platform::wake_all(word);
        }
    }

    pub fn read_lock(&self) {
        loop {
            let waiting = self.writers_waiting.load(Ordering::Relaxed);
            if waiting > 0 {
                self.sleep_on(&self.writers_waiting, waiting);
                continue;
            }
            let state = self.state.load(Ordering::Relaxed);
            if state == WRITE_LOCKED {
                self.sleep_on(&self.state, WRITE_LOCKED);
            } else if state < MAX_READERS
                && self.state.compare_exchange_weak(state, state + 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return;
            }
        }
    }

    /// # Safety
    /// The caller holds a read lock taken with [`RwLock::read_lock`].
    pub unsafe fn read_unlock(&self) {
        if self.state.fetch_sub(1, Ordering::Release) == 1 {
            // The last reader out lets a waiting writer in.
            self.wake(&self.state);
        }
    }

    pub fn write_lock(&self) {
        self.writers_waiting.fetch_add(1, Ordering::Relaxed);
        loop {
            match self.state.compare_exchange(0, WRITE_LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(state) => self.sleep_on(&self.state, state),
            }
        }
        if self.writers_waiting.fetch_sub(1, Ordering::Relaxed) == 1 {
            // No writer waits any more: readers blocked at the gate may re-check (they will
            // find the lock write-held and wait on `state` until we release).
            self.wake(&self.writers_waiting);
        }
    }

    /// # Safety
    /// The caller holds the write lock taken with [`RwLock::write_lock`].
    pub unsafe fn write_unlock(&self) {
        self.state.store(0, Ordering::Release);
        self.wake(&self.state);
    }

    /// Runs `f` holding a read lock.
    pub fn read<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unlock<'a>(&'a RwLock);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: created right after `read_lock` below, dropped once.
                unsafe { self.0.read_unlock() }
            }
        }
        self.read_lock();
        let _held = Unlock(self);
        f()
    }

    /// Runs `f` holding the write lock.
    pub fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unlock<'a>(&'a RwLock);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: created right after `write_lock` below, dropped once.
                unsafe { self.0.write_unlock() }
            }
        }
        self.write_lock();
        let _held = Unlock(self);
        f()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;
    use crate::sync::atomic::AtomicUsize;
    use crate::sync::cell::UnsafeCell;

    /// Two words a writer keeps equal; a reader seeing them differ saw a torn write.
    struct Guarded {
        lock: RwLock,
        pair: UnsafeCell<[u64; 2]>,
    }

    // SAFETY: `pair` is written only under the write lock and read only under a read lock.
    unsafe impl Sync for Guarded {}

    #[test]
    fn readers_share_writers_exclude() {
        // Small under Miri, which interprets every access.
        const ROUNDS: u64 = if cfg!(miri) { 20 } else { 2_000 };
        let guarded = Guarded { lock: RwLock::default(), pair: UnsafeCell::new([0; 2]) };
        let (readers_inside, writers_inside) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let shared = &guarded;
        run_team(6, |member| {
            let guarded = shared;
            for _ in 0..ROUNDS {
                if member.index % 3 == 0 {
                    guarded.lock.write(|| {
                        assert_eq!(writers_inside.fetch_add(1, Ordering::SeqCst), 0, "two writers inside");
                        assert_eq!(readers_inside.load(Ordering::SeqCst), 0, "a reader inside with a writer");
                        // SAFETY: the write lock is held.
                        guarded.pair.with_mut(|pair| unsafe {
                            (*pair)[0] += 1;
                            (*pair)[1] = (*pair)[0];
                        });
                        writers_inside.fetch_sub(1, Ordering::SeqCst);
                    });
                } else {
                    guarded.lock.read(|| {
                        readers_inside.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(writers_inside.load(Ordering::SeqCst), 0, "a writer inside with a reader");
                        // SAFETY: a read lock is held, so no writer is inside.
                        let [a, b] = guarded.pair.with(|pair| unsafe { *pair });
                        assert_eq!(a, b, "torn read");
                        readers_inside.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        })
        .unwrap();
        // Two of the six members write.
        assert_eq!(guarded.pair.into_inner(), [2 * ROUNDS; 2]);
    }
}
