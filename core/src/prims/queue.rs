//! `queue.Queue`, `LifoQueue` and `PriorityQueue`: a bounded buffer (`maxsize` 0: unbounded)
//! whose `put` waits while it is full and `get` while it is empty — backpressure — plus the
//! unfinished-task count behind `task_done` and `join`, which waits until every item put has
//! been marked done.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use super::{wait_until, PrimError};
use crate::sync::{lock, Condvar, Mutex};

/// Which item `get` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The oldest (`Queue`).
    Fifo,
    /// The newest (`LifoQueue`).
    Lifo,
    /// The smallest (`PriorityQueue`; ties in no particular order).
    Priority,
}

enum Items<T> {
    Fifo(VecDeque<T>),
    Lifo(Vec<T>),
    Priority(BinaryHeap<Reverse<T>>),
}

impl<T: Ord> Items<T> {
    fn len(&self) -> usize {
        match self {
            Items::Fifo(items) => items.len(),
            Items::Lifo(items) => items.len(),
            Items::Priority(items) => items.len(),
        }
    }

    fn push(&mut self, item: T) {
        match self {
            Items::Fifo(items) => items.push_back(item),
            Items::Lifo(items) => items.push(item),
            Items::Priority(items) => items.push(Reverse(item)),
        }
    }

    fn pop(&mut self) -> Option<T> {
        match self {
            Items::Fifo(items) => items.pop_front(),
            Items::Lifo(items) => items.pop(),
            Items::Priority(items) => items.pop().map(|Reverse(item)| item),
        }
    }
}

struct State<T> {
    items: Items<T>,
    unfinished: usize,
}

pub struct Queue<T> {
    maxsize: usize,
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
}

impl<T: Ord> Queue<T> {
    /// A queue holding at most `maxsize` items (0: no limit), handing them out in `order`.
    pub fn new(maxsize: usize, order: Order) -> Self {
        let items = match order {
            Order::Fifo => Items::Fifo(VecDeque::new()),
            Order::Lifo => Items::Lifo(Vec::new()),
            Order::Priority => Items::Priority(BinaryHeap::new()),
        };
        Self {
            maxsize,
            state: Mutex::new(State { items, unfinished: 0 }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
        }
    }

    /// Adds an item, waiting while the queue is full; [`PrimError::Full`] when `timeout` passed.
    pub fn put(&self, item: T, timeout: Option<Duration>) -> Result<(), PrimError> {
        let maxsize = self.maxsize;
        let (mut state, room) =
            wait_until(&self.not_full, lock(&self.state), timeout, |state| maxsize == 0 || state.items.len() < maxsize);
        if !room {
            return Err(PrimError::Full);
        }
        state.items.push(item);
        state.unfinished += 1;
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Takes an item, waiting while the queue is empty; [`PrimError::Empty`] when `timeout` passed.
    pub fn get(&self, timeout: Option<Duration>) -> Result<T, PrimError> {
        let (mut state, some) = wait_until(&self.not_empty, lock(&self.state), timeout, |state| state.items.len() > 0);
        let item = if some { state.items.pop() } else { None };
        drop(state);
        match item {
            Some(item) => {
                self.not_full.notify_one();
                Ok(item)
            }
            None => Err(PrimError::Empty),
        }
    }

    /// Marks one item taken earlier as processed.
    pub fn task_done(&self) -> Result<(), PrimError> {
        let mut state = lock(&self.state);
        if state.unfinished == 0 {
            return Err(PrimError::TooManyTaskDone);
        }
        state.unfinished -= 1;
        if state.unfinished == 0 {
            drop(state);
            self.all_done.notify_all();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done; `false` when `timeout` passed first.
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        wait_until(&self.all_done, lock(&self.state), timeout, |state| state.unfinished == 0).1
    }

    /// Items put and not yet marked done (Python's `unfinished_tasks`).
    pub fn unfinished(&self) -> usize {
        lock(&self.state).unfinished
    }

    pub fn qsize(&self) -> usize {
        lock(&self.state).items.len()
    }

    pub fn maxsize(&self) -> usize {
        self.maxsize
    }
}
