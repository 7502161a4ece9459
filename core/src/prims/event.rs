//! `threading.Event`: a flag threads wait for. `set` raises it and releases every waiter at
//! once; `clear` lowers it; `wait` returns at once while it is up.
//!
//! As in CPython, a thread waiting when `set` is called is released even if `clear` follows
//! before it runs again: each `set` starts a new generation, and a waiter leaves when the flag
//! is up *or* the generation it slept in has ended. Only a thread that starts waiting after the
//! `clear` misses the pulse — the misuse `prim-event` shows.
//!
//! | flag  | generation | a waiter that started in generation g             |
//! |-------|------------|---------------------------------------------------|
//! | up    | any        | returns at once                                   |
//! | down  | g          | sleeps                                            |
//! | down  | > g        | returns (a `set` happened while it slept)         |

use std::time::Duration;

use super::wait_until;
use crate::sync::{lock, Condvar, Mutex};

#[derive(Default)]
struct Flag {
    up: bool,
    /// How many times `set` was called.
    generation: u64,
}

#[derive(Default)]
pub struct Event {
    flag: Mutex<Flag>,
    changed: Condvar,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self) {
        let mut flag = lock(&self.flag);
        flag.up = true;
        flag.generation += 1;
        drop(flag);
        self.changed.notify_all();
    }

    pub fn clear(&self) {
        lock(&self.flag).up = false;
    }

    pub fn is_set(&self) -> bool {
        lock(&self.flag).up
    }

    /// Waits for the flag (or a `set` while waiting); `false` when `timeout` passed first.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let flag = lock(&self.flag);
        let generation = flag.generation;
        wait_until(&self.changed, flag, timeout, |flag| flag.up || flag.generation != generation).1
    }
}
