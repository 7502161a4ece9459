//! `ProcessPool`: Python's `multiprocessing.Pool` / `ProcessPoolExecutor` — share-nothing
//! worker processes. Jobs cross to a worker serialised (serde JSON, the pickle analogue), in
//! chunks as `Pool.map(chunksize=…)` sends them, and replies come back the same way; each worker
//! runs its own interpreter with its own GIL, so CPU-bound jobs run in parallel.
//!
//! The workers are `platform::WorkerProcess`es: natively the `conlab` binary re-executed with a
//! hidden subcommand (real OS processes, so start-up and copying cost what they really cost); in
//! browsers Web Workers each holding its own wasm instance and memory. A payload travels with a
//! message (copied through a pipe or by `postMessage`, or transferred in browsers), or is placed
//! once in memory a worker reads in place ([`ProcessPool::share`]: `/dev/shm` natively, the
//! worker's own `SharedArrayBuffer` in browsers).

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::gil::{Gil, DEFAULT_SWITCH_INTERVAL};
use super::manager::{self, Pace};
use super::{Bytecode, Interpreter, Mode};
use crate::kernels::spin::Spinner;
use crate::platform::{Delivery, Instant, PlatformError, StartMethod, WorkerProcess};
use crate::sync::Arc;

/// A call sent to a worker (what `pool.map(f, args)` pickles).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Job {
    /// Blocking I/O of `io_us` µs, then `counter += 1` `iterations` times, at `op_ns` per
    /// instruction (busy work timed by the parent's calibration, so every process works alike).
    Task { iterations: i64, io_us: u32, op_ns: f64, spinner: Spinner },
    /// The sum of the message's payload bytes: the bytes must really arrive.
    SumPayload,
    /// The sum of the first `len` bytes shared with this worker.
    SumShared { len: usize },
    /// `d[key] += 1` through a manager's dict proxy ([`manager::manager_updates`]).
    ManagerUpdates { address: String, key: String, updates: u32, pace: Pace },
    /// `with v.get_lock(): v.value += 1` on a shared `Value` ([`manager::value_updates`]).
    ValueUpdates { address: String, updates: u32, pace: Pace },
    /// `a[slot] += 1` on a shared raw array ([`manager::raw_array_updates`]).
    RawArrayUpdates { address: String, slot: usize, updates: u32, pace: Pace },
}

/// A worker's answer to one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The count a task reached, or a sum.
    pub value: i64,
    /// Time the job ran inside the worker, ns.
    pub busy_ns: u64,
}

/// What a worker sends back for one message: a reply per job, or why it could not.
type Answer = Result<Vec<Reply>, String>;

/// A worker process's answer to a message (a chunk of jobs as JSON); `shared` is the memory
/// last shared with it. Registered with the platform as the worker's `WorkerAnswer`.
pub fn answer(message: &[u8], payload: &[u8], shared: &[u8]) -> Vec<u8> {
    let answer: Answer = serde_json::from_slice::<Vec<Job>>(message)
        .map_err(|error| format!("a message that is not a chunk of jobs: {error}"))
        .and_then(|jobs| jobs.iter().map(|job| job.run(payload, shared)).collect());
    serde_json::to_vec(&answer).expect("replies serialise")
}

impl Job {
    /// Runs the job as a worker does, given the message's payload and the shared bytes.
    pub fn run(&self, payload: &[u8], shared: &[u8]) -> Result<Reply, String> {
        let start = Instant::now();
        let value = match *self {
            Job::Task { iterations, io_us, op_ns, spinner } => {
                let interpreter =
                    Interpreter { mode: Mode::Gil(Arc::new(Gil::new(DEFAULT_SWITCH_INTERVAL))), op_ns, spinner };
                interpreter.result(&Bytecode::task(0, iterations, io_us), 0)
            }
            Job::SumPayload => byte_sum(payload),
            Job::SumShared { len } => {
                let bytes =
                    shared.get(..len).ok_or_else(|| format!("{len} bytes asked for, {} shared", shared.len()))?;
                byte_sum(bytes)
            }
            Job::ManagerUpdates { ref address, ref key, updates, pace } => {
                manager::manager_updates(address, key, updates, pace)?
            }
            Job::ValueUpdates { ref address, updates, pace } => manager::value_updates(address, updates, pace)?,
            Job::RawArrayUpdates { ref address, slot, updates, pace } => {
                manager::raw_array_updates(address, slot, updates, pace)?
            }
        };
        Ok(Reply { value, busy_ns: start.elapsed().as_nanos() as u64 })
    }
}

/// Task numbers as a short list: `3, 4, 5 … 39` past a dozen.
fn list(jobs: &[usize]) -> String {
    let shown: Vec<String> = jobs.iter().take(12).map(usize::to_string).collect();
    match jobs.len() {
        0..=12 => shown.join(", "),
        _ => format!("{} … {}", shown[..11].join(", "), jobs[jobs.len() - 1]),
    }
}

/// The sum of `bytes` (what `SumPayload` and `SumShared` answer).
pub fn byte_sum(bytes: &[u8]) -> i64 {
    bytes.iter().map(|&b| i64::from(b)).sum()
}

/// Chunks a worker may have queued before the pool reads its first reply: one running, one
/// waiting, so a worker never idles between chunks and no pipe fills up.
const WINDOW: usize = 2;

/// A pool of worker processes; they exit when it is dropped.
pub struct ProcessPool {
    workers: Vec<WorkerProcess>,
    delivery: Delivery,
    /// How its workers (and any replacement) start.
    method: StartMethod,
}

/// What [`ProcessPool::map_supervised`] does when a worker dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDeath {
    /// Python's `ProcessPoolExecutor`: the pool is broken, and every task not yet done fails
    /// with `BrokenProcessPool`.
    Fail,
    /// A supervisor's: a replacement worker starts and the dead worker's tasks run again.
    Replace,
}

/// How a supervised `map` went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Supervised {
    /// Each job's reply, in job order; `None` for a job that failed.
    pub replies: Vec<Option<Reply>>,
    /// Jobs run again on a replacement, in the order they were lost.
    pub retried: Vec<usize>,
    /// Why the pool broke ([`OnDeath::Fail`]), naming the jobs that failed.
    pub broken: Option<String>,
    /// From the kill to the pool reading the dead worker's end.
    pub detected_after: Option<Duration>,
    /// Workers that died.
    pub deaths: usize,
}

/// How long a supervised `map` waits for any reply before it looks at `keep_going` again.
const POLL: Duration = Duration::from_millis(20);

impl ProcessPool {
    /// `Ok` if worker processes can start here (checked without starting one).
    pub fn check() -> Result<(), PlatformError> {
        WorkerProcess::check()
    }

    /// `Ok` if worker processes can start here by `method`.
    pub fn check_method(method: StartMethod) -> Result<(), PlatformError> {
        WorkerProcess::check_method(method)
    }

    /// Starts `workers` processes (the start-up cost of `multiprocessing`); payloads are copied.
    pub fn start(workers: usize) -> Result<Self, PlatformError> {
        Self::start_with(workers, StartMethod::Spawn)
    }

    /// [`ProcessPool::start`] by a chosen start method.
    pub fn start_with(workers: usize, method: StartMethod) -> Result<Self, PlatformError> {
        if workers == 0 {
            return Err(PlatformError::NoThreads);
        }
        let workers = (0..workers).map(|_| WorkerProcess::start_with(method, answer)).collect::<Result<_, _>>()?;
        Ok(Self { workers, delivery: Delivery::Copy, method })
    }

    /// Sends payloads this way from now on, if the platform can.
    pub fn deliver(&mut self, delivery: Delivery) -> Result<(), PlatformError> {
        delivery.check()?;
        self.delivery = delivery;
        Ok(())
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Places `bytes` where every worker reads them in place (`Job::SumShared`).
    pub fn share(&mut self, bytes: &[u8]) -> Result<(), PlatformError> {
        self.workers.iter_mut().try_for_each(|worker| worker.share(bytes))
    }

    /// One round trip: `jobs` and `payload` to worker `worker`, and its replies.
    pub fn call(&mut self, worker: usize, jobs: &[Job], payload: &[u8]) -> Result<Vec<Reply>, PlatformError> {
        self.send(worker, jobs, payload)?;
        self.collect(worker)
    }

    /// `executor.submit`, for a caller that must not block (an event loop): sends `jobs` to
    /// worker `worker`; [`ProcessPool::replied`] says when [`ProcessPool::collect`] has them.
    pub fn submit(&mut self, worker: usize, jobs: &[Job]) -> Result<(), PlatformError> {
        self.send(worker, jobs, &[])
    }

    /// Waits up to `timeout` until some worker's next replies are in (or it has died): which.
    pub fn wait_any(&mut self, timeout: Duration) -> Option<usize> {
        let mut workers: Vec<&mut WorkerProcess> = self.workers.iter_mut().collect();
        WorkerProcess::wait_any(&mut workers, timeout)
    }

    /// Whether worker `worker`'s next replies are in.
    pub fn replied(&mut self, worker: usize) -> bool {
        self.workers[worker].reply_ready()
    }

    /// `Pool.map`: the jobs in chunks of `chunksize` (≥ 1), chunk i to worker i mod k, each
    /// worker kept [`WINDOW`] chunks ahead; the replies in job order.
    pub fn map(&mut self, jobs: &[Job], chunksize: usize) -> Result<Vec<Reply>, PlatformError> {
        let chunks: Vec<&[Job]> = jobs.chunks(chunksize.max(1)).collect();
        let count = self.workers.len();
        let mut in_flight = vec![VecDeque::new(); count];
        let mut replies = vec![Vec::new(); chunks.len()];
        for (index, chunk) in chunks.iter().enumerate() {
            let worker = index % count;
            if in_flight[worker].len() == WINDOW {
                let done = in_flight[worker].pop_front().expect("a full window");
                replies[done] = self.collect(worker)?;
            }
            self.send(worker, chunk, &[])?;
            in_flight[worker].push_back(index);
        }
        for (worker, queue) in in_flight.into_iter().enumerate() {
            for done in queue {
                replies[done] = self.collect(worker)?;
            }
        }
        Ok(replies.into_iter().flatten().collect())
    }

    /// `map` one job per message that survives a worker's death as `on_death` says, reading
    /// whichever worker answers first (so a dead one is noticed as soon as its end is read, not
    /// when its turn comes). With `kill_after`, once that many jobs are done the pool kills the
    /// worker holding the oldest job in flight (the lab's stand-in for the OOM killer). Stops
    /// early, its jobs undone, when `keep_going` turns false.
    pub fn map_supervised(
        &mut self,
        jobs: &[Job],
        on_death: OnDeath,
        kill_after: Option<usize>,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Supervised, PlatformError> {
        let mut out = Supervised { replies: vec![None; jobs.len()], ..Supervised::default() };
        let mut pending: VecDeque<usize> = (0..jobs.len()).collect();
        let mut in_flight = vec![VecDeque::new(); self.workers.len()];
        let (mut done, mut killed_at) = (0, None);
        while keep_going() {
            for (worker, queue) in in_flight.iter_mut().enumerate() {
                while queue.len() < WINDOW {
                    let Some(job) = pending.pop_front() else { break };
                    self.send(worker, std::slice::from_ref(&jobs[job]), &[])?;
                    queue.push_back(job);
                }
            }
            if in_flight.iter().all(VecDeque::is_empty) {
                break;
            }
            if killed_at.is_none() && kill_after == Some(done) {
                if let Some(victim) = in_flight.iter().position(|queue| !queue.is_empty()) {
                    self.workers[victim].kill();
                    killed_at = Some(Instant::now());
                }
            }
            let Some(worker) = self.wait_any(POLL) else { continue };
            match self.collect(worker) {
                Ok(replies) => {
                    let job = in_flight[worker].pop_front().expect("a reply answers a job in flight");
                    out.replies[job] = replies.into_iter().next();
                    done += 1;
                }
                Err(error) => {
                    let error = match error {
                        PlatformError::Unavailable(why) => why,
                        other => other.to_string(),
                    };
                    out.deaths += 1;
                    out.detected_after = out.detected_after.or(killed_at.map(|at: Instant| at.elapsed()));
                    let lost: Vec<usize> = in_flight[worker].drain(..).collect();
                    if on_death == OnDeath::Fail {
                        let failed: Vec<usize> = (0..jobs.len()).filter(|&job| out.replies[job].is_none()).collect();
                        out.broken = Some(format!(
                            "BrokenProcessPool: a process in the pool was terminated abruptly while the future was \
                             running or pending ({error}); {} of {} tasks failed: {}",
                            failed.len(),
                            jobs.len(),
                            list(&failed)
                        ));
                        return Ok(out);
                    }
                    self.workers[worker] = WorkerProcess::start_with(self.method, answer)?;
                    lost.iter().rev().for_each(|&job| pending.push_front(job));
                    out.retried.extend(lost);
                }
            }
        }
        Ok(out)
    }

    fn send(&mut self, worker: usize, jobs: &[Job], payload: &[u8]) -> Result<(), PlatformError> {
        let message = serde_json::to_vec(jobs).expect("jobs serialise");
        self.workers[worker].send(&message, payload, self.delivery)
    }

    /// Worker `worker`'s replies to its oldest message not yet collected (waits for them).
    pub fn collect(&mut self, worker: usize) -> Result<Vec<Reply>, PlatformError> {
        let bytes = self.workers[worker].receive()?;
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| PlatformError::Unavailable(format!("a worker replied nonsense: {e}")))?;
        answer.map_err(|error| PlatformError::Unavailable(format!("a worker process failed: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(bytes: &[u8]) -> Answer {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_worker_answers_every_job_of_a_chunk_in_order() {
        let spinner = Spinner::calibrate();
        let task = |iterations| Job::Task { iterations, io_us: 10, op_ns: 0.0, spinner };
        let message = serde_json::to_vec(&[task(100), task(7), Job::SumPayload, Job::SumShared { len: 2 }]).unwrap();
        let values: Vec<i64> =
            replies(&answer(&message, &[1, 2, 3], &[10, 20, 30])).unwrap().iter().map(|r| r.value).collect();
        assert_eq!(values, [100, 7, 6, 30]);
    }

    #[test]
    fn asking_for_more_than_was_shared_is_an_error_reply() {
        let message = serde_json::to_vec(&[Job::SumShared { len: 4 }]).unwrap();
        assert_eq!(replies(&answer(&message, &[], &[1])).unwrap_err(), "4 bytes asked for, 1 shared");
        assert!(replies(&answer(b"nonsense", &[], &[])).unwrap_err().contains("not a chunk of jobs"));
    }

    #[test]
    fn without_a_registered_worker_the_pool_says_why() {
        // conlab-core's own tests register no worker executable: starting fails with the reason.
        let error = ProcessPool::start(1).err().expect("no worker executable");
        assert!(error.to_string().contains("conlab"), "{error}");
        let error = ProcessPool::start_with(1, StartMethod::ForkServer).err().expect("no executable to serve");
        assert!(error.to_string().contains("conlab"), "{error}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_worker_killed_mid_map_breaks_the_pool_or_is_replaced_and_nothing_is_lost() {
        let spinner = Spinner::calibrate();
        // ~2 ms a task at 20 ns an instruction: the kill lands while jobs are in flight.
        let jobs: Vec<Job> =
            (0..12).map(|_| Job::Task { iterations: 20_000, io_us: 0, op_ns: 20.0, spinner }).collect();
        let mut pool = ProcessPool::start_with(2, StartMethod::Fork).unwrap();
        let broken = pool.map_supervised(&jobs, OnDeath::Fail, Some(3), &|| true).unwrap();
        let message = broken.broken.as_deref().expect("the pool broke");
        assert!(message.starts_with("BrokenProcessPool"), "{message}");
        let failed = broken.replies.iter().filter(|reply| reply.is_none()).count();
        assert!(failed >= 1 && message.contains(&format!("{failed} of 12 tasks failed")), "{message}");
        assert!(broken.detected_after.is_some_and(|after| after < Duration::from_secs(1)), "{broken:?}");
        assert!(broken.replies.iter().flatten().all(|reply| reply.value == 20_000));

        let mut pool = ProcessPool::start_with(2, StartMethod::Fork).unwrap();
        let survived = pool.map_supervised(&jobs, OnDeath::Replace, Some(3), &|| true).unwrap();
        assert_eq!(survived.broken, None);
        assert_eq!(survived.deaths, 1);
        assert!(!survived.retried.is_empty(), "the dead worker's tasks ran again: {survived:?}");
        assert!(survived.replies.iter().all(|reply| reply.as_ref().is_some_and(|r| r.value == 20_000)));
        assert_eq!(list(&(0..20).collect::<Vec<_>>()), "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 … 19");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn forked_workers_need_no_executable_and_answer_like_spawned_ones() {
        // A fork of this (multi-threaded) test process: each child serves on its own pipes and
        // sees only them — two workers at once, each getting its own jobs back.
        let spinner = Spinner::calibrate();
        let jobs: Vec<Job> =
            (1..=6).map(|iterations| Job::Task { iterations, io_us: 0, op_ns: 0.0, spinner }).collect();
        let mut pool = ProcessPool::start_with(2, StartMethod::Fork).unwrap();
        let values: Vec<i64> = pool.map(&jobs, 1).unwrap().iter().map(|reply| reply.value).collect();
        assert_eq!(values, [1, 2, 3, 4, 5, 6]);
        pool.share(&[5, 6]).unwrap();
        assert_eq!(pool.call(1, &[Job::SumShared { len: 2 }], &[]).unwrap()[0].value, 11);
        drop(pool);
    }
}
