//! A bounded MPMC channel of our own: Vyukov's [`Ring`] for the items, and an *event count*
//! per side (Vyukov's "eventcount" pattern; Linux futexes underneath) so that a receiver on an
//! empty channel and a sender on a full one park instead of spinning.
//!
//! Parking without losing a wake-up is Dekker-style, as in `sched::sleep`:
//!
//! | waiter (e.g. a receiver) | notifier (a sender) |
//! |---|---|
//! | `waiters += 1`; `fence(SeqCst)`; `key := seq` | push the item |
//! | re-try the ring → if it worked, withdraw | `fence(SeqCst)`; read `waiters` |
//! | `futex_wait(seq, key)` | if `waiters > 0`: `seq += 1`; `futex_wake(seq)` |
//!
//! Either the waiter's re-try sees the item, or the notifier sees the waiter and bumps `seq`, in
//! which case the waiter's wait returns at once (the word is no longer `key`) or is woken. The
//! last sender (receiver) to leave bumps the other side's event and wakes everyone, so a
//! blocked peer sees the disconnection. Senders and receivers count themselves like crossbeam's
//! and std's channels: `send` fails once every receiver is gone, `recv` once every sender is
//! gone and the ring is empty.

use super::ring::Ring;
use crate::platform;
use crate::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};
use crate::sync::{spin_yield, Arc};

/// Tries before a blocked side parks: a short spin catches a peer that is about to act (under
/// loom, one, so the model explores parking rather than spinning).
const SPINS: usize = if cfg!(loom) { 1 } else { 64 };

/// Waiters on one condition ("not empty" or "not full") and the sequence word they park on.
#[derive(Default)]
struct EventCount {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl EventCount {
    /// Announces a waiter; the key to park with.
    fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// Parks until the sequence moves past `key` (returns at once if it already has).
    fn wait(&self, key: u32) {
        platform::wait(&self.seq, key);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    fn cancel(&self) {
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// After making the condition true: wakes one waiter, if any.
    fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            platform::wake_one(&self.seq);
        }
    }

    fn notify_all(&self) {
        fence(Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst);
        platform::wake_all(&self.seq);
    }
}

struct Shared<T> {
    ring: Ring<T>,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    not_empty: EventCount,
    not_full: EventCount,
}

/// The sending half; clone it for more producers.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving half; clone it for more consumers.
pub struct Receiver<T>(Arc<Shared<T>>);

/// A channel holding at most `capacity` items (rounded up to a power of two).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        ring: Ring::new(capacity),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
        not_empty: EventCount::default(),
        not_full: EventCount::default(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// Every receiver (for `send`) or sender (for `recv`) is gone; `send` hands the value back.
#[derive(Debug, PartialEq, Eq)]
pub struct Disconnected<T>(pub T);

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full.
    pub fn send(&self, value: T) -> Result<(), Disconnected<T>> {
        let shared = &*self.0;
        let mut value = value;
        let mut tries = 0;
        loop {
            if shared.receivers.load(Ordering::SeqCst) == 0 {
                return Err(Disconnected(value));
            }
            match shared.ring.push(value) {
                Ok(()) => {
                    shared.not_empty.notify_one();
                    return Ok(());
                }
                Err(back) => value = back,
            }
            tries += 1;
            if tries < SPINS {
                spin_yield();
                continue;
            }
            let key = shared.not_full.prepare();
            match shared.ring.push(value) {
                Ok(()) => {
                    shared.not_full.cancel();
                    shared.not_empty.notify_one();
                    return Ok(());
                }
                Err(back) => value = back,
            }
            if shared.receivers.load(Ordering::SeqCst) == 0 {
                shared.not_full.cancel();
                continue;
            }
            shared.not_full.wait(key);
        }
    }

    /// Sends without waiting: `Err` with the value if full or disconnected.
    pub fn try_send(&self, value: T) -> Result<(), T> {
        if self.0.receivers.load(Ordering::SeqCst) == 0 {
            return Err(value);
        }
        self.0.ring.push(value)?;
        self.0.not_empty.notify_one();
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// Receives the oldest item, waiting while the channel is empty; `Err` once it is empty and
    /// every sender is gone.
    pub fn recv(&self) -> Result<T, Disconnected<()>> {
        let shared = &*self.0;
        let mut tries = 0;
        loop {
            if let Some(value) = self.try_recv() {
                return Ok(value);
            }
            if shared.senders.load(Ordering::SeqCst) == 0 {
                // A last item may have landed before the last sender left.
                return self.try_recv().ok_or(Disconnected(()));
            }
            tries += 1;
            if tries < SPINS {
                spin_yield();
                continue;
            }
            let key = shared.not_empty.prepare();
            if let Some(value) = self.try_recv() {
                shared.not_empty.cancel();
                return Ok(value);
            }
            if shared.senders.load(Ordering::SeqCst) == 0 {
                shared.not_empty.cancel();
                continue;
            }
            shared.not_empty.wait(key);
        }
    }

    /// Items in the channel now (a snapshot: it may change at once), at most its capacity.
    pub fn len(&self) -> usize {
        self.0.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receives without waiting.
    pub fn try_recv(&self) -> Option<T> {
        let value = self.0.ring.pop()?;
        self.0.not_full.notify_one();
        Some(value)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(&self.0))
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.0.receivers.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.not_empty.notify_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.0.receivers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.not_full.notify_all();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a native unit test: the producer owns its sender and drops it")]
    fn items_arrive_in_order_and_recv_ends_when_senders_leave() {
        let items = if cfg!(miri) { 50 } else { 1000 };
        let (sender, receiver) = bounded(2);
        let producer = std::thread::spawn(move || (0..items).for_each(|i| sender.send(i).unwrap()));
        let got: Vec<i32> = std::iter::from_fn(|| receiver.recv().ok()).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..items).collect::<Vec<_>>());
    }

    #[test]
    fn send_fails_once_receivers_are_gone() {
        let (sender, receiver) = bounded(1);
        drop(receiver);
        assert_eq!(sender.send(5), Err(Disconnected(5)));
    }

    #[test]
    fn many_senders_and_receivers_lose_and_duplicate_nothing() {
        // Small under Miri, which interprets every access (minutes for a few thousand).
        const PER_SENDER: u64 = if cfg!(miri) { 30 } else { 20_000 };
        let (sender, receiver) = bounded(8);
        let mut got: Vec<u64> = std::thread::scope(|scope| {
            for p in 0..3u64 {
                let sender = sender.clone();
                scope.spawn(move || (0..PER_SENDER).for_each(|i| sender.send(p * PER_SENDER + i).unwrap()));
            }
            drop(sender);
            let receivers: Vec<_> = (0..3)
                .map(|_| {
                    let receiver = receiver.clone();
                    scope.spawn(move || std::iter::from_fn(|| receiver.recv().ok()).collect::<Vec<_>>())
                })
                .collect();
            receivers.into_iter().flat_map(|r| r.join().unwrap()).collect()
        });
        got.sort_unstable();
        assert_eq!(got, (0..3 * PER_SENDER).collect::<Vec<_>>());
    }
}
