//! `pipeline`: items through k stages, one thread per stage, bounded channels between them —
//! throughput set by the slowest stage, the others idle in proportion; and the fix of
//! replicating the bottleneck.

use std::time::Duration;

use crate::experiment::{
    run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamError, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Workload,
};
use conlab_core::ds::channel::{self, Receiver, Sender};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{check_team_size, Instant};
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::{lock, Mutex};
use conlab_core::trace::{Lane, SpanKind};

pub struct Pipeline;

const MAX_STAGES: usize = 6;
/// Utilisation metric names, by stage.
const BUSY: [&str; MAX_STAGES] =
    ["stage 1 busy", "stage 2 busy", "stage 3 busy", "stage 4 busy", "stage 5 busy", "stage 6 busy"];
/// Waits shorter than this are left off the timeline.
const DRAWN_WAIT: Duration = Duration::from_micros(20);

/// Records a span when tracing, skipping waits too short to see.
fn draw(lane: &mut Lane<'_>, kind: SpanKind, label: impl FnOnce() -> String, start: Instant, end: Instant) {
    if lane.is_enabled() && (kind == SpanKind::Run || end.duration_since(start) >= DRAWN_WAIT) {
        lane.record(kind, label(), start, end);
    }
}

impl Experiment for Pipeline {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "pipeline",
            title: "Pipeline: throughput is the slowest stage's",
            topic: super::NAME,
            concept:
                "pipeline parallelism (producer-consumer chains, Unix pipes, asyncio/threading queues between stages)",
            teaches: "Each item passes through k stages in order. One thread does all stages of one item after \
                      another: the time is items × the sum of the stage costs. One thread per stage, with bounded \
                      queues between, overlaps the stages: once the pipeline is full an item leaves every \
                      `slowest stage` ms, so the throughput is 1 / (slowest cost) — adding fast stages changes \
                      nothing, speeding up any stage but the bottleneck changes nothing; the other stages sit idle \
                      (their busy %) waiting on it, and the queue in front of it stays full. Replicating the \
                      bottleneck stage (several threads taking from the same queue) is the fix, until another \
                      stage becomes the slowest. Stage work is a sleep (like I/O) by default, so the law shows \
                      even with more stages than cores; switch to spin to see cores run out.",
            params: vec![
                ParamSpec::int("stages", 3, 2, MAX_STAGES as i64, "stages", "stages per item"),
                ParamSpec::float("cost_ms", 2.0, 0.01, 100.0, "ms", "each stage's work per item"),
                ParamSpec::int("bottleneck", 2, 0, MAX_STAGES as i64, "stage", "the slow stage (1-based; 0 = none)"),
                ParamSpec::float("factor", 3.0, 1.0, 10.0, "×", "how much slower the bottleneck is"),
                ParamSpec::int("items", 40, 1, 10_000, "items", "items through the pipeline"),
                ParamSpec::int("capacity", 2, 1, 1024, "items", "the queue between two stages"),
                ParamSpec::choice("work", "sleep", &["sleep", "spin"], "stage work: sleep (like I/O) or spin (a core)"),
            ],
            variants: vec![
                VariantSpec::fixed("sequential", "one thread does every stage of an item, item after item"),
                VariantSpec::fixed("pipeline", "one thread per stage, bounded channels between"),
                VariantSpec::fixed("replicated", "as pipeline, with ⌈factor⌉ threads on the bottleneck stage"),
            ],
            baseline: "sequential",
            work_unit: Some("items"),
            shows_timeline: true,
            quick: &["cost_ms=0.2", "items=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let stages = params.count("stages");
        let bottleneck = params.count("bottleneck");
        if bottleneck > stages {
            return Err(RunError::Param(ParamError {
                param: "bottleneck".into(),
                message: format!("expected 0 (none) or a stage from 1 to {stages} (`stages`), got `{bottleneck}`"),
            }));
        }
        let cost = Duration::from_secs_f64(params.float("cost_ms") / 1e3);
        let factor = params.float("factor");
        let costs = (1..=stages).map(|stage| if stage == bottleneck { cost.mul_f64(factor) } else { cost }).collect();
        Ok(Box::new(Stages {
            costs,
            bottleneck: bottleneck.checked_sub(1),
            replicas: factor.ceil() as usize,
            items: params.int("items") as u64,
            capacity: params.count("capacity"),
            spinner: (params.text("work") == "spin").then(Spinner::calibrate),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the slowest stage sets the pace: in the pipeline it is busy ≥ 80% of the run while every other stage \
                 is busy ≤ 60% (median runs)",
                |facts| {
                    let bottleneck = facts.param("bottleneck")? as usize;
                    let threads = facts.fixed_threads("pipeline")?;
                    let mut others = Vec::new();
                    let mut idle = true;
                    for stage in 1..=facts.param("stages")? as usize {
                        let busy = facts.metric("pipeline", threads, &format!("stage {stage} busy"))?;
                        if stage != bottleneck {
                            idle &= busy <= 60.0;
                            others.push(format!("{busy:.0}%"));
                        }
                    }
                    let slowest = facts.metric("pipeline", threads, &format!("stage {bottleneck} busy"))?;
                    verdict(
                        slowest >= 80.0 && idle,
                        format!("stage {bottleneck} busy {slowest:.0}%, the others {}", others.join(", ")),
                        "the stages cost about the same (raise factor)",
                    )
                },
            ),
            Claim::new(
                "overlap is bounded by the bottleneck: the pipeline runs ≥ 1.3× one thread's speed and at most the sum \
                 ÷ the slowest stage (+5%, fastest runs)",
                |facts| {
                    let bound = facts.fixed_metric("pipeline", "predicted")?.median
                        / facts.fixed_metric("sequential", "predicted")?.median;
                    let speedup = facts.fastest_fixed("sequential")? / facts.fastest_fixed("pipeline")?;
                    verdict(
                        (1.3..=1.05 * bound).contains(&speedup),
                        format!("pipeline {speedup:.2}× sequential, the stages allow {bound:.2}×"),
                        "the stages cost about the same, or sleeps overshoot on this machine",
                    )
                },
            ),
            Claim::new(
                "replicating the bottleneck is the fix: it runs ≥ 1.5× the plain pipeline's speed (fastest runs)",
                |facts| {
                    let gain = facts.fastest_fixed("pipeline")? / facts.fastest_fixed("replicated")?;
                    verdict(gain >= 1.5, format!("replicated {gain:.2}× the pipeline"), "another stage became the slowest")
                },
            ),
        ]
    }
}

struct Stages {
    costs: Vec<Duration>,
    /// 0-based.
    bottleneck: Option<usize>,
    replicas: usize,
    items: u64,
    capacity: usize,
    /// Spin for the stage work instead of sleeping.
    spinner: Option<Spinner>,
}

/// What stage `stage` makes of an item: order-sensitive, so a skipped or repeated stage shows.
fn transform(value: u64, stage: usize) -> u64 {
    value.wrapping_mul(31).wrapping_add(stage as u64 + 1)
}

impl Stages {
    fn work(&self, stage: usize, context: &RunContext) -> Result<(), RunError> {
        match self.spinner {
            Some(spinner) => {
                spinner.spin(self.costs[stage].as_nanos() as f64);
                context.check_cancel()
            }
            None => context.sleep(self.costs[stage]),
        }
    }

    /// Threads per stage in this variant.
    fn threads_per_stage(&self, variant: &str) -> Vec<usize> {
        (0..self.costs.len())
            .map(|stage| if variant == "replicated" && Some(stage) == self.bottleneck { self.replicas } else { 1 })
            .collect()
    }
}

impl Workload for Stages {
    fn work_units(&self) -> Option<f64> {
        Some(self.items as f64)
    }

    fn expected(&self) -> Digest {
        (1..=self.items).map(|id| (0..self.costs.len()).fold(id, transform)).fold(0, u64::wrapping_add)
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let threads = if variant == "sequential" { 1 } else { self.threads_per_stage(variant).iter().sum() };
        check_team_size(threads)?;
        Ok(Box::new(StagesCell { stages: self, variant: variant.to_string(), threads }))
    }
}

struct StagesCell<'s> {
    stages: &'s Stages,
    variant: String,
    threads: usize,
}

/// One stage thread's queues: where items come from (none for the first stage) and go to (none
/// for the last).
type Ends = (Option<Receiver<u64>>, Option<Sender<u64>>);

impl Cell for StagesCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let stages = self.stages;
        if self.variant == "sequential" {
            return self.run_sequentially(context);
        }
        let per_stage = stages.threads_per_stage(&self.variant);
        let links: Vec<(Sender<u64>, Receiver<u64>)> =
            (1..per_stage.len()).map(|_| channel::bounded(stages.capacity)).collect();
        // Member m runs stage roles[m]; each holds clones of its stage's ends, so a stage's
        // output disconnects once all its threads are done.
        let roles: Vec<usize> =
            per_stage.iter().enumerate().flat_map(|(stage, n)| std::iter::repeat_n(stage, *n)).collect();
        let ends: Vec<Mutex<Option<Ends>>> = roles
            .iter()
            .map(|&stage| {
                let input = stage.checked_sub(1).map(|link| links[link].1.clone());
                let output = links.get(stage).map(|link| link.0.clone());
                Mutex::new(Some((input, output)))
            })
            .collect();
        drop(links);
        let busy: Vec<AtomicU64> = per_stage.iter().map(|_| AtomicU64::new(0)).collect();
        let digest = AtomicU64::new(0);
        let start = Instant::now();
        run_members(roles.len(), |member| {
            let stage = roles[member.index];
            let (input, output) = lock(&ends[member.index]).take().expect("each member takes its ends once");
            self.stage_loop(stage, member.index, input, output, context, &busy[stage], &digest)
        })?;
        let wall = start.elapsed().as_secs_f64();
        for (stage, threads) in per_stage.iter().enumerate() {
            let seconds = busy[stage].load(Ordering::Relaxed) as f64 / 1e9;
            context.record(BUSY[stage], "%", 100.0 * seconds / (wall * *threads as f64));
        }
        let slowest =
            stages.costs.iter().zip(&per_stage).map(|(cost, n)| cost.as_secs_f64() / *n as f64).fold(0.0, f64::max);
        context.record("predicted", "items/s", 1.0 / slowest);
        Ok(digest.load(Ordering::Relaxed))
    }
}

impl StagesCell<'_> {
    fn run_sequentially(&self, context: &RunContext) -> Result<Digest, RunError> {
        let stages = self.stages;
        let mut lane = context.trace().lane(0);
        let mut digest = 0u64;
        for id in 1..=stages.items {
            let mut value = id;
            for stage in 0..stages.costs.len() {
                let start = Instant::now();
                stages.work(stage, context)?;
                draw(&mut lane, SpanKind::Run, || format!("item {id} stage {}", stage + 1), start, Instant::now());
                value = transform(value, stage);
            }
            digest = digest.wrapping_add(value);
        }
        let total: f64 = stages.costs.iter().map(Duration::as_secs_f64).sum();
        context.record("predicted", "items/s", 1.0 / total);
        Ok(digest)
    }

    /// One stage thread: take an item (or make one, at the first stage), work, pass it on,
    /// until the input runs dry; waits on the queues drawn on the timeline.
    #[allow(clippy::too_many_arguments)]
    fn stage_loop(
        &self,
        stage: usize,
        lane: usize,
        input: Option<Receiver<u64>>,
        output: Option<Sender<u64>>,
        context: &RunContext,
        busy: &AtomicU64,
        digest: &AtomicU64,
    ) -> Result<(), RunError> {
        let stages = self.stages;
        let mut lane = context.trace().lane(lane);
        let mut next_id = 1..=stages.items;
        loop {
            let value = match &input {
                None => match next_id.next() {
                    Some(id) => id,
                    None => return Ok(()),
                },
                Some(input) => {
                    let waiting = Instant::now();
                    let Ok(value) = input.recv() else { return Ok(()) };
                    draw(&mut lane, SpanKind::Idle, || format!("waiting for stage {stage}"), waiting, Instant::now());
                    value
                }
            };
            let start = Instant::now();
            stages.work(stage, context)?;
            let end = Instant::now();
            busy.fetch_add(end.duration_since(start).as_nanos() as u64, Ordering::Relaxed);
            draw(&mut lane, SpanKind::Run, || format!("stage {}", stage + 1), start, end);
            let value = transform(value, stage);
            match &output {
                None => {
                    digest.fetch_add(value, Ordering::Relaxed);
                }
                Some(output) => {
                    if let Err(channel::Disconnected(_)) = output.send(value) {
                        return Ok(());
                    }
                    draw(&mut lane, SpanKind::Wait, || format!("stage {} full", stage + 2), end, Instant::now());
                }
            }
        }
    }
}
