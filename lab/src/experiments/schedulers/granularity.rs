//! `granularity`: a fixed amount of work cut into tasks of 1 µs … 10 ms, under each scheduling
//! policy — the U-curve of per-task overhead against load imbalance.

use super::policies::{self, Runner};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::Instant;

pub struct Granularity;

/// Task sizes a sweep visits, in µs.
const SIZES_US: [u64; 5] = [1, 10, 100, 1_000, 10_000];

impl Experiment for Granularity {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "granularity",
            title: "Task granularity: overhead vs imbalance",
            topic: super::NAME,
            concept: "chunksize; task granularity",
            teaches: "The same total work is cut into tasks of 1 µs up to 10 ms. Tiny tasks drown in scheduling \
                      overhead: a shared queue (ThreadPoolExecutor) pays a lock, a future and a wake-up per task, so \
                      with 1 µs tasks it is slower than one thread; work stealing pays far less, because each worker \
                      mostly pops its own deque. Huge tasks leave threads idle at the end (five 10 ms tasks on 2 \
                      threads: one thread runs three, so 30 ms instead of 25). In between lies the flat bottom of the \
                      U — that is what Python's `chunksize` advice is about. Each column is the run time at one task \
                      size; `overhead/task` is what each task of the smallest size costs beyond its work (threads × \
                      time − the same tasks run plainly, per task; 0 where that is within the noise).",
            params: vec![
                ParamSpec::int("work_ms", 50, 1, 10_000, "ms", "total busy work per task size, split into tasks"),
                ParamSpec::choice(
                    "task_us",
                    "sweep",
                    &["sweep", "1", "10", "100", "1000", "10000"],
                    "task size in µs: every size, or one",
                ),
            ],
            variants: policies::variants(),
            baseline: "seq",
            chart_metric: Some("overhead/task"),
            shows_timeline: true,
            quick: &["work_ms=2", "task_us=sweep"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let chosen = params.text("task_us");
        let work_ns = params.int("work_ms") as u64 * 1_000_000;
        let sizes: Vec<u64> =
            SIZES_US.iter().copied().filter(|size| chosen == "sweep" || size.to_string() == chosen).collect();
        let spinner = Spinner::calibrate();
        let batches = sizes
            .iter()
            .map(|&size| {
                let tasks = (work_ns / (size * 1000)).max(1) as usize;
                // The same tasks run plainly, the fastest of three, as the yardstick for overhead.
                let plain = || {
                    let start = Instant::now();
                    (0..tasks).for_each(|_| spinner.spin(size as f64 * 1000.0));
                    start.elapsed().as_secs_f64()
                };
                let plain_seconds = (0..3).map(|_| plain()).fold(f64::INFINITY, f64::min);
                Batch { size_us: size, tasks, metric: metric_name(size), plain_seconds }
            })
            .collect();
        Ok(Box::new(Sizes { batches, spinner }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "each batch does the work it is given: one thread runs every task size in 0.8–1.2× its tasks' total \
                 work (fastest runs)",
                |facts| {
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for (size, tasks) in batches(facts)? {
                        let Ok(ms) = facts.metric_min("seq", 1, metric_name(size)) else { continue };
                        let work_ms = tasks as f64 * size as f64 / 1e3;
                        holds &= (0.8 * work_ms..=1.2 * work_ms).contains(&ms);
                        seen.push(format!("{size} µs: {ms:.1} ms of {work_ms:.0}"));
                    }
                    verdict(holds, seen.join(", "), "the spinner's calibration is off on this machine")
                },
            ),
            Claim::new(
                "tiny tasks drown a shared queue: with 1 µs tasks on 1 thread fifo pays ≥ 200 ns per task beyond the \
                 work, ≥ 2× what work stealing pays (median runs)",
                |facts| {
                    let fifo = facts.metric("fifo", 1, "overhead/task")?;
                    let steal = facts.metric("steal", 1, "overhead/task")?;
                    if facts.text("task_us")? != "sweep" && facts.text("task_us")? != "1" {
                        return Err(not_testable("the run had no 1 µs tasks"));
                    }
                    verdict(
                        fifo >= 200.0 && fifo >= 2.0 * steal,
                        format!("overhead per 1 µs task: fifo {fifo:.0} ns, steal {steal:.0} ns"),
                        "another program slowed the stealing run",
                    )
                },
            ),
            Claim::new(
                "huge tasks leave threads idle: at 2 threads no policy runs the 10 ms tasks faster than ⌈tasks ÷ 2⌉ \
                 tasks' time on one thread, more than half their work when the count is odd (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let Some((_, tasks)) = batches(facts)?.into_iter().find(|(size, _)| *size == 10_000) else {
                        return Err(not_testable("the run had no 10 ms tasks"));
                    };
                    // A task's length as one thread measured it in this run, not as the spinner's
                    // calibration promised: the machine's pace drifts between the two.
                    let task_ms = facts.metric_min("seq", 1, "10000 µs tasks")? / tasks as f64;
                    let floor = tasks.div_ceil(2) as f64 * task_ms;
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for variant in ["static", "fifo", "steal", "rayon"] {
                        let Ok(ms) = facts.metric_min(variant, 2, "10000 µs tasks") else { continue };
                        holds &= ms >= 0.95 * floor;
                        seen.push(format!("{variant} {ms:.1} ms"));
                    }
                    verdict(
                        holds,
                        format!(
                            "{tasks} tasks of {task_ms:.1} ms at 2 threads (at least {floor:.1} ms): {}",
                            seen.join(", ")
                        ),
                        "a bug in the timing",
                    )
                },
            ),
        ]
    }
}

/// The run's (task size in µs, task count) pairs, as `prepare` cut them.
fn batches(facts: &Facts<'_>) -> Result<Vec<(u64, u64)>, Verdict> {
    let (chosen, work_ns) = (facts.text("task_us")?, facts.param("work_ms")? as u64 * 1_000_000);
    Ok(SIZES_US
        .iter()
        .filter(|size| chosen == "sweep" || size.to_string() == chosen)
        .map(|&size| (size, (work_ns / (size * 1000)).max(1)))
        .collect())
}

fn metric_name(size_us: u64) -> &'static str {
    match size_us {
        1 => "1 µs tasks",
        10 => "10 µs tasks",
        100 => "100 µs tasks",
        1_000 => "1000 µs tasks",
        _ => "10000 µs tasks",
    }
}

struct Batch {
    size_us: u64,
    tasks: usize,
    metric: &'static str,
    /// The tasks run in a plain loop, measured while preparing.
    plain_seconds: f64,
}

struct Sizes {
    batches: Vec<Batch>,
    spinner: Spinner,
}

impl Workload for Sizes {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        self.batches.iter().map(|batch| policies::expected(batch.tasks)).sum()
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(SizesCell { sizes: self, runner: Runner::new(variant, threads)? }))
    }
}

struct SizesCell<'a> {
    sizes: &'a Sizes,
    runner: Runner,
}

impl Cell for SizesCell<'_> {
    fn threads(&self) -> usize {
        self.runner.threads()
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let mut digest = 0;
        for (index, batch) in self.sizes.batches.iter().enumerate() {
            let durations = vec![batch.size_us as f64 * 1000.0; batch.tasks];
            let start = context.now();
            digest += self.runner.run(&durations, self.sizes.spinner, context)?;
            let seconds = start.elapsed().as_secs_f64();
            context.record(batch.metric, "ms", seconds * 1e3);
            if index == 0 {
                // Thread time beyond the plain loop's, spread over the tasks; a policy that adds
                // nothing reads 0 (its runs then differ from the yardstick by noise alone).
                let extra = (seconds * self.runner.threads() as f64 - batch.plain_seconds).max(0.0);
                context.record("overhead/task", "ns", extra / batch.tasks as f64 * 1e9);
            }
        }
        Ok(digest)
    }
}
