//! Python's `threading` primitives for real (blocking) threads — `Lock`, `RLock`, `Semaphore` and
//! `BoundedSemaphore`, `Event`, `Condition`, `Barrier` — and `queue.Queue` with its LIFO and
//! priority variants: the thread-side twins of [`crate::aio::prims`].
//!
//! Each is a `Mutex` for its state and a `Condvar` for its waiters, from [`crate::sync`] (std,
//! or loom's model-checked versions under `cfg(loom)`), the way CPython builds them on one lock
//! and a list of waiter locks. Every blocking call takes an optional timeout and reports whether
//! it got what it waited for; misuse is an error, never undefined behaviour: releasing an `RLock`
//! one does not own, over-releasing a `BoundedSemaphore`, `task_done` once too often, a broken
//! `Barrier`. Waits tolerate spurious wake-ups (every wait re-checks its condition). They work
//! natively and in Web Workers (`Atomics.wait`), never on a page's main thread.

use std::fmt;
use std::time::Duration;

use crate::platform::Instant;
use crate::sync::{Condvar, MutexGuard};

mod barrier;
mod condition;
mod event;
mod lock;
mod queue;
mod rlock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use event::Event;
pub use lock::Lock;
pub use queue::{Order, Queue};
pub use rlock::RLock;
pub use semaphore::{BoundedSemaphore, Semaphore};

/// Misuse and the outcomes Python raises as exceptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrimError {
    /// `Lock.release()` on an unlocked lock (`RuntimeError`).
    Unlocked,
    /// `RLock.release()` by a thread that does not hold it (`RuntimeError`).
    NotOwner,
    /// A `BoundedSemaphore` released more often than acquired (`ValueError`).
    OverReleased,
    /// The barrier was aborted, or a wait on it timed out (`BrokenBarrierError`).
    BrokenBarrier,
    /// `task_done()` called more times than items were put (`ValueError`).
    TooManyTaskDone,
    /// `put` on a full queue gave up (`queue.Full`).
    Full,
    /// `get` on an empty queue gave up (`queue.Empty`).
    Empty,
}

impl fmt::Display for PrimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrimError::Unlocked => "release unlocked lock (RuntimeError)",
            PrimError::NotOwner => "cannot release un-acquired lock (RuntimeError)",
            PrimError::OverReleased => "Semaphore released too many times (ValueError)",
            PrimError::BrokenBarrier => "the barrier is broken (BrokenBarrierError)",
            PrimError::TooManyTaskDone => "task_done() called too many times (ValueError)",
            PrimError::Full => "the queue is full (queue.Full)",
            PrimError::Empty => "the queue is empty (queue.Empty)",
        })
    }
}

impl std::error::Error for PrimError {}

/// Waits on `condvar` until `ready(state)` holds or `timeout` passes (`None`: no limit);
/// returns the guard and whether `ready` held. Spurious wake-ups just loop.
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    timeout: Option<Duration>,
    mut ready: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
    let deadline = timeout.map(|timeout| Instant::now().plus(timeout));
    loop {
        if ready(&mut guard) {
            return (guard, true);
        }
        match deadline {
            None => guard = condvar.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner()),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return (guard, false);
                }
                guard = match condvar.wait_timeout(guard, deadline.duration_since(now)) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
    }
}

/// A small number that names the calling thread while it lives (the address of a
/// thread-local), for owner checks.
pub(crate) fn thread_token() -> usize {
    crate::sync::thread_local! {
        #[allow(clippy::missing_const_for_thread_local, reason = "loom's thread_local! takes no const initialiser")]
        static TOKEN: u8 = 0;
    }
    TOKEN.with(|token| std::ptr::from_ref(token) as usize)
}
