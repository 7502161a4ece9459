//! A bounded multi-producer multi-consumer queue: Dmitry Vyukov's array queue ("Bounded MPMC
//! queue", 1024cores.net, 2010 — the algorithm behind crossbeam's `ArrayQueue`).
//!
//! Each slot carries a sequence number that says whose turn it is. With capacity `c` (a power
//! of two) and a ticket `pos` (the producers' or consumers' position counter):
//!
//! | slot's `seq` vs ticket | for a producer at `pos` | for a consumer at `pos` |
//! |---|---|---|
//! | `seq == pos` | the slot is free for this lap: claim `pos` (CAS), write, `seq = pos + 1` | — |
//! | `seq == pos + 1` | — | the value of this lap is there: claim `pos` (CAS), read, `seq = pos + c` |
//! | `seq` behind | the queue is full (the consumer of the last lap has not finished) | the queue is empty |
//! | `seq` ahead | another producer took `pos`: reload the ticket | another consumer took `pos`: reload |
//!
//! Producers and consumers contend only on their own counter (one CAS each), never on each
//! other's, and never on a lock. Memory ordering: the sequence store after writing (Release)
//! and its load before reading (Acquire) carry the value from producer to consumer, and the
//! consumer's Release store of the next lap's `seq` hands the emptied slot back; the counters
//! themselves only order tickets, so Relaxed suffices for them.

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::spin_yield;

struct Slot<T> {
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Vyukov's bounded MPMC queue: `push` fails when full, `pop` when empty; neither blocks.
pub struct Ring<T> {
    slots: Box<[Slot<T>]>,
    mask: usize,
    /// Producers' ticket.
    tail: CachePadded<AtomicUsize>,
    /// Consumers' ticket.
    head: CachePadded<AtomicUsize>,
}

// SAFETY: values move between threads through the queue (hence `T: Send`); every slot is
// accessed by exactly one thread at a time, as the sequence protocol above guarantees.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as for `Send`: shared access only ever touches a slot after winning its ticket.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A queue for at least `capacity` values (rounded up to a power of two, at least 2).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = (0..capacity)
            .map(|i| Slot { seq: AtomicUsize::new(i), value: UnsafeCell::new(MaybeUninit::uninit()) })
            .collect();
        Self {
            slots,
            mask: capacity - 1,
            tail: CachePadded::new(AtomicUsize::new(0)),
            head: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Appends `value`, or hands it back if the queue is full.
    pub fn push(&self, value: T) -> Result<(), T> {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            match seq.wrapping_sub(pos) as isize {
                0 => match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning ticket `pos` while `seq == pos` makes this thread the
                        // slot's only user until it publishes `seq = pos + 1` below.
                        slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                },
                behind if behind < 0 => return Err(value),
                _ => {
                    spin_yield();
                    pos = self.tail.load(Ordering::Relaxed);
                }
            }
        }
    }

    /// Takes the oldest value, or `None` if the queue is empty.
    pub fn pop(&self) -> Option<T> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            match seq.wrapping_sub(pos.wrapping_add(1)) as isize {
                0 => match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: `seq == pos + 1` (read with Acquire) means the producer of
                        // this lap has written the value; winning ticket `pos` makes this thread
                        // its only reader, and the slot is not reused before the store below.
                        let value = slot.value.with(|cell| unsafe { (*cell).assume_init_read() });
                        slot.seq.store(pos.wrapping_add(self.mask + 1), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => pos = current,
                },
                behind if behind < 0 => return None,
                _ => {
                    spin_yield();
                    pos = self.head.load(Ordering::Relaxed);
                }
            }
        }
    }

    /// Values in the queue now (a snapshot: it may change at once).
    pub fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        tail.wrapping_sub(head).min(self.capacity())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // No other thread is left: drop the values nobody took.
        while self.pop().is_some() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;

    #[test]
    fn fifo_until_full_then_refuses() {
        let ring = Ring::new(3);
        assert_eq!(ring.capacity(), 4);
        for i in 0..4 {
            ring.push(i).unwrap();
        }
        assert_eq!(ring.push(9), Err(9));
        assert_eq!((0..5).map(|_| ring.pop()).collect::<Vec<_>>(), [Some(0), Some(1), Some(2), Some(3), None]);
    }

    #[test]
    fn values_left_behind_are_dropped_once() {
        let marker = Arc::new(());
        let ring = Ring::new(4);
        ring.push(Arc::clone(&marker)).unwrap();
        ring.push(Arc::clone(&marker)).unwrap();
        drop(ring.pop());
        drop(ring);
        assert_eq!(Arc::strong_count(&marker), 1);
    }

    #[test]
    fn many_producers_and_consumers_lose_and_duplicate_nothing() {
        // Small under Miri, which interprets every access (minutes for a few thousand).
        const PER_PRODUCER: usize = if cfg!(miri) { 40 } else { 50_000 };
        let ring = Arc::new(Ring::new(64));
        let taken: Vec<usize> = std::thread::scope(|scope| {
            for p in 0..3 {
                let ring = Arc::clone(&ring);
                scope.spawn(move || {
                    for i in 0..PER_PRODUCER {
                        let mut value = p * PER_PRODUCER + i;
                        while let Err(back) = ring.push(value) {
                            value = back;
                            std::thread::yield_now();
                        }
                    }
                });
            }
            let consumers: Vec<_> = (0..3)
                .map(|_| {
                    let ring = Arc::clone(&ring);
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        while mine.len() < PER_PRODUCER {
                            match ring.pop() {
                                Some(value) => mine.push(value),
                                None => std::thread::yield_now(),
                            }
                        }
                        mine
                    })
                })
                .collect();
            consumers.into_iter().flat_map(|c| c.join().unwrap()).collect()
        });
        let mut taken = taken;
        taken.sort_unstable();
        assert_eq!(taken, (0..3 * PER_PRODUCER).collect::<Vec<_>>());
    }
}
