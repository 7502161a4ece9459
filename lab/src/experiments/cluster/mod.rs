//! beyond one machine: dataflows on timely-dataflow, across processes and hosts — what crossing a
//! process boundary costs, the hot key and the combiner, join strategies, iterative rounds.
//!
//! The experiments here describe jobs ([`engine::Job`]) and read what each run reports; the
//! cluster itself — processes, TCP, timely's workers — is the [`engine`] `conlab` installs.
//! Every run's output is checked against the sequential answer ([`inputs::answer`]).

use std::time::Duration;

use crate::experiment::{Cell, Digest, Experiment, ParamSpec, Params, RunContext, RunError};

pub mod engine;
pub mod inputs;

mod iterative;
mod join_strategies;
mod scaling;
mod shuffle_skew;

use engine::{Cluster, Job, Round, Shape};

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "beyond one machine";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] =
    &[&scaling::ClusterScaling, &shuffle_skew::ShuffleSkew, &join_strategies::JoinStrategies, &iterative::Iterative];

/// The parameters every cluster experiment has: its processes and its deadline.
fn cluster_params() -> [ParamSpec; 2] {
    [
        ParamSpec::int(
            "processes",
            2,
            1,
            16,
            "processes",
            "processes of the cluster, on 127.0.0.1 (or the hostfile's)",
        ),
        ParamSpec::int(
            "deadline",
            60,
            1,
            3600,
            "s",
            "seconds the cluster may take to start, and each run to finish, before the run fails",
        ),
    ]
}

/// The word-count experiments' parameters (the map-reduce experiment's text, its skew knob at
/// `skew`), then the cluster's.
fn word_count_params(skew: f64) -> Vec<ParamSpec> {
    let mut params = vec![
        ParamSpec::int("words", 1 << 20, 1, 1 << 25, "words", "words of generated text (the map-reduce experiment's)"),
        ParamSpec::float("skew", skew, 0.0, 0.95, "", "share of the words that are one hot word"),
        ParamSpec::int("seed", 1, 0, u32::MAX.into(), "", "seed of the generated text"),
    ];
    params.extend(cluster_params());
    params
}

/// The word count those parameters describe.
fn word_count_job(params: &Params, combiner: bool) -> Job {
    Job::WordCount {
        words: params.count("words"),
        skew: params.float("skew"),
        seed: params.int("seed") as u64,
        combiner,
    }
}

/// A cluster cell: the started cluster (untimed), one job run per timed run.
struct ClusterCell {
    cluster: Box<dyn Cluster>,
    shape: Shape,
    record: Record,
}

/// What a cell records from each run's report.
type Record = Box<dyn Fn(&Round, Shape, &RunContext)>;

impl ClusterCell {
    /// Starts `job` on `shape` with the installed engine (none: the cell is skipped).
    fn start(job: &Job, shape: Shape, params: &Params, record: Record) -> Result<Box<dyn Cell>, RunError> {
        let deadline = Duration::from_secs(params.count("deadline") as u64);
        let cluster = engine::engine()?.start(job, shape, deadline)?;
        Ok(Box::new(Self { cluster, shape, record }))
    }
}

impl Cell for ClusterCell {
    fn threads(&self) -> usize {
        self.shape.total()
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let round = self.cluster.run(context)?;
        if round.epochs.iter().any(|epoch| epoch.workers.len() != self.shape.total()) {
            return Err(RunError::Failed(format!(
                "a run reported {} workers' accounts, expected {} from each epoch",
                round.workers().count(),
                self.shape.total()
            )));
        }
        (self.record)(&round, self.shape, context);
        Ok(round.digest())
    }
}

/// The records and bytes a run moved, and how evenly the work fell: the exchange's totals, the
/// busiest worker's share of the records received and its busy time over the mean.
fn record_exchange(round: &Round, shape: Shape, context: &RunContext) {
    let total = |field: fn(&engine::WorkerReport) -> u64| round.workers().map(field).sum::<u64>() as f64;
    context.record("records to other workers", "records", total(|w| w.sent_other_workers));
    context.record("bytes to other workers", "KiB", total(|w| w.bytes_other_workers) / 1024.0);
    context.record("records to other processes", "records", total(|w| w.sent_other_processes));
    context.record("bytes to other processes", "KiB", total(|w| w.bytes_other_processes) / 1024.0);
    let mut received = vec![0u64; shape.total()];
    let mut busy = vec![0u64; shape.total()];
    for report in round.workers() {
        received[report.worker] += report.records_in;
        busy[report.worker] += report.busy_ns;
    }
    let all: u64 = received.iter().sum();
    if all > 0 {
        context.record(
            "busiest worker's records",
            "% of records",
            100.0 * *received.iter().max().unwrap_or(&0) as f64 / all as f64,
        );
    }
    let mean = busy.iter().sum::<u64>() as f64 / busy.len() as f64;
    if mean > 0.0 {
        context.record("straggler", "× mean busy", *busy.iter().max().unwrap_or(&0) as f64 / mean);
        context.record("busiest worker busy", "ms", *busy.iter().max().unwrap_or(&0) as f64 / 1e6);
    }
}
