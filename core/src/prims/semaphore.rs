//! `threading.Semaphore` (a counter of permits: `acquire` waits for one, `release` adds one) and
//! `BoundedSemaphore`, whose `release` past the initial count is [`PrimError::OverReleased`] —
//! the guard against releasing a permit twice.

use std::time::Duration;

use super::{wait_until, PrimError};
use crate::sync::{lock, Condvar, Mutex};

pub struct Semaphore {
    permits: Mutex<usize>,
    available: Condvar,
}

impl Semaphore {
    pub fn new(permits: usize) -> Self {
        Self { permits: Mutex::new(permits), available: Condvar::new() }
    }

    /// Takes a permit; `false` when `timeout` passed first.
    pub fn acquire(&self, timeout: Option<Duration>) -> bool {
        let (mut permits, got) = wait_until(&self.available, lock(&self.permits), timeout, |permits| *permits > 0);
        if got {
            *permits -= 1;
        }
        got
    }

    /// Adds `n` permits and wakes as many waiters.
    pub fn release(&self, n: usize) {
        *lock(&self.permits) += n;
        for _ in 0..n {
            self.available.notify_one();
        }
    }

    pub fn value(&self) -> usize {
        *lock(&self.permits)
    }
}

pub struct BoundedSemaphore {
    semaphore: Semaphore,
    initial: usize,
}

impl BoundedSemaphore {
    pub fn new(permits: usize) -> Self {
        Self { semaphore: Semaphore::new(permits), initial: permits }
    }

    pub fn acquire(&self, timeout: Option<Duration>) -> bool {
        self.semaphore.acquire(timeout)
    }

    /// Gives a permit back; more than were taken is an error (and changes nothing).
    pub fn release(&self) -> Result<(), PrimError> {
        let mut permits = lock(&self.semaphore.permits);
        if *permits >= self.initial {
            return Err(PrimError::OverReleased);
        }
        *permits += 1;
        drop(permits);
        self.semaphore.available.notify_one();
        Ok(())
    }

    pub fn value(&self) -> usize {
        self.semaphore.value()
    }
}
