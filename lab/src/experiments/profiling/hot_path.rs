//! `hot-path`: find the bottleneck — a program with a planted hot function, profiled by a
//! sampler and by an instrumenting profiler, against the exact shares its instructions give.

use super::program::{self, across_threads, binomial_sigma, sampled_share, Function, Profiled, Profiler, Program};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    ScalingLaw, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::profile::View;
use conlab_core::pymodel::DEFAULT_OP_NS;

pub struct HotPath;

/// The planted hot function.
const HOT: &str = "transform";

const SAMPLED: &str = "transform, sampled";
const EXACT: &str = "transform, exact";
const TIMED: &str = "transform, timed";
const ERROR_SIGMAS: &str = "error";
const SAMPLES: &str = "samples";
const HOTTEST: &str = "hottest is transform";
const CALLS: &str = "calls";

impl Experiment for HotPath {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "hot-path",
            title: "Find the hot path: a sampler against the exact shares",
            topic: super::NAME,
            concept: "sampling profilers; statistical error; the hot spot",
            teaches: "Python threads (the lab's model of CPython 3.11, under the GIL) run a loop calling three \
                      functions, `parse`, `transform` and `save`, each doing a set number of loop iterations per \
                      call — `transform` the most: the planted hot path. Its exact share of the run is known from \
                      the instructions each function executes. A sampling profiler (py-spy's model: a thread that \
                      reads each worker's published stack `rate_hz` times a second without stopping it) names \
                      the hottest function and estimates its share; each estimate is a proportion of n samples, \
                      so its error is binomial — about √(p(1−p)/n) — and shrinks only with more samples (a higher \
                      rate or a longer run), never to zero. The instrumenting profiler (cProfile's model) times \
                      every call instead: exact counts, and shares read off clocks. Only on-CPU samples count \
                      toward the shares; a thread waiting for the GIL is not running its function. (The exact share \
                      counts instructions; a call's own mechanics, ~20–40 ns here, are not in it, which thousands of \
                      samples resolve as a point or two.)",
            params: vec![
                ParamSpec::int("iterations", 12_000, 1, 100_000_000, "per thread", "iterations of the main loop"),
                ParamSpec::int("parse", 20, 0, 1_000_000, "per call", "parse's loop iterations"),
                ParamSpec::int(
                    "transform",
                    120,
                    0,
                    1_000_000,
                    "per call",
                    "transform's loop iterations (the hot path)",
                ),
                ParamSpec::int("save", 40, 0, 1_000_000, "per call", "save's loop iterations"),
                ParamSpec::float("rate_hz", 1000.0, 10.0, 10_000.0, "Hz", "the sampler's rate"),
                ParamSpec::float("op_ns", DEFAULT_OP_NS, 0.0, 10_000.0, "ns", "time per bytecode instruction"),
                program::hook_param(),
            ],
            variants: vec![
                VariantSpec::sweep("none", "no profiler"),
                VariantSpec::sweep("sampling", "a sampler thread reads the threads' stacks at rate_hz (py-spy)"),
                VariantSpec::sweep("instrumenting", "every call and return timed (cProfile)"),
            ],
            baseline: "none",
            work_unit: Some("calls"),
            chart_metric: Some(SAMPLED),
            quick: &["iterations=2000", "rate_hz=5000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let program = Program {
            root: "<module>",
            functions: ["parse", HOT, "save"].map(|name| Function::once(name, params.int(name))).to_vec(),
            iterations: params.int("iterations"),
        };
        Ok(Box::new(Hot {
            program,
            rate_hz: params.float("rate_hz"),
            op_ns: params.float("op_ns"),
            hook_ns: params.float("hook_ns"),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the sampler names the planted hot function: `transform` has the most on-CPU self samples in \
                 every sampled run",
                |facts| {
                    let (threads, worst) = across_threads(
                        facts,
                        "sampling",
                        |threads| facts.metric_min("sampling", threads, HOTTEST),
                        f64::min,
                    )?;
                    verdict(
                        worst >= 1.0,
                        format!("transform the hottest in every run at {threads:?} thread(s): {}", worst >= 1.0),
                        "another function is as hot (raise `transform`), or too few samples (raise the rate)",
                    )
                },
            ),
            Claim::new(
                "the sampled share is an estimate with a binomial error: `transform`'s sampled share lies within \
                 3 standard errors √(p(1−p)/n) of its exact share (median run)",
                |facts| {
                    let (threads, worst) = across_threads(
                        facts,
                        "sampling",
                        |threads| facts.metric("sampling", threads, ERROR_SIGMAS),
                        f64::max,
                    )?;
                    let at = threads[0];
                    let (sampled, exact, samples) = (
                        facts.metric("sampling", at, SAMPLED)?,
                        facts.metric("sampling", at, EXACT)?,
                        facts.metric("sampling", at, SAMPLES)?,
                    );
                    verdict(
                        worst <= 3.0,
                        format!(
                            "worst median error {worst:.2} σ; at {at} thread(s): sampled {sampled:.1}% vs exact \
                             {exact:.1}% over {samples:.0} samples (σ = {:.1} points)",
                            binomial_sigma(exact / 100.0, samples as u64)
                        ),
                        "the sampler fell into step with the program (a period that divides the loop's), or the \
                         machine starved a thread",
                    )
                },
            ),
            Claim::new(
                "the instrumenting profiler counts every call exactly: 3 calls per iteration plus each thread's \
                 module, in every run",
                |facts| {
                    let iterations = facts.param("iterations")?;
                    let mut seen = Vec::new();
                    for threads in facts.threads_of("instrumenting") {
                        let (low, high) = (
                            facts.metric_min("instrumenting", threads, CALLS)?,
                            facts.metric_max("instrumenting", threads, CALLS)?,
                        );
                        let exact = threads as f64 * (3.0 * iterations + 1.0);
                        seen.push((threads, low, high, exact));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("instrumenting did not run"));
                    }
                    verdict(
                        seen.iter().all(|&(_, low, high, exact)| low == exact && high == exact),
                        seen.iter()
                            .map(|(t, low, _, exact)| format!("{t} thread(s): {low:.0} calls, expected {exact:.0}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                        "a call was lost or counted twice",
                    )
                },
            ),
        ]
    }
}

struct Hot {
    program: Program,
    rate_hz: f64,
    op_ns: f64,
    hook_ns: f64,
    spinner: Spinner,
}

impl Workload for Hot {
    /// Each cell's own: every thread runs the whole loop.
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn scaling_law(&self) -> ScalingLaw {
        ScalingLaw::Gustafson
    }

    /// Every cell's digest is how far its result is from the right one (0 when right).
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let profiler = match variant {
            "sampling" => Profiler::Sampling(self.rate_hz),
            "instrumenting" => Profiler::Instrumenting,
            _ => Profiler::None,
        };
        Ok(Box::new(HotCell { work: self, profiler, threads }))
    }
}

struct HotCell<'a> {
    work: &'a Hot,
    profiler: Profiler,
    threads: usize,
}

impl Cell for HotCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn work_units(&self) -> Option<f64> {
        Some((self.threads as i64 * self.work.program.iterations * 3) as f64)
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Hot { program, op_ns, hook_ns, spinner, .. } = self.work;
        let interpreter = program::under_the_gil(*op_ns, *spinner);
        let Profiled { result, sampled, traced } =
            program::run(program, &interpreter, self.threads, self.profiler, *hook_ns, context)?;
        let exact = program.exact_share(HOT);
        if let Some(sampled) = sampled {
            let (share, samples) = sampled_share(&sampled.profile, HOT);
            context.record(SAMPLED, "%", share);
            context.record(EXACT, "%", exact * 100.0);
            context.record(SAMPLES, "samples", samples as f64);
            context.record(ERROR_SIGMAS, "σ", (share - exact * 100.0).abs() / binomial_sigma(exact, samples).max(1e-9));
            let hottest = sampled.profile.hottest(View::OnCpu).is_some_and(|(name, _)| name == HOT);
            context.record(HOTTEST, "", f64::from(u8::from(hottest)));
            context.record("rate reached", "Hz", sampled.rate_hz);
            context.record("per stack read", "ns", sampled.read_ns);
            context.record_profile(sampled.profile);
        }
        if let Some(traced) = traced {
            let stats = traced.stats();
            let own: u64 = stats.iter().map(|s| s.exclusive_ns).sum();
            let hot = stats.get(2).map_or(0, |s| s.exclusive_ns);
            context.record(CALLS, "calls", traced.calls() as f64);
            context.record(TIMED, "%", hot as f64 * 100.0 / own.max(1) as f64);
            context.record(EXACT, "%", exact * 100.0);
        }
        Ok((result - self.threads as i64 * program.per_thread()).unsigned_abs())
    }
}
