//! asyncio: The asyncio-style event loop: gather, semaphores, queues, starvation, cancellation.

use crate::experiment::Experiment;

pub(crate) mod event_loop;
mod gather_timeline;
mod semaphore_waves;
mod queue_backpressure;
mod loop_starvation;
mod cancellation;
mod async_pipeline;
mod event_loop_throughput;

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
];
