//! `threading.Event`: a flag threads wait for. `set` raises it and releases every waiter at
//! once; `clear` lowers it; `wait` returns at once while it is up.

use std::time::Duration;

use super::wait_until;
use crate::sync::{lock, Condvar, Mutex};

#[derive(Default)]
pub struct Event {
    flag: Mutex<bool>,
    changed: Condvar,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self) {
        *lock(&self.flag) = true;
        self.changed.notify_all();
    }

    pub fn clear(&self) {
        *lock(&self.flag) = false;
    }

    pub fn is_set(&self) -> bool {
        *lock(&self.flag)
    }

    /// Waits for the flag; `false` when `timeout` passed with it still down.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        wait_until(&self.changed, lock(&self.flag), timeout, |flag| *flag).1
    }
}
