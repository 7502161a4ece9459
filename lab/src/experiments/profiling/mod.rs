//! profiling: profilers of the Python model's own call frames — a sampler finding a planted
//! hot function, and what instrumenting every call costs.

use crate::experiment::Experiment;

mod hot_path;
mod main_thread_only;
mod profiler_overhead;
mod program;
mod wall_vs_cpu;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "profiling";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &hot_path::HotPath,
    &profiler_overhead::ProfilerOverhead,
    &main_thread_only::MainThreadOnly,
    &wall_vs_cpu::WallVsCpu,
];
