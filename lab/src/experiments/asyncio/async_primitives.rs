//! `async-primitives`: the threading gallery's lessons with asyncio's primitives — `Event`
//! releasing every waiter, `Condition.wait_for`, `Barrier` phases, `BoundedSemaphore` — each
//! beside the misuse that asyncio allows as threading does, on the task timeline.

use std::cell::{Cell as Shared, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::event_loop::{clock_param, DemoClock};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use conlab_core::aio::prims::{Barrier, Condition, Event, Lock, Semaphore};
use conlab_core::aio::{gather_settled, now, sleep, spawn_named, wait_for, AioError, AioResult};

pub struct AsyncPrimitives;

const VARIANTS: [&str; 9] = [
    "event",
    "event-pulse",
    "condition",
    "condition-if",
    "barrier",
    "barrier-leaver",
    "barrier-abort",
    "semaphore",
    "semaphore-leaky",
];

impl Experiment for AsyncPrimitives {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "async-primitives",
            title: "asyncio's Event, Condition, Barrier and Semaphore, and their misuses",
            topic: super::NAME,
            concept: "asyncio.Event / Condition / Barrier / BoundedSemaphore",
            teaches: "The threading gallery's lessons hold for tasks on one loop. `event`: `tasks` tasks await \
                      `ready.wait()`; one `ready.set()` releases them all in the same loop iteration. \
                      `event-pulse`: `set(); clear()` releases those already waiting, and the task that arrives \
                      `late_ms` after misses it and waits until its `wait_for` timeout. `condition`: consumers \
                      `await cond.wait_for(lambda: items)` while a producer appends one item every `step_ms` and \
                      calls `notify_all()`; `condition-if` checks once with `if not items: await cond.wait()`, so \
                      every consumer woken beside the one that got the item pops from an empty deque \
                      (IndexError). `barrier`: task i works (i + 1) × `step_ms` a phase and all leave each of three \
                      phases together, when the slowest arrives. `barrier-leaver`: task 0 fails in phase 2; the \
                      others wait inside `wait_for(barrier.wait(), timeout)`, and asyncio's barrier is not broken by \
                      a cancelled waiter (threading's is broken by a timeout): each of them waits out its own \
                      timeout. `barrier-abort`: the failing task calls `await barrier.abort()` first, and the others \
                      get BrokenBarrierError at once. \
                      `semaphore`: a BoundedSemaphore(`limit`) keeps at most `limit` tasks inside; \
                      `semaphore-leaky`: a plain Semaphore and an error path that releases a second time — more \
                      than `limit` get in (a BoundedSemaphore raises ValueError there instead).",
            params: vec![
                ParamSpec::int("tasks", 4, 2, 64, "tasks", "waiters, consumers, barrier parties or workers"),
                ParamSpec::float("setup_ms", 10.0, 0.0, 10_000.0, "ms", "event: how long before set()"),
                ParamSpec::float("late_ms", 2.0, 0.0, 10_000.0, "ms", "event-pulse: the last waiter's lateness"),
                ParamSpec::float(
                    "step_ms",
                    5.0,
                    0.001,
                    10_000.0,
                    "ms",
                    "the producer's interval, a phase's unit, work",
                ),
                ParamSpec::int("limit", 2, 1, 64, "permits", "semaphore: the tasks allowed in at once"),
                ParamSpec::float("timeout_ms", 50.0, 0.1, 60_000.0, "ms", "how long a stuck task waits"),
                clock_param("real"),
            ],
            variants: vec![
                VariantSpec::fixed("event", "await ready.wait() in every task; ready.set() once"),
                VariantSpec::fixed("event-pulse", "ready.set(); ready.clear() — the last waiter arrives after it")
                    .unchecked("misses the event on purpose: the late waiter times out"),
                VariantSpec::fixed("condition", "await cond.wait_for(lambda: items); items.popleft()"),
                VariantSpec::fixed("condition-if", "if not items: await cond.wait(); items.popleft()")
                    .unchecked("checks once on purpose: woken consumers pop from an empty deque"),
                VariantSpec::fixed("barrier", "await barrier.wait() after each of three phases"),
                VariantSpec::fixed("barrier-leaver", "task 0 fails in phase 2; the others wait with a timeout")
                    .unchecked("a party fails on purpose: the others time out"),
                VariantSpec::fixed("barrier-abort", "task 0 calls barrier.abort() as it fails in phase 2")
                    .unchecked("a party fails on purpose: the others get BrokenBarrierError"),
                VariantSpec::fixed("semaphore", "async with BoundedSemaphore(limit): work"),
                VariantSpec::fixed("semaphore-leaky", "a Semaphore(limit) and an error path that releases twice")
                    .unchecked("releases twice on purpose: more than limit get in"),
            ],
            baseline: "event",
            chart_metric: Some("misuse effects"),
            shows_timeline: true,
            quick: &["setup_ms=2", "step_ms=1", "timeout_ms=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let ms = |name: &str| Duration::from_secs_f64(params.float(name) / 1e3);
        Ok(Box::new(Gallery {
            tasks: params.count("tasks"),
            setup: ms("setup_ms"),
            late: ms("late_ms"),
            step: ms("step_ms"),
            limit: params.count("limit"),
            timeout: ms("timeout_ms"),
            clock: DemoClock::unscaled(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "one set() releases every waiter in the loop iteration it runs in (virtual clock: 0 ms after it; \
                 real: < 5 ms), while a set(); clear() pulse is missed by the task that arrives after it",
                |facts| {
                    let woken = facts.fixed_metric("event", "woken after set() (max)")?.max;
                    let missed = facts.fixed_metric("event-pulse", "misuse effects")?.min;
                    let bound = if facts.text("clock")? == "virtual" { 0.0 } else { 5.0 };
                    verdict(
                        woken <= bound && missed >= 1.0,
                        format!("every waiter running ≤ {woken:.3} ms after set(); the pulse missed by {missed:.0}"),
                        "the real clock's timers fired late (a busy machine)",
                    )
                },
            ),
            Claim::new(
                "wait_for re-checks the predicate, so every consumer gets an item; checked once with if, the \
                 consumers woken beside the one that got the item pop from an empty deque",
                |facts| {
                    let errors = facts.fixed_metric("condition-if", "misuse effects")?.min;
                    let fine = facts.fixed_metric("condition", "misuse effects")?.max;
                    verdict(
                        fine == 0.0 && errors >= 1.0,
                        format!("wait_for: {fine:.0} errors; if: at least {errors:.0} IndexError in every run"),
                        "a bug in the condition",
                    )
                },
            ),
            Claim::new(
                "a barrier's parties leave every phase together (0 ms apart on the virtual clock, < 5 ms real); \
                 when one party fails, a timeout does not break asyncio's barrier — every other party waits out \
                 its own — and abort() releases them all with BrokenBarrierError",
                |facts| {
                    let spread = facts.fixed_metric("barrier", "phase spread (max)")?.max;
                    let stranded = facts.fixed_metric("barrier-leaver", "timed out")?.min;
                    let broken = facts.fixed_metric("barrier-abort", "broken")?.min;
                    let aborted_timeouts = facts.fixed_metric("barrier-abort", "timed out")?.max;
                    let others = facts.param("tasks")? - 1.0;
                    let bound = if facts.text("clock")? == "virtual" { 0.0 } else { 5.0 };
                    verdict(
                        spread <= bound && stranded == others && broken == others && aborted_timeouts == 0.0,
                        format!(
                            "phases left {spread:.3} ms apart; with a party gone, {stranded:.0} of {others:.0} timed \
                             out; with abort(), {broken:.0} got BrokenBarrierError and {aborted_timeouts:.0} timed out"
                        ),
                        "the real clock's timers fired late (a busy machine)",
                    )
                },
            ),
            Claim::new(
                "a BoundedSemaphore(limit) never lets more than limit tasks in; a Semaphore released twice on an \
                 error path lets more in",
                semaphore_verdict,
            ),
        ]
    }
}

fn semaphore_verdict(facts: &Facts<'_>) -> Result<Verdict, Verdict> {
    let limit = facts.param("limit")?;
    let bounded = facts.fixed_metric("semaphore", "max in flight")?.max;
    let leaky = facts.fixed_metric("semaphore-leaky", "max in flight")?.min;
    let room = facts.param("tasks")? >= limit + 2.0;
    verdict(
        bounded <= limit && (!room || leaky > limit),
        format!("at most {bounded:.0} inside a BoundedSemaphore({limit:.0}); {leaky:.0} inside the leaky one"),
        "a bug in the semaphore",
    )
}

#[derive(Clone, Copy)]
struct Gallery {
    tasks: usize,
    setup: Duration,
    late: Duration,
    step: Duration,
    limit: usize,
    timeout: Duration,
    clock: DemoClock,
}

impl Workload for Gallery {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// What each correct variant counts: the tasks that got through (released, fed, or done
    /// with all three phases or their work).
    fn expected(&self) -> Digest {
        self.tasks as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let index = VARIANTS.iter().position(|v| *v == variant).unwrap_or(0);
        Ok(Box::new(GalleryCell { gallery: self, variant: VARIANTS[index] }))
    }
}

struct GalleryCell<'a> {
    gallery: &'a Gallery,
    variant: &'static str,
}

/// What a variant's run observed.
#[derive(Default)]
struct Seen {
    /// Tasks that got through.
    through: u64,
    /// What the misuse did (missed events, IndexErrors, parties left to time out, permits past
    /// the limit), 0 when used right.
    misuse: u64,
    /// Milliseconds: the latest wake-up after set(), or the widest spread of a phase's exits.
    spread_ms: f64,
    timed_out: u64,
    /// Barrier parties that got BrokenBarrierError.
    broken: u64,
    max_in_flight: u64,
}

fn ms_since(then: Duration) -> f64 {
    (now() - then).as_secs_f64() * 1e3
}

/// Settles every handle; counts `Ok`s and errors whose text starts with `error`.
fn tally(outcomes: &[AioResult<()>], error: &str) -> (u64, u64) {
    let ok = outcomes.iter().filter(|o| o.is_ok()).count() as u64;
    let matching =
        outcomes.iter().filter(|o| matches!(o, Err(AioError::Raised(text)) if text.starts_with(error))).count() as u64;
    (ok, matching)
}

impl Gallery {
    async fn event(&self, pulse: bool) -> AioResult<Seen> {
        let (ready, set_at) = (Event::new(), Rc::new(Shared::new(Duration::MAX)));
        let latest = Rc::new(Shared::new(0.0f64));
        let waiters: Vec<_> = (0..self.tasks)
            .map(|index| {
                let (ready, set_at, latest) = (ready.clone(), Rc::clone(&set_at), Rc::clone(&latest));
                let arrive = if pulse && index + 1 == self.tasks { self.setup + self.late } else { Duration::ZERO };
                let timeout = self.timeout;
                spawn_named(format!("waiter {index}"), async move {
                    sleep(arrive).await?;
                    wait_for(async move { ready.wait().await }, timeout).await?;
                    latest.set(latest.get().max(ms_since(set_at.get())));
                    Ok(())
                })
            })
            .collect();
        sleep(self.setup).await?;
        set_at.set(now());
        ready.set();
        if pulse {
            ready.clear();
        }
        let outcomes = gather_settled(waiters).await?;
        let missed = outcomes.iter().filter(|o| matches!(o, Err(AioError::TimedOut))).count() as u64;
        let (through, _) = tally(&outcomes, "");
        Ok(Seen { through, misuse: missed, spread_ms: latest.get(), ..Seen::default() })
    }

    async fn condition(&self, recheck: bool) -> AioResult<Seen> {
        let condition = Condition::new(Lock::new());
        let items: Rc<RefCell<VecDeque<u64>>> = Rc::default();
        let consumers: Vec<_> = (0..self.tasks)
            .map(|index| {
                let (condition, items) = (condition.clone(), Rc::clone(&items));
                spawn_named(format!("consumer {index}"), async move {
                    let guard = condition.lock().acquire().await?;
                    let _guard = if recheck {
                        condition.wait_for(guard, || !items.borrow().is_empty()).await?
                    } else if items.borrow().is_empty() {
                        condition.wait(guard).await?
                    } else {
                        guard
                    };
                    let item = items.borrow_mut().pop_front();
                    item.map(drop).ok_or_else(|| AioError::Raised("IndexError: pop from an empty deque".into()))
                })
            })
            .collect();
        let producer = {
            let (condition, items, step, count) = (condition.clone(), Rc::clone(&items), self.step, self.tasks);
            spawn_named("producer", async move {
                for item in 0..count as u64 {
                    sleep(step).await?;
                    let _guard = condition.lock().acquire().await?;
                    items.borrow_mut().push_back(item);
                    condition.notify_all();
                }
                Ok(())
            })
        };
        let outcomes = gather_settled(consumers).await?;
        producer.await?;
        let (through, errors) = tally(&outcomes, "IndexError");
        Ok(Seen { through, misuse: errors, ..Seen::default() })
    }

    /// Three phases; with `failing`, party 0 fails in phase 2 — calling `abort()` first if
    /// `aborts`.
    async fn barrier(&self, failing: bool, aborts: bool) -> AioResult<Seen> {
        const PHASES: usize = 3;
        let barrier = Barrier::new(self.tasks);
        let exits: Rc<RefCell<Vec<Vec<Duration>>>> = Rc::new(RefCell::new(vec![Vec::new(); PHASES]));
        let parties: Vec<_> = (0..self.tasks)
            .map(|index| {
                let (barrier, exits) = (barrier.clone(), Rc::clone(&exits));
                let (work, timeout) = (self.step * (index as u32 + 1), self.timeout);
                spawn_named(format!("party {index}"), async move {
                    for phase in 0..PHASES {
                        sleep(work).await?;
                        if failing && index == 0 && phase == 1 {
                            if aborts {
                                barrier.abort();
                            }
                            return Err(AioError::Raised("RuntimeError: party 0 failed".into()));
                        }
                        let barrier = barrier.clone();
                        wait_for(async move { barrier.wait().await }, timeout).await?;
                        exits.borrow_mut()[phase].push(now());
                    }
                    Ok(())
                })
            })
            .collect();
        let outcomes = gather_settled(parties).await?;
        let spread = exits
            .borrow()
            .iter()
            .filter_map(|phase| Some((*phase.iter().max()? - *phase.iter().min()?).as_secs_f64() * 1e3))
            .fold(0.0, f64::max);
        let timed_out = outcomes.iter().filter(|o| matches!(o, Err(AioError::TimedOut))).count() as u64;
        let (through, broken) = tally(&outcomes, "BrokenBarrierError");
        // The misuse is failing without abort(): the others wait out their timeouts.
        let misuse = if aborts { 0 } else { timed_out };
        Ok(Seen { through, misuse, spread_ms: spread, timed_out, broken, ..Seen::default() })
    }

    async fn semaphore(&self, leaky: bool) -> AioResult<Seen> {
        let semaphore = if leaky { Semaphore::new(self.limit) } else { Semaphore::bounded(self.limit) };
        let inside = Rc::new((Shared::new(0u64), Shared::new(0u64)));
        let workers: Vec<_> = (0..self.tasks)
            .map(|index| {
                let (semaphore, inside, work) = (semaphore.clone(), Rc::clone(&inside), self.step);
                spawn_named(format!("worker {index}"), async move {
                    let permit = semaphore.acquire().await?;
                    let (now_in, most) = &*inside;
                    now_in.set(now_in.get() + 1);
                    most.set(most.get().max(now_in.get()));
                    let failing = leaky && index == 0;
                    sleep(if failing { work / 2 } else { work }).await?;
                    now_in.set(now_in.get() - 1);
                    drop(permit);
                    if failing {
                        // The error path's `finally: sem.release()`, after `async with` released.
                        semaphore.release()?;
                    }
                    Ok(())
                })
            })
            .collect();
        let outcomes = gather_settled(workers).await?;
        let (through, _) = tally(&outcomes, "");
        let most = inside.1.get();
        let over = most.saturating_sub(self.limit as u64);
        Ok(Seen { through, misuse: over, max_in_flight: most, ..Seen::default() })
    }
}

impl Cell for GalleryCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        // The loop's future must be 'static: it runs on a copy of the settings.
        let settings = *self.gallery;
        let (clock, variant) = (settings.clock, self.variant);
        let seen = clock.run(context, 0, async move {
            match variant {
                "event" => settings.event(false).await,
                "event-pulse" => settings.event(true).await,
                "condition" => settings.condition(true).await,
                "condition-if" => settings.condition(false).await,
                "barrier" => settings.barrier(false, false).await,
                "barrier-leaver" => settings.barrier(true, false).await,
                "barrier-abort" => settings.barrier(true, true).await,
                "semaphore" => settings.semaphore(false).await,
                _ => settings.semaphore(true).await,
            }
        })?;
        context.record("misuse effects", "count", seen.misuse as f64);
        match variant {
            "event" | "event-pulse" => context.record("woken after set() (max)", "ms", seen.spread_ms),
            "barrier" | "barrier-leaver" | "barrier-abort" => {
                context.record("broken", "tasks", seen.broken as f64);
                context.record("phase spread (max)", "ms", seen.spread_ms);
                context.record("timed out", "tasks", seen.timed_out as f64);
            }
            "semaphore" | "semaphore-leaky" => context.record("max in flight", "tasks", seen.max_in_flight as f64),
            _ => {}
        }
        Ok(seen.through)
    }
}
