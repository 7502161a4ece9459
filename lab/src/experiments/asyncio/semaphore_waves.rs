//! `semaphore-waves`: T tasks of d seconds under `Semaphore(k)` finish in ⌈T/k⌉·d.

use std::cell::Cell as Counter;
use std::rc::Rc;

use super::event_loop::{clock_params, DemoClock};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::aio::prims::Semaphore;
use conlab_core::aio::{gather, sleep, spawn};

pub struct SemaphoreWaves;

impl Experiment for SemaphoreWaves {
    fn info(&self) -> ExperimentInfo {
        let mut params = vec![
            ParamSpec::int("tasks", 5, 1, 10_000, "tasks", "tasks started at once"),
            ParamSpec::float("duration", 1.5, 0.001, 60.0, "book s", "how long each task holds its permit"),
            ParamSpec::int("limit", 2, 1, 10_000, "permits", "the semaphore's value k"),
        ];
        params.extend(clock_params());
        ExperimentInfo {
            id: "semaphore-waves",
            title: "Semaphore(k): tasks go through in waves",
            topic: super::NAME,
            concept: "asyncio.Semaphore as a concurrency limit",
            teaches: "A semaphore with k permits lets k tasks in; the rest queue in order and each release hands its \
                      permit to the next. T tasks of d seconds therefore run in ⌈T/k⌉ waves and take ⌈T/k⌉·d — five \
                      1.5 s tasks under Semaphore(2) take 4.5 s (one book prints 3.75 s, which would need the work to \
                      split). The timeline shows the waves: each task waits on `Semaphore.acquire`, then sleeps. \
                      `max in flight` is counted, never assumed.",
            params,
            variants: vec![
                VariantSpec::fixed("semaphore", "async with Semaphore(limit)"),
                VariantSpec::fixed("unlimited", "no semaphore: every task at once"),
            ],
            baseline: "unlimited",
            chart_metric: Some("loop time"),
            shows_timeline: true,
            quick: &["clock=virtual", "tasks=7"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Waves {
            tasks: params.count("tasks"),
            duration: params.float("duration"),
            limit: params.count("limit"),
            clock: DemoClock::from(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("under Semaphore(k), T tasks of d seconds take ⌈T/k⌉·d (loop time within 5%)", |facts| {
                let (tasks, limit, duration) = (facts.param("tasks")?, facts.param("limit")?, facts.param("duration")?);
                let expected = (tasks / limit).ceil() * duration;
                let took = facts.metric("semaphore", 1, "loop time")?;
                verdict(
                    (took / expected - 1.0).abs() <= 0.05,
                    format!("{took:.2} s for ⌈{tasks}/{limit}⌉ × {duration} s = {expected:.2} s"),
                    "the real clock's timers fired late (a busy machine); the virtual clock is exact",
                )
            }),
            Claim::new("never more than k tasks hold a permit at once", |facts| {
                let limit = facts.param("limit")?;
                let most = facts.metric_max("semaphore", 1, "max in flight")?;
                verdict(
                    most <= limit,
                    format!("at most {most:.0} in flight under k = {limit}"),
                    "a bug in the semaphore",
                )
            }),
            Claim::new("without a limit every task sleeps at once: the loop takes d (within 5%)", |facts| {
                let duration = facts.param("duration")?;
                let took = facts.metric("unlimited", 1, "loop time")?;
                verdict(
                    (took / duration - 1.0).abs() <= 0.05,
                    format!("{took:.2} s for d = {duration} s"),
                    "the real clock's timers fired late (a busy machine); the virtual clock is exact",
                )
            }),
        ]
    }
}

struct Waves {
    tasks: usize,
    duration: f64,
    limit: usize,
    clock: DemoClock,
}

impl Workload for Waves {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        self.tasks as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(WavesCell { waves: self, limited: variant == "semaphore" }))
    }
}

struct WavesCell<'a> {
    waves: &'a Waves,
    limited: bool,
}

impl Cell for WavesCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Waves { tasks, duration, limit, clock } = *self.waves;
        let semaphore = Semaphore::new(if self.limited { limit } else { tasks });
        let in_flight = Rc::new((Counter::new(0usize), Counter::new(0usize)));
        let counts = Rc::clone(&in_flight);
        let done = clock.run(context, 0, async move {
            let handles = (0..tasks)
                .map(|_| {
                    let (semaphore, in_flight) = (semaphore.clone(), Rc::clone(&in_flight));
                    spawn(async move {
                        let _permit = semaphore.acquire().await?;
                        let (now, max) = &*in_flight;
                        now.set(now.get() + 1);
                        max.set(max.get().max(now.get()));
                        let slept = sleep(clock.secs(duration)).await;
                        now.set(now.get() - 1);
                        slept.map(|()| 1u64)
                    })
                })
                .collect();
            Ok(gather(handles).await?.iter().sum())
        })?;
        context.record("max in flight", "tasks", counts.1.get() as f64);
        context.record("waves", "⌈T/k⌉", tasks.div_ceil(if self.limited { limit } else { tasks }) as f64);
        Ok(done)
    }
}
