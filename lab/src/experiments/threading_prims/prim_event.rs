//! `prim-event`: one `Event.set()` releases every waiting thread at once; polling a flag wakes
//! them late; and `set(); clear()` used as a pulse is missed by anyone not already waiting.

use std::time::Duration;

use super::prim_gallery::{blocking, millis, team, timeout, timeout_param, work};
use crate::experiment::{
    run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use conlab_core::platform::Instant;
use conlab_core::prims::Event;
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Mutex};
use conlab_core::trace::{Lane, SpanKind};

pub struct PrimEvent;

impl Experiment for PrimEvent {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-event",
            title: "Event: one set() releases every waiter at once",
            topic: super::NAME,
            concept: "threading.Event (set / clear / wait)",
            teaches: "Thread 0 prepares for `setup_ms`, then calls `ready.set()`; `waiters` threads sit in \
                      `ready.wait()` and all wake at once — the timeline's wake-up marks line up, and the run \
                      measures how long after `set()` each waiter was running again. Polling a plain flag \
                      (`while not ready: time.sleep(poll_ms)`) also works, but each waiter notices up to a poll \
                      late and wakes up for nothing meanwhile. The misuse: `set(); clear()` as a pulse. CPython \
                      releases everyone already waiting, but a thread that calls `wait()` after the `clear()` — \
                      here the last waiter, `late_ms` after it — missed the pulse and sleeps until its timeout. \
                      Keep the flag set, or use a Condition around real state.",
            params: vec![
                ParamSpec::int("waiters", 4, 1, 15, "threads", "threads waiting for the event"),
                ParamSpec::float("setup_ms", 10.0, 0.0, 10_000.0, "ms", "how long thread 0 prepares before set()"),
                ParamSpec::float(
                    "poll_ms",
                    4.0,
                    0.1,
                    1_000.0,
                    "ms",
                    "the poll variant's sleep between looks at the flag",
                ),
                ParamSpec::float(
                    "late_ms",
                    2.0,
                    0.0,
                    1_000.0,
                    "ms",
                    "pulse: how long after the clear() the last waiter arrives",
                ),
                timeout_param(),
            ],
            variants: vec![
                VariantSpec::fixed("event", "the waiters call ready.wait(); thread 0 calls ready.set()"),
                VariantSpec::fixed("poll", "the waiters poll a flag: while not ready: sleep(poll_ms)"),
                VariantSpec::fixed("pulse", "thread 0 calls set(); clear() — the last waiter arrives after it")
                    .unchecked("misses the event on purpose: the late waiter times out and is reported"),
            ],
            baseline: "event",
            chart_metric: Some("woken after set() (max)"),
            shows_timeline: true,
            quick: &["setup_ms=3", "poll_ms=2", "timeout_ms=50"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Start {
            waiters: params.count("waiters"),
            setup: millis(params.float("setup_ms")),
            poll: millis(params.float("poll_ms")),
            late: millis(params.float("late_ms")),
            timeout: timeout(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("set() releases every waiter, and none misses it", |facts| {
                let waiters = facts.param("waiters")?;
                let released = facts.fixed_metric("event", "released")?.min;
                verdict(
                    released == waiters,
                    format!("{released:.0} of {waiters} released (fewest run)"),
                    "a bug in the Event model",
                )
            }),
            Claim::new(
                "polling notices later: a polling waiter's median wake-up after set() is ≥ 2× the event's (fastest \
                 runs)",
                |facts| {
                    let event = facts.fixed_metric("event", "woken after set() (p50)")?.min;
                    let poll = facts.fixed_metric("poll", "woken after set() (p50)")?.min;
                    verdict(
                        poll >= 2.0 * event,
                        format!("median wake-up: event {event:.0} µs, polling {poll:.0} µs"),
                        "the poll interval is shorter than a wake-up here (raise poll_ms)",
                    )
                },
            ),
            Claim::new("a pulse (set(); clear()) is missed by a thread that waits after it", |facts| {
                let missed = facts.fixed_metric("pulse", "missed")?.min;
                verdict(
                    missed >= 1.0,
                    format!("at least {missed:.0} waiter missed it in every run"),
                    "the late waiter arrived before the clear() (raise late_ms)",
                )
            }),
        ]
    }
}

struct Start {
    waiters: usize,
    setup: Duration,
    poll: Duration,
    late: Duration,
    timeout: Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Signal {
    Event,
    Poll,
    Pulse,
}

impl Workload for Start {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every waiter released.
    fn expected(&self) -> Digest {
        self.waiters as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let signal = match variant {
            "event" => Signal::Event,
            "poll" => Signal::Poll,
            _ => Signal::Pulse,
        };
        Ok(Box::new(StartCell { start: self, threads: team(self.waiters + 1)?, signal }))
    }
}

struct StartCell<'a> {
    start: &'a Start,
    threads: usize,
    signal: Signal,
}

/// What the threads of one run share.
struct Shared {
    event: Event,
    /// The poll variant's flag.
    flag: AtomicBool,
    /// When thread 0 called `set()` (ns since the platform epoch; 0: not yet).
    set_at: AtomicU64,
    /// Pulse: the `clear()` is done.
    cleared: AtomicBool,
    released: AtomicUsize,
    polls: AtomicUsize,
    woken_after_ns: Mutex<LogHistogram>,
}

impl StartCell<'_> {
    fn signal(&self, shared: &Shared, lane: &mut Lane<'_>, context: &RunContext) -> Result<(), RunError> {
        let prepared = work(context, lane, || "preparing", self.start.setup);
        let now = Instant::now();
        shared.set_at.store(now.nanos_since_epoch(), Ordering::SeqCst);
        match self.signal {
            Signal::Event => shared.event.set(),
            Signal::Poll => shared.flag.store(true, Ordering::SeqCst),
            Signal::Pulse => {
                shared.event.set();
                shared.event.clear();
                shared.cleared.store(true, Ordering::SeqCst);
            }
        }
        let label = match self.signal {
            Signal::Event => "ready.set()",
            Signal::Poll => "ready = True",
            Signal::Pulse => "ready.set(); ready.clear()",
        };
        lane.record(SpanKind::Mark, label, now, now);
        // Cancelled while preparing: the waiters were released all the same, and leave.
        prepared
    }

    fn wait(&self, me: usize, shared: &Shared, lane: &mut Lane<'_>, context: &RunContext) -> Result<(), RunError> {
        let released = match self.signal {
            Signal::Poll => self.poll(shared, lane, context)?,
            Signal::Pulse if me == self.start.waiters => {
                while !shared.cleared.load(Ordering::SeqCst) {
                    context.sleep(Duration::from_micros(100))?;
                }
                work(context, lane, || "arriving late", self.start.late)?;
                let asked = Instant::now();
                let late_ns = asked.nanos_since_epoch().saturating_sub(shared.set_at.load(Ordering::SeqCst));
                let released =
                    blocking(lane, "ready.wait()", || shared.event.wait(Some(self.start.timeout)), |r| r.to_string());
                if !released {
                    context.report(format!(
                        "waiter {me} called wait() {:.1} ms after set(); clear(): it missed the pulse and slept {:.0} \
                         ms, until its timeout (the waiters already waiting were released). Keep the flag set, or wait \
                         on a Condition for real state.",
                        late_ns as f64 / 1e6,
                        asked.elapsed().as_secs_f64() * 1e3
                    ));
                }
                released
            }
            Signal::Event | Signal::Pulse => {
                blocking(lane, "ready.wait()", || shared.event.wait(Some(self.start.timeout)), |r| r.to_string())
            }
        };
        context.check_cancel()?;
        if released {
            let after = Instant::now().nanos_since_epoch().saturating_sub(shared.set_at.load(Ordering::SeqCst));
            lock(&shared.woken_after_ns).record(after);
            shared.released.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `while not ready: time.sleep(poll)`; `false` if the timeout passed first.
    fn poll(&self, shared: &Shared, lane: &mut Lane<'_>, context: &RunContext) -> Result<bool, RunError> {
        let deadline = Instant::now().plus(self.start.timeout);
        while !shared.flag.load(Ordering::SeqCst) {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            shared.polls.fetch_add(1, Ordering::Relaxed);
            lane.span(SpanKind::Idle, || "sleep(poll_ms)", || context.sleep(self.start.poll))?;
        }
        let now = Instant::now();
        lane.record(SpanKind::Mark, "saw ready == True", now, now);
        Ok(true)
    }
}

impl Cell for StartCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let shared = Shared {
            event: Event::new(),
            flag: AtomicBool::new(false),
            set_at: AtomicU64::new(0),
            cleared: AtomicBool::new(false),
            released: AtomicUsize::new(0),
            polls: AtomicUsize::new(0),
            woken_after_ns: Mutex::new(LogHistogram::default()),
        };
        run_members(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            if member.index == 0 {
                self.signal(&shared, &mut lane, context)
            } else {
                self.wait(member.index, &shared, &mut lane, context)
            }
        })?;
        let woken = shared.woken_after_ns.into_inner().unwrap_or_else(|p| p.into_inner());
        let released = shared.released.load(Ordering::Relaxed);
        context.record("released", "waiters", released as f64);
        context.record("missed", "waiters", (self.start.waiters - released) as f64);
        if woken.count() > 0 {
            context.record_time("woken after set() (p50)", TimeUnit::Microseconds, woken.quantile(0.5) as f64);
            context.record_time("woken after set() (max)", TimeUnit::Microseconds, woken.max() as f64);
            context.record_latency("woken after set()", &woken);
        }
        if self.signal == Signal::Poll {
            context.record("polls", "sleeps", shared.polls.load(Ordering::Relaxed) as f64);
        }
        Ok(released as u64)
    }
}
