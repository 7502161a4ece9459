//! The step language virtual threads are written in: a handful of operations on shared
//! variables, mutexes, condition variables and semaphores, each one line and one scheduling
//! point, printed the way a Python listing would write it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A value computed from constants, the thread's registers (locals) and shared variables. A
/// line that reads a shared variable reads it once, atomically with the rest of the line: write
/// `tmp = counter` and `counter = tmp + 1` on two lines to get the race books describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Int(i64),
    /// A register, private to its thread.
    Reg(&'static str),
    /// A shared variable.
    Var(&'static str),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    Lt(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

impl std::ops::Add for Expr {
    type Output = Expr;

    fn add(self, other: Expr) -> Expr {
        Expr::Add(Box::new(self), Box::new(other))
    }
}

impl std::ops::Sub for Expr {
    type Output = Expr;

    fn sub(self, other: Expr) -> Expr {
        Expr::Sub(Box::new(self), Box::new(other))
    }
}

impl std::ops::Not for Expr {
    type Output = Expr;

    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

impl Expr {
    pub fn eq(self, other: Expr) -> Expr {
        Expr::Eq(Box::new(self), Box::new(other))
    }

    pub fn lt(self, other: Expr) -> Expr {
        Expr::Lt(Box::new(self), Box::new(other))
    }

    /// `self >= other`, written as `not (self < other)`.
    pub fn ge(self, other: Expr) -> Expr {
        !self.lt(other)
    }

    /// The shared variables this expression reads, in order.
    pub fn vars(&self, into: &mut Vec<&'static str>) {
        match self {
            Expr::Int(_) | Expr::Reg(_) => {}
            Expr::Var(name) => into.push(name),
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Eq(a, b) | Expr::Lt(a, b) => {
                a.vars(into);
                b.vars(into);
            }
            Expr::Not(a) => a.vars(into),
        }
    }
}

/// `Int`, `Reg` and `Var` without the boxes, for writing scenarios.
pub fn int(value: i64) -> Expr {
    Expr::Int(value)
}

pub fn reg(name: &'static str) -> Expr {
    Expr::Reg(name)
}

pub fn var(name: &'static str) -> Expr {
    Expr::Var(name)
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Int(value) => write!(f, "{value}"),
            Expr::Reg(name) | Expr::Var(name) => write!(f, "{name}"),
            Expr::Add(a, b) => write!(f, "{a} + {b}"),
            Expr::Sub(a, b) => write!(f, "{a} - {b}"),
            Expr::Eq(a, b) => write!(f, "{a} == {b}"),
            Expr::Lt(a, b) => write!(f, "{a} < {b}"),
            Expr::Not(inner) => match inner.as_ref() {
                Expr::Lt(a, b) => write!(f, "{a} >= {b}"),
                Expr::Eq(a, b) => write!(f, "{a} != {b}"),
                other => write!(f, "not {other}"),
            },
        }
    }
}

/// Where `Set` stores its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Reg(&'static str),
    Var(&'static str),
}

/// One line of a virtual thread: the unit the scheduler interleaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set(Target, Expr),
    Lock(&'static str),
    Unlock(&'static str),
    /// Takes the mutex if it is free; the register says whether it did (1) or not (0).
    TryLock(&'static str, &'static str),
    /// Releases the mutex and sleeps until notified, then takes the mutex again.
    Wait(&'static str, &'static str),
    Notify(&'static str),
    NotifyAll(&'static str),
    Acquire(&'static str),
    Release(&'static str),
    /// Gives the others a turn (`time.sleep(0)`, a polite back-off): a switch here is free.
    Yield,
    /// `await` on what the text names (`asyncio.sleep(0)`, `db.fetch()`): in a cooperative
    /// program the only place a task gives up the loop, and every task ready then may run next.
    Await(&'static str),
    /// Marks the start of the critical section: two threads inside at once is a failure (the
    /// goal of the scenarios about broken locks).
    Enter,
    /// Marks its end.
    Leave,
    /// Draws a whole number in `0..bound` into the register (`random.randrange(bound)`), from
    /// the run's seeded generator: a schedule replays to the same draws.
    Random(&'static str, Expr),
    /// Jumps to the label when the condition is non-zero.
    JumpIf(Expr, &'static str),
    Jump(&'static str),
    Assert(Expr, &'static str),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Set(Target::Reg(name) | Target::Var(name), value) => write!(f, "{name} = {value}"),
            Op::Lock(mutex) => write!(f, "{mutex}.acquire()"),
            Op::Unlock(mutex) => write!(f, "{mutex}.release()"),
            Op::TryLock(mutex, into) => write!(f, "{into} = {mutex}.acquire(blocking=False)"),
            Op::Wait(condition, _) => write!(f, "{condition}.wait()"),
            Op::Notify(condition) => write!(f, "{condition}.notify()"),
            Op::NotifyAll(condition) => write!(f, "{condition}.notify_all()"),
            Op::Acquire(semaphore) => write!(f, "{semaphore}.acquire()"),
            Op::Release(semaphore) => write!(f, "{semaphore}.release()"),
            Op::Yield => write!(f, "time.sleep(0)  # back off"),
            Op::Await(what) => write!(f, "await {what}"),
            Op::Enter => write!(f, "# ── critical section ──"),
            Op::Leave => write!(f, "# ── end of critical section ──"),
            Op::Random(into, bound) => write!(f, "{into} = random.randrange({bound})"),
            Op::JumpIf(condition, label) => write!(f, "if {condition}: goto {label}"),
            Op::Jump(label) => write!(f, "goto {label}"),
            Op::Assert(condition, _) => write!(f, "assert {condition}"),
        }
    }
}

impl Op {
    /// The line as a listing shows it: in a cooperative program (asyncio tasks) taking a lock
    /// is `await lock.acquire()` — it suspends the task only when the lock is busy.
    pub fn text(&self, cooperative: bool) -> String {
        match self {
            Op::Lock(mutex) if cooperative => format!("await {mutex}.acquire()"),
            other => other.to_string(),
        }
    }
}

/// A virtual thread: a name and its lines, some of them labelled as jump targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    pub name: String,
    pub ops: Vec<Op>,
    pub labels: BTreeMap<&'static str, usize>,
}

impl Thread {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ops: Vec::new(), labels: BTreeMap::new() }
    }

    /// Appends a line.
    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Names the next line (or the thread's end) as a jump target.
    pub fn label(mut self, name: &'static str) -> Self {
        self.labels.insert(name, self.ops.len());
        self
    }

    /// The line a label names.
    pub fn target(&self, label: &str) -> usize {
        // Scenarios are checked by a test: every jump names a label of its thread.
        self.labels.get(label).copied().unwrap_or(self.ops.len())
    }

    /// The listing as shown beside the thread: one string per line, labels as prefixes
    /// (`cooperative`: written as asyncio code, [`Op::text`]).
    pub fn listing(&self, cooperative: bool) -> Vec<String> {
        self.ops
            .iter()
            .enumerate()
            .map(|(line, op)| {
                let labels: Vec<&str> =
                    self.labels.iter().filter(|(_, &at)| at == line).map(|(name, _)| *name).collect();
                let text = op.text(cooperative);
                if labels.is_empty() {
                    text
                } else {
                    format!("{}: {text}", labels.join(", "))
                }
            })
            .collect()
    }
}

/// Shared variables, synchronisation objects and threads: a whole scenario's program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Shared variables and their initial values.
    pub vars: Vec<(&'static str, i64)>,
    /// Variables accessed only atomically (flags meant as `AtomicBool`): never reported as races.
    pub atomic: Vec<&'static str>,
    pub mutexes: Vec<&'static str>,
    /// Condition variables.
    pub conditions: Vec<&'static str>,
    /// Semaphores and their initial counts.
    pub semaphores: Vec<(&'static str, i64)>,
    pub threads: Vec<Thread>,
    /// Checked once every thread has finished, with the message shown when it fails.
    pub finally: Option<(Expr, &'static str)>,
    /// One priority per thread (higher runs first), or none: with them, only the runnable
    /// threads of the highest priority may take a step — a strict priority scheduler, as a
    /// real-time OS has.
    pub priorities: Vec<i64>,
    /// Priority inheritance: a thread holding a mutex a higher-priority thread is blocked on
    /// runs at that thread's priority until it lets go.
    pub inheritance: bool,
    /// The threads are asyncio tasks on one event loop: a task runs until it awaits (an
    /// [`Op::Await`], a busy lock, a condition's wait) or ends, and only then may another run.
    /// One OS thread runs them all, so their accesses never race; what breaks is an action
    /// split by an await.
    pub cooperative: bool,
}

/// The program as the step view shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub threads: Vec<ThreadListing>,
    pub finally: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadListing {
    pub name: String,
    pub letter: char,
    pub lines: Vec<String>,
}

impl Program {
    pub fn listing(&self) -> Listing {
        Listing {
            threads: self
                .threads
                .iter()
                .enumerate()
                .map(|(index, thread)| ThreadListing {
                    name: thread.name.clone(),
                    letter: letter(index),
                    lines: thread.listing(self.cooperative),
                })
                .collect(),
            finally: self.finally.as_ref().map(|(condition, _)| format!("assert {condition}")),
        }
    }
}

/// The letter a schedule uses for thread `index`: A, B, C, …
pub fn letter(index: usize) -> char {
    char::from(b'A' + index as u8)
}
