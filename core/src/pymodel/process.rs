//! `ProcessPool`: Python's `multiprocessing.Pool` / `ProcessPoolExecutor` — share-nothing
//! worker processes. A job crosses to a worker serialised (serde JSON, the pickle analogue) over
//! its stdin pipe, and the reply comes back the same way over its stdout; each worker runs its
//! own interpreter with its own GIL, so CPU-bound jobs run in parallel.
//!
//! Natively the workers are real OS processes (`platform::WorkerProcess`): the `conlab` binary
//! re-executed with a hidden subcommand (registered with `platform::set_worker_executable`), so start-up and copying cost what they
//! really cost. Browsers cannot start processes; Web Worker "processes" are not built yet, and
//! there `ProcessPool::start` fails with the reason (the cell is then marked skipped).

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use super::gil::{Gil, DEFAULT_SWITCH_INTERVAL};
use super::{Interpreter, Mode, Program};
use crate::kernels::spin::Spinner;
use crate::platform::{Instant, PlatformError, WorkerProcess};
use crate::sync::atomic::{AtomicI64, Ordering};
use crate::sync::Arc;
use crate::trace::Recorder;

/// A call sent to a worker (what `pool.map(f, args)` pickles).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Job {
    /// Blocking I/O of `io_us` µs, then `counter += 1` `iterations` times, at `op_ns` per
    /// instruction (busy work timed by the parent's calibration, so every process works alike).
    Task { iterations: i64, io_us: u32, op_ns: f64, spinner: Spinner },
}

/// A worker's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub counted: i64,
    /// Time the job ran inside the worker, ns.
    pub busy_ns: u64,
}

/// A worker process's main loop: one JSON job per line in, one JSON reply per line out, until
/// stdin closes.
pub fn serve_worker(input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    for line in input.lines() {
        let job: Job = serde_json::from_str(&line?).map_err(io::Error::other)?;
        let reply = run_job(&job);
        serde_json::to_writer(&mut output, &reply).map_err(io::Error::other)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

fn run_job(job: &Job) -> Reply {
    let start = Instant::now();
    let Job::Task { iterations, io_us, op_ns, spinner } = *job;
    let interpreter = Interpreter { mode: Mode::Gil(Arc::new(Gil::new(DEFAULT_SWITCH_INTERVAL))), op_ns, spinner };
    let shared = [AtomicI64::new(0)];
    interpreter.run(&Program::task(0, iterations, io_us), &shared, 0, &Recorder::new(false), &|| true);
    Reply { counted: shared[0].load(Ordering::Relaxed), busy_ns: start.elapsed().as_nanos() as u64 }
}

/// A pool of worker processes; they exit when it is dropped.
pub struct ProcessPool {
    workers: Vec<WorkerProcess>,
}

impl ProcessPool {
    /// `Ok` if worker processes can start here (checked without starting one).
    pub fn check() -> Result<(), PlatformError> {
        WorkerProcess::check()
    }

    /// Starts `workers` processes (the start-up cost of `multiprocessing`).
    pub fn start(workers: usize) -> Result<Self, PlatformError> {
        if workers == 0 {
            return Err(PlatformError::NoThreads);
        }
        Ok(Self { workers: (0..workers).map(|_| WorkerProcess::start()).collect::<Result<_, _>>()? })
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Sends job i to worker i mod k (all before any reply is read, so the workers run at
    /// once), then collects the replies in job order.
    pub fn map(&mut self, jobs: &[Job]) -> Result<Vec<Reply>, PlatformError> {
        let count = self.workers.len();
        for (index, job) in jobs.iter().enumerate() {
            let line = serde_json::to_vec(job).map_err(|e| PlatformError::Unavailable(e.to_string()))?;
            self.workers[index % count].send_line(&line)?;
        }
        (0..jobs.len())
            .map(|index| {
                let line = self.workers[index % count].receive_line()?;
                serde_json::from_str(&line).map_err(|e| PlatformError::Unavailable(format!("a worker replied nonsense: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_loop_answers_each_job_on_its_own_line() {
        let spinner = Spinner::calibrate();
        let job = |iterations| Job::Task { iterations, io_us: 10, op_ns: 0.0, spinner };
        let jobs = [job(100), job(7)];
        let input: String = jobs.iter().map(|job| serde_json::to_string(job).unwrap() + "\n").collect();
        let mut output = Vec::new();
        serve_worker(input.as_bytes(), &mut output).unwrap();
        let replies: Vec<Reply> = String::from_utf8(output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(replies.iter().map(|r| r.counted).collect::<Vec<_>>(), [100, 7]);
    }

    #[test]
    fn without_a_registered_worker_the_pool_says_why() {
        // conlab-core's own tests register no worker executable: starting fails with the reason.
        let error = ProcessPool::start(1).err().expect("no worker executable");
        assert!(error.to_string().contains("conlab"), "{error}");
    }
}
