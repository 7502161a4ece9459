//! `executor-patterns`: the `concurrent.futures` idioms on a FIFO pool — completion order with
//! `as_completed` vs `map`, `wait(FIRST_COMPLETED)`, cancelling queued vs running tasks, done
//! callbacks and `FIRST_EXCEPTION` — with a timeline of every submit, start and finish.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::kernels::splitmix64;
use conlab_core::platform::Instant;
use conlab_core::sched::fifo::{as_completed, wait, FifoPool, ReturnWhen};
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::Arc;

pub struct ExecutorPatterns;

impl Experiment for ExecutorPatterns {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "executor-patterns",
            title: "Executor patterns: as_completed, map, wait, cancel, callbacks",
            topic: super::NAME,
            concept: "concurrent.futures (ThreadPoolExecutor)",
            teaches: "Tasks that sleep like I/O calls, of mixed lengths, the longest submitted first, on k workers. \
                      `as_completed` hands you each result as soon as it exists; `map` returns them in input order, so \
                      the first result waits for the slowest task (compare `first result`). `wait(FIRST_COMPLETED)` \
                      returns at the first completion — and `cancel()` then stops only the tasks still queued: the k \
                      already running cannot be cancelled (`cancelled` vs `ran`). Done callbacks run on the worker \
                      that finished the task. `FIRST_EXCEPTION` returns when a task raises. Record a trace to see the \
                      submissions (marks on lane 0) and each worker's tasks.",
            params: vec![
                ParamSpec::int("tasks", 8, 1, 64, "tasks", "tasks submitted per run"),
                ParamSpec::int(
                    "step_ms",
                    5,
                    1,
                    1000,
                    "ms",
                    "task i sleeps a multiple of this, 1× … tasks×, the longest first",
                ),
            ],
            variants: vec![
                VariantSpec::sweep("as-completed", "submit all, take results in completion order"),
                VariantSpec::sweep("map", "Executor.map: results in input order"),
                VariantSpec::sweep("wait-first", "wait(FIRST_COMPLETED), then cancel the rest"),
                VariantSpec::sweep("cancel", "submit all, cancel all at once"),
                VariantSpec::sweep("callbacks", "add_done_callback on every future"),
                VariantSpec::sweep("first-exception", "one task raises; wait(FIRST_EXCEPTION)"),
            ],
            baseline: "as-completed",
            chart_metric: Some("first result"),
            shows_timeline: true,
            quick: &["tasks=5", "step_ms=1"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let tasks = params.count("tasks");
        let step = Duration::from_millis(params.int("step_ms") as u64);
        // A fixed shuffle of 1..=tasks steps, with the longest task submitted first.
        let mut multiples: Vec<u32> = (1..=tasks as u32).collect();
        let mut state = 7;
        for i in (1..multiples.len()).rev() {
            multiples.swap(i, (splitmix64(&mut state) % (i as u64 + 1)) as usize);
        }
        let longest = multiples.iter().position(|&m| m == tasks as u32).expect("a permutation");
        multiples.swap(0, longest);
        Ok(Box::new(Scenario { durations: multiples.iter().map(|&m| step * m).collect() }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "as_completed hands over the first result sooner than map, whose first result waits for the slowest \
                 task (at the most workers, every run)",
                |facts| {
                    let workers = facts.threads_of("map").into_iter().max().ok_or_else(|| not_testable("map did not run"))?;
                    if workers < 2 {
                        return Err(not_testable("with one worker the longest task, submitted first, is also the first done"));
                    }
                    let soonest = facts.metric_of("as-completed", workers, "first result")?.max;
                    let ordered = facts.metric_of("map", workers, "first result")?.min;
                    verdict(
                        soonest < ordered,
                        format!("first result at {workers} workers: as_completed ≤ {soonest:.1} ms, map ≥ {ordered:.1} ms"),
                        "a bug in the executor",
                    )
                },
            ),
            Claim::new(
                "cancel() stops only queued tasks: after wait(FIRST_COMPLETED) every task either ran or was cancelled, \
                 and at least one per worker ran",
                |facts| {
                    let tasks = facts.param("tasks")?;
                    let mut seen = Vec::new();
                    for workers in facts.threads_of("wait-first") {
                        let ran = facts.metric_of("wait-first", workers, "ran")?;
                        let cancelled = facts.metric_of("wait-first", workers, "cancelled")?;
                        let whole = ran.values.iter().zip(&cancelled.values).all(|(r, c)| r + c == tasks);
                        if !whole || ran.min < workers as f64 {
                            return verdict(false, format!("{workers} workers: ran {:.0}, cancelled {:.0}", ran.median, cancelled.median), "a bug in the executor");
                        }
                        seen.push(format!("{workers} workers: ran {:.0}, cancelled {:.0}", ran.median, cancelled.median));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("wait-first did not run"));
                    }
                    verdict(true, seen.join("; "), "")
                },
            ),
            Claim::new("FIRST_EXCEPTION returns when a task raises, before every task is done", |facts| {
                let tasks = facts.param("tasks")?;
                let workers = facts.threads_of("first-exception").into_iter().max().ok_or_else(|| not_testable("first-exception did not run"))?;
                let done = facts.metric_of("first-exception", workers, "done at return")?.max;
                verdict(done < tasks, format!("{done:.0} of {tasks} done when wait returned ({workers} workers)"), "the raising task was the last to finish")
            }),
        ]
    }
}

struct Scenario {
    durations: Vec<Duration>,
}

impl Scenario {
    /// Σ (i + 1): every task's value, once.
    fn all_values(&self) -> u64 {
        let n = self.durations.len() as u64;
        n * (n + 1) / 2
    }
}

impl Workload for Scenario {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every variant accounts for every task once: by its value, or as cancelled.
    fn expected(&self) -> Digest {
        self.all_values()
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        FifoPool::check(threads)?;
        Ok(Box::new(PatternCell { scenario: self, variant: variant.to_string(), workers: threads }))
    }
}

struct PatternCell<'a> {
    scenario: &'a Scenario,
    variant: String,
    workers: usize,
}

impl Cell for PatternCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let durations = &self.scenario.durations;
        // Task i sleeps (cancellably) and returns i + 1; with `raise`, the second-shortest task fails.
        let raise_at = durations.iter().enumerate().min_by_key(|(i, d)| (**d, *i)).map_or(0, |(i, _)| i);
        let task = |i: usize, raise: bool| {
            move || -> Result<u64, String> {
                context.sleep(durations[i]).map_err(|error| error.to_string())?;
                if raise && i == raise_at {
                    return Err(format!("task {i} raised"));
                }
                Ok(i as u64 + 1)
            }
        };
        let start = Instant::now();
        let first_result =
            |context: &RunContext| context.record("first result", "ms", start.elapsed().as_secs_f64() * 1e3);
        let digest = FifoPool::run(self.workers, context.trace(), |pool| -> u64 {
            let submit_all = |raise: bool| -> Vec<_> {
                (0..durations.len()).map(|i| pool.submit_fallible(task(i, raise)).expect("the pool is open")).collect()
            };
            match self.variant.as_str() {
                "as-completed" => {
                    let futures = submit_all(false);
                    let mut sum = 0;
                    for (n, future) in as_completed(&futures, None).enumerate() {
                        if n == 0 {
                            first_result(context);
                        }
                        sum += future.ok().and_then(|f| f.result(None).ok()).unwrap_or(0);
                    }
                    sum
                }
                "map" => {
                    let mut sum = 0;
                    let results = pool
                        .map(|i: usize| task(i, false)().unwrap_or(0), 0..durations.len(), 1)
                        .expect("the pool is open");
                    for (n, value) in results.enumerate() {
                        if n == 0 {
                            first_result(context);
                        }
                        sum += value.unwrap_or(0);
                    }
                    sum
                }
                "wait-first" | "cancel" => {
                    let futures = submit_all(false);
                    if self.variant == "wait-first" {
                        wait(&futures, ReturnWhen::FirstCompleted, None);
                        first_result(context);
                    }
                    let cancelled: Vec<bool> = futures.iter().map(|future| future.cancel()).collect();
                    context.record("cancelled", "tasks", cancelled.iter().filter(|c| **c).count() as f64);
                    context.record("ran", "tasks", cancelled.iter().filter(|c| !**c).count() as f64);
                    // Cancelled tasks are accounted for by their value; the others by their result.
                    futures
                        .iter()
                        .zip(&cancelled)
                        .map(|(f, c)| if *c { f.id() as u64 + 1 } else { f.result(None).unwrap_or(0) })
                        .sum()
                }
                "callbacks" => {
                    let sum = Arc::new(AtomicU64::new(0));
                    let calls = Arc::new(AtomicU64::new(0));
                    let futures = submit_all(false);
                    for future in &futures {
                        let (sum, calls) = (Arc::clone(&sum), Arc::clone(&calls));
                        future.add_done_callback(move |done| {
                            sum.fetch_add(done.result(None).unwrap_or(0), Ordering::Relaxed);
                            calls.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    // Callbacks run after the future is marked done: shutdown(wait) lets them finish.
                    pool.shutdown(true, false);
                    context.record("callbacks run", "calls", calls.load(Ordering::Relaxed) as f64);
                    sum.load(Ordering::Relaxed)
                }
                _ => {
                    let futures = submit_all(true);
                    let waited = wait(&futures, ReturnWhen::FirstException, None);
                    first_result(context);
                    context.record("done at return", "tasks", waited.done.len() as f64);
                    let failed = futures
                        .iter()
                        .find(|f| f.exception(None).ok().flatten().is_some())
                        .map_or(0, |f| f.id() as u64 + 1);
                    // The failed task is accounted for by its number, the rest by their values.
                    futures.iter().map(|f| f.result(None).unwrap_or(0)).sum::<u64>() + failed
                }
            }
        })?;
        context.check_cancel()?;
        Ok(digest)
    }
}
