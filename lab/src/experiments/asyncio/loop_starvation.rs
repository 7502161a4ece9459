//! `loop-starvation`: one coroutine that computes without awaiting stops the whole loop; the
//! heartbeat's lag shows it. Slicing the work bounds the lag; `to_thread` does not help under
//! the GIL (the offloaded bytecode holds it, and the loop waits for it every time it wakes);
//! free-threaded threads and a process pool do.
//!
//! The loop is a Python thread of the GIL model ([`GilClock`]): it holds the GIL while it runs
//! callbacks and releases it only while idle. The CPU-bound work is the Python model's counting
//! loop in every variant, run by whoever the variant hands it to.

use std::cell::Cell as Flag;
use std::rc::Rc;
use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use conlab_core::aio::{monitor_lag, sleep, spawn, to_thread, yield_now, AioError, AioResult, EventLoop, RealClock};
use conlab_core::kernels::spin::Spinner;
use conlab_core::pymodel::event_loop::GilClock;
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::process::{Job, ProcessPool};
use conlab_core::pymodel::{Bytecode, Interpreter, Mode};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::Arc;

pub struct LoopStarvation;

/// The `chunked` variant's slices of work, between which it yields to the loop.
const SLICE_MS: u64 = 5;
/// Bytecode instructions per iteration of the counting loop.
const OPS_PER_ITERATION: f64 = 5.0;
/// Python thread ids of the GIL model: the loop's thread and `to_thread`'s worker.
const LOOP_THREAD: usize = 0;
const WORKER_THREAD: usize = 1;
/// How often the loop looks for a worker process's reply (a task sleeping in between, so the
/// loop stays free; asyncio's process executor has a thread waiting on the pipe instead).
const PROCESS_POLL: Duration = Duration::from_millis(1);

impl Experiment for LoopStarvation {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "loop-starvation",
            title: "A CPU-bound coroutine starves the event loop",
            topic: super::NAME,
            concept: "blocking the event loop; asyncio.to_thread",
            teaches: "The loop runs one task at a time and only switches at an `await`. A coroutine that computes for \
                      200 ms without awaiting holds everything else back that long: the heartbeat task, which should \
                      wake every 10 ms, wakes up to 200 ms late — that lateness is the *loop lag* asyncio's debug mode \
                      warns about. Slicing the work and awaiting `sleep(0)` between slices bounds the lag to about two \
                      slices (a heartbeat that falls due during one slice queues behind the next, as in asyncio). \
                      `await asyncio.to_thread(work)` is the usual advice, but under the GIL the offloaded work is \
                      still Python bytecode holding the GIL: every time the loop wakes it must wait for the GIL — a \
                      switch interval (5 ms), until its drop request is honoured — so the lag stays about the switch \
                      interval. Free-threaded, or with the work in a process pool, the loop wakes on time. Real clock \
                      only: on a virtual clock computing takes no time, so nothing could be late.",
            params: vec![
                ParamSpec::int("cpu_ms", 200, 1, 60_000, "ms", "the CPU-bound work, at the model's pace"),
                ParamSpec::int("heartbeat_ms", 10, 1, 1000, "ms", "the heartbeat task's period"),
                ParamSpec::float("switch_ms", 5.0, 0.01, 1000.0, "ms", "the switch interval (sys.setswitchinterval)"),
                ParamSpec::op_ns(),
            ],
            variants: vec![
                VariantSpec::fixed("blocking", "the work runs inside a coroutine, no await"),
                VariantSpec::fixed("chunked", "the work in 5 ms slices with await sleep(0) between"),
                VariantSpec::fixed("to-thread", "await asyncio.to_thread(work), under the GIL"),
                VariantSpec::fixed("to-thread-free-threaded", "await asyncio.to_thread(work), free-threaded Python"),
                VariantSpec::fixed("to-process", "await loop.run_in_executor(ProcessPoolExecutor(), work)"),
            ],
            baseline: "blocking",
            chart_metric: Some("lag max"),
            shows_timeline: true,
            quick: &["cpu_ms=20", "heartbeat_ms=2", "switch_ms=1"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let op_ns = params.float("op_ns");
        let iterations = |ms: f64| conlab_core::pymodel::loop_iterations(ms * 1e6, OPS_PER_ITERATION, op_ns);
        Ok(Box::new(Starvation {
            iterations: iterations(params.int("cpu_ms") as f64),
            slice_iterations: iterations(SLICE_MS as f64),
            heartbeat: Duration::from_millis(params.int("heartbeat_ms") as u64),
            switch: Duration::from_secs_f64(params.float("switch_ms") / 1e3),
            op_ns,
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "a coroutine that never awaits holds the loop for its whole computation: the heartbeat's worst lag is \
                 ≥ 40% of cpu_ms (calmest run)",
                |facts| {
                    let cpu = facts.param("cpu_ms")?;
                    let lag = facts.metric_min("blocking", 1, "lag max")?;
                    verdict(
                        lag >= 0.4 * cpu,
                        format!("worst lag {lag:.1} ms for {cpu} ms of work"),
                        "the work ran faster than cpu_ms says",
                    )
                },
            ),
            Claim::new(
                "slices bound the lag: chunked, the heartbeat's worst lag is ≤ 3 slices of 5 ms (calmest run)",
                |facts| {
                    let lag = facts.metric_min("chunked", 1, "lag max")?;
                    verdict(
                        lag <= 3.0 * SLICE_MS as f64,
                        format!("worst lag {lag:.1} ms"),
                        "another program held the loop's core",
                    )
                },
            ),
            Claim::new(
                "under the GIL to_thread leaves the loop waiting about a switch interval at each wake-up: a median \
                 lag from ½ to 2 switch intervals (median run)",
                |facts| {
                    let switch = facts.param("switch_ms")?;
                    let lag = facts.metric("to-thread", 1, "lag p50")?;
                    verdict(
                        (0.5 * switch..=2.0 * switch).contains(&lag),
                        format!("median lag {lag:.2} ms, switch interval {switch} ms"),
                        "the loop kept finding the GIL free, or another program held a core",
                    )
                },
            ),
            Claim::new(
                "without the GIL the loop wakes on time: free-threaded and in a process, the median lag is under \
                 half a switch interval (median run)",
                |facts| {
                    let switch = facts.param("switch_ms")?;
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for variant in ["to-thread-free-threaded", "to-process"] {
                        let Ok(lag) = facts.metric(variant, 1, "lag p50") else { continue };
                        holds &= lag < 0.5 * switch;
                        seen.push(format!("{variant} {lag:.2} ms"));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("neither ran"));
                    }
                    verdict(
                        holds,
                        format!("median lag: {}, switch interval {switch} ms", seen.join(", ")),
                        "another program held a core",
                    )
                },
            ),
        ]
    }
}

struct Starvation {
    /// The work: this many iterations of the counting loop (`cpu_ms` at the model's pace).
    iterations: i64,
    slice_iterations: i64,
    heartbeat: Duration,
    switch: Duration,
    op_ns: f64,
    spinner: Spinner,
}

impl Workload for Starvation {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every iteration of the work, counted.
    fn expected(&self) -> Digest {
        self.iterations as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        if variant == "to-process" {
            // Fail while setting up (marking the cell skipped) where processes cannot start.
            ProcessPool::check()?;
        }
        Ok(Box::new(StarvationCell { starvation: self, variant: variant.to_string() }))
    }
}

struct StarvationCell<'a> {
    starvation: &'a Starvation,
    variant: String,
}

/// What the work's coroutine does with the work, in each variant.
#[derive(Clone, Copy, PartialEq)]
enum Offload {
    /// Runs it itself, in one go or in slices.
    Inline { sliced: bool },
    /// Hands it to a `to_thread` worker running it under this interpreter.
    Thread,
    /// Sends it to a worker process.
    Process,
}

impl Cell for StarvationCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let work = self.starvation;
        let gil = Arc::new(Gil::new(work.switch));
        let offload = match self.variant.as_str() {
            "chunked" => Offload::Inline { sliced: true },
            "to-thread" | "to-thread-free-threaded" => Offload::Thread,
            "to-process" => Offload::Process,
            _ => Offload::Inline { sliced: false },
        };
        let mode = if self.variant == "to-thread-free-threaded" {
            Mode::FreeThreaded { overhead: 0.0 }
        } else {
            Mode::Gil(Arc::clone(&gil))
        };
        let interpreter = Interpreter { mode: mode.clone(), op_ns: work.op_ns, spinner: work.spinner };
        let pool = if offload == Offload::Process { Some(ProcessPool::start(1)?) } else { None };
        let main = self.main(interpreter, offload, pool);
        let keep_going = || context.check_cancel().is_ok();
        let tracing = context.trace().is_enabled();
        // Free-threaded Python has no GIL for the loop to hold; otherwise the loop's thread is
        // a Python thread that holds it while it runs.
        let event_loop = match mode {
            Mode::FreeThreaded { .. } => EventLoop::new(RealClock::new(), tracing),
            Mode::Gil(_) => EventLoop::new(GilClock::new(RealClock::new(), gil, LOOP_THREAD), tracing),
        };
        let outcome = match offload {
            // to_thread's worker is a thread of the loop's own pool.
            Offload::Thread => event_loop.run_with_threads(1, main, context.trace(), &keep_going)?,
            // Worker processes are driven from this thread (in a browser, the one that owns them).
            _ => event_loop.run(main, context.trace(), &keep_going),
        };
        let (done, lag) = outcome?;
        for (name, q) in [("lag p50", 0.5), ("lag p99", 0.99)] {
            context.record_time(name, TimeUnit::Milliseconds, lag.quantile(q) as f64);
        }
        context.record_time("lag max", TimeUnit::Milliseconds, lag.max() as f64);
        context.record_latency("loop lag", &lag);
        Ok(done)
    }
}

impl StarvationCell<'_> {
    /// `asyncio.run(main())`: a heartbeat that measures the loop's lag, and the work.
    fn main(
        &self,
        interpreter: Interpreter,
        offload: Offload,
        pool: Option<ProcessPool>,
    ) -> impl std::future::Future<Output = AioResult<(u64, LogHistogram)>> + 'static {
        let work = self.starvation;
        let (heartbeat, iterations, slice) = (work.heartbeat, work.iterations, work.slice_iterations);
        let job = Job::Task { iterations, io_us: 0, op_ns: work.op_ns, spinner: work.spinner };
        async move {
            let stop = Rc::new(Flag::new(false));
            let lag = spawn(monitor_lag(heartbeat, Rc::clone(&stop)));
            // Let the heartbeat start beating first.
            sleep(heartbeat * 2).await?;
            let done = match offload {
                Offload::Inline { sliced: false } => {
                    interpreter.result_holding_gil(&Bytecode::counting_loop(0, iterations), LOOP_THREAD)
                }
                Offload::Inline { sliced: true } => {
                    let mut done = 0;
                    while done < iterations {
                        let part = Bytecode::counting_loop(0, slice.min(iterations - done).max(1));
                        done += interpreter.result_holding_gil(&part, LOOP_THREAD);
                        yield_now().await?;
                    }
                    done
                }
                Offload::Thread => {
                    to_thread(move || interpreter.result(&Bytecode::counting_loop(0, iterations), WORKER_THREAD))
                        .await?
                }
                Offload::Process => in_process(pool.expect("started for to-process"), job).await?,
            };
            sleep(heartbeat * 2).await?;
            stop.set(true);
            Ok((done as u64, lag.await?))
        }
    }
}

/// The work in worker process 0 of `pool`; the loop polls for the reply between its other
/// callbacks, so it never blocks on the pipe.
async fn in_process(mut pool: ProcessPool, job: Job) -> AioResult<i64> {
    let failed = |error: conlab_core::platform::PlatformError| AioError::Raised(error.to_string());
    pool.submit(0, &[job]).map_err(failed)?;
    while !pool.replied(0) {
        sleep(PROCESS_POLL).await?;
    }
    Ok(pool.collect(0).map_err(failed)?.iter().map(|reply| reply.value).sum())
}
