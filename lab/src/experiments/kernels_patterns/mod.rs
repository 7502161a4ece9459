//! kernels & patterns: Parallel kernels and the patterns built from them: scaling, reductions, map-reduce, pipelines.

use crate::experiment::Experiment;

mod mandelbrot;
mod map_reduce;
mod parallel_sum;
mod pipeline;
mod scaling;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "kernels & patterns";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &mandelbrot::Mandelbrot,
    &parallel_sum::ParallelSum,
    &scaling::Scaling,
    &map_reduce::MapReduce,
    &pipeline::Pipeline,
];
