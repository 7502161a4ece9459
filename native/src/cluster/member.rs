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
//! panics of timely's threads off standard error and records them for the main thread, and
//! parks a panicking worker for good instead of letting it unwind — unwinding a timely worker
//! runs destructors that touch the poisoned queues and panic again, which aborts the process.
//! A member that failed (or whose run is still going) is not joined when dropped: its threads
//! end with the process.

use std::ops::DerefMut;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once};
use std::time::Duration;

use conlab_core::platform::{self, Instant};
use conlab_lab::experiments::cluster::engine::{Job, Round, Shape};
use timely::communication::allocator::zero_copy::bytes_slab::BytesRefill;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{GenericBuilder, Process};
use timely::{CommunicationConfig, WorkerConfig};

use super::dataflows::Driver;
use super::mesh;

/// What the main thread and the workers share.
#[derive(Default)]
struct State {
    /// Runs issued so far; a worker that has done fewer starts the next.
    issued: u64,
    quit: bool,
    /// Workers done with the latest run.
    finished: usize,
    round: Option<Round>,
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
}

/// Panics of timely's threads in this process (`timely:recv-N`, `timely:send-N` for the
/// connection to process N, `timely:work-N` for worker N), as `(thread, message)`.
static TIMELY_PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Panics on timely's threads are recorded, not printed; a panicking worker is parked for good.
fn record_timely_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let Some(name) = thread.name().filter(|name| name.starts_with("timely:")) else {
                return default(info);
            };
            let message = platform::panic_message(info.payload());
            let at = info.location().map(|at| format!(" at {}:{}", at.file(), at.line())).unwrap_or_default();
            let mut panics = lock_panics();
            if panics.len() < 16 {
                panics.push((name.to_string(), format!("{message}{at}")));
            }
            drop(panics);
            if name.starts_with("timely:work-") {
                loop {
                    std::thread::park();
                }
            }
        }));
    });
}

fn lock_panics() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    TIMELY_PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why this process's part of the cluster failed, from its threads' panics: the connection it
/// lost first, else the thread that stopped.
fn failure() -> Option<String> {
    let panics = lock_panics();
    let lost = panics.iter().find_map(|(thread, message)| {
        let peer = thread.strip_prefix("timely:recv-").or_else(|| thread.strip_prefix("timely:send-"))?;
        Some(format!(
            "the connection to process {peer} broke mid-run ({message}): process {peer} stopped without timely's \
             shutdown"
        ))
    });
    let stopped = || panics.first().map(|(thread, message)| format!("{thread} stopped: {message}"));
    lost.or_else(stopped)
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

/// How often a waiting main thread looks for a panic of this process's timely threads.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// This process's workers, connected to the cluster.
pub struct Member {
    control: std::sync::Arc<Control>,
    workers: usize,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
}

impl Member {
    /// Generates the job's input, starts `shape.workers` workers as process `process` of the
    /// processes at `addresses`, and returns once every process is connected ([`mesh`] waits).
    pub fn join(job: &Job, shape: Shape, process: usize, addresses: Vec<String>) -> Result<Self, String> {
        let (builders, communication) = if shape.processes > 1 {
            // Our own connections (see [`mesh`]), then timely's send and receive threads on them.
            let streams = mesh::connect(process, &addresses)
                .map_err(|error| format!("connecting to the cluster's other processes: {error}"))?;
            let refill = BytesRefill {
                logic: std::sync::Arc::new(|size| Box::new(vec![0_u8; size]) as Box<dyn DerefMut<Target = [u8]>>),
                limit: None,
            };
            let log = std::sync::Arc::new(|_| None);
            let (builders, guard) =
                initialize_networking_from_sockets::<_, Process>(streams, process, shape.workers, refill, log)
                    .map_err(|error| format!("starting timely's connections: {error}"))?;
            let communication: Box<dyn std::any::Any + Send> = Box::new(guard);
            (builders.into_iter().map(GenericBuilder::ZeroCopy).collect(), communication)
        } else if shape.workers > 1 {
            CommunicationConfig::Process(shape.workers).try_build()?
        } else {
            CommunicationConfig::Thread.try_build()?
        };
        let control = std::sync::Arc::new(Control::default());
        let shared = control.clone();
        let job = job.clone();
        let workers = shape.workers;
        record_timely_panics();
        let guards = timely::execute::execute_from(builders, communication, WorkerConfig::default(), move |worker| {
            let mut driver = Driver::build(worker, &job, workers);
            let mut done = 0;
            while shared.next(&mut done) {
                let epochs = driver.run(worker);
                shared.finish(epochs);
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
            if let Some(why) = failure() {
                return Err(Missed::Failed(why));
            }
            if state.finished == self.workers {
                return state.round.take().ok_or_else(|| Missed::Failed("no worker handed over the round".into()));
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
        let settled = state.issued == 0 || state.finished == self.workers;
        drop(state);
        self.control.changed.notify_all();
        if let Some(guards) = self.guards.take() {
            if settled && failure().is_none() {
                // A connection that breaks while the threads wind down panics the join (timely's
                // `CommsGuard`); the process goes on to report its result.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| drop(guards.join())));
            } else {
                std::mem::forget(guards);
            }
        }
    }
}
