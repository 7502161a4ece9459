//! One client of a [`Downstream`], composing the patterns: a timeout per attempt, retries on a
//! [`Backoff`] schedule, a [`RetryBudget`], a [`CircuitBreaker`], hedged requests, and
//! deadline propagation — in this order for each attempt:
//!
//! 1. a retry asks the budget for a token (none: the request fails with its last failure),
//!    then sleeps its backoff — unless the request's own deadline would pass first;
//! 2. the breaker lets the attempt through or fails it fast;
//! 3. the attempt waits its timeout or what is left of the request's deadline, whichever is
//!    shorter, and, when propagating, carries that deadline downstream (gRPC's remaining
//!    budget); with hedging, a second copy
//!    goes when no answer has come `after` the first (Dean & Barroso, "The Tail at Scale",
//!    CACM 2013) — the first success wins and, when `cancel_loser`, the other copy is
//!    cancelled in the service;
//! 4. no answer within the timeout: the client stops waiting, and the service — unless the
//!    request carried its deadline — still serves it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::backoff::Backoff;
use super::breaker::{BreakerSpec, BreakerState, CircuitBreaker};
use super::budget::RetryBudget;
use super::downstream::{Answer, Downstream, Reply};
use super::{Rng, Slices};
use crate::aio::{now, sleep, wait_for, AioError, AioResult};
use crate::stats::LogHistogram;

/// A second copy of an attempt after `after` without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hedge {
    pub after: Duration,
    pub cancel_loser: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// Attempts per request, the first included (≥ 1).
    pub attempts: u32,
    pub backoff: Backoff,
    /// (ratio, burst) of a [`RetryBudget`].
    pub budget: Option<(f64, f64)>,
    pub breaker: Option<BreakerSpec>,
    pub hedge: Option<Hedge>,
    /// The whole request's budget, retries and backoffs included (`None`: attempts × timeout
    /// and the backoffs, however long they take).
    pub deadline: Option<Duration>,
    /// Each attempt carries its deadline to the service, which drops it once passed.
    pub propagate_deadline: bool,
    pub seed: u64,
    /// The width of the time series' slices.
    pub slice: Duration,
}

/// Why a request failed: its last attempt's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    TimedOut,
    Error,
    Rejected,
    Shed,
    /// The breaker was open.
    FailedFast,
}

/// What the client saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientStats {
    pub requests: u64,
    pub successes: u64,
    /// Attempts sent (first attempts, retries and hedges), by send time.
    pub sent: Slices,
    pub retries: Slices,
    pub hedges: u64,
    /// Retries the budget refused.
    pub retries_denied: u64,
    /// Requests, and those that succeeded, by the time each request started.
    pub started: Slices,
    pub succeeded: Slices,
    /// Failed requests by their last failure.
    pub failures: Vec<(Failure, u64)>,
    /// Request latency in ns, from start to the final answer, for successes and failures.
    pub success_latency: LogHistogram,
    pub failure_latency: LogHistogram,
    /// The breaker's transitions, when it has one.
    pub breaker: Vec<(Duration, BreakerState)>,
}

impl ClientStats {
    pub fn failed(&self, failure: Failure) -> u64 {
        self.failures.iter().find(|(kind, _)| *kind == failure).map_or(0, |(_, n)| *n)
    }
}

/// A handle to one client; clones share it (its budget, breaker and counts).
#[derive(Clone)]
pub struct Client(Rc<Shared>);

struct Shared {
    spec: ClientSpec,
    downstream: Downstream,
    rng: RefCell<Rng>,
    budget: RefCell<Option<RetryBudget>>,
    breaker: RefCell<Option<CircuitBreaker>>,
    stats: RefCell<ClientStats>,
}

impl Client {
    pub fn new(spec: ClientSpec, downstream: Downstream) -> Self {
        let spec = ClientSpec { attempts: spec.attempts.max(1), ..spec };
        let stats = ClientStats {
            requests: 0,
            successes: 0,
            sent: Slices::new(spec.slice),
            retries: Slices::new(spec.slice),
            hedges: 0,
            retries_denied: 0,
            started: Slices::new(spec.slice),
            succeeded: Slices::new(spec.slice),
            failures: Vec::new(),
            success_latency: LogHistogram::default(),
            failure_latency: LogHistogram::default(),
            breaker: Vec::new(),
        };
        Self(Rc::new(Shared {
            rng: RefCell::new(Rng::new(spec.seed)),
            budget: RefCell::new(spec.budget.map(|(ratio, burst)| RetryBudget::new(ratio, burst))),
            breaker: RefCell::new(spec.breaker.map(CircuitBreaker::new)),
            stats: RefCell::new(stats),
            downstream,
            spec,
        }))
    }

    pub fn stats(&self) -> ClientStats {
        let mut stats = self.0.stats.borrow().clone();
        if let Some(breaker) = self.0.breaker.borrow().as_ref() {
            stats.breaker = breaker.transitions().to_vec();
        }
        stats
    }

    /// One request, with every retry it takes: `Ok(Ok(()))` when it succeeded.
    pub async fn request(self) -> AioResult<Result<(), Failure>> {
        let shared = &self.0;
        let start = now();
        {
            let mut stats = shared.stats.borrow_mut();
            stats.requests += 1;
            stats.started.add(start);
        }
        if let Some(budget) = shared.budget.borrow_mut().as_mut() {
            budget.deposit();
        }
        let mut previous = shared.spec.backoff.base;
        let mut failure = Failure::Error;
        let ends = shared.spec.deadline.map(|deadline| start + deadline);
        let left = || ends.map_or(Duration::MAX, |ends| ends.saturating_sub(now()));
        for attempt in 1..=shared.spec.attempts {
            if attempt > 1 {
                previous = shared.spec.backoff.delay(attempt - 1, previous, &mut shared.rng.borrow_mut());
                if previous >= left() {
                    break;
                }
                if !shared.budget.borrow_mut().as_mut().is_none_or(RetryBudget::withdraw) {
                    shared.stats.borrow_mut().retries_denied += 1;
                    break;
                }
                sleep(previous).await?;
                shared.stats.borrow_mut().retries.add(now());
            }
            let ticket = match shared.breaker.borrow_mut().as_mut().map(|breaker| breaker.allow(now())) {
                Some(None) => {
                    failure = Failure::FailedFast;
                    break;
                }
                Some(ticket) => ticket,
                None => None,
            };
            let answer = self.attempt(shared.spec.timeout.min(left())).await?;
            if let (Some(ticket), Some(breaker)) = (ticket, shared.breaker.borrow_mut().as_mut()) {
                breaker.record(ticket, now(), answer.is_ok());
            }
            match answer {
                Ok(()) => {
                    let mut stats = shared.stats.borrow_mut();
                    stats.successes += 1;
                    stats.succeeded.add(start);
                    stats.success_latency.record((now() - start).as_nanos() as u64);
                    return Ok(Ok(()));
                }
                Err(why) => failure = why,
            }
        }
        let mut stats = shared.stats.borrow_mut();
        stats.failure_latency.record((now() - start).as_nanos() as u64);
        match stats.failures.iter_mut().find(|(kind, _)| *kind == failure) {
            Some((_, n)) => *n += 1,
            None => stats.failures.push((failure, 1)),
        }
        Ok(Err(failure))
    }

    /// One attempt (with its hedge) waiting up to `timeout`: the service's answer, or `TimedOut`.
    async fn attempt(&self, timeout: Duration) -> AioResult<Result<(), Failure>> {
        let shared = &self.0;
        let deadline = shared.spec.propagate_deadline.then(|| now() + timeout);
        let reply = Reply::new();
        let send = || {
            shared.stats.borrow_mut().sent.add(now());
            shared.downstream.call(&reply, deadline)
        };
        let mut copies = vec![send()];
        let answered = match shared.spec.hedge {
            Some(hedge) if hedge.after < timeout => {
                if answered_within(&reply, hedge.after).await? {
                    true
                } else {
                    shared.stats.borrow_mut().hedges += 1;
                    copies.push(send());
                    answered_within(&reply, timeout - hedge.after).await?
                }
            }
            _ => answered_within(&reply, timeout).await?,
        };
        if !answered {
            reply.abandon();
            return Ok(Err(Failure::TimedOut));
        }
        if shared.spec.hedge.is_some_and(|hedge| hedge.cancel_loser) {
            // The winner's job has left the service already: cancelling it is a no-op.
            copies.into_iter().for_each(|copy| shared.downstream.cancel(copy));
        }
        Ok(match reply.answer() {
            Some(Answer::Ok) => Ok(()),
            Some(Answer::Rejected) => Err(Failure::Rejected),
            Some(Answer::Shed) => Err(Failure::Shed),
            Some(Answer::Error) | None => Err(Failure::Error),
        })
    }
}

/// Whether `reply` settles within `within`.
async fn answered_within(reply: &Rc<Reply>, within: Duration) -> AioResult<bool> {
    if reply.answer().is_some() {
        return Ok(true);
    }
    match wait_for(Rc::clone(reply).settled(), within).await {
        Ok(()) => Ok(true),
        Err(AioError::TimedOut) => Ok(false),
        Err(other) => Err(other),
    }
}
