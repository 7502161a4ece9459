//! `async-race`: asyncio tasks lose updates wherever an await splits a read from its write;
//! with no await inside, or under `asyncio.Lock`, none — and the lock makes the awaits take
//! turns.

use std::cell::Cell as Shared;
use std::rc::Rc;
use std::time::Duration;

use super::event_loop::{clock_param, DemoClock};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::aio::prims::Lock;
use conlab_core::aio::{gather, sleep, spawn, yield_now, AioResult};

pub struct AsyncRace;

impl Experiment for AsyncRace {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "async-race",
            title: "Races at await points: asyncio tasks lose updates too",
            topic: super::NAME,
            concept: "race conditions in asyncio; asyncio.Lock",
            teaches: "`tasks` tasks each add 1 to a shared counter `rounds` times: `x = counter; await io(); counter \
                      = x + 1`. One thread runs them all and nothing preempts a task — and still updates are lost: \
                      the await hands the loop to the other tasks while this one holds a stale `x`. With every task \
                      reading before any writes (they all wait the same time, or `asyncio.sleep(0)` sends each to \
                      the back of the ready queue), a round of N increments adds 1. Move the await before the read \
                      and nothing is lost: between two awaits a task runs alone (`conlab explore async-no-await` \
                      proves it over every schedule). `async with lock:` around read, await and write loses nothing \
                      either, at a price: the awaits inside the lock take turns — `loop time` shows the I/O no \
                      longer overlapping. `lost updates` is expected − counted.",
            params: vec![
                ParamSpec::int("tasks", 10, 1, 10_000, "tasks", "tasks incrementing the counter"),
                ParamSpec::int("rounds", 100, 1, 1_000_000, "per task", "increments each task makes"),
                ParamSpec::choice(
                    "await",
                    "io",
                    &["io", "sleep0"],
                    "what the task awaits: io — a call of io_ms on the loop's clock; sleep0 — asyncio.sleep(0)",
                ),
                ParamSpec::float("io_ms", 1.0, 0.001, 1_000.0, "ms", "io: how long each awaited call takes"),
                clock_param("virtual"),
            ],
            variants: vec![
                VariantSpec::fixed("await-between", "x = counter; await io(); counter = x + 1")
                    .unchecked("an await splits the read from the write: updates are lost on purpose"),
                VariantSpec::fixed("no-await", "await io(); x = counter; counter = x + 1"),
                VariantSpec::fixed("lock", "async with lock: x = counter; await io(); counter = x + 1"),
            ],
            baseline: "no-await",
            chart_metric: Some("lost updates"),
            shows_timeline: true,
            quick: &["tasks=4", "rounds=20"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Race {
            tasks: params.count("tasks"),
            rounds: params.count("rounds"),
            io: (params.text("await") == "io").then(|| Duration::from_secs_f64(params.float("io_ms") / 1e3)),
            clock: DemoClock::unscaled(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "an await between the read and the write loses updates: with 2 or more tasks in step, at least \
                 half of (tasks − 1) in every tasks increments are lost (median runs)",
                |facts| {
                    let tasks = facts.param("tasks")?;
                    if tasks < 2.0 {
                        return Err(not_testable("one task has nobody to race with"));
                    }
                    let lost = facts.fixed_metric("await-between", "lost fraction")?.median;
                    let in_step = (tasks - 1.0) / tasks;
                    verdict(
                        lost >= 0.5 * in_step,
                        format!(
                            "{tasks:.0} tasks lost {lost:.3} of their increments ((tasks − 1)/tasks = {in_step:.3})"
                        ),
                        "the tasks drifted out of step (a real clock on a busy machine)",
                    )
                },
            ),
            Claim::new(
                "with no await between the read and the write, and under asyncio.Lock, no update is lost in any run",
                |facts| {
                    let unsplit = facts.fixed_metric("no-await", "lost updates")?.max;
                    let locked = facts.fixed_metric("lock", "lost updates")?.max;
                    verdict(
                        unsplit == 0.0 && locked == 0.0,
                        format!("at most {unsplit:.0} lost with no await inside, {locked:.0} under the lock"),
                        "a bug in the loop or the lock",
                    )
                },
            ),
            Claim::new(
                "the lock makes the awaits inside it take turns: the locked run's loop time is ≥ 0.9 × tasks × \
                 rounds × io_ms, while unlocked tasks overlap their I/O (≤ 1.5 × rounds × io_ms) (fastest runs)",
                |facts| {
                    if facts.text("await")? != "io" {
                        return Err(not_testable("asyncio.sleep(0) takes no time to overlap"));
                    }
                    let (tasks, rounds, io_s) =
                        (facts.param("tasks")?, facts.param("rounds")?, facts.param("io_ms")? / 1e3);
                    let locked = facts.fixed_metric("lock", "loop time")?.min;
                    let unlocked = facts.fixed_metric("no-await", "loop time")?.min;
                    verdict(
                        locked >= 0.9 * tasks * rounds * io_s && unlocked <= 1.5 * rounds * io_s,
                        format!(
                            "loop time {locked:.3} s under the lock ({:.3} s of I/O in turn), {unlocked:.3} s without \
                             ({:.3} s of I/O overlapped)",
                            tasks * rounds * io_s,
                            rounds * io_s
                        ),
                        "the real clock's timers fired late (a busy machine); the virtual clock is exact",
                    )
                },
            ),
        ]
    }
}

struct Race {
    tasks: usize,
    rounds: usize,
    /// The awaited call's duration; `None` for `asyncio.sleep(0)`.
    io: Option<Duration>,
    clock: DemoClock,
}

impl Workload for Race {
    fn work_units(&self) -> Option<f64> {
        Some((self.tasks * self.rounds) as f64)
    }

    fn expected(&self) -> Digest {
        (self.tasks * self.rounds) as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let shape = match variant {
            "await-between" => Shape::AwaitBetween,
            "no-await" => Shape::NoAwait,
            _ => Shape::Locked,
        };
        Ok(Box::new(RaceCell { race: self, shape }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    AwaitBetween,
    NoAwait,
    Locked,
}

struct RaceCell<'a> {
    race: &'a Race,
    shape: Shape,
}

/// The awaited call: a timer of `io`, or `asyncio.sleep(0)`.
async fn call(io: Option<Duration>) -> AioResult<()> {
    match io {
        Some(duration) => sleep(duration).await,
        None => yield_now().await,
    }
}

impl Cell for RaceCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Race { tasks, rounds, io, clock } = *self.race;
        let shape = self.shape;
        let counted = clock.run(context, 0, async move {
            let counter = Rc::new(Shared::new(0u64));
            let lock = Lock::new();
            let handles = (0..tasks)
                .map(|_| {
                    let (counter, lock) = (Rc::clone(&counter), lock.clone());
                    spawn(async move {
                        for _ in 0..rounds {
                            let _guard = match shape {
                                Shape::Locked => Some(lock.acquire().await?),
                                _ => None,
                            };
                            if shape == Shape::NoAwait {
                                call(io).await?;
                            }
                            let seen = counter.get();
                            if shape != Shape::NoAwait {
                                call(io).await?;
                            }
                            counter.set(seen + 1);
                        }
                        Ok(())
                    })
                })
                .collect();
            gather(handles).await?;
            Ok(counter.get())
        })?;
        let expected = (tasks * rounds) as u64;
        let lost = expected.saturating_sub(counted);
        context.record("lost updates", "increments", lost as f64);
        context.record("lost fraction", "of increments", lost as f64 / expected as f64);
        Ok(counted)
    }
}
