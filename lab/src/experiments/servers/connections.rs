//! `connections`: the C10k problem with measured numbers. Many idle connections beside a few
//! active ones: a thread-per-connection server needs a thread for every one of them — its
//! stack, its kernel task, a slot in the team the platform can give — while an event loop
//! holds each as a registration and a buffer on one thread. The run counts the threads, reads
//! the process's resident memory per connection (natively), and measures the active
//! connections' latency beside the idle ones.

use std::time::Duration;

use super::{load_point, request, spec};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::net::load::{Arrivals, Load, LoadSpec};
use conlab_core::net::server::ServerModel;
use conlab_core::net::Network;
use conlab_core::platform::{self, check_team_size};
use conlab_core::units::format_seconds;

pub struct Connections;

impl Experiment for Connections {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "connections",
            title: "The C10k problem: idle connections cost a thread each, or a buffer",
            topic: super::NAME,
            concept: "thread per connection vs an event loop at many connections (the C10k problem)",
            teaches: "Most of a busy server's connections are idle at any moment (keep-alive, slow clients, long \
                      polls). A thread-per-connection server gives each one a thread — a stack, a kernel task, a \
                      place in the scheduler — whether it sends anything or not, and it runs out of threads long \
                      before it runs out of work: ask for more than the system will start (its limit on threads, or \
                      address space for their stacks) and the run stops with an error that says which thread was \
                      refused. Each thread reserves its whole stack (2 MiB here) as address space, though only \
                      the pages it touches take RAM — and its kernel stack, which no process figure shows. An event \
                      loop holds an idle connection as a registration with the reactor and a read buffer (16 KiB \
                      here), on one thread. The run counts the threads, reads the address space and the resident \
                      memory each connection added (natively; a page cannot read them), and measures the few active \
                      connections' latency beside the idle crowd.",
            params: vec![
                ParamSpec::int("idle", 300, 0, 100_000, "", "idle connections held open"),
                ParamSpec::int("active", 4, 1, 64, "", "connections that send requests"),
                ParamSpec::float("rate", 200.0, 1.0, 100_000.0, "requests/s", "the active connections' load"),
                ParamSpec::float("cpu_us", 100.0, 0.0, 100_000.0, "µs", "CPU time the handler spends per request"),
                ParamSpec::int("duration_ms", 300, 10, 600_000, "ms", "how long the active connections send"),
            ],
            variants: vec![
                VariantSpec::fixed("thread-per-connection", "a thread per connection, blocking reads"),
                VariantSpec::fixed("event-loop", "one thread: every connection registered with the reactor"),
            ],
            baseline: "thread-per-connection",
            fixed_duration: true,
            chart_metric: Some("server threads"),
            quick: &["idle=2", "active=2", "duration_ms=100"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Crowd {
            idle: params.count("idle"),
            active: params.count("active"),
            rate: params.float("rate"),
            request: request(params.float("cpu_us"), 0.0, 256),
            duration: Duration::from_millis(params.int("duration_ms") as u64),
            network: Network::for_platform(),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "a thread per connection costs a thread per connection: the server ran idle + active + 1 threads, \
                 the event loop 1 (every run)",
                |facts| {
                    let connections = facts.param("idle")? + facts.param("active")?;
                    let threads = facts.fixed_metric("thread-per-connection", "server threads")?.max;
                    let event_loop = facts.fixed_metric("event-loop", "server threads")?.max;
                    verdict(
                        threads == connections + 1.0 && event_loop == 1.0,
                        format!("{threads} threads for {connections} connections; the event loop {event_loop}"),
                        "a connection was not accepted",
                    )
                },
            ),
            Claim::new(
                "a thread reserves its whole stack: per idle connection a thread-per-connection server takes ≥ 10× \
                 the address space an event loop does, though its resident memory stays within a few KiB of the \
                 loop's (median runs, 100 idle connections or more)",
                |facts| {
                    facts.native("a page cannot read its memory")?;
                    if facts.param("idle")? < 100.0 {
                        return Err(not_testable("fewer than 100 idle connections: too few to weigh"));
                    }
                    let per = |variant, name| facts.fixed_metric(variant, name).map(|metric| metric.median);
                    let reserved = per("thread-per-connection", "address space per connection")?;
                    let loop_reserved = per("event-loop", "address space per connection")?;
                    let resident = per("thread-per-connection", "memory per connection")?;
                    let loop_resident = per("event-loop", "memory per connection")?;
                    verdict(
                        reserved >= 10.0 * loop_reserved.max(1.0) && resident - loop_resident <= 16.0,
                        format!(
                            "address space {reserved:.0} KiB against {loop_reserved:.0} KiB, resident {resident:.1} \
                             KiB against {loop_resident:.1} KiB per connection"
                        ),
                        "the allocator reused memory an earlier run freed",
                    )
                },
            ),
        ]
    }
}

struct Crowd {
    idle: usize,
    active: usize,
    rate: f64,
    request: conlab_core::net::proto::Request,
    duration: Duration,
    network: Network,
    spinner: Spinner,
}

impl Workload for Crowd {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every connection accepted and every answer checked.
    fn expected(&self) -> Digest {
        (self.idle + self.active) as Digest
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let model = if variant == "event-loop" { ServerModel::EventLoop } else { ServerModel::ThreadPerConnection };
        let threads = model.threads(self.idle + self.active) + 1;
        check_team_size(threads)?;
        Ok(Box::new(CrowdCell { crowd: self, model, threads, runs: 0 }))
    }
}

struct CrowdCell<'a> {
    crowd: &'a Crowd,
    model: ServerModel,
    threads: usize,
    runs: u64,
}

impl Cell for CrowdCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let crowd = self.crowd;
        self.runs += 1;
        let connections = crowd.idle + crowd.active;
        let load = Load::Open { rate: crowd.rate, arrivals: Arrivals::Poisson, connections: crowd.active };
        let spec = LoadSpec {
            idle: crowd.idle,
            // Long enough for the server to accept (and a thread per connection to pick up)
            // every connection before memory is read.
            settle: Duration::from_millis(50) + Duration::from_micros(50) * connections as u32,
            ..spec(load, crowd.request, crowd.duration, self.runs)
        };
        platform::release_free_memory();
        let before = platform::memory_use();
        let (report, accepted) =
            load_point(self.model, &crowd.network, crowd.spinner, None, &spec, context, |server| server.accepted())?;
        let threads = self.model.threads(accepted as usize);
        context.record("server threads", "threads", threads as f64);
        if let (Some(before), Some(after)) = (before, report.memory) {
            let per_connection =
                |after: u64, before: u64| after.saturating_sub(before) as f64 / connections as f64 / 1024.0;
            context.record("memory per connection", "KiB", per_connection(after.resident, before.resident));
            context.record("address space per connection", "KiB", per_connection(after.reserved, before.reserved));
        }
        let latency = &report.latency;
        context.record_time("active p50", TimeUnit::Milliseconds, latency.quantile(0.5) as f64);
        context.record_time("active p99", TimeUnit::Milliseconds, latency.quantile(0.99) as f64);
        context.report(format!(
            "{} on {}: {accepted} connections accepted ({} idle), {threads} server thread{}; the active ones' p99 {}",
            self.model.name(),
            report.transport,
            crowd.idle,
            if threads == 1 { "" } else { "s" },
            format_seconds(latency.quantile(0.99) as f64 / 1e9)
        ));
        Ok(accepted)
    }
}
