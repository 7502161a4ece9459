//! `async-pipeline`: stages connected by bounded queues overlap; a chain that finishes each item
//! before starting the next does not.

use std::rc::Rc;

use super::event_loop::{clock_params, DemoClock};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::aio::prims::Queue;
use conlab_core::aio::{gather, sleep, spawn_named, AioResult, JoinHandle};

pub struct AsyncPipeline;

impl Experiment for AsyncPipeline {
    fn info(&self) -> ExperimentInfo {
        let mut params = vec![
            ParamSpec::int("items", 10, 1, 100_000, "items", "items pushed through"),
            ParamSpec::choice(
                "stages",
                "0.1,0.3,0.2",
                &["0.1,0.3,0.2", "0.2,0.2,0.2", "0.1,0.1,0.5,0.1"],
                "each stage's time per item, book s",
            ),
            ParamSpec::int("maxsize", 2, 1, 10_000, "items", "capacity of the queue between two stages"),
        ];
        params.extend(clock_params());
        ExperimentInfo {
            id: "async-pipeline",
            title: "An async pipeline: stages overlap, the slowest sets the pace",
            topic: super::NAME,
            concept: "producer/consumer pipelines with asyncio.Queue; async generators",
            teaches:
                "Passing each item through every stage before taking the next (a chain of async generators) costs \
                      items × the sum of the stages. With one task per stage and bounded queues between them, the \
                      stages work on different items at once: after the first item fills the pipe, one item leaves per \
                      slowest stage — about (items − 1) × the slowest + the sum. The bounded queues keep a fast stage \
                      from running ahead; the timeline shows each stage busy, waiting on `Queue.get` (starved) or \
                      `Queue.put` (blocked).",
            params,
            variants: vec![
                VariantSpec::fixed("chain", "every stage in turn for each item"),
                VariantSpec::fixed("pipeline", "a task per stage, bounded queues between"),
            ],
            baseline: "chain",
            work_unit: Some("items"),
            chart_metric: Some("loop time"),
            shows_timeline: true,
            quick: &["clock=virtual", "items=5"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let stages = params.text("stages").split(',').map(|s| s.trim().parse().expect("a preset of numbers")).collect();
        Ok(Box::new(Pipeline {
            items: params.count("items"),
            stages,
            maxsize: params.count("maxsize"),
            clock: DemoClock::from(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![Claim::new(
            "overlap pays: the chain takes items × the stages' sum and the pipeline (items − 1) × the slowest + the \
             sum, each within 10% (loop time, median runs)",
            |facts| {
                let items = facts.param("items")?;
                let stages: Vec<f64> = facts.text("stages")?.split(',').filter_map(|s| s.trim().parse().ok()).collect();
                let (sum, slowest) = (stages.iter().sum::<f64>(), stages.iter().copied().fold(0.0, f64::max));
                let (chain, pipeline) = (items * sum, (items - 1.0) * slowest + sum);
                let measured = |variant| facts.fixed_metric(variant, "loop time").map(|m| m.median);
                let (got_chain, got_pipeline) = (measured("chain")?, measured("pipeline")?);
                let near = |got: f64, want: f64| (got - want).abs() <= 0.1 * want;
                verdict(
                    near(got_chain, chain) && near(got_pipeline, pipeline),
                    format!(
                        "chain {got_chain:.2} s (law {chain:.2}), pipeline {got_pipeline:.2} s (law {pipeline:.2})"
                    ),
                    "another program held the loop's core (on the real clock)",
                )
            },
        )]
    }
}

struct Pipeline {
    items: usize,
    /// Book seconds per item, per stage.
    stages: Vec<f64>,
    maxsize: usize,
    clock: DemoClock,
}

impl Workload for Pipeline {
    fn work_units(&self) -> Option<f64> {
        Some(self.items as f64)
    }

    /// The items' sum, each having passed every stage (a stage adds 1).
    fn expected(&self) -> Digest {
        (0..self.items as u64).map(|item| item + self.stages.len() as u64).sum()
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(PipelineCell { pipeline: self, overlapped: variant == "pipeline" }))
    }
}

struct PipelineCell<'a> {
    pipeline: &'a Pipeline,
    overlapped: bool,
}

impl Cell for PipelineCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Pipeline { items, maxsize, clock, .. } = *self.pipeline;
        let costs: Vec<_> = self.pipeline.stages.iter().map(|&s| clock.secs(s)).collect();
        let overlapped = self.overlapped;
        clock.run(context, 0, async move {
            if !overlapped {
                let mut total = 0;
                for item in 0..items as u64 {
                    let mut value = item;
                    for cost in &costs {
                        sleep(*cost).await?;
                        value += 1;
                    }
                    total += value;
                }
                return Ok(total);
            }
            // queues[0] feeds stage 0; the last queue collects the results.
            let queues: Vec<Rc<Queue<Option<u64>>>> = (0..=costs.len()).map(|_| Rc::new(Queue::new(maxsize))).collect();
            let stages: Vec<JoinHandle<()>> = costs
                .iter()
                .enumerate()
                .map(|(index, &cost)| {
                    let (input, output) = (Rc::clone(&queues[index]), Rc::clone(&queues[index + 1]));
                    spawn_named(format!("stage {}", index + 1), async move {
                        while let Some(value) = input.get().await? {
                            sleep(cost).await?;
                            output.put(Some(value + 1)).await?;
                        }
                        output.put(None).await
                    })
                })
                .collect();
            let (first, last) = (Rc::clone(&queues[0]), Rc::clone(&queues[costs.len()]));
            let source = spawn_named("source", async move {
                for item in 0..items as u64 {
                    first.put(Some(item)).await?;
                }
                first.put(None).await
            });
            let mut total = 0;
            while let Some(value) = last.get().await? {
                total += value;
            }
            source.await?;
            gather(stages).await?;
            AioResult::Ok(total)
        })
    }
}
