//! The state of a program mid-run and what one step does to it, with the checks that turn a
//! state into a bug report: a failed assertion, a deadlock (with its wait-for cycle), a data
//! race (vector clocks, the happens-before of Lamport 1978 as DJIT+ and FastTrack track it —
//! Flanagan & Freund, PLDI 2009) and misuse (releasing a lock one does not hold).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::Serialize;

use super::program::{letter, Expr, Op, Program, Target};

/// Where a thread is, besides its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Status {
    Ready,
    /// Asleep in `condition.wait()`, until notified.
    Waiting(&'static str),
    /// Notified; takes the mutex back before `wait()` returns.
    Reacquiring(&'static str),
    Done,
}

/// Why a program is wrong, as found in one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Failure {
    Assertion {
        thread: char,
        line: usize,
        message: String,
    },
    /// The check run once every thread finished.
    Final {
        message: String,
    },
    Deadlock {
        blocked: Vec<Blocked>,
        cycle: Vec<char>,
    },
    /// A state came back with every unfinished thread having moved: the schedule between the two
    /// visits can repeat forever, and no thread ever finishes.
    Livelock {
        cycle: String,
    },
    DataRace {
        var: String,
        first: Access,
        second: Access,
    },
    /// A thread entered the critical section while others were inside.
    MutualExclusion {
        threads: Vec<char>,
    },
    Misuse {
        thread: char,
        line: usize,
        message: String,
    },
}

/// A blocked thread and what it waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub thread: char,
    pub line: usize,
    pub waits_for: String,
    /// The thread holding what it waits for, when that is a lock.
    pub holder: Option<char>,
}

/// One side of a data race.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    pub thread: char,
    pub line: usize,
    pub write: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Assertion { thread, line, message } => {
                write!(f, "assertion failed in {thread} line {}: {message}", line + 1)
            }
            Failure::Final { message } => write!(f, "final check failed: {message}"),
            Failure::Deadlock { blocked, cycle } => {
                write!(f, "deadlock: ")?;
                let waits: Vec<String> = blocked
                    .iter()
                    .map(|b| {
                        format!(
                            "{} (line {}) waits for {}{}",
                            b.thread,
                            b.line + 1,
                            b.waits_for,
                            b.holder.map_or(String::new(), |h| format!(", held by {h}"))
                        )
                    })
                    .collect();
                write!(f, "{}", waits.join("; "))?;
                if !cycle.is_empty() {
                    let names: Vec<String> = cycle.iter().chain(cycle.first()).map(char::to_string).collect();
                    write!(f, " — wait-for cycle {}", names.join(" → "))?;
                }
                Ok(())
            }
            Failure::Livelock { cycle } => {
                write!(f, "livelock: the schedule {cycle} returns to the same state, so it can repeat forever and no thread finishes")
            }
            Failure::DataRace { var, first, second } => {
                let kind = |a: &Access| if a.write { "write" } else { "read" };
                write!(
                    f,
                    "data race on {var}: {} {} (line {}) and {} {} (line {}) with nothing ordering them",
                    first.thread,
                    kind(first),
                    first.line + 1,
                    second.thread,
                    kind(second),
                    second.line + 1
                )
            }
            Failure::Misuse { thread, line, message } => write!(f, "{thread} line {}: {message}", line + 1),
            Failure::MutualExclusion { threads } => {
                let names: Vec<String> = threads.iter().map(char::to_string).collect();
                write!(f, "mutual exclusion violated: {} are in the critical section at once", names.join(" and "))
            }
        }
    }
}

/// Lamport's vector clock: entry i counts thread i's synchronisation epochs seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Clock(Vec<u64>);

impl Clock {
    fn join(&mut self, other: &Clock) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }
}

/// The last write and the reads since, with the epoch each happened in.
#[derive(Clone, Debug, Default)]
struct History {
    write: Option<(usize, u64, usize)>,
    reads: BTreeMap<usize, (u64, usize)>,
}

/// One executed step, for traces and the step view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub thread: char,
    pub line: usize,
    pub text: String,
    /// What it did beyond its text: a value stored, a lock that was busy, who was woken.
    pub effect: String,
}

/// The seed of every search's and replay's `random.randrange` draws.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// The running program.
#[derive(Clone, Debug)]
pub struct Machine<'p> {
    program: &'p Program,
    vars: BTreeMap<&'static str, i64>,
    regs: Vec<BTreeMap<&'static str, i64>>,
    lines: Vec<usize>,
    status: Vec<Status>,
    owners: BTreeMap<&'static str, Option<usize>>,
    waiters: BTreeMap<&'static str, VecDeque<usize>>,
    permits: BTreeMap<&'static str, i64>,
    clocks: Vec<Clock>,
    sync_clocks: BTreeMap<&'static str, Clock>,
    history: BTreeMap<&'static str, History>,
    /// Whether each thread's last step was a `Yield`.
    yielded: Vec<bool>,
    /// Whether each thread is inside its critical section.
    inside: Vec<bool>,
    /// The generator `random.randrange` draws from (splitmix64's state).
    random: u64,
    /// A cooperative program's task that holds the loop: it runs until it awaits or blocks.
    running: Option<usize>,
}

impl<'p> Machine<'p> {
    /// The machine every search and replay starts: the generator seeded with [`DEFAULT_SEED`].
    pub fn new(program: &'p Program) -> Self {
        Self::seeded(program, DEFAULT_SEED)
    }

    /// A machine whose `random.randrange` draws start from `seed`.
    pub fn seeded(program: &'p Program, seed: u64) -> Self {
        let threads = program.threads.len();
        let clocks = (0..threads)
            .map(|t| {
                let mut clock = Clock(vec![0; threads]);
                clock.0[t] = 1;
                clock
            })
            .collect();
        let mut machine = Self {
            program,
            vars: program.vars.iter().copied().collect(),
            regs: vec![BTreeMap::new(); threads],
            lines: vec![0; threads],
            status: vec![Status::Ready; threads],
            owners: program.mutexes.iter().map(|&m| (m, None)).collect(),
            waiters: program.conditions.iter().map(|&c| (c, VecDeque::new())).collect(),
            permits: program.semaphores.iter().copied().collect(),
            clocks,
            sync_clocks: BTreeMap::new(),
            history: BTreeMap::new(),
            yielded: vec![false; threads],
            inside: vec![false; threads],
            random: seed,
            running: None,
        };
        for thread in 0..threads {
            machine.finish_if_past_end(thread);
        }
        machine
    }

    pub fn threads(&self) -> usize {
        self.lines.len()
    }

    pub fn is_done(&self, thread: usize) -> bool {
        self.status[thread] == Status::Done
    }

    pub fn all_done(&self) -> bool {
        self.status.iter().all(|s| *s == Status::Done)
    }

    /// The line `thread` is at (its end once done).
    pub fn line(&self, thread: usize) -> usize {
        self.lines[thread]
    }

    fn op(&self, thread: usize) -> Option<&'p Op> {
        self.program.threads[thread].ops.get(self.lines[thread])
    }

    /// Whether `thread` can take a step now: it could, no higher-priority thread could, and in
    /// a cooperative program no other task holds the loop.
    pub fn is_enabled(&self, thread: usize) -> bool {
        self.could_step(thread) && self.outranked_by(thread).is_none() && self.loop_held_by(thread).is_none()
    }

    /// In a cooperative program, the other task that holds the loop and can go on, keeping
    /// `thread` in the ready queue.
    fn loop_held_by(&self, thread: usize) -> Option<usize> {
        self.running.filter(|&running| running != thread && self.could_step(running))
    }

    /// Whether the threads are asyncio tasks that switch only where they await.
    pub fn is_cooperative(&self) -> bool {
        self.program.cooperative
    }

    /// A thread of higher priority that could take a step instead of `thread`.
    fn outranked_by(&self, thread: usize) -> Option<usize> {
        if self.program.priorities.is_empty() {
            return None;
        }
        let mine = self.priority(thread);
        (0..self.threads()).find(|&other| other != thread && self.could_step(other) && self.priority(other) > mine)
    }

    /// `thread`'s priority now: its own, or with inheritance the highest of the threads blocked
    /// on a mutex it holds, if higher.
    pub fn priority(&self, thread: usize) -> i64 {
        let own = |t: usize| self.program.priorities.get(t).copied().unwrap_or(0);
        if !self.program.inheritance {
            return own(thread);
        }
        (0..self.threads())
            .filter(|&waiter| self.blocked_by(waiter) == Some(thread))
            .map(own)
            .fold(own(thread), i64::max)
    }

    /// The holder of the mutex `thread` is blocked on, if it is.
    fn blocked_by(&self, thread: usize) -> Option<usize> {
        match (self.status[thread], self.op(thread)) {
            (Status::Reacquiring(mutex), _) | (Status::Ready, Some(&Op::Lock(mutex))) => self.owners[mutex],
            _ => None,
        }
    }

    /// Whether `thread` could take a step, priorities aside.
    fn could_step(&self, thread: usize) -> bool {
        match self.status[thread] {
            Status::Done | Status::Waiting(_) => false,
            Status::Reacquiring(mutex) => self.owners[mutex].is_none(),
            Status::Ready => match self.op(thread) {
                Some(Op::Lock(mutex)) => self.owners[mutex].is_none(),
                Some(Op::Acquire(semaphore)) => self.permits[semaphore] > 0,
                _ => true,
            },
        }
    }

    pub fn enabled(&self) -> Vec<usize> {
        (0..self.threads()).filter(|&t| self.is_enabled(t)).collect()
    }

    /// Whether `thread`'s next step is a `Yield` or an `Await`: it offers the others a turn.
    pub fn is_yielding(&self, thread: usize) -> bool {
        self.status[thread] == Status::Ready && matches!(self.op(thread), Some(Op::Yield | Op::Await(_)))
    }

    /// Whether `thread`'s last step was a `Yield` (switching away from it now is no preemption).
    pub fn just_yielded(&self, thread: usize) -> bool {
        self.yielded[thread]
    }

    /// A fingerprint of everything that decides the future (not the race detector's clocks).
    pub fn state_key(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.vars.hash(&mut hasher);
        self.regs.hash(&mut hasher);
        self.lines.hash(&mut hasher);
        self.status.hash(&mut hasher);
        self.owners.hash(&mut hasher);
        self.waiters.hash(&mut hasher);
        self.permits.hash(&mut hasher);
        self.inside.hash(&mut hasher);
        self.random.hash(&mut hasher);
        self.running.hash(&mut hasher);
        hasher.finish()
    }

    /// Runs one step of `thread`, which must be enabled: the step as shown (also when it is the
    /// one that fails) and the failure it revealed, if any.
    pub fn step(&mut self, thread: usize) -> (Step, Result<(), Failure>) {
        debug_assert!(self.is_enabled(thread));
        let line = self.lines[thread];
        let cooperative = self.program.cooperative;
        let text = self.program.threads[thread].ops.get(line).map_or_else(String::new, |op| op.text(cooperative));
        self.yielded[thread] = self.is_yielding(thread);
        if cooperative {
            // The task holds the loop from this step on, unless this step is its await.
            self.running = (!self.yielded[thread]).then_some(thread);
        }
        let outcome = match self.status[thread] {
            Status::Reacquiring(mutex) => {
                self.take(thread, mutex);
                self.status[thread] = Status::Ready;
                self.lines[thread] += 1;
                Ok(format!("woken; holds {mutex} again"))
            }
            _ => self.execute(thread),
        };
        self.finish_if_past_end(thread);
        let (effect, result) = match outcome {
            Ok(effect) => (effect, Ok(())),
            Err(failure) => ("FAILS".to_string(), Err(failure)),
        };
        (Step { thread: letter(thread), line, text, effect }, result)
    }

    fn finish_if_past_end(&mut self, thread: usize) {
        if self.status[thread] == Status::Ready && self.lines[thread] >= self.program.threads[thread].ops.len() {
            self.status[thread] = Status::Done;
        }
    }

    fn execute(&mut self, thread: usize) -> Result<String, Failure> {
        let line = self.lines[thread];
        let op = self.op(thread).expect("an enabled thread has a line");
        let mut next = line + 1;
        let effect = match op {
            Op::Set(target, value) => {
                let value = self.eval(thread, value)?;
                match target {
                    Target::Reg(name) => {
                        self.regs[thread].insert(name, value);
                    }
                    Target::Var(name) => {
                        self.access(thread, name, true)?;
                        self.vars.insert(name, value);
                    }
                }
                format!("→ {value}")
            }
            Op::Lock(mutex) => {
                self.take(thread, mutex);
                format!("holds {mutex}")
            }
            Op::Unlock(mutex) => {
                if self.owners[mutex] != Some(thread) {
                    return Err(self.misuse(thread, format!("releases {mutex}, which it does not hold")));
                }
                self.give(thread, mutex);
                format!("{mutex} free")
            }
            Op::TryLock(mutex, into) => {
                let free = self.owners[mutex].is_none();
                if free {
                    self.take(thread, mutex);
                }
                self.regs[thread].insert(into, i64::from(free));
                if free {
                    format!("holds {mutex}")
                } else {
                    format!("{mutex} busy → 0")
                }
            }
            Op::Wait(condition, mutex) => {
                if self.owners[mutex] != Some(thread) {
                    return Err(self.misuse(thread, format!("waits on {condition} without holding {mutex}")));
                }
                self.give(thread, mutex);
                self.status[thread] = Status::Waiting(condition);
                self.waiters.get_mut(condition).expect("declared condition").push_back(thread);
                next = line;
                format!("releases {mutex}, sleeps")
            }
            Op::Notify(condition) => {
                let woken = self.waiters.get_mut(condition).expect("declared condition").pop_front();
                woken.iter().for_each(|&t| self.wake(t));
                woken.map_or_else(|| "nobody waiting".into(), |t| format!("wakes {}", letter(t)))
            }
            Op::NotifyAll(condition) => {
                let woken: Vec<usize> =
                    self.waiters.get_mut(condition).expect("declared condition").drain(..).collect();
                woken.iter().for_each(|&t| self.wake(t));
                if woken.is_empty() {
                    "nobody waiting".into()
                } else {
                    format!("wakes {}", woken.iter().map(|&t| letter(t).to_string()).collect::<Vec<_>>().join(", "))
                }
            }
            Op::Acquire(semaphore) => {
                *self.permits.get_mut(semaphore).expect("declared semaphore") -= 1;
                let released = self.sync_clocks.get(semaphore).cloned().unwrap_or_default();
                self.clocks[thread].join(&released);
                format!("{semaphore} → {}", self.permits[semaphore])
            }
            Op::Release(semaphore) => {
                *self.permits.get_mut(semaphore).expect("declared semaphore") += 1;
                self.publish(thread, semaphore);
                format!("{semaphore} → {}", self.permits[semaphore])
            }
            Op::Yield => String::new(),
            Op::Await(_) => "suspends; back in the ready queue".into(),
            Op::Enter => {
                self.inside[thread] = true;
                let threads: Vec<char> = (0..self.threads()).filter(|&t| self.inside[t]).map(letter).collect();
                if threads.len() > 1 {
                    return Err(Failure::MutualExclusion { threads });
                }
                "inside".into()
            }
            Op::Leave => {
                self.inside[thread] = false;
                "outside".into()
            }
            Op::Random(into, bound) => {
                let bound = self.eval(thread, bound)?;
                if bound < 1 {
                    return Err(self.misuse(thread, format!("draws from randrange({bound}), an empty range")));
                }
                let value = (crate::kernels::splitmix64(&mut self.random) % bound as u64) as i64;
                self.regs[thread].insert(into, value);
                format!("→ {value}")
            }
            Op::JumpIf(condition, label) => {
                let taken = self.eval(thread, condition)? != 0;
                if taken {
                    next = self.program.threads[thread].target(label);
                }
                if taken {
                    format!("→ {label}")
                } else {
                    "no".into()
                }
            }
            Op::Jump(label) => {
                next = self.program.threads[thread].target(label);
                String::new()
            }
            Op::Assert(condition, message) => {
                if self.eval(thread, condition)? == 0 {
                    return Err(Failure::Assertion { thread: letter(thread), line, message: message.to_string() });
                }
                "holds".into()
            }
        };
        self.lines[thread] = next;
        Ok(effect)
    }

    fn misuse(&self, thread: usize, message: String) -> Failure {
        Failure::Misuse { thread: letter(thread), line: self.lines[thread], message }
    }

    fn take(&mut self, thread: usize, mutex: &'static str) {
        self.owners.insert(mutex, Some(thread));
        let released = self.sync_clocks.get(mutex).cloned().unwrap_or_default();
        self.clocks[thread].join(&released);
    }

    fn give(&mut self, thread: usize, mutex: &'static str) {
        self.owners.insert(mutex, None);
        self.publish(thread, mutex);
    }

    /// A release: what `thread` has seen becomes visible to the next acquirer of `object`.
    fn publish(&mut self, thread: usize, object: &'static str) {
        let clock = self.clocks[thread].clone();
        self.sync_clocks.entry(object).or_insert_with(|| Clock(vec![0; clock.0.len()])).join(&clock);
        self.clocks[thread].0[thread] += 1;
    }

    fn wake(&mut self, thread: usize) {
        if let Status::Waiting(_) = self.status[thread] {
            if let Some(Op::Wait(_, mutex)) = self.op(thread) {
                self.status[thread] = Status::Reacquiring(mutex);
            }
        }
    }

    fn eval(&mut self, thread: usize, expr: &Expr) -> Result<i64, Failure> {
        let mut read = Vec::new();
        expr.vars(&mut read);
        for name in read {
            self.access(thread, name, false)?;
        }
        Ok(self.value(thread, expr))
    }

    fn value(&self, thread: usize, expr: &Expr) -> i64 {
        let value = |e: &Expr| self.value(thread, e);
        match expr {
            Expr::Int(v) => *v,
            Expr::Reg(name) => self.regs[thread].get(name).copied().unwrap_or(0),
            Expr::Var(name) => self.vars.get(name).copied().unwrap_or(0),
            Expr::Add(a, b) => value(a).wrapping_add(value(b)),
            Expr::Sub(a, b) => value(a).wrapping_sub(value(b)),
            Expr::Eq(a, b) => i64::from(value(a) == value(b)),
            Expr::Lt(a, b) => i64::from(value(a) < value(b)),
            Expr::Not(a) => i64::from(value(a) == 0),
        }
    }

    /// Records an access to a shared variable; `Err` when an earlier conflicting access by
    /// another thread does not happen before it.
    fn access(&mut self, thread: usize, name: &'static str, write: bool) -> Result<(), Failure> {
        if self.program.cooperative {
            // One OS thread runs every task: program order orders all their accesses.
            return Ok(());
        }
        if self.program.atomic.contains(&name) {
            // Sequentially consistent atomics synchronise: a write releases, a read acquires.
            if write {
                self.publish(thread, name);
            } else {
                let released = self.sync_clocks.get(name).cloned().unwrap_or_default();
                self.clocks[thread].join(&released);
            }
            return Ok(());
        }
        let line = self.lines[thread];
        let clock = &self.clocks[thread];
        let history = self.history.entry(name).or_default();
        let unordered = |other: usize, epoch: u64| other != thread && epoch > clock.0[other];
        let race = |other: usize, other_line: usize, other_write: bool| Failure::DataRace {
            var: name.to_string(),
            first: Access { thread: letter(other), line: other_line, write: other_write },
            second: Access { thread: letter(thread), line, write },
        };
        if let Some((writer, epoch, at)) = history.write {
            if unordered(writer, epoch) {
                return Err(race(writer, at, true));
            }
        }
        if write {
            if let Some((&reader, &(_, at))) =
                history.reads.iter().find(|(&reader, &(epoch, _))| unordered(reader, epoch))
            {
                return Err(race(reader, at, false));
            }
            history.write = Some((thread, clock.0[thread], line));
            history.reads.clear();
        } else {
            history.reads.insert(thread, (clock.0[thread], line));
        }
        Ok(())
    }

    /// The final check, once every thread is done.
    pub fn check_finally(&self) -> Result<(), Failure> {
        match &self.program.finally {
            Some((condition, message)) if self.value(0, condition) == 0 => {
                Err(Failure::Final { message: message.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// The deadlock report for a state where nothing can run and something has not finished.
    pub fn deadlock(&self) -> Failure {
        let mut blocked = Vec::new();
        let mut holder_of: Vec<Option<usize>> = Vec::with_capacity(self.threads());
        for thread in 0..self.threads() {
            holder_of.push(None);
            let waits_for = match (self.status[thread], self.op(thread)) {
                (Status::Done, _) => continue,
                (Status::Reacquiring(mutex), _) | (Status::Ready, Some(&Op::Lock(mutex))) => {
                    holder_of[thread] = self.owners[mutex];
                    format!("lock {mutex}")
                }
                (Status::Waiting(condition), _) => format!("a notify on {condition}, and no thread is left to send it"),
                (Status::Ready, Some(Op::Acquire(semaphore))) => format!("semaphore {semaphore} (at 0)"),
                (Status::Ready, _) => continue,
            };
            blocked.push(Blocked {
                thread: letter(thread),
                line: self.lines[thread],
                waits_for,
                holder: holder_of[thread].map(letter),
            });
        }
        Failure::Deadlock { blocked, cycle: wait_for_cycle(&holder_of).into_iter().map(letter).collect() }
    }

    /// `state` with the thread's priority, where the program has priorities (and whether it
    /// is inherited).
    fn with_priority(&self, thread: usize, state: String) -> String {
        let Some(&own) = self.program.priorities.get(thread) else { return state };
        match self.priority(thread) {
            now if now > own => format!("{state} · priority {now}, inherited (its own: {own})"),
            now => format!("{state} · priority {now}"),
        }
    }

    /// The state as the step view shows it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            threads: (0..self.threads())
                .map(|t| ThreadState {
                    line: (!self.is_done(t)).then_some(self.lines[t]),
                    state: self.with_priority(
                        t,
                        match self.status[t] {
                            Status::Done => "finished".into(),
                            Status::Waiting(condition) => format!("waiting on {condition}"),
                            Status::Reacquiring(mutex) if !self.is_enabled(t) => format!("woken, waiting for {mutex}"),
                            Status::Ready if self.could_step(t) && !self.is_enabled(t) => {
                                match (self.loop_held_by(t), self.outranked_by(t)) {
                                    (Some(running), _) => {
                                        format!("ready, queued: {} holds the loop until it awaits", letter(running))
                                    }
                                    (None, Some(higher)) => format!("ready, outranked by {}", letter(higher)),
                                    (None, None) => "ready".into(),
                                }
                            }
                            Status::Ready if !self.is_enabled(t) => match self.op(t) {
                                Some(Op::Lock(mutex)) if self.program.cooperative => {
                                    format!("suspended in {mutex}.acquire(), {mutex} is held")
                                }
                                Some(Op::Lock(mutex)) => format!("blocked on {mutex}"),
                                Some(Op::Acquire(semaphore)) => format!("blocked on {semaphore}"),
                                _ => "blocked".into(),
                            },
                            _ if self.loop_held_by(t).is_none() && self.running == Some(t) => {
                                "running: holds the loop until it awaits".into()
                            }
                            _ => "ready".into(),
                        },
                    ),
                    enabled: self.is_enabled(t),
                    registers: self.regs[t].iter().map(|(name, value)| (name.to_string(), *value)).collect(),
                })
                .collect(),
            vars: self.vars.iter().map(|(name, value)| (name.to_string(), *value)).collect(),
            locks: self.owners.iter().map(|(name, owner)| (name.to_string(), owner.map(letter))).collect(),
            semaphores: self.permits.iter().map(|(name, permits)| (name.to_string(), *permits)).collect(),
        }
    }
}

/// A cycle in the graph where thread i waits for `holder_of[i]`, if there is one.
fn wait_for_cycle(holder_of: &[Option<usize>]) -> Vec<usize> {
    for start in 0..holder_of.len() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(next) = holder_of[at] {
            if let Some(position) = path.iter().position(|&t| t == next) {
                return path[position..].to_vec();
            }
            path.push(next);
            at = next;
        }
    }
    Vec::new()
}

/// Every thread's line and state, the shared variables, who holds each lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub threads: Vec<ThreadState>,
    pub vars: BTreeMap<String, i64>,
    pub locks: BTreeMap<String, Option<char>>,
    pub semaphores: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadState {
    /// The line it will run next; `None` once finished.
    pub line: Option<usize>,
    pub state: String,
    pub enabled: bool,
    pub registers: BTreeMap<String, i64>,
}
