//! threads & I/O: Threads that wait on I/O: why the GIL does not stop them overlapping.

use crate::experiment::Experiment;

mod io_fanout;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "threads & I/O";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[&io_fanout::IoFanout];
