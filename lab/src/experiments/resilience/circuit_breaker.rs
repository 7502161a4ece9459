//! `circuit-breaker`: the retry storm's outage again, with the same retrying client with and
//! without a circuit breaker. Open, the breaker fails requests in no time and sends nothing;
//! it probes after its cooldown and closes once the probes succeed.

use std::time::Duration;

use super::stage::{outage_params, service_params, Observed, Stage, StageWorkload, Staging, SLICE};
use crate::experiment::{
    verdict, Claim, CurveSpec, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::resil::breaker::{BreakerSpec, BreakerState};
use conlab_core::resil::client::Failure;

pub struct CircuitBreaker;

const STATE: CurveSpec = CurveSpec {
    name: "the breaker's state",
    x: "time (s)",
    y: "closed 0 · half-open 0.5 · open 1",
    log_x: false,
    log_y: false,
};

impl Experiment for CircuitBreaker {
    fn info(&self) -> ExperimentInfo {
        let mut params = service_params(Some(400.0), 50.0, 100.0, 4000);
        params.extend(outage_params());
        params.extend([
            ParamSpec::int("attempts", 4, 1, 20, "", "attempts per request (immediate retries), the first included"),
            ParamSpec::int("threshold", 5, 1, 1000, "failures", "failures in a row that open the breaker"),
            ParamSpec::float("cooldown_ms", 200.0, 1.0, 60_000.0, "ms", "how long it stays open before probing"),
            ParamSpec::int("probes", 3, 1, 100, "", "probes that must succeed to close it"),
        ]);
        ExperimentInfo {
            id: "circuit-breaker",
            title: "A circuit breaker: fail fast while the downstream is down, probe, recover",
            topic: super::NAME,
            concept: "the circuit breaker (Nygard, \"Release It!\")",
            teaches: "The retry storm's outage, met by the same retrying client with and without a breaker. After \
                      `threshold` failures in a row the breaker opens: requests fail at once, without reaching the \
                      downstream, so the storm never starts. After `cooldown_ms` it lets `probes` requests through; \
                      if they all succeed it closes, if one fails it opens again. Without it, each failure costs \
                      its retries and timeouts (`failure p50`), and the load piles onto the downstream. The price: \
                      after the outage the breaker keeps failing requests until its next probe succeeds \
                      (`recovery`). The chart draws the breaker's state over the run.",
            params,
            variants: vec![
                VariantSpec::fixed("no-breaker", "immediate retries, no breaker"),
                VariantSpec::fixed("breaker", "immediate retries behind a circuit breaker"),
            ],
            baseline: "no-breaker",
            fixed_duration: true,
            chart_metric: Some("failure p50"),
            quick: &["duration_ms=1500", "outage_at_ms=300", "outage_ms=400"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let mut stage = Stage::from_params(params)?;
        stage.client.attempts = params.int("attempts") as u32;
        let breaker = BreakerSpec {
            threshold: params.int("threshold") as u32,
            cooldown: Duration::from_secs_f64(params.float("cooldown_ms") / 1e3),
            probes: params.int("probes") as u32,
        };
        Ok(Box::new(StageWorkload { stage, staging: Guarded { breaker } }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "open, the breaker fails fast: its failures' median latency is under 1 ms, ≥ 10× faster than \
                 the failures without it (median runs)",
                |facts| {
                    let fast = facts.fixed_metric("breaker", "failure p50")?.median;
                    let slow = facts.fixed_metric("no-breaker", "failure p50")?.median;
                    verdict(
                        fast < 1.0 && slow >= 10.0 * fast.max(0.1),
                        format!("failures took {fast:.2} ms with the breaker, {slow:.1} ms without (medians)"),
                        "the breaker did not open: too few failures in a row",
                    )
                },
            ),
            Claim::new(
                "the breaker sheds the load: during the outage the downstream receives ≤ half the requests with it, \
                 more than all of them without it (median runs)",
                |facts| {
                    let with = facts.fixed_metric("breaker", "amplification")?.median;
                    let without = facts.fixed_metric("no-breaker", "amplification")?.median;
                    verdict(
                        with <= 0.5 && without > 1.0,
                        format!(
                            "{with:.2}× the requests reached the downstream with the breaker, {without:.2}× without"
                        ),
                        "the breaker stayed closed",
                    )
                },
            ),
            Claim::new(
                "it closes again: requests recover within cooldown + 0.3 s of the outage's end (median runs)",
                |facts| {
                    let cooldown = facts.param("cooldown_ms")?;
                    let recovery = facts.fixed_metric("breaker", "recovery")?.median;
                    verdict(
                        recovery <= cooldown + 300.0,
                        format!("recovered {recovery:.0} ms after the outage (cooldown {cooldown:.0} ms)"),
                        "the probes kept failing: the downstream was still overloaded",
                    )
                },
            ),
        ]
    }
}

struct Guarded {
    breaker: BreakerSpec,
}

impl Staging for Guarded {
    fn configure(&self, stage: &mut Stage, variant: &str) {
        if variant == "breaker" {
            stage.client.breaker = Some(self.breaker);
        }
    }

    fn record(&self, context: &RunContext, stage: &Stage, observed: &Observed) {
        stage.record_series(context, observed);
        let client = &observed.client;
        context.record("failure p50", "ms", client.failure_latency.quantile(0.5) as f64 / 1e6);
        context.record("failed fast", "requests", client.failed(Failure::FailedFast) as f64);
        let opened = client.breaker.iter().filter(|(_, state)| *state == BreakerState::Open).count();
        context.record("opened", "times", opened as f64);
        if stage.client.breaker.is_some() {
            record_states(context, stage, observed);
        }
    }
}

/// The breaker's state at the start of every slice, and a finding naming its transitions.
fn record_states(context: &RunContext, stage: &Stage, observed: &Observed) {
    let transitions = &observed.client.breaker;
    let slices = (stage.duration.as_nanos() / SLICE.as_nanos()) as usize;
    for index in 0..slices {
        let at = SLICE * index as u32;
        let state = transitions.iter().take_while(|(when, _)| *when <= at).last().map_or(BreakerState::Closed, |t| t.1);
        context.record_point(STATE, at.as_secs_f64(), state.level());
    }
    // Each transition too: a half-open probe lasts less than a slice.
    for (when, state) in transitions {
        context.record_point(STATE, when.as_secs_f64(), state.level());
    }
    let first_open = transitions.iter().find(|(_, state)| *state == BreakerState::Open);
    let last_close = transitions.last().filter(|(_, state)| *state == BreakerState::Closed);
    if let (Some((opened, _)), Some((closed, _))) = (first_open, last_close) {
        let probes = transitions.iter().filter(|(_, state)| *state == BreakerState::HalfOpen).count();
        context.report(format!(
            "the breaker opened at {:.3} s, half-opened {probes} times to probe, and closed for good at {:.3} s",
            opened.as_secs_f64(),
            closed.as_secs_f64()
        ));
    }
}
