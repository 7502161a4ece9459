//! `lock-contention`: every lock under the same load — throughput, fairness, wait times.

use crate::experiment::{
    Cell, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, TimeUnit, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::locks::{Lock, LockKind, Mutex, WithLock, REGIMES};
use conlab_core::platform::{run_team, Instant};
use conlab_core::stats::{jain_fairness, LogHistogram};
use conlab_core::sync::{lock, Mutex as StdMutex};
use conlab_core::trace::SpanKind;

pub struct LockContention;

/// Acquisitions between two looks at the clock's deadline and the cancel flag.
const CHECK_EVERY: u64 = 16;
/// One acquisition in this many is timed for the wait percentiles: reading the clock costs
/// ~25 ns natively and far more in a browser (`performance.now()` through JavaScript), and
/// timing every acquisition would measure the clock more than the lock.
const SAMPLE_EVERY: u64 = 8;
/// Acquisitions per thread drawn in a trace (the first ones of the run): enough to see who
/// waits and who holds, few enough for a timeline.
const TRACED: u64 = 500;

impl Experiment for LockContention {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "lock-contention",
            title: "Lock contention: spinning vs queueing vs sleeping",
            topic: super::NAME,
            concept: "threading.Lock under contention; spinlocks vs blocking locks",
            teaches: "N threads repeatedly take one lock, hold it for a critical section, and do other work in \
                      between. The regimes move from extreme (nothing but the lock) to none (each thread its own \
                      lock). Watch throughput fall as contention rises, the ticket and MCS locks stay fair (Jain's \
                      index near 1) while test-and-set lets one thread hog the lock, and what happens with more \
                      threads than cores: a spinning waiter burns the CPU the preempted holder needs, and the FIFO \
                      locks hand the lock to threads that are not even running — while the parking locks (ours, std, \
                      parking_lot) sleep and degrade gracefully.",
            params: vec![
                ParamSpec::choice(
                    "regime",
                    "heavy",
                    &["extreme", "heavy", "light", "none", "custom"],
                    "a preset load; custom uses the two lengths below",
                ),
                ParamSpec::float(
                    "critical_ns",
                    50.0,
                    0.0,
                    1_000_000.0,
                    "ns",
                    "critical-section length (regime custom)",
                ),
                ParamSpec::float(
                    "between_ns",
                    200.0,
                    0.0,
                    10_000_000.0,
                    "ns",
                    "work between acquisitions (regime custom)",
                ),
                ParamSpec::int("duration_ms", 50, 5, 5_000, "ms", "length of each run"),
            ],
            variants: LockKind::ALL.iter().map(|kind| VariantSpec::sweep(kind.name(), lock_help(*kind))).collect(),
            baseline: "std",
            fixed_duration: true,
            chart_metric: Some("acquisitions"),
            quick: &["duration_ms=5"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let regime = params.text("regime");
        let (critical_ns, between_ns, shared) = REGIMES
            .iter()
            .find(|preset| preset.name == regime)
            .map(|preset| (preset.critical_ns, preset.between_ns, preset.shared))
            .unwrap_or((params.float("critical_ns"), params.float("between_ns"), true));
        Ok(Box::new(Load {
            critical_ns,
            between_ns,
            shared,
            duration_ns: params.int("duration_ms") as u64 * 1_000_000,
            spinner: Spinner::calibrate(),
        }))
    }
}

fn lock_help(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Tas => "test-and-set spinlock",
        LockKind::Ttas => "test-and-test-and-set with exponential backoff",
        LockKind::Ticket => "ticket lock (FIFO spinning)",
        LockKind::Mcs => "MCS queue lock (FIFO, local spinning)",
        LockKind::Parking => "our futex mutex (spin briefly, then sleep)",
        LockKind::Std => "std::sync::Mutex",
        LockKind::ParkingLot => "parking_lot::Mutex",
    }
}

struct Load {
    critical_ns: f64,
    between_ns: f64,
    shared: bool,
    duration_ns: u64,
    spinner: Spinner,
}

impl Workload for Load {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The digest is the number of increments the locks lost (0 when they excluded).
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let kind = LockKind::from_name(variant).expect("variants are lock names");
        Ok(Box::new(LoadCell { load: self, kind, threads }))
    }
}

struct LoadCell<'a> {
    load: &'a Load,
    kind: LockKind,
    threads: usize,
}

/// What one run measured.
struct Tally {
    per_thread: Vec<u64>,
    waits: LogHistogram,
    lost: u64,
}

struct Contend<'a> {
    load: &'a Load,
    threads: usize,
    context: &'a RunContext<'a>,
}

impl WithLock for Contend<'_> {
    type Output = Result<Tally, RunError>;

    fn run<L: Lock + 'static>(self) -> Self::Output {
        let Load { critical_ns, between_ns, shared, duration_ns, spinner } = *self.load;
        let locks: Vec<Mutex<L, u64>> = (0..if shared { 1 } else { self.threads }).map(|_| Mutex::new(0)).collect();
        let results = StdMutex::new(Vec::new());
        let deadline = Instant::now().nanos_since_epoch() + duration_ns;
        run_team(self.threads, |member| {
            let counter = &locks[if shared { 0 } else { member.index }];
            let (mut acquisitions, mut waits) = (0u64, LogHistogram::default());
            let mut lane = self.context.trace().lane(member.index);
            let tracing = self.context.trace().is_enabled();
            loop {
                if acquisitions % CHECK_EVERY == 0
                    && (Instant::now().nanos_since_epoch() >= deadline || self.context.check_cancel().is_err())
                {
                    break;
                }
                spinner.spin(between_ns);
                let traced = tracing && acquisitions < TRACED;
                if traced || acquisitions % SAMPLE_EVERY == 0 {
                    let asked = Instant::now();
                    let got = counter.with(|count| {
                        let got = Instant::now();
                        *count += 1;
                        spinner.spin(critical_ns);
                        got
                    });
                    waits.record(got.duration_since(asked).as_nanos() as u64);
                    if traced {
                        lane.record(SpanKind::Wait, "waiting for the lock", asked, got);
                        lane.record(SpanKind::Run, "holding the lock", got, Instant::now());
                    }
                } else {
                    counter.with(|count| {
                        *count += 1;
                        spinner.spin(critical_ns);
                    });
                }
                acquisitions += 1;
            }
            lock(&results).push((member.index, acquisitions, waits));
        })?;
        self.context.check_cancel()?;
        let mut results = std::mem::take(&mut *lock(&results));
        results.sort_by_key(|(index, ..)| *index);
        let mut waits = LogHistogram::default();
        for (_, _, histogram) in &results {
            waits.merge(histogram);
        }
        let per_thread: Vec<u64> = results.iter().map(|(_, count, _)| *count).collect();
        let counted: u64 = locks.iter().map(|counter| counter.with(|count| *count)).sum();
        Ok(Tally { lost: per_thread.iter().sum::<u64>().abs_diff(counted), per_thread, waits })
    }
}

impl Cell for LoadCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let started = Instant::now();
        let tally = self.kind.run(Contend { load: self.load, threads: self.threads, context })?;
        let seconds = started.elapsed().as_secs_f64();
        let total: u64 = tally.per_thread.iter().sum();
        let shares: Vec<f64> = tally.per_thread.iter().map(|c| *c as f64).collect();
        context.record("acquisitions", "/s", total as f64 / seconds);
        context.record("fairness", "Jain", jain_fairness(&shares));
        // The spread behind the index: the least and the most served thread.
        context.record("per thread min", "acq", shares.iter().copied().fold(f64::INFINITY, f64::min));
        context.record("per thread max", "acq", shares.iter().copied().fold(0.0, f64::max));
        context.record_time("wait p50", TimeUnit::Nanoseconds, tally.waits.quantile(0.50) as f64);
        context.record_time("wait p99", TimeUnit::Nanoseconds, tally.waits.quantile(0.99) as f64);
        context.record_time("wait max", TimeUnit::Nanoseconds, tally.waits.max() as f64);
        context.record_latency("lock wait", &tally.waits);
        Ok(tally.lost)
    }
}
