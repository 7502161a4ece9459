//! The Chase–Lev work-stealing deque (Chase & Lev 2005, "Dynamic circular work-stealing deque";
//! memory orderings from Lê, Pop, Cohen & Zappa Nardelli 2013, "Correct and efficient
//! work-stealing for weak memory models", Fig. 1).
//!
//! One owner pushes and pops at the bottom (LIFO: the task it just created is hot in its
//! cache); any number of thieves steal from the top (FIFO: the oldest task, usually the
//! biggest piece of a divide-and-conquer tree). Owner and thieves only contend for the last
//! element, which a compare-and-swap on `top` settles.
//!
//! The buffer is a fixed ring of `CAPACITY` slots, as in Go's per-processor run queues: a full
//! deque hands the task back to the caller (which puts it on a global injector), so old buffers
//! never need reclaiming. Slots are `AtomicPtr`s: a thief may read a slot the owner is
//! overwriting after wrap-around, and then loses its CAS; an atomic read makes that race
//! benign instead of undefined.
//!
//! Memory ordering (after Lê et al.): push writes the slot (Relaxed), then publishes `bottom`.
//! Every store to `bottom` — push's, and pop's lowering and restoring — is a Release store, so a
//! thief's Acquire load of `bottom`, whichever of them it reads, sees every slot below it. Lê et
//! al. get this from one Release fence in push, which orders all of the owner's later stores
//! too; ThreadSanitizer does not model fences, and a Release store on push's alone is not
//! enough (Miri found a thief reading a stale null slot through pop's Relaxed restore). pop
//! lowers `bottom`, fences SeqCst, then reads `top`; steal reads `top` (Acquire), fences
//! SeqCst, then reads `bottom` (Acquire). The two SeqCst fences decide the race for the last
//! element; the CAS on `top` (SeqCst) decides between thieves.
//!
//! | top vs bottom | meaning |
//! |---|---|
//! | bottom − top = 0 | empty |
//! | bottom − top = n > 0 | n tasks, oldest at `top % CAPACITY` |
//! | bottom − top = CAPACITY | full: push refuses |

use std::ptr;

use crate::sync::atomic::{fence, AtomicIsize, AtomicPtr, Ordering};
use crate::sync::Arc;

/// Slots in a deque (a power of two).
pub const CAPACITY: usize = 256;

/// What a steal attempt found.
#[derive(Debug, PartialEq, Eq)]
pub enum Steal<T> {
    Empty,
    /// Lost a race with another thief or the owner: worth trying again.
    Retry,
    Success(T),
}

struct Inner<T> {
    top: AtomicIsize,
    bottom: AtomicIsize,
    slots: Box<[AtomicPtr<T>]>,
}

impl<T> Inner<T> {
    fn slot(&self, index: isize) -> &AtomicPtr<T> {
        &self.slots[index as usize & (CAPACITY - 1)]
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        // Owner and thieves are gone: free the tasks nobody took.
        let (top, bottom) = (self.top.load(Ordering::Relaxed), self.bottom.load(Ordering::Relaxed));
        for index in top..bottom {
            let task = self.slot(index).load(Ordering::Relaxed);
            // SAFETY: indices top..bottom hold tasks pushed (Box::into_raw) and never taken.
            drop(unsafe { Box::from_raw(task) });
        }
    }
}

/// The owner's end: push and pop. Not `Sync`: exactly one thread owns it.
pub struct Worker<T> {
    inner: Arc<Inner<T>>,
}

/// A thief's end: cheap to clone, shareable between threads.
pub struct Stealer<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

// SAFETY: the deque moves `T`s between threads (owner pushes, a thief takes), so `T: Send`
// suffices; all shared state is atomic.
unsafe impl<T: Send> Send for Worker<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Stealer<T> {}
// SAFETY: `steal` takes `&self` and synchronises through atomics only.
unsafe impl<T: Send> Sync for Stealer<T> {}

/// A new, empty deque: its owner's end and a thief's end.
pub fn deque<T>() -> (Worker<T>, Stealer<T>) {
    let inner = Arc::new(Inner {
        top: AtomicIsize::new(0),
        bottom: AtomicIsize::new(0),
        slots: (0..CAPACITY).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
    });
    (Worker { inner: Arc::clone(&inner) }, Stealer { inner })
}

impl<T> Worker<T> {
    /// Pushes at the bottom, or hands `task` back if the deque is full.
    pub fn push(&self, task: T) -> Result<(), T> {
        let inner = &*self.inner;
        let bottom = inner.bottom.load(Ordering::Relaxed);
        let top = inner.top.load(Ordering::Acquire);
        if bottom - top >= CAPACITY as isize {
            return Err(task);
        }
        inner.slot(bottom).store(Box::into_raw(Box::new(task)), Ordering::Relaxed);
        inner.bottom.store(bottom + 1, Ordering::Release);
        Ok(())
    }

    /// Pops the newest task (LIFO), if any.
    pub fn pop(&self) -> Option<T> {
        let inner = &*self.inner;
        let bottom = inner.bottom.load(Ordering::Relaxed) - 1;
        inner.bottom.store(bottom, Ordering::Release);
        fence(Ordering::SeqCst);
        let top = inner.top.load(Ordering::Relaxed);
        if top > bottom {
            // Empty: restore.
            inner.bottom.store(bottom + 1, Ordering::Release);
            return None;
        }
        let task = inner.slot(bottom).load(Ordering::Relaxed);
        if top == bottom {
            // The last task: race the thieves for it.
            let won = inner.top.compare_exchange(top, top + 1, Ordering::SeqCst, Ordering::Relaxed).is_ok();
            inner.bottom.store(bottom + 1, Ordering::Release);
            if !won {
                return None;
            }
        }
        // SAFETY: we own index `bottom` (no thief can reach it, or we won the CAS for it), so
        // this pointer from `push` is taken exactly once.
        Some(*unsafe { Box::from_raw(task) })
    }

    /// Tasks in the deque right now (a snapshot).
    pub fn len(&self) -> usize {
        let inner = &*self.inner;
        (inner.bottom.load(Ordering::Relaxed) - inner.top.load(Ordering::Relaxed)).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Stealer<T> {
    /// Whether the deque looks empty right now (a snapshot: a push or steal may race it).
    pub fn is_empty(&self) -> bool {
        let inner = &*self.inner;
        inner.top.load(Ordering::Acquire) >= inner.bottom.load(Ordering::Acquire)
    }

    /// Steals the oldest task (FIFO).
    pub fn steal(&self) -> Steal<T> {
        let inner = &*self.inner;
        let top = inner.top.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let bottom = inner.bottom.load(Ordering::Acquire);
        if top >= bottom {
            return Steal::Empty;
        }
        let task = inner.slot(top).load(Ordering::Relaxed);
        if inner.top.compare_exchange(top, top + 1, Ordering::SeqCst, Ordering::Relaxed).is_err() {
            return Steal::Retry;
        }
        // SAFETY: our CAS claimed index `top`, so this pointer from `push` is taken once, by us.
        Steal::Success(*unsafe { Box::from_raw(task) })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;
    use crate::sync::atomic::AtomicUsize;
    use crate::sync::Mutex;

    #[test]
    fn owner_is_lifo_thief_is_fifo() {
        let (worker, stealer) = deque();
        for task in 1..=3 {
            worker.push(task).unwrap();
        }
        assert_eq!(worker.pop(), Some(3));
        assert_eq!(stealer.steal(), Steal::Success(1));
        assert_eq!(worker.pop(), Some(2));
        assert_eq!((worker.pop(), stealer.steal()), (None, Steal::Empty));
    }

    #[test]
    fn a_full_deque_hands_the_task_back_and_wraps_around() {
        let (worker, stealer) = deque();
        for round in 0..3 {
            for task in 0..CAPACITY {
                worker.push(round * CAPACITY + task).unwrap();
            }
            assert_eq!(worker.push(usize::MAX), Err(usize::MAX));
            for task in 0..CAPACITY {
                assert_eq!(stealer.steal(), Steal::Success(round * CAPACITY + task));
            }
        }
        assert!(worker.is_empty());
    }

    #[test]
    fn leftover_tasks_are_dropped_with_the_deque() {
        let counter = std::sync::Arc::new(());
        let (worker, stealer) = deque();
        for _ in 0..5 {
            worker.push(std::sync::Arc::clone(&counter)).unwrap();
        }
        drop((worker, stealer));
        assert_eq!(std::sync::Arc::strong_count(&counter), 1);
    }

    #[test]
    fn under_stress_every_task_is_taken_exactly_once() {
        // Small under Miri, which interprets every access (minutes for a few thousand).
        const TASKS: usize = if cfg!(miri) { 300 } else { 200_000 };
        let (worker, stealer) = deque::<usize>();
        let seen: Vec<AtomicUsize> = (0..TASKS).map(|_| AtomicUsize::new(0)).collect();
        let owner = Mutex::new(Some(worker));
        let produced = AtomicUsize::new(0);
        run_team(4, |member| {
            let take = |task: usize| {
                seen[task].fetch_add(1, Ordering::Relaxed);
            };
            if member.index == 0 {
                let worker = crate::sync::lock(&owner).take().expect("one owner");
                let mut next = 0;
                while next < TASKS {
                    match worker.push(next) {
                        Ok(()) => next += 1,
                        Err(_) => {
                            if let Some(task) = worker.pop() {
                                take(task);
                            }
                        }
                    }
                    // Pop some back so owner and thieves race for the last elements.
                    if next % 3 == 0 {
                        if let Some(task) = worker.pop() {
                            take(task);
                        }
                    }
                }
                while let Some(task) = worker.pop() {
                    take(task);
                }
                produced.store(1, Ordering::Release);
            } else {
                loop {
                    match stealer.steal() {
                        Steal::Success(task) => take(task),
                        Steal::Retry => {}
                        Steal::Empty if produced.load(Ordering::Acquire) == 1 => break,
                        Steal::Empty => std::hint::spin_loop(),
                    }
                }
            }
        })
        .unwrap();
        let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, n)| n.load(Ordering::Relaxed) != 1).take(5).collect();
        assert!(wrong.is_empty(), "tasks not taken exactly once: {wrong:?}");
    }
}
