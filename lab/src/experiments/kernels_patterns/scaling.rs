//! `scaling`: any kernel of the catalogue × four ways of spreading it × thread counts — the
//! speedup curve, the ideal line, and the serial fraction that Amdahl's law (fixed size) or
//! Gustafson's law (size grown with the threads) fits to it.

use std::collections::BTreeMap;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamError, ParamSpec, Params, RunContext,
    RunError, ScalingLaw, VariantSpec, Workload,
};
use conlab_core::kernels::{catalogue, Kernel, KernelSpec, Par, Strategy};
use conlab_core::platform::RayonPool;
use conlab_core::sched::steal::StealPool;
use conlab_core::sync::{lock, Arc, Mutex};

pub struct Scaling;

impl Experiment for Scaling {
    fn info(&self) -> ExperimentInfo {
        let kernels: Vec<(&'static str, String)> = catalogue()
            .iter()
            .map(|spec| {
                (
                    spec.id,
                    format!(
                        "{}; size = {}, default {}, {} to {}",
                        spec.help, spec.size_means, spec.default_size, spec.sizes.0, spec.sizes.1
                    ),
                )
            })
            .collect();
        ExperimentInfo {
            id: "scaling",
            title: "Scaling: speedup curves and Amdahl's serial fraction, kernel by kernel",
            topic: super::NAME,
            concept:
                "Amdahl's and Gustafson's laws; parallel patterns (map, reduce, stencil, divide and conquer, scan)",
            teaches: "Pick a kernel — matrix multiply naive or blocked, merge sort, quicksort, n-body, a prime sieve, \
                      trial division, Monte Carlo π, a histogram with shared atomics or private counts, a prefix scan, \
                      the Game of Life, a map-reduce word count, a separable blur, Mandelbrot — and watch its speedup \
                      as threads are added, under a static split (team), rayon, and our work-stealing pool. The \
                      dotted curve is Amdahl's law with the serial fraction f fitted to the points by least squares: \
                      f = 5% caps the speedup at 20× however many cores you buy. Sorting's last merge, the scan's \
                      second pass and memory bandwidth all show up as f. Switch growth to with-threads and the \
                      problem grows with the threads (weak scaling): Gustafson's view, where the same f costs far \
                      less — if the serial part stays put while the parallel part grows, as Monte Carlo's final sum \
                      or the histogram's merge of fixed counts do. Merge sort's last merge and the scan's second pass \
                      grow with the data, so for them weak scaling gains nothing (merge sort at 2 threads: 1.6× \
                      either way): compare the two fits.",
            params: vec![
                ParamSpec::described_choice("kernel", "mandelbrot", &kernels, "the kernel to scale"),
                ParamSpec::int("size", 0, 0, 1 << 31, "", "problem size in the kernel's own terms; 0 = its default"),
                ParamSpec::choice(
                    "growth",
                    "fixed",
                    &["fixed", "with-threads"],
                    "fixed size (Amdahl) or work × threads (Gustafson)",
                ),
                ParamSpec::int("seed", 1, 0, u32::MAX.into(), "", "seed of the generated input"),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "one thread, no parallel machinery"),
                VariantSpec::sweep("team", "a static split: one contiguous block of parts per thread"),
                VariantSpec::sweep("rayon", "rayon: parts halved recursively, stolen by idle workers"),
                VariantSpec::sweep("steal", "our work-stealing pool (Chase–Lev deques), same splitting"),
            ],
            baseline: "seq",
            work_unit: Some("units"),
            shows_timeline: true,
            quick: &["kernel=mergesort", "size=524288"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let id = params.text("kernel");
        let spec = catalogue().iter().find(|spec| spec.id == id).expect("validated choice");
        let size = match params.count("size") {
            0 => spec.default_size,
            size if (spec.sizes.0..=spec.sizes.1).contains(&size) => size,
            size => {
                return Err(RunError::Param(ParamError {
                    param: "size".into(),
                    message: format!(
                        "{id} takes a size ({}) from {} to {}, or 0 for its default {}; got `{size}`",
                        spec.size_means, spec.sizes.0, spec.sizes.1, spec.default_size
                    ),
                }))
            }
        };
        let law = if params.text("growth") == "with-threads" { ScalingLaw::Gustafson } else { ScalingLaw::Amdahl };
        let workload =
            Problems { spec, size, law, seed: params.int("seed") as u64, built: Mutex::new(BTreeMap::new()) };
        workload.built(size);
        Ok(Box::new(workload))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![Claim::new(
            "with the best of the three schedulers the kernel runs ≥ 1.3× faster on 2 threads than alone (fastest \
             runs; grown with the threads, in keys, pixels… per second)",
            |facts| {
                facts.cores(2)?;
                let mut best = (String::new(), 0.0);
                for variant in ["team", "rayon", "steal"] {
                    let Ok(speedup) = facts.speedup(variant, 2) else { continue };
                    if speedup > best.1 {
                        best = (variant.to_string(), speedup);
                    }
                }
                if best.0.is_empty() {
                    return Err(not_testable("no scheduler ran at 2 threads"));
                }
                verdict(
                    best.1 >= 1.3,
                    format!("best at 2 threads: {} {:.2}× ({})", best.0, best.1, facts.text("kernel")?),
                    "this kernel's serial part or its memory traffic dominates (see the fitted f), or another program \
                     held a core",
                )
            },
        )]
    }
}

/// A kernel built at one size, with the digest its sequential run gives.
struct Built {
    kernel: Mutex<Box<dyn Kernel>>,
    expected: Digest,
    work: f64,
}

/// The kernel at the requested size, and at the grown sizes of a weak-scaling run, each built
/// once and shared by the cells that run it (cells run one at a time).
struct Problems {
    spec: &'static KernelSpec,
    size: usize,
    law: ScalingLaw,
    seed: u64,
    built: Mutex<BTreeMap<usize, Arc<Built>>>,
}

impl Problems {
    fn built(&self, size: usize) -> Arc<Built> {
        let mut built = lock(&self.built);
        Arc::clone(built.entry(size).or_insert_with(|| {
            let mut kernel = (self.spec.build)(size, self.seed);
            let expected = Par::reference(|par| kernel.run(par)).expect("a sequential run needs no threads");
            Arc::new(Built { work: kernel.work(), kernel: Mutex::new(kernel), expected })
        }))
    }
}

impl Workload for Problems {
    fn work_units(&self) -> Option<f64> {
        Some(self.built(self.size).work)
    }

    fn expected(&self) -> Digest {
        self.built(self.size).expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let size = match (self.law, variant) {
            (ScalingLaw::Gustafson, "team" | "rayon" | "steal") => self.spec.grown(self.size, threads),
            _ => self.size,
        };
        let pool = if variant == "rayon" { Some(RayonPool::new(threads)?) } else { None };
        let grown = (self.law == ScalingLaw::Gustafson).then_some(size);
        Ok(Box::new(KernelCell { built: self.built(size), variant: variant.to_string(), threads, pool, grown }))
    }

    fn work_unit(&self) -> Option<&'static str> {
        Some(self.spec.unit)
    }

    fn scaling_law(&self) -> ScalingLaw {
        self.law
    }
}

struct KernelCell {
    built: Arc<Built>,
    variant: String,
    threads: usize,
    pool: Option<RayonPool>,
    /// The size run, when it grows with the threads (recorded so the table shows it).
    grown: Option<usize>,
}

impl Cell for KernelCell {
    fn threads(&self) -> usize {
        if self.variant == "seq" {
            1
        } else {
            self.threads
        }
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let keep_going = || context.check_cancel().is_ok();
        let trace = context.trace();
        let mut kernel = lock(&self.built.kernel);
        let kernel = &mut **kernel;
        let digest = match (&self.pool, self.variant.as_str()) {
            (Some(pool), _) => pool.install(|| kernel.run(&Par::new(Strategy::Rayon, &keep_going, trace)))?,
            (None, "team") => kernel.run(&Par::new(Strategy::Team(self.threads), &keep_going, trace))?,
            (None, "steal") => {
                let (digest, stats) = StealPool::run(self.threads, trace, |pool| {
                    kernel.run(&Par::new(Strategy::Steal(pool), &keep_going, trace))
                })?;
                crate::experiments::schedulers::policies::record_steals(context, &stats);
                digest?
            }
            _ => kernel.run(&Par::new(Strategy::Seq, &keep_going, trace))?,
        };
        // A cancelled kernel skipped parts; its output is incomplete and must not be reported.
        context.check_cancel()?;
        if let Some(size) = self.grown {
            context.record("size", "", size as f64);
        }
        Ok(digest)
    }

    fn expected(&self) -> Option<Digest> {
        Some(self.built.expected)
    }

    fn work_units(&self) -> Option<f64> {
        Some(self.built.work)
    }
}
