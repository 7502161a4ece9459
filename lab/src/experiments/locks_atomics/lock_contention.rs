//! `lock-contention`: every lock under the same load — throughput, fairness, wait times.

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, TimeUnit, VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use crossbeam_utils::CachePadded;

use conlab_core::locks::{Lock, LockKind, Mutex, WithLock, REGIMES};
use conlab_core::platform::{run_team, Instant};
use conlab_core::stats::{jain_fairness, LogHistogram};
use conlab_core::sync::{lock, Mutex as StdMutex};
use conlab_core::trace::SpanKind;

pub struct LockContention;

/// One acquisition in this many is timed for the wait percentiles: reading the clock costs
/// ~25 ns natively and 240–560 ns in a Chromium worker (`performance.now()` through JavaScript,
/// measured), and timing every acquisition would measure the clock more than the lock. At 1 in
/// 8 a browser's clock reads were most of an uncontended acquisition's time — work outside the
/// lock that two threads split, so a test-and-set lock read faster at 2 threads than at 1.
const SAMPLE_EVERY: u64 = 64;
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
                      between. The regimes move from extreme (nothing but the lock, the default) to none (each thread \
                      its own lock). Watch throughput fall as contention rises: in the extreme regime two threads get \
                      fewer acquisitions through any lock than one thread alone, because the lock's cache line moves \
                      between the cores on every hand-over; with a lock each (regime none, each lock on its own cache \
                      line) they scale. Two threads on two cores share every lock about evenly (Jain's index near 1); \
                      the books' test-and-set hog needs cores farther apart than most laptops'. Then run more \
                      threads than cores (--threads 1,2,4 on two): a spinning waiter burns the CPU the preempted \
                      holder needs, and the FIFO locks (ticket, MCS) hand the lock to threads that are not even \
                      running — their throughput collapses and their fairness with it — while the parking locks \
                      (ours, std, parking_lot) sleep and degrade gracefully.",
            params: vec![
                ParamSpec::choice(
                    "regime",
                    "extreme",
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

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "in the extreme regime contention costs: every lock gets fewer acquisitions per second through at 2 \
                 threads than at 1 (best runs)",
                |facts| {
                    facts.cores(2)?;
                    regime(facts, "extreme")?;
                    each_lock(
                        facts,
                        |one, two| two < one,
                        "2 threads over 1",
                        "another program held a core, so the threads took turns",
                    )
                },
            ),
            Claim::new(
                "with a lock per thread (regime none) nothing is shared: every lock's throughput at 2 threads is ≥ \
                 1.6× its throughput at 1 (best runs)",
                |facts| {
                    facts.cores(2)?;
                    regime(facts, "none")?;
                    each_lock(facts, |one, two| two >= 1.6 * one, "2 threads over 1", "another program held a core")
                },
            ),
            Claim::new(
                "with more threads than cores the FIFO spin locks collapse: ticket and MCS get ≤ 1/10 of the parking \
                 mutex's acquisitions (best runs)",
                |facts| {
                    let cores = facts.result.environment.platform.hardware_threads;
                    let Some(threads) = facts.threads_of("parking").into_iter().filter(|t| *t > cores).max() else {
                        return Err(not_testable(format!(
                            "no run had more threads than the {cores} cores (try --threads 1,2,{})",
                            2 * cores
                        )));
                    };
                    if facts.text("regime")? == "none" {
                        return Err(not_testable("with a lock per thread nobody waits for a preempted holder"));
                    }
                    let parking = facts.metric_max("parking", threads, "acquisitions")?;
                    let ticket = facts.metric_max("ticket", threads, "acquisitions")?;
                    let mcs = facts.metric_max("mcs", threads, "acquisitions")?;
                    verdict(
                        ticket <= parking / 10.0 && mcs <= parking / 10.0,
                        format!(
                            "at {threads} threads, millions of acquisitions/s: ticket {:.2}, MCS {:.2}, parking {:.2}",
                            ticket / 1e6,
                            mcs / 1e6,
                            parking / 1e6
                        ),
                        "the waiters were not preempted (the machine has idle cores to spare)",
                    )
                },
            ),
        ]
    }
}

/// "Not testable" unless the run used regime `name`.
fn regime(facts: &Facts<'_>, name: &str) -> Result<(), Verdict> {
    let regime = facts.text("regime")?;
    if regime == name {
        Ok(())
    } else {
        Err(not_testable(format!("the run used regime {regime}; try --set regime={name}")))
    }
}

/// Whether `holds(best at 1, best at 2)` for every lock that ran at both.
fn each_lock(facts: &Facts<'_>, holds: fn(f64, f64) -> bool, ratio: &str, likely: &str) -> Result<Verdict, Verdict> {
    let mut seen = Vec::new();
    let mut all = true;
    for kind in LockKind::ALL {
        let (Ok(one), Ok(two)) =
            (facts.metric_max(kind.name(), 1, "acquisitions"), facts.metric_max(kind.name(), 2, "acquisitions"))
        else {
            continue;
        };
        all &= holds(one, two);
        seen.push(format!("{} {:.2}×", kind.name(), two / one));
    }
    if seen.is_empty() {
        return Err(not_testable("no lock ran at both 1 and 2 threads"));
    }
    verdict(all, format!("{ratio}: {}", seen.join(", ")), likely)
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
        // Each lock on its own cache line: with a lock per thread, neighbours in one line would
        // contend through it as if they shared a lock (false sharing).
        let locks: Vec<CachePadded<Mutex<L, u64>>> =
            (0..if shared { 1 } else { self.threads }).map(|_| CachePadded::new(Mutex::new(0))).collect();
        let results = StdMutex::new(Vec::new());
        let deadline = Instant::now().nanos_since_epoch() + duration_ns;
        run_team(self.threads, |member| {
            let counter = &locks[if shared { 0 } else { member.index }];
            let (mut acquisitions, mut waits) = (0u64, LogHistogram::default());
            let mut lane = self.context.trace().lane(member.index);
            let tracing = self.context.trace().is_enabled();
            let mut watch = DeadlineWatch::new(deadline);
            loop {
                if watch.due(acquisitions) && (watch.passed() || self.context.check_cancel().is_err()) {
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

/// When a thread looks at the clock for its deadline (and at the cancel flag): about every
/// [`Self::LOOK_NS`] of acquisitions, however long one takes. A fixed count would be wrong one
/// way or the other: 16 acquisitions are 0.3 µs on a free lock natively, where a browser's
/// 300 ns clock read would double the work outside the lock that two threads split, and 64 are
/// a second when FIFO spin locks collapse (each hand-over waiting for a preempted thread).
struct DeadlineWatch {
    deadline_ns: u64,
    /// Acquisitions between two looks, doubled while looks come sooner than `LOOK_NS` and
    /// halved while they come later.
    stride: u64,
    next: u64,
    last_look_ns: u64,
}

impl DeadlineWatch {
    const LOOK_NS: u64 = 5_000;
    const MAX_STRIDE: u64 = 1 << 12;

    fn new(deadline_ns: u64) -> Self {
        Self { deadline_ns, stride: 1, next: 0, last_look_ns: Instant::now().nanos_since_epoch() }
    }

    /// Whether the thread should look after `acquisitions`.
    fn due(&self, acquisitions: u64) -> bool {
        acquisitions >= self.next
    }

    /// Reads the clock: whether the deadline has passed. Sets the next look.
    fn passed(&mut self) -> bool {
        let now = Instant::now().nanos_since_epoch();
        self.stride = if now.saturating_sub(self.last_look_ns) < Self::LOOK_NS {
            (self.stride * 2).min(Self::MAX_STRIDE)
        } else {
            (self.stride / 2).max(1)
        };
        self.next += self.stride;
        self.last_look_ns = now;
        now >= self.deadline_ns
    }
}
