//! `models-matrix`: the books' table — CPU-bound, I/O-bound and mixed workloads under each of
//! Python's concurrency models (and plain Rust): sequential, threads with the GIL, free-threaded
//! threads, a process pool, asyncio (one event loop), native rayon.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Verdict, Workload,
};
use conlab_core::aio::{self, EventLoop, RealClock};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{self, run_team, RayonPool};
use conlab_core::pymodel::event_loop::GilClock;
use conlab_core::pymodel::gil::{Gil, DEFAULT_SWITCH_INTERVAL};
use conlab_core::pymodel::process::{Job, ProcessPool};
use conlab_core::pymodel::{calibrate_free_threading, Bytecode, Interpreter, Mode};
use conlab_core::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use conlab_core::sync::Arc;

/// Free-threaded Python's cost per instruction over the GIL build's (gil-cpu's default).
const FREE_THREADED_OVERHEAD: f64 = 0.1;

pub struct ModelsMatrix;

impl Experiment for ModelsMatrix {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "models-matrix",
            title: "Threads, processes or nothing: the models matrix",
            topic: super::NAME,
            concept: "threading vs multiprocessing vs asyncio",
            teaches: "The rule of thumb, measured: for CPU-bound Python, threads under the GIL gain nothing and a \
                      process pool scales (minus its start-up and copying); for I/O-bound work, threads are as good as \
                      processes and far cheaper, because blocking I/O releases the GIL; `mixed` tasks (I/O, then \
                      computing) sit in between. asyncio overlaps every task's I/O on one thread (no pool size to \
                      pick) but computes one task at a time, and handing the computing to `asyncio.to_thread` does not \
                      change that under the GIL: the loop's thread is a Python thread too, and the workers take turns \
                      with it. Free-threaded Python scales both, and plain Rust on rayon shows what the interpreter \
                      costs. Pick the workload, sweep the workers; each task is the same in every model. `CPU use` is \
                      the CPU time the run burnt (this process and its worker processes, from the OS) per second of \
                      wall time, in cores: the GIL holds threads to about one, I/O-bound work to almost none. Browsers \
                      expose no CPU clock, so the page leaves it out.",
            params: vec![
                ParamSpec::choice("workload", "cpu-bound", &["cpu-bound", "io-bound", "mixed"], "what each task does"),
                ParamSpec::int("tasks", 8, 1, 256, "tasks", "tasks in the batch, spread over the workers"),
                ParamSpec::int(
                    "iterations",
                    250_000,
                    0,
                    100_000_000,
                    "per task",
                    "Python loop iterations of a CPU-bound task",
                ),
                ParamSpec::int("io_ms", 20, 0, 10_000, "ms", "blocking I/O of an I/O-bound task"),
                ParamSpec::op_ns(),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "one Python thread runs every task"),
                VariantSpec::sweep("threads", "a pool of N Python threads under the GIL"),
                VariantSpec::sweep("free-threaded", "a pool of N Python threads, no GIL"),
                VariantSpec::sweep("process", "a pool of N worker processes (start-up included)"),
                VariantSpec::fixed(
                    "asyncio",
                    "one event loop: every task a coroutine, its I/O awaited, its computing on the loop",
                ),
                VariantSpec::sweep(
                    "asyncio-to-thread",
                    "one event loop; each task's computing handed to asyncio.to_thread on N threads",
                ),
                VariantSpec::sweep("rayon", "the same tasks as plain Rust on rayon with N threads"),
            ],
            baseline: "seq",
            work_unit: Some("tasks"),
            quick: &["workload=mixed", "tasks=4", "iterations=2000", "io_ms=2"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let (iterations, io_ms) = (params.int("iterations"), params.int("io_ms") as u32);
        let (iterations, io_us) = match params.text("workload") {
            "cpu-bound" => (iterations, 0),
            "io-bound" => (0, io_ms * 1000),
            _ => (iterations / 2, io_ms * 500),
        };
        let (op_ns, spinner) = (params.float("op_ns"), Spinner::calibrate());
        calibrate_free_threading(op_ns, FREE_THREADED_OVERHEAD, spinner);
        Ok(Box::new(Batch { tasks: params.count("tasks"), iterations, io_us, op_ns, spinner }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "CPU-bound, threads under the GIL gain nothing, not even through asyncio.to_thread: ≤ 1.3× at 2 \
                 workers (fastest runs)",
                |facts| {
                    workload(facts, "cpu-bound")?;
                    facts.cores(2)?;
                    let (threads, to_thread) = (facts.scaling("threads", 2)?, facts.scaling("asyncio-to-thread", 2)?);
                    verdict(
                        threads <= 1.3 && to_thread <= 1.3,
                        format!("2 workers over 1: threads {threads:.2}×, asyncio.to_thread {to_thread:.2}×"),
                        "a bug in the GIL model",
                    )
                },
            ),
            Claim::new(
                "CPU-bound, free-threaded threads and a process pool scale: each ≥ 1.4× at 2 workers (fastest runs)",
                |facts| {
                    workload(facts, "cpu-bound")?;
                    facts.cores(2)?;
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for variant in ["free-threaded", "process"] {
                        let Ok(scaling) = facts.scaling(variant, 2) else { continue };
                        holds &= scaling >= 1.4;
                        seen.push(format!("{variant} {scaling:.2}×"));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("neither ran at 2 workers"));
                    }
                    verdict(holds, format!("2 workers over 1: {}", seen.join(", ")), "another program held a core")
                },
            ),
            Claim::new(
                "I/O-bound, threads overlap the waits: ≥ 1.6× at 2 workers, like processes (fastest runs)",
                |facts| {
                    workload(facts, "io-bound")?;
                    let scaling = facts.scaling("threads", 2)?;
                    verdict(
                        scaling >= 1.6,
                        format!("threads, 2 workers over 1: {scaling:.2}×"),
                        "the sleeps overshoot on this machine",
                    )
                },
            ),
        ]
    }
}

/// "Not testable" unless the run's workload is `name`.
fn workload(facts: &Facts<'_>, name: &str) -> Result<(), Verdict> {
    let chosen = facts.text("workload")?;
    if chosen == name {
        Ok(())
    } else {
        Err(not_testable(format!("the workload was {chosen}; try --set workload={name}")))
    }
}

struct Batch {
    tasks: usize,
    iterations: i64,
    io_us: u32,
    op_ns: f64,
    spinner: Spinner,
}

impl Workload for Batch {
    fn work_units(&self) -> Option<f64> {
        Some(self.tasks as f64)
    }

    fn expected(&self) -> Digest {
        self.tasks as u64 * self.iterations as u64
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let workers = if matches!(variant, "seq" | "asyncio") { 1 } else { threads };
        let rayon = if variant == "rayon" { Some(RayonPool::new(workers)?) } else { None };
        if variant == "process" {
            ProcessPool::check()?;
        }
        Ok(Box::new(BatchCell { batch: self, variant: variant.to_string(), workers, rayon }))
    }
}

impl Batch {
    /// asyncio: every task a coroutine on one loop (real clock) whose thread is a Python thread
    /// holding the GIL; a task's I/O is an awaited sleep. Its computing runs on the loop's
    /// thread (`to_threads` = 0), holding everything else up meanwhile, or is handed to
    /// `to_thread` on a pool of `to_threads` workers — which under the GIL take turns with the
    /// loop for it.
    fn on_event_loop(&self, context: &RunContext, to_threads: usize) -> Result<u64, RunError> {
        const LOOP_THREAD: usize = 0;
        let gil = Arc::new(Gil::new(DEFAULT_SWITCH_INTERVAL));
        let interpreter = Interpreter { mode: Mode::Gil(Arc::clone(&gil)), op_ns: self.op_ns, spinner: self.spinner };
        let (iterations, io) = (self.iterations, Duration::from_micros(u64::from(self.io_us)));
        let tasks = self.tasks;
        let main = async move {
            let handles = (0..tasks)
                .map(|task| {
                    let interpreter = interpreter.clone();
                    aio::spawn(async move {
                        aio::sleep(io).await?;
                        let program = Bytecode::task(0, iterations, 0);
                        let counted = if to_threads == 0 {
                            interpreter.result_holding_gil(&program, LOOP_THREAD)
                        } else {
                            // Python thread ids after the loop's: one per task.
                            aio::to_thread(move || interpreter.result(&program, 1 + task)).await?
                        };
                        Ok(counted as u64)
                    })
                })
                .collect();
            Ok(aio::gather(handles).await?.iter().sum())
        };
        let event_loop = EventLoop::new(GilClock::new(RealClock::new(), gil, LOOP_THREAD), false);
        let keep_going = || context.check_cancel().is_ok();
        Ok(if to_threads == 0 {
            event_loop.run(main, context.trace(), &keep_going)
        } else {
            event_loop.run_with_threads(to_threads, main, context.trace(), &keep_going)?
        }?)
    }
}

struct BatchCell<'a> {
    batch: &'a Batch,
    variant: String,
    workers: usize,
    rayon: Option<RayonPool>,
}

impl Cell for BatchCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let batch = self.batch;
        let (cpu_before, start) = (platform::cpu_time(), context.now());
        let digest = match (self.variant.as_str(), &self.rayon) {
            ("process", _) => {
                let mut pool = ProcessPool::start(self.workers)?;
                let job = Job::Task {
                    iterations: batch.iterations,
                    io_us: batch.io_us,
                    op_ns: batch.op_ns,
                    spinner: batch.spinner,
                };
                pool.map(&vec![job; batch.tasks], 1)?.iter().map(|reply| reply.value as u64).sum()
            }
            ("asyncio", _) => batch.on_event_loop(context, 0)?,
            ("asyncio-to-thread", _) => batch.on_event_loop(context, self.workers)?,
            (_, Some(rayon)) => {
                use rayon::prelude::*;
                let counted = AtomicU64::new(0);
                rayon.install(|| {
                    (0..batch.tasks).into_par_iter().for_each(|_| {
                        platform::sleep(Duration::from_micros(u64::from(batch.io_us)));
                        let mut total = 0u64;
                        for _ in 0..batch.iterations {
                            total = std::hint::black_box(total + 1);
                        }
                        counted.fetch_add(total, Ordering::Relaxed);
                    })
                });
                counted.into_inner()
            }
            (variant, _) => {
                let mode = if variant == "free-threaded" {
                    Mode::FreeThreaded { overhead: FREE_THREADED_OVERHEAD }
                } else {
                    Mode::Gil(Arc::new(Gil::new(DEFAULT_SWITCH_INTERVAL)))
                };
                let interpreter = Interpreter { mode, op_ns: batch.op_ns, spinner: batch.spinner };
                let shared: Vec<AtomicI64> = (0..self.workers).map(|_| AtomicI64::new(0)).collect();
                let workers = self.workers;
                run_team(workers, |member| {
                    // Worker w takes tasks w, w + N, …: the pool's fair share, in order.
                    for _ in (member.index..batch.tasks).step_by(workers) {
                        let program = Bytecode::task(member.index, batch.iterations, batch.io_us);
                        interpreter
                            .run(&program, &shared, member.index, context.trace(), &|| context.check_cancel().is_ok());
                    }
                })?;
                shared.iter().map(|v| v.load(Ordering::Relaxed) as u64).sum()
            }
        };
        context.check_cancel()?;
        // Worker processes have exited (and been waited for) by now, so their CPU time counts.
        if let (Some(before), Some(after)) = (cpu_before, platform::cpu_time()) {
            context.record("CPU use", "cores", (after - before).as_secs_f64() / start.elapsed().as_secs_f64());
        }
        Ok(digest)
    }
}
