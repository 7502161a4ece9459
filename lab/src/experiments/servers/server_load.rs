//! `server-load`: the latency hockey stick. An open-loop load (arrivals at rate λ, latency from
//! the intended send) sweeps λ past each server design's saturation point; p50 and p99 stay flat
//! until the server's bound — predicted from the request's profile — and then climb steeply.
//! Little's law (L = λW) is checked at the lightest load from the requests in flight.

use std::time::Duration;

use super::{load_point, request, spec};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params,
    RunContext, RunError, TimeUnit, VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::net::load::{Arrivals, Load, LoadReport, LoadSpec};
use conlab_core::net::server::{Server, ServerModel};
use conlab_core::net::{Network, Transport};
use conlab_core::platform::{self, check_team_size, PlatformError};
use conlab_core::units::format_rate;

pub struct ServerLoad;

const X: &str = "offered load (requests/s)";
const P99: CurveSpec =
    CurveSpec { name: "p99 latency against offered load", x: X, y: "p99 latency (ms)", log_x: false, log_y: true };
const P50: CurveSpec =
    CurveSpec { name: "p50 latency against offered load", x: X, y: "p50 latency (ms)", log_x: false, log_y: true };
const ANSWERED: CurveSpec =
    CurveSpec { name: "answers against offered load", x: X, y: "answered (requests/s)", log_x: false, log_y: false };
const SERIES: CurveSpec = CurveSpec {
    name: "answers over the heaviest load's run",
    x: "time (s)",
    y: "answered (requests/s)",
    log_x: false,
    log_y: false,
};

/// A load kept up with: this share of the offered requests answered per second.
const KEPT_UP: f64 = 0.9;
/// Loads at most this share of the predicted saturation are "below the bend".
const BELOW: f64 = 0.8;
/// Loads at least this multiple of the predicted saturation are "past the bend".
const PAST: f64 = 1.5;

impl Experiment for ServerLoad {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "server-load",
            title: "The latency hockey stick: five server designs under rising load",
            topic: super::NAME,
            concept: "thread per connection, thread pools, event loops, pre-forked processes; saturation and Little's law",
            teaches: "Requests arrive at a rising rate (open loop, like wrk2: each request is due at a set time and its \
                      latency runs from then, so a server that falls behind is charged for it). Each design has a \
                      ceiling set by its structure: a pool of k threads that block on I/O answers at most \
                      k / (cpu + io) requests a second, an event loop at most 1 / cpu (it runs every handler's CPU \
                      part itself, but overlaps every wait), threads, loop + workers and pre-forked processes (each an event loop \
                      accepting on the listening socket they inherited) at most cores / cpu — and no \
                      design more than connections / (cpu + io), as each connection carries one request at a time. \
                      Pre-forked processes (gunicorn, nginx) are k event loops in \
                      processes of their own: sharing one listening socket, every new connection wakes them all and \
                      the worker already awake usually wins the accept, so with a few long-lived connections one \
                      worker may hold most of them and the design runs on one core whatever k is; an SO_REUSEPORT \
                      group gives each worker a socket of its own and the kernel spreads the connections (nginx's \
                      `reuseport`). Below its ceiling the server answers what is offered (latency grows only as each connection's \
                      queue does); past it the backlog grows for as long as the load lasts, and the percentiles with it \
                      — the hockey stick. The dashed lines are the predicted \
                      ceilings; Little's law (requests in flight = rate × time in the system) ties the measurements \
                      together. Natively the servers are real TCP servers on 127.0.0.1; in a browser, which has no \
                      sockets, the same code runs on in-memory pipes between workers.",
            params: vec![
                ParamSpec::float("cpu_us", 200.0, 0.0, 100_000.0, "µs", "CPU time the handler spends per request"),
                ParamSpec::float("io_ms", 20.0, 0.0, 10_000.0, "ms", "I/O wait per request (a database call)"),
                ParamSpec::int("response_bytes", 1024, 0, 1 << 20, "bytes", "size of each response"),
                ParamSpec::int("connections", 32, 1, 256, "", "client connections the load is spread over"),
                ParamSpec::int(
                    "workers",
                    12,
                    1,
                    64,
                    "",
                    "threads of the pool, workers beside the loop, and pre-forked processes",
                ),
                ParamSpec::float("max_rate", 2400.0, 1.0, 1_000_000.0, "requests/s", "the heaviest offered load"),
                ParamSpec::int("steps", 6, 2, 40, "", "offered loads, evenly spaced up to max_rate"),
                ParamSpec::int("point_ms", 100, 10, 60_000, "ms", "how long each offered load is sent"),
                ParamSpec::choice("arrivals", "constant", &["constant", "poisson"], "gaps between arrivals"),
            ],
            variants: vec![
                VariantSpec::fixed("thread-per-connection", "a thread per connection, blocking I/O"),
                VariantSpec::fixed("thread-pool", "a selector loop hands each request to k threads that block on I/O"),
                VariantSpec::fixed("event-loop", "one thread: handlers on the loop, I/O waits on its timers"),
                VariantSpec::fixed("loop-workers", "the loop, with each handler's CPU part on k workers (to_thread)"),
                VariantSpec::fixed("pre-forked", "k forked processes, each an event loop accepting on one shared socket"),
                VariantSpec::fixed("pre-forked-reuseport", "k forked processes, each on its own socket of a SO_REUSEPORT group"),
            ],
            baseline: "thread-per-connection",
            work_unit: Some("requests"),
            fixed_duration: true,
            chart_metric: Some("measured saturation"),
            quick: &["io_ms=5", "connections=4", "workers=2", "steps=3", "point_ms=40"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let steps = params.count("steps");
        let max_rate = params.float("max_rate");
        Ok(Box::new(Sweep {
            request: request(params.float("cpu_us"), params.float("io_ms"), params.count("response_bytes")),
            connections: params.count("connections"),
            workers: params.count("workers"),
            rates: (1..=steps).map(|step| max_rate * step as f64 / steps as f64).collect(),
            point: Duration::from_millis(params.int("point_ms") as u64),
            arrivals: if params.text("arrivals") == "constant" { Arrivals::Constant } else { Arrivals::Poisson },
            network: Network::for_platform(),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "below its predicted ceiling a server keeps up: at every offered load up to 80% of it, ≥ 90% of the \
                 offered requests are answered per second (median run)",
                |facts| {
                    every_model(facts, "kept up below the bend", |kept| kept >= KEPT_UP, |kept| {
                        format!("{:.0}% of the offered rate", kept * 100.0)
                    })
                },
            ),
            Claim::new(
                "past the ceiling the queue grows for as long as the load lasts: at 1.5× the predicted ceiling, p99 \
                 is above the lightest load's by ≥ ¼ of point_ms (median run)",
                |facts| {
                    let point = facts.param("point_ms")?;
                    every_model(facts, "p99 rise past the ceiling", |rise| rise >= point / 4.0, |rise| {
                        format!("+{rise:.0} ms")
                    })
                },
            ),
            Claim::new(
                "no design beats its ceiling: answered requests per second stay ≤ 1.2× the predicted ceiling (every run)",
                |facts| {
                    every_model_max(facts, "peak / ceiling", |ratio| ratio <= 1.2, |ratio| format!("{ratio:.2}× the ceiling"))
                },
            ),
            Claim::new(
                "an event loop overlaps the waits a pool's threads sit out: where I/O bounds the pool, the loop \
                 answers ≥ 1.5× as many requests at the heaviest load (median runs)",
                |facts| {
                    let ceiling = |variant| facts.fixed_metric(variant, "predicted ceiling").map(|m| m.median);
                    if ceiling("event-loop")? < 2.0 * ceiling("thread-pool")? {
                        return Err(not_testable("here I/O does not bound the pool far below the loop"));
                    }
                    let answered = |variant| facts.fixed_metric(variant, "answered at max load").map(|m| m.median);
                    let (event_loop, pool) = (answered("event-loop")?, answered("thread-pool")?);
                    verdict(
                        event_loop >= 1.5 * pool,
                        format!("event loop {}/s, thread pool {}/s", format_rate(event_loop), format_rate(pool)),
                        "the loop's thread did not get a core",
                    )
                },
            ),
            Claim::new(
                "one shared socket is a race the awake worker wins: the busiest pre-forked worker accepted ≥ 1.5× the \
                 share of the connections the busiest worker of an SO_REUSEPORT group did (median runs)",
                |facts| {
                    let share = |variant| facts.fixed_metric(variant, "busiest worker's share").map(|m| m.median);
                    let (shared, group) = (share("pre-forked")?, share("pre-forked-reuseport")?);
                    verdict(
                        shared >= 1.5 * group,
                        format!(
                            "busiest worker: {:.0}% of the connections on one socket, {:.0}% in the group",
                            shared * 100.0,
                            group * 100.0
                        ),
                        "the kernel woke the workers in turn",
                    )
                },
            ),
            Claim::new(
                "Little's law holds: at a steady load below every ceiling, the requests in flight are within 30% of \
                 rate × time in the system (median run)",
                |facts| every_model(facts, "L / λW", |ratio| (ratio - 1.0).abs() <= 0.3, |ratio| format!("L/λW {ratio:.2}")),
            ),
        ]
    }
}

const MODELS: [&str; 6] =
    ["thread-per-connection", "thread-pool", "event-loop", "loop-workers", "pre-forked", "pre-forked-reuseport"];

/// Checks metric `name` (median run) with `holds` for every design that measured it.
fn every_model(
    facts: &Facts,
    name: &str,
    holds: impl Fn(f64) -> bool,
    describe: impl Fn(f64) -> String,
) -> Result<Verdict, Verdict> {
    judge(facts, name, |metric| metric.median, holds, describe)
}

/// [`every_model`] on the metric's largest run.
fn every_model_max(
    facts: &Facts,
    name: &str,
    holds: impl Fn(f64) -> bool,
    describe: impl Fn(f64) -> String,
) -> Result<Verdict, Verdict> {
    judge(facts, name, |metric| metric.max, holds, describe)
}

fn judge(
    facts: &Facts,
    name: &str,
    pick: impl Fn(&crate::experiment::Metric) -> f64,
    holds: impl Fn(f64) -> bool,
    describe: impl Fn(f64) -> String,
) -> Result<Verdict, Verdict> {
    let readings: Vec<(&str, f64)> =
        MODELS.iter().filter_map(|&model| Some((model, pick(facts.fixed_metric(model, name).ok()?)))).collect();
    if readings.is_empty() {
        return Err(not_testable(format!("no design's sweep measured {name} (offered loads not on both sides of it)")));
    }
    let observed: Vec<String> = readings.iter().map(|(model, value)| format!("{model} {}", describe(*value))).collect();
    verdict(
        readings.iter().all(|&(_, value)| holds(value)),
        observed.join(", "),
        "the load generator shared the cores with the server",
    )
}

struct Sweep {
    request: conlab_core::net::proto::Request,
    connections: usize,
    workers: usize,
    rates: Vec<f64>,
    point: Duration,
    arrivals: Arrivals,
    network: Network,
    spinner: Spinner,
}

impl Sweep {
    fn model(&self, variant: &str) -> ServerModel {
        match variant {
            "thread-pool" => ServerModel::ThreadPool { workers: self.workers },
            "event-loop" => ServerModel::EventLoop,
            "loop-workers" => ServerModel::LoopWithWorkers { workers: self.workers },
            "pre-forked" => ServerModel::PreForked { processes: self.workers, reuse_port: false },
            "pre-forked-reuseport" => ServerModel::PreForked { processes: self.workers, reuse_port: true },
            _ => ServerModel::ThreadPerConnection,
        }
    }

    fn spec(&self, rate: f64, seed: u64) -> LoadSpec {
        let load = Load::Open { rate, arrivals: self.arrivals, connections: self.connections };
        spec(load, self.request, self.point, seed)
    }
}

impl Workload for Sweep {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every offered load run to the end with every answer checked.
    fn expected(&self) -> Digest {
        self.rates.len() as Digest
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let model = self.model(variant);
        if matches!(model, ServerModel::PreForked { .. }) && self.network.transport() != Transport::Tcp {
            return Err(PlatformError::Unavailable(
                "pre-forked processes share a listening TCP socket: a browser has no sockets and cannot fork (run \
                 natively with the `conlab` CLI)"
                    .into(),
            )
            .into());
        }
        let threads = model.threads(self.connections) + 1;
        check_team_size(threads)?;
        Ok(Box::new(SweepCell { sweep: self, model, threads, runs: 0 }))
    }
}

struct SweepCell<'a> {
    sweep: &'a Sweep,
    model: ServerModel,
    threads: usize,
    runs: u64,
}

/// What one offered load measured.
struct Point {
    rate: f64,
    report: LoadReport,
    /// Pre-forked: the connections each worker accepted.
    accepts: Vec<u64>,
}

impl Point {
    /// Answers per second once the pipeline has filled (the second half of the window).
    fn answered_per_second(&self) -> f64 {
        self.report.steady_throughput().unwrap_or_else(|| self.report.throughput())
    }

    /// Pre-forked: the share of the connections its busiest worker accepted.
    fn busiest_share(&self) -> Option<f64> {
        let total: u64 = self.accepts.iter().sum();
        (total > 0).then(|| *self.accepts.iter().max().expect("some worker") as f64 / total as f64)
    }

    fn p99_ms(&self) -> f64 {
        self.report.latency.quantile(0.99) as f64 / 1e6
    }
}

impl Cell for SweepCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let sweep = self.sweep;
        self.runs += 1;
        let ceiling =
            self.model.capacity(sweep.request.cpu, sweep.request.io, sweep.connections, platform::hardware_threads());
        let mut points = Vec::new();
        for (index, &rate) in sweep.rates.iter().enumerate() {
            let spec = sweep.spec(rate, self.runs * 1000 + index as u64);
            let (report, accepts) =
                load_point(self.model, &sweep.network, sweep.spinner, None, &spec, context, Server::worker_accepts)?;
            points.push(Point { rate, report, accepts });
        }
        self.record(context, ceiling, &points);
        Ok(points.len() as Digest)
    }
}

impl SweepCell<'_> {
    fn record(&self, context: &RunContext, ceiling: f64, points: &[Point]) {
        for point in points {
            let latency = &point.report.latency;
            context.record_point(P99, point.rate, latency.quantile(0.99) as f64 / 1e6);
            context.record_point(P50, point.rate, latency.quantile(0.5) as f64 / 1e6);
            context.record_point(ANSWERED, point.rate, point.answered_per_second());
        }
        for curve in [P99, P50, ANSWERED] {
            context.mark(curve, "predicted ceiling", ceiling);
        }
        let heaviest = points.last().expect("at least two offered loads");
        let bucket = heaviest.report.bucket.as_secs_f64();
        for (index, slot) in heaviest.report.series.iter().enumerate() {
            context.record_point(SERIES, (index + 1) as f64 * bucket, slot.latency.count() as f64 / bucket);
        }
        context.record("predicted ceiling", "requests/s", ceiling);
        let kept_up = |point: &&Point| point.answered_per_second() >= KEPT_UP * point.rate;
        let measured = points.iter().take_while(kept_up).last().map_or(0.0, |point| point.rate);
        context.record("measured saturation", "requests/s", measured);
        context.record("answered at max load", "requests/s", heaviest.answered_per_second());
        let peak = points.iter().map(Point::answered_per_second).fold(0.0, f64::max);
        context.record("peak / ceiling", "×", peak / ceiling);
        let lightest = &points[0];
        context.record_time("p99 lightest", TimeUnit::Milliseconds, lightest.p99_ms() * 1e6);
        context.record_time("p99 heaviest", TimeUnit::Milliseconds, heaviest.p99_ms() * 1e6);
        if lightest.rate <= BELOW * ceiling {
            let below: Vec<&Point> = points.iter().filter(|point| point.rate <= BELOW * ceiling).collect();
            let kept = below.iter().map(|point| point.answered_per_second() / point.rate).fold(f64::INFINITY, f64::min);
            context.record("kept up below the bend", "of offered", kept);
            let report = &lightest.report;
            if report.rate_times_wait > 0.0 {
                context.record("L / λW", "", report.mean_in_flight / report.rate_times_wait);
            }
            if let Some(past) = points.iter().find(|point| point.rate >= PAST * ceiling) {
                context.record_time(
                    "p99 rise past the ceiling",
                    TimeUnit::Milliseconds,
                    (past.p99_ms() - lightest.p99_ms()).max(0.0) * 1e6,
                );
            }
        }
        let shares: Vec<f64> = points.iter().filter_map(Point::busiest_share).collect();
        let busiest = if shares.is_empty() {
            String::new()
        } else {
            let share = shares.iter().sum::<f64>() / shares.len() as f64;
            context.record("busiest worker's share", "of connections", share);
            format!("; its busiest worker accepted {:.0}% of the connections", share * 100.0)
        };
        context.report(format!(
            "{} on {}: kept up with {} of the offered loads (up to {}/s; predicted ceiling {}/s); offered {}/s it \
             answered {}/s with p99 {:.1} ms{busiest}",
            self.model.name(),
            heaviest.report.transport,
            points.iter().filter(kept_up).count(),
            format_rate(measured),
            format_rate(ceiling),
            format_rate(heaviest.rate),
            format_rate(heaviest.answered_per_second()),
            heaviest.p99_ms()
        ));
    }
}
