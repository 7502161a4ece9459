//! asyncio's synchronisation primitives for tasks on one loop: [`Event`], [`Lock`],
//! [`Semaphore`] (and bounded), [`Condition`], [`Queue`] and [`Barrier`].
//!
//! Single-threaded (`Rc` + `Cell`), like asyncio's: they coordinate tasks, not threads. Waiters
//! queue in FIFO order. A lock or semaphore *hands* a released permit to its first waiter (no
//! barging), which is why `Semaphore(k)` over T tasks of d seconds takes exactly ⌈T/k⌉·d.
//! Every wait is a cancellation point; a waiter cancelled after it was handed a permit passes
//! the permit on, so nothing is lost.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::executor::{cancel_point, waiting_on, Waiting};
use super::{AioError, AioResult};

#[derive(Default)]
struct Waiter {
    waker: RefCell<Option<Waker>>,
    woken: Cell<bool>,
}

/// Tasks waiting for something, first come first served.
#[derive(Default)]
struct WaitList(RefCell<VecDeque<Rc<Waiter>>>);

impl WaitList {
    /// Wakes the first waiter; false if there is none.
    fn wake_one(&self) -> bool {
        let Some(waiter) = self.0.borrow_mut().pop_front() else { return false };
        waiter.woken.set(true);
        if let Some(waker) = waiter.waker.take() {
            waker.wake();
        }
        true
    }

    fn wake_all(&self) {
        while self.wake_one() {}
    }

    fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }

    fn remove(&self, waiter: &Rc<Waiter>) {
        self.0.borrow_mut().retain(|w| !Rc::ptr_eq(w, waiter));
    }
}

/// Waits until woken through `list`. If it is dropped or cancelled after being woken, the wake
/// goes to `on_abandon` (a hand-off passed on) — otherwise it would be lost.
struct Wait<'a> {
    list: &'a WaitList,
    waiter: Option<Rc<Waiter>>,
    what: &'static str,
    on_abandon: &'a dyn Fn(),
}

impl Future for Wait<'_> {
    type Output = AioResult<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Err(cancelled) = cancel_point() {
            self.abandon();
            return Poll::Ready(Err(cancelled));
        }
        let list = self.list;
        let waiter = self.waiter.get_or_insert_with(|| {
            let waiter = Rc::new(Waiter::default());
            list.0.borrow_mut().push_back(Rc::clone(&waiter));
            waiter
        });
        if waiter.woken.get() {
            self.waiter = None;
            return Poll::Ready(Ok(()));
        }
        *waiter.waker.borrow_mut() = Some(cx.waker().clone());
        waiting_on(Waiting::On(self.what));
        Poll::Pending
    }
}

impl Wait<'_> {
    fn abandon(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            if waiter.woken.get() {
                (self.on_abandon)();
            } else {
                self.list.remove(&waiter);
            }
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.abandon();
    }
}

fn wait_on<'a>(list: &'a WaitList, what: &'static str, on_abandon: &'a dyn Fn()) -> Wait<'a> {
    Wait { list, waiter: None, what, on_abandon }
}

/// `asyncio.Event`: `wait` blocks until `set`; `clear` resets it.
#[derive(Clone, Default)]
pub struct Event(Rc<EventState>);

#[derive(Default)]
struct EventState {
    set: Cell<bool>,
    waiters: WaitList,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self) {
        self.0.set.set(true);
        self.0.waiters.wake_all();
    }

    pub fn clear(&self) {
        self.0.set.set(false);
    }

    pub fn is_set(&self) -> bool {
        self.0.set.get()
    }

    pub async fn wait(&self) -> AioResult<()> {
        if self.is_set() {
            return cancel_point();
        }
        wait_on(&self.0.waiters, "Event.wait", &|| {}).await
    }
}

/// `asyncio.Semaphore(value)` / `BoundedSemaphore(value)`.
#[derive(Clone)]
pub struct Semaphore(Rc<SemaphoreState>);

struct SemaphoreState {
    value: Cell<usize>,
    /// `Some(initial)` for a bounded semaphore.
    bound: Option<usize>,
    waiters: WaitList,
    what: &'static str,
}

/// A permit of a [`Semaphore`] (or the ownership of a [`Lock`]): released when dropped.
pub struct Permit {
    semaphore: Semaphore,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.semaphore.release();
    }
}

impl Semaphore {
    pub fn new(value: usize) -> Self {
        Self::with(value, None, "Semaphore.acquire")
    }

    /// Releasing more often than acquired is an error instead of raising the count.
    pub fn bounded(value: usize) -> Self {
        Self::with(value, Some(value), "BoundedSemaphore.acquire")
    }

    fn with(value: usize, bound: Option<usize>, what: &'static str) -> Self {
        Self(Rc::new(SemaphoreState { value: Cell::new(value), bound, waiters: WaitList::default(), what }))
    }

    /// Free permits now.
    pub fn value(&self) -> usize {
        self.0.value.get()
    }

    /// Tasks waiting for a permit.
    pub fn waiting(&self) -> usize {
        self.0.waiters.len()
    }

    /// Takes a permit, waiting in line for one if none is free (or others already wait).
    pub async fn acquire(&self) -> AioResult<Permit> {
        if self.0.value.get() > 0 && self.0.waiters.is_empty() {
            cancel_point()?;
            self.0.value.set(self.0.value.get() - 1);
            return Ok(Permit { semaphore: self.clone() });
        }
        // A release hands its permit straight to the woken waiter; one abandoned is passed on.
        let pass_on = || _ = self.release();
        wait_on(&self.0.waiters, self.0.what, &pass_on).await?;
        Ok(Permit { semaphore: self.clone() })
    }

    /// Gives a permit back: to the first waiter, else to the count. A bounded semaphore refuses
    /// to go above its initial value (`ValueError`).
    pub fn release(&self) -> AioResult<()> {
        if self.0.waiters.wake_one() {
            return Ok(());
        }
        let value = self.0.value.get() + 1;
        if self.0.bound.is_some_and(|bound| value > bound) {
            return Err(AioError::Raised("ValueError: BoundedSemaphore released too many times".into()));
        }
        self.0.value.set(value);
        Ok(())
    }
}

/// `asyncio.Lock`: `acquire().await?` returns a guard that releases it when dropped.
#[derive(Clone)]
pub struct Lock(Semaphore);

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Lock {
    pub fn new() -> Self {
        Self(Semaphore::with(1, Some(1), "Lock.acquire"))
    }

    pub fn locked(&self) -> bool {
        self.0.value() == 0
    }

    pub async fn acquire(&self) -> AioResult<Permit> {
        self.0.acquire().await
    }
}

/// `asyncio.Condition`: wait for a notification with the lock released, re-acquire it after.
#[derive(Clone)]
pub struct Condition {
    lock: Lock,
    waiters: Rc<WaitList>,
}

impl Condition {
    pub fn new(lock: Lock) -> Self {
        Self { lock, waiters: Rc::default() }
    }

    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Releases `guard` (the lock), waits for `notify`, re-acquires the lock. A notification
    /// that arrives for a waiter cancelled meanwhile goes to the next waiter.
    pub async fn wait(&self, guard: Permit) -> AioResult<Permit> {
        drop(guard);
        let pass_on = || _ = self.waiters.wake_one();
        let notified = wait_on(&self.waiters, "Condition.wait", &pass_on).await;
        // asyncio re-acquires the lock even when cancelled.
        let reacquired = loop {
            match self.lock.acquire().await {
                Err(AioError::Cancelled) => continue,
                other => break other,
            }
        };
        notified.and(reacquired)
    }

    /// Waits until `predicate()` holds, re-checking after each notification.
    pub async fn wait_for(&self, mut guard: Permit, mut predicate: impl FnMut() -> bool) -> AioResult<Permit> {
        while !predicate() {
            guard = self.wait(guard).await?;
        }
        Ok(guard)
    }

    /// Wakes up to `n` waiters (the caller should hold the lock, as in asyncio).
    pub fn notify(&self, n: usize) {
        for _ in 0..n {
            if !self.waiters.wake_one() {
                break;
            }
        }
    }

    pub fn notify_all(&self) {
        self.waiters.wake_all();
    }
}

/// `asyncio.Queue(maxsize)`: FIFO; `put` waits while full (backpressure), `get` while empty;
/// `task_done` / `join` count unfinished items. `maxsize` 0 means unbounded.
pub struct Queue<T> {
    items: RefCell<VecDeque<T>>,
    maxsize: usize,
    getters: WaitList,
    putters: WaitList,
    unfinished: Cell<usize>,
    finished: Event,
}

impl<T> Queue<T> {
    pub fn new(maxsize: usize) -> Self {
        let finished = Event::new();
        finished.set();
        Self {
            items: RefCell::default(),
            maxsize,
            getters: WaitList::default(),
            putters: WaitList::default(),
            unfinished: Cell::new(0),
            finished,
        }
    }

    pub fn qsize(&self) -> usize {
        self.items.borrow().len()
    }

    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    pub fn empty(&self) -> bool {
        self.items.borrow().is_empty()
    }

    /// Puts `item`, waiting while the queue is full.
    pub async fn put(&self, item: T) -> AioResult<()> {
        cancel_point()?;
        let pass_on = || _ = if self.full() { false } else { self.putters.wake_one() };
        while self.full() {
            wait_on(&self.putters, "Queue.put (full)", &pass_on).await?;
        }
        self.put_nowait(item)
    }

    /// Takes the oldest item, waiting while the queue is empty.
    pub async fn get(&self) -> AioResult<T> {
        cancel_point()?;
        let pass_on = || _ = if self.empty() { false } else { self.getters.wake_one() };
        while self.empty() {
            wait_on(&self.getters, "Queue.get (empty)", &pass_on).await?;
        }
        self.get_nowait()
    }

    /// `QueueFull` instead of waiting.
    pub fn put_nowait(&self, item: T) -> AioResult<()> {
        if self.full() {
            return Err(AioError::Raised("QueueFull".into()));
        }
        self.items.borrow_mut().push_back(item);
        self.unfinished.set(self.unfinished.get() + 1);
        self.finished.clear();
        self.getters.wake_one();
        Ok(())
    }

    /// `QueueEmpty` instead of waiting.
    pub fn get_nowait(&self) -> AioResult<T> {
        let item = self.items.borrow_mut().pop_front().ok_or_else(|| AioError::Raised("QueueEmpty".into()))?;
        self.putters.wake_one();
        Ok(item)
    }

    /// Marks one gotten item as processed; more calls than items is a `ValueError`.
    pub fn task_done(&self) -> AioResult<()> {
        let unfinished = self
            .unfinished
            .get()
            .checked_sub(1)
            .ok_or_else(|| AioError::Raised("ValueError: task_done() called too many times".into()))?;
        self.unfinished.set(unfinished);
        if unfinished == 0 {
            self.finished.set();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done.
    pub async fn join(&self) -> AioResult<()> {
        self.finished.wait().await
    }
}

/// `asyncio.Barrier(parties)` (Python 3.11): `wait` blocks until `parties` tasks wait, then all
/// go on together (cyclic); `abort` breaks it (`BrokenBarrierError`). A party cancelled while it
/// waits — a `wait_for` timeout — just leaves: the barrier waits for another arrival and is not
/// broken (CPython 3.11's is not; `threading.Barrier`'s timeout does break it).
#[derive(Clone)]
pub struct Barrier(Rc<BarrierState>);

struct BarrierState {
    parties: usize,
    arrived: Cell<usize>,
    /// Phases completed: a waiter that sees it unchanged when cancelled was not let through.
    phase: Cell<u64>,
    broken: Cell<bool>,
    waiters: WaitList,
}

fn broken_barrier() -> AioError {
    AioError::Raised("BrokenBarrierError".into())
}

impl Barrier {
    pub fn new(parties: usize) -> Self {
        Self(Rc::new(BarrierState {
            parties: parties.max(1),
            arrived: Cell::new(0),
            phase: Cell::new(0),
            broken: Cell::new(false),
            waiters: WaitList::default(),
        }))
    }

    /// Waits for the rest of the party; returns this task's arrival index (0 = first).
    pub async fn wait(&self) -> AioResult<usize> {
        let state = &self.0;
        if state.broken.get() {
            return Err(broken_barrier());
        }
        let (index, phase) = (state.arrived.get(), state.phase.get());
        if index + 1 == state.parties {
            state.arrived.set(0);
            state.phase.set(phase + 1);
            state.waiters.wake_all();
            return cancel_point().map(|()| index);
        }
        state.arrived.set(index + 1);
        let waited = wait_on(&state.waiters, "Barrier.wait", &|| {}).await;
        if let Err(error) = waited {
            // A party that leaves before the phase ends no longer counts.
            if state.phase.get() == phase && !state.broken.get() {
                state.arrived.set(state.arrived.get() - 1);
            }
            return Err(error);
        }
        if state.broken.get() {
            return Err(broken_barrier());
        }
        Ok(index)
    }

    /// Breaks the barrier: every waiter, now and later, gets `BrokenBarrierError`.
    pub fn abort(&self) {
        self.0.broken.set(true);
        self.0.waiters.wake_all();
    }

    pub fn broken(&self) -> bool {
        self.0.broken.get()
    }

    /// Tasks waiting now.
    pub fn n_waiting(&self) -> usize {
        self.0.waiters.len()
    }
}
