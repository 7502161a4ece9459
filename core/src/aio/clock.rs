//! The loop's two clocks behind one trait.
//!
//! - [`RealClock`]: the platform's monotonic clock; an idle loop sleeps until its next timer
//!   (in the browser, inside the experiment's worker) or until another thread wakes a task.
//! - [`VirtualClock`]: deterministic time. An idle loop jumps straight to its next timer, so
//!   sleeps cost nothing and every timeline is exact to the nanosecond; work done while tasks
//!   run takes no virtual time. While a thread works for the loop (`to_thread`), time stands
//!   still and the loop waits for it for real.

use std::cell::Cell;
use std::time::Duration;

use crate::platform::Instant;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{lock, Condvar, Mutex};

/// Longest real wait between two looks at the run's stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Time as the loop sees it.
pub trait Clock {
    /// Time since the loop's clock started.
    fn now(&self) -> Duration;
    /// Nothing is ready: let time pass until `deadline` (the next timer; `None`: none) or until
    /// another thread wakes a task through `remote`, whichever comes first. May return early.
    fn idle(&self, deadline: Option<Duration>, remote: &Remote);
    /// Whether this clock is virtual (for labels and reports).
    fn is_virtual(&self) -> bool;
}

/// The platform's monotonic clock.
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    pub fn new() -> Self {
        Self { start: Instant::now() }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn idle(&self, deadline: Option<Duration>, remote: &Remote) {
        let wait = deadline.map_or(STOP_POLL, |deadline| deadline.saturating_sub(self.now()).min(STOP_POLL));
        remote.wait(wait);
    }

    fn is_virtual(&self) -> bool {
        false
    }
}

/// Deterministic time that jumps to the next timer.
#[derive(Default)]
pub struct VirtualClock {
    now: Cell<Duration>,
}

impl VirtualClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.now.get()
    }

    fn idle(&self, deadline: Option<Duration>, remote: &Remote) {
        match deadline {
            // A thread is working for the loop: its result comes in real time.
            _ if remote.in_flight() > 0 => remote.wait(STOP_POLL),
            Some(deadline) => self.now.set(self.now.get().max(deadline)),
            None => {}
        }
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// Wake-ups from wakers, which may run on any thread (a `to_thread` job finishing), and the
/// count of such jobs in flight.
#[derive(Default)]
pub struct Remote {
    /// (woken task ids, whether the loop is waiting on `signal`)
    woken: Mutex<(Vec<usize>, bool)>,
    signal: Condvar,
    in_flight: AtomicUsize,
}

impl Remote {
    /// Queues task `id` to run and wakes an idle loop.
    pub(super) fn push(&self, id: usize) {
        let mut woken = lock(&self.woken);
        woken.0.push(id);
        // Only an idle loop needs the (system-call) notification.
        if woken.1 {
            self.signal.notify_one();
        }
    }

    /// Moves the woken tasks into `ready`, in wake order.
    pub(super) fn drain_into(&self, ready: &mut std::collections::VecDeque<usize>) {
        ready.extend(lock(&self.woken).0.drain(..));
    }

    /// Waits up to `timeout` for a wake-up (returns at once if one is queued).
    pub(super) fn wait(&self, timeout: Duration) {
        let mut woken = lock(&self.woken);
        if woken.0.is_empty() && !timeout.is_zero() {
            woken.1 = true;
            let (mut woken, _) = self.signal.wait_timeout(woken, timeout).unwrap_or_else(|p| p.into_inner());
            woken.1 = false;
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(super) fn start_job(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn finish_job(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
