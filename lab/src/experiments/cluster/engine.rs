//! The door between the lab and a cluster engine.
//!
//! The lab describes a [`Job`] (a dataflow and its generated input) and a [`Shape`] (processes ×
//! workers per process); an [`Engine`] starts a [`Cluster`] for them, and each
//! [`Cluster::run`] is one timed run of the job on every worker, reported as a [`Round`]. The
//! engine is timely-dataflow in `conlab` (native only: processes, TCP) and is installed once at
//! start-up, as process pools learn the worker executable. Where none is installed — the
//! browser, the lab's own tests — the cluster cells are skipped with [`NO_ENGINE`] as the reason.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::experiment::{RunContext, RunError};
use conlab_core::platform::PlatformError;

/// Why a cluster cell cannot run without an engine.
pub const NO_ENGINE: &str =
    "a cluster runs as operating-system processes talking TCP: a browser can start neither, so \
                             run it with the `conlab` CLI (`conlab run ID` or `conlab cluster ID`) and import the \
                             result here";

/// One dataflow over its generated input. Every process generates the same input from these
/// settings; worker `w` of `n` feeds the items whose index is `w` mod `n`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Job {
    /// Word count over the map-reduce experiment's text: map (split into words), exchange by the
    /// word's hash, count. With the combiner, a worker counts its own words before the exchange.
    WordCount { words: usize, skew: f64, seed: u64, combiner: bool },
    /// A `rows`-row table joined on its key with a small table of each size in `sizes` in
    /// turn (one epoch each): both sides exchanged by key, or the small side broadcast.
    Join { rows: usize, sizes: Vec<usize>, broadcast: bool, seed: u64 },
    /// Connected components by minimum-label propagation on a random graph, in a dataflow loop.
    Components { nodes: usize, degree: usize, seed: u64 },
}

/// Where a job runs: `processes` processes of `workers` worker threads each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub processes: usize,
    pub workers: usize,
}

impl Shape {
    pub fn total(self) -> usize {
        self.processes * self.workers
    }
}

/// One worker's account of one epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub worker: usize,
    /// Time inside the dataflow's own operators (map, count, join, label).
    pub busy_ns: u64,
    /// Records this worker received through an exchange (its share of the keys).
    pub records_in: u64,
    /// Records this worker sent to another worker, in its process or not.
    pub sent_other_workers: u64,
    /// Their payload in bytes, as timely encodes them (bincode) when they leave the process;
    /// to a worker in the same process they move without being encoded.
    pub bytes_other_workers: u64,
    /// Records this worker sent to a worker in another process: serialised and sent over TCP.
    pub sent_other_processes: u64,
    /// Their payload in bytes, as timely encodes them (bincode).
    pub bytes_other_processes: u64,
    /// This worker's share of the output's digest (a wrapping sum over its keys).
    pub digest: u64,
    /// Iterative jobs: records this worker took in, per round.
    pub round_records: Vec<u64>,
}

/// One epoch of a run: the time worker 0 saw it take and every worker's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    pub ns: u64,
    /// Join: the small side's rows in this epoch.
    pub size: u64,
    pub workers: Vec<WorkerReport>,
    /// Iterative jobs: when each round was complete (its frontier passed), ns from the epoch's start.
    pub rounds_done_ns: Vec<u64>,
}

/// One run of a job on every worker: its epochs in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub epochs: Vec<Epoch>,
}

impl Round {
    /// The digest of the whole output: the workers' shares over all epochs, summed.
    pub fn digest(&self) -> u64 {
        self.workers().fold(0u64, |sum, report| sum.wrapping_add(report.digest))
    }

    pub fn workers(&self) -> impl Iterator<Item = &WorkerReport> {
        self.epochs.iter().flat_map(|epoch| &epoch.workers)
    }
}

/// Starts clusters.
pub trait Engine: Send + Sync {
    /// Starts `shape`'s processes with `job`'s input generated and connected, within `deadline`.
    fn start(&self, job: &Job, shape: Shape, deadline: Duration) -> Result<Box<dyn Cluster>, RunError>;
}

/// A started cluster; dropping it stops every process it started.
pub trait Cluster {
    /// One run of the job; fails naming the process when one dies or the deadline passes, and
    /// stops at the context's cancel.
    fn run(&mut self, context: &RunContext) -> Result<Round, RunError>;
}

static ENGINE: std::sync::OnceLock<&'static dyn Engine> = std::sync::OnceLock::new();

/// Installs the engine cluster cells run on (once; later calls are ignored).
pub fn install(engine: &'static dyn Engine) {
    let _ = ENGINE.set(engine);
}

/// The installed engine, or why there is none (which skips the cell).
pub(crate) fn engine() -> Result<&'static dyn Engine, RunError> {
    ENGINE.get().copied().ok_or_else(|| PlatformError::Unavailable(NO_ENGINE.into()).into())
}
