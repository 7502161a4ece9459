//! `process-overhead`: what a process pool costs next to a thread pool — starting it, one round
//! trip per task, and `map` at several chunk sizes (the books' `chunksize=1` trap).

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{Instant, PlatformError, StartMethod};
use conlab_core::pymodel::process::{Job, ProcessPool};
use conlab_core::sched::fifo::FifoPool;

pub struct ProcessOverhead;

/// Chunk sizes `map` is timed at (`None`: `Pool.map`'s default, ⌈tasks / (4 · workers)⌉).
const CHUNKSIZES: [(Option<usize>, &str); 4] = [
    (Some(1), "map, chunksize 1"),
    (Some(10), "map, chunksize 10"),
    (Some(100), "map, chunksize 100"),
    (None, "map, chunksize auto"),
];

impl Experiment for ProcessOverhead {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "process-overhead",
            title: "What a process pool costs: start-up, round trips, chunk size",
            topic: super::NAME,
            concept: "ProcessPoolExecutor vs ThreadPoolExecutor; Pool.map chunksize",
            teaches: "A process pool pays before it computes: starting each worker (a new process that loads the \
                      interpreter — natively milliseconds), then every task is a message each way: serialised, \
                      copied through a pipe, read and deserialised by a worker that has to be woken. A thread pool \
                      passes a pointer — but it too wakes a sleeping worker, and for one empty task at a time that \
                      wake-up is most of the cost on both sides: compare the round-trip column, where the two are \
                      often within a few microseconds. Where the process pool loses is in bulk: `map` with \
                      chunksize 1 sends one message per task, while larger chunks amortise it — the reason \
                      `Pool.map` picks ⌈tasks / 4·workers⌉ by default and `ProcessPoolExecutor.map`'s default of 1 \
                      is a trap. How a worker starts is Python's start method: `spawn` runs the program afresh \
                      (here: re-executes conlab), `fork` copies this process — cheap while it is small, but the \
                      kernel copies the page tables of every page it has touched, so a parent holding a gigabyte \
                      forks slower (`parent_mb` sets how much memory the lab touches first) —, and `forkserver` \
                      forks a small server started once, whatever the parent holds. In browsers the Web Worker \
                      \"processes\" are spawn-only and started when the lab loads (a worker only starts while its \
                      creator's event loop runs, and a run blocks it), so start-up there is the hand-shake with a \
                      fresh wasm instance's worker.",
            params: vec![
                ParamSpec::int("tasks", 1000, 1, 1_000_000, "tasks", "tasks per map"),
                ParamSpec::int("iterations", 50, 0, 10_000_000, "per task", "Python loop iterations of each task"),
                ParamSpec::int("round_trips", 200, 1, 1_000_000, "round trips", "empty tasks sent one at a time"),
                ParamSpec::op_ns(),
                ParamSpec::int(
                    "parent_mb",
                    10,
                    0,
                    4096,
                    "MiB",
                    "memory this process touches before its pools start (it stays held for the run)",
                ),
            ],
            variants: vec![
                VariantSpec::sweep("threads", "a ThreadPoolExecutor of N workers (FifoPool)"),
                VariantSpec::sweep(
                    "processes",
                    "a process pool of N workers started by `spawn` (start-up included in its time)",
                ),
                VariantSpec::sweep("fork", "the same pool, its workers forked from this process (native only)"),
                VariantSpec::sweep(
                    "forkserver",
                    "the same pool, its workers forked from a server started once (native only)",
                ),
            ],
            baseline: "threads",
            work_unit: Some("tasks"),
            chart_metric: Some("map, chunksize 1"),
            quick: &["tasks=50", "iterations=10", "round_trips=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let task = |iterations| Job::Task {
            iterations,
            io_us: 0,
            op_ns: params.float("op_ns"),
            spinner: Spinner::calibrate(),
        };
        Ok(Box::new(Overhead {
            tasks: vec![task(params.int("iterations")); params.count("tasks")],
            empty: task(0),
            round_trips: params.count("round_trips"),
            held: touched(params.count("parent_mb") << 20),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "starting a process pool takes ≥ 5× as long as starting a thread pool (fastest runs)",
                |facts| {
                    facts.native("the workers were started when the lab loaded")?;
                    let workers = 1;
                    let threads = facts.metric_min("threads", workers, "start-up")?;
                    let processes = facts.metric_min("processes", workers, "start-up")?;
                    verdict(
                        processes >= 5.0 * threads,
                        format!("1 worker: processes {processes:.2} ms, threads {threads:.2} ms"),
                        "process start-up is unusually fast here",
                    )
                },
            ),
            Claim::new(
                "while this process is small, forking starts a worker faster than spawning one: at parent_mb ≤ 100, \
                 fork's and forkserver's start-up at 1 worker are each under spawn's (fastest runs)",
                |facts| {
                    facts.native("Web Workers are spawn-only")?;
                    let parent = facts.param("parent_mb")?;
                    if parent > 100.0 {
                        return Err(not_testable(format!("the parent holds {parent} MiB: forking it costs more")));
                    }
                    let spawn = facts.metric_min("processes", 1, "start-up")?;
                    let (fork, server) =
                        (facts.metric_min("fork", 1, "start-up")?, facts.metric_min("forkserver", 1, "start-up")?);
                    verdict(
                        fork < spawn && server < spawn,
                        format!("1 worker: spawn {spawn:.2} ms, fork {fork:.2} ms, forkserver {server:.2} ms"),
                        "loading the binary was unusually fast here (a warm page cache), or a fork was slowed by \
                         another program",
                    )
                },
            ),
            Claim::new(
                "a big parent slows fork, not the fork server: at parent_mb ≥ 500, fork's start-up at 1 worker is \
                 ≥ 3× forkserver's (fastest runs)",
                |facts| {
                    facts.native("Web Workers are spawn-only")?;
                    let parent = facts.param("parent_mb")?;
                    if parent < 500.0 {
                        return Err(not_testable(format!(
                            "the parent holds {parent} MiB: too little for its page tables to show; try \
                             --set parent_mb=1000"
                        )));
                    }
                    let (fork, server) =
                        (facts.metric_min("fork", 1, "start-up")?, facts.metric_min("forkserver", 1, "start-up")?);
                    verdict(
                        fork >= 3.0 * server,
                        format!("a {parent} MiB parent, 1 worker: fork {fork:.2} ms, forkserver {server:.2} ms"),
                        "the kernel shares page tables here (or the memory was not touched)",
                    )
                },
            ),
            Claim::new(
                "chunksize 1 is the trap: the process pool's map takes ≥ 1.5× as long with chunksize 1 as with the \
                 default chunks (fastest runs, every worker count)",
                |facts| {
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for workers in facts.threads_of("processes") {
                        let one = facts.metric_min("processes", workers, "map, chunksize 1")?;
                        let auto = facts.metric_min("processes", workers, "map, chunksize auto")?;
                        holds &= one >= 1.5 * auto;
                        seen.push(format!("{workers}: {one:.2} ms vs {auto:.2} ms"));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("the process pool did not run"));
                    }
                    verdict(
                        holds,
                        format!("chunksize 1 vs auto by workers: {}", seen.join(", ")),
                        "the tasks are long enough to hide the messages (lower iterations)",
                    )
                },
            ),
            Claim::new(
                "a message per task costs: at chunksize 1 the process pool's map takes ≥ 1.2× the thread pool's \
                 (fastest runs, every worker count both ran)",
                |facts| {
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for workers in facts.threads_of("processes") {
                        let Ok(threads) = facts.metric_min("threads", workers, "map, chunksize 1") else { continue };
                        let processes = facts.metric_min("processes", workers, "map, chunksize 1")?;
                        holds &= processes >= 1.2 * threads;
                        seen.push(format!("{workers}: {processes:.2} ms vs {threads:.2} ms"));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("the two pools did not run at one worker count"));
                    }
                    verdict(
                        holds,
                        format!("processes vs threads by workers: {}", seen.join(", ")),
                        "the tasks are long enough to hide the messages (lower iterations)",
                    )
                },
            ),
        ]
    }
}

struct Overhead {
    tasks: Vec<Job>,
    /// The task of a round trip: it does nothing.
    empty: Job,
    round_trips: usize,
    /// Memory touched while preparing and held for the run: the parent's size a fork copies.
    held: Vec<u8>,
}

/// `bytes` of memory, every page written (so each is mapped and in the page tables).
fn touched(bytes: usize) -> Vec<u8> {
    let mut memory = vec![0u8; bytes];
    memory.iter_mut().step_by(4096).for_each(|byte| *byte = 1);
    memory
}

/// A process variant's start method.
fn start_method(variant: &str) -> Option<StartMethod> {
    match variant {
        "processes" => Some(StartMethod::Spawn),
        "fork" => Some(StartMethod::Fork),
        "forkserver" => Some(StartMethod::ForkServer),
        _ => None,
    }
}

impl Workload for Overhead {
    fn work_units(&self) -> Option<f64> {
        Some((self.tasks.len() * CHUNKSIZES.len()) as f64)
    }

    /// Every map's counts.
    fn expected(&self) -> Digest {
        let per_task = match self.tasks.first() {
            Some(Job::Task { iterations, .. }) => *iterations as u64,
            _ => 0,
        };
        per_task * (self.tasks.len() * CHUNKSIZES.len()) as u64
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let method = start_method(variant);
        match method {
            None => FifoPool::check(threads)?,
            Some(method) => ProcessPool::check_method(method)?,
        }
        Ok(Box::new(OverheadCell { overhead: self, method, workers: threads }))
    }
}

struct OverheadCell<'a> {
    overhead: &'a Overhead,
    /// `None`: the thread pool.
    method: Option<StartMethod>,
    workers: usize,
}

impl OverheadCell<'_> {
    fn chunksize(&self, chosen: Option<usize>) -> usize {
        chosen.unwrap_or_else(|| self.overhead.tasks.len().div_ceil(4 * self.workers))
    }

    fn with_threads(&self, context: &RunContext, start: Instant) -> Result<u64, RunError> {
        let Overhead { tasks, empty, round_trips, .. } = self.overhead;
        let run = |job: &Job| job.run(&[], &[]).map_or(0, |reply| reply.value);
        FifoPool::run(self.workers, context.trace(), |pool| {
            let futures: Vec<_> = (0..self.workers).filter_map(|_| pool.submit(|| run(empty)).ok()).collect();
            futures.iter().for_each(|future| _ = future.result(None));
            context.record("start-up", "ms", start.elapsed().as_secs_f64() * 1e3);
            time_round_trips(context, *round_trips, || {
                pool.submit(|| run(empty)).map_err(broken)?.result(None).map(drop).map_err(broken)
            })?;
            let mut total = 0;
            for (chosen, metric) in CHUNKSIZES {
                context.check_cancel()?;
                let start = Instant::now();
                let results = pool.map(run, tasks.iter(), self.chunksize(chosen)).map_err(broken)?;
                total += results.map(|value| value.map(|v| v as u64)).sum::<Result<u64, _>>().map_err(broken)?;
                context.record(metric, "ms", start.elapsed().as_secs_f64() * 1e3);
            }
            Ok(total)
        })?
    }

    fn with_processes(&self, method: StartMethod, context: &RunContext, start: Instant) -> Result<u64, RunError> {
        let Overhead { tasks, empty, round_trips, held } = self.overhead;
        std::hint::black_box(held);
        let mut pool = ProcessPool::start_with(self.workers, method)?;
        for worker in 0..self.workers {
            pool.call(worker, std::slice::from_ref(empty), &[])?;
        }
        context.record("start-up", "ms", start.elapsed().as_secs_f64() * 1e3);
        time_round_trips(context, *round_trips, || Ok(pool.call(0, std::slice::from_ref(empty), &[]).map(drop)?))?;
        let mut total = 0;
        for (chosen, metric) in CHUNKSIZES {
            context.check_cancel()?;
            let start = Instant::now();
            total += pool.map(tasks, self.chunksize(chosen))?.iter().map(|reply| reply.value as u64).sum::<u64>();
            context.record(metric, "ms", start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(total)
    }
}

/// Sends `count` empty tasks one after another, each awaited before the next; records the mean.
fn time_round_trips(
    context: &RunContext,
    count: usize,
    mut one: impl FnMut() -> Result<(), RunError>,
) -> Result<(), RunError> {
    let start = Instant::now();
    for _ in 0..count {
        one()?;
    }
    context.record("round trip", "µs", start.elapsed().as_secs_f64() * 1e6 / count as f64);
    context.check_cancel()
}

/// A thread pool that fails (it cannot: it is open and its tasks do not raise) fails the run.
fn broken(error: impl std::fmt::Display) -> RunError {
    RunError::Platform(PlatformError::Unavailable(format!("the thread pool failed: {error}")))
}

impl Cell for OverheadCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let start = Instant::now();
        match self.method {
            Some(method) => self.with_processes(method, context, start),
            None => self.with_threads(context, start),
        }
    }
}
