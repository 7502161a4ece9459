//! The books' race and deadlock listings as virtual-thread programs, each buggy one with a
//! fixed twin (`-fixed`), small enough that exhaustive search is quick. The `async-` ones are
//! asyncio tasks on one loop ([`Program::cooperative`]): races at await points, and the
//! await-free twin that DFS proves needs no lock.

use serde::Serialize;

use super::program::{int, reg, var, Op, Program, Target, Thread};

/// A scenario for `conlab explore`, `conlab replay` and the lab's step mode.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Scenario {
    pub id: &'static str,
    pub title: &'static str,
    /// What goes wrong (or, for a fixed twin, what the fix does).
    pub story: &'static str,
    /// Whether a search should find a failure.
    pub buggy: bool,
    /// The other half of the pair: the fix of a buggy scenario, the bug a fix repairs.
    pub twin: &'static str,
    #[serde(skip)]
    build: fn() -> Program,
}

impl Scenario {
    pub fn program(&self) -> Program {
        (self.build)()
    }
}

const fn scenario(
    id: &'static str,
    title: &'static str,
    story: &'static str,
    buggy: bool,
    twin: &'static str,
    build: fn() -> Program,
) -> Scenario {
    Scenario { id, title, story, buggy, twin, build }
}

/// Every scenario, buggy ones each followed by their fixes.
pub fn scenarios() -> &'static [Scenario] {
    &SCENARIOS
}

/// The scenario called `id`, or an error listing them all.
pub fn find_scenario(id: &str) -> Result<&'static Scenario, String> {
    SCENARIOS.iter().find(|s| s.id == id).ok_or_else(|| {
        format!(
            "unknown scenario `{id}`; known scenarios are {}",
            SCENARIOS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
        )
    })
}

static SCENARIOS: [Scenario; 27] = [
    scenario("lost-update", "Lost update: counter += 1 from two threads", "Each thread reads the counter, then writes back one more: if both read before either writes, one increment is lost and the total is 1, not 2.", true, "lost-update-fixed", lost_update),
    scenario("lost-update-fixed", "Lost update, fixed with a lock", "The read and the write happen under one lock, so the second thread reads what the first wrote.", false, "lost-update", lost_update_fixed),
    scenario(
        "flag-lock",
        "A lock made of a flag: while flag: sleep(0); flag = True",
        "Each thread waits until the flag is down, then raises it and goes in. Both can see it down before either raises it — and then both are in the critical section.",
        true,
        "flag-lock-fixed",
        flag_lock,
    ),
    scenario(
        "flag-lock-fixed",
        "A real lock instead of the flag",
        "acquire() checks and takes the lock in one indivisible step, so only one thread is ever inside.",
        false,
        "flag-lock",
        flag_lock_fixed,
    ),
    scenario("check-then-act", "Check-then-act: two withdrawals from one balance", "Both threads check that 10 is there, then both take it: the check was true when made and false when acted on, and the balance goes negative. Every read and write here is atomic — no data race — and the program is still wrong: atomicity of the steps is not atomicity of the action.", true, "check-then-act-fixed", check_then_act),
    scenario("check-then-act-fixed", "Check-then-act, fixed: check and act under one lock", "The check and the withdrawal are one critical section, so the second thread sees the first's withdrawal.", false, "check-then-act", check_then_act_fixed),
    scenario("abba-deadlock", "ABBA deadlock: two locks taken in opposite orders", "A holds a and wants b; B holds b and wants a. Neither lets go: the wait-for graph has the cycle A → B → A.", true, "abba-deadlock-fixed", abba),
    scenario("abba-deadlock-fixed", "ABBA, fixed: one global lock order", "Both take a before b, so whoever holds a will get b: no cycle can form.", false, "abba-deadlock", abba_fixed),
    scenario("dining-philosophers", "Dining philosophers: everyone takes the left fork first", "Three philosophers each pick up the left fork, then the right; if all hold their left fork at once, each waits for a neighbour forever.", true, "dining-philosophers-fixed", philosophers_naive),
    scenario("dining-philosophers-fixed", "Dining philosophers, ordered forks", "Each takes the lower-numbered fork first (Dijkstra's resource ordering), so the last philosopher reaches across and the cycle breaks.", false, "dining-philosophers", philosophers_ordered),
    scenario("dining-philosophers-arbitrator", "Dining philosophers with a waiter", "A semaphore of two seats (a waiter) lets at most n − 1 philosophers reach for forks, so one of them always gets both.", false, "dining-philosophers", philosophers_arbitrator),
    scenario("missed-wakeup", "Missed wake-up: the condition checked with if, not while", "Both consumers sleep; one item arrives and notify_all wakes both. The first takes it; the second, checked once with `if`, goes on and takes an item that is not there.", true, "missed-wakeup-fixed", missed_wakeup),
    scenario("missed-wakeup-fixed", "Wake-ups, fixed: while re-checks the condition", "After every wake-up the consumer checks again and sleeps again if the item went to someone else.", false, "missed-wakeup", missed_wakeup_fixed),
    scenario("buggy-buffer", "A bounded buffer with one condition and notify()", "Producers and consumers share one condition variable; notify() can wake a consumer when a producer was needed, the woken consumer goes back to sleep, and soon everyone sleeps.", true, "buggy-buffer-fixed", buggy_buffer),
    scenario("buggy-buffer-fixed", "The bounded buffer with not_full and not_empty", "Two conditions: a producer always wakes a consumer and a consumer a producer, so a wake-up is never spent on the wrong side.", false, "buggy-buffer", buffer_fixed),
    scenario("polite-livelock", "Polite livelock: take one lock, try the other, back off", "Each thread holds its first lock, tries the second, and on failure politely lets go and retries. In lock-step they retry forever: always busy, never done.", true, "polite-livelock-fixed", polite_livelock),
    scenario("polite-livelock-fixed", "Polite livelock, fixed: one lock order, blocking", "Both take a then b and wait instead of backing off: one goes first, the other follows.", false, "polite-livelock", polite_fixed),
    scenario(
        "polite-livelock-backoff",
        "Polite livelock, fixed: randomised exponential back-off",
        "The books' other fix keeps the polite retry but waits a random number of turns after each failure, from a window that doubles every time (Ethernet's back-off): two threads in lock-step soon draw different waits, and the one that comes back first gets both locks. It fixes the livelock with probability 1 when the threads run at the same pace — not against a scheduler that picks on purpose, which can still put them back in step.",
        false,
        "polite-livelock",
        polite_backoff,
    ),
    scenario(
        "priority-inversion",
        "Priority inversion: high waits behind medium",
        "A strict priority scheduler (highest runnable thread first, as a real-time OS has). low holds the bus when high wakes and blocks on it; then medium wakes — above low, below high — and runs its whole long job while low, holding the bus, cannot run. high, the most urgent thread, waits for medium, a less urgent one: Mars Pathfinder's reset in 1997.",
        true,
        "priority-inversion-fixed",
        priority_inversion,
    ),
    scenario(
        "priority-inversion-fixed",
        "Priority inversion, fixed: priority inheritance",
        "While high is blocked on the bus low holds, low runs at high's priority (it inherits it), so medium cannot preempt it: low finishes with the bus at once and high gets it before medium's job has even started — VxWorks' fix for Pathfinder, and what PTHREAD_PRIO_INHERIT asks of a mutex.",
        false,
        "priority-inversion",
        priority_inheritance,
    ),
    scenario("two-lock-transfer", "Transfers between two accounts, each locking from then to", "A transfer x→y locks x then y; one y→x locks y then x. Run together they deadlock, holding one account each.", true, "two-lock-transfer-fixed", transfer),
    scenario("two-lock-transfer-fixed", "Transfers, fixed: lock accounts in id order", "Each transfer locks the lower-numbered account first, whichever way the money goes, so the money is conserved and nothing deadlocks.", false, "two-lock-transfer", transfer_fixed),
    scenario(
        "async-lost-update",
        "asyncio: an await between the read and the write",
        "Three asyncio tasks each read the counter, await a network call, then write back one more. The await hands the loop to the others while the task holds a stale copy: if all three read before any writes, the counter ends at 1, not 3. One OS thread, no preemption, no data race — and lost updates all the same: \"asyncio has no race conditions\" fails wherever an await splits a read from its write.",
        true,
        "async-lost-update-fixed",
        async_lost_update,
    ),
    scenario(
        "async-lost-update-fixed",
        "asyncio: the read, the await and the write under an asyncio.Lock",
        "async with lock: around all three. A task that finds the lock held suspends in acquire() until the holder releases it, so each task reads what the last one wrote.",
        false,
        "async-lost-update",
        async_lost_update_fixed,
    ),
    scenario(
        "async-no-await",
        "asyncio: the same increment with no await inside it",
        "The network call moved before the read: a task runs from one await to the next without interruption, so its read and write are one indivisible step. DFS runs every order of the tasks at their awaits, and every one ends with 3 — a proof, not a sample, and the reason asyncio code with no await inside its critical section needs no lock (the same two lines on threads lose updates: see lost-update).",
        false,
        "async-lost-update",
        async_no_await,
    ),
    scenario(
        "async-check-then-act",
        "asyncio: check the balance, await the payment, withdraw",
        "Two tasks each check that the balance covers 10, await the payment service, then take the 10. The check was true before the await and is false after it: both pay, and the balance goes negative.",
        true,
        "async-check-then-act-fixed",
        async_check_then_act,
    ),
    scenario(
        "async-check-then-act-fixed",
        "asyncio: check, await and withdraw under one asyncio.Lock",
        "The check, the payment and the withdrawal are one critical section: the second task checks only after the first has taken its 10, and declines.",
        false,
        "async-check-then-act",
        async_check_then_act_fixed,
    ),
];

fn set_reg(name: &'static str, value: super::program::Expr) -> Op {
    Op::Set(Target::Reg(name), value)
}

fn set_var(name: &'static str, value: super::program::Expr) -> Op {
    Op::Set(Target::Var(name), value)
}

fn program(vars: &[(&'static str, i64)], mutexes: &[&'static str], threads: Vec<Thread>) -> Program {
    Program {
        vars: vars.to_vec(),
        atomic: Vec::new(),
        mutexes: mutexes.to_vec(),
        conditions: Vec::new(),
        semaphores: Vec::new(),
        threads,
        finally: None,
        priorities: Vec::new(),
        inheritance: false,
        cooperative: false,
    }
}

fn increment(name: &str, locked: bool) -> Thread {
    let thread = Thread::new(name);
    let thread = if locked { thread.op(Op::Lock("lock")) } else { thread };
    let thread = thread.op(set_reg("tmp", var("counter"))).op(set_var("counter", reg("tmp") + int(1)));
    if locked {
        thread.op(Op::Unlock("lock"))
    } else {
        thread
    }
}

fn lost_update() -> Program {
    Program {
        finally: Some((var("counter").eq(int(2)), "counter == 2 after two increments")),
        ..program(&[("counter", 0)], &[], vec![increment("A", false), increment("B", false)])
    }
}

fn lost_update_fixed() -> Program {
    Program {
        finally: Some((var("counter").eq(int(2)), "counter == 2 after two increments")),
        ..program(&[("counter", 0)], &["lock"], vec![increment("A", true), increment("B", true)])
    }
}

/// Waits for the flag to drop, raises it, and runs a critical section (an increment).
fn flagged(name: &str) -> Thread {
    Thread::new(name)
        .label("spin")
        .op(set_reg("up", var("flag")))
        .op(Op::JumpIf(!reg("up"), "take"))
        .op(Op::Yield)
        .op(Op::Jump("spin"))
        .label("take")
        .op(set_var("flag", int(1)))
        .op(Op::Enter)
        .op(set_var("counter", var("counter") + int(1)))
        .op(Op::Leave)
        .op(set_var("flag", int(0)))
}

fn flag_lock() -> Program {
    // Every access is atomic, so no data race hides the point: the gap between seeing the flag
    // down and raising it lets both threads into the critical section.
    Program {
        atomic: vec!["flag", "counter"],
        ..program(&[("flag", 0), ("counter", 0)], &[], vec![flagged("A"), flagged("B")])
    }
}

fn locked_section(name: &str) -> Thread {
    Thread::new(name)
        .op(Op::Lock("lock"))
        .op(Op::Enter)
        .op(set_var("counter", var("counter") + int(1)))
        .op(Op::Leave)
        .op(Op::Unlock("lock"))
}

fn flag_lock_fixed() -> Program {
    program(&[("counter", 0)], &["lock"], vec![locked_section("A"), locked_section("B")])
}

fn withdraw(name: &str, locked: bool) -> Thread {
    let thread = Thread::new(name);
    let thread = if locked { thread.op(Op::Lock("lock")) } else { thread };
    let thread = thread
        .op(set_reg("seen", var("balance")))
        .op(Op::JumpIf(reg("seen").lt(int(10)), "done"))
        .op(set_var("balance", var("balance") - int(10)))
        .label("done");
    if locked {
        thread.op(Op::Unlock("lock"))
    } else {
        thread
    }
}

fn balance_check() -> Option<(super::program::Expr, &'static str)> {
    Some((var("balance").ge(int(0)), "balance >= 0: no withdrawal without the money"))
}

/// The balance is read and written atomically (an `AtomicI64`, or one bytecode under the GIL):
/// no data race, and still a race condition.
fn check_then_act() -> Program {
    Program {
        atomic: vec!["balance"],
        finally: balance_check(),
        ..program(&[("balance", 10)], &[], vec![withdraw("A", false), withdraw("B", false)])
    }
}

fn check_then_act_fixed() -> Program {
    Program {
        finally: balance_check(),
        ..program(&[("balance", 10)], &["lock"], vec![withdraw("A", true), withdraw("B", true)])
    }
}

fn both(name: &str, first: &'static str, second: &'static str) -> Thread {
    Thread::new(name).op(Op::Lock(first)).op(Op::Lock(second)).op(Op::Unlock(second)).op(Op::Unlock(first))
}

fn abba() -> Program {
    program(&[], &["a", "b"], vec![both("A", "a", "b"), both("B", "b", "a")])
}

fn abba_fixed() -> Program {
    program(&[], &["a", "b"], vec![both("A", "a", "b"), both("B", "a", "b")])
}

const FORKS: [&str; 3] = ["fork0", "fork1", "fork2"];
const MEALS: [&str; 3] = ["meals0", "meals1", "meals2"];

fn philosopher(index: usize, first: &'static str, second: &'static str) -> Thread {
    let meals = MEALS[index];
    Thread::new(format!("philosopher {index}"))
        .op(Op::Lock(first))
        .op(Op::Lock(second))
        .op(set_var(meals, var(meals) + int(1)))
        .op(Op::Unlock(second))
        .op(Op::Unlock(first))
}

fn table(threads: Vec<Thread>) -> Program {
    let meals: Vec<(&'static str, i64)> = MEALS.iter().map(|&m| (m, 0)).collect();
    program(&meals, &FORKS, threads)
}

fn philosophers_naive() -> Program {
    table((0..3).map(|i| philosopher(i, FORKS[i], FORKS[(i + 1) % 3])).collect())
}

fn philosophers_ordered() -> Program {
    table((0..3).map(|i| philosopher(i, FORKS[i.min((i + 1) % 3)], FORKS[i.max((i + 1) % 3)])).collect())
}

fn philosophers_arbitrator() -> Program {
    let seated = |i: usize| {
        let thread = philosopher(i, FORKS[i], FORKS[(i + 1) % 3]);
        let mut ops = vec![Op::Acquire("waiter")];
        ops.extend(thread.ops);
        ops.push(Op::Release("waiter"));
        Thread { ops, ..thread }
    };
    Program { semaphores: vec![("waiter", 2)], ..table((0..3).map(seated).collect()) }
}

/// A consumer of one item; `recheck` loops on the condition (`while`), else checks once (`if`).
fn consumer(name: &str, recheck: bool) -> Thread {
    let thread = Thread::new(name)
        .op(Op::Lock("lock"))
        .label("check")
        .op(Op::JumpIf(!var("items").eq(int(0)), "take"))
        .op(Op::Wait("ready", "lock"));
    let thread = if recheck { thread.op(Op::Jump("check")) } else { thread };
    thread
        .label("take")
        .op(set_var("items", var("items") - int(1)))
        .op(Op::Assert(var("items").ge(int(0)), "a consumer took an item that was not there"))
        .op(Op::Unlock("lock"))
}

fn producer_of_two() -> Thread {
    let mut thread = Thread::new("producer");
    for _ in 0..2 {
        thread = thread
            .op(Op::Lock("lock"))
            .op(set_var("items", var("items") + int(1)))
            .op(Op::NotifyAll("ready"))
            .op(Op::Unlock("lock"));
    }
    thread
}

fn wakeups(recheck: bool) -> Program {
    Program {
        conditions: vec!["ready"],
        ..program(
            &[("items", 0)],
            &["lock"],
            vec![consumer("consumer 1", recheck), consumer("consumer 2", recheck), producer_of_two()],
        )
    }
}

fn missed_wakeup() -> Program {
    wakeups(false)
}

fn missed_wakeup_fixed() -> Program {
    wakeups(true)
}

/// One put (`produce`) or take into a buffer of one slot, waiting on `wait_on` while it cannot
/// go on and notifying `notify` after.
fn buffer_side(name: &str, produce: bool, wait_on: &'static str, notify: &'static str) -> Thread {
    let can_go = if produce { var("count").lt(int(1)) } else { int(0).lt(var("count")) };
    let change = if produce { var("count") + int(1) } else { var("count") - int(1) };
    Thread::new(name)
        .op(Op::Lock("lock"))
        .label("check")
        .op(Op::JumpIf(can_go, "go"))
        .op(Op::Wait(wait_on, "lock"))
        .op(Op::Jump("check"))
        .label("go")
        .op(set_var("count", change))
        .op(Op::Notify(notify))
        .op(Op::Unlock("lock"))
}

fn buggy_buffer() -> Program {
    let threads = vec![
        buffer_side("consumer 1", false, "changed", "changed"),
        buffer_side("consumer 2", false, "changed", "changed"),
        buffer_side("producer 1", true, "changed", "changed"),
        buffer_side("producer 2", true, "changed", "changed"),
    ];
    Program { conditions: vec!["changed"], ..program(&[("count", 0)], &["lock"], threads) }
}

fn buffer_fixed() -> Program {
    let threads = vec![
        buffer_side("consumer 1", false, "not_empty", "not_full"),
        buffer_side("consumer 2", false, "not_empty", "not_full"),
        buffer_side("producer 1", true, "not_full", "not_empty"),
        buffer_side("producer 2", true, "not_full", "not_empty"),
    ];
    Program { conditions: vec!["not_empty", "not_full"], ..program(&[("count", 0)], &["lock"], threads) }
}

fn polite(name: &str, first: &'static str, second: &'static str) -> Thread {
    Thread::new(name)
        .label("retry")
        .op(Op::Lock(first))
        .op(Op::Yield)
        .op(Op::TryLock(second, "got"))
        .op(Op::JumpIf(reg("got"), "work"))
        .op(Op::Yield)
        .op(Op::Unlock(first))
        .op(Op::Yield)
        .op(Op::Jump("retry"))
        .label("work")
        .op(Op::Unlock(second))
        .op(Op::Unlock(first))
}

fn polite_livelock() -> Program {
    program(&[], &["a", "b"], vec![polite("A", "a", "b"), polite("B", "b", "a")])
}

/// [`polite`], waiting `random.randrange(window)` turns after each failure, the window doubling.
fn polite_backing_off(name: &str, first: &'static str, second: &'static str) -> Thread {
    Thread::new(name)
        .op(set_reg("window", int(2)))
        .label("retry")
        .op(Op::Lock(first))
        .op(Op::Yield)
        .op(Op::TryLock(second, "got"))
        .op(Op::JumpIf(reg("got"), "work"))
        .op(Op::Unlock(first))
        .op(Op::Random("pause", reg("window")))
        .op(set_reg("window", reg("window") + reg("window")))
        .label("wait")
        .op(Op::Yield)
        .op(Op::JumpIf(reg("pause").lt(int(1)), "retry"))
        .op(set_reg("pause", reg("pause") - int(1)))
        .op(Op::Jump("wait"))
        .label("work")
        .op(Op::Unlock(second))
        .op(Op::Unlock(first))
}

fn polite_backoff() -> Program {
    program(&[], &["a", "b"], vec![polite_backing_off("A", "a", "b"), polite_backing_off("B", "b", "a")])
}

fn polite_fixed() -> Program {
    program(&[], &["a", "b"], vec![both("A", "a", "b"), both("B", "a", "b")])
}

/// Three threads under a strict priority scheduler: low (1) takes the bus and wakes high (3)
/// and medium (2); medium's job is six lines; high asserts it got the bus before that job ended.
fn inversion(inheritance: bool) -> Program {
    let low = Thread::new("low")
        .op(Op::Lock("bus"))
        .op(Op::Release("wake_high"))
        .op(Op::Release("wake_medium"))
        .op(set_reg("sent", int(1)))
        .op(set_reg("sent", int(2)))
        .op(Op::Unlock("bus"));
    let medium = (0..6)
        .fold(Thread::new("medium").op(Op::Acquire("wake_medium")), |thread, step| {
            thread.op(set_reg("progress", int(step + 1)))
        })
        .op(set_var("medium_done", int(1)));
    let high = Thread::new("high")
        .op(Op::Acquire("wake_high"))
        .op(Op::Lock("bus"))
        .op(Op::Assert(var("medium_done").eq(int(0)), "high got the bus before medium's job was done"))
        .op(Op::Unlock("bus"));
    Program {
        atomic: vec!["medium_done"],
        semaphores: vec![("wake_high", 0), ("wake_medium", 0)],
        priorities: vec![1, 2, 3],
        inheritance,
        ..program(&[("medium_done", 0)], &["bus"], vec![low, medium, high])
    }
}

fn priority_inversion() -> Program {
    inversion(false)
}

fn priority_inheritance() -> Program {
    inversion(true)
}

fn transfer_thread(name: &str, from: &'static str, to: &'static str, locks: [&'static str; 2]) -> Thread {
    Thread::new(name)
        .op(Op::Lock(locks[0]))
        .op(Op::Lock(locks[1]))
        .op(set_var(from, var(from) - int(10)))
        .op(set_var(to, var(to) + int(10)))
        .op(Op::Unlock(locks[1]))
        .op(Op::Unlock(locks[0]))
}

fn accounts(threads: Vec<Thread>) -> Program {
    Program {
        finally: Some(((var("x") + var("y")).eq(int(200)), "x + y == 200: money is conserved")),
        ..program(&[("x", 100), ("y", 100)], &["x_lock", "y_lock"], threads)
    }
}

fn transfer() -> Program {
    accounts(vec![
        transfer_thread("x → y", "x", "y", ["x_lock", "y_lock"]),
        transfer_thread("y → x", "y", "x", ["y_lock", "x_lock"]),
    ])
}

fn transfer_fixed() -> Program {
    accounts(vec![
        transfer_thread("x → y", "x", "y", ["x_lock", "y_lock"]),
        transfer_thread("y → x", "y", "x", ["x_lock", "y_lock"]),
    ])
}

/// `tmp = counter; [await network.call()]; counter = tmp + 1` as an asyncio task: `split` puts
/// the await between the read and the write, otherwise before the read (its replies may come
/// back in any order, so any ready task may run next); `locked` wraps it all in
/// `async with lock:`.
fn task_increment(name: &str, split: bool, locked: bool) -> Thread {
    let mut thread = Thread::new(name);
    if locked {
        thread = thread.op(Op::Lock("lock"));
    }
    if !split {
        thread = thread.op(Op::Await("network.call()"));
    }
    thread = thread.op(set_reg("tmp", var("counter")));
    if split {
        thread = thread.op(Op::Await("network.call()"));
    }
    thread = thread.op(set_var("counter", reg("tmp") + int(1)));
    if locked {
        thread = thread.op(Op::Unlock("lock"));
    }
    thread
}

/// Three tasks on one loop, each incrementing once.
fn tasks_incrementing(split: bool, locked: bool) -> Program {
    let mutexes: &[&'static str] = if locked { &["lock"] } else { &[] };
    let tasks = ["A", "B", "C"].iter().map(|name| task_increment(name, split, locked)).collect();
    Program {
        finally: Some((var("counter").eq(int(3)), "counter == 3 after three increments")),
        cooperative: true,
        ..program(&[("counter", 0)], mutexes, tasks)
    }
}

fn async_lost_update() -> Program {
    tasks_incrementing(true, false)
}

fn async_lost_update_fixed() -> Program {
    tasks_incrementing(true, true)
}

fn async_no_await() -> Program {
    tasks_incrementing(false, false)
}

/// `if balance >= 10: await payment.charge(10); balance -= 10` as an asyncio task.
fn task_withdraw(name: &str, locked: bool) -> Thread {
    let mut thread = Thread::new(name);
    if locked {
        thread = thread.op(Op::Lock("lock"));
    }
    thread = thread
        .op(set_reg("seen", var("balance")))
        .op(Op::JumpIf(reg("seen").lt(int(10)), "done"))
        .op(Op::Await("payment.charge(10)"))
        .op(set_var("balance", var("balance") - int(10)))
        .label("done");
    if locked {
        thread = thread.op(Op::Unlock("lock"));
    }
    thread
}

fn tasks_withdrawing(locked: bool) -> Program {
    let mutexes: &[&'static str] = if locked { &["lock"] } else { &[] };
    Program {
        finally: balance_check(),
        cooperative: true,
        ..program(&[("balance", 10)], mutexes, vec![task_withdraw("A", locked), task_withdraw("B", locked)])
    }
}

fn async_check_then_act() -> Program {
    tasks_withdrawing(false)
}

fn async_check_then_act_fixed() -> Program {
    tasks_withdrawing(true)
}
