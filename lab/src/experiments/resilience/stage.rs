//! The stage the resilience experiments share: requests arriving at a steady rate, each sent
//! by one [`Client`] to one flaky [`Downstream`] on the event loop, and what the run saw of
//! them — the offered and delivered load over time, success by start time, and recovery.

use std::time::Duration;

use crate::experiment::{Cell, CurveSpec, Digest, ParamError, ParamSpec, Params, RunContext, RunError, Workload};
use crate::experiments::asyncio::event_loop::{clock_param, DemoClock};
use conlab_core::aio::{gather, now, sleep, spawn};
use conlab_core::resil::admission::Admission;
use conlab_core::resil::backoff::Backoff;
use conlab_core::resil::client::{Client, ClientSpec, ClientStats};
use conlab_core::resil::downstream::{Downstream, DownstreamSpec, DownstreamStats};
use conlab_core::resil::LogNormal;

/// The time series' slice.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

pub(crate) const OFFERED: CurveSpec = CurveSpec {
    name: "offered load at the downstream",
    x: "time (s)",
    y: "requests arriving (per s)",
    log_x: false,
    log_y: false,
};

pub(crate) const DELIVERED: CurveSpec = CurveSpec {
    name: "delivered: successful answers the downstream sent",
    x: "time (s)",
    y: "answers (per s)",
    log_x: false,
    log_y: false,
};

pub(crate) const SUCCESS: CurveSpec = CurveSpec {
    name: "success by start time",
    x: "time the request started (s)",
    y: "share of requests that succeeded",
    log_x: false,
    log_y: false,
};

/// The service and load parameters every stage takes: the arrival `rate`, or with `None` an
/// `overload` factor of the downstream's capacity instead.
pub(crate) fn service_params(rate: Option<f64>, p99_ms: f64, timeout_ms: f64, duration_ms: i64) -> Vec<ParamSpec> {
    let load = match rate {
        Some(rate) => ParamSpec::float("rate", rate, 1.0, 20_000.0, "requests/s", "requests arriving at a steady rate"),
        None => ParamSpec::float(
            "overload",
            1.5,
            0.1,
            10.0,
            "× capacity",
            "requests arrive at this many times what the downstream can serve (workers / mean service time)",
        ),
    };
    vec![
        load,
        ParamSpec::int("workers", 10, 1, 1000, "", "requests the downstream serves at once; the rest queue"),
        ParamSpec::float("median_ms", 10.0, 0.01, 10_000.0, "ms", "the downstream's median service time"),
        ParamSpec::float("p99_ms", p99_ms, 0.01, 100_000.0, "ms", "its 99th percentile (≥ median_ms): the tail"),
        ParamSpec::float("timeout_ms", timeout_ms, 0.1, 100_000.0, "ms", "how long a client waits for one attempt"),
        ParamSpec::int("duration_ms", duration_ms, 10, 600_000, "ms", "how long requests arrive"),
        clock_param("virtual"),
    ]
}

/// The outage window's parameters.
pub(crate) fn outage_params() -> [ParamSpec; 2] {
    [
        ParamSpec::int("outage_at_ms", 1000, 0, 600_000, "ms", "when the downstream starts failing every request"),
        ParamSpec::int("outage_ms", 1000, 0, 600_000, "ms", "how long the outage lasts"),
    ]
}

/// A stage ready to run: the service, the client, the load.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub downstream: DownstreamSpec,
    pub client: ClientSpec,
    pub rate: f64,
    pub duration: Duration,
    pub clock: DemoClock,
}

/// What one run of a stage saw.
pub(crate) struct Observed {
    pub client: ClientStats,
    pub downstream: DownstreamStats,
}

fn ms(value: f64) -> Duration {
    Duration::from_secs_f64(value / 1e3)
}

impl Stage {
    /// The stage [`service_params`] (and [`outage_params`], when declared) describe, with a
    /// client that sends one attempt and never retries.
    pub fn from_params(params: &Params) -> Result<Self, RunError> {
        let (median, p99) = (params.float("median_ms"), params.float("p99_ms"));
        if p99 < median {
            return Err(param_error("p99_ms", format!("expected at least median_ms ({median}), got `{p99}`")));
        }
        let duration = Duration::from_millis(params.int("duration_ms") as u64);
        let outage = if params.has("outage_at_ms") {
            let (at, length) = (params.int("outage_at_ms"), params.int("outage_ms"));
            if at + length > params.int("duration_ms") {
                return Err(param_error(
                    "outage_ms",
                    format!("expected the outage to end within duration_ms, got {at} + {length} ms"),
                ));
            }
            Some((Duration::from_millis(at as u64), Duration::from_millis((at + length) as u64)))
        } else {
            None
        };
        let mut stage = Self {
            downstream: DownstreamSpec {
                workers: params.count("workers"),
                latency: LogNormal::from_median_p99(ms(median), ms(p99)),
                error_rate: 0.0,
                outage,
                admission: Admission::Unbounded,
                seed: 0,
                slice: SLICE,
            },
            client: ClientSpec {
                timeout: ms(params.float("timeout_ms")),
                attempts: 1,
                backoff: Backoff::IMMEDIATE,
                budget: None,
                breaker: None,
                hedge: None,
                deadline: None,
                propagate_deadline: false,
                seed: 0,
                slice: SLICE,
            },
            rate: 0.0,
            duration,
            clock: DemoClock::unscaled(params),
        };
        stage.rate =
            if params.has("rate") { params.float("rate") } else { params.float("overload") * stage.capacity() };
        Ok(stage)
    }

    /// Requests the downstream can serve per second: workers / mean service time.
    pub fn capacity(&self) -> f64 {
        self.downstream.workers as f64 / self.downstream.latency.mean().as_secs_f64()
    }

    /// When the outage ends (the run's start when there is none).
    pub fn outage_end(&self) -> Duration {
        self.downstream.outage.map_or(Duration::ZERO, |(_, end)| end)
    }

    /// One run with seeds from `run`: requests due every 1/rate until `duration`, each sent by
    /// the client; the run ends when every request has its final answer.
    pub fn run(&self, context: &RunContext, run: u64) -> Result<Observed, RunError> {
        let downstream =
            Downstream::new(DownstreamSpec { seed: run.wrapping_mul(0x9e37_79b9), ..self.downstream.clone() });
        let client = Client::new(ClientSpec { seed: run ^ 0x5eed, ..self.client.clone() }, downstream.clone());
        let requests = (self.duration.as_secs_f64() * self.rate).ceil() as u64;
        let (gap, sender) = (Duration::from_secs_f64(1.0 / self.rate), client.clone());
        self.clock.run(context, 0, async move {
            let start = now();
            let mut handles = Vec::with_capacity(requests as usize);
            for index in 0..requests {
                let due = start + gap.mul_f64(index as f64);
                let early = due.saturating_sub(now());
                if !early.is_zero() {
                    sleep(early).await?;
                }
                handles.push(spawn(sender.clone().request()));
            }
            gather(handles).await?;
            Ok(())
        })?;
        Ok(Observed { client: client.stats(), downstream: downstream.stats() })
    }

    /// Records the time series and marks the outage on them.
    pub fn record_series(&self, context: &RunContext, observed: &Observed) {
        let width = SLICE.as_secs_f64();
        let arrivals_end = (self.duration.as_secs_f64() / width).ceil() as usize;
        for index in 0..arrivals_end {
            let x = index as f64 * width;
            context.record_point(OFFERED, x, observed.downstream.arrived.at(index) as f64 / width);
            context.record_point(DELIVERED, x, observed.downstream.succeeded.at(index) as f64 / width);
            if let Some(share) = success_share(&observed.client, index) {
                context.record_point(SUCCESS, x, share);
            }
        }
        if let Some((start, end)) = self.downstream.outage {
            for curve in [OFFERED, DELIVERED, SUCCESS] {
                context.mark(curve, "outage starts", start.as_secs_f64());
                context.mark(curve, "outage ends", end.as_secs_f64());
            }
        }
    }

    /// Attempts arriving at the downstream per request started, between `from` and `to`.
    pub fn amplification(&self, observed: &Observed, from: Duration, to: Duration) -> f64 {
        let started = observed.client.started.between(from, to).max(1);
        observed.downstream.arrived.between(from, to) as f64 / started as f64
    }

    /// How long after the outage ended the requests started succeeding (≥ `RECOVERED` of
    /// those started in every slice from then to the end of the arrivals); `None` when they
    /// never did within the run.
    pub fn recovery(&self, observed: &Observed) -> Option<Duration> {
        let first = self.outage_end().as_nanos().div_ceil(SLICE.as_nanos()) as usize;
        let end = (self.duration.as_nanos() / SLICE.as_nanos()) as usize;
        let healthy = |index: usize| success_share(&observed.client, index).is_none_or(|share| share >= RECOVERED);
        if !healthy(end.saturating_sub(1)) {
            return None;
        }
        let recovered_at = (first..end).rev().take_while(|&index| healthy(index)).last().unwrap_or(first);
        Some((SLICE * recovered_at as u32).saturating_sub(self.outage_end()))
    }

    /// The share of the requests started in [from, to) that succeeded.
    pub fn success_between(&self, observed: &Observed, from: Duration, to: Duration) -> f64 {
        let started = observed.client.started.between(from, to);
        observed.client.succeeded.between(from, to) as f64 / started.max(1) as f64
    }

    /// Records what every stage run measures: requests, success rate, recovery, amplification
    /// during the outage, wasted work.
    pub fn record_common(&self, context: &RunContext, observed: &Observed) {
        let client = &observed.client;
        context.record("requests", "requests", client.requests as f64);
        context.record("success rate", "of requests", client.successes as f64 / client.requests.max(1) as f64);
        context.record("goodput", "successes/s", client.successes as f64 / self.duration.as_secs_f64());
        context.record("wasted", "answers nobody waited for", observed.downstream.wasted as f64);
        if let Some((start, end)) = self.downstream.outage {
            context.record("amplification", "× requests", self.amplification(observed, start, end));
            let recovery = self.recovery(observed);
            context.record("recovered", "1 = yes", if recovery.is_some() { 1.0 } else { 0.0 });
            let after = recovery.unwrap_or(self.duration.saturating_sub(end));
            context.record("recovery", "ms", after.as_secs_f64() * 1e3);
        }
    }
}

/// What makes a stage experiment's variants differ, and what it reads off a run.
pub(crate) trait Staging {
    /// Turns the experiment's base stage into `variant`'s.
    fn configure(&self, stage: &mut Stage, variant: &str);
    /// Records what this experiment measures beyond [`Stage::record_common`].
    fn record(&self, context: &RunContext, stage: &Stage, observed: &Observed);
}

/// The workload of a stage experiment: its base stage and its [`Staging`].
pub(crate) struct StageWorkload<S> {
    pub stage: Stage,
    pub staging: S,
}

impl<S: Staging> Workload for StageWorkload<S> {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every request has its final answer.
    fn expected(&self) -> Digest {
        1
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let mut stage = self.stage.clone();
        self.staging.configure(&mut stage, variant);
        Ok(Box::new(StageCell { stage, staging: &self.staging, runs: 0 }))
    }
}

/// One variant's stage; each run has seeds of its own.
struct StageCell<'a, S> {
    stage: Stage,
    staging: &'a S,
    runs: u64,
}

impl<S: Staging> Cell for StageCell<'_, S> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        self.runs += 1;
        let observed = self.stage.run(context, self.runs)?;
        self.stage.record_common(context, &observed);
        self.staging.record(context, &self.stage, &observed);
        Ok(1)
    }
}

/// The success share at which a slice counts as recovered.
pub(crate) const RECOVERED: f64 = 0.9;

/// The share of the requests started in slice `index` that succeeded (`None`: none started).
fn success_share(client: &ClientStats, index: usize) -> Option<f64> {
    let started = client.started.at(index);
    (started > 0).then(|| client.succeeded.at(index) as f64 / started as f64)
}

pub(crate) fn param_error(param: &str, message: String) -> RunError {
    RunError::Param(ParamError { param: param.into(), message })
}
