//! `deadlock-watchdog`: the books' ABBA deadlock on real threads, caught by a wait-for graph
//! ([`conlab_core::sim::watchdog`]) instead of hanging — and how rarely it happens unaided.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{run_team, yield_now, Instant};
use conlab_core::sim::watchdog::{Stuck, TrackedMutex, WaitForGraph};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicUsize, Ordering};
use conlab_core::sync::{lock, Mutex};

pub struct DeadlockWatchdog;

impl Experiment for DeadlockWatchdog {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "deadlock-watchdog",
            title: "ABBA on real threads: how often it deadlocks, and a watchdog that catches it",
            topic: super::NAME,
            concept: "deadlock (Coffman conditions); lock ordering; wait-for graphs",
            teaches: "Two threads take locks a and b in opposite orders, `attempts` times; the second starts \
                      `stagger_us` after the first, as `t1.start(); t2.start()` would. The books print this listing \
                      and say it deadlocks — run it and it rarely does: the first thread takes both locks in well \
                      under a microsecond, long before the second arrives. Start them together (`stagger_us=0`) or \
                      widen the window between the first lock and the second (`hold_us`), and the deadlock rate \
                      climbs. Every lock here records its holder and waiters in a wait-for graph: the thread that \
                      closes a cycle gets the cycle back as an error (the victim, as a database would pick one), lets \
                      go, and the other finishes — so the lab never hangs, and a deadline stands behind the graph. \
                      Ordered locking (always a, then b) never deadlocks. For a deadlock found on demand, every time, \
                      see `conlab explore abba-deadlock`.",
            params: vec![
                ParamSpec::int("attempts", 200, 1, 100_000, "", "times the two threads race for the locks"),
                ParamSpec::int(
                    "hold_us",
                    0,
                    0,
                    10_000,
                    "µs",
                    "time each holds its first lock before reaching for the second (0: the listing)",
                ),
                ParamSpec::int(
                    "stagger_us",
                    50,
                    0,
                    10_000,
                    "µs",
                    "how much later the second thread starts (`t1.start(); t2.start()`; 0: together)",
                ),
                ParamSpec::int("timeout_ms", 1_000, 10, 60_000, "ms", "the watchdog's deadline for one attempt"),
            ],
            variants: vec![
                VariantSpec::fixed("abba", "a then b, and b then a")
                    .unchecked("deadlocks on purpose; each one is caught and counted"),
                VariantSpec::fixed("ordered", "both take a, then b"),
            ],
            baseline: "ordered",
            work_unit: Some("attempts"),
            chart_metric: Some("deadlocks"),
            quick: &["attempts=40", "hold_us=20"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Attempts {
            attempts: params.count("attempts"),
            hold_ns: params.int("hold_us") as f64 * 1e3,
            stagger_ns: params.int("stagger_us") as f64 * 1e3,
            spinner: Spinner::calibrate(),
            timeout: Duration::from_millis(params.int("timeout_ms") as u64),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("ordered locking (always a, then b) never deadlocks", |facts| {
                let most = facts.fixed_metric("ordered", "deadlocks")?.max;
                verdict(most == 0.0, format!("at most {most:.0} deadlocks in a run"), "a bug in the lock order")
            }),
            Claim::new("the lab never hangs: the wait-for graph breaks every deadlock before any deadline", |facts| {
                let timed_out = facts.fixed_metric("abba", "timed out")?.max + facts.fixed_metric("ordered", "timed out")?.max;
                verdict(timed_out == 0.0, format!("{timed_out:.0} attempts ran into the deadline"), "a bug in the wait-for graph")
            }),
            Claim::new(
                "started as the listing starts them (the second ≥ 20 µs later, no hold), the ABBA threads rarely \
                 deadlock: ≤ 5% of attempts",
                |facts| {
                    let (stagger, hold) = (facts.param("stagger_us")?, facts.param("hold_us")?);
                    if stagger < 20.0 || hold > 0.0 {
                        return Err(not_testable(format!("stagger_us={stagger}, hold_us={hold}: not the listing's start")));
                    }
                    let rate = facts.fixed_metric("abba", "deadlock rate")?.max;
                    verdict(rate <= 5.0, format!("at most {rate:.1}% of attempts deadlocked"), "the first thread was slow to take both locks")
                },
            ),
            Claim::new(
                "started together with a window between the locks (stagger_us=0, hold_us ≥ 10), they deadlock in ≥ 10% \
                 of attempts",
                |facts| {
                    let (stagger, hold) = (facts.param("stagger_us")?, facts.param("hold_us")?);
                    if stagger > 0.0 || hold < 10.0 {
                        return Err(not_testable("try --set stagger_us=0 --set hold_us=10"));
                    }
                    let rate = facts.fixed_metric("abba", "deadlock rate")?.median;
                    verdict(rate >= 10.0, format!("{rate:.1}% of attempts deadlocked (median run)"), "the threads did not start together")
                },
            ),
        ]
    }
}

struct Attempts {
    attempts: usize,
    hold_ns: f64,
    stagger_ns: f64,
    /// Busy waits of a set length (the browser's clock is too coarse to time microseconds).
    spinner: Spinner,
    timeout: Duration,
}

impl Workload for Attempts {
    fn work_units(&self) -> Option<f64> {
        Some(self.attempts as f64)
    }

    /// Every attempt ends: each thread either finished or was the reported victim.
    fn expected(&self) -> Digest {
        2 * self.attempts as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(AttemptsCell { work: self, reversed: variant == "abba" }))
    }
}

struct AttemptsCell<'a> {
    work: &'a Attempts,
    /// The second thread takes b first.
    reversed: bool,
}

/// What one run saw.
#[derive(Default)]
struct Tally {
    deadlocks: u64,
    timeouts: u64,
    ended: u64,
    /// From the victim's first try at its second lock to the report.
    detection_ns: LogHistogram,
}

impl Cell for AttemptsCell<'_> {
    fn threads(&self) -> usize {
        2
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Attempts { attempts, hold_ns, stagger_ns, spinner, timeout } = *self.work;
        let graph = WaitForGraph::new(timeout);
        let (a, b) = (graph.mutex("a"), graph.mutex("b"));
        let arrived = AtomicUsize::new(0);
        let tally = Mutex::new(Tally::default());
        run_team(2, |member| {
            for attempt in 0..attempts {
                // Both done with the last attempt: thread 0 opens the next round; both start it together.
                if !meet(&arrived, 4 * attempt + 2, context) {
                    return;
                }
                if member.index == 0 {
                    graph.restart();
                }
                if !meet(&arrived, 4 * attempt + 4, context) {
                    return;
                }
                if member.index == 1 {
                    spinner.spin(stagger_ns);
                }
                let (first, second) = if self.reversed && member.index == 1 { (&b, &a) } else { (&a, &b) };
                attempt_once(first, second, member.index, || spinner.spin(hold_ns), &tally);
            }
        })?;
        context.check_cancel()?;
        let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
        context.record("deadlocks", "", tally.deadlocks as f64);
        context.record("deadlock rate", "%", 100.0 * tally.deadlocks as f64 / attempts as f64);
        context.record("timed out", "", tally.timeouts as f64);
        if tally.detection_ns.count() > 0 {
            context.record_time("detected in (p50)", TimeUnit::Microseconds, tally.detection_ns.quantile(0.5) as f64);
            context.record_latency("deadlock detection", &tally.detection_ns);
        }
        Ok(tally.ended)
    }
}

/// One attempt by thread `me`: first lock, hold, second lock, release.
fn attempt_once(
    first: &TrackedMutex<'_>,
    second: &TrackedMutex<'_>,
    me: usize,
    hold: impl FnOnce(),
    tally: &Mutex<Tally>,
) {
    let outcome = first.lock(me).and_then(|held| {
        hold();
        let reached = Instant::now();
        let inner = second.lock(me).map(drop);
        drop(held);
        if let Err(Stuck::Deadlock(_)) = inner {
            lock(tally).detection_ns.record(u64::try_from(reached.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        inner
    });
    let mut tally = lock(tally);
    tally.ended += 1;
    match outcome {
        Ok(()) => {}
        Err(Stuck::Deadlock(_)) => tally.deadlocks += 1,
        Err(Stuck::TimedOut { .. }) => tally.timeouts += 1,
    }
}

/// Both threads pass only once the shared count reaches `target` (each adds one); `false` when
/// the run was cancelled meanwhile (the other thread sees the same flag and leaves too).
fn meet(arrived: &AtomicUsize, target: usize, context: &RunContext) -> bool {
    arrived.fetch_add(1, Ordering::AcqRel);
    let mut spins = 0u32;
    while arrived.load(Ordering::Acquire) < target {
        spins = spins.wrapping_add(1);
        // Spin mostly: yielding at once hands the core to the other thread if both sit on one
        // run queue, and the two would take turns instead of racing.
        if spins % 4096 == 0 {
            if context.check_cancel().is_err() {
                return false;
            }
            yield_now();
        }
        std::hint::spin_loop();
    }
    true
}
