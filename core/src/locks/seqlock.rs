//! Sequence lock: readers never block writers, and retry if a write overlapped their read
//! (Lameter 2005, "Effective synchronization on Linux/NUMA systems"; the memory-model
//! treatment follows Boehm 2012, "Can seqlocks get along with programming language memory
//! models?").
//!
//! A writer (serialised by a [`ParkingMutex`]) makes `seq` odd, writes, and makes it even
//! again. A reader reads `seq`, the data, then `seq` again, and keeps the data only if both
//! reads saw the same even number. The data are `AtomicU64` words read and written `Relaxed`,
//! so the optimistic, possibly overlapping reads are not data races (reading plain memory
//! that a writer changes concurrently would be undefined behaviour in Rust).
//!
//! Memory ordering (Boehm's "fence" version): writer — `seq = odd` (Relaxed), `fence(Release)`,
//! data stores (Relaxed), `seq = even` (Release). Reader — `s1 = seq` (Acquire), data loads
//! (Relaxed), `fence(Acquire)`, `s2 = seq` (Relaxed). If a reader's data load saw any store
//! of a write, its fence makes the odd `seq` of that write visible to the `s2` load.
//!
//! | `seq` | meaning |
//! |---|---|
//! | even | stable: a read that sees the same even value before and after is consistent |
//! | odd | a write is in progress: readers retry |

use super::parking::ParkingMutex;
use super::Lock;
use crate::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use crate::sync::spin_yield;

#[derive(Debug)]
pub struct SeqLock<const N: usize> {
    seq: AtomicU32,
    words: [AtomicU64; N],
    writers: ParkingMutex,
}

impl<const N: usize> Default for SeqLock<N> {
    fn default() -> Self {
        Self {
            seq: AtomicU32::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            writers: ParkingMutex::default(),
        }
    }
}

impl<const N: usize> SeqLock<N> {
    /// A consistent snapshot of the words (retrying while writes overlap), and how many
    /// attempts it took.
    pub fn read_counting(&self) -> ([u64; N], u32) {
        let mut attempts = 1;
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 0 {
                let snapshot = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return (snapshot, attempts);
                }
            }
            attempts += 1;
            spin_yield();
        }
    }

    /// A consistent snapshot of the words.
    pub fn read(&self) -> [u64; N] {
        self.read_counting().0
    }

    /// Replaces the words with `update(current)`, atomically as seen by readers.
    pub fn write(&self, update: impl FnOnce(&mut [u64; N])) {
        self.writers.with(|| {
            let seq = self.seq.load(Ordering::Relaxed);
            self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            let mut words = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            update(&mut words);
            for (slot, value) in self.words.iter().zip(words) {
                slot.store(value, Ordering::Relaxed);
            }
            self.seq.store(seq.wrapping_add(2), Ordering::Release);
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;

    #[test]
    fn readers_never_see_a_torn_write() {
        // Small under Miri, which interprets every access.
        const ROUNDS: u64 = if cfg!(miri) { 30 } else { 20_000 };
        let lock = SeqLock::<4>::default();
        run_team(4, |member| {
            for _ in 0..ROUNDS {
                if member.index == 0 {
                    lock.write(|words| {
                        let next = words[0] + 1;
                        *words = [next; 4];
                    });
                } else {
                    let words = lock.read();
                    assert!(words.iter().all(|w| *w == words[0]), "torn: {words:?}");
                }
            }
        })
        .unwrap();
        assert_eq!(lock.read(), [ROUNDS; 4]);
    }
}
