//! `micro-batching`: items batched in front of a service whose cost is fixed + per item, swept
//! over `max_size` at three `max_wait`s. Too small a batch cannot keep up (the fixed cost per
//! item is too high); past the knee every batch keeps up and a larger `max_size` only adds the
//! wait to fill it — bounded by `max_wait`, which, set too short, flushes batches too small to
//! keep up at any size.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Workload,
};
use crate::experiments::asyncio::event_loop::{clock_param, DemoClock};
use conlab_core::aio::{gather, now, sleep, spawn};
use conlab_core::resil::batcher::{Batcher, BatcherSpec};
use conlab_core::resil::Rng;
use conlab_core::stats::LogHistogram;

pub struct MicroBatching;

const THROUGHPUT: CurveSpec = CurveSpec {
    name: "throughput by batch size",
    x: "max_size (items)",
    y: "items served per s",
    log_x: true,
    log_y: false,
};

const LATENCY: CurveSpec =
    CurveSpec { name: "p99 latency by batch size", x: "max_size (items)", y: "p99 (ms)", log_x: true, log_y: true };

/// The variants: (id, max_wait as a multiple of the `max_wait_ms` parameter, help).
const WAITS: [(&str, f64, &str); 3] = [
    ("short-wait", 0.25, "max_wait = max_wait_ms / 4"),
    ("max-wait", 1.0, "max_wait = max_wait_ms"),
    ("long-wait", 4.0, "max_wait = 4 × max_wait_ms"),
];

/// A throughput at or above this share of the arrival rate keeps up.
const KEEPS_UP: f64 = 0.95;

impl Experiment for MicroBatching {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "micro-batching",
            title: "Micro-batching: throughput against latency as max_size and max_wait move",
            topic: super::NAME,
            concept: "micro-batching (max batch size, max wait)",
            teaches: "Items arrive at `rate` (Poisson) and wait in a batch that leaves when it holds `max_size` \
                      items or its first item has waited `max_wait`; one worker serves batches in turn, each taking \
                      `fixed_ms` + `per_item_us` per item. Full batches of n items serve n / (fixed + n·per_item) \
                      per second: at max_size 1 the fixed cost caps throughput below the rate and the queue grows \
                      without end. The knee is the smallest max_size that keeps up; past it larger batches only make \
                      items wait longer to fill them — up to max_wait. A max_wait too short flushes batches too \
                      small to keep up at any max_size: the two knobs work together. Each cell sweeps max_size over \
                      powers of two up to `max_size`; `knee` is the first that served ≥ 95% of the rate.",
            params: vec![
                ParamSpec::float("rate", 2000.0, 1.0, 1_000_000.0, "items/s", "items arriving (Poisson)"),
                ParamSpec::float("fixed_ms", 2.0, 0.0, 10_000.0, "ms", "a batch's fixed cost"),
                ParamSpec::float("per_item_us", 100.0, 0.0, 1_000_000.0, "µs", "its cost per item"),
                ParamSpec::int("max_size", 64, 1, 4096, "items", "the largest batch size swept"),
                ParamSpec::float("max_wait_ms", 5.0, 0.001, 10_000.0, "ms", "the middle variant's max_wait"),
                ParamSpec::int("duration_ms", 1000, 10, 600_000, "ms", "how long items arrive, per swept size"),
                clock_param("virtual"),
            ],
            variants: WAITS.iter().map(|(id, _, help)| VariantSpec::fixed(id, help)).collect(),
            baseline: "max-wait",
            fixed_duration: true,
            chart_metric: Some("knee"),
            quick: &["duration_ms=300", "max_size=16"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let ms = |name| Duration::from_secs_f64(params.float(name) / 1e3);
        Ok(Box::new(Batching {
            rate: params.float("rate"),
            fixed: ms("fixed_ms"),
            per_item: Duration::from_secs_f64(params.float("per_item_us") / 1e6),
            max_size: params.count("max_size"),
            max_wait: ms("max_wait_ms"),
            duration: ms("duration_ms"),
            clock: DemoClock::unscaled(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "one item per batch cannot keep up: at max_size 1 the batcher serves ≤ 1 / (fixed + per_item) items \
                 per second (+5%), below the rate (median runs)",
                |facts| {
                    let (rate, fixed, per_item) =
                        (facts.param("rate")?, facts.param("fixed_ms")? / 1e3, facts.param("per_item_us")? / 1e6);
                    let ceiling = 1.0 / (fixed + per_item);
                    if rate <= ceiling {
                        return Err(not_testable(format!("{rate}/s is within one-item batches' {ceiling:.0}/s")));
                    }
                    let served = facts.fixed_metric("max-wait", "throughput at 1")?.median;
                    verdict(
                        served <= ceiling * 1.05 && served < KEEPS_UP * rate,
                        format!("{served:.0} items/s at max_size 1 (ceiling {ceiling:.0}/s, rate {rate:.0}/s)"),
                        "the fixed cost is too small to matter",
                    )
                },
            ),
            Claim::new(
                "the knee is where batches get big enough: with max_wait_ms the first max_size that keeps up is \
                 the first whose batches — full, or as full as max_wait lets them fill — serve more than the rate \
                 (median runs)",
                |facts| {
                    let predicted = facts.fixed_metric("max-wait", "predicted knee")?.median;
                    let knee = facts.fixed_metric("max-wait", "knee")?.median;
                    verdict(
                        knee == predicted,
                        format!("kept up from max_size {knee:.0}; predicted {predicted:.0} (0: none swept)"),
                        "batches filled less than predicted (a real clock's late timers), or a size near capacity \
                         fell just short",
                    )
                },
            ),
            Claim::new(
                "past the knee a longer max_wait only adds latency: at the largest max_size the long wait's p99 is \
                 ≥ the max_wait_ms one's (median runs)",
                |facts| {
                    let long = facts.fixed_metric("long-wait", "p99 at largest")?.median;
                    let middle = facts.fixed_metric("max-wait", "p99 at largest")?.median;
                    if facts.fixed_metric("max-wait", "knee")?.median == 0.0 {
                        return Err(not_testable("no max_size kept up with max_wait_ms"));
                    }
                    verdict(
                        long >= middle,
                        format!("p99 {long:.1} ms with the long wait, {middle:.1} ms with max_wait_ms"),
                        "the batches filled before either timer",
                    )
                },
            ),
        ]
    }
}

struct Batching {
    rate: f64,
    fixed: Duration,
    per_item: Duration,
    max_size: usize,
    max_wait: Duration,
    duration: Duration,
    clock: DemoClock,
}

impl Batching {
    /// The swept sizes: powers of two up to `max_size`, and `max_size` itself.
    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> =
            (0..).map(|power| 1usize << power).take_while(|&size| size < self.max_size).collect();
        sizes.push(self.max_size);
        sizes
    }

    /// The first swept size whose batches serve more than the rate, filled to max_size or to
    /// what arrives in max_wait (one item plus rate × max_wait); 0 when none does.
    fn predicted_knee(&self, max_wait: Duration) -> usize {
        let filled = 1.0 + self.rate * max_wait.as_secs_f64();
        let keeps_up = |size: usize| {
            let items = filled.min(size as f64);
            items / (self.fixed.as_secs_f64() + self.per_item.as_secs_f64() * items) > self.rate
        };
        self.sizes().into_iter().find(|&size| keeps_up(size)).unwrap_or(0)
    }
}

impl Workload for Batching {
    fn work_units(&self) -> Option<f64> {
        None
    }

    fn expected(&self) -> Digest {
        1
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let factor = WAITS.iter().find(|(id, ..)| *id == variant).map_or(1.0, |(_, factor, _)| *factor);
        Ok(Box::new(BatchingCell { batching: self, max_wait: self.max_wait.mul_f64(factor), runs: 0 }))
    }
}

struct BatchingCell<'a> {
    batching: &'a Batching,
    max_wait: Duration,
    runs: u64,
}

/// One batcher run: items served per second and their latency.
struct Point {
    throughput: f64,
    latency: LogHistogram,
}

impl BatchingCell<'_> {
    fn point(&self, context: &RunContext, max_size: usize, seed: u64) -> Result<Point, RunError> {
        let batching = self.batching;
        let batcher = Batcher::new(BatcherSpec {
            max_size,
            max_wait: self.max_wait,
            fixed: batching.fixed,
            per_item: batching.per_item,
        });
        let latency = Rc::new(RefCell::new(LogHistogram::default()));
        let (rate, duration, recorded) = (batching.rate, batching.duration, Rc::clone(&latency));
        let (served, elapsed) = batching.clock.run(context, 0, async move {
            let mut rng = Rng::new(seed);
            let (start, mut due, mut handles) = (now(), Duration::ZERO, Vec::new());
            loop {
                due += Duration::from_secs_f64(-(1.0 - rng.uniform()).ln() / rate);
                if due >= duration {
                    break;
                }
                let early = (start + due).saturating_sub(now());
                if !early.is_zero() {
                    sleep(early).await?;
                }
                let (batcher, latency) = (batcher.clone(), Rc::clone(&recorded));
                handles.push(spawn(async move {
                    let arrived = now();
                    batcher.submit().await?;
                    latency.borrow_mut().record((now() - arrived).as_nanos() as u64);
                    Ok(())
                }));
            }
            let served = handles.len();
            gather(handles).await?;
            Ok((served, now() - start))
        })?;
        let latency = latency.borrow().clone();
        Ok(Point { throughput: served as f64 / elapsed.as_secs_f64().max(1e-9), latency })
    }
}

impl Cell for BatchingCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        self.runs += 1;
        let batching = self.batching;
        let sizes = batching.sizes();
        let mut knee = 0;
        let mut last_p99 = 0.0;
        for (index, &size) in sizes.iter().enumerate() {
            context.check_cancel()?;
            let point = self.point(context, size, self.runs * 1000 + index as u64)?;
            let p99 = point.latency.quantile(0.99) as f64 / 1e6;
            context.record_point(THROUGHPUT, size as f64, point.throughput);
            context.record_point(LATENCY, size as f64, p99);
            if size == 1 {
                context.record("throughput at 1", "items/s", point.throughput);
            }
            if knee == 0 && point.throughput >= KEEPS_UP * batching.rate {
                knee = size;
                context.record("p99 at knee", "ms", p99);
            }
            last_p99 = p99;
        }
        context.record("knee", "max_size", knee as f64);
        context.record("predicted knee", "max_size", batching.predicted_knee(self.max_wait) as f64);
        context.record("p99 at largest", "ms", last_p99);
        let full =
            batching.rate * batching.fixed.as_secs_f64() / (1.0 - batching.rate * batching.per_item.as_secs_f64());
        if full > 0.0 && full.is_finite() {
            for curve in [THROUGHPUT, LATENCY] {
                context.mark(curve, "full batches keep up from here", full);
            }
        }
        Ok(1)
    }
}
