//! One process's part of a cluster: timely's workers, connected to the other processes, each
//! running its [`Driver`] when the process says so.
//!
//! The process (the main thread) and its workers meet at a [`Control`]: the main thread issues
//! a run, every worker runs the job's epochs, the first worker hands over the reports it
//! gathered, and the main thread waits until all of its workers are done.

use std::time::Duration;

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
        let guards = timely::execute(config, move |worker| {
            let mut driver = Driver::build(worker, &job, workers);
            let mut done = 0;
            while shared.next(&mut done) {
                let epochs = driver.run(worker);
                shared.finish(epochs);
            }
        })?;
        Ok(Self { control, workers, guards: Some(guards) })
    }

    /// One run on this process's workers; its round (every process gathers every worker's
    /// report). `None` when `deadline` (if any) passed first.
    pub fn run(&self, deadline: Option<Duration>) -> Option<Round> {
        let mut state = self.control.lock();
        state.issued += 1;
        state.finished = 0;
        state.round = None;
        self.control.changed.notify_all();
        let unfinished = |state: &mut State| state.finished < self.workers;
        let mut state = match deadline {
            Some(deadline) => match self.control.changed.wait_timeout_while(state, deadline, unfinished) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            },
            None => self.control.changed.wait_while(state, unfinished).unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
        if state.finished < self.workers {
            return None;
        }
        state.round.take()
    }
}

impl Drop for Member {
    /// Tells the workers to stop and waits for them (timely then closes its connections).
    fn drop(&mut self) {
        self.control.lock().quit = true;
        self.control.changed.notify_all();
        if let Some(guards) = self.guards.take() {
            drop(guards.join());
        }
    }
}
