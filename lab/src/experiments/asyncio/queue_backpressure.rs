//! `queue-backpressure`: producers and consumers joined by an `asyncio.Queue`; a bounded queue
//! makes fast producers wait instead of piling up items.

use std::cell::Cell as Counter;
use std::rc::Rc;
use std::time::Duration;

use super::event_loop::{clock_params, DemoClock};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::aio::prims::Queue;
use conlab_core::aio::{gather, note, now, sleep, spawn, AioError};

pub struct QueueBackpressure;

impl Experiment for QueueBackpressure {
    fn info(&self) -> ExperimentInfo {
        let mut params = vec![
            ParamSpec::int("producers", 2, 1, 1000, "tasks", "producer tasks"),
            ParamSpec::int("consumers", 2, 1, 1000, "tasks", "consumer tasks"),
            ParamSpec::int("maxsize", 3, 1, 100_000, "items", "the bounded queue's capacity"),
            ParamSpec::int("items", 10, 1, 100_000, "per producer", "items each producer puts"),
            ParamSpec::float("produce", 0.1, 0.0, 60.0, "book s", "time to produce one item"),
            ParamSpec::float("consume", 0.3, 0.0, 60.0, "book s", "time to consume one item"),
        ];
        params.extend(clock_params());
        ExperimentInfo {
            id: "queue-backpressure",
            title: "A bounded queue pushes back on fast producers",
            topic: super::NAME,
            concept: "asyncio.Queue(maxsize), put/get, task_done/join",
            teaches: "When producers outpace consumers, an unbounded queue just grows — memory is the only limit, and \
                      items wait longer and longer. A bounded queue makes `put` wait while it is full: producers slow \
                      to the consumers' pace, the depth never passes `maxsize`, and the total time is the same, \
                      because the consumers were the bottleneck all along. `queue.join()` waits until every item is \
                      marked `task_done`; then the consumers are cancelled, the asyncio idiom. `producer blocked` is \
                      the producers' total time inside `put`, `mean depth` the depth averaged over time, and the \
                      timeline marks every change of depth.",
            params,
            variants: vec![
                VariantSpec::fixed("bounded", "Queue(maxsize)"),
                VariantSpec::fixed("unbounded", "Queue() — no limit"),
            ],
            baseline: "unbounded",
            chart_metric: Some("max depth"),
            shows_timeline: true,
            quick: &["clock=virtual", "items=6"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Flow {
            producers: params.count("producers"),
            consumers: params.count("consumers"),
            maxsize: params.count("maxsize"),
            items: params.count("items"),
            produce: params.float("produce"),
            consume: params.float("consume"),
            clock: DemoClock::from(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("a bounded queue never holds more than maxsize items", |facts| {
                let maxsize = facts.param("maxsize")?;
                let deepest = facts.metric_max("bounded", 1, "max depth")?;
                verdict(
                    deepest <= maxsize,
                    format!("deepest {deepest:.0} under maxsize {maxsize}"),
                    "a bug in the queue",
                )
            }),
            Claim::new(
                "when consumers are slower, the bound pushes back: bounded producers wait, unbounded ones (almost) never (< 5% of it)",
                |facts| {
                    let (producers, consumers) = (facts.param("producers")?, facts.param("consumers")?);
                    let (produce, consume) = (facts.param("produce")?, facts.param("consume")?);
                    if produce * consumers >= consume * producers {
                        return Err(not_testable("the consumers keep up with these rates: nothing to push back"));
                    }
                    let (bounded, unbounded) = (
                        facts.metric("bounded", 1, "producer blocked")?,
                        facts.metric("unbounded", 1, "producer blocked")?,
                    );
                    verdict(
                        bounded > 0.0 && unbounded <= 0.05 * bounded,
                        format!("producers blocked {bounded:.2} s bounded, {unbounded:.3} s unbounded"),
                        "a bug in the queue's put",
                    )
                },
            ),
        ]
    }
}

#[derive(Clone, Copy)]
struct Flow {
    producers: usize,
    consumers: usize,
    maxsize: usize,
    items: usize,
    produce: f64,
    consume: f64,
    clock: DemoClock,
}

impl Workload for Flow {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every item consumed once.
    fn expected(&self) -> Digest {
        (self.producers * self.items) as u64
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(FlowCell { flow: *self, bounded: variant == "bounded" }))
    }
}

struct FlowCell {
    flow: Flow,
    bounded: bool,
}

/// What a run observed.
#[derive(Default)]
struct Observed {
    consumed: Counter<u64>,
    max_depth: Counter<usize>,
    blocked: Counter<Duration>,
    /// Depth integrated over loop time (item·s), and when the depth last changed.
    depth_area: Counter<f64>,
    depth_since: Counter<(usize, Duration)>,
}

impl Observed {
    /// The queue's depth just changed to `depth`: integrate, and mark it on the timeline.
    fn depth(&self, depth: usize) {
        let (previous, since) = self.depth_since.get();
        let now = now();
        self.depth_area.set(self.depth_area.get() + previous as f64 * (now - since).as_secs_f64());
        self.depth_since.set((depth, now));
        self.max_depth.set(self.max_depth.get().max(depth));
        note(|| format!("queue depth {depth}"));
    }
}

impl Cell for FlowCell {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let flow = self.flow;
        let queue = Rc::new(Queue::new(if self.bounded { flow.maxsize } else { 0 }));
        let observed = Rc::new(Observed::default());
        let seen = Rc::clone(&observed);
        let loop_time = flow.clock.run(context, 0, async move {
            let producers: Vec<_> = (0..flow.producers)
                .map(|_| {
                    let (queue, seen) = (Rc::clone(&queue), Rc::clone(&seen));
                    spawn(async move {
                        for item in 0..flow.items {
                            sleep(flow.clock.secs(flow.produce)).await?;
                            let start = now();
                            queue.put(item).await?;
                            seen.blocked.set(seen.blocked.get() + (now() - start));
                            seen.depth(queue.qsize());
                        }
                        Ok(())
                    })
                })
                .collect();
            let consumers: Vec<_> = (0..flow.consumers)
                .map(|_| {
                    let (queue, seen) = (Rc::clone(&queue), Rc::clone(&seen));
                    spawn(async move {
                        loop {
                            queue.get().await?;
                            seen.depth(queue.qsize());
                            sleep(flow.clock.secs(flow.consume)).await?;
                            seen.consumed.set(seen.consumed.get() + 1);
                            queue.task_done()?;
                        }
                    })
                })
                .collect::<Vec<conlab_core::aio::JoinHandle<()>>>();
            gather(producers).await?;
            queue.join().await?;
            consumers.iter().for_each(|consumer| _ = consumer.cancel());
            for consumer in consumers {
                if !matches!(consumer.await, Err(AioError::Cancelled)) {
                    return Err(AioError::Raised("a consumer stopped by itself".into()));
                }
            }
            Ok(now())
        })?;
        context.record("max depth", "items", observed.max_depth.get() as f64);
        context.record(
            "mean depth",
            "items",
            observed.depth_area.get() / loop_time.as_secs_f64().max(f64::MIN_POSITIVE),
        );
        context.record("producer blocked", "s", observed.blocked.get().as_secs_f64() / flow.clock.scale);
        Ok(observed.consumed.get())
    }
}
