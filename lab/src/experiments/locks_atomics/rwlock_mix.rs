//! `rwlock-mix`: shared data read and written through a mutex, reader-writer locks and a
//! seqlock, at a chosen share of reads.

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, ScalingLaw, TimeUnit, VariantSpec, Verdict, Workload,
};
use std::time::Duration;

use conlab_core::kernels::spin::Spinner;
use conlab_core::kernels::splitmix64;
use conlab_core::locks::parking::ParkingMutex;
use conlab_core::locks::reader_rwlock::ReaderPreferringRwLock;
use conlab_core::locks::rwlock::RwLock;
use conlab_core::locks::seqlock::SeqLock;
use conlab_core::locks::Mutex;
use conlab_core::locks::RawRwLock;
use conlab_core::platform::{self, run_team, Instant};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::cell::UnsafeCell;
use conlab_core::sync::{lock, Mutex as StdLock};

pub struct RwlockMix;

/// Words of shared data; a writer sets them all to one value, so a reader seeing two values saw
/// a torn write.
const WORDS: usize = 4;

impl Experiment for RwlockMix {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "rwlock-mix",
            title: "Readers and writers: mutex vs rwlock vs seqlock",
            topic: super::NAME,
            concept: "reader-writer locks; optimistic reads",
            teaches: "When most accesses only read, a mutex needlessly serialises the readers; a reader-writer lock \
                      lets them in together and makes writers wait for the readers to drain; a seqlock never blocks \
                      anyone for a read — readers copy the data and retry if a write overlapped. Each run sweeps the \
                      share of reads from 0% to 100%: at 100% the rwlocks and the seqlock scale with threads while \
                      the mutex does not. But a reader still writes: it counts itself in and out of the lock, and \
                      that count is one cache line every reader's core must own in turn. With sections of a \
                      microsecond (the default) that is cheap; with short ones (section_ns=0) the readers queue for \
                      the count's line and 2 threads read slower than 1, while the seqlock's readers, which write \
                      nothing, do not. Which side a reader-writer lock favours decides who can starve: our rwlock \
                      prefers writers (a waiting writer shuts the door on new readers), the books' listing \
                      (`reader-rwlock`) prefers readers — a reader enters whenever no writer is inside, so while \
                      the other threads keep reading, their sections overlap and a writer waits until they happen \
                      to stop. After the sweep, one more thread writes every 50 µs beside the N threads reading back \
                      to back: `writer wait p99` and `max` time its waits to get in. Every read checks that it saw one whole write \
                      (torn reads must be 0).",
            params: vec![
                ParamSpec::choice(
                    "reads",
                    "sweep",
                    &["sweep", "0", "50", "90", "99", "100"],
                    "share of operations that only read, in %: every one of them, or one",
                ),
                ParamSpec::int(
                    "operations",
                    10_000,
                    100,
                    50_000_000,
                    "per thread",
                    "reads and writes each thread performs at each share",
                ),
                ParamSpec::float(
                    "section_ns",
                    1_000.0,
                    0.0,
                    100_000.0,
                    "ns",
                    "work done with the data in each operation",
                ),
            ],
            variants: vec![
                VariantSpec::sweep("mutex", "our parking mutex around reads and writes"),
                VariantSpec::sweep("rwlock", "our writer-preferring reader-writer lock"),
                VariantSpec::sweep(
                    "reader-rwlock",
                    "the books' reader-preferring reader-writer lock: readers enter while writers wait",
                ),
                VariantSpec::sweep("seqlock", "our seqlock: readers copy and retry, then work on the copy"),
                VariantSpec::sweep("std-rwlock", "std::sync::RwLock"),
                VariantSpec::sweep("parking_lot-rwlock", "parking_lot::RwLock"),
            ],
            baseline: "mutex",
            work_unit: Some("operations"),
            chart_metric: Some("90% reads"),
            quick: &["operations=1000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let reads = params.text("reads");
        Ok(Box::new(Mix {
            shares: SHARES
                .iter()
                .copied()
                .filter(|(percent, _)| reads == "sweep" || percent.to_string() == reads)
                .collect(),
            operations: params.int("operations") as u64,
            section_ns: params.float("section_ns"),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "at 100% reads a mutex does not scale: 2 threads do at most 1.15× the operations per second of 1 \
                 (best runs)",
                |facts| {
                    facts.cores(2)?;
                    let gain = all_reads(facts, "mutex", 2)? / all_reads(facts, "mutex", 1)?;
                    verdict(
                        gain <= 1.15,
                        format!("mutex, 2 threads over 1: {gain:.2}×"),
                        "a measurement error: a mutex admits one reader at a time",
                    )
                },
            ),
            Claim::new(
                "at 100% reads with sections of 300 ns or more, our rwlock and the seqlock at 2 threads do ≥ 1.5× \
                 the operations per second of the mutex (best runs)",
                |facts| {
                    facts.cores(2)?;
                    long_sections(facts)?;
                    let mutex = all_reads(facts, "mutex", 2)?;
                    let (rwlock, seqlock) =
                        (all_reads(facts, "rwlock", 2)? / mutex, all_reads(facts, "seqlock", 2)? / mutex);
                    verdict(
                        rwlock >= 1.5 && seqlock >= 1.5,
                        format!("vs the mutex at 2 threads: rwlock {rwlock:.2}×, seqlock {seqlock:.2}×"),
                        "another program held a core, so the readers did not overlap",
                    )
                },
            ),
            Claim::new(
                "at 100% reads with sections under 100 ns, the readers queue for the rwlock's count: at 2 threads \
                 the seqlock does ≥ 2× the operations per second of our rwlock (best runs)",
                |facts| {
                    facts.cores(2)?;
                    let section = facts.param("section_ns")?;
                    if section >= 100.0 {
                        return Err(not_testable(format!(
                            "the sections are long (section_ns={section}): the count's cost hides; try section_ns=0"
                        )));
                    }
                    let ratio = all_reads(facts, "seqlock", 2)? / all_reads(facts, "rwlock", 2)?;
                    verdict(
                        ratio >= 2.0,
                        format!("seqlock over rwlock at 2 threads: {ratio:.2}×"),
                        "the runs were too short to overlap (raise operations)",
                    )
                },
            ),
            Claim::new(
                "a reader-preferring lock starves its writers: beside 2 steady readers the reader-rwlock's writer \
                 wait p99 is ≥ 5× our writer-preferring rwlock's (median runs)",
                |facts| {
                    facts.cores(2)?;
                    long_sections(facts)?;
                    let (readers, writers) =
                        (facts.metric("reader-rwlock", 2, WRITER_WAIT)?, facts.metric("rwlock", 2, WRITER_WAIT)?);
                    verdict(
                        readers >= 5.0 * writers,
                        format!(
                            "writer wait p99 beside 2 readers: reader-rwlock {}, rwlock {}",
                            format_micros(readers),
                            format_micros(writers)
                        ),
                        "the readers seldom overlapped (another program held a core), so the writers found gaps",
                    )
                },
            ),
        ]
    }
}

/// The best run's operations per second at 100% reads.
fn all_reads(facts: &Facts<'_>, variant: &str, threads: usize) -> Result<f64, Verdict> {
    facts.metric_max(variant, threads, "100% reads")
}

/// Sections long enough that the readers overlap in them.
fn long_sections(facts: &Facts<'_>) -> Result<(), Verdict> {
    let section = facts.param("section_ns")?;
    if section < 300.0 {
        return Err(not_testable(format!(
            "the sections are short (section_ns={section}): the readers queue for the lock's count instead"
        )));
    }
    Ok(())
}

/// The 99th percentile of a writer's waits to get in beside steady readers.
const WRITER_WAIT: &str = "writer wait p99";
/// The writer's pause between its writes beside steady readers.
const WRITER_PAUSE: Duration = Duration::from_micros(50);

fn format_micros(micros: f64) -> String {
    conlab_core::units::format_seconds(micros / 1e6)
}

/// The shares of reads a sweep visits, with the name of the metric each one reports.
const SHARES: [(u64, &str); 5] =
    [(0, "0% reads"), (50, "50% reads"), (90, "90% reads"), (99, "99% reads"), (100, "100% reads")];

struct Mix {
    shares: Vec<(u64, &'static str)>,
    operations: u64,
    section_ns: f64,
    spinner: Spinner,
}

/// Data behind one of the locks under test.
trait Shared: Default + Sync {
    /// Reads all words, calling `work` where a user of this lock would work with the data.
    fn read(&self, work: &dyn Fn()) -> [u64; WORDS];
    fn write(&self, value: u64, work: &dyn Fn());
}

impl Shared for Mutex<ParkingMutex, [u64; WORDS]> {
    fn read(&self, work: &dyn Fn()) -> [u64; WORDS] {
        self.with(|data| {
            work();
            *data
        })
    }
    fn write(&self, value: u64, work: &dyn Fn()) {
        self.with(|data| {
            work();
            *data = [value; WORDS];
        })
    }
}

#[derive(Default)]
struct RwShared<L> {
    lock: L,
    data: UnsafeCell<[u64; WORDS]>,
}

// SAFETY: `data` is written only under the write lock and read only under a read lock.
unsafe impl<L: RawRwLock> Sync for RwShared<L> {}

impl<L: RawRwLock> Shared for RwShared<L> {
    fn read(&self, work: &dyn Fn()) -> [u64; WORDS] {
        self.lock.read(|| {
            work();
            // SAFETY: a read lock is held, so no writer is inside.
            self.data.with(|data| unsafe { *data })
        })
    }
    fn write(&self, value: u64, work: &dyn Fn()) {
        self.lock.write(|| {
            work();
            // SAFETY: the write lock is held.
            self.data.with_mut(|data| unsafe { *data = [value; WORDS] })
        })
    }
}

impl Shared for SeqLock<WORDS> {
    fn read(&self, work: &dyn Fn()) -> [u64; WORDS] {
        let snapshot = SeqLock::read(self);
        work();
        snapshot
    }
    fn write(&self, value: u64, work: &dyn Fn()) {
        SeqLock::write(self, |words| {
            work();
            *words = [value; WORDS];
        })
    }
}

impl Shared for std::sync::RwLock<[u64; WORDS]> {
    fn read(&self, work: &dyn Fn()) -> [u64; WORDS] {
        let data = self.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        work();
        *data
    }
    fn write(&self, value: u64, work: &dyn Fn()) {
        let mut data = std::sync::RwLock::write(self).unwrap_or_else(|poisoned| poisoned.into_inner());
        work();
        *data = [value; WORDS];
    }
}

impl Shared for parking_lot::RwLock<[u64; WORDS]> {
    fn read(&self, work: &dyn Fn()) -> [u64; WORDS] {
        let data = parking_lot::RwLock::read(self);
        work();
        *data
    }
    fn write(&self, value: u64, work: &dyn Fn()) {
        let mut data = parking_lot::RwLock::write(self);
        work();
        *data = [value; WORDS];
    }
}

impl Workload for Mix {
    /// Each cell's own: every thread makes `operations` at each share.
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The work grows with the threads, so speedups are ratios of operations per second.
    fn scaling_law(&self) -> ScalingLaw {
        ScalingLaw::Gustafson
    }

    /// The digest is the number of torn reads.
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(MixCell { mix: self, variant: variant.to_string(), threads }))
    }
}

struct MixCell<'a> {
    mix: &'a Mix,
    variant: String,
    threads: usize,
}

impl MixCell<'_> {
    /// Runs the mix on `S` at every share of reads, recording operations per second for each,
    /// then a writer beside steady readers; returns the torn reads.
    fn run_on<S: Shared>(&self, context: &RunContext) -> Result<u64, RunError> {
        let mut torn = 0;
        for &(read_percent, metric) in &self.mix.shares {
            let started = Instant::now();
            torn += self.run_share::<S>(read_percent, context)?;
            let operations = self.mix.operations * self.threads as u64;
            context.record(metric, "ops/s", operations as f64 / started.elapsed().as_secs_f64());
        }
        let (waits, steady_torn) = self.writer_beside_readers::<S>(context)?;
        torn += steady_torn;
        context.record_time(WRITER_WAIT, TimeUnit::Microseconds, waits.quantile(0.99) as f64);
        context.record_time("writer wait max", TimeUnit::Microseconds, waits.max() as f64);
        context.record_latency("writer wait", &waits);
        Ok(torn)
    }

    fn run_share<S: Shared>(&self, read_percent: u64, context: &RunContext) -> Result<u64, RunError> {
        let Mix { operations, section_ns, spinner, .. } = *self.mix;
        let shared = S::default();
        let torn = AtomicU64::new(0);
        let work = move || spinner.spin(section_ns);
        run_team(self.threads, |member| {
            let mut state = member.index as u64;
            context.repeat(operations, |operation| {
                if splitmix64(&mut state) % 100 < read_percent {
                    read_whole(&shared, &work, &torn);
                } else {
                    shared.write((operation << 8) | member.index as u64, &work);
                }
            });
        })?;
        Ok(torn.into_inner())
    }

    /// A steady read load: the cell's threads each read `operations` times back to back, while
    /// one more thread writes every [`WRITER_PAUSE`] (sleeping between), until the readers are
    /// done. Returns each write's wait from asking to entering, and the torn reads.
    fn writer_beside_readers<S: Shared>(&self, context: &RunContext) -> Result<(LogHistogram, u64), RunError> {
        let Mix { operations, section_ns, spinner, .. } = *self.mix;
        let shared = S::default();
        let (torn, readers_left) = (AtomicU64::new(0), AtomicU64::new(self.threads as u64));
        let waits = StdLock::new(LogHistogram::default());
        let work = move || spinner.spin(section_ns);
        run_team(self.threads + 1, |member| {
            if member.index > 0 {
                context.repeat(operations, |_| read_whole(&shared, &work, &torn));
                readers_left.fetch_sub(1, Ordering::Release);
                return;
            }
            let mut waited = LogHistogram::default();
            let mut value = 0;
            while readers_left.load(Ordering::Acquire) > 0 && context.check_cancel().is_ok() {
                let (asked, entered) = (Instant::now(), std::cell::Cell::new(None));
                value += 1;
                shared.write(value << 8, &|| {
                    entered.set(Some(Instant::now()));
                    work();
                });
                waited.record(entered.get().unwrap_or(asked).duration_since(asked).as_nanos() as u64);
                platform::sleep(WRITER_PAUSE);
            }
            *lock(&waits) = waited;
        })?;
        Ok((waits.into_inner().unwrap_or_else(|p| p.into_inner()), torn.into_inner()))
    }
}

/// One read of `shared`, counted in `torn` if it saw parts of two writes.
fn read_whole<S: Shared>(shared: &S, work: &dyn Fn(), torn: &AtomicU64) {
    let words = shared.read(work);
    if words.iter().any(|w| *w != words[0]) {
        torn.fetch_add(1, Ordering::Relaxed);
    }
}

impl Cell for MixCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn work_units(&self) -> Option<f64> {
        Some((self.mix.operations * self.threads as u64 * self.mix.shares.len() as u64) as f64)
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let torn = match self.variant.as_str() {
            "mutex" => self.run_on::<Mutex<ParkingMutex, [u64; WORDS]>>(context),
            "rwlock" => self.run_on::<RwShared<RwLock>>(context),
            "reader-rwlock" => self.run_on::<RwShared<ReaderPreferringRwLock>>(context),
            "seqlock" => self.run_on::<SeqLock<WORDS>>(context),
            "std-rwlock" => self.run_on::<std::sync::RwLock<[u64; WORDS]>>(context),
            _ => self.run_on::<parking_lot::RwLock<[u64; WORDS]>>(context),
        }?;
        context.check_cancel()?;
        Ok(torn)
    }
}
