//! `imbalance`: tasks of unequal sizes — equal blocks up front vs a shared queue vs work
//! stealing — against the cap no scheduler can beat: total work / largest task.

use super::policies::{self, Runner};
use crate::experiment::{Cell, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, Workload};
use conlab_core::kernels::spin::Spinner;
use conlab_core::kernels::splitmix64;

pub struct Imbalance;

impl Experiment for Imbalance {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "imbalance",
            title: "Load imbalance: static split vs queue vs stealing",
            topic: super::NAME,
            concept: "load balancing; Pool.map over uneven tasks",
            teaches: "Real tasks are rarely equal. `1:2:3:4` is the course example (loops of 1e7…4e7): cut into two \
                      equal blocks up front, one thread gets 1+2 and the other 3+4, so it finishes at 7 of 10 units — \
                      1.43×. A shared queue hands out the next task to whichever thread is free (1.67×). Work stealing \
                      (ours and rayon's) splits the range in halves and a thief takes the older half, 3+4 — the static \
                      split again: stealing balances many small tasks, not four big ones. No scheduler beats total / \
                      largest task = 2.5× however many threads it has (the `speedup cap` column). With `uniform` tasks \
                      every policy is fine; `heavy-tailed` (Pareto sizes, a few huge tasks) is where static blocks \
                      collapse and dynamic scheduling earns its overhead.",
            params: vec![
                ParamSpec::choice(
                    "sizes",
                    "1:2:3:4",
                    &["1:2:3:4", "uniform", "heavy-tailed"],
                    "how task sizes are distributed",
                ),
                ParamSpec::int("work_ms", 100, 1, 10_000, "ms", "total busy work of all tasks together"),
                ParamSpec::int(
                    "tasks",
                    64,
                    1,
                    100_000,
                    "tasks",
                    "number of tasks for uniform and heavy-tailed (1:2:3:4 has 4)",
                ),
            ],
            variants: policies::variants(),
            baseline: "seq",
            shows_timeline: true,
            quick: &["work_ms=4", "sizes=heavy-tailed", "tasks=16"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let weights = weights(params.text("sizes"), params.count("tasks"));
        let total: f64 = weights.iter().sum();
        let work_ns = params.int("work_ms") as f64 * 1e6;
        let durations: Vec<f64> = weights.iter().map(|w| w / total * work_ns).collect();
        let largest = durations.iter().copied().fold(0.0, f64::max);
        Ok(Box::new(Tasks { cap: work_ns / largest, durations, spinner: Spinner::calibrate() }))
    }
}

/// Relative task sizes of a preset.
fn weights(preset: &str, tasks: usize) -> Vec<f64> {
    match preset {
        "1:2:3:4" => vec![1.0, 2.0, 3.0, 4.0],
        "uniform" => vec![1.0; tasks],
        // Pareto with α = 1.1: the largest of 64 tasks is typically a fifth of the total.
        _ => {
            let mut state = 0xC0FFEE;
            (0..tasks)
                .map(|_| {
                    let uniform = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                    (1.0 - uniform).powf(-1.0 / 1.1)
                })
                .collect()
        }
    }
}

struct Tasks {
    durations: Vec<f64>,
    /// total / largest task.
    cap: f64,
    spinner: Spinner,
}

impl Workload for Tasks {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        policies::expected(self.durations.len())
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(TasksCell { tasks: self, runner: Runner::new(variant, threads)? }))
    }
}

struct TasksCell<'a> {
    tasks: &'a Tasks,
    runner: Runner,
}

impl Cell for TasksCell<'_> {
    fn threads(&self) -> usize {
        self.runner.threads()
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        context.record("speedup cap", "×", self.tasks.cap.min(self.runner.threads() as f64));
        self.runner.run(&self.tasks.durations, self.tasks.spinner, context)
    }
}
