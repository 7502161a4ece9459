//! `spawn-overhead`: what one unit of scheduled work costs — a new OS thread, a FIFO pool
//! submission, a steal-pool spawn or join, rayon's spawn or join, or a plain function call.

use std::hint::black_box;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::platform::{self, Instant, PlatformError, RayonPool};
use conlab_core::sched::fifo::{wait, FifoPool, ReturnWhen};
use conlab_core::sched::steal::StealPool;
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::Arc;

pub struct SpawnOverhead;

impl Experiment for SpawnOverhead {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "spawn-overhead",
            title: "What a task costs: thread vs pool vs join vs call",
            topic: super::NAME,
            concept: "thread creation cost; thread pools",
            teaches:
                "Each run schedules `tasks` empty tasks. A new OS thread per task costs tens of microseconds (the \
                      kernel creates and destroys a thread) — why pools exist. A ThreadPoolExecutor-style submission \
                      costs a lock, a queue node, a future and a wake-up; a work-stealing spawn a deque push; a `join` \
                      whose second half nobody steals costs little more than the call. The `ns per task` column \
                      excludes starting the pool (reported as `pool start`), which a long-lived pool pays once. In the \
                      browser the thread variant is skipped: a worker cannot start a thread and wait for it.",
            params: vec![ParamSpec::int("tasks", 10_000, 1, 10_000_000, "tasks", "empty tasks scheduled per run")],
            variants: vec![
                VariantSpec::fixed("thread", "std::thread::spawn + join per task (native only)"),
                VariantSpec::sweep("fifo-submit", "FifoPool::submit per task, then wait for all"),
                VariantSpec::sweep("steal-spawn", "StealPool scope.spawn per task"),
                VariantSpec::sweep("steal-join", "StealPool::join tree with one leaf per task"),
                VariantSpec::sweep("rayon-spawn", "rayon::scope spawn per task"),
                VariantSpec::sweep("rayon-join", "rayon::join tree with one leaf per task"),
                VariantSpec::fixed("call", "a plain (non-inlined) function call per task"),
            ],
            baseline: "thread",
            work_unit: Some("tasks"),
            chart_metric: Some("ns per task"),
            shows_timeline: true,
            quick: &["tasks=5000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Tasks(params.count("tasks"))))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "a new OS thread per task costs ≥ 10× a pool's submission (ns per task, median runs)",
                |facts| {
                    let thread = facts.metric("thread", 1, "ns per task")?;
                    let submit = facts.metric("fifo-submit", 1, "ns per task")?;
                    verdict(
                        thread >= 10.0 * submit,
                        format!("thread {thread:.0} ns, pool submission {submit:.0} ns"),
                        "thread creation is unusually cheap here",
                    )
                },
            ),
            Claim::new(
                "a work-stealing spawn costs ≤ ⅓ of a ThreadPoolExecutor submission (1 worker, median runs; an \
                 unstolen join costs about as much as a spawn)",
                |facts| {
                    let submit = facts.metric("fifo-submit", 1, "ns per task")?;
                    let spawn = facts.metric("steal-spawn", 1, "ns per task")?;
                    let join = facts.metric("steal-join", 1, "ns per task")?;
                    verdict(
                        3.0 * spawn <= submit,
                        format!("per task: submit {submit:.0} ns, spawn {spawn:.0} ns, join {join:.0} ns"),
                        "another program slowed one of the runs",
                    )
                },
            ),
        ]
    }
}

struct Tasks(usize);

impl Workload for Tasks {
    fn work_units(&self) -> Option<f64> {
        Some(self.0 as f64)
    }

    fn expected(&self) -> Digest {
        self.0 as u64
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let threads = if matches!(variant, "thread" | "call") { 1 } else { threads };
        let rayon = if variant.starts_with("rayon") { Some(RayonPool::new(threads)?) } else { None };
        match variant {
            "thread" => platform::spawn_and_join(|| ())?,
            "fifo-submit" => FifoPool::check(threads)?,
            _ => {}
        }
        Ok(Box::new(TasksCell { tasks: self.0, variant: variant.to_string(), threads, rayon }))
    }
}

struct TasksCell {
    tasks: usize,
    variant: String,
    threads: usize,
    rayon: Option<RayonPool>,
}

#[inline(never)]
fn task(count: &AtomicU64) {
    count.fetch_add(1, Ordering::Relaxed);
}

/// A join tree over `leaves` leaves.
fn join_tree(join: &(impl Fn(&(dyn Fn() + Sync), &(dyn Fn() + Sync)) + Sync), leaves: usize, count: &AtomicU64) {
    if leaves <= 1 {
        task(count);
        return;
    }
    let half = leaves / 2;
    join(&|| join_tree(join, half, count), &|| join_tree(join, leaves - half, count));
}

impl Cell for TasksCell {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let count = AtomicU64::new(0);
        let (tasks, threads) = (self.tasks, self.threads);
        // Starting a scoped pool is not part of a task's cost: time an empty pool, subtract it.
        let pool_start = match self.variant.as_str() {
            "fifo-submit" => Some(time(|| FifoPool::run(threads, context.trace(), |_| ()).map(drop))?),
            "steal-spawn" | "steal-join" => Some(time(|| StealPool::run(threads, context.trace(), |_| ()).map(drop))?),
            _ => None,
        };
        let start = Instant::now();
        match (self.variant.as_str(), &self.rayon) {
            ("thread", _) => {
                let shared = Arc::new(AtomicU64::new(0));
                let mut outcome = Ok(());
                context.repeat(tasks as u64, |_| {
                    let shared = Arc::clone(&shared);
                    outcome = outcome.clone().and_then(|()| platform::spawn_and_join(move || task(&shared)));
                });
                outcome?;
                count.store(shared.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            ("fifo-submit", _) => FifoPool::run(threads, context.trace(), |pool| {
                let mut futures = Vec::with_capacity(tasks);
                context.repeat(tasks as u64, |_| futures.push(pool.submit(|| task(&count)).expect("the pool is open")));
                wait(&futures, ReturnWhen::AllCompleted, None);
            })?,
            ("steal-spawn", _) => {
                StealPool::run(threads, context.trace(), |pool| {
                    pool.scope(|scope| {
                        context.repeat(tasks as u64, |_| scope.spawn(|_| task(&count)));
                    })
                })?;
            }
            ("steal-join", _) => {
                StealPool::run(threads, context.trace(), |pool| join_tree(&|a, b| _ = pool.join(a, b), tasks, &count))?;
            }
            ("rayon-spawn", Some(rayon)) => rayon.install(|| {
                rayon::scope(|scope| {
                    context.repeat(tasks as u64, |_| scope.spawn(|_| task(&count)));
                })
            }),
            ("rayon-join", Some(rayon)) => rayon.install(|| join_tree(&|a, b| _ = rayon::join(a, b), tasks, &count)),
            _ => {
                let call: fn(&AtomicU64) = black_box(task);
                context.repeat(tasks as u64, |_| call(&count));
            }
        }
        finish(context, start, pool_start, tasks, count.into_inner())
    }
}

fn time(f: impl FnOnce() -> Result<(), PlatformError>) -> Result<f64, PlatformError> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

fn finish(
    context: &RunContext,
    start: Instant,
    pool_start: Option<f64>,
    tasks: usize,
    count: u64,
) -> Result<Digest, RunError> {
    let seconds = start.elapsed().as_secs_f64();
    let net = (seconds - pool_start.unwrap_or(0.0)).max(0.0);
    context.record("ns per task", "ns", net / tasks as f64 * 1e9);
    if let Some(pool_start) = pool_start {
        context.record("pool start", "µs", pool_start * 1e6);
    }
    context.check_cancel()?;
    Ok(count)
}
