//! `threading.RLock`: a re-entrant lock — an owner and a count. The owner may acquire again
//! (the count goes up); each release takes one back, and the last frees the lock for the next
//! waiter. Releasing from any other thread is [`PrimError::NotOwner`], not undefined behaviour.
//!
//! | owner    | count | meaning                                 |
//! |----------|-------|-----------------------------------------|
//! | `None`   | 0     | free                                    |
//! | `Some(t)`| n ≥ 1 | held by t, acquired n times, not released |

use std::time::Duration;

use super::{thread_token, wait_until, PrimError};
use crate::sync::{lock, Condvar, Mutex};

#[derive(Default)]
struct Ownership {
    owner: Option<usize>,
    count: usize,
}

#[derive(Default)]
pub struct RLock {
    state: Mutex<Ownership>,
    released: Condvar,
}

impl RLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the lock (again, if this thread holds it); `false` when `timeout` passed first.
    pub fn acquire(&self, timeout: Option<Duration>) -> bool {
        let me = thread_token();
        let guard = lock(&self.state);
        let (mut state, got) =
            wait_until(&self.released, guard, timeout, |state| state.owner.is_none() || state.owner == Some(me));
        if got {
            state.owner = Some(me);
            state.count += 1;
        }
        got
    }

    /// Gives back one acquisition; the last one frees the lock and wakes a waiter.
    pub fn release(&self) -> Result<(), PrimError> {
        let mut state = lock(&self.state);
        if state.owner != Some(thread_token()) {
            return Err(PrimError::NotOwner);
        }
        state.count -= 1;
        if state.count == 0 {
            state.owner = None;
            drop(state);
            self.released.notify_one();
        }
        Ok(())
    }

    /// How many times the holder has acquired it (0 when free).
    pub fn depth(&self) -> usize {
        lock(&self.state).count
    }
}
