//! threading primitives: Python's `threading` primitives, one gallery experiment each.

use crate::experiment::Experiment;

mod prim_barrier;
mod prim_condition;
mod prim_event;
pub(crate) mod prim_gallery;
mod prim_queue;
mod prim_rlock;
mod prim_semaphore;
mod prim_thread_local;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "threading primitives";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &prim_rlock::PrimRlock,
    &prim_semaphore::PrimSemaphore,
    &prim_event::PrimEvent,
    &prim_condition::PrimCondition,
    &prim_barrier::PrimBarrier,
    &prim_queue::PrimQueue,
    &prim_thread_local::PrimThreadLocal,
];
