//! asyncio: The asyncio-style event loop: gather, semaphores, queues, starvation, cancellation,
//! races at await points.

use crate::experiment::Experiment;

mod async_pipeline;
mod async_primitives;
mod async_race;
mod cancellation;
pub(crate) mod event_loop;
mod event_loop_throughput;
mod gather_timeline;
mod loop_starvation;
mod queue_backpressure;
mod semaphore_waves;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "asyncio";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &gather_timeline::GatherTimeline,
    &semaphore_waves::SemaphoreWaves,
    &queue_backpressure::QueueBackpressure,
    &loop_starvation::LoopStarvation,
    &cancellation::Cancellation,
    &async_pipeline::AsyncPipeline,
    &event_loop_throughput::EventLoopThroughput,
    &async_race::AsyncRace,
    &async_primitives::AsyncPrimitives,
];
