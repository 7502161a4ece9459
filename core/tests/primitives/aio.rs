//! The event loop against asyncio's documented behaviour, on the virtual clock (exact times) and
//! the real one.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use conlab_core::aio::prims::{Barrier, Condition, Event, Lock, Queue, Semaphore};
use conlab_core::aio::{
    as_completed, gather, gather_settled, monitor_lag, now, shield, sleep, spawn, spawn_named, to_thread, wait,
    wait_for, yield_now, AioError, AioResult, EventLoop, JoinHandle, RealClock, ReturnWhen, TaskGroup, VirtualClock,
};
use conlab_core::trace::{lane_name, Recorder, SpanKind, TASK_LANE};

fn run_virtual<T: 'static>(main: impl Future<Output = AioResult<T>> + 'static) -> AioResult<T> {
    EventLoop::new(VirtualClock::new(), false).run(main, &Recorder::new(false), &|| true)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Loop time in µs, for exact comparisons.
fn micros() -> u128 {
    now().as_micros()
}

#[test]
fn sequential_awaits_add_up_and_gather_overlaps() {
    // The books' example: sleeps of 2.0, 1.5 and 2.5 s.
    let sequential = run_virtual(async {
        for s in [2.0, 1.5, 2.5] {
            sleep(secs(s)).await?;
        }
        Ok(micros())
    });
    assert_eq!(sequential, Ok(6_000_000));
    let gathered = run_virtual(async {
        let tasks = [2.0, 1.5, 2.5].map(|s| spawn(async move { sleep(secs(s)).await.map(|()| s) }));
        let values = gather(tasks.into()).await?;
        Ok((values, micros()))
    });
    assert_eq!(gathered, Ok((vec![2.0, 1.5, 2.5], 2_500_000)));
}

#[test]
fn a_semaphore_lets_tasks_through_in_waves() {
    // Semaphore(2) over five 1.5 s tasks: ⌈5/2⌉ · 1.5 = 4.5 s (not the 3.75 s a book prints).
    let starts = run_virtual(async {
        let semaphore = Semaphore::new(2);
        let starts = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let (semaphore, starts) = (semaphore.clone(), Rc::clone(&starts));
                spawn(async move {
                    let _permit = semaphore.acquire().await?;
                    starts.borrow_mut().push((i, micros()));
                    sleep(secs(1.5)).await
                })
            })
            .collect();
        gather(tasks).await?;
        assert_eq!(micros(), 4_500_000);
        Ok(starts.take())
    });
    assert_eq!(starts, Ok(vec![(0, 0), (1, 0), (2, 1_500_000), (3, 1_500_000), (4, 3_000_000)]));
}

#[test]
fn gather_raises_the_first_exception_and_settled_returns_them_all() {
    let failing = |after: f64, message: &'static str| async move {
        sleep(secs(after)).await?;
        Err::<u32, _>(AioError::Raised(message.into()))
    };
    let first = run_virtual(async move {
        let ok = spawn(async { sleep(secs(3.0)).await.map(|()| 1) });
        let outcome = gather(vec![ok, spawn(failing(2.0, "late")), spawn(failing(1.0, "early"))]).await;
        Ok((outcome, micros()))
    });
    assert_eq!(first, Ok((Err(AioError::Raised("early".into())), 1_000_000)));
    let settled = run_virtual(async move {
        let ok = spawn(async { sleep(secs(3.0)).await.map(|()| 1) });
        gather_settled(vec![ok, spawn(failing(1.0, "boom"))]).await
    });
    assert_eq!(settled, Ok(vec![Ok(1), Err(AioError::Raised("boom".into()))]));
}

#[test]
fn wait_returns_done_and_pending_without_cancelling() {
    let outcome = run_virtual(async {
        let tasks: Vec<_> = [1.0, 2.0, 3.0].map(|s| spawn(async move { sleep(secs(s)).await })).into();
        let first = wait(&tasks, ReturnWhen::FirstCompleted, None).await?;
        let at_first = micros();
        let timed = wait(&tasks, ReturnWhen::AllCompleted, Some(secs(0.5))).await?;
        let at_timeout = micros();
        let all = wait(&tasks, ReturnWhen::AllCompleted, None).await?;
        Ok((first.done, at_first, timed.done, at_timeout, all.pending.len(), micros()))
    });
    assert_eq!(outcome, Ok((vec![0], 1_000_000, vec![0], 1_500_000, 0, 3_000_000)));
    let first_exception = run_virtual(async {
        let tasks = vec![
            spawn(async { sleep(secs(3.0)).await }),
            spawn(async {
                sleep(secs(1.0)).await?;
                Err(AioError::Raised("x".into()))
            }),
        ];
        let waited = wait(&tasks, ReturnWhen::FirstException, None).await?;
        Ok((waited.done, micros()))
    });
    assert_eq!(first_exception, Ok((vec![1], 1_000_000)));
}

#[test]
fn as_completed_yields_in_finishing_order_then_times_out() {
    let order = run_virtual(async {
        let tasks: Vec<_> =
            [3.0, 1.0, 2.0, 10.0].map(|s| spawn(async move { sleep(secs(s)).await.map(|()| s) })).into();
        let mut completed = as_completed(tasks, Some(secs(5.0)));
        let mut order = Vec::new();
        while let Some(next) = completed.next().await {
            match next {
                Ok((index, value)) => order.push((index, value?, micros())),
                Err(error) => {
                    assert_eq!(error, AioError::TimedOut);
                    assert_eq!(micros(), 5_000_000);
                    break;
                }
            }
        }
        Ok(order)
    });
    assert_eq!(order, Ok(vec![(1, 1.0, 1_000_000), (2, 2.0, 2_000_000), (0, 3.0, 3_000_000)]));
}

#[test]
fn cancellation_arrives_at_the_next_await_and_may_clean_up() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&log);
    let outcome = run_virtual(async move {
        let log = Rc::clone(&seen);
        let worker = spawn(async move {
            log.borrow_mut().push(format!("start {}", micros()));
            match sleep(secs(10.0)).await {
                Err(AioError::Cancelled) => {
                    // Clean-up may await; then the cancellation propagates.
                    sleep(secs(0.25)).await?;
                    log.borrow_mut().push(format!("cleaned up {}", micros()));
                    Err(AioError::Cancelled)
                }
                other => other,
            }
        });
        sleep(secs(1.0)).await?;
        assert!(worker.cancel());
        let result = worker.await;
        Ok((result, micros()))
    });
    assert_eq!(outcome, Ok((Err(AioError::Cancelled), 1_250_000)));
    assert_eq!(*log.borrow(), ["start 0", "cleaned up 1250000"]);
}

#[test]
fn a_task_cancelled_before_it_starts_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let flag = Rc::clone(&ran);
    let outcome = run_virtual(async move {
        let task = spawn(async move {
            flag.set(true);
            Ok(())
        });
        task.cancel();
        let cancelled = task.cancelled();
        let result = task.await;
        Ok((cancelled, result))
    });
    assert_eq!(outcome, Ok((false, Err(AioError::Cancelled))));
    assert!(!ran.get());
}

#[test]
fn wait_for_cancels_on_timeout_and_shield_protects() {
    let finished = Rc::new(Cell::new(0u128));
    let done = Rc::clone(&finished);
    let outcome = run_virtual(async move {
        let timed_out = wait_for(async { sleep(secs(5.0)).await }, secs(1.0)).await;
        let at = micros();
        let in_time = wait_for(async { sleep(secs(0.5)).await.map(|()| 7) }, secs(1.0)).await;
        // A shielded task survives the timeout that cancels its waiter.
        let shielded = wait_for(
            shield(async move {
                sleep(secs(2.0)).await?;
                done.set(micros());
                Ok(())
            }),
            secs(0.5),
        )
        .await;
        sleep(secs(5.0)).await?;
        Ok((timed_out, at, in_time, shielded))
    });
    assert_eq!(outcome, Ok((Err(AioError::TimedOut), 1_000_000, Ok(7), Err(AioError::TimedOut))));
    assert_eq!(finished.get(), 1_500_000 + 2_000_000, "the shielded sleep finished after its waiter gave up");
}

#[test]
fn a_failing_task_group_cancels_its_siblings_and_raises_all_failures() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&log);
    let outcome = run_virtual(async move {
        let result = TaskGroup::run(|tg| {
            let log = Rc::clone(&seen);
            async move {
                let sibling_log = Rc::clone(&log);
                tg.spawn(async move {
                    let slept = sleep(secs(10.0)).await;
                    sibling_log.borrow_mut().push(format!("sibling {slept:?} at {}", micros()));
                    slept
                });
                tg.spawn(async {
                    sleep(secs(1.0)).await?;
                    Err::<(), _>(AioError::Raised("ValueError".into()))
                });
                // Cancelled by the first failure, it fails again while cleaning up.
                tg.spawn(async {
                    match sleep(secs(5.0)).await {
                        Err(AioError::Cancelled) => Err::<(), _>(AioError::Raised("KeyError".into())),
                        other => other,
                    }
                });
                let body = sleep(secs(20.0)).await;
                log.borrow_mut().push(format!("body {body:?} at {}", micros()));
                body
            }
        })
        .await;
        Ok((result, micros()))
    });
    let errors = vec![AioError::Raised("ValueError".into()), AioError::Raised("KeyError".into())];
    assert_eq!(outcome, Ok((Err(AioError::Group(errors)), 1_000_000)));
    // asyncio's order: the group cancels the remaining tasks first, then the body.
    assert_eq!(*log.borrow(), ["sibling Err(Cancelled) at 1000000", "body Err(Cancelled) at 1000000"]);
    let fine = run_virtual(async {
        TaskGroup::run(|tg| async move {
            let a = tg.spawn(async { sleep(secs(1.0)).await.map(|()| 1) });
            let b = tg.spawn(async { sleep(secs(2.0)).await.map(|()| 2) });
            Ok((a, b))
        })
        .await
        .map(|(mut a, mut b)| (a.take_result(), b.take_result(), micros()))
    });
    assert_eq!(fine, Ok((Some(Ok(1)), Some(Ok(2)), 2_000_000)), "the group waits for its tasks");
}

#[test]
fn a_bounded_queue_applies_backpressure_and_join_waits_for_task_done() {
    let outcome = run_virtual(async {
        let queue = Rc::new(Queue::new(2));
        let producer = {
            let queue = Rc::clone(&queue);
            spawn(async move {
                let mut put_at = Vec::new();
                for item in 0..5 {
                    queue.put(item).await?;
                    put_at.push(micros());
                }
                Ok(put_at)
            })
        };
        let consumer = {
            let queue = Rc::clone(&queue);
            spawn(async move {
                let mut got = Vec::new();
                for _ in 0..5 {
                    let item = queue.get().await?;
                    sleep(secs(1.0)).await?;
                    got.push(item);
                    queue.task_done()?;
                }
                Ok(got)
            })
        };
        let put_at = producer.await?;
        queue.join().await?;
        let joined_at = micros();
        Ok((put_at, consumer.await?, joined_at, queue.task_done()))
    });
    let too_many = Err(AioError::Raised("ValueError: task_done() called too many times".into()));
    // The queue holds 2: items 0-2 go in at once (0 is taken at once), then one per second.
    assert_eq!(outcome, Ok((vec![0, 0, 0, 1_000_000, 2_000_000], vec![0, 1, 2, 3, 4], 5_000_000, too_many)));
    let nowait = run_virtual(async {
        let queue = Queue::new(1);
        queue.put_nowait(1)?;
        Ok((queue.put_nowait(2), queue.get_nowait(), queue.get_nowait()))
    });
    assert_eq!(
        nowait,
        Ok((Err(AioError::Raised("QueueFull".into())), Ok(1), Err(AioError::Raised("QueueEmpty".into()))))
    );
}

#[test]
fn event_condition_lock_and_barrier_behave_like_asyncio() {
    let outcome = run_virtual(async {
        // An Event releases every waiter at once.
        let event = Event::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let event = event.clone();
                spawn(async move { event.wait().await.map(|()| micros()) })
            })
            .collect();
        sleep(secs(1.0)).await?;
        event.set();
        let released = gather(waiters).await?;

        // A Lock serialises; FIFO order.
        let lock = Lock::new();
        let order = Rc::new(RefCell::new(Vec::new()));
        let holders: Vec<_> = (0..3)
            .map(|i| {
                let (lock, order) = (lock.clone(), Rc::clone(&order));
                spawn(async move {
                    let _guard = lock.acquire().await?;
                    order.borrow_mut().push((i, micros()));
                    sleep(secs(0.5)).await
                })
            })
            .collect();
        gather(holders).await?;

        // A Condition: the consumer waits for the predicate with the lock released.
        let condition = Condition::new(Lock::new());
        let items = Rc::new(Cell::new(0));
        let consumer = {
            let (condition, items) = (condition.clone(), Rc::clone(&items));
            spawn(async move {
                let guard = condition.lock().acquire().await?;
                let _guard = condition.wait_for(guard, || items.get() >= 2).await?;
                Ok(micros())
            })
        };
        for _ in 0..2 {
            sleep(secs(1.0)).await?;
            let _guard = condition.lock().acquire().await?;
            items.set(items.get() + 1);
            condition.notify_all();
        }
        let consumed_at = consumer.await?;

        // A Barrier lets the party through together; abort breaks it.
        let barrier = Barrier::new(3);
        let party: Vec<_> = [0.5, 1.0, 1.5]
            .map(|s| {
                let barrier = barrier.clone();
                spawn(async move {
                    sleep(secs(s)).await?;
                    barrier.wait().await?;
                    Ok(micros())
                })
            })
            .into();
        let passed = gather(party).await?;
        let stuck = {
            let barrier = barrier.clone();
            spawn(async move { barrier.wait().await })
        };
        yield_now().await?;
        barrier.abort();
        Ok((released, order.take(), consumed_at, passed, stuck.await))
    });
    let (released, order, consumed_at, passed, stuck) = outcome.unwrap();
    assert_eq!(released, [1_000_000; 3]);
    assert_eq!(order, [(0, 1_000_000), (1, 1_500_000), (2, 2_000_000)]);
    assert_eq!(consumed_at, 4_500_000, "after the second notify (two 1 s steps after 2.5 s)");
    assert_eq!(passed, [6_000_000; 3], "everyone leaves when the last (1.5 s after 4.5 s) arrives");
    assert_eq!(stuck, Err(AioError::Raised("BrokenBarrierError".into())));
}

#[test]
fn a_bounded_semaphore_refuses_to_overflow() {
    let outcome = run_virtual(async {
        let semaphore = Semaphore::bounded(1);
        let permit = semaphore.acquire().await?;
        let in_use = semaphore.value();
        drop(permit);
        Ok((in_use, semaphore.value(), semaphore.release()))
    });
    assert_eq!(
        outcome,
        Ok((0, 1, Err(AioError::Raised("ValueError: BoundedSemaphore released too many times".into()))))
    );
}

#[test]
fn a_stalled_loop_reports_who_waits_instead_of_hanging() {
    let outcome = run_virtual(async {
        let event = Event::new();
        spawn_named("waiter", async move { event.wait().await });
        let never = Event::new();
        never.wait().await
    });
    let Err(AioError::Stalled(why)) = outcome else { panic!("{outcome:?}") };
    assert!(why.contains("waiter waits on Event.wait") && why.contains("main waits on Event.wait"), "{why}");
}

#[test]
fn the_run_stops_when_asked_from_outside() {
    let polls = Cell::new(0);
    let keep_going = || {
        polls.set(polls.get() + 1);
        polls.get() < 3
    };
    let outcome = EventLoop::new(RealClock::new(), false).run(
        async { sleep(secs(60.0)).await },
        &Recorder::new(false),
        &keep_going,
    );
    assert_eq!(outcome, Err(AioError::Stopped));
}

#[test]
#[cfg_attr(miri, ignore = "counts heartbeats against the real clock, and Miri's clock is virtual")]
fn the_real_clock_sleeps_for_real_and_to_thread_keeps_the_loop_responsive() {
    let start = conlab_core::platform::Instant::now();
    let outcome = EventLoop::new(RealClock::new(), false).run_with_threads(
        2,
        async {
            let stop = Rc::new(Cell::new(false));
            let lag = spawn(monitor_lag(Duration::from_millis(5), Rc::clone(&stop)));
            // Blocking work on a thread: the heartbeat keeps beating meanwhile.
            let value = to_thread(|| {
                conlab_core::platform::sleep(Duration::from_millis(100));
                42
            })
            .await?;
            stop.set(true);
            let lag = lag.await?;
            Ok((value, lag.count(), lag.quantile(0.5)))
        },
        &Recorder::new(false),
        &|| true,
    );
    let (value, beats, median_lag) = outcome.unwrap().unwrap();
    assert_eq!(value, 42);
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(beats >= 8, "the heartbeat ran during the blocking call: {beats} beats");
    assert!(median_lag < 20_000_000, "median lag {median_lag} ns");
}

#[test]
fn each_task_gets_a_timeline_lane_with_its_waits() {
    let recorder = Recorder::new(true);
    EventLoop::new(VirtualClock::new(), true)
        .run(
            async {
                let task = spawn_named("fetch", async { sleep(secs(2.0)).await });
                task.await
            },
            &recorder,
            &|| true,
        )
        .unwrap();
    let spans = recorder.take();
    let waits: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Wait)
        .map(|s| (lane_name(s.thread), s.label.to_string(), s.end_ns - s.start_ns))
        .collect();
    assert!(waits.contains(&("Task-2".to_string(), "sleep 2.00 s".to_string(), 2_000_000_000)), "{waits:?}");
    assert!(waits.contains(&("Task-1".to_string(), "await fetch".to_string(), 2_000_000_000)), "{waits:?}");
    assert!(spans.iter().any(|s| s.thread == TASK_LANE + 2 && s.kind == SpanKind::Mark && s.label == "done"));
}

/// Tasks that each hold `lock` for `hold` seconds after arriving at `arrive` seconds; returns
/// (task, acquired at µs) in acquisition order and the most tasks ever inside at once.
fn contend(lock: &Lock, arrivals: &[f64], hold: f64) -> Vec<JoinHandle<(usize, u128)>> {
    let inside = Rc::new(Cell::new(0usize));
    arrivals
        .iter()
        .enumerate()
        .map(|(task, &arrive)| {
            let (lock, inside) = (lock.clone(), Rc::clone(&inside));
            spawn(async move {
                sleep(secs(arrive)).await?;
                let _guard = lock.acquire().await?;
                inside.set(inside.get() + 1);
                assert_eq!(inside.get(), 1, "two tasks inside the lock");
                let at = micros();
                sleep(secs(hold)).await?;
                inside.set(inside.get() - 1);
                Ok((task, at))
            })
        })
        .collect()
}

#[test]
fn lock_contract_one_holder_fifo_hand_off_and_a_cancelled_heir_passes_it_on() {
    let outcome = run_virtual(async {
        // One holder at a time, in arrival order (1 s each; arrivals 0, 0.1, 0.2 s).
        let lock = Lock::new();
        let order = gather(contend(&lock, &[0.0, 0.1, 0.2], 1.0)).await?;
        let free_after = lock.locked();
        // No barging: the lock is handed to the first waiter on release, so a task arriving
        // just as it is released queues behind the waiters (asyncio's fairness).
        let held = lock.acquire().await?;
        let turns = Rc::new(RefCell::new(Vec::new()));
        let waiter = {
            let (lock, turns) = (lock.clone(), Rc::clone(&turns));
            spawn(async move { lock.acquire().await.map(|_guard| turns.borrow_mut().push("waiter")) })
        };
        yield_now().await?;
        drop(held);
        let locked_during_hand_off = lock.locked();
        lock.acquire().await.map(|_guard| turns.borrow_mut().push("newcomer"))?;
        waiter.await?;
        let fair = *turns.borrow() == ["waiter", "newcomer"];
        // A waiter cancelled after the lock was handed to it passes it on: nothing is stuck.
        let held = lock.acquire().await?;
        let heir = {
            let lock = lock.clone();
            spawn(async move { lock.acquire().await.map(drop) })
        };
        let next = {
            let lock = lock.clone();
            spawn(async move { lock.acquire().await.map(|_guard| micros()) })
        };
        yield_now().await?;
        drop(held);
        heir.cancel();
        let next_at = next.await?;
        Ok((order, free_after, locked_during_hand_off, fair, heir.await, next_at, lock.locked()))
    });
    let (order, free_after, handed, fair, heir, next_at, locked_at_end) = outcome.unwrap();
    assert_eq!(order, [(0, 0), (1, 1_000_000), (2, 2_000_000)]);
    assert!(!free_after && handed && fair, "free after, held through the hand-off, the waiter first");
    assert_eq!((heir, next_at, locked_at_end), (Err(AioError::Cancelled), 3_000_000, false));
}

#[test]
fn event_contract_set_releases_every_waiter_and_stays_set_until_cleared() {
    let outcome = run_virtual(async {
        let event = Event::new();
        let waiter = |event: &Event| {
            let event = event.clone();
            spawn(async move { event.wait().await.map(|()| micros()) })
        };
        let early: Vec<_> = (0..3).map(|_| waiter(&event)).collect();
        sleep(secs(1.0)).await?;
        let before = event.is_set();
        event.set();
        let released = gather(early).await?;
        // Set stays set: a later wait returns at once, without suspending.
        let late = waiter(&event).await?;
        // Cleared, a wait suspends again until the next set.
        event.clear();
        let after_clear = waiter(&event);
        sleep(secs(2.0)).await?;
        let still_waiting = !after_clear.done();
        event.set();
        Ok((before, released, late, still_waiting, after_clear.await?))
    });
    assert_eq!(outcome, Ok((false, vec![1_000_000; 3], 1_000_000, true, 3_000_000)));
}

#[test]
fn semaphore_contract_at_most_k_inside_and_released_permits_go_to_waiters_first() {
    let outcome = run_virtual(async {
        let semaphore = Semaphore::new(2);
        let inside = Rc::new(Cell::new(0usize));
        let most = Rc::new(Cell::new(0usize));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let (semaphore, inside, most) = (semaphore.clone(), Rc::clone(&inside), Rc::clone(&most));
                spawn(async move {
                    let _permit = semaphore.acquire().await?;
                    inside.set(inside.get() + 1);
                    most.set(most.get().max(inside.get()));
                    sleep(secs(1.0)).await?;
                    inside.set(inside.get() - 1);
                    Ok(micros())
                })
            })
            .collect();
        yield_now().await?;
        let (free, waiting) = (semaphore.value(), semaphore.waiting());
        let finished = gather(tasks).await?;
        // An unbounded semaphore counts a release nobody acquired; a bounded one refuses it.
        semaphore.release()?;
        let raised = semaphore.value();
        // A waiter cancelled after a permit was handed to it passes the permit on.
        let one = Semaphore::new(1);
        let held = one.acquire().await?;
        let heir = {
            let one = one.clone();
            spawn(async move { one.acquire().await.map(drop) })
        };
        yield_now().await?;
        drop(held);
        heir.cancel();
        let _ = heir.await;
        Ok((most.get(), free, waiting, finished, raised, one.value()))
    });
    let (most, free, waiting, finished, raised, passed_on) = outcome.unwrap();
    assert_eq!((most, free, waiting), (2, 0, 3));
    assert_eq!(finished, [1_000_000, 1_000_000, 2_000_000, 2_000_000, 3_000_000], "⌈5 / 2⌉ waves of 1 s");
    assert_eq!((raised, passed_on), (3, 1));
}

#[test]
fn condition_contract_wait_releases_the_lock_notify_wakes_n_and_woken_tasks_hold_it_again() {
    let outcome = run_virtual(async {
        let condition = Condition::new(Lock::new());
        let woken = Rc::new(RefCell::new(Vec::new()));
        let waiters: Vec<_> = (0..3)
            .map(|task| {
                let (condition, woken) = (condition.clone(), Rc::clone(&woken));
                spawn(async move {
                    let guard = condition.lock().acquire().await?;
                    let guard = condition.wait(guard).await?;
                    // The lock is held again when wait returns.
                    let holds = condition.lock().locked();
                    woken.borrow_mut().push((task, micros(), holds));
                    sleep(secs(0.5)).await?;
                    drop(guard);
                    Ok(())
                })
            })
            .collect();
        yield_now().await?;
        // All three wait with the lock released: the notifier can take it.
        let guard = condition.lock().acquire().await?;
        condition.notify(1);
        drop(guard);
        sleep(secs(1.0)).await?;
        let after_one = woken.borrow().len();
        let guard = condition.lock().acquire().await?;
        condition.notify_all();
        drop(guard);
        gather(waiters).await?;
        // wait_for re-checks its predicate after each wake-up and returns only once it holds.
        let items = Rc::new(Cell::new(0));
        let consumer = {
            let (condition, items) = (condition.clone(), Rc::clone(&items));
            spawn(async move {
                let guard = condition.lock().acquire().await?;
                condition.wait_for(guard, || items.get() >= 3).await.map(|_guard| micros())
            })
        };
        for _ in 0..3 {
            sleep(secs(1.0)).await?;
            let _guard = condition.lock().acquire().await?;
            items.set(items.get() + 1);
            condition.notify_all();
        }
        Ok((after_one, woken.take(), consumer.await?))
    });
    let (after_one, woken, consumed_at) = outcome.unwrap();
    assert_eq!(after_one, 1, "notify(1) wakes one");
    // The other two wake at 1 s, one after the other, each holding the lock for 0.5 s.
    assert_eq!(woken, [(0, 0, true), (1, 1_000_000, true), (2, 1_500_000, true)]);
    assert_eq!(consumed_at, 2_000_000 + 3_000_000, "the third item, three 1 s steps after 2 s");
}

#[test]
fn barrier_contract_phases_pass_together_a_cancelled_party_leaves_and_abort_breaks_it() {
    let outcome = run_virtual(async {
        let barrier = Barrier::new(3);
        // Three parties, three phases; party i takes i + 1 seconds a phase.
        let parties: Vec<_> = (0..3)
            .map(|party| {
                let barrier = barrier.clone();
                spawn(async move {
                    let mut passes = Vec::new();
                    for _ in 0..3 {
                        sleep(secs(party as f64 + 1.0)).await?;
                        let index = barrier.wait().await?;
                        passes.push((index, micros()));
                    }
                    Ok(passes)
                })
            })
            .collect();
        sleep(secs(2.5)).await?;
        let waiting_mid_phase = barrier.n_waiting();
        let passes = gather(parties).await?;
        // A party cancelled while it waits (a wait_for timeout) just leaves, as in CPython 3.11:
        // the barrier is not broken and waits for another arrival in its place.
        let waiter = |barrier: &Barrier| {
            let barrier = barrier.clone();
            spawn(async move { barrier.wait().await.map(|index| (index, micros())) })
        };
        let (leaver, stayer) = (waiter(&barrier), waiter(&barrier));
        yield_now().await?;
        leaver.cancel();
        let left = leaver.await;
        let after_leaving = (barrier.broken(), barrier.n_waiting());
        sleep(secs(1.0)).await?;
        let (newcomer, third) = (waiter(&barrier), waiter(&barrier));
        let phase = (stayer.await?, newcomer.await?, third.await?);
        // abort() breaks it for those waiting and those still to come.
        let stuck = waiter(&barrier);
        yield_now().await?;
        barrier.abort();
        Ok((waiting_mid_phase, passes, left, after_leaving, phase, stuck.await, barrier.wait().await))
    });
    let (waiting, passes, left, after_leaving, phase, stuck, later) = outcome.unwrap();
    assert_eq!(waiting, 2, "at 2.5 s the 1 s and 2 s parties wait for the 3 s one");
    // Each phase ends when the slowest (3 s) party arrives: at 3, 6 and 9 s, for everyone, and
    // the slowest is always the last to arrive (index 2).
    for (party, phases) in passes.iter().enumerate() {
        let times: Vec<u128> = phases.iter().map(|&(_, at)| at).collect();
        assert_eq!(times, [3_000_000, 6_000_000, 9_000_000], "party {party}");
    }
    assert!(passes[2].iter().all(|&(index, _)| index == 2), "{passes:?}");
    assert_eq!((left, after_leaving), (Err(AioError::Cancelled), (false, 1)), "left, not broken");
    // Indices count the parties waiting at arrival: the stayer came second (1), and so does the
    // newcomer once the leaver is gone — CPython 3.11 prints `1 1 2` for the same sequence.
    assert_eq!(phase, ((1, 10_000_000), (1, 10_000_000), (2, 10_000_000)), "the next two complete the phase");
    let broken_error = Err(AioError::Raised("BrokenBarrierError".into()));
    assert_eq!((stuck.map(|(index, _)| index), later), (broken_error.clone(), broken_error));
}
