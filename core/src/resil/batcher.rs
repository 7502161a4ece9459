//! Micro-batching: items wait in a batch that is flushed when it holds `max_size` items or when
//! its first item has waited `max_wait`, whichever comes first; one worker serves batches in
//! order, each taking `fixed + per_item · size` (a round trip, a disk flush, a kernel launch:
//! the fixed part is what batching shares out).
//!
//! Throughput: at most max_size / (fixed + per_item · max_size) items per second. Latency: the
//! wait to fill the batch (≤ max_wait), the queue of batches ahead, and the batch's service.
//! Larger batches raise the ceiling and add waiting; below the knee — where batches fill
//! before `max_wait` — latency barely moves, past it every item waits out the timer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::aio::prims::Event;
use crate::aio::{call_later, now, AioResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatcherSpec {
    /// Items per batch at most (≥ 1).
    pub max_size: usize,
    pub max_wait: Duration,
    pub fixed: Duration,
    pub per_item: Duration,
}

impl BatcherSpec {
    /// Items per second the worker can serve with full batches.
    pub fn capacity(&self) -> f64 {
        let size = self.max_size.max(1) as f64;
        size / (self.fixed.as_secs_f64() + self.per_item.as_secs_f64() * size).max(1e-12)
    }
}

/// Why a batch left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    Full,
    Timer,
}

/// One flush: when, how many items, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flush {
    pub at: Duration,
    pub size: usize,
    pub why: Flushed,
}

/// A handle to one batcher; clones share it.
#[derive(Clone)]
pub struct Batcher(Rc<RefCell<State>>);

struct Batch {
    size: usize,
    done: Event,
}

struct State {
    spec: BatcherSpec,
    filling: Option<(u64, Rc<RefCell<Batch>>)>,
    /// Numbers the filling batch, so a timer armed for a batch that already left does nothing.
    serial: u64,
    waiting: VecDeque<Rc<RefCell<Batch>>>,
    busy: bool,
    flushes: Vec<Flush>,
}

impl Batcher {
    pub fn new(spec: BatcherSpec) -> Self {
        let spec = BatcherSpec { max_size: spec.max_size.max(1), ..spec };
        Self(Rc::new(RefCell::new(State {
            spec,
            filling: None,
            serial: 0,
            waiting: VecDeque::new(),
            busy: false,
            flushes: Vec::new(),
        })))
    }

    pub fn flushes(&self) -> Vec<Flush> {
        self.0.borrow().flushes.clone()
    }

    /// Submits one item and waits until its batch has been served.
    pub async fn submit(&self) -> AioResult<()> {
        let done = {
            let mut state = self.0.borrow_mut();
            let batch = match &state.filling {
                Some((_, batch)) => Rc::clone(batch),
                None => self.open(&mut state),
            };
            batch.borrow_mut().size += 1;
            if batch.borrow().size >= state.spec.max_size {
                self.flush(&mut state, Flushed::Full);
            }
            let done = batch.borrow().done.clone();
            done
        };
        done.wait().await
    }

    /// A new filling batch, with its `max_wait` timer armed.
    fn open(&self, state: &mut State) -> Rc<RefCell<Batch>> {
        state.serial += 1;
        let serial = state.serial;
        let batch = Rc::new(RefCell::new(Batch { size: 0, done: Event::new() }));
        state.filling = Some((serial, Rc::clone(&batch)));
        let handle = self.weak();
        call_later(state.spec.max_wait, "max_wait flushes the batch", move || {
            if let Some(batcher) = handle.upgrade() {
                let batcher = Batcher(batcher);
                let mut state = batcher.0.borrow_mut();
                if state.filling.as_ref().is_some_and(|(filling, _)| *filling == serial) {
                    batcher.flush(&mut state, Flushed::Timer);
                }
            }
        });
        batch
    }

    fn flush(&self, state: &mut State, why: Flushed) {
        let Some((_, batch)) = state.filling.take() else { return };
        state.flushes.push(Flush { at: now(), size: batch.borrow().size, why });
        state.waiting.push_back(batch);
        if !state.busy {
            self.serve_next(state);
        }
    }

    fn serve_next(&self, state: &mut State) {
        let Some(batch) = state.waiting.pop_front() else {
            state.busy = false;
            return;
        };
        state.busy = true;
        let service = state.spec.fixed + state.spec.per_item * batch.borrow().size as u32;
        let handle = self.weak();
        call_later(service, "a batch is served", move || {
            batch.borrow().done.set();
            if let Some(batcher) = handle.upgrade() {
                let batcher = Batcher(batcher);
                let mut state = batcher.0.borrow_mut();
                batcher.serve_next(&mut state);
            }
        });
    }

    fn weak(&self) -> Weak<RefCell<State>> {
        Rc::downgrade(&self.0)
    }
}
