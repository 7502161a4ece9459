//! `broken-pool`: a worker process killed in the middle of `map` — Python's BrokenProcessPool
//! against a supervisor that replaces the worker and runs its tasks again.

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamError, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::StartMethod;
use conlab_core::pymodel::process::{Job, OnDeath, ProcessPool};
use conlab_core::pymodel::DEFAULT_OP_NS;

pub struct BrokenPool;

/// Bytecode instructions per iteration of a task's loop.
const OPS_PER_ITERATION: f64 = 5.0;

impl Experiment for BrokenPool {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "broken-pool",
            title: "A worker dies mid-map: a broken pool vs a supervisor",
            topic: super::NAME,
            concept: "BrokenProcessPool; supervision",
            teaches: "A process pool's worker can die under it — killed by the OOM killer, a segfault in a C \
                      extension, `kill -9`. Here the pool itself kills one (SIGKILL) after `kill_after` tasks are \
                      done, while it holds tasks. The pool reads every worker's pipe at once, so it notices the \
                      death the moment the kernel closes the dead worker's end — the `detected after` column. \
                      Python's ProcessPoolExecutor then declares itself broken: every task not finished, on any \
                      worker, fails with BrokenProcessPool and the pool is unusable (`fail`). A supervisor \
                      (`supervise`, Erlang's way; Python's `multiprocessing.Pool` restarts workers but loses their \
                      tasks) starts a replacement and runs the dead worker's tasks again. Either way nothing hangs \
                      and nothing is lost silently: the run lists which tasks failed or were retried. In a browser \
                      the pool terminates a Web Worker process (`Worker.terminate()`), so it knows of the death at \
                      once — a worker that died on its own would be noticed only when a reply timed out, since its \
                      `error` event cannot reach a run that blocks its thread —, and the replacement is a new Web \
                      Worker that a helper worker starts and that loads its own wasm instance.",
            params: vec![
                ParamSpec::int("tasks", 40, 2, 100_000, "tasks", "tasks in the map"),
                ParamSpec::float("task_ms", 1.0, 0.01, 1_000.0, "ms", "each task's Python loop, at CPython's pace"),
                ParamSpec::int("kill_after", 10, 0, 100_000, "tasks", "tasks done before a worker is killed"),
            ],
            variants: vec![
                VariantSpec::sweep("fail", "ProcessPoolExecutor: the pool breaks, unfinished tasks fail"),
                VariantSpec::sweep("supervise", "a supervisor: a replacement worker reruns the dead one's tasks"),
            ],
            baseline: "fail",
            work_unit: Some("tasks"),
            quick: &["tasks=12", "kill_after=3"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let (tasks, kill_after) = (params.count("tasks"), params.count("kill_after"));
        if kill_after >= tasks {
            return Err(RunError::Param(ParamError {
                param: "kill_after".into(),
                message: format!(
                    "expected an integer from 0 to {} (fewer than `tasks`, {tasks}), got `{kill_after}`",
                    tasks - 1
                ),
            }));
        }
        let iterations = (params.float("task_ms") * 1e6 / (DEFAULT_OP_NS * OPS_PER_ITERATION)).max(1.0) as i64;
        let task = Job::Task { iterations, io_us: 0, op_ns: DEFAULT_OP_NS, spinner: Spinner::calibrate() };
        Ok(Box::new(Map { jobs: vec![task; tasks], iterations, kill_after }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("the pool notices a killed worker within 50 ms, in every run", |facts| {
                facts.native("the pool terminates the Web Worker itself and knows at once")?;
                let mut slowest = Vec::new();
                for variant in ["fail", "supervise"] {
                    for threads in facts.threads_of(variant) {
                        slowest.push(facts.metric_max(variant, threads, "detected after")?);
                    }
                }
                let Some(worst) = slowest.iter().copied().reduce(f64::max) else {
                    return Err(not_testable("no pool ran"));
                };
                verdict(
                    worst < 50.0,
                    format!("the slowest detection: {worst:.2} ms after the kill"),
                    "the pool did not read the dead worker's end until another task finished (a bug)",
                )
            }),
            Claim::new(
                "a broken pool fails what it had not finished, and nothing else: with `fail`, ≥ 1 task fails \
                 and completed + failed = tasks (every run)",
                |facts| {
                    let tasks = facts.param("tasks")?;
                    let threads = *facts.threads_of("fail").first().ok_or_else(|| not_testable("fail did not run"))?;
                    let failed = facts.metric_of("fail", threads, "failed")?;
                    let completed = facts.metric_of("fail", threads, "completed")?;
                    let sums: Vec<f64> = failed.values.iter().zip(&completed.values).map(|(f, c)| f + c).collect();
                    verdict(
                        failed.min >= 1.0 && sums.iter().all(|&sum| sum == tasks),
                        format!(
                            "{threads} worker(s): {:.0}–{:.0} of {tasks} tasks failed, the rest completed",
                            failed.min, failed.max
                        ),
                        "the kill landed after the last task (lower `kill_after`)",
                    )
                },
            ),
            Claim::new(
                "a supervisor loses nothing: with `supervise` every task completes and ≥ 1 was retried (every run)",
                |facts| {
                    let tasks = facts.param("tasks")?;
                    let threads =
                        *facts.threads_of("supervise").first().ok_or_else(|| not_testable("supervise did not run"))?;
                    let completed = facts.metric_of("supervise", threads, "completed")?;
                    let retried = facts.metric_of("supervise", threads, "retried")?;
                    verdict(
                        completed.min == tasks && retried.min >= 1.0,
                        format!(
                            "{threads} worker(s): {:.0} of {tasks} completed, {:.0}–{:.0} retried",
                            completed.min, retried.min, retried.max
                        ),
                        "the kill landed after the last task (lower `kill_after`)",
                    )
                },
            ),
        ]
    }
}

struct Map {
    jobs: Vec<Job>,
    iterations: i64,
    kill_after: usize,
}

impl Workload for Map {
    fn work_units(&self) -> Option<f64> {
        Some(self.jobs.len() as f64)
    }

    /// Every task accounted for: its count if it completed, its count again if it was reported
    /// failed — a task lost without a word is missing from the sum.
    fn expected(&self) -> Digest {
        self.iterations as u64 * self.jobs.len() as u64
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        ProcessPool::check_method(StartMethod::PLATFORM_DEFAULT)?;
        let on_death = if variant == "supervise" { OnDeath::Replace } else { OnDeath::Fail };
        Ok(Box::new(MapCell { map: self, on_death, workers: threads }))
    }
}

struct MapCell<'a> {
    map: &'a Map,
    on_death: OnDeath,
    workers: usize,
}

impl Cell for MapCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Map { jobs, iterations, kill_after } = self.map;
        // Natively forked workers: their start is cheap and needs no executable.
        let mut pool = ProcessPool::start_with(self.workers, StartMethod::PLATFORM_DEFAULT)?;
        let outcome =
            pool.map_supervised(jobs, self.on_death, Some(*kill_after), &|| context.check_cancel().is_ok())?;
        context.check_cancel()?;
        let completed = outcome.replies.iter().flatten().count();
        let failed = jobs.len() - completed;
        context.record("completed", "tasks", completed as f64);
        context.record("failed", "tasks", failed as f64);
        context.record("retried", "tasks", outcome.retried.len() as f64);
        if let Some(after) = outcome.detected_after {
            context.record("detected after", "ms", after.as_secs_f64() * 1e3);
        }
        if let Some(broken) = &outcome.broken {
            context.report(broken.clone());
        }
        if !outcome.retried.is_empty() {
            let retried: Vec<String> = outcome.retried.iter().map(usize::to_string).collect();
            context.report(format!(
                "a worker was killed holding tasks {}: a replacement ran them again",
                retried.join(", ")
            ));
        }
        // A failed task is accounted for only because the pool said so.
        let reported = if outcome.broken.is_some() { failed } else { 0 };
        let counted: u64 = outcome.replies.iter().flatten().map(|reply| reply.value as u64).sum();
        Ok(counted + *iterations as u64 * reported as u64)
    }
}
