//! The Michael–Scott queue (M. M. Michael and M. L. Scott, "Simple, Fast, and Practical
//! Non-Blocking and Blocking Concurrent Queue Algorithms", PODC 1996): an unbounded lock-free
//! FIFO of linked nodes, with memory reclaimed by epochs (K. Fraser, "Practical lock-freedom",
//! 2004, as implemented by crossbeam-epoch).
//!
//! `head` points to a sentinel whose successor holds the first value; `tail` points to the last
//! node or, briefly, the one before it. A push CASes its node into `tail.next` (the
//! linearisation point), then swings `tail` forward; a pop CASes `head` from the sentinel to its
//! successor (the linearisation point), which becomes the new sentinel after the value is moved
//! out. A thread that finds `tail` lagging (its `next` is set) swings it forward for the pusher
//! before retrying — the helping that makes the queue lock-free: a stalled pusher never blocks
//! the others.
//!
//! | `tail.next` | `head == tail` | meaning | push | pop |
//! |---|---|---|---|---|
//! | null | yes | empty | link after tail | `None` |
//! | null | no | settled | link after tail | CAS head forward |
//! | set | – | a push linked its node but has not moved `tail` | help: CAS tail forward, retry | CAS head forward (after helping tail if `head == tail`) |
//!
//! Reclamation: a popped sentinel may still be read by threads that loaded `head` before the
//! CAS, so it is not freed at once but handed to `guard.defer_destroy`: crossbeam-epoch frees it
//! once every thread pinned at that time has unpinned. Without this, the freed node's memory
//! could be reused as a new node and the classic ABA would strike; with it, a node's address
//! cannot recur while anyone holds it, so no tag is needed (compare [`super::treiber`]).
//!
//! Memory ordering: a node's value is written before the Release CAS that links it; pops load
//! `next` with Acquire, so the value they move out is the one written. CASes on `head` and
//! `tail` are Release (publishing nothing new but ordering the frees after the reads), loads of
//! them Acquire.

use std::mem::MaybeUninit;

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};
use crossbeam_utils::CachePadded;

use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use crate::sync::cell::UnsafeCell;

struct Node<T> {
    /// Uninitialised in the sentinel: its value was moved out by the pop that made it one.
    value: UnsafeCell<MaybeUninit<T>>,
    next: Atomic<Node<T>>,
}

/// An unbounded multi-producer multi-consumer FIFO queue.
pub struct MsQueue<T> {
    head: CachePadded<Atomic<Node<T>>>,
    tail: CachePadded<Atomic<Node<T>>>,
}

// SAFETY: values move between threads through the queue (T: Send); nodes are only reached
// through atomics and freed by the epoch collector once unreachable.
unsafe impl<T: Send> Send for MsQueue<T> {}
// SAFETY: as above: every shared access goes through atomics, and a value is read by exactly
// the one pop whose head CAS won.
unsafe impl<T: Send> Sync for MsQueue<T> {}

impl<T> Default for MsQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> MsQueue<T> {
    /// An empty queue: head and tail at one sentinel.
    pub fn new() -> Self {
        let sentinel = Owned::new(Node { value: UnsafeCell::new(MaybeUninit::uninit()), next: Atomic::null() });
        // SAFETY: the queue is not shared yet, so no thread can be pinned on its nodes.
        let sentinel = sentinel.into_shared(unsafe { epoch::unprotected() });
        Self { head: CachePadded::new(Atomic::from(sentinel)), tail: CachePadded::new(Atomic::from(sentinel)) }
    }

    /// Appends `value`.
    pub fn push(&self, value: T) {
        let guard = &epoch::pin();
        let node = Owned::new(Node { value: UnsafeCell::new(MaybeUninit::new(value)), next: Atomic::null() })
            .into_shared(guard);
        loop {
            let tail = self.tail.load(Acquire, guard);
            // SAFETY: `tail` is never null (there is always a sentinel) and, loaded while pinned,
            // cannot be freed before `guard` is dropped.
            let tail_node = unsafe { tail.deref() };
            let next = tail_node.next.load(Acquire, guard);
            if !next.is_null() {
                // Another push linked a node but has not moved the tail yet: help it.
                let _ = self.tail.compare_exchange(tail, next, Release, Relaxed, guard);
            } else if tail_node.next.compare_exchange(Shared::null(), node, Release, Relaxed, guard).is_ok() {
                let _ = self.tail.compare_exchange(tail, node, Release, Relaxed, guard);
                return;
            }
            crate::sync::spin_yield();
        }
    }

    /// Removes the oldest value, or `None` if the queue is empty.
    pub fn pop(&self) -> Option<T> {
        let guard = &epoch::pin();
        loop {
            let head = self.head.load(Acquire, guard);
            // SAFETY: `head` is never null and, loaded while pinned, is not freed before `guard`.
            let next = unsafe { head.deref() }.next.load(Acquire, guard);
            // SAFETY: a non-null `next` was loaded while pinned: not freed before `guard`.
            let next_node = unsafe { next.as_ref() }?;
            // Never let head pass tail: a lagging tail would point at a freed node.
            let tail = self.tail.load(Relaxed, guard);
            if tail == head {
                let _ = self.tail.compare_exchange(tail, next, Release, Relaxed, guard);
            }
            if self.head.compare_exchange(head, next, Release, Relaxed, guard).is_ok() {
                // SAFETY: winning the head CAS makes this pop the only one to move the value out
                // of `next` (now the sentinel, whose value nobody reads again); the Acquire load
                // of `next` made the pusher's write visible.
                let value = next_node.value.with(|value| unsafe { (*value).assume_init_read() });
                // SAFETY: `head` is unreachable from the queue now; threads that loaded it
                // earlier are pinned, so the collector frees it after they unpin.
                unsafe { guard.defer_destroy(head) };
                return Some(value);
            }
            crate::sync::spin_yield();
        }
    }

    /// Whether the queue held no value at some instant during the call.
    pub fn is_empty(&self) -> bool {
        let guard = &epoch::pin();
        // SAFETY: `head` is never null and pinned by `guard`.
        unsafe { self.head.load(Acquire, guard).deref() }.next.load(Acquire, guard).is_null()
    }

    fn drain(&mut self, guard: &Guard) {
        while self.pop_exclusive(guard).is_some() {}
    }

    /// Pops with `&mut self`: no other thread can be inside the queue.
    fn pop_exclusive(&mut self, guard: &Guard) -> Option<T> {
        let head = self.head.load(Relaxed, guard);
        // SAFETY: exclusive access: every node reachable from `head` is alive.
        let next = unsafe { head.deref() }.next.load(Relaxed, guard);
        // SAFETY: as above.
        let next_node = unsafe { next.as_ref() }?;
        self.head.store(next, Relaxed);
        // SAFETY: `next` holds an initialised value (it is not yet the sentinel), read once.
        let value = next_node.value.with(|value| unsafe { (*value).assume_init_read() });
        // SAFETY: exclusive access: nobody else can hold the old sentinel.
        drop(unsafe { head.into_owned() });
        Some(value)
    }
}

impl<T> Drop for MsQueue<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread is in the queue, so nothing needs protecting.
        let guard = unsafe { epoch::unprotected() };
        self.drain(guard);
        // SAFETY: only the sentinel is left, uninitialised value and all; nobody else holds it.
        drop(unsafe { self.head.load(Relaxed, guard).into_owned() });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::atomic::{AtomicUsize, Ordering};
    use crate::sync::Arc;

    #[test]
    fn fifo_on_one_thread() {
        let queue = MsQueue::new();
        assert!(queue.is_empty() && queue.pop().is_none());
        (0..5).for_each(|i| queue.push(i));
        assert!(!queue.is_empty());
        assert_eq!(
            (0..6).map(|_| queue.pop()).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3), Some(4), None]
        );
    }

    #[test]
    fn three_producers_three_consumers_lose_and_duplicate_nothing_and_keep_each_producers_order() {
        // Small under Miri, which interprets every access (minutes for a few thousand).
        const PER_PRODUCER: u64 = if cfg!(miri) { 40 } else { 50_000 };
        let queue = MsQueue::new();
        let taken = AtomicUsize::new(0);
        let seen: Vec<Vec<u64>> = std::thread::scope(|scope| {
            for producer in 0..3u64 {
                let queue = &queue;
                scope.spawn(move || (0..PER_PRODUCER).for_each(|i| queue.push(producer << 32 | i)));
            }
            let consumers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        while taken.load(Ordering::Relaxed) < 3 * PER_PRODUCER as usize {
                            match queue.pop() {
                                Some(value) => {
                                    mine.push(value);
                                    taken.fetch_add(1, Ordering::Relaxed);
                                }
                                None => std::hint::spin_loop(),
                            }
                        }
                        mine
                    })
                })
                .collect();
            consumers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        for mine in &seen {
            for producer in 0..3u64 {
                let order: Vec<u64> = mine.iter().filter(|v| *v >> 32 == producer).map(|v| v & 0xffff_ffff).collect();
                assert!(order.windows(2).all(|w| w[0] < w[1]), "a consumer sees each producer's values in order");
            }
        }
        let mut all: Vec<u64> = seen.into_iter().flatten().collect();
        all.sort_unstable();
        let expected: Vec<u64> = (0..3u64).flat_map(|p| (0..PER_PRODUCER).map(move |i| p << 32 | i)).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn values_left_in_the_queue_are_dropped_once() {
        let value = Arc::new(());
        let queue = MsQueue::new();
        (0..10).for_each(|_| queue.push(Arc::clone(&value)));
        drop(queue.pop());
        assert_eq!(Arc::strong_count(&value), 10);
        drop(queue);
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
