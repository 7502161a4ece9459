//! `hedging`: tail latency against extra load. A request with no answer after the service's
//! p50, p95 or p99 sends a second copy; the first answer wins, and the loser is cancelled in
//! the service — or, in `p95-keep`, left to finish (Dean & Barroso, "The Tail at Scale").

use super::stage::{service_params, Observed, Stage, StageWorkload, Staging};
use crate::experiment::{
    verdict, Claim, Experiment, ExperimentInfo, Params, RunContext, RunError, TimeUnit, VariantSpec, Workload,
};
use conlab_core::resil::client::Hedge;

pub struct Hedging;

/// The variants: (id, the hedge's quantile, cancel the loser, help).
const HEDGES: [(&str, Option<f64>, bool, &str); 5] = [
    ("none", None, false, "one copy per request"),
    ("p50", Some(0.50), true, "a second copy after the service's median; the loser is cancelled"),
    ("p95", Some(0.95), true, "a second copy after its p95; the loser is cancelled"),
    ("p99", Some(0.99), true, "a second copy after its p99; the loser is cancelled"),
    ("p95-keep", Some(0.95), false, "a second copy after its p95; the loser runs to the end"),
];

impl Experiment for Hedging {
    fn info(&self) -> ExperimentInfo {
        let params = service_params(Some(200.0), 100.0, 1000.0, 4000);
        ExperimentInfo {
            id: "hedging",
            title: "Hedged requests: cutting the tail for a little extra load",
            topic: super::NAME,
            concept: "hedged requests (\"The Tail at Scale\")",
            teaches: "The downstream's service time has a long tail: most requests take about `median_ms`, one in a \
                      hundred `p99_ms` or more. A hedging client waits the service's p50, p95 or p99 and, with no \
                      answer yet, sends a second copy: the request ends with whichever answers first, so only \
                      requests unlucky twice stay slow. Hedging after the p95 sends ~5% more requests and cuts the \
                      p99; after the median it cuts the tail further for ~50% more. `extra requests` is what reached \
                      the downstream beyond one per request; `extra work` is what it served to the end — cancelling \
                      the loser frees its worker, `p95-keep` lets it finish.",
            params,
            variants: HEDGES.iter().map(|(id, _, _, help)| VariantSpec::fixed(id, help)).collect(),
            baseline: "none",
            fixed_duration: true,
            chart_metric: Some("p99"),
            quick: &["duration_ms=1500"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(StageWorkload { stage: Stage::from_params(params)?, staging: Hedged }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "hedging after the p95 cuts the p99 by ≥ 1.3× for ≤ 10% extra requests (median runs)",
                |facts| {
                    let plain = facts.fixed_metric("none", "p99")?.median;
                    let hedged = facts.fixed_metric("p95", "p99")?.median;
                    let extra = facts.fixed_metric("p95", "extra requests")?.median;
                    verdict(
                        plain >= 1.3 * hedged && extra <= 0.10,
                        format!("p99 {plain:.1} ms → {hedged:.1} ms for {:.1}% extra requests", extra * 100.0),
                        "the tail was too short to cut (raise p99_ms), or the hedges overloaded the downstream",
                    )
                },
            ),
            Claim::new(
                "hedging after the median cuts the p99 further, for ≥ 40% extra requests (median runs)",
                |facts| {
                    let p95 = facts.fixed_metric("p95", "p99")?.median;
                    let p50 = facts.fixed_metric("p50", "p99")?.median;
                    let extra = facts.fixed_metric("p50", "extra requests")?.median;
                    verdict(
                        p50 < p95 && extra >= 0.40,
                        format!(
                            "p99 {p50:.1} ms hedging after the median ({:.0}% extra), {p95:.1} ms after the p95",
                            extra * 100.0
                        ),
                        "the extra load queued at the downstream and ate the gain",
                    )
                },
            ),
            Claim::new(
                "cancelling the loser saves its work: the downstream serves ≤ 1% extra with cancelling, and about \
                 the hedged share extra without (median runs)",
                |facts| {
                    let cancelled = facts.fixed_metric("p95", "extra work")?.median;
                    let kept = facts.fixed_metric("p95-keep", "extra work")?.median;
                    let hedged = facts.fixed_metric("p95-keep", "extra requests")?.median;
                    verdict(
                        cancelled <= 0.01 && kept >= 0.8 * hedged && hedged > 0.0,
                        format!(
                            "{:.2}% extra served with the loser cancelled, {:.2}% kept ({:.2}% hedged)",
                            cancelled * 100.0,
                            kept * 100.0,
                            hedged * 100.0
                        ),
                        "no request was hedged",
                    )
                },
            ),
        ]
    }
}

struct Hedged;

impl Staging for Hedged {
    fn configure(&self, stage: &mut Stage, variant: &str) {
        let (_, quantile, cancel_loser, _) =
            HEDGES.iter().find(|(id, ..)| *id == variant).copied().unwrap_or(HEDGES[0]);
        let after = quantile.and_then(|q| stage.downstream.latency.quantile(q));
        stage.client.hedge = after.map(|after| Hedge { after, cancel_loser });
    }

    fn record(&self, context: &RunContext, _: &Stage, observed: &Observed) {
        let (client, downstream) = (&observed.client, &observed.downstream);
        let latency = &client.success_latency;
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            context.record_time(name, TimeUnit::Milliseconds, latency.quantile(q) as f64);
        }
        context.record_latency("latency", latency);
        let requests = client.requests.max(1) as f64;
        context.record("extra requests", "× requests", downstream.arrived.total() as f64 / requests - 1.0);
        context.record("extra work", "× requests", downstream.served.total() as f64 / requests - 1.0);
        context.record("hedged", "of requests", client.hedges as f64 / requests);
    }
}
