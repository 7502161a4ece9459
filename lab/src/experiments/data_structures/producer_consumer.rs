//! `producer-consumer`: P producers and C consumers through one bounded buffer — the textbook
//! `Mutex` + two `Condvar`s, our blocking channel, our lock-free ring (spinning when full or
//! empty) and our unbounded Michael–Scott queue — with throughput, latency and queue depth.

use std::collections::VecDeque;
use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    TimeUnit, VariantSpec, Workload,
};
use conlab_core::ds::channel::{self, Receiver, Sender};
use conlab_core::ds::msqueue::MsQueue;
use conlab_core::ds::ring::Ring;
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{self, check_team_size, run_team, Instant};
use conlab_core::stats::LogHistogram;
use conlab_core::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use conlab_core::sync::{lock, spin_yield, Condvar, Mutex};
use conlab_core::trace::SpanKind;

pub struct ProducerConsumer;

/// An item: its id and when it was put (ns since the platform epoch).
type Item = (u64, u64);

/// The item that tells a consumer to stop.
const STOP: u64 = u64::MAX;

/// Pops between two depth samples (and timeline marks) per consumer.
const SAMPLE_EVERY: u64 = 256;

/// Waits shorter than this are not drawn on the timeline (they would be thousands of slivers).
const DRAWN_WAIT: Duration = Duration::from_micros(20);

impl Experiment for ProducerConsumer {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "producer-consumer",
            title: "Producer-consumer: a bounded buffer four ways",
            topic: super::NAME,
            concept: "the bounded buffer (Dijkstra 1965; queue.Queue(maxsize), BlockingQueue)",
            teaches: "Producers put items into one buffer and consumers take them out, each doing `work_ns` of \
                      work per item. When consumers are slower, the buffer fills and a bounded buffer makes the \
                      producers wait (backpressure): the depth sits at the capacity and an item's latency is the \
                      queue's length times the service time. The textbook buffer — a mutex and two condition \
                      variables — puts a waiting thread to sleep; our channel does the same over a lock-free ring; \
                      the bare ring spins instead (fast while there are spare cores, wasteful when there are not); \
                      the Michael–Scott queue is unbounded, so producers never wait and the depth — and latency — \
                      grow without limit. Compare throughput and p99 latency, and watch the depth marks and the \
                      waits on the timeline.",
            params: vec![
                ParamSpec::int("producers", 2, 1, 16, "threads", "producer threads"),
                ParamSpec::int("consumers", 2, 1, 16, "threads", "consumer threads"),
                ParamSpec::int(
                    "capacity",
                    64,
                    1,
                    1 << 16,
                    "items",
                    "buffer capacity (the Michael–Scott queue has none)",
                ),
                ParamSpec::int("items", 50_000, 1, 10_000_000, "per producer", "items each producer puts"),
                ParamSpec::int("work_ns", 500, 0, 1_000_000, "ns", "a consumer's work per item"),
            ],
            variants: vec![
                VariantSpec::fixed("mutex-condvar", "Mutex<VecDeque> + not_full / not_empty condition variables"),
                VariantSpec::fixed("channel", "our channel (ds::channel): the ring plus parking on event counts"),
                VariantSpec::fixed("ring", "our Vyukov ring (ds::ring), spinning while full or empty"),
                VariantSpec::fixed("ms-queue", "our Michael–Scott queue (ds::msqueue): unbounded, no backpressure"),
            ],
            baseline: "mutex-condvar",
            work_unit: Some("items"),
            shows_timeline: true,
            quick: &["items=2000", "capacity=8"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let shape = Shape {
            producers: params.count("producers"),
            consumers: params.count("consumers"),
            capacity: params.count("capacity"),
            items: params.int("items") as u64,
            work_ns: params.float("work_ns"),
            spinner: Spinner::calibrate(),
        };
        Ok(Box::new(shape))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "a bounded buffer never holds more than its capacity (the ring and the channel round it up to a power of \
                 two)",
                |facts| {
                    let capacity = facts.param("capacity")? as usize;
                    let mut seen = Vec::new();
                    let mut over = false;
                    for (variant, holds) in
                        [("mutex-condvar", capacity), ("channel", capacity.next_power_of_two()), ("ring", capacity.next_power_of_two())]
                    {
                        let Ok(threads) = facts.fixed_threads(variant) else { continue };
                        let deepest = facts.metric_max(variant, threads, "max depth")?;
                        over |= deepest > holds as f64;
                        seen.push(format!("{variant} {deepest:.0} of {holds}"));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("no bounded buffer ran"));
                    }
                    verdict(!over, format!("deepest: {}", seen.join(", ")), "a bug in the buffer or in how its depth is read")
                },
            ),
            Claim::new("consumers slower than producers: the unbounded MS queue grows past the bounded capacity", |facts| {
                let capacity = facts.param("capacity")?;
                let threads = facts.fixed_threads("ms-queue")?;
                let deepest = facts.metric_max("ms-queue", threads, "max depth")?;
                verdict(
                    deepest > capacity,
                    format!("ms-queue deepest {deepest:.0} against capacity {capacity}"),
                    "the consumers kept up (raise `work_ns` or the producers)",
                )
            }),
        ]
    }
}

struct Shape {
    producers: usize,
    consumers: usize,
    capacity: usize,
    items: u64,
    work_ns: f64,
    spinner: Spinner,
}

/// Producer p's i-th item.
fn id(producer: usize, i: u64) -> u64 {
    (producer as u64) << 40 | i
}

impl Workload for Shape {
    fn work_units(&self) -> Option<f64> {
        Some((self.items * self.producers as u64) as f64)
    }

    /// The ids of every item, summed: each taken exactly once.
    fn expected(&self) -> Digest {
        (0..self.producers).flat_map(|p| (0..self.items).map(move |i| id(p, i))).fold(0, u64::wrapping_add)
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        check_team_size(self.producers + self.consumers)?;
        Ok(Box::new(BufferCell { shape: self, variant: variant.to_string() }))
    }
}

/// A buffer as producers and consumers see it: `put` waits while full (if bounded), `take`
/// while empty; the `try_` forms never wait.
trait Buffer: Sync {
    /// Items the buffer holds now, as it holds them (never past its capacity); `None` for an
    /// unbounded queue that does not count them.
    fn depth(&self) -> Option<usize>;
    fn try_put(&self, item: Item) -> Result<(), Item>;
    fn put(&self, item: Item);
    fn try_take(&self) -> Option<Item>;
    fn take(&self) -> Item;
}

/// The textbook bounded buffer.
struct Monitor {
    queue: Mutex<VecDeque<Item>>,
    capacity: usize,
    not_full: Condvar,
    not_empty: Condvar,
}

impl Buffer for Monitor {
    fn depth(&self) -> Option<usize> {
        Some(lock(&self.queue).len())
    }
    fn try_put(&self, item: Item) -> Result<(), Item> {
        let mut queue = lock(&self.queue);
        if queue.len() >= self.capacity {
            return Err(item);
        }
        queue.push_back(item);
        self.not_empty.notify_one();
        Ok(())
    }
    fn put(&self, item: Item) {
        let mut queue = lock(&self.queue);
        while queue.len() >= self.capacity {
            queue = self.not_full.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        queue.push_back(item);
        self.not_empty.notify_one();
    }
    fn try_take(&self) -> Option<Item> {
        let item = lock(&self.queue).pop_front()?;
        self.not_full.notify_one();
        Some(item)
    }
    fn take(&self) -> Item {
        let mut queue = lock(&self.queue);
        loop {
            if let Some(item) = queue.pop_front() {
                self.not_full.notify_one();
                return item;
            }
            queue = self.not_empty.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Buffer for (Sender<Item>, Receiver<Item>) {
    fn depth(&self) -> Option<usize> {
        Some(self.1.len())
    }
    fn try_put(&self, item: Item) -> Result<(), Item> {
        self.0.try_send(item)
    }
    fn put(&self, item: Item) {
        // The receiver lives as long as the buffer: never disconnected.
        let _ = self.0.send(item);
    }
    fn try_take(&self) -> Option<Item> {
        self.1.try_recv()
    }
    fn take(&self) -> Item {
        self.1.recv().unwrap_or((STOP, 0))
    }
}

/// Retries `attempt` until it succeeds, spinning (and letting other threads run now and then,
/// as a spinning consumer on an oversubscribed machine must).
fn spin_until<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0u32;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        spins += 1;
        if spins % 64 == 0 {
            platform::yield_now();
        } else {
            spin_yield();
        }
    }
}

impl Buffer for Ring<Item> {
    fn depth(&self) -> Option<usize> {
        Some(self.len())
    }
    fn try_put(&self, item: Item) -> Result<(), Item> {
        self.push(item)
    }
    fn put(&self, item: Item) {
        let mut item = Some(item);
        spin_until(|| match self.push(item.take().expect("kept until pushed")) {
            Ok(()) => Some(()),
            Err(back) => {
                item = Some(back);
                None
            }
        });
    }
    fn try_take(&self) -> Option<Item> {
        self.pop()
    }
    fn take(&self) -> Item {
        spin_until(|| self.pop())
    }
}

impl Buffer for MsQueue<Item> {
    fn depth(&self) -> Option<usize> {
        None
    }
    fn try_put(&self, item: Item) -> Result<(), Item> {
        self.push(item);
        Ok(())
    }
    fn put(&self, item: Item) {
        self.push(item);
    }
    fn try_take(&self) -> Option<Item> {
        self.pop()
    }
    fn take(&self) -> Item {
        spin_until(|| self.pop())
    }
}

struct BufferCell<'s> {
    shape: &'s Shape,
    variant: String,
}

impl BufferCell<'_> {
    fn buffer(&self) -> Box<dyn Buffer> {
        let capacity = self.shape.capacity;
        match self.variant.as_str() {
            "channel" => Box::new(channel::bounded(capacity)),
            "ring" => Box::new(Ring::new(capacity)),
            "ms-queue" => Box::new(MsQueue::new()),
            _ => Box::new(Monitor {
                queue: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
                not_full: Condvar::new(),
                not_empty: Condvar::new(),
            }),
        }
    }
}

/// What one consumer saw.
#[derive(Default)]
struct Taken {
    id_sum: u64,
    latency_ns: LogHistogram,
    depth_samples: Vec<usize>,
    waited: Duration,
}

impl Cell for BufferCell<'_> {
    fn threads(&self) -> usize {
        self.shape.producers + self.shape.consumers
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let shape = self.shape;
        let buffer = self.buffer();
        let buffer = &*buffer;
        // Items put minus items taken, as the threads count them: the MS queue's depth (briefly negative when a
        // take is counted before the put it took).
        let depth = AtomicIsize::new(0);
        let producers_left = AtomicUsize::new(shape.producers);
        let producer_waits = Mutex::new(Duration::ZERO);
        let taken: Mutex<Vec<Taken>> = Mutex::new(Vec::new());
        run_team(shape.producers + shape.consumers, |member| {
            let mut lane = context.trace().lane(member.index);
            let mut timed = |kind: SpanKind, label: &'static str, wait: &mut dyn FnMut()| -> Duration {
                let start = Instant::now();
                wait();
                let end = Instant::now();
                let waited = end.duration_since(start);
                if waited >= DRAWN_WAIT {
                    lane.record(kind, label, start, end);
                }
                waited
            };
            if member.index < shape.producers {
                let mut waited = Duration::ZERO;
                for i in 0..shape.items {
                    if i % crate::experiment::STEPS_PER_CANCEL_CHECK == 0 && context.check_cancel().is_err() {
                        break;
                    }
                    let item = (id(member.index, i), Instant::now().nanos_since_epoch());
                    if let Err(item) = buffer.try_put(item) {
                        waited += timed(SpanKind::Wait, "buffer full", &mut || buffer.put(item));
                    }
                    depth.fetch_add(1, Ordering::Relaxed);
                }
                *lock(&producer_waits) += waited;
                // The last producer out tells every consumer to stop, behind all the items.
                if producers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    (0..shape.consumers).for_each(|_| buffer.put((STOP, 0)));
                }
            } else {
                let mut mine = Taken::default();
                let mut count = 0u64;
                loop {
                    let (id, put_at) = match buffer.try_take() {
                        Some(item) => item,
                        None => {
                            let mut item = (STOP, 0);
                            mine.waited += timed(SpanKind::Idle, "buffer empty", &mut || item = buffer.take());
                            item
                        }
                    };
                    if id == STOP {
                        break;
                    }
                    let now = Instant::now();
                    let counted = depth.fetch_sub(1, Ordering::Relaxed).max(0) as usize;
                    mine.id_sum = mine.id_sum.wrapping_add(id);
                    mine.latency_ns.record(now.nanos_since_epoch().saturating_sub(put_at));
                    if count % SAMPLE_EVERY == 0 {
                        // What the buffer holds after this take. Counters run ahead of a bounded
                        // buffer by the takes not yet counted (capacity 4 read 6 with two
                        // consumers), so they only stand in for the queue that counts nothing.
                        let held = buffer.depth().unwrap_or(counted.saturating_sub(1));
                        mine.depth_samples.push(held);
                        context.trace().record_at(member.index, SpanKind::Mark, format!("depth {held}"), now, now);
                    }
                    count += 1;
                    shape.spinner.spin(shape.work_ns);
                }
                lock(&taken).push(mine);
            }
        })?;
        context.check_cancel()?;
        let taken = taken.into_inner().unwrap_or_else(|p| p.into_inner());
        self.record(context, &taken, producer_waits.into_inner().unwrap_or_else(|p| p.into_inner()));
        Ok(taken.iter().fold(0, |sum, t| sum.wrapping_add(t.id_sum)))
    }
}

impl BufferCell<'_> {
    fn record(&self, context: &RunContext, taken: &[Taken], producer_waits: Duration) {
        let mut latency = LogHistogram::default();
        taken.iter().for_each(|t| latency.merge(&t.latency_ns));
        context.record_time("latency p50", TimeUnit::Microseconds, latency.quantile(0.5) as f64);
        context.record_time("latency p99", TimeUnit::Microseconds, latency.quantile(0.99) as f64);
        context.record_latency("item latency", &latency);
        let samples: Vec<usize> = taken.iter().flat_map(|t| t.depth_samples.iter().copied()).collect();
        if !samples.is_empty() {
            context.record("max depth", "items", *samples.iter().max().unwrap_or(&0) as f64);
            context.record("mean depth", "items", samples.iter().sum::<usize>() as f64 / samples.len() as f64);
        }
        let per_thread = |total: Duration, threads: usize| total.as_secs_f64() * 1e3 / threads as f64;
        context.record("producer waits", "ms per thread", per_thread(producer_waits, self.shape.producers));
        context.record(
            "consumer waits",
            "ms per thread",
            per_thread(taken.iter().map(|t| t.waited).sum(), self.shape.consumers),
        );
    }
}
