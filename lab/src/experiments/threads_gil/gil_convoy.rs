//! `gil-convoy`: how long an I/O-bound thread waits to run again after its I/O completes,
//! while CPU-bound threads hold the GIL (Beazley's convoy effect), against the switch interval.

use std::time::Duration;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, TimeUnit,
    VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{check_team_size, run_team};
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::{Bytecode, Interpreter, Mode};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Arc, Mutex};

pub struct GilConvoy;

impl Experiment for GilConvoy {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "gil-convoy",
            title: "The convoy effect: I/O latency behind CPU-bound threads",
            topic: super::NAME,
            concept: "the GIL and I/O-bound threads",
            teaches: "One thread serves requests: it blocks in I/O (releasing the GIL), then needs the GIL for a few \
                      bytecodes. Alone, it gets the GIL back at once. With CPU-bound threads beside it, the GIL is \
                      held by one of them, and the I/O thread must wait until the switch interval runs out, ask for a \
                      drop, and wait for the next eval-breaker: up to 5 ms per request at the default interval, so a \
                      thread that should do thousands of requests per second does a couple of hundred (Beazley, \
                      'Understanding the Python GIL', 2010). `threads` counts the CPU-bound threads plus the I/O \
                      thread; lower `switch_ms` to see the latency follow it.",
            params: vec![
                ParamSpec::int("requests", 100, 1, 100_000, "requests", "I/O requests the I/O thread serves"),
                ParamSpec::int("io_us", 200, 1, 1_000_000, "µs", "how long each request's I/O blocks"),
                ParamSpec::float("switch_ms", 5.0, 0.01, 1000.0, "ms", "the switch interval (sys.setswitchinterval)"),
                ParamSpec::op_ns(),
            ],
            variants: vec![
                VariantSpec::sweep("gil", "the I/O thread and threads − 1 CPU-bound threads under the GIL"),
                VariantSpec::sweep("free-threaded", "the same threads without a GIL"),
            ],
            baseline: "gil",
            work_unit: Some("requests"),
            chart_metric: Some("response p50"),
            shows_timeline: true,
            quick: &["requests=10", "io_us=100", "switch_ms=1.0"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Convoy {
            requests: params.int("requests"),
            io_us: params.int("io_us") as u32,
            switch: Duration::from_secs_f64(params.float("switch_ms") / 1e3),
            op_ns: params.float("op_ns"),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("alone, the I/O thread gets the GIL back at once: its median response is under a tenth of the switch interval", |facts| {
                let switch_us = facts.param("switch_ms")? * 1e3;
                let response = facts.metric("gil", 1, "response p50")?;
                verdict(response < 0.1 * switch_us, format!("median response {response:.1} µs, switch interval {switch_us:.0} µs"), "another program held the core")
            }),
            Claim::new(
                "beside a CPU-bound thread, each request waits about a switch interval: a median response of ½ to 2 \
                 switch intervals (median run)",
                |facts| {
                    let switch_us = facts.param("switch_ms")? * 1e3;
                    let response = facts.metric("gil", 2, "response p50")?;
                    verdict(
                        (0.5 * switch_us..=2.0 * switch_us).contains(&response),
                        format!("median response {:.2} ms, switch interval {:.2} ms", response / 1e3, switch_us / 1e3),
                        "a bug in the GIL model's drop requests",
                    )
                },
            ),
            Claim::new("free-threaded, nobody waits: at 2 threads the median response stays under a tenth of the switch interval", |facts| {
                let switch_us = facts.param("switch_ms")? * 1e3;
                let response = facts.metric("free-threaded", 2, "response p50")?;
                verdict(response < 0.1 * switch_us, format!("median response {response:.1} µs"), "another program held a core")
            }),
        ]
    }
}

struct Convoy {
    requests: i64,
    io_us: u32,
    switch: Duration,
    op_ns: f64,
    spinner: Spinner,
}

impl Workload for Convoy {
    fn work_units(&self) -> Option<f64> {
        Some(self.requests as f64)
    }

    fn expected(&self) -> Digest {
        self.requests as u64
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        check_team_size(threads)?;
        Ok(Box::new(ConvoyCell { convoy: self, free_threaded: variant == "free-threaded", threads }))
    }
}

struct ConvoyCell<'a> {
    convoy: &'a Convoy,
    free_threaded: bool,
    threads: usize,
}

impl Cell for ConvoyCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let convoy = self.convoy;
        let mode = if self.free_threaded {
            Mode::FreeThreaded { overhead: 0.0 }
        } else {
            Mode::Gil(Arc::new(Gil::new(convoy.switch)))
        };
        let interpreter = Interpreter { mode, op_ns: convoy.op_ns, spinner: convoy.spinner };
        let shared: Vec<AtomicI64> = (0..self.threads).map(|_| AtomicI64::new(0)).collect();
        let served = AtomicBool::new(false);
        let cpu_started = AtomicUsize::new(0);
        let responses = Mutex::new(LogHistogram::default());
        run_team(self.threads, |member| {
            let going = || context.check_cancel().is_ok() && !served.load(Ordering::Relaxed);
            if member.index == 0 {
                // Measure the steady state: start serving once the CPU-bound threads run.
                while cpu_started.load(Ordering::Acquire) < member.size - 1 && context.check_cancel().is_ok() {
                    std::hint::spin_loop();
                }
                let program = Bytecode::io_loop(0, convoy.requests, convoy.io_us);
                let stats = interpreter.run(&program, &shared, 0, context.trace(), &|| context.check_cancel().is_ok());
                served.store(true, Ordering::Relaxed);
                lock(&responses).merge(&stats.io_response_ns);
            } else {
                // CPU-bound until the I/O thread is done.
                cpu_started.fetch_add(1, Ordering::Release);
                interpreter.run(&Bytecode::cpu_loop(i64::MAX), &shared, member.index, context.trace(), &going);
            }
        })?;
        context.check_cancel()?;
        let responses = responses.into_inner().unwrap_or_else(|p| p.into_inner());
        for (name, quantile) in [("response p50", 0.5), ("response p99", 0.99)] {
            context.record_time(name, TimeUnit::Microseconds, responses.quantile(quantile) as f64);
        }
        context.record_time("response max", TimeUnit::Microseconds, responses.max() as f64);
        context.record_latency("I/O response", &responses);
        Ok(shared[0].load(Ordering::Relaxed) as u64)
    }
}
