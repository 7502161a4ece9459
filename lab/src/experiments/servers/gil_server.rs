//! `gil-server`: a Python server with a slow endpoint (20 ms of bytecode) and a fast one
//! (0.2 ms). Thread per connection under one GIL, a fast request that arrives while a slow one
//! computes waits for the GIL — a switch interval, until its drop request is honoured — so the
//! fast endpoint's p99 climbs with the slow endpoint's load: the convoy effect as a user feels
//! it. With a GIL per handler (pre-forked processes, PEP 684 subinterpreters) or none
//! (free-threaded) it stays flat. The asyncio versions run the fast endpoint on the loop and
//! send the slow one away: to threads (`to_thread`, the same GIL: no escape) or to a process
//! pool (`run_in_executor(ProcessPoolExecutor)`, a GIL per worker: flat).
//!
//! The handlers run the Python model's bytecode at CPython's pace ([`Interpreter`]); the
//! servers are the lab's thread-per-connection and loop + workers servers with their handlers
//! switched to Python.

use std::time::Duration;

use super::{checked, request, spec};
use crate::experiment::{
    verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::net::load::{serve_and_load_all, Arrivals, Load, LoadReport, LoadSpec};
use conlab_core::net::proto::Request;
use conlab_core::net::server::{Server, ServerModel};
use conlab_core::net::Network;
use conlab_core::platform::check_team_size;
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::{Interpreter, Mode};
use conlab_core::sync::Arc;

pub struct GilServer;

const FAST_P99: CurveSpec = CurveSpec {
    name: "the fast endpoint's p99 against the slow endpoint's load",
    x: "slow requests/s",
    y: "fast endpoint p99 (ms)",
    log_x: false,
    log_y: true,
};

/// Endpoint tags on the wire.
const FAST: u32 = 0;
const SLOW: u32 = 1;

impl Experiment for GilServer {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "gil-server",
            title: "A Python server under the GIL: the slow endpoint holds up the fast one",
            topic: super::NAME,
            concept: "the GIL in a threaded server; the convoy effect; processes for CPU-bound endpoints",
            teaches: "A thread-per-connection Python server (socketserver.ThreadingTCPServer) with two endpoints: a \
                      slow one that computes for `slow_ms` and a fast one that computes for `fast_us`. Under the \
                      GIL only one handler runs bytecode at a time: a fast request that arrives while a slow one \
                      computes waits until it asks for the GIL a switch interval (5 ms) later and the slow handler \
                      drops it — so the fast endpoint's p99 grows with the slow endpoint's load, though the machine \
                      has cores to spare. Handlers with a GIL each (pre-forked worker processes; PEP 684 \
                      subinterpreters) or free-threaded Python keep the fast endpoint's p99 flat. An asyncio server \
                      that answers the fast endpoint on its loop and sends the slow one to `asyncio.to_thread` gains \
                      nothing: its threads share the loop's GIL, and the loop waits for it as a handler thread does. \
                      Sent to a process pool (`loop.run_in_executor` with a ProcessPoolExecutor), the slow work runs \
                      under the workers' own GILs and the loop stays free. The handlers run the Python model's \
                      bytecode at CPython's pace; a process's IPC (pickling the call, the pipe) is not modelled here.",
            params: vec![
                ParamSpec::float("fast_us", 200.0, 1.0, 100_000.0, "µs", "Python work per fast request"),
                ParamSpec::float("slow_ms", 20.0, 0.1, 10_000.0, "ms", "Python work per slow request"),
                ParamSpec::float("fast_rate", 200.0, 1.0, 100_000.0, "requests/s", "the fast endpoint's load"),
                ParamSpec::float(
                    "max_slow_rate",
                    40.0,
                    1.0,
                    10_000.0,
                    "requests/s",
                    "the slow endpoint's heaviest load",
                ),
                ParamSpec::int("steps", 2, 1, 20, "", "slow loads from 0 up to max_slow_rate"),
                ParamSpec::int("connections", 3, 1, 64, "", "connections per endpoint"),
                ParamSpec::int(
                    "pool",
                    2,
                    1,
                    16,
                    "",
                    "the asyncio servers' workers: to_thread threads or pool processes",
                ),
                ParamSpec::int("point_ms", 300, 10, 60_000, "ms", "how long each slow load is sent"),
                ParamSpec::float("switch_ms", 5.0, 0.01, 1000.0, "ms", "the switch interval (sys.setswitchinterval)"),
                ParamSpec::op_ns(),
            ],
            variants: vec![
                VariantSpec::fixed("gil", "a thread per connection, every handler under one GIL"),
                VariantSpec::fixed("gil-per-process", "a GIL per handler: pre-forked processes, subinterpreters"),
                VariantSpec::fixed("free-threaded", "a thread per connection, no GIL (PEP 703)"),
                VariantSpec::fixed("loop-to-thread", "asyncio: fast on the loop, slow via to_thread — one GIL"),
                VariantSpec::fixed(
                    "loop-process-pool",
                    "asyncio: fast on the loop, slow to a process pool — a GIL each",
                ),
            ],
            baseline: "gil",
            fixed_duration: true,
            chart_metric: Some("fast p99 at max slow load"),
            quick: &["connections=1", "point_ms=100", "slow_ms=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let steps = params.count("steps");
        let max_slow = params.float("max_slow_rate");
        Ok(Box::new(Endpoints {
            fast: Request { endpoint: FAST, ..request(params.float("fast_us"), 0.0, 256) },
            slow: Request { endpoint: SLOW, ..request(params.float("slow_ms") * 1e3, 0.0, 256) },
            fast_rate: params.float("fast_rate"),
            slow_rates: (0..=steps).map(|step| max_slow * step as f64 / steps as f64).collect(),
            connections: params.count("connections"),
            pool: params.count("pool"),
            point: Duration::from_millis(params.int("point_ms") as u64),
            switch: Duration::from_secs_f64(params.float("switch_ms") / 1e3),
            op_ns: params.float("op_ns"),
            network: Network::for_platform(),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "under one GIL the fast endpoint waits for the slow one: at the heaviest slow load its p99 is ≥ 3× its \
                 p99 with no slow load, and ≥ half a switch interval (median run)",
                |facts| waits_for_the_gil(facts, "gil"),
            ),
            Claim::new(
                "to_thread is no escape from the GIL: with the slow endpoint on the loop's threads, the fast endpoint \
                 on the loop waits the same way — ≥ 3× its p99 alone, and ≥ half a switch interval (median run)",
                |facts| waits_for_the_gil(facts, "loop-to-thread"),
            ),
            Claim::new(
                "a GIL per handler or per pool process, or none, keeps the fast endpoint flat: at the heaviest slow \
                 load its p99 is under half the one-GIL server's (median runs)",
                |facts| {
                    let gil = facts.fixed_metric("gil", "fast p99 at max slow load")?.median;
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for variant in ["gil-per-process", "free-threaded", "loop-process-pool"] {
                        let Ok(metric) = facts.fixed_metric(variant, "fast p99 at max slow load") else { continue };
                        holds &= metric.median < gil / 2.0;
                        seen.push(format!("{variant} {:.2} ms", metric.median));
                    }
                    if seen.is_empty() {
                        return Err(crate::experiment::not_testable("neither ran"));
                    }
                    verdict(
                        holds,
                        format!("fast p99 {} against one GIL's {gil:.2} ms", seen.join(", ")),
                        "the cores were busy with other work",
                    )
                },
            ),
        ]
    }
}

/// `variant`'s fast endpoint waited for the GIL: at the heaviest slow load its p99 is ≥ 3×
/// its p99 alone, and ≥ half a switch interval.
fn waits_for_the_gil(
    facts: &crate::experiment::Facts,
    variant: &str,
) -> Result<crate::experiment::Verdict, crate::experiment::Verdict> {
    let switch = facts.param("switch_ms")?;
    let loaded = facts.fixed_metric(variant, "fast p99 at max slow load")?.median;
    let idle = facts.fixed_metric(variant, "fast p99 with no slow load")?.median;
    verdict(
        loaded >= 3.0 * idle && loaded >= switch / 2.0,
        format!("{variant}: fast p99 {idle:.2} ms alone, {loaded:.2} ms beside the slow load"),
        "the slow requests seldom overlapped the fast ones",
    )
}

struct Endpoints {
    fast: Request,
    slow: Request,
    fast_rate: f64,
    slow_rates: Vec<f64>,
    connections: usize,
    pool: usize,
    point: Duration,
    switch: Duration,
    op_ns: f64,
    network: Network,
    spinner: Spinner,
}

impl Endpoints {
    fn spec(&self, request: Request, rate: f64, seed: u64) -> LoadSpec {
        let load = Load::Open { rate, arrivals: Arrivals::Poisson, connections: self.connections };
        spec(load, request, self.point, seed)
    }

    /// The server design a variant runs: a thread per connection, or the loop with its pool.
    fn model(&self, variant: &str) -> ServerModel {
        if variant.starts_with("loop-") {
            ServerModel::LoopWithWorkers { workers: self.pool }
        } else {
            ServerModel::ThreadPerConnection
        }
    }

    /// The interpreters a variant's handlers run under (one for all, or one for each of the
    /// server's `threads`: handler threads, or the loop and its pool processes).
    fn interpreters(&self, variant: &str, threads: usize) -> Vec<Interpreter> {
        let interpreter = |mode| Interpreter { mode, op_ns: self.op_ns, spinner: self.spinner };
        match variant {
            "free-threaded" => vec![interpreter(Mode::FreeThreaded { overhead: 0.0 })],
            "gil-per-process" | "loop-process-pool" => {
                (0..threads).map(|_| interpreter(Mode::Gil(Arc::new(Gil::new(self.switch))))).collect()
            }
            _ => vec![interpreter(Mode::Gil(Arc::new(Gil::new(self.switch))))],
        }
    }
}

impl Workload for Endpoints {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every load run to the end with every answer checked.
    fn expected(&self) -> Digest {
        self.slow_rates.len() as Digest
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        // The server's threads (for a thread per connection, both endpoints' connections) and a
        // generator per endpoint.
        let threads = self.model(variant).threads(2 * self.connections) + 2;
        check_team_size(threads)?;
        Ok(Box::new(EndpointsCell { endpoints: self, variant: variant.to_string(), threads, runs: 0 }))
    }
}

struct EndpointsCell<'a> {
    endpoints: &'a Endpoints,
    variant: String,
    threads: usize,
    runs: u64,
}

impl Cell for EndpointsCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let endpoints = self.endpoints;
        self.runs += 1;
        let mut fast_p99 = Vec::new();
        for (index, &slow_rate) in endpoints.slow_rates.iter().enumerate() {
            let seed = self.runs * 1000 + index as u64;
            let mut specs = vec![endpoints.spec(endpoints.fast, endpoints.fast_rate, seed)];
            if slow_rate > 0.0 {
                specs.push(endpoints.spec(endpoints.slow, slow_rate, seed + 500));
            }
            let fast = self.load(&specs, context)?;
            let p99 = fast.latency.quantile(0.99) as f64 / 1e6;
            if index + 1 == endpoints.slow_rates.len() {
                context.record_time(
                    "fast p50 at max slow load",
                    TimeUnit::Milliseconds,
                    fast.latency.quantile(0.5) as f64,
                );
            }
            context.record_point(FAST_P99, slow_rate, p99);
            fast_p99.push((slow_rate, p99, fast.transport));
        }
        let (_, alone, transport) = fast_p99[0];
        let &(heaviest, loaded, _) = fast_p99.last().expect("at least one load");
        context.record_time("fast p99 with no slow load", TimeUnit::Milliseconds, alone * 1e6);
        context.record_time("fast p99 at max slow load", TimeUnit::Milliseconds, loaded * 1e6);
        context.report(format!(
            "{} on {transport}: the fast endpoint's p99 was {alone:.2} ms alone and {loaded:.2} ms beside {heaviest} \
             slow requests/s",
            self.variant
        ));
        Ok(fast_p99.len() as Digest)
    }
}

impl EndpointsCell<'_> {
    /// One point: a fresh server, the loads in `specs` (the fast endpoint's first) at once; the
    /// fast endpoint's report.
    fn load(&self, specs: &[LoadSpec], context: &RunContext) -> Result<LoadReport, RunError> {
        let endpoints = self.endpoints;
        let model = endpoints.model(&self.variant);
        let threads = model.threads(2 * endpoints.connections);
        let server = Server::bind(model, &endpoints.network, endpoints.spinner)
            .and_then(|server| server.with_python(endpoints.interpreters(&self.variant, threads)))
            .map_err(|error| RunError::Failed(format!("the server could not start: {error}")))?;
        let server = Arc::new(server.offloading_only(SLOW));
        let (reports, _) = serve_and_load_all(&server, &endpoints.network, specs, &|| context.check_cancel().is_ok())?;
        if let Some(failure) = server.failure() {
            return Err(RunError::Failed(format!("the server failed: {failure}")));
        }
        let mut fast = None;
        for report in reports {
            let report = checked(report?)?;
            fast.get_or_insert(report);
        }
        Ok(fast.expect("the fast endpoint's load"))
    }
}
