//! processes & IPC: Worker processes: what starting them and talking to them costs.

use crate::experiment::Experiment;

mod broken_pool;
mod ipc_cost;
mod manager_vs_shared;
mod process_overhead;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "processes & IPC";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &ipc_cost::IpcCost,
    &process_overhead::ProcessOverhead,
    &manager_vs_shared::ManagerVsShared,
    &broken_pool::BrokenPool,
];
