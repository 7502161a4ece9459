//! `StealPool`: a work-stealing pool with fork-join (`join`) and `scope`, built on our
//! [Chase–Lev deque](super::deque) — the scheduler of Cilk (Blumofe & Leiserson 1999,
//! "Scheduling multithreaded computations by work stealing") and of rayon-core, written small.
//!
//! Each worker owns a deque. `join(a, b)` pushes `b` at the bottom of the caller's deque, runs
//! `a`, then pops `b` back and runs it inline — unless a thief took it meanwhile, in which case
//! the caller steals other work until `b`'s latch is set ("help while waiting", so a worker
//! never blocks on a child). A worker with an empty deque looks in the global injector (where
//! tasks go when a deque is full), then steals the oldest task of a random victim. After
//! [`SPIN_ROUNDS`] empty searches it parks ([`super::sleep`]); pushing work wakes a sleeper, so
//! an idle pool uses no CPU.
//!
//! Jobs are two words (`JobRef`: a pointer and the function that runs it). `join`'s job lives
//! on the joiner's stack and `scope`'s spawned jobs on the heap; the joiner (or scope owner)
//! never returns before the job's latch is set, and the thread that sets a latch touches the
//! job no more afterwards — it wakes the owner through the pool, which outlives every job.
//!
//! Memory ordering: a job is handed over by the deque (Release on push's fence, Acquire on
//! steal) and its result back by its latch (SeqCst store, SeqCst load: the latch also takes part
//! in the sleep protocol's Dekker pairing).
//!
//! The pool is *scoped*: [`StealPool::run`] starts the workers on a thread team
//! (`platform::run_team`, so it works in browser workers too), runs the body on worker 0, and
//! returns once the body and every task it started have finished. Panics in tasks are caught
//! (natively; wasm aborts on panic) and resumed in the joiner, as rayon does.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};

use super::deque::{self, Steal, Stealer};
use super::sleep::Sleep;
use crate::platform::{self, Instant, PlatformError};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::cell::UnsafeCell;
use crate::sync::{lock, Mutex};
use crate::trace::{Lane, Recorder, SpanKind};

/// Empty searches (each a look at the injector and every victim) before a worker parks.
pub const SPIN_ROUNDS: u32 = 64;

/// A type-erased job: `execute(data, worker)` runs it exactly once.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    execute: unsafe fn(*const (), &WorkerThread<'_>),
}

// SAFETY: a JobRef points at a job whose closure and result are `Send`; it is run exactly once,
// by whichever worker takes it from a deque or the injector.
unsafe impl Send for JobRef {}

/// What each worker did during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs run: stolen, popped, taken from the injector, or a `join`'s second half inline.
    pub tasks: u64,
    /// Successful steals from another worker's deque.
    pub steals: u64,
    /// Steal attempts that found a victim's deque empty or lost a race for its last task.
    pub failed_steals: u64,
    /// Times the worker parked.
    pub parks: u64,
    /// Nanoseconds spent parked.
    pub parked_ns: u64,
}

/// Per-worker statistics of one [`StealPool::run`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub workers: Vec<WorkerStats>,
}

impl PoolStats {
    /// The statistics of all workers added up.
    pub fn total(&self) -> WorkerStats {
        self.workers.iter().fold(WorkerStats::default(), |sum, w| WorkerStats {
            tasks: sum.tasks + w.tasks,
            steals: sum.steals + w.steals,
            failed_steals: sum.failed_steals + w.failed_steals,
            parks: sum.parks + w.parks,
            parked_ns: sum.parked_ns + w.parked_ns,
        })
    }
}

/// State all workers of one pool share.
struct Shared<'t> {
    stealers: Vec<Stealer<JobRef>>,
    injector: Mutex<VecDeque<JobRef>>,
    /// Length of `injector`, readable without the lock.
    injected: AtomicUsize,
    sleep: Sleep,
    terminate: AtomicBool,
    recorder: &'t Recorder,
}

impl Shared<'_> {
    fn inject(&self, job: JobRef) {
        let mut injector = lock(&self.injector);
        injector.push_back(job);
        self.injected.store(injector.len(), Ordering::SeqCst);
    }

    fn take_injected(&self) -> Option<JobRef> {
        if self.injected.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut injector = lock(&self.injector);
        let job = injector.pop_front();
        self.injected.store(injector.len(), Ordering::SeqCst);
        job
    }

    /// Any work a parked worker should wake for (a cheap, conservative look).
    fn has_work(&self) -> bool {
        self.injected.load(Ordering::SeqCst) > 0 || self.stealers.iter().any(|stealer| !stealer.is_empty())
    }
}

/// A pool of work-stealing workers, alive for the duration of [`StealPool::run`].
pub struct StealPool<'t> {
    shared: &'t Shared<'t>,
}

thread_local! {
    /// The worker running on this thread (type-erased `*const WorkerThread`), or null.
    static CURRENT: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

impl StealPool<'_> {
    /// Starts `threads` workers, runs `body` on worker 0, and returns its result and what each
    /// worker did, once `body` and every task it forked have finished. The workers' timelines
    /// (run, steal, parked) go to `recorder`.
    pub fn run<R: Send>(
        threads: usize,
        recorder: &Recorder,
        body: impl FnOnce(&StealPool<'_>) -> R + Send,
    ) -> Result<(R, PoolStats), PlatformError> {
        platform::check_team_size(threads)?;
        let (owners, stealers): (Vec<_>, Vec<_>) = (0..threads).map(|_| deque::deque()).unzip();
        let owners: Vec<Mutex<Option<deque::Worker<JobRef>>>> =
            owners.into_iter().map(|o| Mutex::new(Some(o))).collect();
        let shared = Shared {
            stealers,
            injector: Mutex::new(VecDeque::new()),
            injected: AtomicUsize::new(0),
            sleep: Sleep::new(threads),
            terminate: AtomicBool::new(false),
            recorder,
        };
        let body = Mutex::new(Some(body));
        let result = Mutex::new(None);
        let stats = Mutex::new(vec![WorkerStats::default(); threads]);
        platform::run_team(threads, |member| {
            let deque = lock(&owners[member.index]).take().expect("each member takes its own deque");
            let worker = WorkerThread::new(member.index, deque, &shared);
            worker.enter(|| {
                if member.index == 0 {
                    let body = lock(&body).take().expect("one body");
                    let _end = EndPoolOnDrop(&shared);
                    let start = Instant::now();
                    *lock(&result) = Some(body(&StealPool { shared: &shared }));
                    worker.record(SpanKind::Run, "pool body", start);
                } else {
                    worker.wait_until(|| shared.terminate.load(Ordering::SeqCst));
                }
            });
            lock(&stats)[member.index] = worker.stats.get();
        })?;
        let result = lock(&result).take().expect("worker 0 ran the body");
        Ok((result, PoolStats { workers: stats.into_inner().unwrap_or_else(|p| p.into_inner()) }))
    }

    /// Runs `a` and `b`, potentially in parallel, and returns both results. `b` is offered to
    /// thieves while the caller runs `a`. Called outside this pool's workers, runs `a` then `b`.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        match WorkerThread::current_of(self.shared) {
            Some(worker) => worker.join(a, b),
            None => (a(), b()),
        }
    }

    /// Runs `op` with a [`Scope`] whose spawned tasks may borrow from the caller; returns once
    /// they have all finished.
    pub fn scope<'scope, R: Send>(&'scope self, op: impl FnOnce(&Scope<'scope>) -> R + Send) -> R {
        let owner = WorkerThread::current_of(self.shared);
        let scope = Scope {
            shared: self.shared as *const Shared<'_> as *const (),
            owner: owner.map_or(0, |w| w.index),
            pending: AtomicUsize::new(1),
            panic: Mutex::new(None),
            marker: PhantomData,
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| op(&scope)));
        scope.pending.fetch_sub(1, Ordering::SeqCst);
        if let Some(worker) = owner {
            worker.wait_until(|| scope.pending.load(Ordering::SeqCst) == 0);
        }
        if let Some(payload) = lock(&scope.panic).take() {
            panic::resume_unwind(payload);
        }
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// Workers in the pool.
    pub fn threads(&self) -> usize {
        self.shared.stealers.len()
    }

    /// The index of the calling worker (0-based), if it is one of this pool's.
    pub fn current_worker(&self) -> Option<usize> {
        WorkerThread::current_of(self.shared).map(|worker| worker.index)
    }
}

/// Ends the pool when the body returns or unwinds, so the other workers never wait forever.
struct EndPoolOnDrop<'a, 't>(&'a Shared<'t>);

impl Drop for EndPoolOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.terminate.store(true, Ordering::SeqCst);
        self.0.sleep.wake_all();
    }
}

/// A worker's own state; lives on its thread's stack for the whole run.
struct WorkerThread<'t> {
    index: usize,
    deque: deque::Worker<JobRef>,
    shared: &'t Shared<'t>,
    rng: Cell<u64>,
    stats: Cell<WorkerStats>,
    lane: RefCell<Lane<'t>>,
    tracing: bool,
}

impl<'t> WorkerThread<'t> {
    fn new(index: usize, deque: deque::Worker<JobRef>, shared: &'t Shared<'t>) -> Self {
        Self {
            index,
            deque,
            shared,
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9)),
            stats: Cell::new(WorkerStats::default()),
            lane: RefCell::new(shared.recorder.lane(index)),
            tracing: shared.recorder.is_enabled(),
        }
    }

    /// Runs `f` with this worker installed as the thread's current worker.
    fn enter(&self, f: impl FnOnce()) {
        struct Restore(*const ());
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|current| current.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|current| current.replace(self as *const Self as *const ())));
        f();
    }

    /// The current thread's worker, if it belongs to the pool `shared`.
    fn current_of<'a>(shared: &'a Shared<'_>) -> Option<&'a WorkerThread<'a>> {
        let current = CURRENT.with(Cell::get);
        if current.is_null() {
            return None;
        }
        // SAFETY: CURRENT is set only by `enter`, to a WorkerThread on this thread's stack that
        // outlives the `enter` call during which any code can observe the pointer; the lifetime
        // is shortened to the borrow of `shared`, which that worker references.
        let worker = unsafe { &*(current as *const WorkerThread<'a>) };
        std::ptr::eq(worker.shared as *const Shared<'_> as *const (), shared as *const Shared<'_> as *const ())
            .then_some(worker)
    }

    fn count(&self, update: impl FnOnce(&mut WorkerStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    fn record(&self, kind: SpanKind, label: impl Into<std::borrow::Cow<'static, str>>, start: Instant) {
        self.lane.borrow_mut().record(kind, label, start, Instant::now());
    }

    /// Pushes a job on this worker's deque (the injector if it is full) and wakes a sleeper.
    fn push(&self, job: JobRef) {
        if let Err(job) = self.deque.push(job) {
            self.shared.inject(job);
        }
        self.shared.sleep.wake_one();
    }

    fn execute(&self, job: JobRef) {
        self.count(|s| s.tasks += 1);
        // SAFETY: every JobRef in a deque or the injector is taken exactly once (the deque's
        // contract; the injector is under a lock), and its job is alive until it has run.
        unsafe { (job.execute)(job.data, self) }
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: victim selection only needs to be cheap and spread out.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// One search: own deque, the injector, then every other worker from a random start.
    /// Returns the job and the victim it was stolen from, if any.
    fn find_work(&self) -> Option<(JobRef, Option<usize>)> {
        if let Some(job) = self.deque.pop() {
            return Some((job, None));
        }
        if let Some(job) = self.shared.take_injected() {
            return Some((job, None));
        }
        let workers = self.shared.stealers.len();
        if workers < 2 {
            return None;
        }
        let start = (self.next_random() % workers as u64) as usize;
        for offset in 0..workers {
            let victim = (start + offset) % workers;
            if victim == self.index {
                continue;
            }
            loop {
                match self.shared.stealers[victim].steal() {
                    Steal::Success(job) => {
                        self.count(|s| s.steals += 1);
                        return Some((job, Some(victim)));
                    }
                    Steal::Retry => self.count(|s| s.failed_steals += 1),
                    Steal::Empty => {
                        self.count(|s| s.failed_steals += 1);
                        break;
                    }
                }
            }
        }
        None
    }

    /// Runs other work until `done()` holds: searching, then parking after [`SPIN_ROUNDS`]
    /// empty searches. Every waker of this worker makes `done()` or `has_work()` true first.
    fn wait_until(&self, done: impl Fn() -> bool) {
        let mut empty_rounds = 0;
        let mut searching_since = self.tracing.then(Instant::now);
        while !done() {
            match self.find_work() {
                Some((job, victim)) => {
                    empty_rounds = 0;
                    if let (Some(since), Some(victim)) = (searching_since.take(), victim) {
                        self.record(SpanKind::Steal, format!("stole from worker {victim}"), since);
                    }
                    let start = self.tracing.then(Instant::now);
                    self.execute(job);
                    if let Some(start) = start {
                        let label = match victim {
                            Some(victim) => format!("task stolen from worker {victim}"),
                            None => "task".to_string(),
                        };
                        self.record(SpanKind::Run, label, start);
                        searching_since = Some(Instant::now());
                    }
                }
                None if empty_rounds < SPIN_ROUNDS => {
                    empty_rounds += 1;
                    crate::sync::spin_yield();
                }
                None => {
                    if let Some(since) = searching_since.take() {
                        self.record(SpanKind::Steal, "found nothing to steal", since);
                    }
                    let start = Instant::now();
                    if self.shared.sleep.sleep(self.index, || done() || self.shared.has_work()) {
                        let parked_ns = start.elapsed().as_nanos() as u64;
                        self.count(|s| {
                            s.parks += 1;
                            s.parked_ns += parked_ns;
                        });
                        if self.tracing {
                            self.record(SpanKind::Idle, "parked", start);
                        }
                    }
                    empty_rounds = 0;
                    searching_since = self.tracing.then(Instant::now);
                }
            }
        }
        if let Some(since) = searching_since {
            self.record(SpanKind::Steal, "looked for work until done", since);
        }
    }

    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let job_b = StackJob::new(b, self.index);
        let job_ref = job_b.as_job_ref();
        self.push(job_ref);
        let result_a = panic::catch_unwind(AssertUnwindSafe(a));
        // Everything `a` pushed it has also taken back, so `b` is on top of our deque unless a
        // thief has it (or it overflowed to the injector).
        while !job_b.latch.load(Ordering::SeqCst) {
            match self.deque.pop() {
                Some(job) if job.data == job_ref.data => {
                    self.count(|s| s.tasks += 1);
                    job_b.run();
                    break;
                }
                Some(job) => self.execute(job),
                None => {
                    self.wait_until(|| job_b.latch.load(Ordering::SeqCst));
                    break;
                }
            }
        }
        let result_b = job_b.into_result();
        match (result_a, result_b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(payload), _) | (_, Err(payload)) => panic::resume_unwind(payload),
        }
    }
}

type Outcome<R> = Result<R, Box<dyn Any + Send>>;

/// `join`'s second closure, on the joiner's stack.
struct StackJob<F, R> {
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<Outcome<R>>>,
    latch: AtomicBool,
    owner: usize,
}

impl<F: FnOnce() -> R + Send, R: Send> StackJob<F, R> {
    fn new(func: F, owner: usize) -> Self {
        Self { func: UnsafeCell::new(Some(func)), result: UnsafeCell::new(None), latch: AtomicBool::new(false), owner }
    }

    fn as_job_ref(&self) -> JobRef {
        JobRef { data: self as *const Self as *const (), execute: Self::execute }
    }

    fn run(&self) {
        // SAFETY: the job runs exactly once (inline or by one thief), so nobody else touches
        // `func` or `result` until the latch is set or the joiner runs it itself.
        let func = self.func.with_mut(|func| unsafe { (*func).take() }).expect("a job runs once");
        let outcome = panic::catch_unwind(AssertUnwindSafe(func));
        // SAFETY: as above.
        self.result.with_mut(|result| unsafe { *result = Some(outcome) });
    }

    /// Run by a thief.
    unsafe fn execute(data: *const (), worker: &WorkerThread<'_>) {
        // SAFETY: `data` is the StackJob of a joiner still waiting for the latch (the caller's
        // contract); it stays alive until the store below.
        let this = unsafe { &*(data as *const Self) };
        let owner = this.owner;
        this.run();
        this.latch.store(true, Ordering::SeqCst);
        // `this` may be gone now: wake the owner through the pool.
        worker.shared.sleep.wake(owner);
    }

    fn into_result(self) -> Outcome<R> {
        self.result.into_inner().expect("the job has run")
    }
}

/// Tasks spawned in a [`StealPool::scope`]; all finish before `scope` returns.
pub struct Scope<'scope> {
    /// The pool's `Shared` (type-erased: `Scope` carries only the scope lifetime).
    shared: *const (),
    owner: usize,
    /// Unfinished tasks, plus one for the scope's own body.
    pending: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    marker: PhantomData<fn(&'scope ()) -> &'scope ()>,
}

// SAFETY: `shared` points at the pool's Shared state, which is Sync and outlives the scope; the
// other fields are Sync.
unsafe impl Sync for Scope<'_> {}

struct HeapJob<'scope, F> {
    scope: *const Scope<'scope>,
    func: F,
}

impl<'scope> Scope<'scope> {
    /// Starts `task` on the pool (pushed on the calling worker's deque, where thieves find it).
    pub fn spawn<F: FnOnce(&Scope<'scope>) + Send + 'scope>(&self, task: F) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `shared` was made from a live `&Shared` that outlives this scope.
        let shared = unsafe { &*(self.shared as *const Shared<'_>) };
        let job = Box::new(HeapJob { scope: self as *const Self, func: task });
        let job_ref = JobRef { data: Box::into_raw(job) as *const (), execute: execute_heap_job::<F> };
        match WorkerThread::current_of(shared) {
            Some(worker) => worker.push(job_ref),
            // Not on a worker (the caller smuggled the scope out): run it here and now.
            None => {
                // SAFETY: the job was just leaked from a Box and is run exactly once, here.
                unsafe { run_heap_job::<'scope, F>(job_ref.data) };
            }
        }
    }
}

/// Runs a spawned task and retires it; returns the owner to wake if it was the scope's last.
///
/// # Safety
/// `data` is a `HeapJob<'scope, F>` leaked by `Scope::spawn`, run exactly once, whose scope is
/// still waiting for it.
unsafe fn run_heap_job<'scope, F: FnOnce(&Scope<'scope>) + Send + 'scope>(data: *const ()) -> Option<usize> {
    // SAFETY: the caller's contract: a leaked HeapJob, taken back once.
    let job = unsafe { Box::from_raw(data as *mut HeapJob<'scope, F>) };
    // SAFETY: the scope waits for `pending` to reach 0, so it outlives this task.
    let scope = unsafe { &*job.scope };
    let func = job.func;
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| func(scope))) {
        lock(&scope.panic).get_or_insert(payload);
    }
    let owner = scope.owner;
    // After this decrement the scope may be gone.
    (scope.pending.fetch_sub(1, Ordering::SeqCst) == 1).then_some(owner)
}

/// # Safety
/// As [`run_heap_job`].
unsafe fn execute_heap_job<'scope, F: FnOnce(&Scope<'scope>) + Send + 'scope>(
    data: *const (),
    worker: &WorkerThread<'_>,
) {
    // SAFETY: forwarded from the caller.
    if let Some(owner) = unsafe { run_heap_job::<'scope, F>(data) } {
        worker.shared.sleep.wake(owner);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::atomic::AtomicU64;
    use std::time::Duration;

    fn fib(pool: &StealPool<'_>, n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let (a, b) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
        a + b
    }

    fn run<R: Send>(threads: usize, body: impl FnOnce(&StealPool<'_>) -> R + Send) -> (R, PoolStats) {
        StealPool::run(threads, &Recorder::new(false), body).unwrap()
    }

    #[test]
    fn join_computes_fib_on_any_number_of_workers() {
        // fib(n) makes fib(n + 1) − 1 joins, each running its second half once (Miri: n = 10).
        let (n, fib_n, joins) = if cfg!(miri) { (10, 55, 88) } else { (20, 6765, 10945) };
        for threads in [1, 2, 4] {
            let (value, stats) = run(threads, |pool| fib(pool, n));
            assert_eq!(value, fib_n);
            assert_eq!(stats.workers.len(), threads);
            assert!(stats.total().tasks >= joins, "{stats:?}");
        }
    }

    #[test]
    fn a_joined_task_is_stolen_by_another_worker() {
        let ((a, b), stats) = run(2, |pool| {
            let stolen = AtomicBool::new(false);
            pool.join(
                || {
                    let start = Instant::now();
                    while !stolen.load(Ordering::Acquire) {
                        assert!(start.elapsed() < Duration::from_secs(10), "nobody stole the other half");
                        std::hint::spin_loop();
                    }
                    pool.current_worker()
                },
                || {
                    stolen.store(true, Ordering::Release);
                    pool.current_worker()
                },
            )
        });
        assert_eq!((a, b), (Some(0), Some(1)));
        assert_eq!(stats.workers[1].steals, 1);
    }

    #[test]
    fn scope_tasks_borrow_and_all_finish() {
        let sum = AtomicU64::new(0);
        let items: Vec<u64> = (1..=1000).collect();
        run(3, |pool| {
            pool.scope(|scope| {
                for chunk in items.chunks(10) {
                    let sum = &sum;
                    scope.spawn(move |scope| {
                        // Nested spawns count too.
                        scope.spawn(move |_| {
                            sum.fetch_add(chunk.iter().sum::<u64>(), Ordering::Relaxed);
                        });
                    });
                }
            })
        });
        assert_eq!(sum.into_inner(), 500_500);
    }

    #[test]
    fn a_panic_in_either_half_reaches_the_joiner_after_both_finished() {
        let other_finished = AtomicBool::new(false);
        let outcome = StealPool::run(2, &Recorder::new(false), |pool| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                pool.join(|| panic!("left fails"), || other_finished.store(true, Ordering::Release))
            }))
            .map_err(|payload| platform::panic_message(payload.as_ref()))
        });
        assert_eq!(outcome.unwrap().0, Err("left fails".to_string()));
        assert!(other_finished.into_inner());
        let scoped = StealPool::run(2, &Recorder::new(false), |pool| {
            panic::catch_unwind(AssertUnwindSafe(|| pool.scope(|scope| scope.spawn(|_| panic!("spawned fails")))))
                .is_err()
        });
        assert!(scoped.unwrap().0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "times the parking against the clock, and Miri's clock is virtual")]
    fn idle_workers_park_instead_of_spinning() {
        let (_, stats) = run(4, |_| platform::sleep(Duration::from_millis(100)));
        for (index, worker) in stats.workers.iter().enumerate().skip(1) {
            assert!(worker.parks >= 1, "worker {index} never parked: {stats:?}");
            assert!(worker.parked_ns >= 50_000_000, "worker {index} parked only {} ns", worker.parked_ns);
        }
    }

    #[test]
    fn outside_its_workers_join_and_scope_run_inline() {
        let recorder = Recorder::new(false);
        let escaped = StealPool::run(2, &recorder, |pool| {
            std::thread::scope(|threads| {
                threads
                    .spawn(|| {
                        let (a, b) = pool.join(|| 1, || 2);
                        let spawned = AtomicU64::new(0);
                        pool.scope(|scope| scope.spawn(|_| _ = spawned.fetch_add(1, Ordering::Relaxed)));
                        (a + b, spawned.into_inner(), pool.current_worker())
                    })
                    .join()
                    .unwrap()
            })
        });
        assert_eq!(escaped.unwrap().0, (3, 1, None));
    }

    #[test]
    fn deep_recursion_overflows_the_deque_into_the_injector() {
        // A chain of nested joins keeps that many jobs queued on worker 0 at once: more than
        // a deque holds, so the rest goes to the injector and must still be found.
        fn chain(pool: &StealPool<'_>, depth: u32) -> u32 {
            if depth == 0 {
                return 0;
            }
            let (a, b) = pool.join(|| chain(pool, depth - 1), || 1);
            a + b
        }
        let depth = if cfg!(miri) { deque::CAPACITY as u32 + 20 } else { 1000 };
        for threads in [1, 3] {
            assert_eq!(run(threads, |pool| chain(pool, depth)).0, depth);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "waits 5 ms for the other worker to park, and Miri's clock is virtual")]
    fn the_trace_shows_runs_steals_and_parking() {
        let recorder = Recorder::new(true);
        StealPool::run(2, &recorder, |pool| {
            platform::sleep(Duration::from_millis(5));
            let stolen = AtomicBool::new(false);
            pool.join(
                || {
                    while !stolen.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                },
                || stolen.store(true, Ordering::Release),
            );
        })
        .unwrap();
        let spans = recorder.take();
        let kinds: std::collections::BTreeSet<_> = spans.iter().map(|s| format!("{:?}", s.kind)).collect();
        assert!(kinds.contains("Run") && kinds.contains("Steal") && kinds.contains("Idle"), "{kinds:?}");
        assert!(spans.iter().any(|s| s.label.starts_with("task stolen from worker")));
    }
}
