//! The resilience patterns on the virtual clock, where every time is exact: a service's
//! queueing and outage, the client's retry schedule, timeout, budget, breaker and hedge, and
//! the micro-batcher's flushes.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use conlab_core::aio::{gather, now, sleep, spawn, AioResult, EventLoop, RealClock, VirtualClock};
use conlab_core::resil::admission::Admission;
use conlab_core::resil::backoff::{Backoff, Schedule};
use conlab_core::resil::batcher::{Batcher, BatcherSpec, Flush, Flushed};
use conlab_core::resil::breaker::{BreakerSpec, BreakerState};
use conlab_core::resil::client::{Client, ClientSpec, Failure, Hedge};
use conlab_core::resil::downstream::{Answer, Downstream, DownstreamSpec, Reply};
use conlab_core::resil::LogNormal;
use conlab_core::trace::Recorder;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn run_virtual<T: 'static>(main: impl Future<Output = AioResult<T>> + 'static) -> T {
    EventLoop::new(VirtualClock::new(), false).run(main, &Recorder::new(false), &|| true).unwrap()
}

/// A service whose every request takes exactly `latency_ms`.
fn service(workers: usize, latency_ms: u64, error_rate: f64, admission: Admission) -> Downstream {
    Downstream::new(spec(workers, latency_ms, error_rate, admission))
}

fn spec(workers: usize, latency_ms: u64, error_rate: f64, admission: Admission) -> DownstreamSpec {
    DownstreamSpec {
        workers,
        latency: LogNormal::from_median_p99(MS(latency_ms), MS(latency_ms)),
        error_rate,
        outage: None,
        admission,
        seed: 1,
        slice: MS(1),
    }
}

fn client(timeout_ms: u64, attempts: u32, backoff: Backoff) -> ClientSpec {
    ClientSpec {
        timeout: MS(timeout_ms),
        attempts,
        backoff,
        budget: None,
        breaker: None,
        hedge: None,
        deadline: None,
        propagate_deadline: false,
        seed: 2,
        slice: MS(1),
    }
}

/// Sends one request to `downstream` at each of `at_ms` and returns (answer, answered at ms).
fn calls(downstream: Downstream, at_ms: Vec<u64>, deadline_ms: Option<u64>) -> Vec<(Option<Answer>, u128)> {
    run_virtual(async move {
        let tasks = at_ms.into_iter().map(|at| {
            let downstream = downstream.clone();
            spawn(async move {
                sleep(MS(at)).await?;
                let reply = Reply::new();
                downstream.call(&reply, deadline_ms.map(|ms| now() + MS(ms)));
                Rc::clone(&reply).settled().await?;
                Ok((reply.answer(), now().as_millis()))
            })
        });
        gather(tasks.collect()).await
    })
}

#[test]
fn requests_beyond_the_workers_queue_and_are_served_in_turn() {
    let answers = calls(service(2, 10, 0.0, Admission::Unbounded), vec![0, 0, 0, 0, 1], None);
    let times: Vec<u128> = answers.iter().map(|(_, at)| *at).collect();
    assert_eq!(times, [10, 10, 20, 20, 30]);
    assert!(answers.iter().all(|(answer, _)| *answer == Some(Answer::Ok)));
}

#[test]
fn a_bounded_queue_rejects_at_once_and_a_passed_deadline_is_shed_unserved() {
    let bounded = calls(service(1, 10, 0.0, Admission::Bounded(1)), vec![0, 0, 0], None);
    assert_eq!(bounded, [(Some(Answer::Ok), 10), (Some(Answer::Ok), 20), (Some(Answer::Rejected), 0)]);
    let downstream = service(1, 10, 0.0, Admission::Unbounded);
    let with_deadlines = calls(downstream.clone(), vec![0, 0, 0], Some(15));
    // The second starts at 10 ms and would end at 20, past its 15 ms deadline: abandoned at 15;
    // the third's turn comes at 15 ms, its deadline: dropped unserved.
    assert_eq!(with_deadlines, [(Some(Answer::Ok), 10), (Some(Answer::Shed), 15), (Some(Answer::Shed), 15)]);
    let stats = downstream.stats();
    assert_eq!((stats.served.total(), stats.shed, stats.longest_queue), (1, 2, 2));
}

#[test]
fn every_request_that_starts_in_the_outage_fails_after_its_service_time() {
    let downstream = Downstream::new(DownstreamSpec {
        outage: Some((MS(10), MS(30))),
        slice: MS(10),
        ..spec(1, 10, 0.0, Admission::Unbounded)
    });
    let answers = calls(downstream.clone(), vec![0, 0, 0, 0], None);
    let expected = [(Answer::Ok, 10), (Answer::Error, 20), (Answer::Error, 30), (Answer::Ok, 40)];
    assert_eq!(answers, expected.map(|(answer, at)| (Some(answer), at)));
    assert_eq!(downstream.stats().succeeded.counts(), &[0, 1, 0, 0, 1]);
}

#[test]
fn retries_follow_the_backoff_schedule_after_each_failure() {
    let downstream = service(4, 10, 1.0, Admission::Unbounded);
    let exponential = Backoff { schedule: Schedule::Exponential, base: MS(10), cap: MS(1000) };
    let client = Client::new(client(100, 4, exponential), downstream.clone());
    let handle = client.clone();
    let outcome = run_virtual(async move { handle.request().await });
    assert_eq!(outcome, Err(Failure::Error));
    // Sent at 0; fails at 10, waits 10: sent at 20; fails at 30, waits 20: 50; fails at 60, waits 40: 100.
    let sent = client.stats().sent;
    let at: Vec<usize> = (0..sent.counts().len()).filter(|&ms| sent.at(ms) > 0).collect();
    assert_eq!(at, [0, 20, 50, 100]);
    let stats = client.stats();
    assert_eq!((stats.requests, stats.retries.total(), stats.failed(Failure::Error)), (1, 3, 1));
    assert_eq!(stats.failure_latency.max(), MS(110).as_nanos() as u64);
}

#[test]
fn a_timed_out_attempt_is_still_served_unless_it_carried_its_deadline() {
    // With deadlines the service gives up at the client's deadline too: the first is abandoned
    // in service at 20 ms, the second dropped unserved, and the clients hear so at 20 ms.
    let (late, dropped) = (Err(Failure::TimedOut), Err(Failure::Shed));
    for (propagate, outcome, wasted, shed) in [(false, late, 2, 0), (true, dropped, 0, 2)] {
        // One worker, 30 ms per request, a 20 ms timeout: the second request waits behind the first.
        let downstream = service(1, 30, 0.0, Admission::Unbounded);
        let spec = ClientSpec { propagate_deadline: propagate, ..client(20, 1, Backoff::IMMEDIATE) };
        let client = Client::new(spec, downstream.clone());
        let (first, second) = (client.clone(), client.clone());
        let outcomes = run_virtual(async move {
            let tasks = vec![spawn(first.request()), spawn(second.request())];
            let outcomes = gather(tasks).await?;
            sleep(MS(100)).await?;
            Ok(outcomes)
        });
        assert_eq!(outcomes, [outcome, outcome]);
        let stats = downstream.stats();
        assert_eq!((stats.wasted, stats.shed), (wasted, shed), "propagating the deadline: {propagate}");
    }
}

#[test]
fn the_request_deadline_bounds_the_retries_and_the_last_attempt_gets_what_is_left() {
    // 30 ms a request that always fails, immediate retries, a 50 ms timeout, 100 ms in all.
    let downstream = service(4, 30, 1.0, Admission::Unbounded);
    let spec = ClientSpec { deadline: Some(MS(100)), propagate_deadline: true, ..client(50, 10, Backoff::IMMEDIATE) };
    let client = Client::new(spec, downstream.clone());
    let handle = client.clone();
    let (outcome, ended) = run_virtual(async move {
        let outcome = handle.request().await?;
        Ok((outcome, now().as_millis()))
    });
    // Attempts at 0, 30 and 60 ms fail at 30, 60, 90; the fourth gets the 10 ms left, and the
    // service, told so, gives up at 100 ms.
    assert_eq!((outcome, ended), (Err(Failure::Shed), 100));
    let stats = client.stats();
    assert_eq!((stats.sent.total(), stats.retries.total()), (4, 3));
    assert_eq!((downstream.stats().served.total(), downstream.stats().shed), (3, 1));
}

#[test]
fn the_budget_bounds_retries_and_the_breaker_fails_fast_once_open() {
    let downstream = service(4, 10, 1.0, Admission::Unbounded);
    let spec = ClientSpec { budget: Some((0.1, 0.0)), ..client(100, 4, Backoff::IMMEDIATE) };
    let budgeted = Client::new(spec, downstream.clone());
    let handle = budgeted.clone();
    run_virtual(async move {
        for _ in 0..20 {
            handle.clone().request().await?.unwrap_err();
        }
        Ok(())
    });
    let stats = budgeted.stats();
    // Twenty requests earned two retries; each request wanted three, and stopped at its first refusal.
    assert_eq!((stats.sent.total(), stats.retries.total(), stats.retries_denied), (22, 2, 20));

    let breaker = BreakerSpec { threshold: 3, cooldown: MS(50), probes: 1 };
    let spec = ClientSpec { breaker: Some(breaker), ..client(100, 1, Backoff::IMMEDIATE) };
    let guarded = Client::new(spec, downstream.clone());
    let handle = guarded.clone();
    let outcomes = run_virtual(async move {
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            outcomes.push(handle.clone().request().await?);
        }
        sleep(MS(50)).await?;
        outcomes.push(handle.clone().request().await?);
        Ok(outcomes)
    });
    let failures: Vec<Failure> = outcomes.into_iter().map(Result::unwrap_err).collect();
    use Failure::{Error, FailedFast};
    assert_eq!(failures, [Error, Error, Error, FailedFast, FailedFast, Error], "the probe at 80 ms goes and fails");
    let stats = guarded.stats();
    assert_eq!(
        stats.breaker,
        [(MS(30), BreakerState::Open), (MS(80), BreakerState::HalfOpen), (MS(90), BreakerState::Open)]
    );
}

#[test]
fn a_hedge_goes_after_its_delay_and_the_loser_is_cancelled_or_served() {
    for (cancel_loser, served, cancelled) in [(true, 1, 1), (false, 2, 0)] {
        let downstream = service(2, 30, 0.0, Admission::Unbounded);
        let hedge = Hedge { after: MS(10), cancel_loser };
        let spec = ClientSpec { hedge: Some(hedge), ..client(100, 1, Backoff::IMMEDIATE) };
        let client = Client::new(spec, downstream.clone());
        let handle = client.clone();
        let answered = run_virtual(async move {
            handle.request().await?.unwrap();
            let answered = now().as_millis();
            sleep(MS(100)).await?;
            Ok(answered)
        });
        assert_eq!(answered, 30, "the first copy wins");
        assert_eq!(client.stats().hedges, 1);
        let stats = downstream.stats();
        assert_eq!((stats.served.total(), stats.cancelled), (served, cancelled), "cancel the loser: {cancel_loser}");
    }
}

#[test]
fn a_batch_leaves_when_full_or_when_its_first_item_has_waited_max_wait() {
    let spec = BatcherSpec { max_size: 3, max_wait: MS(10), fixed: MS(5), per_item: MS(1) };
    let batcher = Batcher::new(spec);
    let handle = batcher.clone();
    let done = run_virtual(async move {
        let tasks = [0, 1, 2, 20, 25].map(|at| {
            let batcher = handle.clone();
            spawn(async move {
                sleep(MS(at)).await?;
                batcher.submit().await?;
                Ok(now().as_millis())
            })
        });
        gather(Vec::from(tasks)).await
    });
    let flushes = batcher.flushes();
    let expected =
        [Flush { at: MS(2), size: 3, why: Flushed::Full }, Flush { at: MS(30), size: 2, why: Flushed::Timer }];
    assert_eq!(flushes, expected);
    // 2 + 5 + 3·1 = 10; 30 + 5 + 2·1 = 37.
    assert_eq!(done, [10, 10, 10, 37, 37]);
    assert!((spec.capacity() - 375.0).abs() < 1e-9, "3 items per 8 ms");
}

#[test]
fn batches_queue_behind_a_busy_worker() {
    let spec = BatcherSpec { max_size: 2, max_wait: MS(100), fixed: MS(10), per_item: MS(0) };
    let batcher = Batcher::new(spec);
    let handle = batcher.clone();
    let done = run_virtual(async move {
        let tasks = (0..6).map(|_| {
            let batcher = handle.clone();
            spawn(async move {
                batcher.submit().await?;
                Ok(now().as_millis())
            })
        });
        gather(tasks.collect()).await
    });
    assert_eq!(done, [10, 10, 20, 20, 30, 30]);
    assert!(batcher.flushes().iter().all(|flush| flush.at == MS(0) && flush.why == Flushed::Full));
}

/// Clients that failed together retry together unless jitter spreads them (Brooker, "Exponential
/// Backoff and Jitter"): 200 requests fail at the same instant, on the real clock, and each
/// retries three times — the busiest 10 ms holds a whole round of exponential retries, and a
/// small share of full-jitter ones.
#[test]
fn on_the_real_clock_full_jitter_spreads_retries_that_exponential_backoff_keeps_in_step() {
    let busiest_window = |schedule| {
        let downstream = Downstream::new(spec(1000, 5, 1.0, Admission::Unbounded));
        let backoff = Backoff { schedule, base: MS(100), cap: MS(1000) };
        let client = Client::new(client(1000, 4, backoff), downstream);
        let sender = client.clone();
        EventLoop::new(RealClock::new(), false)
            .run(
                async move { gather((0..200).map(|_| spawn(sender.clone().request())).collect()).await },
                &Recorder::new(false),
                &|| true,
            )
            .unwrap();
        let retries = client.stats().retries;
        let counts = retries.counts();
        let busiest = counts.windows(10.min(counts.len())).map(|window| window.iter().sum::<u64>()).max().unwrap_or(0);
        assert_eq!(retries.total(), 600);
        busiest as f64 / 600.0
    };
    let in_step = busiest_window(Schedule::Exponential);
    let spread = busiest_window(Schedule::FullJitter);
    println!(
        "the busiest 10 ms held {in_step:.3} of the retries with exponential backoff, {spread:.3} with full jitter"
    );
    assert!(in_step >= 0.25, "exponential: the busiest 10 ms held {in_step:.3} of the retries");
    assert!(spread <= 0.12, "full jitter: the busiest 10 ms held {spread:.3} of the retries");
}
