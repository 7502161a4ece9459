//! `granularity`: a fixed amount of work cut into tasks of 1 µs … 10 ms, under each scheduling
//! policy — the U-curve of per-task overhead against load imbalance.

use super::policies::{self, Runner};
use crate::experiment::{Cell, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, Workload};
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
                      time − the same tasks run plainly, per task).",
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
                // The same tasks run plainly, once, as the yardstick for overhead.
                let start = Instant::now();
                (0..tasks).for_each(|_| spinner.spin(size as f64 * 1000.0));
                Batch { size_us: size, tasks, metric: metric_name(size), plain_seconds: start.elapsed().as_secs_f64() }
            })
            .collect();
        Ok(Box::new(Sizes { batches, spinner }))
    }
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
                // Thread time beyond the plain loop's, spread over the tasks (noise can make it
                // slightly negative for the policies that add nothing).
                let extra = seconds * self.runner.threads() as f64 - batch.plain_seconds;
                context.record("overhead/task", "ns", extra / batch.tasks as f64 * 1e9);
            }
        }
        Ok(digest)
    }
}
