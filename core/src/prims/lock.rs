//! `threading.Lock`: a plain, non-re-entrant lock with no owner — a binary semaphore. A thread
//! that acquires it again while holding it waits for itself: a self-deadlock, which a timeout
//! turns into `false` instead of a hang. Any thread may release it (CPython allows this);
//! releasing it while unlocked is [`PrimError::Unlocked`].
//!
//! | locked | `acquire`          | `release`              |
//! |--------|--------------------|------------------------|
//! | no     | takes it           | `Err(Unlocked)`        |
//! | yes    | waits (even its holder) | frees it, wakes one waiter |

use std::time::Duration;

use super::{wait_until, PrimError};
use crate::sync::{lock, Condvar, Mutex};

#[derive(Default)]
pub struct Lock {
    locked: Mutex<bool>,
    released: Condvar,
}

impl Lock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the lock; `false` when `timeout` passed first.
    pub fn acquire(&self, timeout: Option<Duration>) -> bool {
        let (mut locked, got) = wait_until(&self.released, lock(&self.locked), timeout, |locked| !*locked);
        if got {
            *locked = true;
        }
        got
    }

    pub fn release(&self) -> Result<(), PrimError> {
        let mut locked = lock(&self.locked);
        if !*locked {
            return Err(PrimError::Unlocked);
        }
        *locked = false;
        drop(locked);
        self.released.notify_one();
        Ok(())
    }

    pub fn locked(&self) -> bool {
        *lock(&self.locked)
    }
}
