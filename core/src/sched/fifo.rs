//! `FifoPool`: Python's `concurrent.futures.ThreadPoolExecutor`, on real threads.
//!
//! k workers take jobs from one shared FIFO queue (a `Mutex<VecDeque>` and a `Condvar`, like
//! CPython's `queue.SimpleQueue` under the executor). `submit` returns a [`PoolFuture`] with
//! Python's semantics:
//!
//! | state | `cancel()` | `done()` | `result()` |
//! |---|---|---|---|
//! | pending (queued) | → cancelled, `true` | `false` | blocks (with a timeout) |
//! | running | `false` | `false` | blocks |
//! | finished | `false` | `true` | the value, or the task's error |
//! | cancelled | `true` | `true` | `Err(Cancelled)` |
//!
//! A task that fails — returns `Err` from [`FifoPool::submit_fallible`] (Python's raise) or
//! panics (natively; wasm aborts on panic) — finishes its future with the error instead of
//! taking the pool down. Done callbacks run in the thread that completes the future (the worker,
//! or the canceller), or at once if it is already done. [`wait`] and [`as_completed`] register a
//! waiter on each future, as CPython's `_AcquireFutures`/`_Waiter` do.
//!
//! The pool is *scoped*, like a `with ThreadPoolExecutor() as ex:` block: [`FifoPool::run`] starts
//! the workers on a thread team (so it runs in browser workers too), runs the body on the
//! calling member, and shuts down with `wait=True` when the body returns — tasks may borrow
//! from the caller. In the trace, lane 0 is the caller (submissions) and lanes 1..=k the workers.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::platform::{self, panic_message, Instant, PlatformError};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{lock, Arc, Condvar, Mutex, MutexGuard};
use crate::trace::{Recorder, SpanKind};

/// Why a task failed: Python's exception, or a Rust panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// The task returned `Err(message)`.
    Raised(String),
    /// The task panicked with this message.
    Panicked(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Raised(message) => write!(f, "the task raised: {message}"),
            Self::Panicked(message) => write!(f, "the task panicked: {message}"),
        }
    }
}

/// Why `result()` gave no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FutureError {
    /// Not done within the timeout (Python's `TimeoutError`).
    Timeout,
    /// Cancelled before it started (Python's `CancelledError`).
    Cancelled,
    /// The task failed.
    Failed(TaskError),
}

impl fmt::Display for FutureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => write!(f, "timed out waiting for the result"),
            Self::Cancelled => write!(f, "the task was cancelled"),
            Self::Failed(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for FutureError {}

/// Why the executor refused work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecutorError {
    Shutdown,
    ZeroChunksize,
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => write!(f, "cannot schedule new futures after shutdown"),
            Self::ZeroChunksize => write!(f, "chunksize must be >= 1"),
        }
    }
}

impl std::error::Error for ExecutorError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Running,
    Cancelled,
    Finished,
}

type Callback<T> = Box<dyn FnOnce(&PoolFuture<T>) + Send>;

struct FutureInner<T> {
    status: Status,
    outcome: Option<Result<T, TaskError>>,
    callbacks: Vec<Callback<T>>,
    /// (waiter, index of this future in the waiter's list)
    waiters: Vec<(Arc<Waiter>, usize)>,
}

struct FutureState<T> {
    id: usize,
    inner: Mutex<FutureInner<T>>,
    changed: Condvar,
}

/// The eventual result of a submitted task (clones share it).
pub struct PoolFuture<T> {
    state: Arc<FutureState<T>>,
}

impl<T> Clone for PoolFuture<T> {
    fn clone(&self) -> Self {
        Self { state: Arc::clone(&self.state) }
    }
}

impl<T> fmt::Debug for PoolFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolFuture(task {}, {:?})", self.state.id, lock(&self.state.inner).status)
    }
}

/// The deadline `timeout` from now (`None`: never).
fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|timeout| Instant::now().plus(timeout))
}

/// `None` once the deadline has passed, else the time left (`Some(None)`: no deadline).
fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(deadline) => {
            let left = deadline.duration_since(Instant::now());
            (!left.is_zero()).then_some(Some(left))
        }
    }
}

/// Waits on `condvar` until `ready(guard)` or the deadline; returns the guard and whether ready.
fn wait_while<'a, S>(
    mut guard: MutexGuard<'a, S>,
    condvar: &Condvar,
    deadline: Option<Instant>,
    ready: impl Fn(&S) -> bool,
) -> (MutexGuard<'a, S>, bool) {
    loop {
        if ready(&guard) {
            return (guard, true);
        }
        guard = match remaining(deadline) {
            None => return (guard, false),
            Some(None) => condvar.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some(Some(left)) => condvar.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0,
        };
    }
}

impl<T> PoolFuture<T> {
    fn new(id: usize) -> Self {
        Self {
            state: Arc::new(FutureState {
                id,
                inner: Mutex::new(FutureInner {
                    status: Status::Pending,
                    outcome: None,
                    callbacks: Vec::new(),
                    waiters: Vec::new(),
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// The task's number: its position in submission order, from 0.
    pub fn id(&self) -> usize {
        self.state.id
    }

    fn status(&self) -> Status {
        lock(&self.state.inner).status
    }

    pub fn running(&self) -> bool {
        self.status() == Status::Running
    }

    pub fn cancelled(&self) -> bool {
        self.status() == Status::Cancelled
    }

    /// Finished or cancelled.
    pub fn done(&self) -> bool {
        matches!(self.status(), Status::Finished | Status::Cancelled)
    }

    /// Cancels the task if it has not started: `true` if it is (now) cancelled, `false` if it
    /// is running or finished — a running thread cannot be stopped from outside.
    pub fn cancel(&self) -> bool {
        let mut inner = lock(&self.state.inner);
        match inner.status {
            Status::Cancelled => true,
            Status::Running | Status::Finished => false,
            Status::Pending => {
                inner.status = Status::Cancelled;
                self.complete(inner);
                true
            }
        }
    }

    /// Pending → running; `false` if it was cancelled meanwhile.
    fn start(&self) -> bool {
        let mut inner = lock(&self.state.inner);
        if inner.status != Status::Pending {
            return false;
        }
        inner.status = Status::Running;
        true
    }

    fn finish(&self, outcome: Result<T, TaskError>) {
        let mut inner = lock(&self.state.inner);
        inner.status = Status::Finished;
        inner.outcome = Some(outcome);
        self.complete(inner);
    }

    /// Wakes everyone waiting on this future and runs the done callbacks (outside the lock).
    fn complete(&self, mut inner: MutexGuard<'_, FutureInner<T>>) {
        let callbacks = std::mem::take(&mut inner.callbacks);
        let failed = inner.outcome.as_ref().is_some_and(|o| o.is_err());
        for (waiter, index) in inner.waiters.drain(..) {
            waiter.notify(index, failed);
        }
        drop(inner);
        self.state.changed.notify_all();
        for callback in callbacks {
            callback(self);
        }
    }

    /// Runs `callback(future)` when the future is done — at once, here, if it already is.
    pub fn add_done_callback(&self, callback: impl FnOnce(&PoolFuture<T>) + Send + 'static) {
        let mut inner = lock(&self.state.inner);
        if matches!(inner.status, Status::Finished | Status::Cancelled) {
            drop(inner);
            callback(self);
        } else {
            inner.callbacks.push(Box::new(callback));
        }
    }

    /// Blocks until done or `timeout` passes; `true` if done.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.settled(timeout, |_| ()) != Err(FutureError::Timeout)
    }

    /// The task's error once it is done: `Ok(None)` if it succeeded.
    pub fn exception(&self, timeout: Option<Duration>) -> Result<Option<TaskError>, FutureError> {
        self.settled(timeout, |outcome| outcome.as_ref().err().cloned())
    }

    /// Waits for the outcome (up to `timeout`) and reads it with `read`.
    fn settled<R>(
        &self,
        timeout: Option<Duration>,
        read: impl FnOnce(&mut Result<T, TaskError>) -> R,
    ) -> Result<R, FutureError> {
        let inner = lock(&self.state.inner);
        let (mut inner, done) = wait_while(inner, &self.state.changed, deadline_after(timeout), |inner| {
            matches!(inner.status, Status::Finished | Status::Cancelled)
        });
        if !done {
            return Err(FutureError::Timeout);
        }
        match inner.outcome.as_mut() {
            None => Err(FutureError::Cancelled),
            Some(outcome) => Ok(read(outcome)),
        }
    }

    /// Moves the value out, for a future no one else reads (`map`'s own).
    fn take(self) -> Result<T, FutureError> {
        let error = self.settled(None, |outcome| {
            std::mem::replace(outcome, Err(TaskError::Raised("result already taken".into())))
        })?;
        error.map_err(FutureError::Failed)
    }
}

impl<T: Clone> PoolFuture<T> {
    /// The task's value, waiting up to `timeout` (`None`: forever).
    pub fn result(&self, timeout: Option<Duration>) -> Result<T, FutureError> {
        self.settled(timeout, |outcome| outcome.clone())?.map_err(FutureError::Failed)
    }
}

/// Completion notices for `wait` and `as_completed`: indices of done futures, in the order
/// they completed (with whether each failed).
struct Waiter {
    done: Mutex<VecDeque<(usize, bool)>>,
    changed: Condvar,
}

impl Waiter {
    fn notify(&self, index: usize, failed: bool) {
        lock(&self.done).push_back((index, failed));
        self.changed.notify_all();
    }

    /// Registers on every future; already-done ones are noted at once.
    fn register<T>(futures: &[PoolFuture<T>]) -> Arc<Self> {
        let waiter = Arc::new(Waiter { done: Mutex::new(VecDeque::new()), changed: Condvar::new() });
        for (index, future) in futures.iter().enumerate() {
            let mut inner = lock(&future.state.inner);
            match inner.status {
                Status::Finished | Status::Cancelled => {
                    let failed = inner.outcome.as_ref().is_some_and(|o| o.is_err());
                    lock(&waiter.done).push_back((index, failed));
                }
                Status::Pending | Status::Running => inner.waiters.push((Arc::clone(&waiter), index)),
            }
        }
        waiter
    }

    fn unregister<T>(this: &Arc<Self>, futures: &[PoolFuture<T>]) {
        for future in futures {
            lock(&future.state.inner).waiters.retain(|(waiter, _)| !Arc::ptr_eq(waiter, this));
        }
    }
}

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    FirstCompleted,
    /// The first future that fails (a cancelled one does not count), else all.
    FirstException,
    AllCompleted,
}

/// Indices (into the slice given to [`wait`]) of the futures done and not done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waited {
    pub done: Vec<usize>,
    pub not_done: Vec<usize>,
}

/// Blocks until `return_when` holds for `futures` or `timeout` passes.
pub fn wait<T>(futures: &[PoolFuture<T>], return_when: ReturnWhen, timeout: Option<Duration>) -> Waited {
    let waiter = Waiter::register(futures);
    let done = lock(&waiter.done);
    let (done, _) = wait_while(done, &waiter.changed, deadline_after(timeout), |done| match return_when {
        ReturnWhen::FirstCompleted => !done.is_empty(),
        ReturnWhen::FirstException => done.iter().any(|(_, failed)| *failed) || done.len() == futures.len(),
        ReturnWhen::AllCompleted => done.len() == futures.len(),
    });
    drop(done);
    Waiter::unregister(&waiter, futures);
    // Report the state as of now (more may have finished since the condition held).
    let (done, not_done) = (0..futures.len()).partition(|&index| futures[index].done());
    Waited { done, not_done }
}

/// The futures in the order they complete; after `timeout`, one `Err(Timeout)` ends it.
pub fn as_completed<T>(futures: &[PoolFuture<T>], timeout: Option<Duration>) -> AsCompleted<'_, T> {
    AsCompleted {
        futures,
        waiter: Waiter::register(futures),
        deadline: deadline_after(timeout),
        yielded: 0,
        timed_out: false,
    }
}

pub struct AsCompleted<'a, T> {
    futures: &'a [PoolFuture<T>],
    waiter: Arc<Waiter>,
    deadline: Option<Instant>,
    yielded: usize,
    timed_out: bool,
}

impl<'a, T> Iterator for AsCompleted<'a, T> {
    type Item = Result<&'a PoolFuture<T>, FutureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.yielded == self.futures.len() || self.timed_out {
            return None;
        }
        let done = lock(&self.waiter.done);
        let (mut done, ready) = wait_while(done, &self.waiter.changed, self.deadline, |done| !done.is_empty());
        if !ready {
            self.timed_out = true;
            return Some(Err(FutureError::Timeout));
        }
        let (index, _) = done.pop_front().expect("ready means non-empty");
        self.yielded += 1;
        Some(Ok(&self.futures[index]))
    }
}

impl<T> Drop for AsCompleted<'_, T> {
    fn drop(&mut self) {
        Waiter::unregister(&self.waiter, self.futures);
    }
}

enum JobAction {
    Run,
    Cancel,
}

type JobFn<'scope> = Box<dyn FnOnce(JobAction) -> bool + Send + 'scope>;

/// A queued task: its number, and what runs (or cancels) it; running returns whether the task
/// started (it had not been cancelled). The closure's `'scope` lifetime is erased to `'static`
/// while queued — see [`FifoPool::submit_fallible`] for why that is sound.
struct Job {
    id: usize,
    run: JobFn<'static>,
}

struct Queue {
    jobs: VecDeque<Job>,
    shutdown: bool,
    running: usize,
}

thread_local! {
    /// (pool, worker number) of the FifoPool worker on this thread; (null, 0) elsewhere.
    static CURRENT: std::cell::Cell<(*const (), usize)> = const { std::cell::Cell::new((std::ptr::null(), 0)) };
}

/// A thread pool with one FIFO queue, alive for the duration of [`FifoPool::run`].
///
/// As with `std::thread::scope`, `'scope` is the pool's own lifetime (tasks may capture the
/// pool, to submit more work) and `'env` the caller's (tasks may borrow its data).
pub struct FifoPool<'scope, 'env: 'scope> {
    workers: usize,
    queue: Mutex<Queue>,
    /// Workers wait here for jobs.
    work: Condvar,
    /// `shutdown(wait)` waits here for the queue to drain.
    drained: Condvar,
    submitted: AtomicUsize,
    recorder: &'env Recorder,
    scope: PhantomData<&'scope mut &'env ()>,
}

impl<'env> FifoPool<'_, 'env> {
    /// `Ok` if a pool of `workers` can start here: it needs one more thread than workers, for the
    /// caller's body.
    pub fn check(workers: usize) -> Result<(), PlatformError> {
        if workers == 0 {
            return Err(PlatformError::NoThreads);
        }
        platform::check_team_size(workers + 1)
    }

    /// Starts `workers` threads, runs `body` with the pool on the calling team member, then
    /// shuts down with `wait=true` (also if `body` panics) and joins the workers.
    pub fn run<R: Send>(
        workers: usize,
        recorder: &'env Recorder,
        body: impl for<'scope> FnOnce(&'scope FifoPool<'scope, 'env>) -> R + Send,
    ) -> Result<R, PlatformError> {
        Self::check(workers)?;
        let pool = FifoPool {
            workers,
            queue: Mutex::new(Queue { jobs: VecDeque::new(), shutdown: false, running: 0 }),
            work: Condvar::new(),
            drained: Condvar::new(),
            submitted: AtomicUsize::new(0),
            recorder,
            scope: PhantomData,
        };
        let body = Mutex::new(Some(body));
        let result = Mutex::new(None);
        let team = platform::run_team(workers + 1, |member| {
            if member.index == 0 {
                struct ShutdownOnDrop<'p, 's, 'env>(&'p FifoPool<'s, 'env>);
                impl Drop for ShutdownOnDrop<'_, '_, '_> {
                    fn drop(&mut self) {
                        self.0.shutdown(true, std::thread::panicking());
                    }
                }
                let _shutdown = ShutdownOnDrop(&pool);
                let body = lock(&body).take().expect("one body");
                *lock(&result) = Some(body(&pool));
            } else {
                pool.work_loop(member.index);
            }
        });
        let outcome = team.map(|()| lock(&result).take().expect("member 0 ran the body"));
        drop(pool);
        outcome
    }
}

impl<'scope> FifoPool<'scope, '_> {
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The calling worker's number (1..=k), if the caller is one of this pool's workers.
    pub fn current_worker(&self) -> Option<usize> {
        let (pool, worker) = CURRENT.with(std::cell::Cell::get);
        std::ptr::eq(pool, self as *const Self as *const ()).then_some(worker)
    }

    /// Schedules `task`; its future resolves to the value it returns.
    pub fn submit<T: Send + 'static>(
        &self,
        task: impl FnOnce() -> T + Send + 'scope,
    ) -> Result<PoolFuture<T>, ExecutorError> {
        self.submit_fallible(move || Ok(task()))
    }

    /// Schedules `task`; `Err(message)` finishes its future with [`TaskError::Raised`].
    pub fn submit_fallible<T: Send + 'static>(
        &self,
        task: impl FnOnce() -> Result<T, String> + Send + 'scope,
    ) -> Result<PoolFuture<T>, ExecutorError> {
        let mut queue = lock(&self.queue);
        if queue.shutdown {
            return Err(ExecutorError::Shutdown);
        }
        let id = self.submitted.fetch_add(1, Ordering::Relaxed);
        let future = PoolFuture::new(id);
        let handle = future.clone();
        let run: JobFn<'scope> = Box::new(move |action| match action {
            JobAction::Cancel => {
                handle.cancel();
                false
            }
            JobAction::Run => {
                if !handle.start() {
                    return false;
                }
                let outcome = match panic::catch_unwind(AssertUnwindSafe(task)) {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(message)) => Err(TaskError::Raised(message)),
                    Err(payload) => Err(TaskError::Panicked(panic_message(payload.as_ref()))),
                };
                handle.finish(outcome);
                true
            }
        });
        // SAFETY: only the lifetime changes (same layout). Every queued job is run or cancelled
        // — and so dropped — before `FifoPool::run` returns: the body's end shuts the pool down
        // with wait=true, workers drain the queue before they exit, and `run` drops whatever a
        // failed team start left behind. Everything a job borrows outlives that call.
        let run = unsafe { std::mem::transmute::<JobFn<'scope>, JobFn<'static>>(run) };
        queue.jobs.push_back(Job { id, run });
        drop(queue);
        self.work.notify_one();
        if self.recorder.is_enabled() {
            let now = Instant::now();
            self.recorder.record_at(
                self.current_worker().unwrap_or(0),
                SpanKind::Mark,
                format!("submit task {id}"),
                now,
                now,
            );
        }
        Ok(future)
    }

    /// `f` over `items` in order, `chunksize` items per task (Python's `Executor.map`). The
    /// tasks are submitted now; iterating waits for each result in turn.
    pub fn map<I, U>(
        &self,
        f: impl Fn(I) -> U + Send + Sync + 'scope,
        items: impl IntoIterator<Item = I>,
        chunksize: usize,
    ) -> Result<MapResults<U>, ExecutorError>
    where
        I: Send + 'scope,
        U: Send + 'static,
    {
        if chunksize == 0 {
            return Err(ExecutorError::ZeroChunksize);
        }
        let f = Arc::new(f);
        let mut items = items.into_iter().peekable();
        let mut futures = VecDeque::new();
        while items.peek().is_some() {
            let chunk: Vec<I> = items.by_ref().take(chunksize).collect();
            let f = Arc::clone(&f);
            futures.push_back(self.submit(move || chunk.into_iter().map(|item| f(item)).collect::<Vec<U>>())?);
        }
        Ok(MapResults { futures, current: Vec::new().into_iter() })
    }

    /// Stops accepting tasks. With `cancel_futures`, cancels every task not yet started; with
    /// `wait`, blocks until the queue is drained and no task runs (from one of the pool's own
    /// workers it does not wait: that would wait for itself).
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let mut queue = lock(&self.queue);
        queue.shutdown = true;
        let cancelled: Vec<Job> = if cancel_futures { queue.jobs.drain(..).collect() } else { Vec::new() };
        drop(queue);
        self.work.notify_all();
        for job in cancelled {
            (job.run)(JobAction::Cancel);
        }
        if wait && self.current_worker().is_none() {
            let queue = lock(&self.queue);
            drop(wait_while(queue, &self.drained, None, |queue| queue.jobs.is_empty() && queue.running == 0));
        }
    }

    fn work_loop(&self, worker: usize) {
        let previous = CURRENT.with(|current| current.replace((self as *const Self as *const (), worker)));
        let mut lane = self.recorder.lane(worker);
        let tracing = self.recorder.is_enabled();
        loop {
            let mut queue = lock(&self.queue);
            let idle_since = tracing.then(Instant::now);
            let mut waited = false;
            let job = loop {
                if let Some(job) = queue.jobs.pop_front() {
                    queue.running += 1;
                    break Some(job);
                }
                if queue.shutdown {
                    break None;
                }
                waited = true;
                queue = self.work.wait(queue).unwrap_or_else(|p| p.into_inner());
            };
            drop(queue);
            if let (true, Some(since)) = (waited, idle_since) {
                lane.record(SpanKind::Idle, "waiting for a task", since, Instant::now());
            }
            let Some(job) = job else { break };
            let start = tracing.then(Instant::now);
            let started = (job.run)(JobAction::Run);
            if let (true, Some(start)) = (started, start) {
                lane.record(SpanKind::Run, format!("task {}", job.id), start, Instant::now());
            }
            let mut queue = lock(&self.queue);
            queue.running -= 1;
            let drained = queue.jobs.is_empty() && queue.running == 0;
            drop(queue);
            if drained {
                self.drained.notify_all();
            }
        }
        CURRENT.with(|current| current.set(previous));
    }
}

/// The results of [`FifoPool::map`], in input order.
pub struct MapResults<U> {
    futures: VecDeque<PoolFuture<Vec<U>>>,
    current: std::vec::IntoIter<U>,
}

impl<U> Iterator for MapResults<U> {
    type Item = Result<U, FutureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(value) = self.current.next() {
                return Some(Ok(value));
            }
            match self.futures.pop_front()?.take() {
                Ok(values) => self.current = values.into_iter(),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::atomic::AtomicBool;

    const SHORT: Option<Duration> = Some(Duration::from_millis(20));
    const LONG: Option<Duration> = Some(Duration::from_secs(10));

    fn pool<R: Send>(workers: usize, body: impl for<'scope> FnOnce(&'scope FifoPool<'scope, '_>) -> R + Send) -> R {
        FifoPool::run(workers, &Recorder::new(false), body).unwrap()
    }

    /// A gate tasks block on until the test opens it.
    #[derive(Default)]
    struct Gate(Mutex<bool>, Condvar);

    impl Gate {
        fn pass(&self) {
            let open = lock(&self.0);
            drop(wait_while(open, &self.1, None, |open| *open));
        }
        fn open(&self) {
            *lock(&self.0) = true;
            self.1.notify_all();
        }
    }

    #[test]
    fn submit_returns_results_and_errors_without_killing_the_pool() {
        pool(2, |pool| {
            let ok = pool.submit(|| 6 * 7).unwrap();
            let raised = pool.submit_fallible(|| Err::<u32, _>("bad input".to_string())).unwrap();
            assert_eq!(ok.result(LONG), Ok(42));
            assert_eq!(ok.result(None), Ok(42), "a result can be read again");
            assert_eq!(raised.result(LONG), Err(FutureError::Failed(TaskError::Raised("bad input".into()))));
            assert_eq!(raised.exception(LONG), Ok(Some(TaskError::Raised("bad input".into()))));
            assert_eq!(ok.exception(LONG), Ok(None));
            assert!(ok.done() && !ok.running() && !ok.cancelled());
            assert_eq!((ok.id(), raised.id()), (0, 1));
        });
    }

    #[test]
    fn a_panicking_task_is_captured() {
        pool(1, |pool| {
            let panicked = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
            assert_eq!(panicked.result(LONG), Err(FutureError::Failed(TaskError::Panicked("boom".into()))));
            assert_eq!(pool.submit(|| 1).unwrap().result(LONG), Ok(1), "the worker survived");
        });
    }

    #[test]
    fn result_times_out_while_the_task_runs() {
        let gate = Gate::default();
        pool(1, |pool| {
            let blocked = pool.submit(|| gate.pass()).unwrap();
            assert_eq!(blocked.result(SHORT), Err(FutureError::Timeout));
            assert!(!blocked.wait(SHORT));
            gate.open();
            assert_eq!(blocked.result(LONG), Ok(()));
        });
    }

    #[test]
    fn cancel_succeeds_only_before_the_task_starts() {
        let gate = Gate::default();
        let started = AtomicBool::new(false);
        pool(1, |pool| {
            let running = pool
                .submit(|| {
                    started.store(true, Ordering::Release);
                    gate.pass()
                })
                .unwrap();
            let queued = pool.submit(|| 7).unwrap();
            while !started.load(Ordering::Acquire) {
                platform::sleep(Duration::from_millis(1));
            }
            assert!(running.running());
            assert!(!running.cancel(), "a running task cannot be cancelled");
            assert!(queued.cancel() && queued.cancel(), "a queued one can, and stays cancelled");
            assert!(queued.done() && queued.cancelled());
            assert_eq!(queued.result(None), Err(FutureError::Cancelled));
            gate.open();
            assert_eq!(running.result(LONG), Ok(()));
            assert!(!running.cancel(), "nor a finished one");
        });
    }

    #[test]
    fn done_callbacks_run_on_completion_or_at_once() {
        let (sender, receiver) = std::sync::mpsc::channel();
        pool(1, |pool| {
            let future = pool.submit(|| 5).unwrap();
            let tx = sender.clone();
            future.add_done_callback(move |f| tx.send(("early", f.result(None))).unwrap());
            future.wait(None);
            let tx = sender.clone();
            future.add_done_callback(move |f| tx.send(("late", f.result(None))).unwrap());
            let cancelled = pool.submit(|| 0);
            drop(cancelled);
        });
        let mut seen: Vec<_> = receiver.try_iter().collect();
        seen.sort_by_key(|(when, _)| *when);
        assert_eq!(seen, [("early", Ok(5)), ("late", Ok(5))]);
    }

    #[test]
    fn map_keeps_input_order_for_every_chunksize() {
        pool(3, |pool| {
            for chunksize in [1, 2, 7, 100] {
                let out: Result<Vec<u64>, _> = pool.map(|x: u64| x * x, 0..50, chunksize).unwrap().collect();
                assert_eq!(out.unwrap(), (0..50).map(|x| x * x).collect::<Vec<_>>());
            }
            assert_eq!(pool.map(|x: u64| x, 0..5, 0).err(), Some(ExecutorError::ZeroChunksize));
        });
    }

    #[test]
    fn as_completed_yields_in_completion_order() {
        let gates: Vec<Gate> = (0..3).map(|_| Gate::default()).collect();
        pool(3, |pool| {
            let futures: Vec<_> = gates
                .iter()
                .enumerate()
                .map(|(i, gate)| {
                    pool.submit(move || {
                        gate.pass();
                        i
                    })
                    .unwrap()
                })
                .collect();
            let mut completed = as_completed(&futures, LONG);
            for i in [2, 0, 1] {
                gates[i].open();
                assert_eq!(completed.next().unwrap().unwrap().result(None), Ok(i));
            }
            assert!(completed.next().is_none());
        });
    }

    #[test]
    fn as_completed_ends_with_a_timeout() {
        let gate = Gate::default();
        pool(1, |pool| {
            let futures = vec![pool.submit(|| gate.pass()).unwrap()];
            let mut completed = as_completed(&futures, SHORT);
            assert_eq!(completed.next().unwrap().err(), Some(FutureError::Timeout));
            assert!(completed.next().is_none());
            gate.open();
        });
    }

    #[test]
    fn wait_first_completed_first_exception_and_all() {
        let gate = Gate::default();
        pool(2, |pool| {
            let futures = vec![
                pool.submit_fallible(|| {
                    gate.pass();
                    Ok(1)
                })
                .unwrap(),
                pool.submit_fallible(|| Ok(2)).unwrap(),
            ];
            let first = wait(&futures, ReturnWhen::FirstCompleted, LONG);
            assert_eq!(first, Waited { done: vec![1], not_done: vec![0] });
            let timed_out = wait(&futures, ReturnWhen::AllCompleted, SHORT);
            assert_eq!(timed_out.not_done, [0]);
            gate.open();
            assert_eq!(wait(&futures, ReturnWhen::AllCompleted, LONG), Waited { done: vec![0, 1], not_done: vec![] });
        });
        let gate = Gate::default();
        pool(2, |pool| {
            let futures = vec![pool.submit_fallible(|| Err("x".into())).unwrap(), pool.submit(|| gate.pass()).unwrap()];
            let waited = wait(&futures, ReturnWhen::FirstException, LONG);
            assert_eq!(waited, Waited { done: vec![0], not_done: vec![1] });
            gate.open();
        });
    }

    #[test]
    fn shutdown_refuses_new_work_and_can_cancel_the_queue() {
        let gate = Gate::default();
        let ran = AtomicUsize::new(0);
        pool(1, |pool| {
            let first = pool.submit(|| gate.pass()).unwrap();
            let queued: Vec<_> = (0..5).map(|_| pool.submit(|| ran.fetch_add(1, Ordering::Relaxed)).unwrap()).collect();
            while !first.running() {
                platform::sleep(Duration::from_millis(1));
            }
            pool.shutdown(false, true);
            assert!(queued.iter().all(PoolFuture::cancelled));
            assert_eq!(pool.submit(|| 0).err(), Some(ExecutorError::Shutdown));
            gate.open();
            assert!(first.wait(LONG));
        });
        assert_eq!(ran.into_inner(), 0);
    }

    #[test]
    fn leaving_the_scope_waits_for_queued_work() {
        let ran = AtomicUsize::new(0);
        pool(2, |pool| {
            for _ in 0..100 {
                pool.submit(|| ran.fetch_add(1, Ordering::Relaxed)).unwrap();
            }
        });
        assert_eq!(ran.into_inner(), 100);
    }

    #[test]
    fn a_task_that_waits_on_its_own_child_in_a_full_pool_times_out_instead_of_hanging() {
        pool(1, |pool| {
            let parent = pool
                .submit(|| {
                    let child = pool.submit(|| 1).unwrap();
                    child.result(SHORT)
                })
                .unwrap();
            assert_eq!(parent.result(LONG), Ok(Err(FutureError::Timeout)));
        });
    }

    #[test]
    fn under_stress_every_task_runs_exactly_once() {
        // Under Miri, 200 tasks (20 000 take it six minutes).
        let tasks = if cfg!(miri) { 200 } else { 20_000 };
        let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
        pool(4, |pool| {
            let futures: Vec<_> = counts
                .iter()
                .map(|count| pool.submit(move || count.fetch_add(1, Ordering::Relaxed)).unwrap())
                .collect();
            assert_eq!(wait(&futures, ReturnWhen::AllCompleted, None).not_done, Vec::<usize>::new());
        });
        assert!(counts.iter().all(|count| count.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn the_trace_shows_submissions_tasks_and_idle_workers() {
        let recorder = Recorder::new(true);
        FifoPool::run(2, &recorder, |pool| {
            let futures: Vec<_> =
                (0..4).map(|i| pool.submit(move || platform::sleep(Duration::from_millis(1 + i))).unwrap()).collect();
            wait(&futures, ReturnWhen::AllCompleted, None);
        })
        .unwrap();
        let spans = recorder.take();
        let count = |kind, thread: Option<usize>| {
            spans.iter().filter(|s| s.kind == kind && thread.is_none_or(|t| s.thread == t)).count()
        };
        assert_eq!(count(SpanKind::Mark, Some(0)), 4, "submissions on the caller's lane");
        assert_eq!(count(SpanKind::Run, None), 4);
        assert!(spans.iter().filter(|s| s.kind == SpanKind::Run).all(|s| s.thread >= 1 && s.thread <= 2));
        assert!(count(SpanKind::Idle, None) >= 1);
    }
}
