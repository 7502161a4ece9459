//! `iterative`: connected components as a dataflow loop — rounds, the time of each, and what
//! a round costs when almost nothing moves (progress tracking's share).

use super::engine::{Job, Round, Shape};
use super::{cluster_params, inputs, record_exchange, ClusterCell};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Workload,
};

pub struct Iterative;

const ROUND_TIME: CurveSpec = CurveSpec { name: "round time", x: "round", y: "ms", log_x: false, log_y: true };
const ROUND_RECORDS: CurveSpec =
    CurveSpec { name: "records per round", x: "round", y: "label offers", log_x: false, log_y: true };

impl Experiment for Iterative {
    fn info(&self) -> ExperimentInfo {
        let mut params = vec![
            ParamSpec::int("nodes", 1 << 17, 2, 1 << 24, "nodes", "nodes of the random graph"),
            ParamSpec::int("degree", 2, 1, 64, "edges per node", "average edges per node"),
            ParamSpec::int("seed", 1, 0, u32::MAX.into(), "", "seed of the generated graph"),
        ];
        params.extend(cluster_params());
        ExperimentInfo {
            id: "iterative",
            title: "Iterative dataflow: connected components in rounds, and what each round costs",
            topic: super::NAME,
            concept: "iteration in dataflow (Naiad's loops, Pregel's supersteps) and progress tracking (frontiers)",
            teaches: "Connected components by label propagation: every node starts with its own id as its label, \
                      and in each round every node whose label dropped offers it to its neighbours, which keep the \
                      least. The dataflow is a loop: offers go round it with the round number in their timestamp, \
                      and a worker handles round r once the frontier — timely's progress tracking, agreed by every \
                      worker — says no offer of round r can still arrive. The first rounds move most of the records; \
                      the last ones move a handful, yet each still waits for the frontier to pass, so the tail of the \
                      run is rounds, not work. The curves show both, per round.",
            params,
            variants: vec![VariantSpec::sweep("loop", "label propagation in a timely loop, one round per frontier")],
            baseline: "loop",
            work_unit: Some("nodes"),
            quick: &["nodes=4000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let job = Job::Components {
            nodes: params.count("nodes"),
            degree: params.count("degree"),
            seed: params.int("seed") as u64,
        };
        let answer = inputs::answer(&job);
        Ok(Box::new(Components { job, params: params.clone(), expected: answer.digest, rounds: answer.rounds }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the loop runs the sequential algorithm's rounds exactly: each round is one frontier passing",
                |facts| {
                    let workers =
                        facts.threads_of("loop").into_iter().max().ok_or_else(|| not_testable("no cell ran"))?;
                    let rounds = facts.metric("loop", workers, "rounds")?;
                    let sequential = facts.metric("loop", workers, "sequential rounds")?;
                    verdict(
                        rounds == sequential,
                        format!(
                            "{workers} workers: {rounds:.0} rounds; the sequential propagation took {sequential:.0}"
                        ),
                        "a round's offers were handled before its frontier passed",
                    )
                },
            ),
            Claim::new(
                "the tail is rounds, not work: the last round takes in under 1% of the busiest round's records, yet \
                 takes ≥ 1% of its time",
                |facts| {
                    let workers =
                        facts.threads_of("loop").into_iter().max().ok_or_else(|| not_testable("no cell ran"))?;
                    let records = facts.metric("loop", workers, "last round's share of the busiest round's records")?;
                    let time = facts.metric("loop", workers, "last round's share of the busiest round's time")?;
                    if records >= 1.0 {
                        return Err(not_testable("the graph is too small for a thin tail: try nodes=100000"));
                    }
                    verdict(
                        time >= 1.0,
                        format!("{workers} workers: the last round had {records:.3}% of the busiest round's records and took {time:.1}% of its time"),
                        "a round's fixed cost was below the clock's reach",
                    )
                },
            ),
        ]
    }
}

struct Components {
    job: Job,
    params: Params,
    expected: Digest,
    rounds: usize,
}

impl Workload for Components {
    fn work_units(&self) -> Option<f64> {
        Some(self.params.count("nodes") as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, _: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let shape = Shape { processes: self.params.count("processes"), workers: threads };
        let sequential = self.rounds as f64;
        ClusterCell::start(
            &self.job,
            shape,
            &self.params,
            Box::new(move |round, shape, context| record_rounds(round, shape, context, sequential)),
        )
    }
}

/// The rounds, each round's time and records on the curves, and the tail's share of the busiest round.
fn record_rounds(round: &Round, shape: Shape, context: &RunContext, sequential: f64) {
    record_exchange(round, shape, context);
    let Some(epoch) = round.epochs.first() else { return };
    let handled = epoch.workers.iter().map(|report| report.round_records.len()).max().unwrap_or(0);
    let mut records = vec![0u64; handled];
    for report in &epoch.workers {
        for (total, count) in records.iter_mut().zip(&report.round_records) {
            *total += count;
        }
    }
    let times: Vec<f64> = std::iter::once(0)
        .chain(epoch.rounds_done_ns.iter().copied().take(handled))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]) as f64 / 1e6)
        .collect();
    // The last round handled is the one that changed nothing: the rounds that changed a label are the others.
    context.record("rounds", "rounds", handled.saturating_sub(1) as f64);
    context.record("sequential rounds", "rounds", sequential);
    for (index, (time, count)) in times.iter().zip(&records).enumerate() {
        context.record_point(ROUND_TIME, index as f64, *time);
        context.record_point(ROUND_RECORDS, index as f64, *count as f64);
    }
    let busiest = records.iter().enumerate().max_by_key(|(_, count)| **count).map(|(index, _)| index);
    if let (Some(busiest), Some(&last), Some(&last_time)) = (busiest, records.last(), times.last()) {
        context.record(
            "last round's share of the busiest round's records",
            "%",
            100.0 * last as f64 / records[busiest].max(1) as f64,
        );
        context.record(
            "last round's share of the busiest round's time",
            "%",
            100.0 * last_time / times[busiest].max(1e-9),
        );
    }
}
