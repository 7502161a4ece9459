//! `ipc-cost`: what moving data to a worker costs — a thread reads it where it lies, a process
//! needs it copied (a pipe natively, `postMessage`'s structured clone in browsers), transferred
//! (browsers: the buffer changes owner, no copy), or placed once in shared memory.

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Verdict, Workload,
};
use conlab_core::platform::Delivery;
use conlab_core::pymodel::process::{byte_sum, Job, ProcessPool};
use conlab_core::sched::fifo::FifoPool;

pub struct IpcCost;

/// Message sizes a sweep visits, with the name of each one's metric.
/// (Sizes are in KiB throughout so that the columns sort by size.)
const SIZES: [(&str, usize, &str); 4] = [
    ("1 KiB", 1 << 10, "1 KiB: per message"),
    ("64 KiB", 64 << 10, "64 KiB: per message"),
    ("1024 KiB", 1 << 20, "1024 KiB: per message"),
    ("8192 KiB", 8 << 20, "8192 KiB: per message"),
];

impl Experiment for IpcCost {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "ipc-cost",
            title: "Moving data to a worker: copy, transfer or share",
            topic: super::NAME,
            concept: "pickling and pipes; postMessage, transferables, SharedArrayBuffer; shared_memory",
            teaches: "A thread sees the caller's memory: handing it a buffer costs a pointer. A process sees nothing: \
                      every byte is copied to it (pickled down a pipe natively, structured-cloned by postMessage in a \
                      browser), so the cost grows with the message — past a few hundred KiB the copy outweighs the \
                      work. Browsers can also transfer an ArrayBuffer (ownership moves and the sender loses it: one \
                      copy fewer, though a wasm worker still copies it into its own memory), and both can share memory \
                      the worker reads in place (`multiprocessing.shared_memory`, a SharedArrayBuffer) — as cheap as a \
                      thread, with a thread's need for synchronisation. Each message asks the worker to sum the bytes, \
                      so they are really read; the columns give the round trip per message at each size.",
            params: vec![
                ParamSpec::choice(
                    "size",
                    "sweep",
                    &["sweep", "1 KiB", "64 KiB", "1024 KiB", "8192 KiB"],
                    "message size: every one, or one",
                ),
                ParamSpec::int("messages", 20, 1, 100_000, "per size", "round trips timed at each size"),
            ],
            variants: vec![
                VariantSpec::fixed("thread", "a thread pool worker sums the caller's buffer in place"),
                VariantSpec::fixed("copy", "a worker process gets a copy (pipe / structured clone)"),
                VariantSpec::fixed("transfer", "a Web Worker process gets the buffer transferred (browsers only)"),
                VariantSpec::fixed(
                    "shared",
                    "a worker process reads shared memory written once (/dev/shm / SharedArrayBuffer)",
                ),
            ],
            baseline: "thread",
            quick: &["messages=3", "size=sweep"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let chosen = params.text("size");
        let sizes: Vec<_> = SIZES
            .iter()
            .filter(|(name, ..)| chosen == "sweep" || *name == chosen)
            .map(|&(_, bytes, m)| (bytes, m))
            .collect();
        let largest = sizes.iter().map(|&(bytes, _)| bytes).max().unwrap_or(0);
        // Bytes with a known sum that no short cut can guess.
        let buffer = (0..largest).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        Ok(Box::new(Messages { sizes, messages: params.count("messages"), buffer }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "a process sees nothing and every byte is copied: at the largest size a copied message costs ≥ 2× a \
                 thread's (fastest runs)",
                |facts| {
                    let (name, thread) = largest(facts, "thread")?;
                    let copy = facts.fixed_metric("copy", name)?.min;
                    verdict(
                        copy >= 2.0 * thread,
                        format!("{name}: copy {copy:.0} µs, thread {thread:.0} µs"),
                        "the copy is cheap next to summing the bytes here",
                    )
                },
            ),
            Claim::new(
                "shared memory is read in place, as cheap as a thread: within 1.5× of the thread's round trip at the \
                 largest size (fastest runs)",
                |facts| {
                    let (name, thread) = largest(facts, "thread")?;
                    let shared = facts.fixed_metric("shared", name)?.min;
                    verdict(
                        shared <= 1.5 * thread,
                        format!("{name}: shared {shared:.0} µs, thread {thread:.0} µs"),
                        "another program slowed the shared run",
                    )
                },
            ),
        ]
    }
}

/// The largest message size `variant` measured: its metric's name and fastest round trip (µs).
fn largest(facts: &Facts<'_>, variant: &str) -> Result<(&'static str, f64), Verdict> {
    SIZES
        .iter()
        .rev()
        .find_map(|&(_, _, name)| facts.fixed_metric(variant, name).ok().map(|metric| (name, metric.min)))
        .ok_or_else(|| not_testable(format!("{variant} measured no message size")))
}

struct Messages {
    /// (bytes, metric)
    sizes: Vec<(usize, &'static str)>,
    messages: usize,
    buffer: Vec<u8>,
}

impl Workload for Messages {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The sum of every message's bytes.
    fn expected(&self) -> Digest {
        self.sizes.iter().map(|&(bytes, _)| byte_sum(&self.buffer[..bytes]) as u64 * self.messages as u64).sum()
    }

    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let pool = match variant {
            "thread" => {
                FifoPool::check(1)?;
                None
            }
            _ => {
                let mut pool = ProcessPool::start(1)?;
                match variant {
                    "transfer" => pool.deliver(Delivery::Transfer)?,
                    "shared" => pool.share(&self.buffer)?,
                    _ => {}
                }
                Some(pool)
            }
        };
        Ok(Box::new(MessagesCell { messages: self, shared: variant == "shared", pool }))
    }
}

struct MessagesCell<'a> {
    messages: &'a Messages,
    shared: bool,
    /// The worker process; `None` for the thread.
    pool: Option<ProcessPool>,
}

impl Cell for MessagesCell<'_> {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Messages { sizes, messages, buffer } = self.messages;
        let mut total = 0u64;
        for &(bytes, metric) in sizes {
            context.check_cancel()?;
            let message = &buffer[..bytes];
            let round_trips =
                |mut one: Box<dyn FnMut() -> Result<i64, RunError> + '_>| -> Result<(i64, f64), RunError> {
                    let start = context.now();
                    let sum = (0..*messages).map(|_| one()).sum::<Result<i64, RunError>>()?;
                    Ok((sum, start.elapsed().as_secs_f64() * 1e6 / *messages as f64))
                };
            let (sum, micros) = match &mut self.pool {
                // The pool starts before the clock does: a thread's hand-over is what is timed.
                None => FifoPool::run(1, context.trace(), |pool| {
                    round_trips(Box::new(|| {
                        Ok(pool.submit(|| byte_sum(message)).ok().and_then(|f| f.result(None).ok()).unwrap_or(0))
                    }))
                })??,
                Some(pool) => {
                    let (job, payload) =
                        if self.shared { (Job::SumShared { len: bytes }, &[][..]) } else { (Job::SumPayload, message) };
                    round_trips(Box::new(|| {
                        Ok(pool.call(0, std::slice::from_ref(&job), payload)?.iter().map(|r| r.value).sum())
                    }))?
                }
            };
            context.record(metric, "µs", micros);
            total += sum as u64;
        }
        Ok(total)
    }
}
