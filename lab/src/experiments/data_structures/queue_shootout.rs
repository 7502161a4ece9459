//! `queue-shootout`: operations per second of each MPMC queue and channel at 1P1C, 2P2C and
//! 3P1C — our Vyukov ring and channel against crossbeam's queues and channel, a mutex around a `VecDeque`,
//! and std's channel.

use std::collections::VecDeque;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use conlab_core::ds::channel;
use conlab_core::ds::msqueue::MsQueue;
use conlab_core::ds::ring::Ring;
use conlab_core::platform::{check_team_size, hardware_threads, run_team, yield_now, Instant, PlatformError};
use conlab_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, spin_yield, Mutex};

pub struct QueueShootout;

/// (producers, consumers, metric)
const SHAPES: [(usize, usize, &str); 3] = [(1, 1, "1P1C"), (2, 2, "2P2C"), (3, 1, "3P1C")];

impl Experiment for QueueShootout {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "queue-shootout",
            title: "Queue shoot-out: lock-free ring and channel, crossbeam, a mutex, std's channel",
            topic: super::NAME,
            concept: "lock-free MPMC queues (Vyukov), channels, Mutex<VecDeque>",
            teaches: "Producers push `items` numbers each through one shared queue; consumers pop them all. A bounded \
                      lock-free ring (Vyukov's: one CAS per operation on its own end, no lock) and crossbeam's \
                      ArrayQueue (the same algorithm) keep producers and consumers off each other's cache lines; \
                      crossbeam's SegQueue (unbounded, linked segments) and the channels (ours on the ring, \
                      crossbeam's) add allocation or wake-up bookkeeping; a Mutex<VecDeque> makes every operation take \
                      the same lock. Each shape runs in turn — one producer and one consumer, two and two, three \
                      producers and one consumer — and the columns give millions of items through per second. std's \
                      channel has a single consumer, so it sits out 2P2C. Full and empty queues are polled (a spin \
                      hint between tries; with more threads than cores, after 64 tries the rest of the time slice), \
                      and the consumers stop at an end marker, so they share nothing but the queue. Two threads \
                      through one queue swing with how the two sides happen to interleave: read the best runs.",
            params: vec![
                ParamSpec::int("items", 200_000, 1, 100_000_000, "per producer", "items each producer pushes"),
                ParamSpec::int("capacity", 1024, 2, 1 << 20, "items", "capacity of the bounded queues"),
            ],
            variants: vec![
                VariantSpec::fixed("ring", "our Vyukov bounded MPMC ring (ds::ring)"),
                VariantSpec::fixed("channel", "our bounded channel on the ring (ds::channel)"),
                VariantSpec::fixed("ms-queue", "our Michael–Scott queue, epoch-reclaimed (ds::msqueue; unbounded)"),
                VariantSpec::fixed("crossbeam-array", "crossbeam_queue::ArrayQueue"),
                VariantSpec::fixed("crossbeam-seg", "crossbeam_queue::SegQueue (unbounded)"),
                VariantSpec::fixed("crossbeam-channel", "crossbeam_channel::bounded"),
                VariantSpec::fixed("mutex-vecdeque", "Mutex<VecDeque> with a capacity check"),
                VariantSpec::fixed("std-mpsc", "std::sync::mpsc::sync_channel (one consumer only)"),
            ],
            baseline: "mutex-vecdeque",
            chart_metric: Some("2P2C"),
            quick: &["items=50000", "capacity=64"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Shootout { items: params.int("items") as u64, capacity: params.count("capacity") }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "one lock for every operation costs: one producer and one consumer move ≥ 2× the items per second \
                 through the lock-free ring as through the Mutex<VecDeque> (best runs)",
                |facts| {
                    let (ring, locked) = (best_1p1c(facts, "ring")?, best_1p1c(facts, "mutex-vecdeque")?);
                    verdict(
                        ring >= 2.0 * locked,
                        format!("1P1C: ring {ring:.1} M/s, Mutex<VecDeque> {locked:.1} M/s"),
                        "another program held a core, so the two sides took turns",
                    )
                },
            ),
            Claim::new(
                "nodes cost: the ring moves ≥ 1.5× the items per second of the Michael–Scott queue, which allocates \
                 one node per item and reclaims it by epochs (1P1C, best runs)",
                |facts| {
                    let (ring, linked) = (best_1p1c(facts, "ring")?, best_1p1c(facts, "ms-queue")?);
                    verdict(
                        ring >= 1.5 * linked,
                        format!("1P1C: ring {ring:.1} M/s, MS queue {linked:.1} M/s"),
                        "another program held a core",
                    )
                },
            ),
            Claim::new(
                "our Vyukov ring keeps up with crossbeam's ArrayQueue, the same algorithm: ≥ 0.8× its 1P1C rate (best \
                 runs)",
                |facts| {
                    let (ours, theirs) = (best_1p1c(facts, "ring")?, best_1p1c(facts, "crossbeam-array")?);
                    verdict(
                        ours >= 0.8 * theirs,
                        format!("1P1C: ring {ours:.1} M/s, ArrayQueue {theirs:.1} M/s"),
                        "a slow path in our ring",
                    )
                },
            ),
        ]
    }
}

/// A queue's best 1P1C run, in millions of items per second.
fn best_1p1c(facts: &Facts<'_>, variant: &str) -> Result<f64, Verdict> {
    Ok(facts.fixed_metric(variant, "1P1C")?.max)
}

struct Shootout {
    items: u64,
    capacity: usize,
}

impl Shootout {
    /// The sum of everything the producers of one shape push: producer p pushes p·items + 0..items.
    fn shape_sum(&self, producers: usize) -> u64 {
        let n = self.items * producers as u64;
        n * (n - 1) / 2
    }
}

impl Workload for Shootout {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Every item popped once, in every shape the variant runs.
    fn expected(&self) -> Digest {
        SHAPES.iter().map(|&(p, _, _)| self.shape_sum(p)).sum()
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        check_team_size(4)?;
        Ok(Box::new(ShootoutCell { shootout: self, variant: variant.to_string() }))
    }
}

/// The non-blocking face every contender shows.
trait Queue: Sync {
    fn push(&self, value: u64) -> Result<(), u64>;
    fn pop(&self) -> Option<u64>;
}

impl Queue for Ring<u64> {
    fn push(&self, value: u64) -> Result<(), u64> {
        Ring::push(self, value)
    }
    fn pop(&self) -> Option<u64> {
        Ring::pop(self)
    }
}

impl Queue for (channel::Sender<u64>, channel::Receiver<u64>) {
    fn push(&self, value: u64) -> Result<(), u64> {
        self.0.try_send(value)
    }
    fn pop(&self) -> Option<u64> {
        self.1.try_recv()
    }
}

impl Queue for crossbeam_queue::ArrayQueue<u64> {
    fn push(&self, value: u64) -> Result<(), u64> {
        crossbeam_queue::ArrayQueue::push(self, value)
    }
    fn pop(&self) -> Option<u64> {
        crossbeam_queue::ArrayQueue::pop(self)
    }
}

impl Queue for MsQueue<u64> {
    fn push(&self, value: u64) -> Result<(), u64> {
        MsQueue::push(self, value);
        Ok(())
    }
    fn pop(&self) -> Option<u64> {
        MsQueue::pop(self)
    }
}

impl Queue for crossbeam_queue::SegQueue<u64> {
    fn push(&self, value: u64) -> Result<(), u64> {
        crossbeam_queue::SegQueue::push(self, value);
        Ok(())
    }
    fn pop(&self) -> Option<u64> {
        crossbeam_queue::SegQueue::pop(self)
    }
}

// crossbeam-channel does not build under `--cfg crossbeam_loom`, which the loom run sets.
#[cfg(not(loom))]
impl Queue for (crossbeam_channel::Sender<u64>, crossbeam_channel::Receiver<u64>) {
    fn push(&self, value: u64) -> Result<(), u64> {
        self.0.try_send(value).map_err(crossbeam_channel::TrySendError::into_inner)
    }
    fn pop(&self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

/// A `VecDeque` behind one lock, bounded by hand.
struct Locked {
    queue: Mutex<VecDeque<u64>>,
    capacity: usize,
}

impl Queue for Locked {
    fn push(&self, value: u64) -> Result<(), u64> {
        let mut queue = lock(&self.queue);
        if queue.len() >= self.capacity {
            return Err(value);
        }
        queue.push_back(value);
        Ok(())
    }
    fn pop(&self) -> Option<u64> {
        lock(&self.queue).pop_front()
    }
}

/// std's channel: any thread may send; the receiver is taken by the one consumer.
struct StdChannel {
    sender: std::sync::mpsc::SyncSender<u64>,
    receiver: Mutex<std::sync::mpsc::Receiver<u64>>,
}

impl Queue for StdChannel {
    fn push(&self, value: u64) -> Result<(), u64> {
        self.sender.try_send(value).map_err(|error| match error {
            std::sync::mpsc::TrySendError::Full(value) | std::sync::mpsc::TrySendError::Disconnected(value) => value,
        })
    }
    fn pop(&self) -> Option<u64> {
        // Uncontended: std-mpsc only runs shapes with one consumer.
        lock(&self.receiver).try_recv().ok()
    }
}

struct ShootoutCell<'a> {
    shootout: &'a Shootout,
    variant: String,
}

impl ShootoutCell<'_> {
    fn queue(&self) -> Box<dyn Queue> {
        let capacity = self.shootout.capacity;
        match self.variant.as_str() {
            "ring" => Box::new(Ring::new(capacity)),
            "channel" => Box::new(channel::bounded(capacity)),
            "crossbeam-array" => Box::new(crossbeam_queue::ArrayQueue::new(capacity)),
            "ms-queue" => Box::new(MsQueue::new()),
            "crossbeam-seg" => Box::new(crossbeam_queue::SegQueue::new()),
            #[cfg(not(loom))]
            "crossbeam-channel" => Box::new(crossbeam_channel::bounded(capacity)),
            "std-mpsc" => {
                let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
                Box::new(StdChannel { sender, receiver: Mutex::new(receiver) })
            }
            _ => Box::new(Locked { queue: Mutex::new(VecDeque::with_capacity(capacity)), capacity }),
        }
    }

    /// One shape: producers push, consumers pop until every item is through; the sum popped.
    /// The last producer to finish pushes one [`DONE`] per consumer, so the consumers share
    /// nothing but the queue (a shared count of items popped would be a second contended line).
    fn run_shape(&self, context: &RunContext, producers: usize, consumers: usize) -> Result<u64, PlatformError> {
        let queue = self.queue();
        let items = self.shootout.items;
        let (finished, sum) = (AtomicUsize::new(0), AtomicU64::new(0));
        let patience = Patience { oversubscribed: producers + consumers > hardware_threads() };
        run_team(producers + consumers, |member| {
            let keep_going = || context.check_cancel().is_ok();
            let push = |value| push_patiently(&*queue, value, patience, &keep_going);
            if member.index < producers {
                let first = member.index as u64 * items;
                if !(first..first + items).all(push) {
                    return;
                }
                if finished.fetch_add(1, Ordering::AcqRel) + 1 == producers {
                    (0..consumers).all(|_| push(DONE));
                }
            } else {
                let (mut mine, mut idle) = (0u64, 0u32);
                loop {
                    match queue.pop() {
                        Some(DONE) => break,
                        Some(value) => {
                            mine += value;
                            idle = 0;
                        }
                        None => {
                            idle += 1;
                            if idle % 1024 == 0 && !keep_going() {
                                break;
                            }
                            patience.wait(idle);
                        }
                    }
                }
                sum.fetch_add(mine, Ordering::Relaxed);
            }
        })?;
        Ok(sum.into_inner())
    }
}

/// The value that tells a consumer the producers are done (never an item: items count up from 0).
const DONE: u64 = u64::MAX;

/// Pushes `value`, retrying while the queue is full; false if the run was cancelled meanwhile.
fn push_patiently(queue: &dyn Queue, mut value: u64, patience: Patience, keep_going: &dyn Fn() -> bool) -> bool {
    let mut full = 0u32;
    while let Err(back) = queue.push(value) {
        value = back;
        full += 1;
        if full % 1024 == 0 && !keep_going() {
            return false;
        }
        patience.wait(full);
    }
    true
}

/// How a thread waits after a poll found the queue full or empty.
#[derive(Clone, Copy)]
struct Patience {
    /// More threads than cores: the other side may be waiting for this core.
    oversubscribed: bool,
}

impl Patience {
    /// After the `tries`-th failed poll in a row: a spin hint, and when oversubscribed, after
    /// 64 tries, the rest of the time slice too. (Yielding without need costs: two threads on
    /// two cores that yield after 1024 tries moved 1–15 M items/s through the ring, where
    /// spinning moves 60.)
    fn wait(self, tries: u32) {
        if self.oversubscribed && tries >= 64 {
            yield_now();
        } else {
            spin_yield();
        }
    }
}

impl Cell for ShootoutCell<'_> {
    fn threads(&self) -> usize {
        4
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let mut digest = 0;
        for &(producers, consumers, metric) in &SHAPES {
            if self.variant == "std-mpsc" && consumers > 1 {
                // A single-consumer channel: its share of the digest, without a measurement.
                digest += self.shootout.shape_sum(producers);
                continue;
            }
            let start = Instant::now();
            digest += self.run_shape(context, producers, consumers)?;
            context.check_cancel()?;
            let items = self.shootout.items as f64 * producers as f64;
            context.record(metric, "Mops/s", items / start.elapsed().as_secs_f64() / 1e6);
        }
        Ok(digest)
    }
}
