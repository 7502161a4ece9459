//! schedulers: Who runs the work: static splits, queues, work stealing, fork-join, executors.

use crate::experiment::Experiment;

mod executor_patterns;
mod fork_join;
mod granularity;
mod imbalance;
pub(crate) mod policies;
mod spawn_overhead;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "schedulers";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &granularity::Granularity,
    &imbalance::Imbalance,
    &fork_join::ForkJoin,
    &executor_patterns::ExecutorPatterns,
    &spawn_overhead::SpawnOverhead,
];
