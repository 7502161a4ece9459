//! The loop itself: tasks, their handles, timers, and the futures every task awaits.
//!
//! A task is a future in a slot. Its waker (one per slot, sharing an `Arc` with 63 others, see
//! [`wake`]; `to_thread` jobs may wake it from another thread) queues the slot's index unless it
//! is already queued. An iteration moves the woken tasks into the
//! ready queue, polls the tasks that were ready when it began, then fires due timers.
//! Everything else is single-threaded: the loop is a thread-local while [`EventLoop::run`] runs,
//! which is how [`spawn`], [`sleep`] and the primitives find it.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::blocks::{Counted, Shared};
use super::clock::{Clock, Remote};
use super::steps::{LoopStep, TaskView, TimerView};
use super::wake::{self, WakeChunk, CHUNK};
use super::{AioError, AioResult};
use crate::platform::Instant;
use crate::sched::fifo::FifoPool;
use crate::stats::LogHistogram;
use crate::sync::{lock, Condvar, Mutex};
use crate::trace::{Recorder, SpanKind, TASK_LANE};

/// Wakers cross threads (a `to_thread` job wakes its task): std's `Arc`, as `Waker` expects.
type WakeArc<T> = std::sync::Arc<T>;

/// What a task's handles, its wrapper and the loop share. Kept small (112 bytes): a burst of
/// 100 000 tasks touches every byte of it cold; what few tasks need lives in [`Extra`].
pub(super) struct Header {
    /// How many [`Shared`] pointers reach the task.
    refs: Cell<usize>,
    /// asyncio's task number: `Task-1` is the first task of the loop.
    pub(super) serial: u64,
    /// Its slot in the loop.
    id: u32,
    /// The listing line it last marked ([`at_line`]; 0: none), for the step view.
    line: Cell<u32>,
    pub(super) cancel_pending: Cell<bool>,
    /// Polled at least once (a task cancelled before that never runs).
    started: Cell<bool>,
    pub(super) done: Cell<bool>,
    pub(super) cancelled: Cell<bool>,
    /// Finished by raising something other than `Cancelled`.
    pub(super) failed: Cell<bool>,
    /// The task awaiting this one — almost always the only one; others go in [`Extra`].
    joiner: Cell<Option<Waker>>,
    /// The collective wait watching this task (its progress, this task's index there) —
    /// almost always one (a gather); others go in [`Extra`].
    watcher: Cell<Option<(Rc<WatchedTasks>, usize)>>,
    /// What the task waits on.
    waiting: Cell<Option<Waiting>>,
    /// Its slot's waker, cloned once at spawn: a poll lends it, never clones it.
    waker: Waker,
    /// Allocated by the few tasks that need it.
    extra: OnceCell<Box<RefCell<Extra>>>,
}

/// What few tasks need: a name, a second joiner or watcher, and when tracing since when the
/// task waits.
#[derive(Default)]
struct Extra {
    /// A name given at spawn; otherwise the task is `Task-{serial}` (spelled out on demand).
    name: Option<Box<str>>,
    joiners: Vec<Waker>,
    watchers: Vec<(Rc<WatchedTasks>, usize)>,
    waiting_since: Duration,
}

impl Header {
    pub(super) fn name(&self) -> String {
        match self.extra.get().and_then(|extra| extra.borrow().name.as_deref().map(str::to_owned)) {
            Some(name) => name,
            None => format!("Task-{}", self.serial),
        }
    }

    /// The side block, allocated on first use.
    fn extra(&self) -> std::cell::RefMut<'_, Extra> {
        self.extra.get_or_init(Box::default).borrow_mut()
    }

    /// Its slot in the loop.
    fn slot(&self) -> usize {
        self.id as usize
    }

    /// What the task waits on, in words ("something" if it never said).
    fn waiting_label(&self) -> Cow<'static, str> {
        let waiting = self.waiting.take();
        let label = waiting.as_ref().map_or(Cow::Borrowed("something"), Waiting::label);
        self.waiting.set(waiting);
        label
    }
}

/// A task as the loop sees it: its header, and a step.
pub(super) trait Task: Counted {
    fn header(&self) -> &Header;
    /// Runs the task's future once; `Ready` once it has finished (the loop then calls
    /// [`Header::finish`]).
    fn step(&self, cx: &mut Context<'_>) -> Poll<()>;
    /// What it raised, if it failed and nobody has taken its result (asyncio's "Task
    /// exception was never retrieved").
    fn unretrieved_failure(&self) -> Option<String>;
}

/// A task with its result type, as its handles see it.
trait TaskOutput<T>: Task {
    fn take_result(&self) -> Option<AioResult<T>>;
}

/// A shared handle to any task.
pub(super) type TaskRef = Shared<dyn Task>;

/// One block per task ([`super::blocks`]): the header, then the future until it finishes, then
/// its result.
struct TaskCell<F, T> {
    header: Header,
    state: RefCell<TaskState<F, T>>,
}

enum TaskState<F, T> {
    Running(F),
    Finished(Option<AioResult<T>>),
}

impl<F, T> Counted for TaskCell<F, T> {
    fn refs(&self) -> &Cell<usize> {
        &self.header.refs
    }
}

impl<F: Future<Output = AioResult<T>>, T> Task for TaskCell<F, T> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn step(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.borrow_mut();
        let TaskState::Running(future) = &mut *state else { return Poll::Ready(()) };
        let header = &self.header;
        let outcome = if !header.started.replace(true) && header.cancel_pending.replace(false) {
            Err(AioError::Cancelled)
        } else {
            // SAFETY: the future lives inside this task's block, which never moves; it
            // is reached only through this `RefCell` and is dropped in place (the state is
            // overwritten below), never moved out — the pinning contract.
            let future = unsafe { Pin::new_unchecked(future) };
            match future.poll(cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            }
        };
        header.cancelled.set(matches!(outcome, Err(AioError::Cancelled)));
        header.failed.set(matches!(&outcome, Err(error) if *error != AioError::Cancelled));
        *state = TaskState::Finished(Some(outcome));
        Poll::Ready(())
    }

    fn unretrieved_failure(&self) -> Option<String> {
        match &*self.state.borrow() {
            TaskState::Finished(Some(Err(error))) if *error != AioError::Cancelled => Some(error.to_string()),
            _ => None,
        }
    }
}

impl<F: Future<Output = AioResult<T>>, T> TaskOutput<T> for TaskCell<F, T> {
    fn take_result(&self) -> Option<AioResult<T>> {
        match &mut *self.state.borrow_mut() {
            TaskState::Finished(result) => result.take(),
            TaskState::Running(_) => None,
        }
    }
}

impl Header {
    /// Marks the task finished and wakes whoever waits for it.
    fn finish(&self) {
        self.done.set(true);
        let (joiners, watchers) = match self.extra.get() {
            Some(extra) => {
                let mut extra = extra.borrow_mut();
                (std::mem::take(&mut extra.joiners), std::mem::take(&mut extra.watchers))
            }
            None => (Vec::new(), Vec::new()),
        };
        for joiner in self.joiner.take().into_iter().chain(joiners) {
            joiner.wake();
        }
        for (progress, index) in self.watcher.take().into_iter().chain(watchers) {
            progress.finished(index, self.failed.get());
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    deadline: Duration,
    /// Ties fire in the order they were set.
    seq: u64,
    entry: TimerEntry,
}

/// What a due timer does, and whether it still matters (a dropped `sleep` cancels its timer).
struct TimerEntry(TimerAction, Rc<Cell<bool>>);

enum TimerAction {
    /// Wakes a sleeping task (its serial, for the step view).
    Wake(Waker, u64),
    /// `loop.call_later`'s callback, with the words the step view shows for it.
    Call(&'static str, Box<dyn FnOnce()>),
}

impl PartialEq for TimerEntry {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// A span of a task's lane, in loop time.
struct TaskSpan {
    serial: u64,
    kind: SpanKind,
    label: Cow<'static, str>,
    start: Duration,
    end: Duration,
}

/// Blocking calls handed to the FIFO pool by [`to_thread`].
type Job = Box<dyn FnOnce() + Send>;

/// The queue [`to_thread`] hands blocking calls to. [`EventLoop::run_with_threads`] serves it
/// with FIFO-pool workers of its own; a caller that already has threads (a team that also runs
/// a server's other parts) gives the loop one with [`EventLoop::with_jobs`] and serves it on
/// them.
#[derive(Default)]
pub struct Jobs {
    /// (jobs, closed)
    state: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

impl Jobs {
    fn push(&self, job: Job) {
        lock(&self.state).0.push_back(job);
        self.ready.notify_one();
    }

    /// Lets the serving threads return once the queue is empty.
    pub fn close(&self) {
        lock(&self.state).1 = true;
        self.ready.notify_all();
    }

    /// A worker's loop: runs jobs until the queue is closed and empty.
    pub fn serve(&self) {
        loop {
            let mut state = lock(&self.state);
            while state.0.is_empty() && !state.1 {
                state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            let Some(job) = state.0.pop_front() else { return };
            drop(state);
            job();
        }
    }
}

struct Inner {
    clock: Box<dyn Clock>,
    /// Live tasks by slot; a finished task's slot is reused.
    slots: RefCell<Vec<Option<TaskRef>>>,
    /// The slots' wake-up flags, 64 to a chunk ([`wake`]), kept across the tasks that reuse a
    /// slot (a stale waker only causes a spurious poll, which futures tolerate).
    wakes: RefCell<Vec<WakeArc<WakeChunk>>>,
    free: RefCell<Vec<usize>>,
    ready: RefCell<VecDeque<usize>>,
    remote: WakeArc<Remote>,
    timers: RefCell<BinaryHeap<Reverse<Timer>>>,
    next_seq: Cell<u64>,
    next_serial: Cell<u64>,
    current: RefCell<Option<TaskRef>>,
    jobs: Option<WakeArc<Jobs>>,
    tracing: bool,
    spans: RefCell<Vec<TaskSpan>>,
    /// Step mode: every task step, timer and clock jump, with the loop's state after it.
    steps: Option<RefCell<StepLog>>,
}

/// A loop's tables, emptied, with their room: what a thread's next loop starts with.
///
/// A burst of 100 000 tasks grows the slot table to 1.6 MB and the ready and free lists to
/// ~1 MB each; built afresh by every loop, they cost the kernel's page faults again each time
/// (see [`super::blocks`] for the same churn in task memory). A thread keeps the last loop's, up
/// to [`SPARE_SLOTS`] slots.
#[derive(Default)]
struct SpareTables {
    slots: Vec<Option<TaskRef>>,
    free: Vec<usize>,
    ready: VecDeque<usize>,
    timers: BinaryHeap<Reverse<Timer>>,
}

/// The most slots a spare table keeps room for (16 MiB of slot table).
const SPARE_SLOTS: usize = 1 << 20;

impl SpareTables {
    fn take() -> Self {
        SPARE.try_with(|spare| spare.take()).unwrap_or_default()
    }

    /// Keeps `self`'s room for this thread's next loop; the tables are empty.
    fn keep(self) {
        let room =
            self.slots.capacity().max(self.free.capacity()).max(self.ready.capacity()).max(self.timers.capacity());
        if room <= SPARE_SLOTS {
            _ = SPARE.try_with(|spare| spare.replace(self));
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut spare = SpareTables {
            slots: self.slots.take(),
            free: self.free.take(),
            ready: self.ready.take(),
            timers: self.timers.take(),
        };
        // Tasks left in a loop that never ran to its end are dropped here, as before.
        spare.slots.clear();
        spare.free.clear();
        spare.ready.clear();
        spare.timers.clear();
        spare.keep();
    }
}

/// What step mode records.
#[derive(Default)]
struct StepLog {
    steps: Vec<LoopStep>,
    iteration: u64,
    /// Every task the loop has had, finished ones too, in creation order.
    tasks: Vec<TaskRef>,
    findings: Vec<String>,
}

thread_local! {
    static LOOP: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
    static SPARE: RefCell<SpareTables> = RefCell::default();
}

/// Moves every woken task (local and remote) into the ready queue.
fn collect_wakes(inner: &Inner) {
    let mut ready = inner.ready.borrow_mut();
    wake::drain_local_wakes(&mut ready);
    inner.remote.drain_into(&mut ready);
}

/// The running loop. Panics outside [`EventLoop::run`]: awaiting this module's futures
/// anywhere else is a programming error.
fn with_loop<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> R {
    LOOP.with_borrow(|current| f(current.as_ref().expect("conlab's aio futures only run inside EventLoop::run")))
}

/// Cancellation point: `Err(Cancelled)` (once) if the current task was asked to cancel.
pub(super) fn cancel_point() -> AioResult<()> {
    with_loop(|inner| match inner.current.borrow().as_ref() {
        Some(task) if task.header().cancel_pending.replace(false) => Err(AioError::Cancelled),
        _ => Ok(()),
    })
}

/// The running loop's wake-up channel (for I/O sources and their reactor).
pub(super) fn loop_remote() -> WakeArc<Remote> {
    with_loop(|inner| WakeArc::clone(&inner.remote))
}

/// What a pending task waits on (cheap to note; spelled out only for timelines and stalls).
#[derive(Clone)]
pub(super) enum Waiting {
    On(&'static str),
    Sleep(Duration),
    /// Another task, awaited or shielded.
    Task(Join, TaskRef),
}

/// How a task waits on another.
#[derive(Clone, Copy)]
pub(super) enum Join {
    Await,
    Shield,
}

impl Waiting {
    fn label(&self) -> Cow<'static, str> {
        match self {
            Self::On(what) => Cow::Borrowed(what),
            Self::Sleep(duration) => {
                Cow::Owned(format!("sleep {}", crate::units::format_seconds(duration.as_secs_f64())))
            }
            Self::Task(join, task) => {
                let verb = match join {
                    Join::Await => "await",
                    Join::Shield => "shield",
                };
                Cow::Owned(format!("{verb} {}", task.header().name()))
            }
        }
    }
}

/// Notes what the current task is about to wait on.
pub(super) fn waiting_on(what: Waiting) {
    with_loop(|inner| {
        if let Some(task) = inner.current.borrow().as_ref() {
            let header = task.header();
            if inner.tracing {
                header.extra().waiting_since = inner.clock.now();
            }
            header.waiting.set(Some(what));
        }
    })
}

/// The current task.
pub(super) fn current_task() -> Option<TaskRef> {
    with_loop(|inner| inner.current.borrow().clone())
}

/// Asks the task of `header` to cancel (see [`JoinHandle::cancel`]).
pub(super) fn cancel_header(header: &Header) {
    if !header.done.get() {
        header.cancel_pending.set(true);
        schedule(header.slot());
    }
}

/// Wakes task `id` (cancel requests, hand-offs).
fn schedule(id: usize) {
    with_loop(|inner| {
        if inner.slots.borrow().get(id).is_some_and(Option::is_some) {
            inner.wake_slot(id);
        }
    })
}

/// Marks an event on the current task's timeline lane (only built when tracing).
pub fn note<L: Into<Cow<'static, str>>>(label: impl FnOnce() -> L) {
    with_loop(|inner| {
        if inner.tracing {
            if let Some(task) = inner.current.borrow().as_ref() {
                let now = inner.clock.now();
                inner.span(task.header(), SpanKind::Mark, label().into(), now, now);
            }
        }
    })
}

/// The loop's time: since [`EventLoop::run`] started, on its clock.
pub fn now() -> Duration {
    with_loop(|inner| inner.clock.now())
}

/// An asyncio event loop on one thread.
pub struct EventLoop {
    inner: Rc<Inner>,
}

impl EventLoop {
    /// A loop on `clock`; `tracing` records a timeline lane per task.
    pub fn new(clock: impl Clock + 'static, tracing: bool) -> Self {
        Self::with_steps(clock, tracing, false)
    }

    /// A loop in step mode (see [`super::steps`]): it records every task step, due timer and
    /// clock jump with the ready queue, the timer heap and every task's state after it.
    pub fn stepping(clock: impl Clock + 'static) -> Self {
        Self::with_steps(clock, false, true)
    }

    fn with_steps(clock: impl Clock + 'static, tracing: bool, stepping: bool) -> Self {
        let spare = SpareTables::take();
        Self {
            inner: Rc::new(Inner {
                clock: Box::new(clock),
                slots: RefCell::new(spare.slots),
                wakes: RefCell::default(),
                free: RefCell::new(spare.free),
                ready: RefCell::new(spare.ready),
                remote: WakeArc::default(),
                timers: RefCell::new(spare.timers),
                next_seq: Cell::new(0),
                next_serial: Cell::new(1),
                current: RefCell::default(),
                jobs: None,
                tracing,
                spans: RefCell::default(),
                steps: stepping.then(RefCell::default),
            }),
        }
    }

    /// Step mode's record of the last run: its steps and what asyncio would have warned about.
    pub fn take_steps(&self) -> (Vec<LoopStep>, Vec<String>) {
        self.inner.steps.as_ref().map_or_else(Default::default, |log| {
            let mut log = log.borrow_mut();
            (std::mem::take(&mut log.steps), std::mem::take(&mut log.findings))
        })
    }

    /// `asyncio.run(main)`: runs `main` as the first task until it finishes; tasks still
    /// pending then are dropped (asyncio cancels them). `keep_going` is asked every iteration
    /// and at least every 20 ms while idle; once false the run ends with [`AioError::Stopped`].
    /// A loop where every task waits with no timer or thread to wake one ends with
    /// [`AioError::Stalled`] instead of hanging.
    pub fn run<T: 'static>(
        &self,
        main: impl Future<Output = AioResult<T>> + 'static,
        recorder: &Recorder,
        keep_going: &dyn Fn() -> bool,
    ) -> AioResult<T> {
        let origin = Instant::now();
        let previous = LOOP.with_borrow_mut(|current| current.replace(Rc::clone(&self.inner)));
        assert!(previous.is_none(), "an event loop is already running on this thread");
        wake::set_local_loop(Some(&self.inner.remote));
        let main = spawn_named("main", main);
        let outcome = self.drive(&main, keep_going);
        self.inner.note_leftovers(main.header().serial);
        let mut main = main;
        let result = outcome.and_then(|()| main.take_result().unwrap_or(Err(AioError::Cancelled)));
        // Drop what is left while the loop is still current (their destructors may use it).
        let leftovers: Vec<TaskRef> = self.inner.slots.borrow_mut().drain(..).flatten().collect();
        drop(leftovers);
        self.inner.free.borrow_mut().clear();
        self.inner.ready.borrow_mut().clear();
        self.inner.timers.borrow_mut().clear();
        LOOP.with_borrow_mut(|current| current.take());
        wake::set_local_loop(None);
        for span in self.inner.spans.borrow_mut().drain(..) {
            recorder.record_at(
                TASK_LANE + span.serial as usize,
                span.kind,
                span.label,
                origin.plus(span.start),
                origin.plus(span.end),
            );
        }
        result
    }

    /// This loop, with its [`to_thread`] calls queued on `jobs` (served by the caller's threads).
    pub fn with_jobs(mut self, jobs: WakeArc<Jobs>) -> Self {
        Rc::get_mut(&mut self.inner).expect("a loop not yet running").jobs = Some(jobs);
        self
    }

    /// [`EventLoop::run`] with `threads` FIFO-pool workers for [`to_thread`].
    pub fn run_with_threads<T: Send + 'static>(
        self,
        threads: usize,
        main: impl Future<Output = AioResult<T>> + 'static,
        recorder: &Recorder,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<AioResult<T>, crate::platform::PlatformError> {
        let jobs = WakeArc::new(Jobs::default());
        let this = self.with_jobs(WakeArc::clone(&jobs));
        // The loop and `main` are not Send: they move, untouched, to the member that runs them.
        let (this, main) = (SendCell(this), SendCell(main));
        FifoPool::run(threads, recorder, move |pool| {
            for _ in 0..threads {
                let jobs = WakeArc::clone(&jobs);
                let _ = pool.submit(move || jobs.serve());
            }
            let (this, main) = (this, main);
            let result = this.0.run(main.0, recorder, keep_going);
            jobs.close();
            result
        })
    }

    fn drive<T>(&self, main: &JoinHandle<T>, keep_going: &dyn Fn() -> bool) -> AioResult<()> {
        let inner = &self.inner;
        loop {
            collect_wakes(inner);
            if let Some(log) = &inner.steps {
                log.borrow_mut().iteration += 1;
            }
            let count = inner.ready.borrow().len();
            for _ in 0..count {
                let id = inner.ready.borrow_mut().pop_front();
                if let Some(id) = id {
                    inner.poll(id);
                }
            }
            if main.done() {
                return Ok(());
            }
            if !keep_going() {
                return Err(AioError::Stopped);
            }
            inner.fire_due_timers();
            collect_wakes(inner);
            if !inner.ready.borrow().is_empty() {
                continue;
            }
            let next = inner.next_deadline();
            if next.is_none() && inner.remote.in_flight() == 0 && inner.remote.io_sources() == 0 {
                return Err(AioError::Stalled(inner.describe_waits()));
            }
            inner.clock.idle(next, &inner.remote);
            inner.step_event(|| {
                format!("nothing is ready: the loop waits for its next timer, at {}", seconds(inner.clock.now()))
            });
        }
    }
}

fn seconds(time: Duration) -> String {
    format!("{:.3} s", time.as_secs_f64())
}

/// Moves a value to the thread that runs the loop inside a FIFO-pool team. The loop's values
/// never leave that thread afterwards; `Rc`s are only touched there.
struct SendCell<T>(T);
// SAFETY: `run_with_threads` hands the loop and `main` to exactly one team member (member 0,
// which runs the body) and nothing else touches them until that member is done; the `Rc`s
// inside are never used on two threads.
unsafe impl<T> Send for SendCell<T> {}

impl Inner {
    /// Queues slot `id` (on the loop's thread).
    fn wake_slot(&self, id: usize) {
        self.wakes.borrow()[id / CHUNK].wake(id % CHUNK);
    }

    /// A new slot and its wake-up state: the slot's index.
    fn new_slot(&self) -> usize {
        let mut slots = self.slots.borrow_mut();
        let id = slots.len();
        slots.push(None);
        let mut wakes = self.wakes.borrow_mut();
        // A second run of the loop starts its slots at 0 again, over the chunks of the first.
        if id / CHUNK == wakes.len() {
            wakes.push(WakeChunk::new(id, WakeArc::clone(&self.remote)));
        }
        id
    }

    fn poll(&self, id: usize) {
        let Some(task) = self.slots.borrow().get(id).and_then(Clone::clone) else { return };
        self.wakes.borrow()[id / CHUNK].clear(id % CHUNK);
        let header = task.header();
        let start = if self.tracing { self.clock.now() } else { Duration::ZERO };
        if self.tracing {
            let waited = header.waiting.take();
            if let Some(what) = waited {
                let since = header.extra().waiting_since;
                self.span(header, SpanKind::Wait, what.label(), since, start);
            }
        }
        *self.current.borrow_mut() = Some(task.clone());
        let line_before = header.line.get();
        let poll = task.step(&mut Context::from_waker(&header.waker));
        *self.current.borrow_mut() = None;
        if self.tracing {
            self.span(header, SpanKind::Run, Cow::Borrowed("running"), start, self.clock.now());
        }
        if poll.is_ready() {
            header.finish();
            self.slots.borrow_mut()[id] = None;
            self.free.borrow_mut().push(id);
            if self.tracing {
                let end = if header.cancelled.get() { "cancelled" } else { "done" };
                let now = self.clock.now();
                self.span(header, SpanKind::Mark, Cow::Borrowed(end), now, now);
            }
        }
        self.step_event(|| {
            let lines = match (line_before, header.line.get()) {
                (0, 0) => String::new(),
                (0, to) => format!(" to line {to}"),
                (from, to) if from == to => format!(" at line {from}"),
                (from, to) => format!(" from line {from} to line {to}"),
            };
            format!("{} runs{lines}; now {}", header.name(), self.state_of(&task, &self.ready_ids()))
        });
    }

    /// Step mode: records `event` and the loop's state after it.
    fn step_event(&self, event: impl FnOnce() -> String) {
        let Some(log) = &self.steps else { return };
        let ready_ids = self.ready_ids();
        let slots = self.slots.borrow();
        let ready = ready_ids.iter().filter_map(|&id| Some(slots.get(id)?.as_ref()?.header().name())).collect();
        drop(slots);
        let mut timers: Vec<(Duration, u64, String)> = self
            .timers
            .borrow()
            .iter()
            .filter(|Reverse(timer)| timer.entry.1.get())
            .map(|Reverse(timer)| {
                let what = match &timer.entry.0 {
                    TimerAction::Wake(_, serial) => format!("wakes {}", self.task_name(*serial)),
                    TimerAction::Call(what, _) => format!("calls {what}"),
                };
                (timer.deadline, timer.seq, what)
            })
            .collect();
        timers.sort();
        let tasks = log.borrow().tasks.clone();
        let tasks = tasks
            .iter()
            .map(|task| {
                let line = task.header().line.get();
                TaskView {
                    name: task.header().name(),
                    state: self.state_of(task, &ready_ids),
                    line: (line > 0).then_some(line),
                }
            })
            .collect();
        let event = event();
        let mut log = log.borrow_mut();
        let step = LoopStep {
            index: log.steps.len() + 1,
            iteration: log.iteration,
            time: self.clock.now().as_secs_f64(),
            event,
            ready,
            timers: timers.into_iter().map(|(due, _, what)| TimerView { due: due.as_secs_f64(), what }).collect(),
            tasks,
        };
        log.steps.push(step);
    }

    /// asyncio's ready queue: the tasks left to run this iteration, then those woken since.
    fn ready_ids(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = self.ready.borrow().iter().copied().collect();
        ids.extend(wake::local_wakes());
        ids
    }

    /// A task's state in the step view's words.
    fn state_of(&self, task: &TaskRef, ready_ids: &[usize]) -> String {
        let header = task.header();
        let queued = ready_ids.contains(&header.slot())
            && self.slots.borrow().get(header.slot()).and_then(Option::as_ref).is_some_and(|t| Shared::ptr_eq(t, task));
        let cancel = if header.cancel_pending.get() { " (cancel requested)" } else { "" };
        if header.done.get() {
            if header.cancelled.get() {
                "cancelled".into()
            } else if header.failed.get() {
                task.unretrieved_failure().map_or_else(|| "failed".into(), |error| format!("failed: {error}"))
            } else {
                "done".into()
            }
        } else if self.current.borrow().as_ref().is_some_and(|t| Shared::ptr_eq(t, task)) {
            "running".into()
        } else if queued && !header.started.get() {
            format!("pending: created, not yet run{cancel}")
        } else if queued {
            format!("ready{cancel}")
        } else {
            format!("waiting on {}{cancel}", header.waiting_label())
        }
    }

    /// The name of the task numbered `serial`, as step mode knows it.
    fn task_name(&self, serial: u64) -> String {
        let Some(log) = &self.steps else { return format!("Task-{serial}") };
        let log = log.borrow();
        log.tasks
            .iter()
            .find(|task| task.header().serial == serial)
            .map_or_else(|| format!("Task-{serial}"), |task| task.header().name())
    }

    /// Step mode, as `main` returns: what asyncio would warn about or leave undone.
    fn note_leftovers(&self, main: u64) {
        let Some(log) = &self.steps else { return };
        let now = seconds(self.clock.now());
        let ready_ids = self.ready_ids();
        let mut findings = Vec::new();
        for task in &log.borrow().tasks {
            let header = task.header();
            if let Some(error) = task.unretrieved_failure().filter(|_| header.serial != main) {
                findings.push(format!("Task exception was never retrieved: {} raised {error}", header.name()));
            }
            if !header.done.get() {
                findings.push(format!(
                    "{} was still pending when main returned at {now}: asyncio.run cancels it ({})",
                    header.name(),
                    self.state_of(task, &ready_ids)
                ));
            }
        }
        for Reverse(timer) in self.timers.borrow().iter() {
            if let (TimerAction::Call(what, _), true) = (&timer.entry.0, timer.entry.1.get()) {
                findings.push(format!(
                    "call_later's {what}, due at {}, never ran: the loop stopped at {now} when main returned",
                    seconds(timer.deadline)
                ));
            }
        }
        log.borrow_mut().findings.extend(findings);
    }

    fn span(&self, header: &Header, kind: SpanKind, label: Cow<'static, str>, start: Duration, end: Duration) {
        self.spans.borrow_mut().push(TaskSpan { serial: header.serial, kind, label, start, end });
    }

    fn fire_due_timers(&self) {
        let now = self.clock.now();
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                if timers.peek().is_none_or(|Reverse(timer)| timer.deadline > now) {
                    return;
                }
                timers.pop().expect("peeked")
            };
            let Reverse(Timer { entry: TimerEntry(action, live), .. }) = due;
            if !live.get() {
                continue;
            }
            match action {
                TimerAction::Wake(waker, serial) => {
                    waker.wake();
                    self.step_event(|| format!("{}'s timer is due: it joins the ready queue", self.task_name(serial)));
                }
                TimerAction::Call(what, callback) => {
                    callback();
                    self.step_event(|| format!("call_later's timer is due: the loop runs {what}"));
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        let mut timers = self.timers.borrow_mut();
        while timers.peek().is_some_and(|Reverse(timer)| !timer.entry.1.get()) {
            timers.pop();
        }
        timers.peek().map(|Reverse(timer)| timer.deadline)
    }

    fn describe_waits(&self) -> String {
        let slots = self.slots.borrow();
        let waits: Vec<String> = slots
            .iter()
            .flatten()
            .map(|task| {
                let header = task.header();
                format!("{} waits on {}", header.name(), header.waiting_label())
            })
            .collect();
        format!("every task waits and no timer, thread or socket can wake one ({})", waits.join(", "))
    }

    fn add_timer(&self, deadline: Duration, action: TimerAction) -> Rc<Cell<bool>> {
        let live = Rc::new(Cell::new(true));
        let seq = self.next_seq.replace(self.next_seq.get() + 1);
        self.timers.borrow_mut().push(Reverse(Timer { deadline, seq, entry: TimerEntry(action, Rc::clone(&live)) }));
        live
    }
}

/// How far a set of watched tasks has got — what `gather`, `wait`, `as_completed` and task
/// groups wait on, updated by each task as it finishes (O(1) per task, however many are
/// watched).
#[derive(Default)]
pub(super) struct WatchedTasks {
    /// Whether `finished` records the order (as_completed); gather and wait only count.
    ordered: bool,
    /// Indices of the watched tasks in the order they finished, not yet consumed.
    finished: RefCell<VecDeque<usize>>,
    count: Cell<usize>,
    /// The first watched task to fail.
    first_failure: Cell<Option<usize>>,
    waker: RefCell<Option<Waker>>,
}

impl WatchedTasks {
    /// Starts watching `handles` (index = position); `ordered` keeps the order they finish in
    /// for [`WatchedTasks::next_finished`].
    pub(super) fn watch<'h, T: 'h>(handles: impl IntoIterator<Item = &'h JoinHandle<T>>, ordered: bool) -> Rc<Self> {
        let progress = Rc::new(Self { ordered, ..Self::default() });
        for (index, handle) in handles.into_iter().enumerate() {
            progress.add(index, handle.header());
        }
        progress
    }

    /// Watches one more task as `index`.
    pub(super) fn add(self: &Rc<Self>, index: usize, header: &Header) {
        if header.done.get() {
            self.finished(index, header.failed.get());
        } else {
            let watcher = (Rc::clone(self), index);
            match header.watcher.take() {
                None => header.watcher.set(Some(watcher)),
                first @ Some(_) => {
                    header.watcher.set(first);
                    header.extra().watchers.push(watcher);
                }
            }
        }
    }

    fn finished(&self, index: usize, failed: bool) {
        if self.ordered {
            self.finished.borrow_mut().push_back(index);
        }
        self.count.set(self.count.get() + 1);
        if failed && self.first_failure.get().is_none() {
            self.first_failure.set(Some(index));
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Watched tasks finished so far.
    pub(super) fn count(&self) -> usize {
        self.count.get()
    }

    pub(super) fn first_failure(&self) -> Option<usize> {
        self.first_failure.get()
    }

    /// The next finished index not yet taken, in finishing order.
    pub(super) fn next_finished(&self) -> Option<usize> {
        self.finished.borrow_mut().pop_front()
    }

    /// Wakes `waker` at the next finish.
    pub(super) fn wake_on_next(&self, waker: &Waker) {
        *self.waker.borrow_mut() = Some(waker.clone());
    }
}

/// A task's handle (asyncio's `Task`): await it for the task's result, or cancel it.
pub struct JoinHandle<T> {
    task: Shared<dyn TaskOutput<T>>,
}

impl<T> JoinHandle<T> {
    /// Asks the task to cancel (`Task.cancel()`): its current or next await of a cancellation
    /// point returns `Err(Cancelled)`. False if it has already finished.
    pub fn cancel(&self) -> bool {
        let running = !self.header().done.get();
        cancel_header(self.header());
        running
    }

    pub fn done(&self) -> bool {
        self.header().done.get()
    }

    /// Whether it finished by letting `Cancelled` propagate.
    pub fn cancelled(&self) -> bool {
        self.header().cancelled.get()
    }

    /// `Task-N`, or the name it was given.
    pub fn name(&self) -> String {
        self.header().name()
    }

    /// The result of a finished task (once).
    pub fn take_result(&mut self) -> Option<AioResult<T>> {
        self.task.take_result()
    }

    pub(super) fn header(&self) -> &Header {
        self.task.header()
    }

    pub(super) fn task(&self) -> TaskRef {
        Shared::view(&self.task, |task| -> NonNull<dyn Task> { task })
    }

    /// Registers `waker` to be woken when the task finishes.
    pub(super) fn on_done(&self, waker: &Waker) {
        let header = self.header();
        let first = header.joiner.take();
        match &first {
            None => header.joiner.set(Some(waker.clone())),
            Some(joiner) if joiner.will_wake(waker) => header.joiner.set(first),
            Some(_) => {
                header.joiner.set(first);
                let mut extra = header.extra();
                if !extra.joiners.iter().any(|w| w.will_wake(waker)) {
                    extra.joiners.push(waker.clone());
                }
            }
        }
    }
}

/// Awaiting a handle: the task's result. If the awaiting task is cancelled meanwhile, the
/// awaited task is cancelled too (as `await task` does); [`super::shield`] prevents that.
impl<T> Future for JoinHandle<T> {
    type Output = AioResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done() {
            return Poll::Ready(
                this.take_result().unwrap_or_else(|| Err(AioError::Raised("the result was already taken".into()))),
            );
        }
        if let Err(cancelled) = cancel_point() {
            this.cancel();
            return Poll::Ready(Err(cancelled));
        }
        this.on_done(cx.waker());
        waiting_on(Waiting::Task(Join::Await, this.task()));
        Poll::Pending
    }
}

/// `asyncio.create_task(future)`: schedules `future` as a task named `Task-N`.
pub fn spawn<T: 'static>(future: impl Future<Output = AioResult<T>> + 'static) -> JoinHandle<T> {
    spawn_task(None, future)
}

/// [`spawn`] with a name (`create_task(…, name=…)`).
pub fn spawn_named<T: 'static>(
    name: impl Into<String>,
    future: impl Future<Output = AioResult<T>> + 'static,
) -> JoinHandle<T> {
    spawn_task(Some(name.into()), future)
}

pub(super) fn spawn_task<T: 'static>(
    name: Option<String>,
    future: impl Future<Output = AioResult<T>> + 'static,
) -> JoinHandle<T> {
    with_loop(|inner| {
        let serial = inner.next_serial.replace(inner.next_serial.get() + 1);
        let id = inner.free.borrow_mut().pop().unwrap_or_else(|| inner.new_slot());
        let extra = OnceCell::new();
        if let Some(name) = name {
            _ = extra.set(Box::new(RefCell::new(Extra { name: Some(name.into()), ..Extra::default() })));
        }
        let header = Header {
            refs: Cell::new(1),
            serial,
            id: u32::try_from(id).expect("fewer than 2^32 live tasks"),
            line: Cell::new(0),
            cancel_pending: Cell::new(false),
            started: Cell::new(false),
            done: Cell::new(false),
            cancelled: Cell::new(false),
            failed: Cell::new(false),
            joiner: Cell::default(),
            watcher: Cell::default(),
            waiting: Cell::default(),
            waker: WakeChunk::waker(&inner.wakes.borrow()[id / CHUNK], id % CHUNK),
            extra,
        };
        let cell = Shared::new(TaskCell { header, state: RefCell::new(TaskState::Running(future)) });
        if inner.tracing {
            let now = inner.clock.now();
            inner.span(&cell.header, SpanKind::Mark, Cow::Owned(format!("{} created", cell.header.name())), now, now);
        }
        let task: TaskRef = Shared::view(&cell, |cell| -> NonNull<dyn Task> { cell });
        if let Some(log) = &inner.steps {
            log.borrow_mut().tasks.push(task.clone());
        }
        inner.slots.borrow_mut()[id] = Some(task);
        inner.wake_slot(id);
        JoinHandle { task: Shared::view(&cell, |cell| -> NonNull<dyn TaskOutput<T>> { cell }) }
    })
}

/// `loop.call_later(delay, callback)`: runs `callback` on the loop once `delay` has passed —
/// if the loop is still running then (`asyncio.run` stops it when `main` returns). `what` is
/// how step mode names it.
pub fn call_later(delay: Duration, what: &'static str, callback: impl FnOnce() + 'static) {
    with_loop(|inner| {
        let deadline = inner.clock.now() + delay;
        inner.add_timer(deadline, TimerAction::Call(what, Box::new(callback)));
    });
}

/// Marks the current task as at `line` of its scenario's listing (step mode shows it).
pub fn at_line(line: u32) {
    with_loop(|inner| {
        if let Some(task) = inner.current.borrow().as_ref() {
            task.header().line.set(line);
        }
    })
}

/// Step mode: records a warning asyncio would print (a coroutine never awaited). Nothing
/// outside step mode, or outside a loop.
pub(super) fn warn(text: String) {
    LOOP.with_borrow(|current| {
        if let Some(log) = current.as_ref().and_then(|inner| inner.steps.as_ref()) {
            log.borrow_mut().findings.push(text);
        }
    })
}

/// `asyncio.sleep(duration)`: a timer on the loop's clock; `sleep(0)` is [`yield_now`].
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { duration, timer: None }
}

/// The future of [`sleep`].
pub struct Sleep {
    duration: Duration,
    /// (deadline, whether the timer is live)
    timer: Option<(Duration, Rc<Cell<bool>>)>,
}

impl Future for Sleep {
    type Output = AioResult<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Err(cancelled) = cancel_point() {
            return Poll::Ready(Err(cancelled));
        }
        let now = now();
        match &self.timer {
            Some((deadline, _)) if now >= *deadline => return Poll::Ready(Ok(())),
            Some(_) => {}
            None if self.duration.is_zero() => {
                // sleep(0): one trip through the ready queue.
                self.timer = Some((now, Rc::new(Cell::new(false))));
                cx.waker().wake_by_ref();
            }
            None => {
                let deadline = now + self.duration;
                let live = with_loop(|inner| {
                    let serial = inner.current.borrow().as_ref().map_or(0, |task| task.header().serial);
                    inner.add_timer(deadline, TimerAction::Wake(cx.waker().clone(), serial))
                });
                self.timer = Some((deadline, live));
                waiting_on(Waiting::Sleep(self.duration));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((_, live)) = &self.timer {
            live.set(false);
        }
    }
}

/// `await asyncio.sleep(0)`: lets every other ready task run once.
pub fn yield_now() -> Sleep {
    sleep(Duration::ZERO)
}

/// `asyncio.to_thread(f)`: runs blocking `f` on one of the loop's FIFO-pool threads (see
/// [`EventLoop::run_with_threads`]) while the loop goes on. Cancelling the awaiting task
/// abandons the result; the thread still finishes `f`.
pub async fn to_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> AioResult<T> {
    let Some((jobs, remote)) = with_loop(|inner| inner.jobs.clone().map(|jobs| (jobs, WakeArc::clone(&inner.remote))))
    else {
        return Err(AioError::Raised("to_thread needs a loop started with EventLoop::run_with_threads".into()));
    };
    let slot: WakeArc<Mutex<(Option<T>, Option<Waker>)>> = WakeArc::default();
    remote.start_job();
    let shared = WakeArc::clone(&slot);
    jobs.push(Box::new(move || {
        let value = f();
        let waker = {
            let mut slot = lock(&shared);
            slot.0 = Some(value);
            slot.1.take()
        };
        // Wake first, then leave the in-flight count: a virtual clock never jumps past a result.
        if let Some(waker) = waker {
            waker.wake();
        }
        remote.finish_job();
    }));
    std::future::poll_fn(|cx| {
        cancel_point()?;
        let mut slot = lock(&slot);
        match slot.0.take() {
            Some(value) => Poll::Ready(Ok(value)),
            None => {
                slot.1 = Some(cx.waker().clone());
                drop(slot);
                waiting_on(Waiting::On("to_thread"));
                Poll::Pending
            }
        }
    })
    .await
}

/// The loop-lag heartbeat: sleeps `interval` again and again until `stop` is set, recording how
/// late each wake-up came (ns) — a loop blocked by CPU-bound work shows up as lag.
pub async fn monitor_lag(interval: Duration, stop: Rc<Cell<bool>>) -> AioResult<LogHistogram> {
    let mut lag = LogHistogram::default();
    while !stop.get() {
        let before = now();
        sleep(interval).await?;
        let late = now().saturating_sub(before + interval);
        lag.record(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(lag)
}
