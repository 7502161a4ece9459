//! `threading.Barrier`: `parties` threads meet; the last to arrive runs the optional action and
//! releases the others (a new generation begins). `abort`, a failing wait's timeout, or a panic
//! in the action breaks it: every waiter, and every later `wait`, gets
//! [`PrimError::BrokenBarrier`] until `reset`.

use std::time::Duration;

use super::{wait_until, PrimError};
use crate::sync::{lock, Condvar, Mutex};

struct Phase {
    arrived: usize,
    generation: u64,
    broken: bool,
}

pub struct Barrier {
    parties: usize,
    action: Option<Box<dyn Fn() + Send + Sync>>,
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl Barrier {
    /// A barrier for `parties` threads (at least 1).
    pub fn new(parties: usize) -> Self {
        Self {
            parties: parties.max(1),
            action: None,
            phase: Mutex::new(Phase { arrived: 0, generation: 0, broken: false }),
            changed: Condvar::new(),
        }
    }

    /// Runs `action` in the last thread to arrive, before the others are released.
    pub fn with_action(parties: usize, action: impl Fn() + Send + Sync + 'static) -> Self {
        Self { action: Some(Box::new(action)), ..Self::new(parties) }
    }

    /// Waits for the others; returns this thread's arrival index (0 for the first, as Python
    /// counts down to 0 for the last — here `parties - 1` is the last). A timeout breaks the
    /// barrier for everyone.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<usize, PrimError> {
        let mut phase = lock(&self.phase);
        if phase.broken {
            return Err(PrimError::BrokenBarrier);
        }
        let index = phase.arrived;
        phase.arrived += 1;
        if phase.arrived == self.parties {
            if let Some(action) = &self.action {
                action();
            }
            phase.arrived = 0;
            phase.generation += 1;
            drop(phase);
            self.changed.notify_all();
            return Ok(index);
        }
        let generation = phase.generation;
        let (mut phase, passed) =
            wait_until(&self.changed, phase, timeout, |phase| phase.broken || phase.generation != generation);
        if phase.generation != generation {
            return Ok(index);
        }
        if !passed {
            phase.broken = true;
            drop(phase);
            self.changed.notify_all();
        }
        Err(PrimError::BrokenBarrier)
    }

    /// Breaks the barrier: waiters and later callers get [`PrimError::BrokenBarrier`].
    pub fn abort(&self) {
        lock(&self.phase).broken = true;
        self.changed.notify_all();
    }

    /// Mends a broken barrier for a new round (with no one waiting).
    pub fn reset(&self) {
        let mut phase = lock(&self.phase);
        phase.broken = false;
        phase.arrived = 0;
        phase.generation += 1;
    }

    pub fn broken(&self) -> bool {
        lock(&self.phase).broken
    }

    pub fn parties(&self) -> usize {
        self.parties
    }
}
