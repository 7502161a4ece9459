//! `manager-vs-shared`: three ways for worker processes to share a counter — a manager's dict
//! (a round trip per access), a `Value` behind a shared lock, a raw shared array — and what each
//! costs per update and delivers at 1–4 workers.

use std::time::Duration;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{Service, SharedWords, StartMethod, Words};
use conlab_core::pymodel::manager::{serve_dict, Dict, Pace, ELEMENT_STRIDE, VALUE_WORD};
use conlab_core::pymodel::process::{Job, ProcessPool, Reply};

pub struct ManagerVsShared;

/// Jobs a worker may have queued: one running, one waiting, so it never idles between them.
const WINDOW: usize = 2;
/// About how long one job runs.
const JOB: Duration = Duration::from_millis(2);
/// How long the parent waits for a reply before it looks at the cancel flag again.
const POLL: Duration = Duration::from_millis(20);

impl Experiment for ManagerVsShared {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "manager-vs-shared",
            title: "Sharing state between processes: a manager, a locked Value, a raw array",
            topic: super::NAME,
            concept: "multiprocessing.Manager().dict() vs Value (with its lock) vs RawArray",
            teaches: "Processes share nothing, so Python offers three ways to share a counter. A manager keeps a \
                      dict in a server process: every `d[key]` and `d[key] = v` on its proxy is a message to the \
                      server and a reply back, so `d[key] += 1` is two round trips through the kernel — tens of \
                      microseconds, and one server answers everybody in turn. A `Value` lives in shared memory and is \
                      updated in place, but `with v.get_lock(): v.value += 1` takes a lock every worker shares, so \
                      the updates queue at it and more workers add little. A raw array has no lock: each worker \
                      updates its own element (on a cache line of its own here) and they run side by side. Each \
                      worker pays CPython's interpreter time around every access (`python_ns` per step; 0 shows the \
                      bare mechanism, as native code would pay it), and a proxy call runs CPython's pickling and \
                      connection code on both sides (`proxy_steps`). Natively the workers and the manager are forked \
                      processes (Python 3.11's default on Linux) and the manager listens on a Unix socket; in a \
                      browser the workers are Web Workers with their own memory that reach the shared words through \
                      JavaScript's Atomics, and the manager is a thread of the lab's own worker answering through \
                      mailboxes in its memory. The columns give each run's updates per second; 'per update' is one \
                      worker's time per update, waits included.",
            params: vec![
                ParamSpec::float(
                    "python_ns",
                    90.0,
                    0.0,
                    100_000.0,
                    "ns",
                    "CPython's time per Python-level step around an access (0: native code)",
                ),
                ParamSpec::float(
                    "proxy_steps",
                    140.0,
                    0.0,
                    100_000.0,
                    "steps",
                    "Python steps a proxy call runs on each side: pickling, Connection.send/recv, the server's dispatch",
                ),
                ParamSpec::int("duration_ms", 100, 5, 10_000, "ms", "length of each run"),
            ],
            variants: vec![
                VariantSpec::sweep("manager", "`d[key] += 1` on a Manager().dict() proxy: two round trips"),
                VariantSpec::sweep("value", "`with v.get_lock(): v.value += 1` on one shared Value"),
                VariantSpec::sweep("raw-array", "`a[i] += 1` on a RawArray, each worker its own element, no lock"),
            ],
            baseline: "value",
            fixed_duration: true,
            chart_metric: Some("updates/s"),
            quick: &["duration_ms=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Sharing {
            pace: Pace {
                python_ns: params.float("python_ns"),
                proxy_steps: params.float("proxy_steps"),
                spinner: Spinner::calibrate(),
            },
            duration: Duration::from_millis(params.int("duration_ms") as u64),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "every access to a manager's dict is a round trip to its server: at 1 worker an update through the \
                 manager costs ≥ 20× one of a locked Value (fastest runs)",
                |facts| {
                    let manager = facts.metric_min("manager", 1, "per update")?;
                    let value = facts.metric_min("value", 1, "per update")?;
                    verdict(
                        manager >= 20.0 * value,
                        format!("per update: manager {}, value {}", ns(manager), ns(value)),
                        "the round trip is unusually fast or the lock unusually slow here",
                    )
                },
            ),
            Claim::new(
                "a raw array shares without a lock: 2 workers deliver ≥ 1.5× its 1-worker updates/s (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let gain = rate_gain(facts, "raw-array", 2)?;
                    verdict(gain >= 1.5, format!("raw array: {gain:.2}× at 2 workers"), "another program took a core")
                },
            ),
            Claim::new(
                "a Value's lock makes its updates queue: at 2 workers an update takes ≥ 1.3× as long as at 1 \
                 (medians), and the Value's updates/s gain less than the raw array's (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    let slower = facts.metric("value", 2, "per update")? / facts.metric("value", 1, "per update")?;
                    let (value, raw) = (rate_gain(facts, "value", 2)?, rate_gain(facts, "raw-array", 2)?);
                    verdict(
                        slower >= 1.3 && value < raw,
                        format!(
                            "at 2 workers a Value update takes {slower:.2}× as long; updates/s: value {value:.2}×, \
                             raw array {raw:.2}× their 1-worker runs"
                        ),
                        "the section under the lock is short next to the work outside it (raise python_ns)",
                    )
                },
            ),
        ]
    }
}

/// Fastest updates/s of `variant` at `workers` over its fastest at 1.
fn rate_gain(facts: &Facts<'_>, variant: &str, workers: usize) -> Result<f64, Verdict> {
    Ok(facts.metric_max(variant, workers, "updates/s")? / facts.metric_max(variant, 1, "updates/s")?)
}

fn ns(value: f64) -> String {
    conlab_core::units::format_seconds(value * 1e-9)
}

struct Sharing {
    pace: Pace,
    duration: Duration,
}

/// Where the counter lives, per variant.
enum Shared {
    /// The manager server (its dict has one key per worker).
    Manager(Service),
    /// A `Value`: its lock, then the number.
    Value(SharedWords),
    /// A raw array: one element per worker, a cache line apart.
    RawArray(SharedWords),
}

impl Shared {
    /// The counter's home for `variant` and `workers` workers.
    fn start(variant: &str, workers: usize) -> Result<Self, RunError> {
        Ok(match variant {
            "manager" => Shared::Manager(Service::start::<Dict>(workers, serve_dict)?),
            "value" => Shared::Value(SharedWords::new(2)?),
            _ => Shared::RawArray(SharedWords::new(workers * ELEMENT_STRIDE)?),
        })
    }

    /// The job that makes `updates` updates from worker `worker`.
    fn job(&self, worker: usize, updates: u32, pace: Pace) -> Job {
        match self {
            Shared::Manager(service) => {
                Job::ManagerUpdates { address: service.address(worker), key: format!("w{worker}"), updates, pace }
            }
            Shared::Value(words) => Job::ValueUpdates { address: words.address(), updates, pace },
            Shared::RawArray(words) => Job::RawArrayUpdates { address: words.address(), slot: worker, updates, pace },
        }
    }

    /// Updates per job: about [`JOB`] of work at this pace (a round trip counted as 20 µs), so
    /// a cancel is seen soon and the parent is not asked for a job every few microseconds.
    fn batch(&self, pace: Pace) -> u32 {
        let step = pace.python_ns;
        let update_ns = match self {
            Shared::Manager(_) => 2.0 * (2.0 * pace.proxy_steps * step + 20_000.0),
            Shared::Value(_) => 8.0 * step + 50.0,
            Shared::RawArray(_) => step + 5.0,
        };
        (JOB.as_nanos() as f64 / update_ns).clamp(1.0, 1e6) as u32
    }

    /// The count the shared memory holds (it starts at 0), modulo 2³² as its 32-bit words
    /// wrap; the manager's is read by its jobs instead.
    fn count(&self, workers: usize) -> u32 {
        match self {
            Shared::Manager(_) => 0,
            Shared::Value(words) => words.load(VALUE_WORD),
            Shared::RawArray(words) => {
                (0..workers).fold(0u32, |sum, w| sum.wrapping_add(words.load(w * ELEMENT_STRIDE)))
            }
        }
    }
}

impl Workload for Sharing {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Updates lost: none.
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, workers: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        ProcessPool::check_method(StartMethod::PLATFORM_DEFAULT)?;
        Ok(Box::new(SharingCell { sharing: self, workers, variant: variant.to_string() }))
    }
}

/// A cell starts its workers and the shared state in each run, before its clock starts: the
/// browser has a few Web Worker processes, and the runner keeps every cell of a run alive.
struct SharingCell<'a> {
    sharing: &'a Sharing,
    workers: usize,
    variant: String,
}

/// What a run's jobs did.
#[derive(Default)]
struct Tally {
    updates: u64,
    /// Time the workers spent in their jobs, ns.
    busy_ns: u64,
    /// Updates a manager job made that its dict did not show.
    lost: u64,
}

/// Folds one job's replies into the tally; `manager` jobs report how far their key moved.
fn absorb(tally: &mut Tally, manager: bool, updates: u32, replies: Vec<Reply>) {
    let reply = replies.first().map_or(Reply { value: 0, busy_ns: 0 }, Clone::clone);
    tally.updates += u64::from(updates);
    tally.busy_ns += reply.busy_ns;
    if manager {
        tally.lost += u64::from(updates).saturating_sub(reply.value.max(0) as u64);
    }
}

impl Cell for SharingCell<'_> {
    fn threads(&self) -> usize {
        self.workers
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Sharing { pace, duration } = *self.sharing;
        // Declared first, dropped last: a cancelled run's pool waits for its workers' jobs,
        // which still reach the manager and the shared words (in a browser, this worker's memory).
        let shared = Shared::start(&self.variant, self.workers)?;
        let mut pool = ProcessPool::start_with(self.workers, StartMethod::PLATFORM_DEFAULT)?;
        let manager = matches!(shared, Shared::Manager(_));
        let batch = shared.batch(pace);
        let start = context.now();
        let deadline = start.plus(duration);
        let mut in_flight = vec![WINDOW; self.workers];
        let mut tally = Tally::default();
        for worker in 0..self.workers {
            for _ in 0..WINDOW {
                pool.submit(worker, &[shared.job(worker, batch, pace)])?;
            }
        }
        while in_flight.iter().any(|&jobs| jobs > 0) {
            context.check_cancel()?;
            let Some(worker) = pool.wait_any(POLL) else { continue };
            let replies = pool.collect(worker)?;
            in_flight[worker] -= 1;
            absorb(&mut tally, manager, batch, replies);
            if context.now() < deadline {
                pool.submit(worker, &[shared.job(worker, batch, pace)])?;
                in_flight[worker] += 1;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        context.record("updates/s", "/s", tally.updates as f64 / seconds);
        // A mean over many updates timed in ms-long jobs: finer than the clock's tick.
        context.record("per update", "ns", tally.busy_ns as f64 / tally.updates.max(1) as f64);
        // Modulo 2³², as the words count: a lost update (or an extra one) leaves a difference.
        Ok(match shared {
            Shared::Manager(_) => tally.lost,
            _ => u64::from((tally.updates as u32).wrapping_sub(shared.count(self.workers))),
        })
    }
}
