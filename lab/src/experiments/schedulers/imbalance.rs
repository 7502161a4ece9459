//! `imbalance`: tasks of unequal sizes — equal blocks up front vs a shared queue vs work
//! stealing — against the cap no scheduler can beat: total work / largest task.

use super::policies::{self, Runner};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::kernels::splitmix64;
use conlab_core::sched::partition;

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
                      largest task (the `speedup cap` column) however many threads it has. `increasing` is the \
                      triangular loop (task i costs i, as rows of a triangular matrix or primes tested up to i do): \
                      the static split's last block holds three quarters of the work at 2 threads — 1.33× — while \
                      the dynamic schedulers reach 2×. With `uniform` tasks every policy is fine; `heavy-tailed` \
                      (Pareto sizes) ends with a few huge tasks that cap every policy alike.",
            params: vec![
                ParamSpec::choice(
                    "sizes",
                    "1:2:3:4",
                    &["1:2:3:4", "increasing", "uniform", "heavy-tailed"],
                    "how task sizes are distributed",
                ),
                ParamSpec::int("work_ms", 100, 1, 10_000, "ms", "total busy work of all tasks together"),
                ParamSpec::int(
                    "tasks",
                    64,
                    1,
                    100_000,
                    "tasks",
                    "number of tasks for increasing, uniform and heavy-tailed (1:2:3:4 has 4)",
                ),
            ],
            variants: policies::variants(),
            baseline: "seq",
            shows_timeline: true,
            quick: &["work_ms=8"],
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

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "no policy beats total ÷ largest task: every speedup stays within 5% of the speedup cap (fastest runs)",
                |facts| {
                    let weights = weights(facts.text("sizes")?, facts.param("tasks")? as usize);
                    let cap = weights.iter().sum::<f64>() / weights.iter().copied().fold(0.0, f64::max);
                    let mut best = (String::new(), 0.0);
                    for variant in ["static", "fifo", "steal", "rayon"] {
                        for threads in facts.threads_of(variant) {
                            let speedup = facts.speedup(variant, threads)?;
                            if speedup > best.1 {
                                best = (format!("{variant} at {threads}"), speedup);
                            }
                        }
                    }
                    verdict(
                        best.1 <= 1.05 * cap,
                        format!("best: {} {:.2}× against a cap of {cap:.2}×", best.0, best.1),
                        "a bug in the scheduler or in the sizes",
                    )
                },
            ),
            Claim::new(
                "the static split is held to its larger block: at 2 threads its speedup stays within 5% of total ÷ \
                 larger block (fastest runs)",
                |facts| {
                    let bound = static_bound(facts)?;
                    let speedup = facts.speedup("static", 2)?;
                    verdict(
                        speedup <= 1.05 * bound,
                        format!("static {speedup:.2}×, its blocks allow {bound:.2}×"),
                        "a bug in the static split",
                    )
                },
            ),
            Claim::new(
                "where the blocks are unequal (they allow under 1.6×), a shared queue beats the static split by ≥ 10% \
                 at 2 threads (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let bound = static_bound(facts)?;
                    if bound >= 1.6 {
                        return Err(not_testable(format!(
                            "the static blocks are nearly equal here ({bound:.2}×); try sizes=increasing"
                        )));
                    }
                    let (fifo, fixed) = (facts.speedup("fifo", 2)?, facts.speedup("static", 2)?);
                    verdict(
                        fifo >= 1.1 * fixed,
                        format!("at 2 threads: fifo {fifo:.2}×, static {fixed:.2}× (its blocks allow {bound:.2}×)"),
                        "another program held a core",
                    )
                },
            ),
        ]
    }
}

/// Total work ÷ the larger of the static split's two blocks: its best speedup at 2 threads.
fn static_bound(facts: &Facts<'_>) -> Result<f64, Verdict> {
    let weights = weights(facts.text("sizes")?, facts.param("tasks")? as usize);
    let block = |index| weights[partition::block(weights.len(), 2, index)].iter().sum::<f64>();
    Ok(weights.iter().sum::<f64>() / block(0).max(block(1)))
}

/// Relative task sizes of a preset.
fn weights(preset: &str, tasks: usize) -> Vec<f64> {
    match preset {
        "1:2:3:4" => vec![1.0, 2.0, 3.0, 4.0],
        "increasing" => (1..=tasks).map(|i| i as f64).collect(),
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
