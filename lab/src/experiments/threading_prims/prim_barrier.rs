//! `prim-barrier`: phases separated by a `Barrier` — every worker finishes phase p before any
//! starts p + 1 — versus no barrier (stale reads), and a party that never arrives (a broken
//! barrier, learned by timeout or at once by `abort()`).

use std::time::Duration;

use super::prim_gallery::{blocking, millis, team, timeout, timeout_param};
use crate::experiment::{
    run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::platform::Instant;
use conlab_core::prims::{Barrier, PrimError};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Arc, Mutex};
use conlab_core::trace::{Lane, SpanKind};

pub struct PrimBarrier;

impl Experiment for PrimBarrier {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-barrier",
            title: "Barrier: phases in lockstep — and the barrier broken by a party that never comes",
            topic: super::NAME,
            concept: "threading.Barrier (parties, action, abort, BrokenBarrierError)",
            teaches:
                "`workers` threads compute `phases` phases; in each, a worker reads its neighbour's result of the \
                      previous phase, and a different worker is the slow one (`spread`). `barrier.wait()` between \
                      phases holds everyone until the last arrives — the timeline shows the fast ones waiting for \
                      the straggler, and the last to arrive running the barrier's action. Without the barrier fast \
                      workers run ahead and read results not yet written (`stale reads`). If a worker raises in the \
                      middle phase and never calls `wait()`, the others sit in the barrier until one's timeout \
                      breaks it, and all of them get `BrokenBarrierError`; a worker that calls `barrier.abort()` on \
                      its way out tells them at once (`stuck in the barrier`).",
            params: vec![
                ParamSpec::int("workers", 4, 2, 16, "threads", "the barrier's parties"),
                ParamSpec::int("phases", 4, 1, 1_000, "", "phases each worker computes"),
                ParamSpec::float("work_ms", 4.0, 0.0, 1_000.0, "ms", "a phase's work on the fastest worker"),
                ParamSpec::float(
                    "spread",
                    1.0,
                    0.0,
                    10.0,
                    "×",
                    "the slowest worker of a phase takes (1 + spread) × work_ms",
                ),
                timeout_param(),
            ],
            variants: vec![
                VariantSpec::fixed("barrier", "barrier.wait() after every phase"),
                VariantSpec::fixed("none", "no barrier: each worker runs through its phases")
                    .unchecked("reads stale results on purpose: no worker waits for its neighbour"),
                VariantSpec::fixed(
                    "missing-party",
                    "the last worker raises in the middle phase and never reaches wait()",
                )
                .unchecked("breaks the barrier on purpose: the others' timeout breaks it"),
                VariantSpec::fixed("abort", "the same failure, but the worker calls barrier.abort() as it leaves")
                    .unchecked("breaks the barrier on purpose: abort() tells the others at once"),
            ],
            baseline: "barrier",
            shows_timeline: true,
            quick: &["phases=3", "work_ms=1", "timeout_ms=50"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Phases {
            workers: params.count("workers"),
            phases: params.count("phases"),
            work_ms: params.float("work_ms"),
            spread: params.float("spread"),
            timeout: timeout(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("with the barrier no worker reads a stale result, and its action runs once a phase", |facts| {
                let phases = facts.param("phases")?;
                let stale = facts.fixed_metric("barrier", "stale reads")?.max;
                let actions = facts.fixed_metric("barrier", "barrier actions")?;
                verdict(
                    stale == 0.0 && actions.min == phases && actions.max == phases,
                    format!("{stale:.0} stale reads, {:.0} actions for {phases} phases", actions.max),
                    "a bug in the Barrier model",
                )
            }),
            Claim::new("without it the fast workers run ahead and read results not yet written", |facts| {
                let stale = facts.fixed_metric("none", "stale reads")?.max;
                verdict(
                    stale >= 1.0,
                    format!("up to {stale:.0} stale reads in a run"),
                    "the workers ran in step by chance (raise spread)",
                )
            }),
            Claim::new(
                "a missing party holds the others until a timeout breaks the barrier; abort() tells them at once \
                 (in under a tenth of the timeout)",
                |facts| {
                    let timeout = facts.param("timeout_ms")?;
                    let missing = facts.fixed_metric("missing-party", "stuck in the barrier (max)")?.min;
                    let abort = facts.fixed_metric("abort", "stuck in the barrier (max)")?.max;
                    verdict(
                        missing >= timeout && abort < timeout / 10.0,
                        format!(
                            "stuck in the barrier: {missing:.1} ms with a missing party, {abort:.2} ms after abort()"
                        ),
                        "a bug in the Barrier model",
                    )
                },
            ),
        ]
    }
}

struct Phases {
    workers: usize,
    phases: usize,
    work_ms: f64,
    spread: f64,
    timeout: Duration,
}

impl Phases {
    /// Worker `me`'s share of phase `phase`: a different worker is the slowest each phase.
    fn work(&self, me: usize, phase: usize) -> Duration {
        let rank = (me + phase) % self.workers;
        millis(self.work_ms * (1.0 + self.spread * rank as f64 / (self.workers - 1) as f64))
    }

    /// The phase in which the failing worker raises.
    fn failing_phase(&self) -> usize {
        self.phases / 2
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Meeting {
    Barrier,
    None,
    MissingParty,
    Abort,
}

impl Workload for Phases {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every worker finished every phase.
    fn expected(&self) -> Digest {
        (self.workers * self.phases) as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let sync = match variant {
            "barrier" => Meeting::Barrier,
            "none" => Meeting::None,
            "missing-party" => Meeting::MissingParty,
            _ => Meeting::Abort,
        };
        Ok(Box::new(PhasesCell { phases: self, threads: team(self.workers)?, sync }))
    }
}

struct PhasesCell<'a> {
    phases: &'a Phases,
    threads: usize,
    sync: Meeting,
}

/// What the workers of one run share.
struct Shared {
    barrier: Barrier,
    /// Phases each worker has finished (its "result" of the last one).
    finished: Vec<AtomicU64>,
    done: AtomicUsize,
    stale_reads: AtomicUsize,
    broken: AtomicUsize,
    /// How long each worker that got `BrokenBarrierError` had waited in the barrier.
    stuck_ns: Mutex<LogHistogram>,
}

impl PhasesCell<'_> {
    fn worker(&self, me: usize, shared: &Shared, lane: &mut Lane<'_>, context: &RunContext) -> Result<(), RunError> {
        let work = self.phases;
        let neighbour = (me + 1) % work.workers;
        for phase in 0..work.phases {
            if phase > 0 && shared.finished[neighbour].load(Ordering::SeqCst) < phase as u64 {
                shared.stale_reads.fetch_add(1, Ordering::Relaxed);
            }
            let fails = matches!(self.sync, Meeting::MissingParty | Meeting::Abort)
                && me == work.workers - 1
                && phase == work.failing_phase();
            if fails {
                self.fail(shared, lane);
                return Ok(());
            }
            if let Err(error) =
                super::prim_gallery::work(context, lane, || format!("phase {phase}"), work.work(me, phase))
            {
                shared.barrier.abort(); // cancelled: release everyone
                return Err(error);
            }
            shared.finished[me].store(phase as u64 + 1, Ordering::SeqCst);
            shared.done.fetch_add(1, Ordering::Relaxed);
            if self.sync == Meeting::None {
                continue;
            }
            let arrived = Instant::now();
            let passed = blocking(
                lane,
                "barrier.wait()",
                || shared.barrier.wait(Some(work.timeout)),
                |r| match r {
                    Ok(index) if *index == work.workers - 1 => "last to arrive: ran the action".into(),
                    Ok(_) => "released".into(),
                    Err(error) => error.to_string(),
                },
            );
            if let Err(PrimError::BrokenBarrier) = passed {
                context.check_cancel()?;
                return self.broken(me, phase, arrived, shared);
            }
        }
        Ok(())
    }

    /// The failing worker raises; with `abort` it breaks the barrier on its way out.
    fn fail(&self, shared: &Shared, lane: &mut Lane<'_>) {
        let now = Instant::now();
        if self.sync == Meeting::Abort {
            shared.barrier.abort();
            lane.record(SpanKind::Mark, "raised; barrier.abort()", now, now);
        } else {
            lane.record(SpanKind::Mark, "raised: never reaches barrier.wait()", now, now);
        }
    }

    /// A worker got `BrokenBarrierError` in `phase`: when the failure became known to it.
    fn broken(&self, me: usize, phase: usize, arrived: Instant, shared: &Shared) -> Result<(), RunError> {
        if self.sync == Meeting::Barrier {
            return Err(RunError::Failed(format!(
                "worker {me}'s barrier.wait() in phase {phase} timed out: raise timeout_ms above a phase's work"
            )));
        }
        shared.broken.fetch_add(1, Ordering::Relaxed);
        lock(&shared.stuck_ns).record(arrived.elapsed().as_nanos() as u64);
        Ok(())
    }
}

impl Cell for PhasesCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let workers = self.phases.workers;
        let actions = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&actions);
        let shared = Shared {
            barrier: Barrier::with_action(workers, move || {
                counted.fetch_add(1, Ordering::Relaxed);
            }),
            finished: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
            stale_reads: AtomicUsize::new(0),
            broken: AtomicUsize::new(0),
            stuck_ns: Mutex::new(LogHistogram::default()),
        };
        run_members(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            self.worker(member.index, &shared, &mut lane, context)
        })?;
        if self.sync != Meeting::None {
            context.record("barrier actions", "phases", actions.load(Ordering::Relaxed) as f64);
        }
        context.record("stale reads", "", shared.stale_reads.load(Ordering::Relaxed) as f64);
        if matches!(self.sync, Meeting::MissingParty | Meeting::Abort) {
            self.report_failure(&shared, context);
        }
        Ok(shared.done.load(Ordering::Relaxed) as u64)
    }
}

impl PhasesCell<'_> {
    fn report_failure(&self, shared: &Shared, context: &RunContext) {
        let work = self.phases;
        let broken = shared.broken.load(Ordering::Relaxed);
        let stuck = lock(&shared.stuck_ns).max();
        context.record("BrokenBarrierError", "workers", broken as f64);
        context.record("stuck in the barrier (max)", "ms", stuck as f64 / 1e6);
        let failing = work.workers - 1;
        let phase = work.failing_phase();
        let stuck_ms = stuck as f64 / 1e6;
        context.report(if self.sync == Meeting::Abort {
            format!(
                "worker {failing} raised in phase {phase} and called barrier.abort(): the {broken} others got \
                 BrokenBarrierError after at most {stuck_ms:.2} ms in the barrier, instead of waiting out a timeout"
            )
        } else {
            format!(
                "worker {failing} raised in phase {phase} and never reached barrier.wait(): the others waited up to \
                 {stuck_ms:.0} ms, until a timeout broke the barrier, and all {broken} got BrokenBarrierError \
                 (forever, with no timeout)"
            )
        });
    }
}
