//! `prims`: the semantics of each `threading` primitive on real threads, its error cases, and
//! stress (nothing lost, nothing duplicated, nobody left waiting).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conlab_core::platform::{run_team, Instant};
use conlab_core::prims::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, Order, PrimError, Queue, RLock, Semaphore,
};

const SHORT: Option<Duration> = Some(Duration::from_millis(20));

#[test]
fn an_rlock_is_reentrant_for_its_owner_and_refuses_everyone_else() {
    let rlock = RLock::new();
    assert!(rlock.acquire(None) && rlock.acquire(None), "the owner takes it twice");
    assert_eq!(rlock.depth(), 2);
    run_team(2, |member| {
        if member.index == 1 {
            assert!(!rlock.acquire(SHORT), "held by the other thread: a timeout, not a hang");
            assert_eq!(rlock.release(), Err(PrimError::NotOwner));
        }
    })
    .unwrap();
    assert_eq!((rlock.release(), rlock.release(), rlock.depth()), (Ok(()), Ok(()), 0));
    assert_eq!(rlock.release(), Err(PrimError::NotOwner), "released once too often");
}

#[test]
fn a_plain_lock_self_deadlocks_its_holder_until_the_timeout_and_any_thread_may_release_it() {
    let plain = Lock::new();
    assert_eq!(plain.release(), Err(PrimError::Unlocked));
    assert!(plain.acquire(None) && plain.locked());
    let asked = Instant::now();
    assert!(!plain.acquire(SHORT), "the holder waits for itself: a timeout, not a second acquisition");
    assert!(asked.elapsed() >= Duration::from_millis(20));
    run_team(1, |_| assert_eq!(plain.release(), Ok(()), "no owner: another thread may release it")).unwrap();
    assert!(!plain.locked() && plain.acquire(SHORT));
}

#[test]
fn a_semaphore_caps_concurrency_and_a_bounded_one_refuses_over_release() {
    let semaphore = Semaphore::new(2);
    let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    run_team(4, |_| {
        for _ in 0..200 {
            assert!(semaphore.acquire(None));
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            inside.fetch_sub(1, Ordering::SeqCst);
            semaphore.release(1);
        }
    })
    .unwrap();
    assert!(most.load(Ordering::SeqCst) <= 2, "at most k inside");
    assert_eq!(semaphore.value(), 2);
    assert!(semaphore.acquire(None) && semaphore.acquire(None) && !semaphore.acquire(SHORT));

    let bounded = BoundedSemaphore::new(1);
    assert_eq!(bounded.release(), Err(PrimError::OverReleased));
    assert!(bounded.acquire(None));
    assert_eq!((bounded.release(), bounded.value()), (Ok(()), 1));
}

#[test]
fn an_event_releases_every_waiter_at_once_and_times_out_while_clear() {
    let event = Event::new();
    assert!(!event.wait(SHORT));
    let released = AtomicUsize::new(0);
    run_team(4, |member| {
        if member.index == 0 {
            conlab_core::platform::sleep(Duration::from_millis(10));
            event.set();
        } else if event.wait(Some(Duration::from_secs(10))) {
            released.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!(released.load(Ordering::SeqCst), 3);
    assert!(event.is_set() && event.wait(None));
    event.clear();
    assert!(!event.is_set());
}

#[test]
fn an_event_pulse_releases_the_threads_already_waiting_and_no_later_one() {
    let event = Event::new();
    let (waiting, released) = (AtomicUsize::new(0), AtomicUsize::new(0));
    run_team(4, |member| {
        if member.index == 0 {
            while waiting.load(Ordering::SeqCst) < 3 {
                std::thread::yield_now();
            }
            // Past the count, each is a lock and a condvar wait away from sleeping.
            conlab_core::platform::sleep(Duration::from_millis(50));
            event.set();
            event.clear();
        } else {
            waiting.fetch_add(1, Ordering::SeqCst);
            if event.wait(Some(Duration::from_secs(10))) {
                released.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    assert_eq!(released.load(Ordering::SeqCst), 3, "set() then clear() still releases everyone who was waiting");
    assert!(!event.wait(SHORT), "a thread arriving after the clear misses the pulse");
}

#[test]
fn a_condition_hands_items_from_producers_to_consumers_with_wait_for() {
    let buffer = Condition::new(Vec::<u64>::new());
    let taken = AtomicUsize::new(0);
    let sum = AtomicUsize::new(0);
    run_team(4, |member| {
        if member.index < 2 {
            for i in 0..500 {
                buffer.lock().push(i);
                buffer.notify();
            }
        } else {
            loop {
                let mut items = buffer.lock();
                if taken.load(Ordering::SeqCst) >= 1000 {
                    break;
                }
                if !items.wait_for(Some(Duration::from_millis(50)), |items| !items.is_empty()) {
                    continue;
                }
                let item = items.pop().unwrap();
                taken.fetch_add(1, Ordering::SeqCst);
                sum.fetch_add(item as usize, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    assert_eq!((taken.load(Ordering::SeqCst), sum.load(Ordering::SeqCst)), (1000, 2 * 499 * 500 / 2), "each item once");
    let mut guard = buffer.lock();
    assert!(!guard.wait(SHORT), "nobody notifies: a timeout");
}

#[test]
fn a_barrier_separates_phases_runs_its_action_and_breaks_on_abort_or_timeout() {
    let actions = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&actions);
    let barrier = Barrier::with_action(3, move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let phase_done = AtomicUsize::new(0);
    run_team(3, |_| {
        for phase in 0..50 {
            phase_done.fetch_add(1, Ordering::SeqCst);
            barrier.wait(None).unwrap();
            assert!(
                phase_done.load(Ordering::SeqCst) >= 3 * (phase + 1),
                "nobody starts a phase before all finished the last"
            );
            barrier.wait(None).unwrap();
        }
    })
    .unwrap();
    assert_eq!(actions.load(Ordering::SeqCst), 100, "the action once per round");

    let lonely = Barrier::new(2);
    let started = Instant::now();
    assert_eq!(lonely.wait(SHORT), Err(PrimError::BrokenBarrier), "a timeout breaks it");
    assert!(started.elapsed() < Duration::from_secs(5) && lonely.broken());
    assert_eq!(lonely.wait(None), Err(PrimError::BrokenBarrier), "and it stays broken");
    lonely.reset();
    let aborted = Barrier::new(3);
    let outcomes = std::sync::Mutex::new(Vec::new());
    run_team(3, |member| {
        if member.index == 2 {
            conlab_core::platform::sleep(Duration::from_millis(10));
            aborted.abort();
        } else {
            outcomes.lock().unwrap().push(aborted.wait(Some(Duration::from_secs(10))));
        }
    })
    .unwrap();
    assert_eq!(outcomes.into_inner().unwrap(), [Err(PrimError::BrokenBarrier); 2]);
}

#[test]
fn queues_apply_backpressure_order_items_and_join_waits_for_task_done() {
    let items: u32 = if cfg!(miri) { 200 } else { 2000 };
    let queue = Queue::new(4, Order::Fifo);
    let received = std::sync::Mutex::new(Vec::new());
    run_team(3, |member| {
        if member.index == 0 {
            for i in 0..items {
                queue.put(i, None).unwrap();
                assert!(queue.qsize() <= 4, "never past maxsize");
            }
            assert!(queue.join(Some(Duration::from_secs(30))), "join returns once all are done");
        } else {
            while let Ok(item) = queue.get(Some(Duration::from_millis(200))) {
                received.lock().unwrap().push(item);
                queue.task_done().unwrap();
            }
        }
    })
    .unwrap();
    let mut received = received.into_inner().unwrap();
    received.sort_unstable();
    assert_eq!(received, (0..items).collect::<Vec<_>>(), "each item exactly once");
    assert_eq!(queue.task_done(), Err(PrimError::TooManyTaskDone));
    assert_eq!(queue.get(SHORT), Err(PrimError::Empty));

    let full = Queue::new(1, Order::Fifo);
    full.put(1, None).unwrap();
    assert_eq!(full.put(2, SHORT), Err(PrimError::Full));
    assert!(!full.join(SHORT), "an item not yet done");
    assert_eq!((full.get(None), full.unfinished()), (Ok(1), 1), "taken is not done");
    full.task_done().unwrap();
    assert!(full.unfinished() == 0 && full.join(SHORT));

    for (order, expected) in [(Order::Fifo, [3, 1, 2]), (Order::Lifo, [2, 1, 3]), (Order::Priority, [1, 2, 3])] {
        let queue = Queue::new(0, order);
        [3, 1, 2].into_iter().for_each(|i| queue.put(i, None).unwrap());
        let out: Vec<i32> = (0..3).map(|_| queue.get(None).unwrap()).collect();
        assert_eq!(out, expected, "{order:?}");
    }
}

#[test]
fn locks_and_events_hold_up_under_stress() {
    use std::sync::atomic::AtomicU64;
    // Under Miri a hundredth of the rounds: the full stress takes it minutes.
    const ROUNDS: u64 = if cfg!(miri) { 50 } else { 5_000 };
    const EVENT_ROUNDS: usize = if cfg!(miri) { 20 } else { 500 };
    // A read-then-write counter: only mutual exclusion keeps every increment.
    let bump = |counter: &AtomicU64| counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    let (rlock, plain) = (RLock::new(), Lock::new());
    let (under_rlock, under_lock) = (AtomicU64::new(0), AtomicU64::new(0));
    run_team(4, |_| {
        for _ in 0..ROUNDS {
            assert!(rlock.acquire(None) && rlock.acquire(None) && rlock.acquire(None));
            bump(&under_rlock);
            (0..3).for_each(|_| rlock.release().unwrap());
            assert!(plain.acquire(None));
            bump(&under_lock);
            plain.release().unwrap();
        }
    })
    .unwrap();
    assert_eq!((under_rlock.into_inner(), under_lock.into_inner()), (4 * ROUNDS, 4 * ROUNDS));
    assert_eq!((rlock.depth(), plain.locked()), (0, false));

    // Rounds of set → every waiter wakes → clear: no wake-up lost.
    let (event, rounds, woken) = (Event::new(), Barrier::new(4), AtomicUsize::new(0));
    run_team(4, |member| {
        for _ in 0..EVENT_ROUNDS {
            rounds.wait(Some(Duration::from_secs(30))).unwrap();
            if member.index == 0 {
                event.set();
            } else if event.wait(Some(Duration::from_secs(30))) {
                woken.fetch_add(1, Ordering::SeqCst);
            }
            rounds.wait(Some(Duration::from_secs(30))).unwrap();
            if member.index == 0 {
                event.clear();
            }
        }
    })
    .unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 3 * EVENT_ROUNDS);
}
