//! `wall-vs-cpu`: the same samples read two ways — on-CPU (what was running) and wall-clock
//! (where the time went, waits included) — over request handlers that compute a little and wait
//! on a database a lot.

use super::program::{self, Function, Profiled, Profiler, Program};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    ScalingLaw, VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::profile::{Profile, ThreadState, View};
use conlab_core::pymodel::DEFAULT_OP_NS;

pub struct WallVsCpu;

const QUERY: &str = "query_db";
const RENDER: &str = "render";
const CRUNCH: &str = "crunch";

const QUERY_CPU: &str = "query_db, on-CPU";
const QUERY_WALL: &str = "query_db, wall";
const RENDER_CPU: &str = "render, on-CPU";
const RENDER_WALL: &str = "render, wall";
const GIL_WAITS: &str = "waiting for the GIL, wall";
const LOCK_WAITS: &str = "waiting for the lock, wall";
const IO_WAITS: &str = "waiting for I/O, wall";
const CRUNCH_CPU: &str = "crunch, on-CPU";
const HOTTEST_CPU: &str = "render hottest on-CPU";

impl Experiment for WallVsCpu {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "wall-vs-cpu",
            title: "On-CPU vs wall-clock profiles: why is it slow?",
            topic: super::NAME,
            concept: "on-CPU vs off-CPU time; choosing the profile that answers the question",
            teaches: "Python threads (the model, under the GIL) each handle requests: `parse()` (a little CPU), \
                      `query_db()` (blocking I/O, the GIL released) and `render()` (more CPU). A sampler tags every \
                      sample with what the thread was doing. Read on-CPU — the view of perf, of cProfile's CPU \
                      clock, of py-spy without `--idle` — the profile is all `render` and `parse`: `query_db` barely \
                      exists, because a thread waiting for I/O runs nothing. Read wall-clock, the same samples say \
                      that most of a request's time is spent in `query_db`, waiting. If the question is \"why does \
                      a request take this long\", the wall-clock profile answers it; if it is \"what burns the \
                      CPU\", the on-CPU one does. `roles` runs four threads that each spend their time one way: \
                      `compute` crunches, `holder` sleeps on I/O holding a `threading.Lock`, `waiter` waits for that \
                      lock (the GIL released), and `fetcher` waits for I/O and then, behind the cruncher, for the \
                      GIL (Beazley's convoy): the wall view tells the three waits apart, the on-CPU view shows only \
                      the cruncher.",
            params: vec![
                ParamSpec::int("requests", 60, 1, 10_000_000, "per thread", "requests each thread handles"),
                ParamSpec::int("parse", 200, 0, 10_000_000, "per request", "parse's loop iterations"),
                ParamSpec::int("query_us", 1000, 1, 1_000_000, "µs", "query_db's blocking I/O"),
                ParamSpec::int("render", 2000, 0, 10_000_000, "per request", "render's loop iterations"),
                ParamSpec::float("rate_hz", 2000.0, 10.0, 10_000.0, "Hz", "the sampler's rate"),
                ParamSpec::float("op_ns", DEFAULT_OP_NS, 0.0, 10_000.0, "ns", "time per bytecode instruction"),
            ],
            variants: vec![
                VariantSpec::sweep("handlers", "N request handlers, sampled"),
                VariantSpec::fixed(
                    "roles",
                    "four threads: one computes, one holds a lock across I/O, one waits for \
                     the lock, one waits for I/O and the GIL; sampled",
                ),
            ],
            baseline: "handlers",
            work_unit: Some("requests"),
            chart_metric: Some(QUERY_WALL),
            quick: &["requests=15"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let query_us = u32::try_from(params.int("query_us")).unwrap_or(u32::MAX);
        let program = Program {
            root: "handle_requests",
            functions: vec![
                Function::once("parse", params.int("parse")),
                Function { io_us: query_us, ..Function::once(QUERY, 0) },
                Function::once(RENDER, params.int("render")),
            ],
            iterations: params.int("requests"),
        };
        let requests = params.int("requests");
        let role = |root: &'static str, functions: Vec<Function>| Program { root, functions, iterations: requests };
        let roles = [
            role("compute", vec![Function::once(CRUNCH, 20 * i64::from(query_us))]),
            role(
                "holder",
                vec![
                    Function { io_us: query_us, locked: true, ..Function::once("write_under_lock", 0) },
                    Function { io_us: query_us, ..Function::once("rest", 0) },
                ],
            ),
            Program {
                iterations: 2 * requests,
                ..role(
                    "waiter",
                    vec![
                        Function { locked: true, ..Function::once("update_under_lock", 50) },
                        Function { io_us: query_us / 2, ..Function::once("think", 0) },
                    ],
                )
            },
            role(
                "fetcher",
                vec![
                    Function { io_us: query_us, ..Function::once("fetch", 0) },
                    Function::once("parse", params.int("parse")),
                ],
            ),
        ];
        Ok(Box::new(Handlers {
            program,
            roles,
            rate_hz: params.float("rate_hz"),
            op_ns: params.float("op_ns"),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the on-CPU profile misses the wait: `query_db` holds ≤ 5% of the handlers' on-CPU samples and \
                 `render` is the hottest there (median run, every thread count)",
                |facts| {
                    let (threads, query) = worst(facts, QUERY_CPU, f64::max)?;
                    let (_, hottest) = worst(facts, HOTTEST_CPU, f64::min)?;
                    verdict(
                        query <= 5.0 && hottest >= 1.0,
                        format!("query_db ≤ {query:.1}% of the on-CPU samples at {threads:?} thread(s)"),
                        "the queries do CPU work of their own here",
                    )
                },
            ),
            Claim::new(
                "the wall-clock profile shows where a request's time goes: `query_db`, waiting for I/O, holds ≥ 60% \
                 of all samples (median run, every thread count)",
                |facts| {
                    let (threads, query) = worst(facts, QUERY_WALL, f64::min)?;
                    let render = facts.metric("handlers", threads[0], RENDER_WALL)?;
                    verdict(
                        query >= 60.0,
                        format!(
                            "query_db ≥ {query:.1}% of all samples at {threads:?} thread(s) (render {render:.1}% at {})",
                            threads[0]
                        ),
                        "the handlers compute more than they wait (raise query_us)",
                    )
                },
            ),
            Claim::new(
                "the wall view tells the waits apart: in `roles` each of a lock, the GIL and I/O holds ≥ 5% of the \
                 samples, while the on-CPU view is ≥ 80% `crunch` (median run)",
                |facts| {
                    let threads = facts.fixed_threads("roles")?;
                    let metric = |name: &str| facts.metric("roles", threads, name);
                    let (lock, gil, io, crunch) =
                        (metric(LOCK_WAITS)?, metric(GIL_WAITS)?, metric(IO_WAITS)?, metric(CRUNCH_CPU)?);
                    verdict(
                        lock >= 5.0 && gil >= 5.0 && io >= 5.0 && crunch >= 80.0,
                        format!(
                            "wall: waiting for a lock {lock:.1}%, for the GIL {gil:.1}%, for I/O {io:.1}%; on-CPU: \
                             crunch {crunch:.1}%"
                        ),
                        "the threads fell out of their roles (a run too short: raise requests)",
                    )
                },
            ),
        ]
    }
}

/// `metric`'s median at every thread count the handlers ran, folded by `fold` (the worst case).
fn worst(facts: &Facts<'_>, metric: &str, fold: fn(f64, f64) -> f64) -> Result<(Vec<usize>, f64), Verdict> {
    program::across_threads(facts, "handlers", |threads| facts.metric("handlers", threads, metric), fold)
}

struct Handlers {
    program: Program,
    /// `roles`' four programs: compute, hold the lock across I/O, wait for the lock, fetch.
    roles: [Program; 4],
    rate_hz: f64,
    op_ns: f64,
    spinner: Spinner,
}

impl Workload for Handlers {
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
        Ok(Box::new(HandlersCell { work: self, threads, roles: variant == "roles" }))
    }
}

struct HandlersCell<'a> {
    work: &'a Handlers,
    threads: usize,
    roles: bool,
}

impl HandlersCell<'_> {
    fn team(&self) -> Vec<&Program> {
        match self.roles {
            true => self.work.roles.iter().collect(),
            false => vec![&self.work.program; self.threads],
        }
    }
}

/// The share of `profile`'s samples in `view` whose state is `state`, in %.
fn state_share(profile: &Profile, state: ThreadState) -> f64 {
    let total = profile.samples(View::Wall).max(1) as f64;
    let matching: u64 = profile.stacks.iter().filter(|s| s.state == state).map(|s| s.count).sum();
    matching as f64 * 100.0 / total
}

impl Cell for HandlersCell<'_> {
    fn threads(&self) -> usize {
        self.team().len()
    }

    fn work_units(&self) -> Option<f64> {
        Some(self.team().iter().map(|program| program.iterations).sum::<i64>() as f64)
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Handlers { rate_hz, op_ns, spinner, .. } = self.work;
        let interpreter = program::under_the_gil(*op_ns, *spinner);
        let profiler = Profiler::Sampling(*rate_hz);
        let team = self.team();
        let Profiled { result, sampled, .. } = program::run_each(&team, &interpreter, profiler, 0.0, context)?;
        if let Some(sampled) = sampled {
            let profile = sampled.profile;
            context.record(QUERY_CPU, "%", profile.total_share(QUERY, View::OnCpu) * 100.0);
            context.record(QUERY_WALL, "%", profile.total_share(QUERY, View::Wall) * 100.0);
            context.record(RENDER_CPU, "%", profile.self_share(RENDER, View::OnCpu) * 100.0);
            context.record(RENDER_WALL, "%", profile.self_share(RENDER, View::Wall) * 100.0);
            context.record(GIL_WAITS, "%", state_share(&profile, ThreadState::Gil));
            context.record(LOCK_WAITS, "%", state_share(&profile, ThreadState::Lock));
            context.record(IO_WAITS, "%", state_share(&profile, ThreadState::Io));
            context.record(CRUNCH_CPU, "%", profile.self_share(CRUNCH, View::OnCpu) * 100.0);
            let hottest = profile.hottest(View::OnCpu).is_some_and(|(name, _)| name == RENDER);
            context.record(HOTTEST_CPU, "", f64::from(u8::from(hottest)));
            context.record("samples", "samples", profile.samples(View::Wall) as f64);
            context.record_profile(profile);
        }
        Ok((result - team.iter().map(|p| p.per_thread()).sum::<i64>()).unsigned_abs())
    }
}
