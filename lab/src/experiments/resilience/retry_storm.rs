//! `retry-storm`: an outage under steady load, met by each retry policy. Retries that do not
//! stop when everything fails multiply the load while the downstream has none to spare; its
//! queue grows past the clients' timeouts, and once it is back every answer comes too late —
//! the storm outlives the outage. A retry budget bounds the extra load and the service
//! recovers at once.

use std::time::Duration;

use super::stage::{outage_params, service_params, Observed, Stage, StageWorkload, Staging};
use crate::experiment::{
    not_testable, verdict, Claim, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use conlab_core::resil::backoff::{Backoff, Schedule};
use conlab_core::units::format_seconds;

pub struct RetryStorm;

/// The variants: the client's retry policy.
const POLICIES: [(&str, &str); 7] = [
    ("none", "one attempt, no retry"),
    ("immediate", "retry at once, up to `attempts` attempts"),
    ("exponential", "retry after base · 2ⁿ⁻¹ (capped)"),
    ("full-jitter", "retry after uniform(0, base · 2ⁿ⁻¹)"),
    ("decorrelated", "retry after uniform(base, 3 × the last delay)"),
    ("budget", "full jitter, and retries ≤ `budget` of requests (a token bucket)"),
    ("deadline", "immediate retries within `deadline_ms`, each attempt carrying what is left of it downstream"),
];

impl Experiment for RetryStorm {
    fn info(&self) -> ExperimentInfo {
        let mut params = service_params(Some(400.0), 50.0, 100.0, 4000);
        params.extend(outage_params());
        params.extend([
            ParamSpec::int("attempts", 4, 1, 20, "", "attempts per request, the first included"),
            ParamSpec::float("base_ms", 10.0, 0.0, 10_000.0, "ms", "the backoff's first delay"),
            ParamSpec::float("cap_ms", 1000.0, 0.0, 100_000.0, "ms", "the longest backoff delay"),
            ParamSpec::float("budget", 0.1, 0.0, 1.0, "of requests", "budget: the share of requests that may retry"),
            ParamSpec::float("deadline_ms", 300.0, 0.1, 100_000.0, "ms", "deadline: a request's whole budget"),
        ]);
        ExperimentInfo {
            id: "retry-storm",
            title: "Retry storms: an outage under steady load, and each retry policy",
            topic: super::NAME,
            concept: "retries, exponential backoff, jitter, retry budgets (metastable failure)",
            teaches: "Requests arrive at `rate`; the downstream serves `workers` at a time and queues the rest. For \
                      `outage_ms` every request it serves fails. A client that retries sends each request up to \
                      `attempts` times: while everything fails the downstream receives that many times the load \
                      (`amplification`). When that exceeds its capacity the queue grows, answers come after the \
                      clients' `timeout_ms`, the clients retry those too — and when the outage ends the downstream \
                      is busy serving requests nobody waits for (`wasted`), so the failure outlives its cause \
                      (`recovered` = 0). Backoff changes when retries come, not how many: while every attempt \
                      fails, a request still makes all of them. A retry budget caps retries at a share of requests, \
                      so the load stays under capacity and the service recovers as the outage ends. Propagating \
                      deadlines (each attempt carries what is left of its request's `deadline_ms`) leaves the \
                      retries as they are but lets the downstream drop, or abandon mid-service, every request \
                      whose client has stopped waiting: its backlog never outlives the clients' patience, and it \
                      recovers as the outage ends. `recovery` is \
                      how long after the outage requests started succeeding again (≥ 90% of those started in every 100 ms slice from then on).",
            params,
            variants: POLICIES.iter().map(|(id, help)| VariantSpec::fixed(id, help)).collect(),
            baseline: "none",
            fixed_duration: true,
            chart_metric: Some("amplification"),
            quick: &["duration_ms=1500", "outage_at_ms=300", "outage_ms=400"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let staging = Storm {
            attempts: params.int("attempts") as u32,
            base: Duration::from_secs_f64(params.float("base_ms") / 1e3),
            cap: Duration::from_secs_f64(params.float("cap_ms") / 1e3),
            budget: params.float("budget"),
            deadline: Duration::from_secs_f64(params.float("deadline_ms") / 1e3),
        };
        Ok(Box::new(StageWorkload { stage: Stage::from_params(params)?, staging }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "immediate retries multiply the load during the outage: the downstream receives ≥ 2× the requests \
                 (median runs)",
                |facts| {
                    attempts_at_least(facts, 3.0)?;
                    let amplification = facts.fixed_metric("immediate", "amplification")?.median;
                    verdict(
                        amplification >= 2.0,
                        format!("{amplification:.2}× the requests reached the downstream during the outage"),
                        "the outage was too short for the retries to pile up",
                    )
                },
            ),
            Claim::new(
                "the storm outlives the outage: with immediate retries the requests do not recover within the run, \
                 while without retries they recover within 0.2 s of its end (median runs)",
                |facts| {
                    storm_possible(facts)?;
                    let stormy = facts.fixed_metric("immediate", "recovered")?.median;
                    let calm = facts.fixed_metric("none", "recovery")?.median;
                    let late = facts.fixed_metric("immediate", "late success")?.median;
                    verdict(
                        stormy == 0.0 && calm <= 200.0,
                        format!(
                            "immediate retries: {:.0}% of the requests in the run's last quarter succeeded; without \
                             retries, recovered {calm:.0} ms after the outage",
                            late * 100.0
                        ),
                        "the downstream caught up: the retries stayed under its capacity",
                    )
                },
            ),
            Claim::new(
                "a retry budget bounds the storm: amplification ≤ 1 + budget (+ its burst of 10) and recovery within \
                 0.2 s of the outage's end (median runs)",
                |facts| {
                    attempts_at_least(facts, 2.0)?;
                    let ratio = facts.param("budget")?;
                    let (outage, rate) = (facts.param("outage_ms")?, facts.param("rate")?);
                    let bound = 1.0 + ratio + BURST / (rate * outage / 1e3).max(1.0);
                    let amplification = facts.fixed_metric("budget", "amplification")?.median;
                    let recovery = facts.fixed_metric("budget", "recovery")?.median;
                    verdict(
                        amplification <= bound + 0.02 && recovery <= 200.0,
                        format!(
                            "{amplification:.3}× the requests during the outage (bound {bound:.3}); recovered {recovery:.0} \
                             ms after it"
                        ),
                        "the budget let more retries through than it holds",
                    )
                },
            ),
            Claim::new(
                "propagating deadlines ends the storm without touching the retries: the downstream serves ≤ 1% of \
                 the requests for nobody and requests recover within 0.2 s of the outage's end (median runs)",
                |facts| {
                    storm_possible(facts)?;
                    let wasted = facts.fixed_metric("deadline", "wasted")?.median;
                    let requests = facts.fixed_metric("deadline", "requests")?.median;
                    let recovery = facts.fixed_metric("deadline", "recovery")?.median;
                    verdict(
                        wasted <= 0.01 * requests && recovery <= 200.0,
                        format!(
                            "{wasted:.0} answers served for nobody (of {requests:.0} requests); recovered {recovery:.0} \
                             ms after the outage"
                        ),
                        "the downstream served requests whose deadline was still ahead when they began",
                    )
                },
            ),
        ]
    }
}

/// The budget's burst: retries a client may make before its requests have earned any.
const BURST: f64 = 10.0;

fn attempts_at_least(facts: &Facts, attempts: f64) -> Result<(), Verdict> {
    if facts.param("attempts")? < attempts {
        return Err(not_testable(format!("needs attempts ≥ {attempts}")));
    }
    if facts.param("outage_ms")? == 0.0 {
        return Err(not_testable("there is no outage"));
    }
    Ok(())
}

/// "Not testable" unless retries can build a backlog during the outage that holds four
/// timeouts' worth of the downstream's work (below that its queue drains before the clients'
/// timeouts feed it), and the run goes on long enough after the outage to see what happens.
fn storm_possible(facts: &Facts) -> Result<(), Verdict> {
    attempts_at_least(facts, 2.0)?;
    let capacity = facts.fixed_metric("none", "capacity")?.median;
    let (rate, attempts) = (facts.param("rate")?, facts.param("attempts")?);
    let (outage, timeout) = (facts.param("outage_ms")? / 1e3, facts.param("timeout_ms")? / 1e3);
    let backlog = (rate * attempts - capacity) * outage;
    if backlog < 4.0 * timeout * capacity {
        return Err(not_testable(format!(
            "retries could queue {backlog:.0} requests during the outage, under four timeouts' worth of work ({:.0})",
            4.0 * timeout * capacity
        )));
    }
    let after = facts.param("duration_ms")? - facts.param("outage_at_ms")? - facts.param("outage_ms")?;
    if after < 500.0 {
        return Err(not_testable(format!("the run goes on only {after:.0} ms after the outage (needs 500)")));
    }
    Ok(())
}

struct Storm {
    attempts: u32,
    base: Duration,
    cap: Duration,
    budget: f64,
    deadline: Duration,
}

impl Staging for Storm {
    fn configure(&self, stage: &mut Stage, variant: &str) {
        let backoff = |schedule| Backoff { schedule, base: self.base, cap: self.cap };
        stage.client.attempts = if variant == "none" { 1 } else { self.attempts };
        stage.client.backoff = match variant {
            "none" | "immediate" | "deadline" => Backoff::IMMEDIATE,
            "exponential" => backoff(Schedule::Exponential),
            "decorrelated" => backoff(Schedule::Decorrelated),
            _ => backoff(Schedule::FullJitter),
        };
        if variant == "budget" {
            stage.client.budget = Some((self.budget, BURST));
        }
        if variant == "deadline" {
            stage.client.deadline = Some(self.deadline);
            stage.client.propagate_deadline = true;
        }
    }

    fn record(&self, context: &RunContext, stage: &Stage, observed: &Observed) {
        stage.record_series(context, observed);
        context.record("capacity", "requests/s", stage.capacity());
        let (end, duration) = (stage.outage_end(), stage.duration);
        let last_quarter = duration.saturating_sub(duration.saturating_sub(end) / 4);
        context.record("late success", "of requests", stage.success_between(observed, last_quarter, duration));
        report(context, stage, observed);
    }
}

fn report(context: &RunContext, stage: &Stage, observed: &Observed) {
    let Some((start, end)) = stage.downstream.outage else { return };
    let amplification = stage.amplification(observed, start, end);
    let recovery = match stage.recovery(observed) {
        Some(after) if after.is_zero() => "requests succeeded again as soon as it ended".to_string(),
        Some(after) => format!("requests succeeded again {} after it ended", format_seconds(after.as_secs_f64())),
        None => format!(
            "requests had not recovered {} after it ended",
            format_seconds(stage.duration.saturating_sub(end).as_secs_f64())
        ),
    };
    context.report(format!(
        "during the outage the downstream received {amplification:.2}× the requests; {recovery}; it served {} \
         requests nobody was waiting for",
        observed.downstream.wasted
    ));
}
