//! The loop's two clocks behind one trait.
//!
//! - [`RealClock`]: the platform's monotonic clock; an idle loop sleeps until its next timer
//!   (in the browser, inside the experiment's worker) or until another thread or a socket wakes
//!   a task — in the socket reactor's `poll` once the loop has sockets, as asyncio's `select()`.
//! - [`VirtualClock`]: deterministic time. An idle loop jumps straight to its next timer, so
//!   sleeps cost nothing and every timeline is exact to the nanosecond; work done while tasks
//!   run takes no virtual time. While a thread works for the loop (`to_thread`), time stands
//!   still and the loop waits for it for real.

use std::cell::Cell;
use std::time::Duration;

use crate::platform::socket::Reactor;
use crate::platform::Instant;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{lock, Condvar, Mutex};

/// Longest real wait between two looks at the run's stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Time as the loop sees it.
pub trait Clock {
    /// Time since the loop's clock started.
    fn now(&self) -> Duration;
    /// Nothing is ready: let time pass until `deadline` (the next timer; `None`: none, but a
    /// socket or another thread may still wake a task) or until another thread or a socket
    /// wakes a task through `remote`, whichever comes first. May return early.
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
            // Only sockets or pipes can wake a task: time stands still while they are awaited.
            None => remote.wait(STOP_POLL),
        }
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// Wake-ups from wakers, which may run on any thread (a `to_thread` job finishing, a peer
/// writing into an in-memory pipe), the count of such jobs in flight, the count of live I/O
/// sources (which may wake a task at any time), and the loop's socket reactor once a task has
/// opened a socket.
#[derive(Default)]
pub struct Remote {
    woken: Mutex<Woken>,
    signal: Condvar,
    in_flight: AtomicUsize,
    io_sources: AtomicUsize,
}

#[derive(Default)]
struct Woken {
    tasks: Vec<usize>,
    /// The loop is waiting (on `signal`, or in the reactor): a wake must notify it.
    idle: bool,
    /// Set once, by the first socket a task of the loop opens; from then on the loop waits in
    /// the reactor (`select()`), and a remote wake interrupts it.
    reactor: Option<std::sync::Arc<Reactor>>,
}

impl Remote {
    /// Queues task `id` to run and wakes an idle loop.
    pub(super) fn push(&self, id: usize) {
        let mut woken = lock(&self.woken);
        woken.tasks.push(id);
        // Only an idle loop needs the (system-call) notification.
        if woken.idle {
            match &woken.reactor {
                Some(reactor) => reactor.wake(),
                None => self.signal.notify_one(),
            }
        }
    }

    /// Moves the woken tasks into `ready`, in wake order.
    pub(super) fn drain_into(&self, ready: &mut std::collections::VecDeque<usize>) {
        ready.extend(lock(&self.woken).tasks.drain(..));
    }

    /// Waits up to `timeout` for a wake-up or, once the loop has sockets, a socket event
    /// (returns at once if a wake-up is queued).
    pub(super) fn wait(&self, timeout: Duration) {
        let mut woken = lock(&self.woken);
        if !woken.tasks.is_empty() || timeout.is_zero() {
            return;
        }
        woken.idle = true;
        if let Some(reactor) = woken.reactor.clone() {
            // A wake after this unlock writes the reactor's eventfd, which ends the turn.
            drop(woken);
            reactor.turn(timeout);
            woken = lock(&self.woken);
        } else {
            woken = self.signal.wait_timeout(woken, timeout).unwrap_or_else(|p| p.into_inner()).0;
        }
        woken.idle = false;
    }

    /// The loop's socket reactor, started on first use.
    pub(super) fn reactor(&self) -> std::io::Result<std::sync::Arc<Reactor>> {
        let mut woken = lock(&self.woken);
        if woken.reactor.is_none() {
            woken.reactor = Some(Reactor::new()?);
        }
        Ok(std::sync::Arc::clone(woken.reactor.as_ref().expect("just set")))
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

    /// Live sockets and pipes of the loop's tasks: while there are any, a loop whose tasks all
    /// wait has not stalled (a peer may still write), it waits.
    pub(super) fn io_sources(&self) -> usize {
        self.io_sources.load(Ordering::Acquire)
    }

    pub(super) fn open_io_source(&self) {
        self.io_sources.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn close_io_source(&self) {
        self.io_sources.fetch_sub(1, Ordering::AcqRel);
    }
}
