//! `gil-cpu`: the books' central demo — N threads each running a CPU-bound Python loop, under
//! CPython's GIL and free-threaded, against one thread doing all of it and plain Rust.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::Instant;
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::process::{Job, ProcessPool};
use conlab_core::pymodel::{calibrate_free_threading, Bytecode, Interpreter, Mode};
use conlab_core::sched::partition;
use conlab_core::sync::Arc;
use conlab_core::trace::SpanKind;

pub struct GilCpu;

impl Experiment for GilCpu {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "gil-cpu",
            title: "The GIL: CPU-bound threads vs one thread",
            topic: super::NAME,
            concept: "the GIL (global interpreter lock)",
            teaches: "A CPU-bound Python loop (`total = total + 1` on a local, the result returned) split over N \
                      threads: under the GIL only the holder runs bytecode, so N threads take as long as one thread \
                      doing all the work — or longer, because every switch interval (5 ms) a waiting thread asks the \
                      holder to drop the GIL and the handover costs. Free-threaded Python (PEP 703, no GIL) scales \
                      with the cores, at a per-instruction cost (`ft_overhead`), and so does a process pool, after \
                      starting its processes. Native code that releases the GIL scales too — but only if it releases \
                      it for long: `nogil-ext` calls a C function once per thread for its whole share, \
                      `per-element` calls it once per `element` iterations, and then every call takes the GIL back \
                      for the loop's bytecode and the call's own held work (`call_ns`), so the threads queue for the \
                      GIL and hand it over thousands of times (CPython's hashlib holds the GIL on buffers under 2 KB \
                      for this reason). The model runs a tiny bytecode on real threads at CPython's pace (`op_ns` per \
                      instruction); each thread's loop works on its own locals, as a CPython frame's do, so nothing \
                      is shared while it runs. The timeline shows who holds the GIL and who waits. `native` is the \
                      same loop as plain Rust: the interpreter's cost.",
            params: vec![
                ParamSpec::int(
                    "iterations",
                    2_000_000,
                    1,
                    100_000_000,
                    "iterations",
                    "loop iterations in total, split over the threads",
                ),
                ParamSpec::op_ns(),
                ParamSpec::float("switch_ms", 5.0, 0.01, 1000.0, "ms", "the switch interval (sys.setswitchinterval)"),
                ParamSpec::float(
                    "ft_overhead",
                    0.1,
                    0.0,
                    5.0,
                    "×",
                    "extra cost per instruction when free-threaded (0.1 = 10%)",
                ),
                ParamSpec::float(
                    "native_ns",
                    20.0,
                    0.1,
                    1_000_000.0,
                    "ns",
                    "nogil-ext and per-element: the C extension's time per iteration",
                ),
                ParamSpec::float(
                    "call_ns",
                    190.0,
                    0.0,
                    1_000_000.0,
                    "ns",
                    "nogil-ext and per-element: each C call's own work with the GIL held (arguments, the result \
                     object: CPython 3.11's hashlib.sha256(b'') takes ~190 ns)",
                ),
                ParamSpec::int(
                    "element",
                    16,
                    1,
                    100_000_000,
                    "iterations",
                    "per-element: iterations per native call (16 × 20 ns: a 320 ns call, hashing a ~500-byte record)",
                ),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "one Python thread runs every iteration"),
                VariantSpec::sweep("gil", "N Python threads, each a share of the loop, under the GIL"),
                VariantSpec::sweep("free-threaded", "N Python threads, no GIL (PEP 703)"),
                VariantSpec::sweep(
                    "process",
                    "a pool of N worker processes (multiprocessing), each with its own GIL; start-up included",
                ),
                VariantSpec::fixed("native", "the same loop in plain Rust, one thread"),
                VariantSpec::sweep(
                    "nogil-ext",
                    "N Python threads, each calling a C extension once for its share; the call releases the GIL for \
                     all of it (NumPy, hashlib on a big buffer, Cython's `with nogil`)",
                ),
                VariantSpec::sweep(
                    "per-element",
                    "the same C work, called once per `element` iterations from a Python loop: every call drops the \
                     GIL and takes it back",
                ),
            ],
            baseline: "seq",
            work_unit: Some("iterations"),
            shows_timeline: true,
            // Long enough (~30 ms at one thread natively) that waking a second worker is not the run: at 200 000 a
            // browser worker read 1.26–1.56× free-threaded, its wake-up a fair part of 3 ms of work.
            quick: &["iterations=1000000", "switch_ms=1"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let (op_ns, overhead, spinner) = (params.float("op_ns"), params.float("ft_overhead"), Spinner::calibrate());
        calibrate_free_threading(op_ns, overhead, spinner);
        Ok(Box::new(Loop {
            iterations: params.int("iterations") as u64,
            op_ns,
            native_ns: params.float("native_ns"),
            call_ns: params.float("call_ns").round() as u64,
            element: params.int("element"),
            switch: Duration::from_secs_f64(params.float("switch_ms") / 1e3),
            overhead,
            spinner,
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "free-threading has a price: alone, the free-threaded loop is slower than seq by ½ to 2× its \
                 ft_overhead (fastest runs)",
                |facts| {
                    let overhead = facts.param("ft_overhead")?;
                    if overhead == 0.0 {
                        return Err(not_testable("ft_overhead is 0: the two loops are the same"));
                    }
                    let cost = facts.fastest("free-threaded", 1)? / facts.fastest("seq", 1)? - 1.0;
                    verdict(
                        (0.5 * overhead..=2.0 * overhead).contains(&cost),
                        format!(
                            "free-threaded at 1 thread: {:+.1}% against seq, ft_overhead {:.0}%",
                            cost * 100.0,
                            overhead * 100.0
                        ),
                        "another program slowed one of the two runs",
                    )
                },
            ),
            Claim::new(
                "under the GIL, 2 threads run the loop no faster than 1: ≤ 1.3× seq (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let speedup = facts.speedup("gil", 2)?;
                    verdict(
                        speedup <= 1.3,
                        format!("gil at 2 threads: {speedup:.2}× seq"),
                        "the model's GIL let both threads run: a bug in the model",
                    )
                },
            ),
            Claim::new("free-threaded, 2 threads run it ≥ 1.6× as fast as 1 (fastest runs)", |facts| {
                facts.cores(2)?;
                let scaling = facts.scaling("free-threaded", 2)?;
                verdict(
                    scaling >= 1.6,
                    format!("free-threaded at 2 threads: {scaling:.2}× its 1-thread run"),
                    "the second core was busy (a noisy machine: run again), or a run this short is mostly waking the \
                     threads (raise `iterations`)",
                )
            }),
            Claim::new(
                "a pool of 2 processes runs it ≥ 1.5× as fast as 1, start-up included (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let scaling = facts.scaling("process", 2)?;
                    verdict(
                        scaling >= 1.5,
                        format!("process at 2: {scaling:.2}× its 1-process run"),
                        "starting the processes outweighs a loop this short (raise `iterations`), or a core was busy",
                    )
                },
            ),
            Claim::new(
                "a C call that releases the GIL for a thread's whole share scales: nogil-ext at 2 threads runs ≥ \
                 1.6× as fast as at 1 (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let scaling = facts.scaling("nogil-ext", 2)?;
                    verdict(
                        scaling >= 1.6,
                        format!("nogil-ext at 2 threads: {scaling:.2}× its 1-thread run"),
                        "the second core was busy (a noisy machine: run again), or the native work is too short to \
                         outweigh starting a thread (raise `iterations` or `native_ns`)",
                    )
                },
            ),
            Claim::new(
                "the same C work released once per element does not: per-element at 2 threads runs ≤ 1.3× as fast \
                 as at 1, below nogil-ext (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let (each, whole) = (facts.scaling("per-element", 2)?, facts.scaling("nogil-ext", 2)?);
                    let call_ns = facts.param("element")? * facts.param("native_ns")?;
                    verdict(
                        each <= 1.3 && each < whole,
                        format!(
                            "per-element at 2 threads: {each:.2}× its 1-thread run ({call_ns:.0} ns released per \
                             call), nogil-ext {whole:.2}×"
                        ),
                        "each call releases the GIL for long enough that the threads rarely meet at it (lower \
                         `element` or `native_ns`): the handovers no longer cost",
                    )
                },
            ),
        ]
    }
}

struct Loop {
    iterations: u64,
    op_ns: f64,
    native_ns: f64,
    call_ns: u64,
    element: i64,
    switch: Duration,
    overhead: f64,
    spinner: Spinner,
}

impl Workload for Loop {
    fn work_units(&self) -> Option<f64> {
        Some(self.iterations as f64)
    }

    fn expected(&self) -> Digest {
        self.iterations
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let threads = if matches!(variant, "seq" | "native") { 1 } else { threads };
        if variant == "process" {
            // Fail while setting up (marking the cell skipped) where processes cannot start.
            ProcessPool::check()?;
        }
        Ok(Box::new(LoopCell { work: self, variant: variant.to_string(), threads }))
    }
}

struct LoopCell<'a> {
    work: &'a Loop,
    variant: String,
    threads: usize,
}

impl Cell for LoopCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let work = self.work;
        if self.variant == "native" {
            let mut total = 0u64;
            context.trace().lane(0).span(
                SpanKind::Run,
                || "plain Rust loop",
                || {
                    context.repeat(work.iterations, |_| total = std::hint::black_box(total + 1));
                },
            );
            context.check_cancel()?;
            return Ok(total);
        }
        if self.variant == "process" {
            return self.run_processes(context);
        }
        let gil = Arc::new(Gil::new(work.switch));
        let mode = match self.variant.as_str() {
            "free-threaded" => Mode::FreeThreaded { overhead: work.overhead },
            _ => Mode::Gil(Arc::clone(&gil)),
        };
        let interpreter = Interpreter { mode, op_ns: work.op_ns, spinner: work.spinner };
        let threads = self.threads;
        let variant = self.variant.as_str();
        let program = |thread| {
            let share = partition::block(work.iterations as usize, threads, thread).len() as i64;
            match variant {
                "nogil-ext" => Bytecode::native_call(thread, share, work.native_ns, work.call_ns),
                "per-element" => {
                    Bytecode::native_per_element(thread, share, work.element, work.native_ns, work.call_ns)
                }
                _ => Bytecode::counting_loop(thread, share),
            }
        };
        let team =
            interpreter.run_team(threads, threads, program, context.trace(), &|| context.check_cancel().is_ok())?;
        context.check_cancel()?;
        if self.variant != "free-threaded" {
            context.record("GIL handovers", "per run", gil.handovers() as f64);
            context.record("drop requests", "per run", gil.drop_requests() as f64);
            let waited_ns: u64 = team.stats.iter().map(|stats| stats.gil_wait_ns).sum();
            context.record("GIL wait", "ms/thread", waited_ns as f64 / 1e6 / threads as f64);
        }
        Ok(team.values.iter().map(|v| *v as u64).sum())
    }
}

impl LoopCell<'_> {
    /// `Pool(N).map(loop, shares)`: start the processes, send each its share, collect.
    fn run_processes(&self, context: &RunContext) -> Result<Digest, RunError> {
        let work = self.work;
        let start = Instant::now();
        let mut pool = ProcessPool::start(self.threads)?;
        let started = Instant::now();
        context.record("process start", "ms", started.duration_since(start).as_secs_f64() * 1e3);
        let jobs: Vec<Job> = (0..self.threads)
            .map(|index| Job::Task {
                iterations: partition::block(work.iterations as usize, self.threads, index).len() as i64,
                io_us: 0,
                op_ns: work.op_ns,
                spinner: work.spinner,
            })
            .collect();
        let replies = pool.map(&jobs, 1)?;
        let end = Instant::now();
        let trace = context.trace();
        trace.record_at(0, SpanKind::Wait, "parent: waiting for the pool's replies", started, end);
        for (index, reply) in replies.iter().enumerate() {
            // A process has its own clock: its busy time is placed to end with the last reply.
            let busy_from = end.duration_since(started).saturating_sub(Duration::from_nanos(reply.busy_ns));
            trace.record_at(
                index + 1,
                SpanKind::Run,
                format!("worker process {index} (busy time)"),
                started.plus(busy_from),
                end,
            );
        }
        context.check_cancel()?;
        Ok(replies.iter().map(|reply| reply.value as u64).sum())
    }
}
