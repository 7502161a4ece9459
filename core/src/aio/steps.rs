//! Step mode: the event loop from the inside, one task step at a time.
//!
//! A loop made with [`EventLoop::stepping`] records, after every task step (one poll: the task
//! runs from one await to the next), every due timer and every clock jump, the loop's whole
//! state: the ready queue in order (the tasks left to run this iteration, then those woken
//! since — asyncio's `_ready` deque), the timer heap with due times on the virtual clock, and
//! each task's state (pending, ready, running, waiting on what, done, cancelled, failed) and the
//! line of its listing it last reached ([`at_line`]). When `main` returns it notes what asyncio
//! would warn about: a task still pending, a `call_later` callback that never ran, an exception
//! nobody retrieved, a coroutine never awaited.
//!
//! [`scenarios`] are the books' internals chapters as small programs on this loop, each with
//! its Python listing; the last runs the books' generator-based round-robin scheduler — a deque
//! of generators and `next()` — beside our loop doing the same work, to show the loop is that
//! scheduler plus timers and I/O.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;

use super::executor::warn;
use super::VirtualClock;
use super::{
    at_line, call_later, gather, gather_settled, sleep, spawn_named, yield_now, AioError, AioResult, EventLoop,
};
use crate::trace::Recorder;

/// The loop's state after one step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopStep {
    /// 1, 2, … in the run.
    pub index: usize,
    /// The loop iteration it happened in (one pass over the ready queue, then the due timers).
    pub iteration: u64,
    /// Loop time, in seconds on the virtual clock.
    pub time: f64,
    /// What happened, in words.
    pub event: String,
    /// The ready queue, first to run first.
    pub ready: Vec<String>,
    /// The timer heap, soonest first.
    pub timers: Vec<TimerView>,
    /// Every task so far, in creation order.
    pub tasks: Vec<TaskView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimerView {
    /// Due at, in seconds of loop time.
    pub due: f64,
    /// What it does when due: wakes a task, or calls a callback.
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskView {
    pub name: String,
    pub state: String,
    /// The listing line it last reached, if it marked one.
    pub line: Option<u32>,
}

/// A whole stepped run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopTrace {
    pub steps: Vec<LoopStep>,
    /// What asyncio would warn about, or what never happened, as `main` returned.
    pub findings: Vec<String>,
    /// What `asyncio.run(main())` returned or raised.
    pub outcome: String,
    /// `round-robin` only: the books' generator scheduler's steps on the same work.
    pub generator_steps: Vec<LoopStep>,
}

/// Runs `main` on a stepping loop with a virtual clock, to its end (the scenarios are small and
/// finite; every step is kept).
pub fn trace<T: Debug + 'static>(main: impl Future<Output = AioResult<T>> + 'static) -> LoopTrace {
    let event_loop = EventLoop::stepping(VirtualClock::new());
    let outcome = event_loop.run(main, &Recorder::new(false), &|| true);
    let (steps, findings) = event_loop.take_steps();
    let outcome = match outcome {
        Ok(value) => format!("asyncio.run returned {value:?}"),
        Err(error) => format!("asyncio.run raised {error}"),
    };
    LoopTrace { steps, findings, outcome, generator_steps: Vec::new() }
}

/// A coroutine object: awaiting it runs `future`; dropping it unawaited is what asyncio warns
/// about ("coroutine '…' was never awaited").
pub struct Coroutine<F> {
    name: &'static str,
    future: Pin<Box<F>>,
    polled: bool,
}

/// `name()` without `await`: the coroutine object, not yet running.
pub fn coroutine<F: Future>(name: &'static str, future: F) -> Coroutine<F> {
    Coroutine { name, future: Box::pin(future), polled: false }
}

impl<F: Future> Future for Coroutine<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polled = true;
        self.future.as_mut().poll(cx)
    }
}

impl<F> Drop for Coroutine<F> {
    fn drop(&mut self) {
        if !self.polled {
            warn(format!("RuntimeWarning: coroutine '{}' was never awaited", self.name));
        }
    }
}

/// A scenario for `conlab step-loop` and the page's loop stepper.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LoopScenario {
    pub id: &'static str,
    pub title: &'static str,
    /// What to watch for.
    pub story: &'static str,
    /// The Python it stands for; tasks mark these lines (1-based) as they reach them.
    pub listing: &'static [&'static str],
    #[serde(skip)]
    run: fn() -> LoopTrace,
}

impl LoopScenario {
    /// Runs it to its end, recording every step.
    pub fn trace(&self) -> LoopTrace {
        (self.run)()
    }
}

/// Every scenario, in the books' order.
pub fn scenarios() -> &'static [LoopScenario] {
    &SCENARIOS
}

/// The scenario called `id`, or an error listing them all.
pub fn find(id: &str) -> Result<&'static LoopScenario, String> {
    SCENARIOS.iter().find(|s| s.id == id).ok_or_else(|| {
        format!(
            "unknown loop scenario `{id}`; known loop scenarios are {}",
            SCENARIOS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
        )
    })
}

static SCENARIOS: [LoopScenario; 6] = [
    LoopScenario {
        id: "create-task",
        title: "A created task does not start until its creator awaits",
        story: "create_task only puts the task in the ready queue. main goes on — it prints, it computes — and \
                the child runs only when main reaches an await and gives the loop back.",
        listing: &[
            "async def child():",
            "    print('child runs')",
            "async def main():",
            "    task = asyncio.create_task(child())",
            "    print('created; child has not run')",
            "    await asyncio.sleep(0)",
            "    print('child ran during the sleep(0)')",
            "    await task",
        ],
        run: create_task,
    },
    LoopScenario {
        id: "gather-sleeps",
        title: "gather of three sleeps: the heap fills, the clock jumps from timer to timer",
        story: "Each sleep puts a timer in the heap. With nothing ready, the loop waits for the soonest timer — \
                on the virtual clock it jumps there — wakes its task, and repeats: 1 s, 2 s, 3 s, and main \
                resumes at 3 s, not 6 s.",
        listing: &[
            "async def nap(seconds):",
            "    await asyncio.sleep(seconds)",
            "    return seconds",
            "async def main():",
            "    return await asyncio.gather(nap(1), nap(2), nap(3))",
        ],
        run: gather_sleeps,
    },
    LoopScenario {
        id: "never-awaited",
        title: "A coroutine never awaited, a task whose exception nobody retrieves",
        story: "Calling a coroutine function only builds a coroutine object: without await (or create_task) it \
                never runs, and asyncio warns when it is thrown away. A task that raises while nobody awaits it \
                keeps its exception until someone asks; if nobody ever does, asyncio logs 'Task exception was \
                never retrieved' when the task is destroyed.",
        listing: &[
            "async def report():",
            "    print('never printed')",
            "async def fails():",
            "    raise ValueError('nobody looks')",
            "async def main():",
            "    report()  # no await",
            "    asyncio.create_task(fails())  # the task object is dropped",
            "    await asyncio.sleep(1)",
        ],
        run: never_awaited,
    },
    LoopScenario {
        id: "call-later",
        title: "A call_later callback due after main returns never runs",
        story: "call_later puts a callback in the timer heap. asyncio.run stops the loop as soon as main returns, \
                so a callback due later is simply never run — no error, no warning.",
        listing: &[
            "async def main():",
            "    loop = asyncio.get_running_loop()",
            "    loop.call_later(0.5, print, 'too late')",
            "    loop.call_later(0.05, print, 'in time')",
            "    await asyncio.sleep(0.1)",
            "    return 'done'",
        ],
        run: call_later_lost,
    },
    LoopScenario {
        id: "cancel-cleanup",
        title: "Cancellation arrives at the next await, is caught, cleaned up",
        story: "task.cancel() only asks: the task is woken, and CancelledError is raised at the await it is \
                suspended in. It catches it, awaits its clean-up, and re-raises; main sees the task cancelled \
                after the clean-up.",
        listing: &[
            "async def worker():",
            "    try:",
            "        await asyncio.sleep(10)",
            "    except asyncio.CancelledError:",
            "        await asyncio.sleep(0.25)  # clean up",
            "        raise",
            "async def main():",
            "    task = asyncio.create_task(worker())",
            "    await asyncio.sleep(1)",
            "    task.cancel()",
            "    return await asyncio.gather(task, return_exceptions=True)",
        ],
        run: cancel_cleanup,
    },
    LoopScenario {
        id: "round-robin",
        title: "The books' generator scheduler beside the loop doing the same work",
        story: "The books' 'how coroutines work' listing: generators in a deque, next() on the first, back to the \
                end unless it finished. Our loop runs the same countdowns as tasks that await sleep(0): the same \
                ready queue, the same order of steps (A 3, B 2, A 2, B 1, A 1). The loop is that scheduler, plus \
                a timer heap and I/O.",
        listing: &[
            "def countdown(name, n):",
            "    while n > 0:",
            "        print(name, n)",
            "        yield",
            "        n -= 1",
            "tasks = deque([countdown('A', 3), countdown('B', 2)])",
            "while tasks:",
            "    task = tasks.popleft()",
            "    try:",
            "        next(task); tasks.append(task)",
            "    except StopIteration:",
            "        pass",
            "# the same on asyncio:",
            "async def countdown(name, n):",
            "    while n > 0:",
            "        print(name, n)",
            "        await asyncio.sleep(0)",
            "        n -= 1",
            "async def main():",
            "    await asyncio.gather(countdown('A', 3), countdown('B', 2))",
        ],
        run: round_robin,
    },
];

fn create_task() -> LoopTrace {
    trace(async {
        at_line(4);
        let task = spawn_named("child", async {
            at_line(2);
            Ok("child ran")
        });
        at_line(5);
        at_line(6);
        yield_now().await?;
        at_line(7);
        at_line(8);
        task.await
    })
}

fn gather_sleeps() -> LoopTrace {
    trace(async {
        at_line(5);
        let naps = [1, 2, 3]
            .map(|seconds| {
                spawn_named(format!("nap({seconds})"), async move {
                    at_line(2);
                    sleep(Duration::from_secs(seconds)).await?;
                    at_line(3);
                    Ok(seconds)
                })
            })
            .into();
        gather(naps).await
    })
}

fn never_awaited() -> LoopTrace {
    trace(async {
        at_line(6);
        drop(coroutine("report", async {
            at_line(2);
        }));
        at_line(7);
        drop(spawn_named("fails", async {
            at_line(4);
            Err::<(), _>(AioError::Raised("ValueError: nobody looks".into()))
        }));
        at_line(8);
        sleep(Duration::from_secs(1)).await
    })
}

fn call_later_lost() -> LoopTrace {
    trace(async {
        at_line(3);
        call_later(Duration::from_millis(500), "print('too late')", || {});
        at_line(4);
        call_later(Duration::from_millis(50), "print('in time')", || {});
        at_line(5);
        sleep(Duration::from_millis(100)).await?;
        at_line(6);
        Ok("done")
    })
}

fn cancel_cleanup() -> LoopTrace {
    trace(async {
        at_line(8);
        let worker = spawn_named("worker", async {
            at_line(3);
            match sleep(Duration::from_secs(10)).await {
                Err(AioError::Cancelled) => {
                    at_line(5);
                    sleep(Duration::from_millis(250)).await?;
                    at_line(6);
                    Err(AioError::Cancelled)
                }
                other => other,
            }
        });
        at_line(9);
        sleep(Duration::from_secs(1)).await?;
        at_line(10);
        worker.cancel();
        at_line(11);
        let outcomes = gather_settled(vec![worker]).await?;
        let shown: Vec<String> = outcomes
            .iter()
            .map(|outcome| match outcome {
                Err(AioError::Cancelled) => "CancelledError()".to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        Ok(format!("[{}]", shown.join(", ")))
    })
}

/// The books' countdown generators, run by a deque and `next()`: one step per `next()`, in the
/// loop's step format (the deque as the ready queue, no timers), with what each printed.
pub fn generator_round_robin(countdowns: &[(&'static str, u32)]) -> (Vec<LoopStep>, Vec<String>) {
    /// A generator suspended at its `yield`, or not yet started, with its `n`.
    struct Generator {
        name: &'static str,
        n: u32,
        started: bool,
        done: bool,
    }
    let mut generators: Vec<Generator> =
        countdowns.iter().map(|&(name, n)| Generator { name, n, started: false, done: false }).collect();
    let mut deque: VecDeque<usize> = (0..generators.len()).collect();
    let (mut steps, mut printed) = (Vec::new(), Vec::new());
    while let Some(index) = deque.pop_front() {
        let generator = &mut generators[index];
        // next(): resume after the yield (n -= 1), then run to the next yield or the end.
        if generator.started {
            generator.n -= 1;
        }
        generator.started = true;
        let event = if generator.n > 0 {
            printed.push(format!("{} {}", generator.name, generator.n));
            deque.push_back(index);
            format!(
                "next({}) prints '{} {}' and yields: back to the end of the deque",
                generator.name, generator.name, generator.n
            )
        } else {
            generator.done = true;
            format!("next({}) raises StopIteration: dropped from the deque", generator.name)
        };
        let tasks = generators
            .iter()
            .map(|g| TaskView {
                name: g.name.to_string(),
                state: if g.done {
                    "done".into()
                } else if g.started {
                    "suspended at yield".into()
                } else {
                    "created".into()
                },
                line: (!g.done && g.started).then_some(4),
            })
            .collect();
        steps.push(LoopStep {
            index: steps.len() + 1,
            iteration: steps.len() as u64 + 1,
            time: 0.0,
            event,
            ready: deque.iter().map(|&i| generators[i].name.to_string()).collect(),
            timers: Vec::new(),
            tasks,
        });
    }
    (steps, printed)
}

fn round_robin() -> LoopTrace {
    let printed = Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = Rc::clone(&printed);
    let mut trace = trace(async move {
        at_line(20);
        let countdowns = [("A", 3), ("B", 2)]
            .map(|(name, n)| {
                let printed = Rc::clone(&seen);
                spawn_named(name, async move {
                    let mut n = n;
                    while n > 0 {
                        at_line(16);
                        printed.borrow_mut().push(format!("{name} {n}"));
                        at_line(17);
                        yield_now().await?;
                        at_line(18);
                        n -= 1;
                    }
                    Ok(())
                })
            })
            .into();
        gather(countdowns).await.map(drop)
    });
    let (generator_steps, generator_printed) = generator_round_robin(&[("A", 3), ("B", 2)]);
    let loop_printed = printed.borrow().clone();
    trace.findings.push(format!(
        "printed by the generator scheduler: {}; by the loop: {}{}",
        generator_printed.join(", "),
        loop_printed.join(", "),
        if generator_printed == loop_printed { " — the same order" } else { " — a different order" }
    ));
    trace.generator_steps = generator_steps;
    trace
}
