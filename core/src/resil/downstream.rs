//! A flaky downstream service on the event loop: `workers` requests in service at once, each
//! taking a log-normal time and failing at `error_rate` — every one of them during the outage
//! window — with the rest waiting in its [`AdmissionQueue`].
//!
//! Capacity is what makes retries dangerous: a request the client gave up on still waits its
//! turn and is still served (the service cannot know), so retries add load exactly when the
//! service has none to spare, queueing delay grows past the clients' timeouts, and every
//! answer comes too late — a metastable failure that outlives its trigger (Bronson et al.,
//! "Metastable Failures in Distributed Systems", HotOS 2021). A request that carries a
//! deadline (deadline propagation, as gRPC does) is dropped unserved once its deadline has
//! passed, and abandoned mid-service when the deadline comes first: no work for nobody.
//!
//! A failure is decided when service starts and answered when it ends: an outage is a service
//! that does the work and fails (its own dependency is down), so failed requests cost capacity.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::admission::{Admission, AdmissionQueue};
use super::{LogNormal, Rng, Slices};
use crate::aio::prims::Event;
use crate::aio::{call_later, now, AioResult};

/// What a call came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// Served, and failed (the error rate, or the outage).
    Error,
    /// Refused on arrival: the admission queue was full.
    Rejected,
    /// Dropped unserved (CoDel), or its deadline passed before it was done.
    Shed,
}

/// How service ends.
#[derive(Clone, Copy)]
enum End {
    Answered(bool),
    /// The request's deadline came first: the work is abandoned.
    Expired,
}

/// Where the answers to one attempt land; a hedged attempt's copies share one. The first
/// success settles it; a failure settles it only when no other copy is still out.
#[derive(Default)]
pub struct Reply {
    answer: Cell<Option<Answer>>,
    outstanding: Cell<u32>,
    abandoned: Cell<bool>,
    event: Event,
}

impl Reply {
    pub fn new() -> Rc<Self> {
        Rc::default()
    }

    pub fn answer(&self) -> Option<Answer> {
        self.answer.get()
    }

    /// The client stopped waiting (it timed out): later answers are wasted work.
    pub fn abandon(&self) {
        self.abandoned.set(true);
    }

    /// Waits until the reply is settled (a cancellation point).
    pub async fn settled(self: Rc<Self>) -> AioResult<()> {
        self.event.wait().await
    }

    fn settle(&self, answer: Answer) {
        self.outstanding.set(self.outstanding.get().saturating_sub(1));
        let last = self.outstanding.get() == 0;
        if self.answer.get().is_none() && (answer == Answer::Ok || last) {
            self.answer.set(Some(answer));
            self.event.set();
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DownstreamSpec {
    /// Requests in service at once (≥ 1).
    pub workers: usize,
    pub latency: LogNormal,
    pub error_rate: f64,
    /// [start, end) in loop time: every request that starts service inside fails.
    pub outage: Option<(Duration, Duration)>,
    pub admission: Admission,
    pub seed: u64,
    /// The width of the time series' slices.
    pub slice: Duration,
}

/// What the service saw.
#[derive(Clone, Debug, PartialEq)]
pub struct DownstreamStats {
    /// Requests that arrived (the offered load), by arrival time.
    pub arrived: Slices,
    /// Requests served to the end (the delivered load), and those that succeeded, by end time.
    pub served: Slices,
    pub succeeded: Slices,
    pub rejected: u64,
    /// Dropped from the queue, or abandoned when their deadline passed in service.
    pub shed: u64,
    pub cancelled: u64,
    /// Served for a client that had stopped waiting.
    pub wasted: u64,
    pub longest_queue: usize,
}

/// A handle to one service; clones share it.
#[derive(Clone)]
pub struct Downstream(Rc<RefCell<State>>);

/// A call in the service, for [`Downstream::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobId(u64);

struct Job {
    id: u64,
    reply: Rc<Reply>,
    deadline: Option<Duration>,
}

struct State {
    spec: DownstreamSpec,
    rng: Rng,
    queue: AdmissionQueue<Job>,
    in_service: Vec<Job>,
    next_id: u64,
    stats: DownstreamStats,
}

impl Downstream {
    pub fn new(spec: DownstreamSpec) -> Self {
        let spec = DownstreamSpec { workers: spec.workers.max(1), ..spec };
        let stats = DownstreamStats {
            arrived: Slices::new(spec.slice),
            served: Slices::new(spec.slice),
            succeeded: Slices::new(spec.slice),
            rejected: 0,
            shed: 0,
            cancelled: 0,
            wasted: 0,
            longest_queue: 0,
        };
        Self(Rc::new(RefCell::new(State {
            rng: Rng::new(spec.seed),
            queue: AdmissionQueue::new(spec.admission),
            in_service: Vec::new(),
            next_id: 0,
            stats,
            spec,
        })))
    }

    /// Sends a request whose answer lands in `reply`; with a `deadline` (loop time) the
    /// service drops it unserved once the deadline has passed.
    pub fn call(&self, reply: &Rc<Reply>, deadline: Option<Duration>) -> JobId {
        let now = now();
        let mut state = self.0.borrow_mut();
        let id = state.next_id;
        state.next_id += 1;
        state.stats.arrived.add(now);
        reply.outstanding.set(reply.outstanding.get() + 1);
        let job = Job { id, reply: Rc::clone(reply), deadline };
        if state.in_service.len() < state.spec.workers {
            self.start(&mut state, job, now);
        } else if let Err(job) = state.queue.offer(job, now) {
            state.stats.rejected += 1;
            job.reply.settle(Answer::Rejected);
        }
        state.stats.longest_queue = state.stats.longest_queue.max(state.queue.len());
        JobId(id)
    }

    /// The client no longer wants `id`'s answer: it leaves the queue, or frees its worker.
    /// Nothing when it has already been answered.
    pub fn cancel(&self, id: JobId) {
        let now = now();
        let mut state = self.0.borrow_mut();
        if state.queue.remove(|job| job.id == id.0).is_some() {
            state.stats.cancelled += 1;
        } else if let Some(index) = state.in_service.iter().position(|job| job.id == id.0) {
            state.in_service.swap_remove(index);
            state.stats.cancelled += 1;
            self.dispatch(&mut state, now);
        }
    }

    pub fn stats(&self) -> DownstreamStats {
        self.0.borrow().stats.clone()
    }

    /// Requests waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.0.borrow().queue.len()
    }

    fn start(&self, state: &mut State, job: Job, now: Duration) {
        let spec = &state.spec;
        let in_outage = spec.outage.is_some_and(|(start, end)| (start..end).contains(&now));
        let (latency, error_rate) = (spec.latency, spec.error_rate);
        let service = latency.sample(&mut state.rng);
        let ok = !in_outage && state.rng.uniform() >= error_rate;
        let (delay, end) = match job.deadline.map(|deadline| deadline.saturating_sub(now)) {
            Some(left) if left < service => (left, End::Expired),
            _ => (service, End::Answered(ok)),
        };
        let id = job.id;
        state.in_service.push(job);
        let service_handle: Weak<RefCell<State>> = Rc::downgrade(&self.0);
        call_later(delay, "the downstream answers", move || {
            if let Some(state) = service_handle.upgrade() {
                Downstream(state).finish(id, end);
            }
        });
    }

    fn finish(&self, id: u64, end: End) {
        let now = now();
        let mut state = self.0.borrow_mut();
        // Gone: cancelled while in service.
        let Some(index) = state.in_service.iter().position(|job| job.id == id) else { return };
        let job = state.in_service.swap_remove(index);
        match end {
            End::Expired => {
                state.stats.shed += 1;
                job.reply.settle(Answer::Shed);
            }
            End::Answered(ok) => {
                state.stats.served.add(now);
                if ok {
                    state.stats.succeeded.add(now);
                }
                if job.reply.abandoned.get() {
                    state.stats.wasted += 1;
                }
                job.reply.settle(if ok { Answer::Ok } else { Answer::Error });
            }
        }
        self.dispatch(&mut state, now);
    }

    /// Fills free workers from the queue.
    fn dispatch(&self, state: &mut State, now: Duration) {
        let mut dropped = Vec::new();
        while state.in_service.len() < state.spec.workers {
            let next = state.queue.next(now, &mut dropped);
            for job in dropped.drain(..) {
                state.stats.shed += 1;
                job.reply.settle(Answer::Shed);
            }
            match next {
                None => break,
                Some(job) if job.deadline.is_some_and(|deadline| now >= deadline) => {
                    state.stats.shed += 1;
                    job.reply.settle(Answer::Shed);
                }
                Some(job) => self.start(state, job, now),
            }
        }
    }
}
