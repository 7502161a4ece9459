//! asyncio's event loop as a Python thread: the thread that runs the loop holds the GIL while
//! it runs callbacks and coroutines, and releases it only while the loop waits in `select()`
//! for I/O or its next timer — as CPython's loop does (`selectors` releases the GIL around the
//! system call).
//!
//! That is why `await asyncio.to_thread(cpu_bound)` does not keep a CPython loop responsive:
//! the offloaded function runs Python bytecode and holds the GIL; each time the loop wakes it
//! must wait for the GIL — up to a switch interval, until its drop request is honoured — before
//! it can run a single callback. Free-threaded, or with the work in a process, the loop wakes
//! at once.

use crate::aio::clock::{Clock, Remote};
use crate::sync::Arc;

use super::gil::Gil;
use std::time::Duration;

/// A loop clock whose loop thread is Python thread `thread` under `gil`: the thread holds the
/// GIL from the clock's creation (the thread that calls `asyncio.run` already holds it) until
/// the clock is dropped, except while the loop is idle.
pub struct GilClock<C> {
    clock: C,
    gil: Arc<Gil>,
    thread: usize,
}

impl<C: Clock> GilClock<C> {
    /// Takes the GIL as `thread`.
    pub fn new(clock: C, gil: Arc<Gil>, thread: usize) -> Self {
        gil.take(thread);
        Self { clock, gil, thread }
    }
}

impl<C: Clock> Clock for GilClock<C> {
    fn now(&self) -> Duration {
        self.clock.now()
    }

    /// `select()`: the GIL is released while the loop waits, and taken back — waiting for it,
    /// asking the holder to drop it after a switch interval — before the loop runs anything.
    fn idle(&self, deadline: Option<Duration>, remote: &Remote) {
        self.gil.drop_gil(self.thread);
        self.clock.idle(deadline, remote);
        self.gil.take(self.thread);
    }

    fn is_virtual(&self) -> bool {
        self.clock.is_virtual()
    }
}

impl<C> Drop for GilClock<C> {
    fn drop(&mut self) {
        self.gil.drop_gil(self.thread);
    }
}
