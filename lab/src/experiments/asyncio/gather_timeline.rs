//! `gather-timeline`: awaiting coroutines one after another vs running them as tasks at once.

use super::event_loop::{clock_params, DemoClock};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use conlab_core::aio::{gather, sleep, spawn_named, AioResult, TaskGroup};

pub struct GatherTimeline;

impl Experiment for GatherTimeline {
    fn info(&self) -> ExperimentInfo {
        let mut params = vec![ParamSpec::choice(
            "sleeps",
            "2.0,1.5,2.5",
            &["2.0,1.5,2.5", "1,1,1,1", "0.5,3.0", "3,2,1"],
            "each coroutine's sleep, in book seconds",
        )];
        params.extend(clock_params());
        ExperimentInfo {
            id: "gather-timeline",
            title: "await one by one vs gather: where asyncio's speed comes from",
            topic: super::NAME,
            concept: "await vs asyncio.gather / create_task / TaskGroup",
            teaches:
                "`await coro()` runs a coroutine to the end before the next line starts: three sleeps of 2.0, 1.5 \
                      and 2.5 s take 6.0 s. Wrapped in tasks (`gather`, or a `TaskGroup`) they sleep at the same time, \
                      and the total is the longest, 2.5 s — nothing runs in parallel, the loop just waits for all the \
                      timers at once. The timeline shows each task's sleep; `loop time` is in the book's seconds (the \
                      real clock replays them at `scale`, the virtual clock exactly and instantly).",
            params,
            variants: vec![
                VariantSpec::fixed("sequential", "await each coroutine in turn"),
                VariantSpec::fixed("gather", "asyncio.gather over tasks"),
                VariantSpec::fixed("taskgroup", "async with asyncio.TaskGroup()"),
            ],
            baseline: "sequential",
            chart_metric: Some("loop time"),
            shows_timeline: true,
            quick: &["clock=real", "scale=0.005"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Sleeps { sleeps: book_sleeps(params.text("sleeps")), clock: DemoClock::from(params) }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("awaited one by one, the sleeps add up: loop time = their sum (within 5%)", |facts| {
                let sum: f64 = sleeps(facts)?.iter().sum();
                let took = facts.metric("sequential", 1, "loop time")?;
                within(took, sum, "the sum")
            }),
            Claim::new(
                "as tasks (gather, TaskGroup) they overlap: loop time = the longest sleep (within 5%)",
                |facts| {
                    let longest = sleeps(facts)?.iter().copied().fold(0.0, f64::max);
                    let (gather, group) =
                        (facts.metric("gather", 1, "loop time")?, facts.metric("taskgroup", 1, "loop time")?);
                    let close = |took: f64| (took / longest - 1.0).abs() <= 0.05;
                    verdict(
                        close(gather) && close(group),
                        format!("gather {gather:.2} s, TaskGroup {group:.2} s; the longest sleep {longest:.2} s"),
                        LATE_TIMERS,
                    )
                },
            ),
        ]
    }
}

const LATE_TIMERS: &str = "the real clock's timers fired late (a busy machine); the virtual clock is exact";

/// The sleeps the run awaited, in book seconds.
fn sleeps(facts: &Facts<'_>) -> Result<Vec<f64>, Verdict> {
    Ok(book_sleeps(facts.text("sleeps")?))
}

/// A `sleeps` choice (`2.0,1.5,2.5`) as book seconds; every choice is a list of numbers.
fn book_sleeps(choice: &str) -> Vec<f64> {
    choice.split(',').map(|s| s.trim().parse().expect("a preset of numbers")).collect()
}

fn within(took: f64, expected: f64, what: &str) -> Result<Verdict, Verdict> {
    verdict((took / expected - 1.0).abs() <= 0.05, format!("{took:.2} s; {what} {expected:.2} s"), LATE_TIMERS)
}

struct Sleeps {
    /// Book seconds.
    sleeps: Vec<f64>,
    clock: DemoClock,
}

impl Workload for Sleeps {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every coroutine finished.
    fn expected(&self) -> Digest {
        self.sleeps.len() as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(SleepsCell { sleeps: self, variant: variant.to_string() }))
    }
}

struct SleepsCell<'a> {
    sleeps: &'a Sleeps,
    variant: String,
}

/// The book's coroutine: sleep, then return.
async fn fetch(duration: std::time::Duration) -> AioResult<u64> {
    sleep(duration).await.map(|()| 1)
}

impl Cell for SleepsCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let clock = self.sleeps.clock;
        let durations: Vec<_> = self.sleeps.sleeps.iter().map(|&s| clock.secs(s)).collect();
        let variant = self.variant.clone();
        clock.run(context, 0, async move {
            let named = |(i, d): (usize, &std::time::Duration)| {
                (format!("fetch {} ({})", i + 1, crate::report::format_seconds(d.as_secs_f64())), *d)
            };
            match variant.as_str() {
                "sequential" => {
                    let mut done = 0;
                    for duration in &durations {
                        done += fetch(*duration).await?;
                    }
                    Ok(done)
                }
                "gather" => {
                    let tasks =
                        durations.iter().enumerate().map(named).map(|(name, d)| spawn_named(name, fetch(d))).collect();
                    Ok(gather(tasks).await?.iter().sum())
                }
                _ => TaskGroup::run(|tg| async move {
                    let tasks: Vec<_> = durations
                        .iter()
                        .enumerate()
                        .map(named)
                        .map(|(name, d)| tg.spawn_named(name, fetch(d)))
                        .collect();
                    Ok(tasks)
                })
                .await
                .map(|mut tasks| tasks.iter_mut().filter_map(|t| t.take_result()).filter_map(Result::ok).sum()),
            }
        })
    }
}
