//! Parking idle workers without losing a wake-up: the sleep protocol of the stealing pool.
//!
//! A worker that found nothing to do for a while parks on its own 32-bit word (a futex, see
//! `platform::wait`), so an idle pool burns no CPU. Whoever makes work available — pushes a
//! task, sets a latch a parked joiner waits on, ends the pool — wakes a sleeper. The hazard is
//! the classic lost wake-up: the worker checks "no work", the publisher publishes and sees "no
//! sleeper", then the worker sleeps forever beside the work. It is closed Dekker-style, as in
//! rayon-core's `sleep` module:
//!
//! | sleeper | publisher |
//! |---|---|
//! | `word := ASLEEP`; `sleepers += 1` | publish the work |
//! | `fence(SeqCst)` | `fence(SeqCst)` |
//! | re-check for work → if any, stay awake | read `sleepers` → if > 0, CAS some `word` ASLEEP→AWAKE and wake it |
//!
//! The two SeqCst fences order the pairs: either the sleeper's re-check sees the work, or the
//! publisher's read sees the sleeper. A worker parks only while its word is `ASLEEP`, and only
//! a waker's CAS changes it back, so a wake cannot slip between the check and the park.
//!
//! | word | meaning |
//! |---|---|
//! | `AWAKE` (0) | running or searching; wakers skip it |
//! | `ASLEEP` (1) | announced or parked; the first waker to CAS it to `AWAKE` owns the wake |
//!
//! Waking is best effort for throughput (a wake may land on a worker that was about to find
//! the work itself), but exact where liveness needs it: [`Sleep::wake`] targets the one worker
//! waiting on a latch, and [`Sleep::wake_all`] ends the pool.

use crate::platform;
use crate::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

const AWAKE: u32 = 0;
const ASLEEP: u32 = 1;

/// The parking words of a pool's workers.
pub struct Sleep {
    words: Box<[crossbeam_utils::CachePadded<AtomicU32>]>,
    sleepers: AtomicUsize,
    /// Where the next [`Sleep::wake_one`] starts looking, so wakes spread over the workers.
    next: AtomicUsize,
}

impl Sleep {
    pub fn new(workers: usize) -> Self {
        Self {
            words: (0..workers).map(|_| crossbeam_utils::CachePadded::new(AtomicU32::new(AWAKE))).collect(),
            sleepers: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        }
    }

    /// Parks `worker` unless `ready()` holds once it has announced itself; returns whether it
    /// parked. `ready` must cover every condition a publisher wakes for (new work, its latch,
    /// the end of the pool).
    pub fn sleep(&self, worker: usize, ready: impl Fn() -> bool) -> bool {
        let word = &self.words[worker];
        word.store(ASLEEP, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let parked = !ready();
        if parked {
            while word.load(Ordering::Acquire) == ASLEEP {
                platform::wait(word, ASLEEP);
            }
        } else {
            // A waker may have chosen us meanwhile; either way we are awake now.
            word.store(AWAKE, Ordering::Relaxed);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        parked
    }

    /// After publishing work: wakes one sleeping worker, if there is one.
    pub fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let workers = self.words.len();
        for offset in 0..workers {
            if self.try_wake((start + offset) % workers) {
                return;
            }
        }
    }

    /// After setting a latch `worker` may be parked on: wakes exactly that worker.
    pub fn wake(&self, worker: usize) {
        fence(Ordering::SeqCst);
        self.try_wake(worker);
    }

    /// After a change every worker must see (the pool ends): wakes them all.
    pub fn wake_all(&self) {
        fence(Ordering::SeqCst);
        for worker in 0..self.words.len() {
            self.try_wake(worker);
        }
    }

    fn try_wake(&self, worker: usize) -> bool {
        let word = &self.words[worker];
        let claimed = word.compare_exchange(ASLEEP, AWAKE, Ordering::SeqCst, Ordering::Relaxed).is_ok();
        if claimed {
            platform::wake_one(word);
        }
        claimed
    }

    /// Workers announced or parked right now (a snapshot, for tests and statistics).
    pub fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;
    use crate::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn a_ready_worker_does_not_park() {
        let sleep = Sleep::new(1);
        assert!(!sleep.sleep(0, || true));
        assert_eq!(sleep.sleepers(), 0);
    }

    #[test]
    fn a_parked_worker_is_woken_by_its_publisher() {
        let sleep = Sleep::new(2);
        let work = AtomicBool::new(false);
        run_team(2, |member| {
            if member.index == 0 {
                while !work.load(Ordering::Acquire) {
                    sleep.sleep(0, || work.load(Ordering::Acquire));
                }
            } else {
                while sleep.sleepers() == 0 {
                    platform::sleep(Duration::from_millis(1));
                }
                work.store(true, Ordering::Release);
                sleep.wake_one();
            }
        })
        .unwrap();
    }
}
