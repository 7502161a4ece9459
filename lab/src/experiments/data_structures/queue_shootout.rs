//! `queue-shootout`: operations per second of each MPMC queue and channel at 1P1C, 2P2C and
//! 3P1C — our Vyukov ring and channel against crossbeam's queues and channel, a mutex around a `VecDeque`,
//! and std's channel.

use std::collections::VecDeque;

use crate::experiment::{
    Cell, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec, Workload,
};
use conlab_core::ds::channel;
use conlab_core::ds::msqueue::MsQueue;
use conlab_core::ds::ring::Ring;
use conlab_core::platform::{check_team_size, run_team, Instant, PlatformError};
use conlab_core::sync::atomic::{AtomicU64, Ordering};
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
                      hint between tries), so with more threads than cores the numbers show oversubscription too.",
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
            quick: &["items=5000", "capacity=64"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Shootout { items: params.int("items") as u64, capacity: params.count("capacity") }))
    }
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
    fn run_shape(&self, context: &RunContext, producers: usize, consumers: usize) -> Result<u64, PlatformError> {
        let queue = self.queue();
        let items = self.shootout.items;
        let total = items * producers as u64;
        let (popped, sum) = (AtomicU64::new(0), AtomicU64::new(0));
        run_team(producers + consumers, |member| {
            let keep_going = || context.check_cancel().is_ok();
            if member.index < producers {
                let first = member.index as u64 * items;
                let mut full = 0u64;
                for mut value in first..first + items {
                    while let Err(back) = queue.push(value) {
                        value = back;
                        full += 1;
                        if full % 1024 == 0 && !keep_going() {
                            return;
                        }
                        spin_yield();
                    }
                }
            } else {
                let mut mine = 0u64;
                let mut idle = 0u64;
                while popped.load(Ordering::Relaxed) < total {
                    match queue.pop() {
                        Some(value) => {
                            mine += value;
                            popped.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            idle += 1;
                            if idle % 1024 == 0 && !keep_going() {
                                break;
                            }
                            spin_yield();
                        }
                    }
                }
                sum.fetch_add(mine, Ordering::Relaxed);
            }
        })?;
        Ok(sum.into_inner())
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
