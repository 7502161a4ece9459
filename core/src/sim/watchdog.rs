//! Deadlock detection among real threads: locks that record who holds them and who waits for
//! them in one wait-for graph, so that a deadlock becomes a report instead of a hung lab.
//!
//! A waiter publishes its edge (thread → lock), then follows lock → holder → the lock that
//! holder waits for … ; reaching itself means a cycle, every thread on which waits for the next:
//! a deadlock (Coffman et al. 1971: mutual exclusion, hold and wait, no preemption, circular
//! wait). The thread that closed the cycle is the victim, the way a database aborts one
//! transaction: its `lock` returns the cycle as an error, and once it lets go of what it holds
//! the others go on. The graph keeps the cycle for the report. A deadline backs this up — a
//! watchdog for waits the graph cannot see — so every wait ends.
//!
//! Waiting is a try-lock loop that sleeps 50 µs between tries: a demo lock, built to be
//! observed and broken, not to be fast.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::platform::{self, Instant};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{lock, Mutex};

/// How a wait ended, when it did not get the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stuck {
    /// The wait-for cycle: (thread, the lock it waits for), each lock held by the next thread.
    Deadlock(Vec<(usize, &'static str)>),
    /// The deadline passed first.
    TimedOut { after: Duration },
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stuck::Deadlock(cycle) => {
                let edges: Vec<String> =
                    cycle.iter().map(|(thread, name)| format!("thread {thread} waits for {name}")).collect();
                write!(f, "deadlock: {} (each held by the next)", edges.join(", "))
            }
            Stuck::TimedOut { after } => write!(f, "gave up after {after:?} (the watchdog's deadline)"),
        }
    }
}

#[derive(Default)]
struct Graph {
    /// lock id → holding thread
    holders: BTreeMap<usize, usize>,
    /// thread → (lock id, lock name) it waits for
    waiting: BTreeMap<usize, (usize, &'static str)>,
    /// The first cycle found.
    broken: Option<Vec<(usize, &'static str)>>,
}

impl Graph {
    /// The cycle through `thread`'s wait, if its wait closes one.
    fn cycle_from(&self, thread: usize) -> Option<Vec<(usize, &'static str)>> {
        let mut path = Vec::new();
        let mut at = thread;
        while let Some(&(lock, name)) = self.waiting.get(&at) {
            path.push((at, name));
            at = *self.holders.get(&lock)?;
            if at == thread {
                return Some(path);
            }
            if path.len() > self.waiting.len() {
                return None;
            }
        }
        None
    }
}

/// The shared wait-for graph of one demo and its deadline.
pub struct WaitForGraph {
    graph: Mutex<Graph>,
    deadline: Mutex<Instant>,
    timeout: Duration,
    next_id: AtomicUsize,
}

impl WaitForGraph {
    /// A graph whose waits give up `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        Self {
            graph: Mutex::new(Graph::default()),
            deadline: Mutex::new(Instant::now().plus(timeout)),
            timeout,
            next_id: AtomicUsize::new(1),
        }
    }

    /// Starts a new round, while no lock is held or waited for: the cycle is forgotten and the
    /// deadline is `timeout` from now.
    pub fn restart(&self) {
        let mut graph = lock(&self.graph);
        debug_assert!(graph.holders.is_empty() && graph.waiting.is_empty(), "restarted mid-round");
        graph.broken = None;
        *lock(&self.deadline) = Instant::now().plus(self.timeout);
    }

    /// A lock recorded in this graph.
    pub fn mutex(&self, name: &'static str) -> TrackedMutex<'_> {
        TrackedMutex {
            graph: self,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            name,
            holder: AtomicUsize::new(FREE),
        }
    }

    /// The first deadlock's cycle, if there was one.
    pub fn deadlock(&self) -> Option<Vec<(usize, &'static str)>> {
        lock(&self.graph).broken.clone()
    }
}

const FREE: usize = usize::MAX;

/// A mutex (no data: it guards what the demo says it guards) that records its holder and its
/// waiters in a [`WaitForGraph`].
pub struct TrackedMutex<'g> {
    graph: &'g WaitForGraph,
    id: usize,
    name: &'static str,
    /// The holding thread, or `FREE`.
    holder: AtomicUsize,
}

impl TrackedMutex<'_> {
    /// Takes the lock as `thread` (a small integer naming it in reports), or returns why it
    /// never will: the deadlock it closes or joins, or the deadline.
    pub fn lock(&self, thread: usize) -> Result<TrackedGuard<'_>, Stuck> {
        loop {
            // Acquire: what the previous holder wrote before its Release is visible to us.
            if self.holder.compare_exchange(FREE, thread, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                let mut graph = lock(&self.graph.graph);
                graph.waiting.remove(&thread);
                graph.holders.insert(self.id, thread);
                return Ok(TrackedGuard { mutex: self });
            }
            {
                let mut graph = lock(&self.graph.graph);
                graph.waiting.insert(thread, (self.id, self.name));
                if let Some(cycle) = graph.cycle_from(thread) {
                    graph.broken.get_or_insert_with(|| cycle.clone());
                    graph.waiting.remove(&thread);
                    return Err(Stuck::Deadlock(cycle));
                }
            }
            if Instant::now() >= *lock(&self.graph.deadline) {
                lock(&self.graph.graph).waiting.remove(&thread);
                return Err(Stuck::TimedOut { after: self.graph.timeout });
            }
            platform::sleep(Duration::from_micros(50));
        }
    }
}

/// Holds a [`TrackedMutex`]; releases it on drop.
pub struct TrackedGuard<'m> {
    mutex: &'m TrackedMutex<'m>,
}

impl Drop for TrackedGuard<'_> {
    fn drop(&mut self) {
        let mut graph = lock(&self.mutex.graph.graph);
        graph.holders.remove(&self.mutex.id);
        // Release: our writes under the lock reach the next holder (its Acquire).
        self.mutex.holder.store(FREE, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;

    #[test]
    fn an_abba_deadlock_ends_in_a_report_of_its_cycle_and_the_other_thread_goes_on() {
        let graph = WaitForGraph::new(Duration::from_secs(10));
        let (a, b) = (graph.mutex("a"), graph.mutex("b"));
        let both_hold_one = std::sync::Barrier::new(2);
        let started = Instant::now();
        let outcomes = Mutex::new(Vec::new());
        run_team(2, |member| {
            let (first, second) = if member.index == 0 { (&a, &b) } else { (&b, &a) };
            let held = first.lock(member.index).unwrap();
            both_hold_one.wait();
            let outcome = second.lock(member.index).map(|_| ());
            drop(held);
            lock(&outcomes).push(outcome);
        })
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "detected, not timed out");
        let outcomes = outcomes.into_inner().unwrap();
        let victims = outcomes.iter().filter(|o| matches!(o, Err(Stuck::Deadlock(cycle)) if cycle.len() == 2)).count();
        assert_eq!((victims, outcomes.iter().filter(|o| o.is_ok()).count()), (1, 1), "{outcomes:?}");
        let mut cycle = graph.deadlock().unwrap();
        cycle.sort();
        assert_eq!(cycle, [(0, "b"), (1, "a")]);
        assert_eq!(
            Stuck::Deadlock(cycle).to_string(),
            "deadlock: thread 0 waits for b, thread 1 waits for a (each held by the next)"
        );
    }

    #[test]
    fn ordered_locks_never_report_and_a_wait_past_the_deadline_gives_up() {
        let graph = WaitForGraph::new(Duration::from_secs(10));
        let (a, b) = (graph.mutex("a"), graph.mutex("b"));
        let counter = AtomicUsize::new(0);
        run_team(2, |member| {
            for _ in 0..200 {
                let _a = a.lock(member.index).unwrap();
                let _b = b.lock(member.index).unwrap();
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .unwrap();
        assert_eq!((counter.load(Ordering::Relaxed), graph.deadlock()), (400, None));

        let short = WaitForGraph::new(Duration::from_millis(20));
        let held = short.mutex("held");
        let _guard = held.lock(0).unwrap();
        assert_eq!(held.lock(1).err(), Some(Stuck::TimedOut { after: Duration::from_millis(20) }));
    }
}
