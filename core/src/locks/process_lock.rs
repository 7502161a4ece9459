//! A lock in one word of memory that several processes share: what guards a Python
//! `multiprocessing.Value` (CPython's `SemLock`, a POSIX semaphore, is a futex word too).
//!
//! The protocol is Drepper's three-state futex mutex ("Futexes Are Tricky", 2004, mutex #3;
//! the one the [`parking`](super::parking) mutex improves on with a sleeper count), without
//! spinning, on a
//! [`Words`] region rather than a field: natively a `MAP_SHARED` mapping whose waits use the
//! *shared* futex operations, in a browser the experiment worker's memory reached through
//! JavaScript's `Atomics` (one call per operation).
//!
//! Memory ordering: every [`Words`] operation is sequentially consistent, so the holder's writes
//! to the region happen-before the next holder's reads.
//!
//! | word | meaning | unlock does |
//! |---|---|---|
//! | 0 | free | – |
//! | 1 | held, nobody asleep | swap → 0 |
//! | 2 | held, maybe sleepers | swap → 0, wake one |

use crate::platform::Words;

const FREE: u32 = 0;
const HELD: u32 = 1;
const CONTENDED: u32 = 2;

/// The lock at word `index` of `words` (which start zeroed: free).
pub struct ProcessLock<'a, W: Words + ?Sized> {
    words: &'a W,
    index: usize,
}

impl<'a, W: Words + ?Sized> ProcessLock<'a, W> {
    pub fn new(words: &'a W, index: usize) -> Self {
        Self { words, index }
    }

    /// Runs `f` holding the lock.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock();
        let result = f();
        self.unlock();
        result
    }

    fn lock(&self) {
        let (words, index) = (self.words, self.index);
        if words.compare_exchange(index, FREE, HELD).is_ok() {
            return;
        }
        // A woken thread swaps in CONTENDED: others may still sleep, so the next unlock wakes.
        while words.swap(index, CONTENDED) != FREE {
            words.wait(index, CONTENDED);
        }
    }

    fn unlock(&self) {
        if self.words.swap(self.index, FREE) == CONTENDED {
            self.words.wake_one(self.index);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::{run_team, LocalWords};

    #[test]
    fn two_threads_count_exactly_under_the_lock() {
        let words = LocalWords::new(2);
        let lock = ProcessLock::new(&words, 0);
        run_team(2, |_| {
            for _ in 0..20_000 {
                // A read and a write that would lose updates without the lock.
                lock.with(|| words.store(1, words.load(1) + 1));
            }
        })
        .unwrap();
        assert_eq!((words.load(0), words.load(1)), (0, 40_000));
    }
}
