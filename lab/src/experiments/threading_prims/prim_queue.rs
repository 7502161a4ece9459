//! `prim-queue`: `queue.Queue(maxsize)` between a producer and consumers — `put` blocks while
//! it is full (backpressure), `join` waits for every `task_done` — versus no bound, and a
//! consumer that forgets `task_done`.

use std::time::Duration;

use super::prim_gallery::{blocking, millis, patiently, team, timeout, timeout_param, work};
use crate::experiment::{
    not_testable, run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Workload,
};
use conlab_core::platform::Instant;
use conlab_core::prims::{Order, PrimError, Queue};
use conlab_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use conlab_core::trace::{Lane, SpanKind};

pub struct PrimQueue;

/// The item that tells a consumer to stop (`None` in the books' listings).
const STOP: u64 = u64::MAX;

impl Experiment for PrimQueue {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-queue",
            title: "queue.Queue(maxsize): backpressure, task_done and join",
            topic: super::NAME,
            concept: "queue.Queue (put / get / task_done / join), bounded buffers",
            teaches: "The main thread puts `items` (one every `produce_ms`) into a `Queue(maxsize)`; consumers take \
                      them and spend `consume_ms` on each, then call `task_done()`. Consumers are slower, so the queue \
                      fills: `put()` blocks while it is full — backpressure — and the producer's waits (the timeline's \
                      wait spans on thread 0) add up to `producer blocked`, while the depth chart sits at maxsize. \
                      Then `q.join()` waits until every item was marked done, and the stop items go in. With no bound \
                      (`maxsize=0`) the producer never waits and the depth climbs by the difference of the rates — to \
                      items × (1 − consumers × produce_ms / consume_ms), half of them here: the memory slow consumers \
                      cost. A consumer that forgets `task_done()` leaves `join()` waiting forever; here \
                      its timeout reports how many tasks were never marked done.",
            params: vec![
                ParamSpec::int("consumers", 2, 1, 15, "threads", "consumer threads"),
                ParamSpec::int("items", 40, 1, 100_000, "", "items the main thread puts"),
                ParamSpec::int("maxsize", 4, 1, 10_000, "items", "the bounded queue's capacity"),
                ParamSpec::float("produce_ms", 0.5, 0.0, 1_000.0, "ms", "time to make one item"),
                ParamSpec::float("consume_ms", 2.0, 0.0, 1_000.0, "ms", "time a consumer spends on one item"),
                timeout_param(),
            ],
            variants: vec![
                VariantSpec::fixed("bounded", "Queue(maxsize): put() waits while it is full"),
                VariantSpec::fixed("unbounded", "Queue() (maxsize=0): put() never waits"),
                VariantSpec::fixed("no-task-done", "Queue(maxsize), but the consumers never call task_done()")
                    .unchecked("join() never returns on purpose: its timeout reports the unfinished tasks"),
            ],
            baseline: "bounded",
            work_unit: Some("items"),
            chart_metric: Some("max depth"),
            shows_timeline: true,
            quick: &["items=16", "consume_ms=1", "produce_ms=0.2", "timeout_ms=50"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Line {
            consumers: params.count("consumers"),
            items: params.count("items"),
            maxsize: params.count("maxsize"),
            produce: millis(params.float("produce_ms")),
            consume: millis(params.float("consume_ms")),
            timeout: timeout(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "put() blocks on a full queue: the bounded queue never holds more than maxsize, and the producer waits",
                |facts| {
                    let maxsize = facts.param("maxsize")?;
                    let deepest = facts.fixed_metric("bounded", "max depth")?.max;
                    let blocked = facts.fixed_metric("bounded", "producer blocked")?.min;
                    verdict(
                        deepest <= maxsize && blocked > 0.0,
                        format!(
                            "deepest {deepest:.0} of maxsize {maxsize}; the producer blocked ≥ {blocked:.1} ms a run"
                        ),
                        "the consumers kept up (raise consume_ms)",
                    )
                },
            ),
            Claim::new(
                "without a bound the queue grows by the rates' difference: its peak is within 30% of items × (1 − \
                 consumers × produce_ms / consume_ms)",
                |facts| {
                    let share =
                        1.0 - facts.param("consumers")? * facts.param("produce_ms")? / facts.param("consume_ms")?;
                    if share <= 0.0 {
                        return Err(not_testable("the consumers are as fast as the producer: nothing piles up"));
                    }
                    let expected = facts.param("items")? * share;
                    let deepest = facts.fixed_metric("unbounded", "max depth")?.median;
                    verdict(
                        (deepest - expected).abs() <= 0.3 * expected,
                        format!("peak depth {deepest:.0} (median run) against {expected:.0} from the rates"),
                        "another program slowed the producer or the consumers",
                    )
                },
            ),
            Claim::new("a forgotten task_done() leaves join() waiting until its timeout", |facts| {
                let timeout = facts.param("timeout_ms")?;
                let waited = facts.fixed_metric("no-task-done", "join() waited")?.min;
                verdict(
                    waited >= timeout,
                    format!("join() waited {waited:.0} ms (shortest run) with a {timeout} ms timeout"),
                    "a bug in the Queue model",
                )
            }),
        ]
    }
}

struct Line {
    consumers: usize,
    items: usize,
    maxsize: usize,
    produce: Duration,
    consume: Duration,
    timeout: Duration,
}

impl Workload for Line {
    fn work_units(&self) -> Option<f64> {
        Some(self.items as f64)
    }

    /// Every item consumed.
    fn expected(&self) -> Digest {
        self.items as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(LineCell {
            line: self,
            threads: team(self.consumers + 1)?,
            maxsize: if variant == "unbounded" { 0 } else { self.maxsize },
            marks_done: variant != "no-task-done",
        }))
    }
}

struct LineCell<'a> {
    line: &'a Line,
    threads: usize,
    /// 0: unbounded.
    maxsize: usize,
    /// Consumers call `task_done()`.
    marks_done: bool,
}

#[derive(Default)]
struct Tally {
    consumed: AtomicUsize,
    deepest: AtomicUsize,
    producer_blocked_ns: AtomicU64,
    join_ns: AtomicU64,
}

fn depth_mark(queue: &Queue<u64>, tally: &Tally, lane: &mut Lane<'_>) {
    let depth = queue.qsize();
    tally.deepest.fetch_max(depth, Ordering::Relaxed);
    let now = Instant::now();
    lane.record(SpanKind::Mark, format!("queue depth {depth}"), now, now);
}

impl LineCell<'_> {
    /// `q.put(item)`: at once when there is room, else a drawn wait until there is.
    fn put(
        &self,
        queue: &Queue<u64>,
        item: u64,
        tally: &Tally,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<(), RunError> {
        if queue.put(item, Some(Duration::ZERO)).is_ok() {
            return Ok(());
        }
        let asked = Instant::now();
        let room = blocking(
            lane,
            "q.put() — the queue is full",
            || patiently(context, self.line.timeout, |slice| queue.put(item, Some(slice)).ok()),
            |room| if matches!(room, Ok(Some(()))) { "room".into() } else { "still full".into() },
        )?;
        tally.producer_blocked_ns.fetch_add(asked.elapsed().as_nanos() as u64, Ordering::Relaxed);
        room.ok_or_else(|| {
            RunError::Failed(format!(
                "q.put() found no room within timeout_ms={}: raise it",
                self.line.timeout.as_millis()
            ))
        })
    }

    fn produce(
        &self,
        queue: &Queue<u64>,
        tally: &Tally,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<(), RunError> {
        for item in 0..self.line.items as u64 {
            work(context, lane, || format!("making item {item}"), self.line.produce)?;
            self.put(queue, item, tally, lane, context)?;
            depth_mark(queue, tally, lane);
        }
        let asked = Instant::now();
        let joined = blocking(
            lane,
            "q.join()",
            || patiently(context, self.line.timeout, |slice| queue.join(Some(slice)).then_some(())),
            |joined| if matches!(joined, Ok(Some(()))) { "all tasks done".into() } else { "timed out".into() },
        )?;
        let waited = asked.elapsed();
        tally.join_ns.store(waited.as_nanos() as u64, Ordering::Relaxed);
        if joined.is_none() {
            context.report(format!(
                "q.join() gave up after waiting {:.0} ms (its timeout) with {} of the {} tasks put never marked done: \
                 every get() needs its task_done(), or join() waits forever",
                waited.as_secs_f64() * 1e3,
                queue.unfinished(),
                self.line.items
            ));
        }
        for _ in 0..self.line.consumers {
            self.put(queue, STOP, tally, lane, context)?;
        }
        Ok(())
    }

    fn consume(
        &self,
        queue: &Queue<u64>,
        tally: &Tally,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<(), RunError> {
        loop {
            let got = match queue.get(Some(Duration::ZERO)) {
                Ok(item) => Some(item),
                // Twice the timeout: without task_done() the stop items come only after join()'s
                // own timeout, which began before the queue ran dry — a wait as long as join()'s
                // outlasted it by no more than the last items' handling (a millisecond at the
                // quick preset; a browser worker's timer can be later than that).
                Err(_) => blocking(
                    lane,
                    "q.get() — the queue is empty",
                    || patiently(context, 2 * self.line.timeout, |slice| queue.get(Some(slice)).ok()),
                    |got| if matches!(got, Ok(Some(_))) { "an item".into() } else { "nothing".into() },
                )?,
            };
            let Some(item) = got else {
                return Err(RunError::Failed(format!(
                    "q.get() got nothing within twice timeout_ms={}: raise it",
                    self.line.timeout.as_millis()
                )));
            };
            if item == STOP {
                return self.done(queue);
            }
            depth_mark(queue, tally, lane);
            work(context, lane, || format!("handling item {item}"), self.line.consume)?;
            tally.consumed.fetch_add(1, Ordering::Relaxed);
            if self.marks_done {
                self.done(queue)?;
            }
        }
    }

    fn done(&self, queue: &Queue<u64>) -> Result<(), RunError> {
        match queue.task_done() {
            // Without task_done() for the items, the stop items may find the count at zero.
            Ok(()) | Err(PrimError::TooManyTaskDone) => Ok(()),
            Err(error) => Err(RunError::Failed(error.to_string())),
        }
    }
}

impl Cell for LineCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let queue = Queue::new(self.maxsize, Order::Fifo);
        let tally = Tally::default();
        run_members(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            if member.index == 0 {
                self.produce(&queue, &tally, &mut lane, context)
            } else {
                self.consume(&queue, &tally, &mut lane, context)
            }
        })?;
        context.record("max depth", "items", tally.deepest.load(Ordering::Relaxed) as f64);
        context.record("producer blocked", "ms", tally.producer_blocked_ns.load(Ordering::Relaxed) as f64 / 1e6);
        context.record("join() waited", "ms", tally.join_ns.load(Ordering::Relaxed) as f64 / 1e6);
        Ok(tally.consumed.load(Ordering::Relaxed) as u64)
    }
}
