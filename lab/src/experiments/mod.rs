//! The experiments, one folder per topic. A topic's `mod.rs` names the topic once, lists its
//! experiments and holds its family helper (`schedulers::policies`, `asyncio::event_loop`,
//! `threading_prims::prim_gallery`); the registry is the topics, in catalogue order.

use crate::experiment::Experiment;

pub(crate) mod asyncio;
pub mod cluster;
pub(crate) mod data_structures;
pub(crate) mod debugging;
pub(crate) mod kernels_patterns;
pub(crate) mod locks_atomics;
pub(crate) mod processes_ipc;
pub(crate) mod profiling;
pub(crate) mod resilience;
pub(crate) mod schedulers;
pub(crate) mod servers;
pub(crate) mod threading_prims;
pub(crate) mod threads_gil;
pub(crate) mod threads_io;

/// Every topic's experiments, in catalogue order.
pub(crate) const TOPICS: &[&[&dyn Experiment]] = &[
    kernels_patterns::EXPERIMENTS,
    threads_io::EXPERIMENTS,
    locks_atomics::EXPERIMENTS,
    schedulers::EXPERIMENTS,
    threads_gil::EXPERIMENTS,
    processes_ipc::EXPERIMENTS,
    asyncio::EXPERIMENTS,
    servers::EXPERIMENTS,
    resilience::EXPERIMENTS,
    data_structures::EXPERIMENTS,
    debugging::EXPERIMENTS,
    profiling::EXPERIMENTS,
    threading_prims::EXPERIMENTS,
    cluster::EXPERIMENTS,
];

/// Every experiment, topic by topic.
pub fn all() -> impl Iterator<Item = &'static dyn Experiment> {
    TOPICS.iter().flat_map(|topic| topic.iter().copied())
}
