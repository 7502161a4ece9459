//! `cancellation`: what cancelling does in asyncio — at the next await, with clean-up; timeouts;
//! `shield`; a `TaskGroup` cancelling siblings of a failed task.

use std::cell::RefCell;
use std::rc::Rc;

use super::event_loop::{clock_params, DemoClock};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use conlab_core::aio::{now, shield, sleep, spawn_named, wait_for, AioError, AioResult, TaskGroup};

pub struct Cancellation;

impl Experiment for Cancellation {
    fn info(&self) -> ExperimentInfo {
        let mut params =
            vec![ParamSpec::float("work", 3.0, 0.01, 60.0, "book s", "how long each worker task would take")];
        params.extend(clock_params());
        ExperimentInfo {
            id: "cancellation",
            title: "Cancellation: where it lands, what cleans up, what survives",
            topic: super::NAME,
            concept: "Task.cancel, asyncio.timeout / wait_for, shield, TaskGroup",
            teaches: "`task.cancel()` does not stop a task on the spot: it raises `CancelledError` at the task's \
                      current await, and the task may clean up (even awaiting) before it ends. `wait_for` / `timeout` \
                      cancel the inner task when time runs out and wait for its clean-up before raising \
                      `TimeoutError`. `shield` protects the inner task: the waiter is cancelled, the work runs on. In \
                      a `TaskGroup` the first failure cancels every sibling and the body, and the group raises the \
                      failures together. Each run checks that the documented outcome happened; the table's columns \
                      count what cleaned up and what finished, and the timeline shows where each cancellation landed.",
            params,
            variants: vec![
                VariantSpec::fixed("cancel", "cancel a worker after a third of its work"),
                VariantSpec::fixed("timeout", "wait_for(worker, work / 3)"),
                VariantSpec::fixed("shield", "wait_for(shield(worker), work / 3)"),
                VariantSpec::fixed("taskgroup", "three workers in a TaskGroup, one fails at a third"),
            ],
            baseline: "cancel",
            shows_timeline: true,
            quick: &["clock=real", "scale=0.005"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Scenario { work: params.float("work"), clock: DemoClock::from(params) }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "cancel() and a timeout raise at the task's next await: the task cleans up and never finishes, in every \
                 run",
                |facts| {
                    let mut seen = Vec::new();
                    for variant in ["cancel", "timeout"] {
                        let (cleaned, finished) = outcome(facts, variant)?;
                        if cleaned != (1.0, 1.0) || finished != (0.0, 0.0) {
                            return verdict(false, format!("{variant}: cleaned up {cleaned:?}, finished {finished:?}"), "a bug in the event loop's cancellation");
                        }
                        seen.push(variant);
                    }
                    verdict(true, format!("{}: cleaned up, not finished", seen.join(" and ")), "")
                },
            ),
            Claim::new("shield lets the work run on: the shielded worker finishes, in every run", |facts| {
                let (_, finished) = outcome(facts, "shield")?;
                verdict(finished == (1.0, 1.0), format!("finished {finished:?} (fewest, most)"), "a bug in shield")
            }),
            Claim::new("in a TaskGroup the first failure cancels the siblings: both clean up, none finishes", |facts| {
                let (cleaned, finished) = outcome(facts, "taskgroup")?;
                verdict(cleaned == (2.0, 2.0) && finished == (0.0, 0.0), format!("cleaned up {cleaned:?}, finished {finished:?} (fewest, most)"), "a bug in the TaskGroup")
            }),
        ]
    }
}

/// A count's (fewest, most) over a variant's runs.
type Span = (f64, f64);

/// A variant's `cleaned up` and `finished` spans over its runs.
fn outcome(facts: &Facts<'_>, variant: &str) -> Result<(Span, Span), Verdict> {
    let span = |name| facts.fixed_metric(variant, name).map(|m| (m.min, m.max));
    Ok((span("cleaned up")?, span("finished")?))
}

#[derive(Clone, Copy)]
struct Scenario {
    work: f64,
    clock: DemoClock,
}

impl Workload for Scenario {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// 1: the outcome asyncio documents happened.
    fn expected(&self) -> Digest {
        1
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(ScenarioCell { scenario: *self, variant: variant.to_string() }))
    }
}

struct ScenarioCell {
    scenario: Scenario,
    variant: String,
}

/// What happened to the workers, in order.
type Log = Rc<RefCell<Vec<&'static str>>>;

/// A worker: `work` of sleeping; cancelled, it cleans up (a short await) and re-raises.
async fn worker(work: std::time::Duration, cleanup: std::time::Duration, log: Log) -> AioResult<()> {
    match sleep(work).await {
        Err(AioError::Cancelled) => {
            sleep(cleanup).await?;
            log.borrow_mut().push("cleaned up");
            Err(AioError::Cancelled)
        }
        Err(other) => Err(other),
        Ok(()) => {
            log.borrow_mut().push("finished");
            Ok(())
        }
    }
}

impl Cell for ScenarioCell {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Scenario { work, clock } = self.scenario;
        let (full, third, cleanup) = (clock.secs(work), clock.secs(work / 3.0), clock.secs(work / 30.0));
        let log: Log = Rc::default();
        let seen = Rc::clone(&log);
        let variant = self.variant.clone();
        let outcome = clock.run(context, 0, async move {
            let log = seen;
            let ok = match variant.as_str() {
                "cancel" => {
                    let task = spawn_named("worker", worker(full, cleanup, Rc::clone(&log)));
                    sleep(third).await?;
                    task.cancel();
                    task.await == Err(AioError::Cancelled) && *log.borrow() == ["cleaned up"]
                }
                "timeout" => {
                    let result = wait_for(worker(full, cleanup, Rc::clone(&log)), third).await;
                    // TimeoutError only after the worker's clean-up.
                    result == Err(AioError::TimedOut) && *log.borrow() == ["cleaned up"] && now() >= third + cleanup
                }
                "shield" => {
                    let result = wait_for(shield(worker(full, cleanup, Rc::clone(&log))), third).await;
                    let early = log.borrow().is_empty();
                    sleep(full).await?;
                    result == Err(AioError::TimedOut) && early && *log.borrow() == ["finished"]
                }
                _ => {
                    let result = TaskGroup::run(|tg| {
                        let log = Rc::clone(&log);
                        async move {
                            for name in ["worker 1", "worker 2"] {
                                tg.spawn_named(name, worker(full, cleanup, Rc::clone(&log)));
                            }
                            tg.spawn_named("failing", async move {
                                sleep(third).await?;
                                Err::<(), _>(AioError::Raised("ValueError: bad input".into()))
                            });
                            Ok(())
                        }
                    })
                    .await;
                    result == Err(AioError::Group(vec![AioError::Raised("ValueError: bad input".into())]))
                        && *log.borrow() == ["cleaned up", "cleaned up"]
                }
            };
            Ok(u64::from(ok))
        })?;
        let count = |what| log.borrow().iter().filter(|&&w| w == what).count() as f64;
        context.record("cleaned up", "tasks", count("cleaned up"));
        context.record("finished", "tasks", count("finished"));
        Ok(outcome)
    }
}
