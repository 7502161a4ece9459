//! `io-fanout`: blocking I/O from one thread, a thread per task, and a pool of k workers.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::kernels::splitmix64;
use conlab_core::platform::{check_team_size, run_team};
use conlab_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use conlab_core::trace::SpanKind;
use conlab_core::units::format_seconds;

pub struct IoFanout;

impl Experiment for IoFanout {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "io-fanout",
            title: "I/O fan-out: sequential vs thread per task vs a pool of k",
            topic: super::NAME,
            concept: "ThreadPoolExecutor(max_workers=k) for I/O-bound work",
            teaches: "N tasks each block for L ms, like a network request. One thread does them one after another in \
                      N·L; a thread per task overlaps all the waits and finishes in about L; a pool of k workers — \
                      ThreadPoolExecutor(max_workers=k) — runs them in ceil(N/k) waves, ceil(N/k)·L. Threads help \
                      I/O-bound work even on one core (and even under a GIL) because a blocked thread uses no CPU: \
                      the speedup comes from overlapping waits, not from computing in parallel.",
            params: vec![
                ParamSpec::int("tasks", 8, 1, 256, "tasks", "number of simulated I/O calls (N)"),
                ParamSpec::float("latency", 10.0, 0.1, 1000.0, "ms", "blocking time of each call (L)"),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "one thread, one call after another: N·L"),
                VariantSpec::fixed("thread-per-task", "N threads, one call each: ≈ L"),
                VariantSpec::sweep("pool", "k worker threads taking calls from a shared queue: ceil(N/k)·L"),
            ],
            baseline: "seq",
            work_unit: Some("tasks"),
            quick: &["tasks=6", "latency=2.0"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let tasks = params.count("tasks");
        Ok(Box::new(Calls { tasks, latency: Duration::from_secs_f64(params.float("latency") / 1000.0) }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "a thread per task overlaps the waits: it takes under half of one thread's N·L (fastest runs)",
                |facts| {
                    let (tasks, latency_ms) = (facts.param("tasks")?, facts.param("latency")?);
                    if tasks < 3.0 {
                        return Err(not_testable("with fewer than 3 tasks there is little to overlap (tasks ≥ 3)"));
                    }
                    let (overlapped, serial) = (facts.fastest_fixed("thread-per-task")?, facts.fastest_fixed("seq")?);
                    verdict(
                        overlapped <= serial / 2.0,
                        format!(
                            "thread-per-task {} vs seq {} (N·L = {})",
                            format_seconds(overlapped),
                            format_seconds(serial),
                            format_seconds(tasks * latency_ms / 1e3)
                        ),
                        "starting the threads costs more than the waits they overlap (raise `latency`)",
                    )
                },
            ),
            Claim::new(
                "a pool of k workers runs ⌈N/k⌉ waves: each k's fastest run is within 25% (+1 ms) of ⌈N/k⌉·L",
                |facts| {
                    let (tasks, latency) = (facts.param("tasks")?, facts.param("latency")? / 1e3);
                    let mut seen = Vec::new();
                    let mut off = Vec::new();
                    for k in facts.threads_of("pool") {
                        let waves = (tasks / k as f64).ceil();
                        let time = facts.fastest("pool", k)?;
                        let expected = waves * latency;
                        seen.push(format!("k={k}: {} for {waves} × L", format_seconds(time)));
                        if time < 0.95 * expected || time > 1.25 * expected + 1e-3 {
                            off.push(k);
                        }
                    }
                    if seen.is_empty() {
                        return Err(not_testable("the pool did not run"));
                    }
                    verdict(
                        off.is_empty(),
                        seen.join(", "),
                        "waking the workers took longer than a wave (a busy machine)",
                    )
                },
            ),
        ]
    }
}

struct Calls {
    tasks: usize,
    latency: Duration,
}

/// Each task's answer; the digest sums them, so a task lost or run twice changes it.
fn answer(task: usize) -> u64 {
    let mut state = task as u64;
    splitmix64(&mut state)
}

impl Workload for Calls {
    fn work_units(&self) -> Option<f64> {
        Some(self.tasks as f64)
    }

    fn expected(&self) -> Digest {
        (0..self.tasks).map(answer).fold(0, u64::wrapping_add)
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let workers = match variant {
            "seq" => 1,
            "thread-per-task" => self.tasks,
            _ => threads,
        };
        // Fail while setting up, not in the timed run, if the platform cannot start this many.
        check_team_size(workers)?;
        Ok(Box::new(CallsCell { calls: self, workers }))
    }
}

struct CallsCell<'a> {
    calls: &'a Calls,
    workers: usize,
}

impl Cell for CallsCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    /// Workers take task numbers from a shared counter (the pool's queue) until none are left;
    /// with one worker per task each takes exactly one.
    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let next_task = AtomicUsize::new(0);
        let digest = AtomicU64::new(0);
        let Calls { tasks, latency } = *self.calls;
        run_team(self.workers, |member| {
            let mut lane = context.trace().lane(member.index);
            loop {
                let task = next_task.fetch_add(1, Ordering::Relaxed);
                if task >= tasks {
                    break;
                }
                if lane.span(SpanKind::Wait, || format!("call {task}"), || context.sleep(latency)).is_err() {
                    break;
                }
                digest.fetch_add(answer(task), Ordering::Relaxed);
            }
        })?;
        context.check_cancel()?;
        Ok(digest.into_inner())
    }
}
