//! An asyncio-style event loop for Rust futures: one thread, a FIFO ready queue, a timer heap.
//!
//! The model is CPython's `asyncio` (PEP 3156, `asyncio/base_events.py`): each iteration runs
//! the tasks that were ready when it began, in the order they became ready, then fires the timers
//! that are due; when nothing is ready the loop waits for the next timer — on a real clock by
//! sleeping, on a virtual clock by jumping to it, so a ten-second demo replays instantly with
//! exact times ([`clock`]).
//!
//! What asyncio raises, a task here returns as an [`AioError`]; `?` propagates it like an
//! exception. Cancellation works as in asyncio: [`JoinHandle::cancel`] asks, and the task's
//! current (or next) await of one of this module's futures — `sleep`, a lock, a queue, a handle —
//! returns `Err(Cancelled)`. The task may catch it and clean up (awaiting if it likes) or let it
//! propagate; a task cancelled before it first ran never runs. Futures from elsewhere are not
//! cancellation points.
//!
//! Contents: [`EventLoop`], [`spawn`] (`create_task`), [`sleep`], [`yield_now`] (`sleep(0)`),
//! [`now`], [`to_thread`] (blocking work on the FIFO pool), [`gather`], [`wait`],
//! [`as_completed`], [`wait_for`] (and `timeout`), [`shield`], [`TaskGroup`], the primitives in
//! [`prims`], the streams in [`net`] (sockets on the loop's reactor, or in-memory pipes), and [`monitor_lag`] (the loop-lag heartbeat). Each task gets a timeline lane: its
//! running slices and what it waited on.

mod blocks;
pub mod clock;
mod combinators;
mod executor;
mod group;
pub mod net;
pub mod prims;
pub mod steps;
mod wake;

use std::fmt;

pub use clock::{Clock, RealClock, VirtualClock};
pub use combinators::{as_completed, gather, gather_settled, shield, wait, wait_for, ReturnWhen, Waited};
pub use executor::{
    at_line, call_later, monitor_lag, note, now, sleep, spawn, spawn_named, to_thread, yield_now, EventLoop, Jobs,
    JoinHandle,
};
pub use group::TaskGroup;

/// What asyncio would raise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AioError {
    /// `CancelledError`: the task was cancelled at an await.
    Cancelled,
    /// `TimeoutError`: `wait_for` / `timeout` ran out.
    TimedOut,
    /// Any other exception, by its message.
    Raised(String),
    /// `ExceptionGroup`: the failures of a [`TaskGroup`]'s tasks.
    Group(Vec<AioError>),
    /// Loop-level: every task waits and nothing (no timer, no thread) can wake one.
    Stalled(String),
    /// Loop-level: the run was stopped from outside (the experiment's cancel).
    Stopped,
}

/// A task's outcome: its value or what it raised.
pub type AioResult<T> = Result<T, AioError>;

impl fmt::Display for AioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => write!(f, "CancelledError"),
            Self::TimedOut => write!(f, "TimeoutError"),
            Self::Raised(message) => write!(f, "{message}"),
            Self::Group(errors) => {
                let inner: Vec<String> = errors.iter().map(ToString::to_string).collect();
                write!(f, "ExceptionGroup ({} sub-exceptions: {})", errors.len(), inner.join("; "))
            }
            Self::Stalled(why) => write!(f, "the event loop stalled: {why}"),
            Self::Stopped => write!(f, "the event loop was stopped"),
        }
    }
}

impl std::error::Error for AioError {}
