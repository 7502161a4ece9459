//! `main-thread-only`: cProfile's trap — enabled in the main thread, it profiles the main
//! thread, which starts the workers and waits in `join()`; the workers' time is invisible to it.
//! A sampler reads every thread, and `threading.setprofile` (a tracer in each thread) counts all.

use std::time::Duration;

use super::program::{self, binomial_sigma, Function, Program};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    ScalingLaw, VariantSpec, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{self, run_team};
use conlab_core::profile::board::StackBoard;
use conlab_core::profile::tracer::CallTracer;
use conlab_core::profile::{sampler, NoProbe, Probe, Profile, ThreadState, View};
use conlab_core::pymodel::{Interpreter, DEFAULT_OP_NS};
use conlab_core::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Mutex};

pub struct MainThreadOnly;

/// What the workers' function is called, and the main thread's frames (after the workers').
const WORK: &str = "work";
const MAIN_FRAMES: [&str; 2] = ["<module>", "Thread.join"];

const WORK_CALLS: &str = "work calls seen";
const JOIN_SHARE: &str = "main in join";
const WORK_SHARE: &str = "work, on-CPU";
const THREADS_SEEN: &str = "threads seen";

/// How the run is profiled.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Profiling {
    /// `cProfile.run(main)`: a tracer in the main thread only.
    MainOnly,
    /// `threading.setprofile` as well: a tracer in every thread.
    EveryThread,
    /// A sampler reading every thread's stack.
    Sampler,
}

const VARIANTS: [(&str, Profiling); 3] = [
    ("cprofile-main", Profiling::MainOnly),
    ("cprofile-threads", Profiling::EveryThread),
    ("sampling", Profiling::Sampler),
];

impl Experiment for MainThreadOnly {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "main-thread-only",
            title: "cProfile's trap: the main thread only",
            topic: super::NAME,
            concept: "which threads a profiler sees",
            teaches: "A Python program's main thread starts N worker threads that do the work (a loop calling \
                      `work()`, in the model, under the GIL) and waits for them in `join()`. `cProfile.run(main)` \
                      hooks only the thread it is enabled in: its report shows `<module>` and `Thread.join` \
                      holding all the time, and not one call of `work` — the workers ran outside it. \
                      `threading.setprofile(…)` (or yappi) puts the hook in every thread started afterwards, and \
                      the work appears; a sampler (py-spy) reads every thread's stack from outside and sees it \
                      without any change to the program, the main thread waiting in `join`.",
            params: vec![
                ParamSpec::int("iterations", 20_000, 1, 100_000_000, "per worker", "calls of work per worker"),
                ParamSpec::int("work", 60, 0, 1_000_000, "per call", "work's loop iterations"),
                ParamSpec::float("rate_hz", 2000.0, 10.0, 10_000.0, "Hz", "the sampler's rate"),
                ParamSpec::float("op_ns", DEFAULT_OP_NS, 0.0, 10_000.0, "ns", "time per bytecode instruction"),
                program::hook_param(),
            ],
            variants: VARIANTS
                .iter()
                .map(|&(name, profiling)| match profiling {
                    Profiling::MainOnly => VariantSpec::sweep(name, "cProfile enabled in the main thread"),
                    Profiling::EveryThread => VariantSpec::sweep(name, "cProfile hooked into every thread too"),
                    Profiling::Sampler => VariantSpec::sweep(name, "a sampler reading every thread (py-spy)"),
                })
                .collect(),
            baseline: "cprofile-main",
            work_unit: Some("calls"),
            chart_metric: Some(WORK_CALLS),
            quick: &["iterations=2000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let program = Program {
            root: "worker",
            functions: vec![Function::once(WORK, params.int("work"))],
            iterations: params.int("iterations"),
        };
        Ok(Box::new(Workers {
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
                "cProfile in the main thread sees none of the workers: 0 calls of `work` in every run, and the main \
                 thread's time ≥ 90% in `Thread.join`",
                |facts| {
                    let threads = facts.threads_of("cprofile-main");
                    let Some(&at) = threads.last() else { return Err(not_testable("cprofile-main did not run")) };
                    let (calls, join) = (
                        facts.metric_max("cprofile-main", at, WORK_CALLS)?,
                        facts.metric_min("cprofile-main", at, JOIN_SHARE)?,
                    );
                    verdict(
                        calls == 0.0 && join >= 90.0,
                        format!("{at} worker(s): {calls:.0} work calls seen, {join:.1}% of the main thread in join"),
                        "the main thread did work of its own",
                    )
                },
            ),
            Claim::new("a tracer in every thread counts every call of `work`: workers × iterations", |facts| {
                let iterations = facts.param("iterations")?;
                let threads = facts.threads_of("cprofile-threads");
                let Some(&at) = threads.last() else { return Err(not_testable("cprofile-threads did not run")) };
                let calls = facts.metric_min("cprofile-threads", at, WORK_CALLS)?;
                let expected = at as f64 * iterations;
                verdict(
                    calls == expected,
                    format!("{at} worker(s): {calls:.0} work calls seen, {expected:.0} made"),
                    "a worker's calls were lost",
                )
            }),
            Claim::new(
                "a sampler sees every thread without touching the program: the workers and the main thread all \
                 appear, and `work` holds ≥ 80% of the on-CPU samples (median run)",
                |facts| {
                    let threads = facts.threads_of("sampling");
                    let Some(&at) = threads.last() else { return Err(not_testable("sampling did not run")) };
                    let (seen, share) =
                        (facts.metric("sampling", at, THREADS_SEEN)?, facts.metric("sampling", at, WORK_SHARE)?);
                    verdict(
                        seen >= at as f64 + 1.0 && share >= 80.0,
                        format!(
                            "{at} worker(s): {seen:.0} threads in the samples, work {share:.1}% of the on-CPU ones"
                        ),
                        "the run was too short for the sampler to catch every thread (raise iterations)",
                    )
                },
            ),
        ]
    }
}

struct Workers {
    program: Program,
    rate_hz: f64,
    op_ns: f64,
    hook_ns: f64,
    spinner: Spinner,
}

impl Workload for Workers {
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
        let profiling = VARIANTS.iter().find(|(name, _)| *name == variant).map_or(Profiling::MainOnly, |(_, p)| *p);
        Ok(Box::new(WorkersCell { work: self, profiling, workers: threads }))
    }
}

struct WorkersCell<'a> {
    work: &'a Workers,
    profiling: Profiling,
    workers: usize,
}

/// What the main thread's tracer and the workers' saw.
struct Seen {
    main: CallTracer,
    workers: CallTracer,
    sampled: Option<Profile>,
    result: i64,
}

impl WorkersCell<'_> {
    /// Team members: 0 the main thread, 1… the workers, then the sampler if there is one.
    fn run_team(&self, interpreter: &Interpreter, context: &RunContext) -> Result<Seen, RunError> {
        let Workers { program, rate_hz, hook_ns, .. } = self.work;
        let bytecode = program.bytecode();
        let shared = [AtomicI64::new(0)];
        let workers = self.workers;
        let boards: Vec<StackBoard> = (0..=workers).map(|_| StackBoard::default()).collect();
        let names: Vec<String> =
            std::iter::once("main thread".to_string()).chain((1..=workers).map(|i| format!("worker {i}"))).collect();
        let mut frames = program.frame_names();
        let main_frame = frames.len() as u32;
        frames.extend(MAIN_FRAMES.map(str::to_string));
        let working = AtomicUsize::new(workers);
        let (main, every) = (Mutex::new(CallTracer::default()), Mutex::new(CallTracer::default()));
        let sampled = Mutex::new(None);
        let sampling = self.profiling == Profiling::Sampler;
        let keep_going = || context.check_cancel().is_ok();
        run_team(workers + 1 + usize::from(sampling), |member| match member.index {
            0 => {
                let mut tracer = program::cprofile(interpreter, *hook_ns);
                let mut board = &boards[0];
                let waiting = || working.load(Ordering::Acquire) > 0 && keep_going();
                join_workers(&mut [&mut tracer, &mut board], main_frame, &waiting);
                *lock(&main) = tracer;
            }
            index if index <= workers => {
                let recorder = context.trace();
                match self.profiling {
                    Profiling::MainOnly => {
                        interpreter.run_probed(&bytecode, &shared, index, recorder, &keep_going, &mut NoProbe);
                    }
                    Profiling::EveryThread => {
                        let mut tracer = program::cprofile(interpreter, *hook_ns);
                        interpreter.run_probed(&bytecode, &shared, index, recorder, &keep_going, &mut tracer);
                        lock(&every).merge(&tracer);
                    }
                    Profiling::Sampler => {
                        interpreter.run_probed(&bytecode, &shared, index, recorder, &keep_going, &mut &boards[index]);
                    }
                }
                working.fetch_sub(1, Ordering::Release);
            }
            _ => {
                let still = || working.load(Ordering::Acquire) > 0;
                *lock(&sampled) = Some(sampler::sample(&boards, &names, frames.clone(), *rate_hz, &still).profile);
            }
        })?;
        context.check_cancel()?;
        let take = |tracer: Mutex<CallTracer>| tracer.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(Seen {
            main: take(main),
            workers: take(every),
            sampled: sampled.into_inner().unwrap_or_else(|p| p.into_inner()),
            result: shared[0].load(Ordering::Relaxed),
        })
    }
}

/// The main thread: `<module>` calls `Thread.join`, which waits (the GIL released) while
/// `waiting` holds; every probe is told.
fn join_workers(probes: &mut [&mut dyn Probe], module_frame: u32, waiting: &dyn Fn() -> bool) {
    for probe in probes.iter_mut() {
        probe.enter(module_frame, 0);
        probe.enter(module_frame + 1, 0);
        probe.state(ThreadState::Waiting);
    }
    while waiting() {
        platform::sleep(Duration::from_micros(200));
    }
    for probe in probes.iter_mut() {
        probe.state(ThreadState::Running);
        probe.exit(0);
        probe.exit(0);
    }
}

impl Cell for WorkersCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    fn work_units(&self) -> Option<f64> {
        Some((self.workers as i64 * self.work.program.iterations) as f64)
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Workers { program, op_ns, spinner, .. } = self.work;
        let interpreter = program::under_the_gil(*op_ns, *spinner);
        let seen = self.run_team(&interpreter, context)?;
        // Frame ids: 0 the workers' `worker`, 1 `work`, then `<module>` and `Thread.join`.
        let calls_of = |tracer: &CallTracer, frame: usize| tracer.stats().get(frame).map_or(0, |s| s.calls);
        match self.profiling {
            Profiling::MainOnly => {
                let stats = seen.main.stats();
                let module = stats.get(2).map_or(0, |s| s.inclusive_ns);
                let join = stats.get(3).map_or(0, |s| s.inclusive_ns);
                context.record(WORK_CALLS, "calls", calls_of(&seen.main, 1) as f64);
                context.record(JOIN_SHARE, "%", join as f64 * 100.0 / module.max(1) as f64);
            }
            Profiling::EveryThread => {
                context.record(WORK_CALLS, "calls", (calls_of(&seen.main, 1) + calls_of(&seen.workers, 1)) as f64);
            }
            Profiling::Sampler => {
                let profile = seen.sampled.unwrap_or_default();
                let threads: std::collections::BTreeSet<&str> =
                    profile.stacks.iter().map(|stack| stack.thread.as_str()).collect();
                let share = profile.self_share(WORK, View::OnCpu);
                context.record(THREADS_SEEN, "threads", threads.len() as f64);
                context.record(WORK_SHARE, "%", share * 100.0);
                context.record("± σ", "points", binomial_sigma(share, profile.samples(View::OnCpu)));
                context.record_profile(profile);
            }
        }
        Ok((seen.result - self.workers as i64 * program.per_thread()).unsigned_abs())
    }
}
