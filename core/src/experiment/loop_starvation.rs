//! `loop-starvation`: one coroutine that computes without awaiting stops the whole loop; the
//! heartbeat's lag shows it, and `to_thread` (or yielding between chunks) fixes it.

use std::cell::Cell as Flag;
use std::rc::Rc;
use std::time::Duration;

use super::{Cell, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, TimeUnit, VariantSpec, Workload};
use crate::aio::{monitor_lag, sleep, spawn, to_thread, yield_now, EventLoop, RealClock};
use crate::kernels::spin::Spinner;

pub struct LoopStarvation;

/// The CPU-bound coroutine's work in slices of this size (the `chunked` variant yields between).
const SLICE_MS: u64 = 5;

impl Experiment for LoopStarvation {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "loop-starvation",
            title: "A CPU-bound coroutine starves the event loop",
            topic: "asyncio",
            concept: "blocking the event loop; asyncio.to_thread",
            teaches: "The loop runs one task at a time and only switches at an `await`. A coroutine that computes for \
                      200 ms without awaiting holds everything else back that long: the heartbeat task, which should \
                      wake every 10 ms, wakes 200 ms late — that lateness is the *loop lag* asyncio's debug mode warns \
                      about. Handing the work to a thread (`await asyncio.to_thread(f)`) keeps the loop free; slicing it \
                      and awaiting `sleep(0)` between slices bounds the lag by the slice. Real clock only: on a virtual \
                      clock computing takes no time, so nothing could be late.",
            params: vec![
                ParamSpec::int("cpu_ms", 200, 1, 60_000, "ms", "the CPU-bound coroutine's work"),
                ParamSpec::int("heartbeat_ms", 10, 1, 1000, "ms", "the heartbeat task's period"),
            ],
            variants: vec![
                VariantSpec::fixed("blocking", "the work runs inside a coroutine, no await"),
                VariantSpec::fixed("chunked", "the work in 5 ms slices with await sleep(0) between"),
                VariantSpec::fixed("to-thread", "await asyncio.to_thread(work)"),
            ],
            baseline: "blocking",
            work_unit: None,
            fixed_duration: false,
            chart_metric: Some("lag max"),
            shows_timeline: true,
            quick: &["cpu_ms=20", "heartbeat_ms=2"],
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Starvation {
            cpu: Duration::from_millis(params.int("cpu_ms") as u64),
            heartbeat: Duration::from_millis(params.int("heartbeat_ms") as u64),
            spinner: Spinner::calibrate(),
        }))
    }
}

struct Starvation {
    cpu: Duration,
    heartbeat: Duration,
    spinner: Spinner,
}

impl Workload for Starvation {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The work's slices, all done.
    fn expected(&self) -> Digest {
        self.cpu.as_millis().div_ceil(u128::from(SLICE_MS)) as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(StarvationCell { starvation: self, variant: variant.to_string() }))
    }
}

struct StarvationCell<'a> {
    starvation: &'a Starvation,
    variant: String,
}

impl Cell for StarvationCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Starvation { heartbeat, spinner, .. } = *self.starvation;
        let slices = self.starvation.expected();
        let slice = |spinner: Spinner| spinner.spin(SLICE_MS as f64 * 1e6);
        let variant = self.variant.clone();
        let main = async move {
            let stop = Rc::new(Flag::new(false));
            let lag = spawn(monitor_lag(heartbeat, Rc::clone(&stop)));
            // Let the heartbeat start beating first.
            sleep(heartbeat * 2).await?;
            let done = match variant.as_str() {
                "to-thread" => to_thread(move || (0..slices).map(|_| slice(spinner)).count() as u64).await?,
                "chunked" => {
                    for _ in 0..slices {
                        slice(spinner);
                        yield_now().await?;
                    }
                    slices
                }
                _ => (0..slices).map(|_| slice(spinner)).count() as u64,
            };
            sleep(heartbeat * 2).await?;
            stop.set(true);
            Ok((done, lag.await?))
        };
        let keep_going = || context.check_cancel().is_ok();
        let tracing = context.trace().is_enabled();
        let outcome = EventLoop::new(RealClock::new(), tracing).run_with_threads(1, main, context.trace(), &keep_going)?;
        let (done, lag) = outcome?;
        for (name, q) in [("lag p50", 0.5), ("lag p99", 0.99)] {
            context.record_time(name, TimeUnit::Milliseconds, lag.quantile(q) as f64);
        }
        context.record_time("lag max", TimeUnit::Milliseconds, lag.max() as f64);
        context.record_latency("loop lag", &lag);
        Ok(done)
    }
}
