//! data structures: Concurrent queues and stacks side by side, and the ABA problem.

use crate::experiment::Experiment;

mod aba;
mod lock_striping;
mod producer_consumer;
mod queue_shootout;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "data structures";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] =
    &[&queue_shootout::QueueShootout, &aba::Aba, &producer_consumer::ProducerConsumer, &lock_striping::LockStriping];
