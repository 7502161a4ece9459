//! `parallel-sum`: a memory-bound reduction, sequential vs team static split vs rayon.

use rayon::prelude::*;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::kernels::sum_squares::{inputs, sum_of_squares, CHUNK};
use conlab_core::platform::{run_team, RayonPool};
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::trace::SpanKind;

pub struct ParallelSum;

impl Experiment for ParallelSum {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "parallel-sum",
            title: "Parallel sum of squares: when memory is the bottleneck",
            topic: super::NAME,
            concept: "map-reduce / parallel reduction",
            teaches: "Summing squares does one multiply and one add per 4 bytes loaded, so it runs at the speed of \
                      memory, not of the cores. Splitting the array over threads helps only until the memory bus is \
                      saturated — often at fewer threads than the machine has — which is why a reduction scales worse \
                      than a compute-bound kernel like mandelbrot. The total is exact in integers, so every split must \
                      equal the sequential sum.",
            params: vec![
                ParamSpec::int("elements", 16 << 20, 1024, 64 << 20, "elements", "array length (4 bytes each)"),
                ParamSpec::int("seed", 42, 0, i64::MAX, "", "seed of the pseudo-random inputs"),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "one loop over the array"),
                VariantSpec::sweep("team", "one contiguous slice per thread, partial sums combined"),
                VariantSpec::sweep("rayon", "rayon par_chunks + sum (work stealing)"),
            ],
            baseline: "seq",
            work_unit: Some("elements"),
            quick: &["elements=300001"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let values = inputs(params.count("elements"), params.int("seed") as u64);
        let expected = sum_of_squares(&values);
        Ok(Box::new(Array { values, expected }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![Claim::new(
            "splitting the array helps until the memory bus saturates: at 2 threads the better split is ≥ 1.2× seq \
             (fastest runs)",
            |facts| {
                facts.cores(2)?;
                facts.lasting("seq", 1, 2.0)?;
                let (team, rayon) = (facts.speedup("team", 2)?, facts.speedup("rayon", 2)?);
                verdict(
                    team.max(rayon) >= 1.2,
                    format!("at 2 threads: team {team:.2}×, rayon {rayon:.2}×"),
                    "the memory bus was already saturated by one thread, or another program held a core",
                )
            },
        )]
    }
}

struct Array {
    values: Vec<u32>,
    expected: u64,
}

impl Workload for Array {
    fn work_units(&self) -> Option<f64> {
        Some(self.values.len() as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let pool = if variant == "rayon" { Some(RayonPool::new(threads)?) } else { None };
        let threads = if variant == "seq" { 1 } else { threads };
        Ok(Box::new(SumCell { values: &self.values, threads, pool }))
    }
}

struct SumCell<'a> {
    values: &'a [u32],
    threads: usize,
    pool: Option<RayonPool>,
}

/// Sums `values` chunk by chunk, looking at the cancel flag between chunks.
fn sum_checked(values: &[u32], context: &RunContext) -> Result<u64, RunError> {
    values.chunks(CHUNK).try_fold(0u64, |total, chunk| {
        context.check_cancel()?;
        Ok(total + sum_of_squares(chunk))
    })
}

impl Cell for SumCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let values = self.values;
        if let Some(pool) = &self.pool {
            return pool.install(|| {
                values
                    .par_chunks(CHUNK)
                    .try_fold(
                        || 0u64,
                        |total, chunk| {
                            context.check_cancel()?;
                            let thread = rayon::current_thread_index().unwrap_or(0);
                            Ok(total
                                + context.trace().lane(thread).span(
                                    SpanKind::Run,
                                    || "chunk",
                                    || sum_of_squares(chunk),
                                ))
                        },
                    )
                    .try_reduce(|| 0, |a, b| Ok(a + b))
            });
        }
        let slice_len = values.len().div_ceil(self.threads);
        let total = AtomicU64::new(0);
        run_team(self.threads, |member| {
            let start = (member.index * slice_len).min(values.len());
            let slice = &values[start..(start + slice_len).min(values.len())];
            let partial = context.trace().lane(member.index).span(
                SpanKind::Run,
                || format!("{} elements", slice.len()),
                || sum_checked(slice, context),
            );
            if let Ok(partial) = partial {
                total.fetch_add(partial, Ordering::Relaxed);
            }
        })?;
        context.check_cancel()?;
        Ok(total.into_inner())
    }
}
