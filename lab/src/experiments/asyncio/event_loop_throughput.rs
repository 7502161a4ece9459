//! `event-loop-throughput`: what the event loop itself costs per task, per switch, per timer.

use std::time::Duration;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::aio::{gather, sleep, spawn, yield_now, AioResult, EventLoop, VirtualClock};
use conlab_core::platform::Instant;

pub struct EventLoopThroughput;

/// Task switches per task in the `yield` variant.
const YIELDS: u64 = 10;

impl Experiment for EventLoopThroughput {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "event-loop-throughput",
            title: "How fast is the event loop? Tasks, switches and timers per second",
            topic: super::NAME,
            concept: "event loop overhead",
            teaches: "Coroutines are cheap, not free: creating a task, queueing it, polling it and collecting its \
                      result costs a few hundred nanoseconds here (CPython's asyncio: several microseconds per task, \
                      measured by `native/python/asyncio_tasks.py`); a switch at an `await` costs less; a timer costs \
                      a heap push and pop. These numbers bound how fine-grained async work can usefully be. The timers \
                      run on the virtual clock, so only the loop's bookkeeping is timed, never the waiting. Recording \
                      a timeline (off by default here) adds its own cost to every step.",
            params: vec![ParamSpec::int("tasks", 100_000, 1, 10_000_000, "tasks", "tasks per run")],
            variants: vec![
                VariantSpec::fixed("spawn", "create_task + gather of tasks that return at once"),
                VariantSpec::fixed("yield", "tasks that each await sleep(0) 10 times"),
                VariantSpec::fixed("timers", "tasks that each sleep a different time (virtual clock)"),
            ],
            baseline: "spawn",
            work_unit: Some("tasks"),
            chart_metric: Some("ns per task"),
            quick: &["tasks=2000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Load(params.count("tasks"))))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "coroutines are cheap: creating, running and collecting a task costs under 5 µs (median run)",
                |facts| {
                    let spawn = facts.fixed_metric("spawn", "ns per task")?.median;
                    verdict(spawn < 5_000.0, format!("{spawn:.0} ns per task"), "another program held the core")
                },
            ),
            Claim::new(
                "a switch at an await costs less than a task: each of the yield variant's 10 awaits adds less than a \
                 whole spawn (median runs)",
                |facts| {
                    let spawn = facts.fixed_metric("spawn", "ns per task")?.median;
                    let switch = (facts.fixed_metric("yield", "ns per task")?.median - spawn) / 10.0;
                    verdict(
                        switch < spawn,
                        format!("a switch {switch:.0} ns, a task {spawn:.0} ns"),
                        "another program slowed the yield run",
                    )
                },
            ),
        ]
    }
}

struct Load(usize);

impl Workload for Load {
    fn work_units(&self) -> Option<f64> {
        Some(self.0 as f64)
    }

    fn expected(&self) -> Digest {
        self.0 as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(LoadCell { tasks: self.0, variant: variant.to_string() }))
    }
}

struct LoadCell {
    tasks: usize,
    variant: String,
}

/// `tasks` tasks of the variant's kind, gathered; the count of those that finished.
async fn many_tasks(variant: String, tasks: usize) -> AioResult<u64> {
    let handles = (0..tasks)
        .map(|i| match variant.as_str() {
            "yield" => spawn(async {
                for _ in 0..YIELDS {
                    yield_now().await?;
                }
                Ok(1u64)
            }),
            "timers" => {
                spawn(async move { sleep(Duration::from_nanos(1 + (i as u64 * 7919) % 1_000_000)).await.map(|()| 1) })
            }
            _ => spawn(async { Ok(1u64) }),
        })
        .collect();
    Ok(gather(handles).await?.iter().sum())
}

impl Cell for LoadCell {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let start = Instant::now();
        // The virtual clock never waits: only the loop's own work is timed (and the recording,
        // if timelines are asked for — which slows it down).
        let outcome = EventLoop::new(VirtualClock::new(), context.trace().is_enabled()).run(
            many_tasks(self.variant.clone(), self.tasks),
            context.trace(),
            &|| context.check_cancel().is_ok(),
        );
        let done = outcome?;
        context.record("ns per task", "ns", start.elapsed().as_secs_f64() * 1e9 / self.tasks as f64);
        Ok(done)
    }
}
