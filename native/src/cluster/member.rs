//! One process's part of a cluster: timely's workers, connected to the other processes, each
//! running its [`Driver`] when the process says so.
//!
//! The process (the main thread) and its workers meet at a [`Control`]: the main thread issues
//! a run, every worker runs the job's epochs, the first worker hands over the reports it
//! gathered, and the main thread waits until all of its workers are done.
//!
//! When another process dies without timely's shutdown message, timely's receiving thread for
//! it panics ("socket closed") and poisons the queues the workers read, so they panic too. A
//! member turns that into the run's error, naming the process it lost: a panic hook keeps the
//! panics of timely's threads off standard error and records them, each worker's panic is
//! caught and reported to the main thread, and a member that failed (or whose run is still
//! going) is not joined when dropped — its threads end with the process.

use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use conlab_lab::experiments::cluster::engine::{Job, Round, Shape};
use timely::{CommunicationConfig, WorkerConfig};

use super::dataflows::Driver;

/// What the main thread and the workers share.
#[derive(Default)]
struct State {
    /// Runs issued so far; a worker that has done fewer starts the next.
    issued: u64,
    quit: bool,
    /// Workers done with the latest run.
    finished: usize,
    round: Option<Round>,
    /// The first panic of one of this member's workers.
    failed: Option<String>,
}

#[derive(Default)]
struct Control {
    state: std::sync::Mutex<State>,
    changed: std::sync::Condvar,
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A worker waits for its next run; `false` when the process is done.
    fn next(&self, done: &mut u64) -> bool {
        let mut state = self.lock();
        while state.issued == *done && !state.quit {
            state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *done += 1;
        !state.quit
    }

    fn finish(&self, epochs: Option<Vec<conlab_lab::experiments::cluster::engine::Epoch>>) {
        let mut state = self.lock();
        state.finished += 1;
        if let Some(epochs) = epochs {
            state.round = Some(Round { epochs });
        }
        self.changed.notify_all();
    }

    fn fail(&self, why: String) {
        self.lock().failed.get_or_insert(why);
        self.changed.notify_all();
    }
}

/// Panics of timely's threads in this process (`timely:recv-N`, `timely:send-N` for the
/// connection to process N, `timely:work-N` for worker N), as `(thread, message)`.
static TIMELY_PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Panics on timely's threads are recorded, not printed; the run's error reports them.
fn record_timely_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            match thread.name() {
                Some(name) if name.starts_with("timely:") => {
                    let payload = info.payload();
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|text| text.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    let mut panics = TIMELY_PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    if panics.len() < 16 {
                        panics.push((name.to_string(), message));
                    }
                }
                _ => default(info),
            }
        }));
    });
}

/// Why this process's part of the cluster failed: the connection it lost first, else `worker`'s
/// own account.
fn failure(worker: &str) -> String {
    let panics = TIMELY_PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lost = panics.iter().find_map(|(thread, message)| {
        let peer = thread.strip_prefix("timely:recv-").or_else(|| thread.strip_prefix("timely:send-"))?;
        Some(format!(
            "the connection to process {peer} broke mid-run ({message}): process {peer} stopped without timely's \
             shutdown"
        ))
    });
    lost.unwrap_or_else(|| worker.to_string())
}

/// Why a run gave no round.
#[derive(Debug, PartialEq)]
pub enum Missed {
    /// The deadline passed first.
    Deadline,
    /// A worker or a connection of this process failed: why, naming the process lost where known.
    Failed(String),
}

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missed::Deadline => write!(f, "a run did not finish within its deadline"),
            Missed::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// How often a waiting main thread looks for a connection that broke without a worker noticing.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// This process's workers, connected to the cluster.
pub struct Member {
    control: std::sync::Arc<Control>,
    workers: usize,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
}

impl Member {
    /// Generates the job's input, starts `shape.workers` workers as process `process` of the
    /// processes at `addresses`, and returns once every process is connected (timely waits).
    pub fn join(job: &Job, shape: Shape, process: usize, addresses: Vec<String>) -> Result<Self, String> {
        let communication = if shape.processes > 1 {
            CommunicationConfig::Cluster {
                threads: shape.workers,
                process,
                addresses,
                report: false,
                zerocopy: false,
                log_fn: std::sync::Arc::new(|_| None),
            }
        } else if shape.workers > 1 {
            CommunicationConfig::Process(shape.workers)
        } else {
            CommunicationConfig::Thread
        };
        let control = std::sync::Arc::new(Control::default());
        let shared = control.clone();
        let job = job.clone();
        let workers = shape.workers;
        let config = timely::Config { communication, worker: WorkerConfig::default() };
        record_timely_panics();
        let guards = timely::execute(config, move |worker| {
            let index = worker.index();
            let work = AssertUnwindSafe(|| {
                let mut driver = Driver::build(worker, &job, workers);
                let mut done = 0;
                while shared.next(&mut done) {
                    let epochs = driver.run(worker);
                    shared.finish(epochs);
                }
            });
            if std::panic::catch_unwind(work).is_err() {
                let own =
                    TIMELY_PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().find_map(
                        |(thread, message)| (*thread == format!("timely:work-{index}")).then(|| message.clone()),
                    );
                shared.fail(format!("worker {index} stopped: {}", own.unwrap_or_else(|| "it panicked".into())));
            }
        })?;
        Ok(Self { control, workers, guards: Some(guards) })
    }

    /// One run on this process's workers: its round (every process gathers every worker's
    /// report), or why there is none — `deadline` (if any) passed, or a worker or a connection
    /// of this process failed.
    pub fn run(&self, deadline: Option<Duration>) -> Result<Round, Missed> {
        let start = Instant::now();
        let mut state = self.control.lock();
        state.issued += 1;
        state.finished = 0;
        state.round = None;
        self.control.changed.notify_all();
        loop {
            if let Some(why) = &state.failed {
                return Err(Missed::Failed(failure(why)));
            }
            if state.finished == self.workers {
                return state.round.take().ok_or_else(|| Missed::Failed("no worker handed over the round".into()));
            }
            if !TIMELY_PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty() {
                return Err(Missed::Failed(failure("a connection thread of this process stopped")));
            }
            let wait = match deadline {
                Some(deadline) if start.elapsed() >= deadline => return Err(Missed::Deadline),
                Some(deadline) => (deadline - start.elapsed()).min(LOOK_EVERY),
                None => LOOK_EVERY,
            };
            state = match self.control.changed.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Drop for Member {
    /// Tells the workers to stop and waits for them (timely then closes its connections) —
    /// unless one failed or a run is still going: then a worker may never return, and the
    /// threads are left to end with the process.
    fn drop(&mut self) {
        let mut state = self.control.lock();
        state.quit = true;
        let settled = state.failed.is_none() && (state.issued == 0 || state.finished == self.workers);
        drop(state);
        self.control.changed.notify_all();
        let connections_broke = !TIMELY_PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty();
        if let Some(guards) = self.guards.take() {
            if settled && !connections_broke {
                // A connection that breaks while the threads wind down panics the join (timely's
                // `CommsGuard`); the process goes on to report its result.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| drop(guards.join())));
            } else {
                std::mem::forget(guards);
            }
        }
    }
}
