//! `prim-semaphore`: `Semaphore(k)` caps how many threads are inside at once — counted, not
//! assumed — and what one extra `release()` does to a plain and to a bounded semaphore.

use std::time::Duration;

use super::prim_gallery::{blocking, millis, patiently, team, timeout, timeout_param, work};
use crate::experiment::{
    run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::prims::{BoundedSemaphore, PrimError, Semaphore};
use conlab_core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use conlab_core::trace::{Lane, SpanKind};

pub struct PrimSemaphore;

impl Experiment for PrimSemaphore {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-semaphore",
            title: "Semaphore(k): at most k connections at once — and the permit released twice",
            topic: super::NAME,
            concept: "threading.Semaphore / BoundedSemaphore as a connection limit",
            teaches:
                "Each worker opens `requests` \"connections\" of `hold_ms`, inside `with semaphore:`. With k permits \
                      at most k are open at once — the run counts the most ever inside (`max in flight`) rather than \
                      trusting the listing — and the others wait in `acquire()`, which the timeline shows, lane by \
                      lane. Without the semaphore every worker connects at once. The classic bug: an error path that \
                      calls `release()` again after the `with` block already did. A plain `Semaphore` just gains a \
                      permit — k + 1 may now be inside, silently. A `BoundedSemaphore` refuses a release past its \
                      initial value with `ValueError`; but the refusal lands on whichever release finds the count \
                      full, often another thread's, later: the bug is caught, not located.",
            params: vec![
                ParamSpec::int("workers", 6, 1, 16, "threads", "threads opening connections"),
                ParamSpec::int(
                    "requests",
                    4,
                    1,
                    10_000,
                    "per worker",
                    "connections each worker opens, one after another",
                ),
                ParamSpec::int("limit", 2, 1, 64, "permits", "the semaphore's initial value k"),
                ParamSpec::float("hold_ms", 5.0, 0.0, 1_000.0, "ms", "how long a connection stays open"),
                timeout_param(),
            ],
            variants: vec![
                VariantSpec::fixed("bounded", "with BoundedSemaphore(k): acquire, connect, release"),
                VariantSpec::fixed("none", "no semaphore: every worker connects at once"),
                VariantSpec::fixed("leaky", "a Semaphore(k) and an error path that releases a second time")
                    .unchecked("over-releases on purpose: the cap grows to k + 1"),
                VariantSpec::fixed("leaky-bounded", "the same bug with a BoundedSemaphore(k)")
                    .unchecked("over-releases on purpose: a later release raises ValueError and that worker stops"),
            ],
            baseline: "none",
            work_unit: Some("connections"),
            chart_metric: Some("max in flight"),
            shows_timeline: true,
            quick: &["workers=4", "requests=3", "hold_ms=2"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Connections {
            workers: params.count("workers"),
            requests: params.count("requests"),
            limit: params.count("limit"),
            hold: millis(params.float("hold_ms")),
            timeout: timeout(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "with k permits at most k connections are ever open at once; without the semaphore more are",
                |facts| {
                    let limit = facts.param("limit")?;
                    let bounded = facts.fixed_metric("bounded", "max in flight")?.max;
                    let none = facts.fixed_metric("none", "max in flight")?.max;
                    verdict(
                        bounded <= limit && none > limit,
                        format!("most open at once: {bounded:.0} with {limit} permits, {none:.0} without"),
                        "the workers did not overlap (raise hold_ms)",
                    )
                },
            ),
            Claim::new("a plain Semaphore takes the extra release silently: it ends with k + 1 permits", |facts| {
                let limit = facts.param("limit")?;
                let left = facts.fixed_metric("leaky", "permits at the end")?.min;
                verdict(
                    left == limit + 1.0,
                    format!("{left:.0} permits at the end of the fewest run, {limit} at the start"),
                    "a bug in the Semaphore model",
                )
            }),
            Claim::new("a BoundedSemaphore refuses it: it never ends with more permits than it began with", |facts| {
                let limit = facts.param("limit")?;
                let left = facts.fixed_metric("leaky-bounded", "permits at the end")?.max;
                verdict(
                    left <= limit,
                    format!("at most {left:.0} permits at the end, {limit} at the start"),
                    "a bug in the BoundedSemaphore model",
                )
            }),
        ]
    }
}

struct Connections {
    workers: usize,
    requests: usize,
    limit: usize,
    hold: Duration,
    timeout: Duration,
}

impl Workload for Connections {
    fn work_units(&self) -> Option<f64> {
        Some((self.workers * self.requests) as f64)
    }

    fn expected(&self) -> Digest {
        (self.workers * self.requests) as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let limit: fn(usize) -> Limit = match variant {
            "none" => |_| Limit::None,
            "leaky" => |permits| Limit::Plain(Semaphore::new(permits)),
            _ => |permits| Limit::Bounded(BoundedSemaphore::new(permits)),
        };
        Ok(Box::new(ConnectionsCell {
            work: self,
            threads: team(self.workers)?,
            limit,
            leaks: variant.starts_with("leaky"),
        }))
    }
}

/// A fresh semaphore for each run (a leaked permit must not carry over to the next).
enum Limit {
    None,
    Plain(Semaphore),
    Bounded(BoundedSemaphore),
}

impl Limit {
    fn acquire(&self, timeout: Option<Duration>) -> bool {
        match self {
            Limit::None => true,
            Limit::Plain(semaphore) => semaphore.acquire(timeout),
            Limit::Bounded(semaphore) => semaphore.acquire(timeout),
        }
    }

    fn release(&self) -> Result<(), PrimError> {
        match self {
            Limit::None => Ok(()),
            Limit::Plain(semaphore) => {
                semaphore.release(1);
                Ok(())
            }
            Limit::Bounded(semaphore) => semaphore.release(),
        }
    }

    fn value(&self) -> Option<usize> {
        match self {
            Limit::None => None,
            Limit::Plain(semaphore) => Some(semaphore.value()),
            Limit::Bounded(semaphore) => Some(semaphore.value()),
        }
    }
}

struct ConnectionsCell<'a> {
    work: &'a Connections,
    threads: usize,
    /// Makes the variant's semaphore, fresh for each run.
    limit: fn(usize) -> Limit,
    /// Worker 0's second connection takes the error path that releases twice.
    leaks: bool,
}

/// Connections open now, the most ever open at once, and the most once a permit was released
/// twice.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
    /// Set when worker 0's error path released a second time.
    leaked: AtomicBool,
    most_after_leak: AtomicUsize,
}

impl ConnectionsCell<'_> {
    /// One connection; `Ok(false)` when a release raised and the worker stops (as its Python
    /// thread would, with a traceback).
    fn connect(
        &self,
        (limit, in_flight): (&Limit, &InFlight),
        me: usize,
        request: usize,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<bool, RunError> {
        let limited = !matches!(limit, Limit::None);
        let got = if limited {
            blocking(
                lane,
                "semaphore.acquire()",
                || patiently(context, self.work.timeout, |slice| limit.acquire(Some(slice)).then_some(())),
                |got| if matches!(got, Ok(Some(()))) { "a permit".into() } else { "none".into() },
            )?
        } else {
            Some(())
        };
        if got.is_none() {
            return Err(RunError::Failed(format!(
                "no permit within timeout_ms={}: raise it",
                self.work.timeout.as_millis()
            )));
        }
        let open = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        in_flight.most.fetch_max(open, Ordering::SeqCst);
        if in_flight.leaked.load(Ordering::SeqCst) {
            in_flight.most_after_leak.fetch_max(open, Ordering::SeqCst);
        }
        let held = work(context, lane, || format!("connection {request} ({open} open)"), self.work.hold);
        in_flight.now.fetch_sub(1, Ordering::SeqCst);
        let mut released = limit.release();
        if released.is_ok() && self.leaks && me == 0 && request == 1 {
            let now = context.now();
            lane.record(SpanKind::Mark, "release() again, in an error path", now, now);
            released = limit.release();
            in_flight.leaked.store(released.is_ok(), Ordering::SeqCst);
            if released.is_err() {
                context.report("worker 0 released its permit twice (an error path's extra release())");
            }
        }
        if let Err(error) = released {
            let unmade = match self.work.requests - request - 1 {
                0 => String::new(),
                1 => " with 1 connection unmade".into(),
                left => format!(" with {left} connections unmade"),
            };
            let whose =
                if me == 0 && request == 1 { "" } else { " — the bug was worker 0's, earlier: caught, not located" };
            context.report(format!(
                "worker {me}'s release after connection {request} raised {error}: the count was already full, so the \
                 BoundedSemaphore refused it and worker {me} stopped{unmade}{whose}"
            ));
            return Ok(false);
        }
        held.map(|()| true)
    }
}

impl Cell for ConnectionsCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let (limit, in_flight) = ((self.limit)(self.work.limit), InFlight::default());
        let made = AtomicUsize::new(0);
        run_members(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            for request in 0..self.work.requests {
                if !self.connect((&limit, &in_flight), member.index, request, &mut lane, context)? {
                    break;
                }
                made.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })?;
        let most = in_flight.most.load(Ordering::SeqCst);
        context.record("max in flight", "connections", most as f64);
        if let Some(left) = limit.value() {
            context.record("permits at the end", "", left as f64);
            if in_flight.leaked.load(Ordering::SeqCst) {
                context.report(format!(
                    "worker 0 released its permit twice (an error path's extra release()) and the Semaphore took it \
                     silently: it ended the run with {left} permits where it began with {}, and after the extra \
                     release up to {} connections were open at once (at most {most} in the whole run)",
                    self.work.limit,
                    in_flight.most_after_leak.load(Ordering::SeqCst)
                ));
            }
        }
        Ok(made.load(Ordering::Relaxed) as u64)
    }
}
