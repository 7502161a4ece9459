//! `coordinated-omission`: one server that stops the world for 200 ms every second, measured by
//! a closed-loop generator (`ab`, `wrk`: each user waits for an answer before sending again) and
//! by an open-loop one (`wrk2`: requests due on a schedule, latency from when they were due).
//! The closed loop's users stop sending during a stall, so it records one slow request per user
//! per stall and reports a p99 that hides the stalls; the open loop charges every request that
//! was due during the stall and reports the truth (Gil Tene, "How NOT to measure latency").

use std::time::Duration;

use super::{load_point, request, spec};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, ParamError, ParamSpec, Params,
    RunContext, RunError, TimeUnit, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::net::load::{Arrivals, Load, LoadSpec};
use conlab_core::net::proto::Request;
use conlab_core::net::server::ServerModel;
use conlab_core::net::Network;
use conlab_core::units::format_seconds;

pub struct CoordinatedOmission;

const SERIES: CurveSpec = CurveSpec {
    name: "p99 latency over the run",
    x: "time (s)",
    y: "p99 of the answers in each slice (ms)",
    log_x: false,
    log_y: true,
};

impl Experiment for CoordinatedOmission {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "coordinated-omission",
            title: "Coordinated omission: a load generator that hides the stalls",
            topic: super::NAME,
            concept: "closed-loop vs open-loop load generators (ab/wrk vs wrk2)",
            teaches: "The server stops the world for `stall_ms` at the end of every `every_ms` (a garbage collector's \
                      pause, a full disk). A closed-loop generator's users wait for each answer before sending the next \
                      one, so during a stall they send nothing: each user records one slow request per stall, among \
                      thousands of fast ones, and the p99 comes out pretty. The open-loop generator keeps the schedule: \
                      every request due during the stall waits for it, and its latency is counted from when it was due, \
                      so the p99 shows the stall. Same server, same stalls — the percentile plot puts both on one chart; \
                      the closed loop's maximum still gives the stall away.",
            params: vec![
                ParamSpec::int("every_ms", 1000, 20, 60_000, "ms", "a stall at the end of every this long"),
                ParamSpec::int("stall_ms", 200, 1, 10_000, "ms", "how long each stall lasts (< every_ms)"),
                ParamSpec::int("duration_ms", 1000, 10, 600_000, "ms", "how long requests are sent"),
                ParamSpec::float("rate", 400.0, 1.0, 100_000.0, "requests/s", "the open loop's arrival rate"),
                ParamSpec::int("users", 4, 1, 64, "", "closed-loop users; the open loop's connections"),
                ParamSpec::float("think_ms", 1.0, 0.0, 10_000.0, "ms", "a closed-loop user's pause between requests"),
                ParamSpec::float("cpu_us", 50.0, 0.0, 100_000.0, "µs", "CPU time the handler spends per request"),
            ],
            variants: vec![
                VariantSpec::fixed("closed-loop", "users send, wait for the answer, think, send again (ab, wrk)"),
                VariantSpec::fixed("open-loop", "requests due at a constant rate, latency from when due (wrk2)"),
            ],
            baseline: "closed-loop",
            fixed_duration: true,
            chart_metric: Some("p99"),
            quick: &["every_ms=300", "stall_ms=100", "duration_ms=300"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let (every, stall) = (params.int("every_ms"), params.int("stall_ms"));
        if stall >= every {
            return Err(RunError::Param(ParamError {
                param: "stall_ms".into(),
                message: format!("expected less than every_ms ({every}), got `{stall}`"),
            }));
        }
        let duration = Duration::from_millis(params.int("duration_ms") as u64);
        Ok(Box::new(Stalling {
            every: Duration::from_millis(every as u64),
            stall: Duration::from_millis(stall as u64),
            duration,
            rate: params.float("rate"),
            users: params.count("users"),
            think: Duration::from_secs_f64(params.float("think_ms") / 1e3),
            request: Request { response_bytes: 64, ..request(params.float("cpu_us"), 0.0, 64) },
            network: Network::for_platform(),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("the open loop sees the stalls: its p99 is ≥ half a stall (median run)", |facts| {
                let stall = stalls_in_run(facts)?;
                let p99 = facts.fixed_metric("open-loop", "p99")?.median;
                verdict(
                    p99 >= stall / 2.0,
                    format!("p99 {p99:.1} ms, stalls of {stall} ms"),
                    "the server did not stall",
                )
            }),
            Claim::new(
                "the closed loop hides them: its p99 is ≤ ¼ of the open loop's, though its maximum is ≥ half a stall \
                 (median runs)",
                |facts| {
                    let stall = stalls_in_run(facts)?;
                    let closed = facts.fixed_metric("closed-loop", "p99")?.median;
                    let open = facts.fixed_metric("open-loop", "p99")?.median;
                    let max = facts.fixed_metric("closed-loop", "max")?.median;
                    verdict(
                        closed <= open / 4.0 && max >= stall / 2.0,
                        format!("closed-loop p99 {closed:.1} ms (max {max:.1} ms), open-loop p99 {open:.1} ms"),
                        "the closed loop's users sent too few requests between stalls",
                    )
                },
            ),
        ]
    }
}

/// The stall's length in ms, or "not testable" when no whole stall fell inside the run.
fn stalls_in_run(facts: &crate::experiment::Facts) -> Result<f64, crate::experiment::Verdict> {
    let (every, stall, duration) = (facts.param("every_ms")?, facts.param("stall_ms")?, facts.param("duration_ms")?);
    if duration < every {
        return Err(not_testable(format!("the {duration} ms run ends before the first stall is over ({every} ms)")));
    }
    Ok(stall)
}

struct Stalling {
    every: Duration,
    stall: Duration,
    duration: Duration,
    rate: f64,
    users: usize,
    think: Duration,
    request: Request,
    network: Network,
    spinner: Spinner,
}

impl Workload for Stalling {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The run ends with every answer checked.
    fn expected(&self) -> Digest {
        1
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let load = if variant == "open-loop" {
            Load::Open { rate: self.rate, arrivals: Arrivals::Constant, connections: self.users }
        } else {
            Load::Closed { users: self.users, think: self.think }
        };
        Ok(Box::new(StallingCell { stalling: self, load, runs: 0 }))
    }
}

struct StallingCell<'a> {
    stalling: &'a Stalling,
    load: Load,
    runs: u64,
}

impl Cell for StallingCell<'_> {
    fn threads(&self) -> usize {
        ServerModel::EventLoop.threads(self.load.connections()) + 1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let stalling = self.stalling;
        self.runs += 1;
        // Answers are awaited for a whole period, and the series is in tenths of one.
        let spec = LoadSpec {
            grace: stalling.every,
            bucket: (stalling.every / 10).max(Duration::from_millis(1)),
            ..spec(self.load, stalling.request, stalling.duration, self.runs)
        };
        let stalls = Some((stalling.every, stalling.stall));
        let (report, ()) =
            load_point(ServerModel::EventLoop, &stalling.network, stalling.spinner, stalls, &spec, context, |_| ())?;
        let latency = &report.latency;
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            context.record_time(name, TimeUnit::Milliseconds, latency.quantile(q) as f64);
        }
        context.record_time("max", TimeUnit::Milliseconds, latency.max() as f64);
        context.record("answered", "requests", report.answered as f64);
        context.record_latency("latency", latency);
        let bucket = report.bucket.as_secs_f64();
        for (index, slot) in report.series.iter().enumerate() {
            if slot.latency.count() > 0 {
                context.record_point(SERIES, (index + 1) as f64 * bucket, slot.latency.quantile(0.99) as f64 / 1e6);
            }
        }
        context.report(format!(
            "{} requests answered on {}; p99 {}, max {}",
            report.answered,
            report.transport,
            format_seconds(latency.quantile(0.99) as f64 / 1e9),
            format_seconds(latency.max() as f64 / 1e9)
        ));
        Ok(1)
    }
}
