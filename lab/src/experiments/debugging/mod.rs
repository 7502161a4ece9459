//! debugging: Deadlocks found and broken by a watchdog; priority inversion on real threads.

use crate::experiment::Experiment;

mod deadlock_watchdog;
mod priority_inversion;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "debugging";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] =
    &[&deadlock_watchdog::DeadlockWatchdog, &priority_inversion::PriorityInversion];
