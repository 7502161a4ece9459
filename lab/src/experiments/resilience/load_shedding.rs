//! `load-shedding`: more requests than the downstream can serve, and what its admission policy
//! makes of them. Goodput is the answers that came within the client's deadline: an unbounded
//! queue serves only requests whose clients have given up, while a bounded queue, LIFO or CoDel
//! refuses or drops the excess and keeps serving on time.

use std::time::Duration;

use super::stage::{service_params, Observed, Stage, StageWorkload, Staging};
use crate::experiment::{
    not_testable, verdict, Claim, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError, TimeUnit,
    VariantSpec, Verdict, Workload,
};
use conlab_core::resil::admission::Admission;
use conlab_core::resil::client::Failure;

pub struct LoadShedding;

const POLICIES: [(&str, &str); 5] = [
    ("unbounded", "every request waits its turn, oldest first"),
    ("bounded", "at most `queue_limit` wait; the rest are refused at once"),
    ("lifo", "every request waits; the newest is served first"),
    (
        "codel",
        "RFC 8289's CoDel: drops at the head while the delay stands above `target_ms`, at a rate rising as √drops",
    ),
    ("adaptive-codel", "once the queue has not been empty for `interval_ms`, drops requests that waited > `target_ms`"),
];

impl Experiment for LoadShedding {
    fn info(&self) -> ExperimentInfo {
        let mut params = service_params(None, 50.0, 100.0, 3000);
        params.extend([
            ParamSpec::int("queue_limit", 20, 0, 100_000, "requests", "bounded: requests that may wait"),
            ParamSpec::float("target_ms", 5.0, 0.01, 10_000.0, "ms", "codel: the standing delay it tolerates"),
            ParamSpec::float("interval_ms", 100.0, 0.1, 60_000.0, "ms", "codel: how long the delay may stand"),
        ]);
        ExperimentInfo {
            id: "load-shedding",
            title: "Load shedding: goodput under overload, per admission policy",
            topic: super::NAME,
            concept: "bounded queues, LIFO, CoDel (load shedding, admission control)",
            teaches: "Requests arrive at `overload` × what the downstream can serve, and each client waits \
                      `timeout_ms` for its answer. The unbounded queue takes them all: it grows without end, every \
                      request waits longer than its client, and the downstream works flat out serving answers \
                      nobody reads — goodput (answers within the deadline, per second) collapses. A bounded queue \
                      refuses the excess at once, so what it accepts is served in time; LIFO serves the newest \
                      request, whose client is still waiting, and lets the old ones starve; adaptive CoDel (the RPC \
                      world's version) drops what has waited past its target once the queue has stood for an \
                      interval. All three keep goodput near capacity. RFC 8289's CoDel, built for TCP senders that \
                      slow down after one drop, drops one request per interval/√count: against clients that keep \
                      sending that is far too few, and its goodput collapses with the unbounded queue's.",
            params,
            variants: POLICIES.iter().map(|(id, help)| VariantSpec::fixed(id, help)).collect(),
            baseline: "unbounded",
            fixed_duration: true,
            chart_metric: Some("goodput"),
            quick: &["duration_ms=1000", "overload=2"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let ms = |name| Duration::from_secs_f64(params.float(name) / 1e3);
        let staging =
            Shedding { queue_limit: params.count("queue_limit"), target: ms("target_ms"), interval: ms("interval_ms") };
        Ok(Box::new(StageWorkload { stage: Stage::from_params(params)?, staging }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "under overload the unbounded queue's goodput collapses: ≤ 25% of capacity (median runs)",
                |facts| {
                    overloaded_long_enough(facts)?;
                    let capacity = facts.fixed_metric("unbounded", "capacity")?.median;
                    let goodput = facts.fixed_metric("unbounded", "goodput")?.median;
                    verdict(
                        goodput <= 0.25 * capacity,
                        format!("{goodput:.0} answers/s in time, of a capacity of {capacity:.0}/s"),
                        "the queue had not yet grown past the clients' deadline",
                    )
                },
            ),
            Claim::new(
                "a bounded queue, LIFO and adaptive CoDel keep serving: each keeps goodput ≥ 70% of capacity and \
                 ≥ 2× the unbounded queue's (median runs)",
                |facts| {
                    overloaded_long_enough(facts)?;
                    let capacity = facts.fixed_metric("unbounded", "capacity")?.median;
                    let unbounded = facts.fixed_metric("unbounded", "goodput")?.median;
                    let mut readings = Vec::new();
                    let mut all = true;
                    for policy in ["bounded", "lifo", "adaptive-codel"] {
                        let goodput = facts.fixed_metric(policy, "goodput")?.median;
                        all &= goodput >= 0.7 * capacity && goodput >= 2.0 * unbounded;
                        readings.push(format!("{policy} {goodput:.0}/s"));
                    }
                    verdict(
                        all,
                        format!("{}, unbounded {unbounded:.0}/s (capacity {capacity:.0}/s)", readings.join(", ")),
                        "a policy let its queue's delay grow past the clients' deadline",
                    )
                },
            ),
            Claim::new(
                "RFC 8289's CoDel drops too few for clients that do not back off: its goodput stays below half the \
                 adaptive variant's (median runs)",
                |facts| {
                    overloaded_long_enough(facts)?;
                    let packet = facts.fixed_metric("codel", "goodput")?.median;
                    let adaptive = facts.fixed_metric("adaptive-codel", "goodput")?.median;
                    verdict(
                        packet < adaptive / 2.0,
                        format!("{packet:.0} answers/s in time with RFC CoDel, {adaptive:.0}/s with adaptive CoDel"),
                        "its drop rate caught up with the excess load (a short interval, or a mild overload)",
                    )
                },
            ),
        ]
    }
}

/// "Not testable" unless the load exceeds capacity by 20% for six times as long as an unbounded
/// queue's delay takes to pass the clients' deadline (until then it still serves in time).
fn overloaded_long_enough(facts: &Facts) -> Result<(), Verdict> {
    let overload = facts.param("overload")?;
    if overload < 1.2 {
        return Err(not_testable(format!("{overload}× capacity is not overload (needs ≥ 1.2)")));
    }
    let capacity = facts.fixed_metric("unbounded", "capacity")?.median;
    let timeout = facts.param("timeout_ms")? / 1e3;
    // The queue grows by (overload − 1) × capacity per second; its delay passes the deadline after:
    let filled = timeout / (overload - 1.0);
    let duration = facts.param("duration_ms")? / 1e3;
    if duration < 6.0 * filled {
        return Err(not_testable(format!(
            "the queue's delay passes the deadline after {filled:.2} s; the run needs ≥ 6× that ({duration:.2} s, \
             capacity {capacity:.0}/s)"
        )));
    }
    Ok(())
}

struct Shedding {
    queue_limit: usize,
    target: Duration,
    interval: Duration,
}

impl Staging for Shedding {
    fn configure(&self, stage: &mut Stage, variant: &str) {
        stage.downstream.admission = match variant {
            "bounded" => Admission::Bounded(self.queue_limit),
            "lifo" => Admission::Lifo,
            "codel" => Admission::CoDel { target: self.target, interval: self.interval },
            "adaptive-codel" => Admission::AdaptiveCoDel { target: self.target, interval: self.interval },
            _ => Admission::Unbounded,
        };
    }

    fn record(&self, context: &RunContext, stage: &Stage, observed: &Observed) {
        stage.record_series(context, observed);
        let (client, downstream) = (&observed.client, &observed.downstream);
        context.record("capacity", "requests/s", stage.capacity());
        context.record_time("p50", TimeUnit::Milliseconds, client.success_latency.quantile(0.5) as f64);
        context.record_time("p99", TimeUnit::Milliseconds, client.success_latency.quantile(0.99) as f64);
        context.record("timed out", "requests", client.failed(Failure::TimedOut) as f64);
        context.record("refused", "requests", (downstream.rejected + downstream.shed) as f64);
        context.record("longest queue", "requests", downstream.longest_queue as f64);
        context.report(format!(
            "{} of {} requests answered in time; {} timed out; {} refused or dropped; {} served for nobody",
            client.successes,
            client.requests,
            client.failed(Failure::TimedOut),
            downstream.rejected + downstream.shed,
            downstream.wasted
        ));
    }
}
