//! `fork-join`: recursive fib and quicksort with a cutoff, on our steal pool's `join`, rayon's
//! `join`, and a FIFO pool whose tasks block on their children's futures.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::kernels::forkjoin::{self, Rayon};
use conlab_core::kernels::{fnv1a, splitmix64};
use conlab_core::platform::{Instant, RayonPool};
use conlab_core::sched::fifo::{FifoPool, FutureError};
use conlab_core::sched::steal::StealPool;
use conlab_core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use conlab_core::trace::SpanKind;

pub struct ForkJoin;

const FIFO_UNCHECKED: &str =
    "tasks block waiting for their children; once every worker waits, the children sit in the \
                              queue behind them and the pool is exhausted — the run is abandoned after `wait_ms` (see \
                              `timed-out waits`)";

impl Experiment for ForkJoin {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "fork-join",
            title: "Fork-join: join vs blocking on futures",
            topic: super::NAME,
            concept: "divide and conquer; nested pools; work stealing",
            teaches: "Divide and conquer forks two halves and waits for both. With `join` (ours or rayon's) a waiting \
                      worker never blocks: it runs the second half itself unless a thief took it, and then steals \
                      other work until the thief is done — so fib and quicksort scale. Do the same on a \
                      ThreadPoolExecutor by submitting the halves and calling `result()` inside a task, and each \
                      waiting task holds a worker: once all k workers wait for children still in the queue, nothing \
                      can run — the deadlock behind the books' 'nested pools' warnings. Here every wait has a timeout \
                      (`wait_ms`), so the fifo variant reports the exhaustion and gives up instead of hanging.",
            params: vec![
                ParamSpec::choice("problem", "fib", &["fib", "quicksort"], "what to divide and conquer"),
                ParamSpec::int("fib_n", 36, 1, 45, "n", "compute fib(n) the exponential way"),
                ParamSpec::int("fib_cutoff", 20, 1, 45, "n", "below this n, fib runs sequentially"),
                ParamSpec::int("sort_size", 1_000_000, 1, 50_000_000, "elements", "random u32s to sort"),
                ParamSpec::int(
                    "sort_cutoff",
                    10_000,
                    2,
                    50_000_000,
                    "elements",
                    "pieces this small are sorted sequentially",
                ),
                ParamSpec::int(
                    "wait_ms",
                    100,
                    1,
                    1000,
                    "ms",
                    "how long a fifo task waits for a child before the run is abandoned",
                ),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "plain recursion on one thread"),
                VariantSpec::sweep("steal", "StealPool::join (work stealing, the waiter helps)"),
                VariantSpec::sweep("rayon", "rayon::join"),
                VariantSpec::sweep("fifo", "FifoPool: submit both halves, block on their futures")
                    .unchecked(FIFO_UNCHECKED),
            ],
            baseline: "seq",
            shows_timeline: true,
            quick: &["fib_n=20", "fib_cutoff=12", "wait_ms=20"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let problem = match params.text("problem") {
            "fib" => Problem::Fib { n: params.int("fib_n") as u32, cutoff: params.int("fib_cutoff") as u32 },
            _ => {
                let mut state = 42;
                let input: Vec<u32> = (0..params.count("sort_size")).map(|_| splitmix64(&mut state) as u32).collect();
                Problem::Sort { input, cutoff: params.count("sort_cutoff") }
            }
        };
        let expected = match &problem {
            Problem::Fib { n, .. } => forkjoin::fib(*n),
            Problem::Sort { input, .. } => {
                let mut sorted = input.clone();
                sorted.sort_unstable();
                sort_digest(&sorted)
            }
        };
        Ok(Box::new(Work { problem, expected, wait: Duration::from_millis(params.int("wait_ms") as u64) }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "join never blocks a worker, so divide and conquer scales: steal and rayon each run ≥ 1.5× faster on 2 \
                 threads than on 1 (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    facts.lasting("steal", 1, 5.0)?;
                    let (steal, rayon) = (facts.scaling("steal", 2)?, facts.scaling("rayon", 2)?);
                    verdict(
                        steal >= 1.5 && rayon >= 1.5,
                        format!("2 threads over 1: steal {steal:.2}×, rayon {rayon:.2}×"),
                        "another program held a core, or the cut-off leaves too few tasks",
                    )
                },
            ),
            Claim::new(
                "waiting for children inside a thread pool exhausts it: fifo reports the exhaustion in every run, at \
                 every worker count",
                |facts| {
                    let mut seen = Vec::new();
                    for threads in facts.threads_of("fifo") {
                        let fewest = facts.metric_of("fifo", threads, "pool exhausted")?.min;
                        if fewest < 1.0 {
                            return verdict(false, format!("a run with {threads} workers finished"), "the tree is shallower than the pool is wide");
                        }
                        seen.push(threads.to_string());
                    }
                    if seen.is_empty() {
                        return Err(not_testable("fifo did not run"));
                    }
                    verdict(true, format!("exhausted in every run with {} workers", seen.join(", ")), "")
                },
            ),
        ]
    }
}

fn sort_digest(sorted: &[u32]) -> Digest {
    fnv1a(sorted.iter().map(|&x| u64::from(x)))
}

enum Problem {
    Fib { n: u32, cutoff: u32 },
    Sort { input: Vec<u32>, cutoff: usize },
}

struct Work {
    problem: Problem,
    expected: Digest,
    wait: Duration,
}

impl Workload for Work {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let threads = if variant == "seq" { 1 } else { threads };
        let rayon = if variant == "rayon" { Some(RayonPool::new(threads)?) } else { None };
        if variant == "fifo" {
            FifoPool::check(threads)?;
        }
        let buffer = match &self.problem {
            Problem::Sort { input, .. } => input.clone(),
            Problem::Fib { .. } => Vec::new(),
        };
        Ok(Box::new(WorkCell { work: self, variant: variant.to_string(), threads, rayon, buffer }))
    }
}

struct WorkCell<'a> {
    work: &'a Work,
    variant: String,
    threads: usize,
    rayon: Option<RayonPool>,
    buffer: Vec<u32>,
}

impl Cell for WorkCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        if let Problem::Sort { input, .. } = &self.work.problem {
            self.buffer.copy_from_slice(input);
        }
        let (problem, buffer) = (&self.work.problem, &mut self.buffer);
        let digest = match (self.variant.as_str(), &self.rayon) {
            ("seq", _) => {
                context.trace().lane(0).span(SpanKind::Run, || "recursion", || solve(problem, buffer, &Sequential))
            }
            ("steal", _) => {
                let (digest, stats) =
                    StealPool::run(self.threads, context.trace(), |pool| solve(problem, buffer, pool))?;
                super::policies::record_steals(context, &stats);
                digest
            }
            (_, Some(rayon)) => rayon.install(|| solve(problem, buffer, &Rayon)),
            _ => self.solve_on_fifo(context)?,
        };
        context.check_cancel()?;
        Ok(digest)
    }
}

/// `join` that runs `a` then `b` on the calling thread.
struct Sequential;

impl forkjoin::ForkJoin for Sequential {
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        (a(), b())
    }
}

fn solve(problem: &Problem, buffer: &mut [u32], pool: &impl forkjoin::ForkJoin) -> Digest {
    match problem {
        Problem::Fib { n, cutoff } => forkjoin::fib_par(pool, *n, *cutoff),
        Problem::Sort { cutoff, .. } => {
            forkjoin::quicksort_par(pool, buffer, *cutoff);
            sort_digest(buffer)
        }
    }
}

impl WorkCell<'_> {
    fn solve_on_fifo(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let blocking =
            Blocking { wait: self.work.wait, abandoned: AtomicBool::new(false), timeouts: AtomicU64::new(0), context };
        let buffer = &mut self.buffer;
        let solved = FifoPool::run(self.threads, context.trace(), |pool| match &self.work.problem {
            Problem::Fib { n, cutoff } => blocking.fib(pool, *n, *cutoff),
            Problem::Sort { cutoff, .. } => blocking.sort(pool, buffer, *cutoff).then_some(0),
        })?;
        let digest = match self.work.problem {
            Problem::Sort { .. } => solved.map(|_| sort_digest(&self.buffer)),
            Problem::Fib { .. } => solved,
        };
        let timeouts = blocking.timeouts.into_inner();
        context.record("timed-out waits", "waits", timeouts as f64);
        context.record("pool exhausted", "runs", if timeouts > 0 { 1.0 } else { 0.0 });
        Ok(digest.unwrap_or(0))
    }
}

/// Fork-join the ThreadPoolExecutor way: submit both halves, block on their futures. `None`
/// means the run was abandoned (a wait timed out, or the lab cancelled).
struct Blocking<'c> {
    wait: Duration,
    abandoned: AtomicBool,
    timeouts: AtomicU64,
    context: &'c RunContext<'c>,
}

impl Blocking<'_> {
    fn gave_up(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed) || self.context.check_cancel().is_err()
    }

    /// Waits for a child (a wait span on the waiting worker's lane); a timeout abandons the
    /// whole run.
    fn child<T: Clone>(
        &self,
        pool: &FifoPool<'_, '_>,
        future: &conlab_core::sched::fifo::PoolFuture<Option<T>>,
    ) -> Option<T> {
        let start = Instant::now();
        let outcome = future.result(Some(self.wait));
        let lane = pool.current_worker().unwrap_or(0);
        self.context.trace().record_at(
            lane,
            SpanKind::Wait,
            format!("blocked on child task {}", future.id()),
            start,
            Instant::now(),
        );
        match outcome {
            Ok(value) => value,
            Err(FutureError::Timeout) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                self.abandoned.store(true, Ordering::Relaxed);
                None
            }
            Err(_) => None,
        }
    }

    fn fib<'s>(&'s self, pool: &'s FifoPool<'s, '_>, n: u32, cutoff: u32) -> Option<u64> {
        if self.gave_up() {
            return None;
        }
        if n <= cutoff.max(1) {
            return Some(forkjoin::fib(n));
        }
        let left = pool.submit(move || self.fib(pool, n - 1, cutoff)).ok()?;
        let right = pool.submit(move || self.fib(pool, n - 2, cutoff)).ok()?;
        let (a, b) = (self.child(pool, &left), self.child(pool, &right));
        Some(a? + b?)
    }

    fn sort<'s>(&'s self, pool: &'s FifoPool<'s, '_>, v: &'s mut [u32], cutoff: usize) -> bool {
        if self.gave_up() {
            return false;
        }
        if v.len() <= cutoff.max(2) {
            v.sort_unstable();
            return true;
        }
        let p = forkjoin::partition(v);
        let (left, right) = v.split_at_mut(p);
        let right = &mut right[1..];
        let Ok(left) = pool.submit(move || Some(self.sort(pool, left, cutoff))) else { return false };
        let Ok(right) = pool.submit(move || Some(self.sort(pool, right, cutoff))) else { return false };
        let (a, b) = (self.child(pool, &left), self.child(pool, &right));
        a == Some(true) && b == Some(true)
    }
}
