//! Model checks of every hand-written lock and lock-free structure with loom: all interleavings up to a preemption
//! bound. Mutual exclusion is checked by loom itself (the protected data sits in loom's
//! `UnsafeCell`, so two holders at once are a reported race); a lost wake-up leaves a thread
//! asleep forever in the futex emulation, which loom reports as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" cargo test --release -p conlab-core --test loom`
//! (`crossbeam_loom` puts crossbeam-epoch, which reclaims the Michael–Scott queue's nodes, under
//! the model too)
//! (`cargo xtask test` does).
#![cfg(loom)]

use conlab_core::ds::channel;
use conlab_core::ds::msqueue::MsQueue;
use conlab_core::ds::ring::Ring;
use conlab_core::ds::treiber::{Head, IndexStack};
use conlab_core::locks::mcs::McsLock;
use conlab_core::locks::parking::ParkingMutex;
use conlab_core::locks::process_lock::ProcessLock;
use conlab_core::locks::reader_rwlock::ReaderPreferringRwLock;
use conlab_core::locks::rwlock::RwLock;
use conlab_core::locks::seqlock::SeqLock;
use conlab_core::locks::tas::TasLock;
use conlab_core::locks::ticket::TicketLock;
use conlab_core::locks::ttas::TtasLock;
use conlab_core::locks::{Lock, Mutex, RawRwLock};
use conlab_core::platform::LocalWords;
use conlab_core::profile::board::StackBoard;
use conlab_core::profile::ThreadState;
use conlab_core::sched::deque::{deque, Steal, Stealer};
use conlab_core::sched::sleep::Sleep;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

fn model(preemptions: usize, test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(test);
}

/// `threads` threads (the main one included) each add 1 under the lock.
fn counts_exactly<L: Lock + 'static>(threads: usize, preemptions: usize) {
    model(preemptions, move || {
        let counter = Arc::new(Mutex::<L, usize>::new(0));
        let others: Vec<_> = (1..threads)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || counter.with(|n| *n += 1))
            })
            .collect();
        counter.with(|n| *n += 1);
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(counter.with(|n| *n), threads);
    });
}

// The pure spinlocks are checked with two threads. With three, two yielded spinners can keep
// handing the processor to each other, and loom's paths outgrow its branch budget (raising the
// budget ran past ten minutes). MCS waiters spin on their own node and parking waiters sleep:
// those two are checked with three threads.

#[test]
fn tas_excludes() {
    counts_exactly::<TasLock>(2, 3);
}

#[test]
fn ttas_excludes() {
    counts_exactly::<TtasLock>(2, 3);
}

#[test]
fn ticket_excludes() {
    counts_exactly::<TicketLock>(2, 3);
}

#[test]
fn mcs_excludes_and_hands_over() {
    counts_exactly::<McsLock>(3, 2);
}

#[test]
fn parking_mutex_excludes_and_never_loses_a_wake_up() {
    // Three threads: two can sleep at once, the case where the sleeper count and the WOKEN
    // flag must still get the second sleeper woken (the model's wake_one wakes exactly one).
    counts_exactly::<ParkingMutex>(3, 3);
}

/// A counter word incremented under a `ProcessLock` in the word before it.
struct Counted {
    words: LocalWords,
    count: UnsafeCell<usize>,
}

// SAFETY: `count` is touched only under the lock in `words`.
unsafe impl Sync for Counted {}

#[test]
fn process_lock_excludes_and_never_loses_a_wake_up() {
    // The parking mutex's protocol on a `Words` region, with three threads as there.
    model(3, || {
        let shared = Arc::new(Counted { words: LocalWords::new(1), count: UnsafeCell::new(0) });
        let add = |shared: &Counted| {
            // SAFETY: under the lock (loom reports two holders at once as a race).
            ProcessLock::new(&shared.words, 0).with(|| shared.count.with_mut(|n| unsafe { *n += 1 }))
        };
        let others: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || add(&shared))
            })
            .collect();
        add(&shared);
        for other in others {
            other.join().unwrap();
        }
        // SAFETY: every other thread has finished.
        assert_eq!(shared.count.with(|n| unsafe { *n }), 3);
    });
}

struct Guarded<L> {
    lock: L,
    pair: UnsafeCell<[u64; 2]>,
}

// SAFETY: `pair` is written only under the write lock and read only under a read lock.
unsafe impl<L: RawRwLock> Sync for Guarded<L> {}

/// Two readers and a writer on `L`: no reader sees a torn pair, and everyone finishes.
fn readers_and_a_writer_never_overlap_and_all_finish<L: RawRwLock + 'static>() {
    model(2, || {
        let guarded = Arc::new(Guarded { lock: L::default(), pair: UnsafeCell::new([0; 2]) });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let guarded = Arc::clone(&guarded);
                thread::spawn(move || {
                    guarded.lock.read(|| {
                        // SAFETY: a read lock is held.
                        let [a, b] = guarded.pair.with(|pair| unsafe { *pair });
                        assert_eq!(a, b);
                    })
                })
            })
            .collect();
        guarded.lock.write(|| {
            // SAFETY: the write lock is held.
            guarded.pair.with_mut(|pair| unsafe { *pair = [1, 1] })
        });
        for reader in readers {
            reader.join().unwrap();
        }
    });
}

/// Two writers on `L` exclude each other: both increments land.
fn two_writers_exclude<L: RawRwLock + 'static>() {
    model(3, || {
        let guarded = Arc::new(Guarded { lock: L::default(), pair: UnsafeCell::new([0; 2]) });
        let other = {
            let guarded = Arc::clone(&guarded);
            // SAFETY: the write lock is held.
            thread::spawn(move || guarded.lock.write(|| guarded.pair.with_mut(|pair| unsafe { (*pair)[0] += 1 })))
        };
        // SAFETY: the write lock is held.
        guarded.lock.write(|| guarded.pair.with_mut(|pair| unsafe { (*pair)[0] += 1 }));
        other.join().unwrap();
        // SAFETY: both writers have finished (joined).
        assert_eq!(guarded.pair.with(|pair| unsafe { (*pair)[0] }), 2);
    });
}

#[test]
fn rwlock_readers_and_a_writer_never_overlap_and_all_finish() {
    readers_and_a_writer_never_overlap_and_all_finish::<RwLock>();
}

#[test]
fn rwlock_two_writers_exclude() {
    two_writers_exclude::<RwLock>();
}

#[test]
fn reader_preferring_rwlock_readers_and_a_writer_never_overlap_and_all_finish() {
    readers_and_a_writer_never_overlap_and_all_finish::<ReaderPreferringRwLock>();
}

#[test]
fn reader_preferring_rwlock_two_writers_exclude() {
    two_writers_exclude::<ReaderPreferringRwLock>();
}

#[test]
fn seqlock_readers_see_whole_writes_only() {
    model(2, || {
        let lock = Arc::new(SeqLock::<2>::default());
        let writer = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || lock.write(|words| *words = [7, 7]))
        };
        let [a, b] = lock.read();
        assert!([a, b] == [0, 0] || [a, b] == [7, 7], "torn read {a} {b}");
        writer.join().unwrap();
        assert_eq!(lock.read(), [7, 7]);
    });
}

#[test]
fn a_published_stack_is_read_whole_or_not_at_all() {
    // The owner goes [0] → [0, 1] → [0, 2] (a pop and a push that reuse a slot): a reader that
    // gets a snapshot sees one of those, never the torn [0, 1]-then-2 mix or a wrong state.
    model(2, || {
        let board = Arc::new(StackBoard::default());
        board.push(0);
        let owner = {
            let board = Arc::clone(&board);
            thread::spawn(move || {
                board.push(1);
                board.pop();
                board.set_state(ThreadState::Gil);
                board.push(2);
            })
        };
        if let Some(snapshot) = board.read() {
            let seen = (snapshot.frames.as_slice(), snapshot.state);
            let real: [(&[u32], ThreadState); 5] = [
                (&[0], ThreadState::Running),
                (&[0, 1], ThreadState::Running),
                (&[0], ThreadState::Running),
                (&[0], ThreadState::Gil),
                (&[0, 2], ThreadState::Gil),
            ];
            assert!(real.contains(&seen), "torn: {seen:?}");
        }
        owner.join().unwrap();
        assert_eq!(board.read().map(|s| s.frames), Some(vec![0, 2]));
    });
}

/// Takes up to `attempts` tasks from `stealer`, yielding to the model on a lost race.
fn steal_some(stealer: &Stealer<u32>, attempts: usize) -> Vec<u32> {
    let mut taken = Vec::new();
    for _ in 0..attempts {
        match stealer.steal() {
            Steal::Success(task) => taken.push(task),
            Steal::Retry => thread::yield_now(),
            Steal::Empty => break,
        }
    }
    taken
}

#[test]
fn deque_owner_and_two_thieves_take_every_task_exactly_once() {
    model(2, || {
        let (worker, stealer) = deque::<u32>();
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let stealer = stealer.clone();
                thread::spawn(move || steal_some(&stealer, 2))
            })
            .collect();
        for task in [1, 2] {
            worker.push(task).unwrap();
        }
        let mut taken: Vec<u32> = std::iter::from_fn(|| worker.pop()).collect();
        for thief in thieves {
            taken.extend(thief.join().unwrap());
        }
        taken.sort_unstable();
        assert_eq!(taken, [1, 2], "a task was lost or taken twice");
    });
}

#[test]
fn deque_owner_and_thief_race_for_the_last_task() {
    model(3, || {
        let (worker, stealer) = deque::<u32>();
        worker.push(7).unwrap();
        let thief = thread::spawn(move || steal_some(&stealer, 1));
        let mine = worker.pop();
        let theirs = thief.join().unwrap();
        assert_eq!(usize::from(mine.is_some()) + theirs.len(), 1, "mine {mine:?}, theirs {theirs:?}");
    });
}

#[test]
fn sleep_never_loses_the_wake_up_for_published_work() {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    // Two workers each need one item; the publisher adds two, waking one sleeper per item. A
    // lost wake-up leaves a worker parked forever: a deadlock loom reports.
    model(2, || {
        let sleep = Arc::new(Sleep::new(2));
        let items = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|index| {
                let (sleep, items) = (Arc::clone(&sleep), Arc::clone(&items));
                thread::spawn(move || loop {
                    let available = items.load(Ordering::SeqCst);
                    if available > 0 {
                        if items.compare_exchange(available, available - 1, Ordering::SeqCst, Ordering::SeqCst).is_ok()
                        {
                            return;
                        }
                        continue;
                    }
                    sleep.sleep(index, || items.load(Ordering::SeqCst) > 0);
                })
            })
            .collect();
        for _ in 0..2 {
            items.fetch_add(1, Ordering::SeqCst);
            sleep.wake_one();
        }
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

#[test]
fn sleep_a_targeted_wake_reaches_the_latch_waiter() {
    use loom::sync::atomic::{AtomicBool, Ordering};
    model(3, || {
        let sleep = Arc::new(Sleep::new(2));
        let latch = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (sleep, latch) = (Arc::clone(&sleep), Arc::clone(&latch));
            thread::spawn(move || {
                while !latch.load(Ordering::SeqCst) {
                    sleep.sleep(1, || latch.load(Ordering::SeqCst));
                }
            })
        };
        latch.store(true, Ordering::SeqCst);
        sleep.wake(1);
        waiter.join().unwrap();
    });
}

/// Pops until `count` values are in hand, yielding to the model while the ring is empty.
fn pop_n(ring: &Ring<u32>, count: usize) -> Vec<u32> {
    let mut taken = Vec::new();
    while taken.len() < count {
        match ring.pop() {
            Some(value) => taken.push(value),
            None => thread::yield_now(),
        }
    }
    taken
}

#[test]
fn ring_two_producers_and_a_consumer_lose_and_duplicate_nothing() {
    model(2, || {
        let ring = Arc::new(Ring::new(2));
        let producers: Vec<_> = [1, 2]
            .map(|value| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || ring.push(value).unwrap())
            })
            .into();
        let mut taken = pop_n(&ring, 2);
        producers.into_iter().for_each(|p| p.join().unwrap());
        taken.sort_unstable();
        assert_eq!(taken, [1, 2]);
    });
}

#[test]
fn ring_wraps_around_a_full_queue_in_order() {
    // Capacity 2, three values: the third push succeeds only once the consumer freed a slot,
    // and a lap's value is never read before it is written (loom's cell checks the race).
    model(2, || {
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                for value in [1, 2, 3] {
                    while ring.push(value).is_err() {
                        thread::yield_now();
                    }
                }
            })
        };
        let taken = pop_n(&ring, 3);
        producer.join().unwrap();
        assert_eq!(taken, [1, 2, 3], "one producer's values come out in order");
    });
}

#[test]
fn msqueue_a_pop_racing_a_push_takes_the_value_once_or_finds_the_queue_empty() {
    // The popped value is read through loom's cell: with a Relaxed load of `next` the pop could
    // read it before the push's write, and loom reports the race (verified by weakening it).
    // crossbeam-epoch runs on loom's atomics here too (`--cfg crossbeam_loom`), so the pins and
    // the deferred free of the old sentinel are part of every explored interleaving.
    model(2, || {
        let queue = Arc::new(MsQueue::new());
        let consumer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.pop())
        };
        queue.push(1u32);
        let popped = consumer.join().unwrap();
        let left = queue.pop();
        assert_eq!(popped.into_iter().chain(left).collect::<Vec<_>>(), [1], "the value, exactly once");
        assert_eq!(queue.pop(), None);
    });
}

#[test]
fn msqueue_two_pops_race_for_one_value() {
    model(2, || {
        let queue = Arc::new(MsQueue::new());
        queue.push(7u32);
        let thief = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.pop())
        };
        let mine = queue.pop();
        let theirs = thief.join().unwrap();
        assert_eq!(mine.into_iter().chain(theirs).collect::<Vec<_>>(), [7], "exactly one pop wins the head CAS");
    });
}

#[test]
fn msqueue_two_pushes_race_and_both_land_in_order_of_linking() {
    model(2, || {
        let queue = Arc::new(MsQueue::new());
        let producer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.push(1u32))
        };
        queue.push(2);
        producer.join().unwrap();
        let mut taken = vec![queue.pop().unwrap(), queue.pop().unwrap()];
        assert_eq!(queue.pop(), None);
        taken.sort_unstable();
        assert_eq!(taken, [1, 2], "a lagging tail is helped forward, no push is lost");
    });
}

/// With `Head::Untagged` loom finds the ABA interleaving here (a node lost or duplicated).
#[test]
fn treiber_tagged_stack_keeps_every_node_through_concurrent_pops_and_pushes() {
    model(2, || {
        let stack = Arc::new(IndexStack::full(3, Head::Tagged));
        let churners: Vec<_> = (0..2)
            .map(|_| {
                let stack = Arc::clone(&stack);
                thread::spawn(move || {
                    let first = stack.pop();
                    let second = stack.pop();
                    for node in [first, second].into_iter().flatten() {
                        stack.push(node);
                    }
                })
            })
            .collect();
        churners.into_iter().for_each(|c| c.join().unwrap());
        let mut nodes = stack.nodes();
        nodes.sort_unstable();
        assert_eq!(nodes, [0, 1, 2], "a node was lost or duplicated");
    });
}

#[test]
fn channel_blocks_both_ways_without_losing_a_wake_up() {
    // Capacity 2, three items: the sender parks on a full channel, the receiver on an empty
    // one; a lost wake-up leaves one parked forever, which loom reports as a deadlock.
    model(2, || {
        let (sender, receiver) = channel::bounded::<u32>(2);
        let producer = thread::spawn(move || {
            for value in [1, 2, 3] {
                sender.send(value).unwrap();
            }
        });
        let got: Vec<u32> = std::iter::from_fn(|| receiver.recv().ok()).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn rlock_reenters_for_its_owner_excludes_others_and_never_loses_a_wake_up() {
    use conlab_core::prims::RLock;
    model(2, || {
        let rlock = Arc::new(RLock::new());
        let data = Arc::new(UnsafeCell::new(0usize));
        let add = |rlock: &RLock, data: &UnsafeCell<usize>| {
            assert!(rlock.acquire(None) && rlock.acquire(None));
            // SAFETY: the RLock is held (twice) by this thread: no other thread touches `data`.
            data.with_mut(|value| unsafe { *value += 1 });
            rlock.release().unwrap();
            rlock.release().unwrap();
        };
        let (other_lock, other_data) = (Arc::clone(&rlock), Arc::clone(&data));
        let other = thread::spawn(move || add(&other_lock, &other_data));
        add(&rlock, &data);
        other.join().unwrap();
        // SAFETY: both threads are done; this is the only access left.
        assert_eq!(data.with(|value| unsafe { *value }), 2);
    });
}

#[test]
fn bounded_queue_hands_every_item_over_once_under_backpressure() {
    use conlab_core::prims::{Order, Queue};
    model(2, || {
        let queue = Arc::new(Queue::new(1, Order::Fifo));
        let producer = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                queue.put(1, None).unwrap();
                queue.put(2, None).unwrap();
            })
        };
        assert_eq!((queue.get(None), queue.get(None)), (Ok(1), Ok(2)));
        producer.join().unwrap();
    });
}

#[test]
fn plain_lock_excludes_and_hands_over_on_release() {
    use conlab_core::prims::Lock;
    model(2, || {
        let plain = Arc::new(Lock::new());
        let data = Arc::new(UnsafeCell::new(0usize));
        let add = |plain: &Lock, data: &UnsafeCell<usize>| {
            assert!(plain.acquire(None));
            // SAFETY: the lock is held by this thread: no other thread touches `data`.
            data.with_mut(|value| unsafe { *value += 1 });
            plain.release().unwrap();
        };
        let (other_lock, other_data) = (Arc::clone(&plain), Arc::clone(&data));
        let other = thread::spawn(move || add(&other_lock, &other_data));
        add(&plain, &data);
        other.join().unwrap();
        // SAFETY: both threads are done; this is the only access left.
        assert_eq!(data.with(|value| unsafe { *value }), 2);
        assert!(!plain.locked());
    });
}

#[test]
fn event_set_wakes_a_waiter_in_every_interleaving() {
    use conlab_core::prims::Event;
    model(2, || {
        let event = Arc::new(Event::new());
        let setter = {
            let event = Arc::clone(&event);
            thread::spawn(move || event.set())
        };
        assert!(event.wait(None), "a set before, during or after the wait: never a lost wake-up");
        setter.join().unwrap();
    });
}

#[test]
fn semaphore_admits_its_count_and_a_release_wakes_a_waiting_acquirer() {
    use conlab_core::prims::Semaphore;
    model(2, || {
        // One permit: a mutex. Two acquirers exclude each other, and the second, asleep while
        // the first holds it, is woken by the release (or loom reports the deadlock).
        let semaphore = Arc::new(Semaphore::new(1));
        let data = Arc::new(UnsafeCell::new(0usize));
        let add = |semaphore: &Semaphore, data: &UnsafeCell<usize>| {
            assert!(semaphore.acquire(None));
            // SAFETY: the one permit is held by this thread: no other thread touches `data`.
            data.with_mut(|value| unsafe { *value += 1 });
            semaphore.release(1);
        };
        let (other_semaphore, other_data) = (Arc::clone(&semaphore), Arc::clone(&data));
        let other = thread::spawn(move || add(&other_semaphore, &other_data));
        add(&semaphore, &data);
        other.join().unwrap();
        // SAFETY: both threads are done; this is the only access left.
        assert_eq!(data.with(|value| unsafe { *value }), 2);
        assert_eq!(semaphore.value(), 1);
    });
}

#[test]
fn bounded_semaphore_wakes_its_waiter_and_refuses_a_release_past_its_count() {
    use conlab_core::prims::{BoundedSemaphore, PrimError};
    model(2, || {
        let semaphore = Arc::new(BoundedSemaphore::new(1));
        assert!(semaphore.acquire(None));
        let waiter = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || {
                assert!(semaphore.acquire(None), "woken by the release");
                semaphore.release().unwrap();
            })
        };
        semaphore.release().unwrap();
        waiter.join().unwrap();
        assert_eq!((semaphore.value(), semaphore.release()), (1, Err(PrimError::OverReleased)));
    });
}

#[test]
fn condition_wait_for_never_misses_a_notify_in_any_interleaving() {
    use conlab_core::prims::Condition;
    model(2, || {
        let condition = Arc::new(Condition::new(0usize));
        let producer = {
            let condition = Arc::clone(&condition);
            thread::spawn(move || {
                *condition.lock() += 1;
                condition.notify();
            })
        };
        // The predicate is checked under the lock before every wait: a notify that came
        // first is not lost (it left the value changed).
        let mut guard = condition.lock();
        assert!(guard.wait_for(None, |items| *items == 1));
        drop(guard);
        producer.join().unwrap();
    });
}

#[test]
fn barrier_releases_every_party_once_per_phase_with_its_action_run_once() {
    use conlab_core::prims::Barrier;
    model(2, || {
        let actions = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&actions);
        let barrier = Arc::new(Barrier::with_action(2, move || {
            counted.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
        }));
        let other = {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || barrier.wait(None).unwrap())
        };
        let mine = barrier.wait(None).unwrap();
        let theirs = other.join().unwrap();
        // One first and one last arrival; the last ran the action before anyone left.
        assert_eq!(mine + theirs, 1);
        assert_eq!(actions.load(loom::sync::atomic::Ordering::Relaxed), 1);
    });
}
