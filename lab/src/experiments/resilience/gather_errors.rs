//! `gather-errors`: one task of several fails. `gather` raises its error at once and leaves the
//! siblings running; `gather(return_exceptions=True)` waits for every task and hands back
//! results and the error alike; a `TaskGroup` cancels the siblings and raises an
//! ExceptionGroup. What still runs after the first error, and when the caller gets control.

use std::cell::Cell as Shared;
use std::rc::Rc;
use std::time::Duration;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use crate::experiments::asyncio::event_loop::{clock_param, DemoClock};
use conlab_core::aio::{gather, gather_settled, now, sleep, spawn, AioError, AioResult, TaskGroup};

pub struct GatherErrors;

impl Experiment for GatherErrors {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "gather-errors",
            title: "When one task fails: gather, return_exceptions and TaskGroup",
            topic: super::NAME,
            concept: "asyncio.gather error handling vs TaskGroup (structured concurrency)",
            teaches: "`tasks` tasks sleep 1, 2, 3… × `step_ms`; task number `fails` raises when it wakes. \
                      `await gather(...)` raises that error the moment it happens — and the other tasks run on \
                      with nobody awaiting them (`finished after`: their work and their errors go unseen). \
                      `gather(..., return_exceptions=True)` raises nothing: it returns when the last task ends, with \
                      the error as one of the results. `async with TaskGroup()` cancels the siblings at the first \
                      error and raises an ExceptionGroup once they have handled it: control comes back as fast as \
                      with gather, and nothing is left running. `control back` is when the awaiting code resumes.",
            params: vec![
                ParamSpec::int("tasks", 5, 2, 10_000, "tasks", "tasks started together"),
                ParamSpec::float("step_ms", 100.0, 0.01, 10_000.0, "ms", "task i sleeps (i + 1) × step_ms"),
                ParamSpec::int("fails", 1, 0, 9_999, "", "which task raises (0 = the first to wake; < tasks)"),
                clock_param("virtual"),
            ],
            variants: vec![
                VariantSpec::fixed("gather", "await asyncio.gather(*tasks)"),
                VariantSpec::fixed("return-exceptions", "await asyncio.gather(*tasks, return_exceptions=True)"),
                VariantSpec::fixed("taskgroup", "async with asyncio.TaskGroup() as tg: tg.create_task(…)"),
            ],
            baseline: "gather",
            fixed_duration: true,
            chart_metric: Some("control back"),
            quick: &["step_ms=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let (tasks, fails) = (params.count("tasks"), params.count("fails"));
        if fails >= tasks {
            return Err(super::stage::param_error(
                "fails",
                format!("expected less than tasks ({tasks}), got `{fails}`"),
            ));
        }
        Ok(Box::new(Failing {
            tasks,
            fails,
            step: Duration::from_secs_f64(params.float("step_ms") / 1e3),
            clock: DemoClock::unscaled(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "gather raises the first error at once and the siblings run on: control comes back at the failure \
                 and every task due after it still finishes (median runs)",
                |facts| {
                    let (fail_at, later) = timings(facts)?;
                    let back = facts.fixed_metric("gather", "control back")?.median;
                    let finished = facts.fixed_metric("gather", "finished after")?.median;
                    verdict(
                        near(back, fail_at) && finished == later,
                        format!("control back at {back:.1} ms (the failure at {fail_at:.1} ms); {finished:.0} tasks finished after it"),
                        "the real clock's timers fired late",
                    )
                },
            ),
            Claim::new(
                "return_exceptions waits for everything: control comes back when the last task ends, with every \
                 result and the error among them (median runs)",
                |facts| {
                    let last = facts.param("tasks")? * facts.param("step_ms")?;
                    let back = facts.fixed_metric("return-exceptions", "control back")?.median;
                    let results = facts.fixed_metric("return-exceptions", "outcomes seen")?.median;
                    verdict(
                        near(back, last) && results == facts.param("tasks")?,
                        format!("control back at {back:.1} ms (the last task ends at {last:.1} ms) with {results:.0} outcomes"),
                        "the real clock's timers fired late",
                    )
                },
            ),
            Claim::new(
                "a TaskGroup cancels the siblings: control comes back at the failure and no task finishes after it \
                 (median runs)",
                |facts| {
                    let (fail_at, later) = timings(facts)?;
                    let back = facts.fixed_metric("taskgroup", "control back")?.median;
                    let finished = facts.fixed_metric("taskgroup", "finished after")?.max;
                    let cancelled = facts.fixed_metric("taskgroup", "cancelled")?.median;
                    verdict(
                        near(back, fail_at) && finished == 0.0 && cancelled == later,
                        format!("control back at {back:.1} ms; {cancelled:.0} siblings cancelled, {finished:.0} finished after"),
                        "the real clock's timers fired late",
                    )
                },
            ),
        ]
    }
}

/// (when the failing task fails, in ms; how many tasks are due after it).
fn timings(facts: &Facts) -> Result<(f64, f64), Verdict> {
    let (tasks, step, fails) = (facts.param("tasks")?, facts.param("step_ms")?, facts.param("fails")?);
    Ok(((fails + 1.0) * step, tasks - fails - 1.0))
}

/// Within 20% of a step (the real clock's timers may fire late; the virtual clock is exact).
fn near(measured: f64, expected: f64) -> bool {
    (measured - expected).abs() <= 0.2 * expected.max(1e-9)
}

struct Failing {
    tasks: usize,
    fails: usize,
    step: Duration,
    clock: DemoClock,
}

impl Workload for Failing {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        1
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let style = match variant {
            "return-exceptions" => Style::Settled,
            "taskgroup" => Style::Group,
            _ => Style::Gather,
        };
        Ok(Box::new(FailingCell { failing: self, style }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Gather,
    Settled,
    Group,
}

struct FailingCell<'a> {
    failing: &'a Failing,
    style: Style,
}

/// What the tasks did: finished after the failure, cancelled.
#[derive(Default)]
struct Tally {
    failed_at: Shared<Option<Duration>>,
    finished_after: Shared<u32>,
    cancelled: Shared<u32>,
}

/// Task `index`: sleeps (index + 1) steps, then raises if it is the failing one.
async fn task(index: usize, failing: usize, step: Duration, tally: Rc<Tally>) -> AioResult<usize> {
    match sleep(step * (index as u32 + 1)).await {
        Err(AioError::Cancelled) => {
            tally.cancelled.set(tally.cancelled.get() + 1);
            return Err(AioError::Cancelled);
        }
        other => other?,
    }
    if index == failing {
        tally.failed_at.set(Some(now()));
        return Err(AioError::Raised(format!("task {index} failed")));
    }
    if tally.failed_at.get().is_some() {
        tally.finished_after.set(tally.finished_after.get() + 1);
    }
    Ok(index)
}

impl Cell for FailingCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Failing { tasks, fails, step, clock } = *self.failing;
        let style = self.style;
        let tally = Rc::new(Tally::default());
        let seen = Rc::clone(&tally);
        let (back, outcomes, what) = clock.run(context, 0, async move {
            let start = now();
            let spawn_all = || (0..tasks).map(|i| spawn(task(i, fails, step, Rc::clone(&seen)))).collect::<Vec<_>>();
            let (outcomes, what) = match style {
                Style::Gather => match gather(spawn_all()).await {
                    Ok(results) => (results.len(), "every result".to_string()),
                    Err(error) => (1, format!("raised {error}")),
                },
                Style::Settled => {
                    let outcomes = gather_settled(spawn_all()).await?;
                    let errors = outcomes.iter().filter(|outcome| outcome.is_err()).count();
                    (outcomes.len(), format!("{} results and {errors} error in the list", outcomes.len() - errors))
                }
                Style::Group => {
                    let tally = Rc::clone(&seen);
                    let grouped = TaskGroup::run(|group| async move {
                        for i in 0..tasks {
                            group.spawn(task(i, fails, step, Rc::clone(&tally)));
                        }
                        Ok(())
                    })
                    .await;
                    match grouped {
                        Err(error @ AioError::Group(_)) => (1, format!("raised {error}")),
                        other => (0, format!("{other:?}")),
                    }
                }
            };
            let back = now() - start;
            // Stay on the loop until every task would have ended, to see what still runs.
            let end = step * (tasks as u32 + 1);
            sleep(end.saturating_sub(now() - start)).await?;
            Ok((back, outcomes, what))
        })?;
        context.record("control back", "ms", back.as_secs_f64() * 1e3);
        context.record("outcomes seen", "outcomes", outcomes as f64);
        context.record("finished after", "tasks", f64::from(tally.finished_after.get()));
        context.record("cancelled", "tasks", f64::from(tally.cancelled.get()));
        context.report(format!(
            "the caller got control back after {:.1} ms: {what}; {} tasks finished after the failure, {} were cancelled",
            back.as_secs_f64() * 1e3,
            tally.finished_after.get(),
            tally.cancelled.get()
        ));
        Ok(1)
    }
}
