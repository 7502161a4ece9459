//! Step mode: the six loop scenarios show, step by step, what the books' internals chapters say.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use conlab_core::aio::steps::{find, scenarios, LoopStep, LoopTrace};
use conlab_core::aio::{call_later, sleep, AioResult, EventLoop, VirtualClock};
use conlab_core::trace::Recorder;

fn traced(id: &str) -> LoopTrace {
    find(id).unwrap().trace()
}

fn state<'a>(step: &'a LoopStep, task: &str) -> &'a str {
    &step.tasks.iter().find(|t| t.name == task).unwrap_or_else(|| panic!("no {task} in {step:?}")).state
}

#[test]
fn a_created_task_waits_in_the_ready_queue_until_its_creator_awaits() {
    let trace = traced("create-task");
    let first = &trace.steps[0];
    assert!(first.event.starts_with("main runs to line 6"), "{first:?}");
    assert_eq!(state(first, "child"), "pending: created, not yet run");
    assert_eq!(first.ready, ["child", "main"], "sleep(0) puts main behind the child");
    assert!(trace.steps[1].event.starts_with("child runs"), "{:?}", trace.steps[1]);
    assert_eq!(trace.outcome, "asyncio.run returned \"child ran\"");
}

#[test]
fn gather_of_three_sleeps_fills_the_heap_and_the_clock_jumps_from_timer_to_timer() {
    let trace = traced("gather-sleeps");
    let full = trace.steps.iter().find(|step| step.timers.len() == 3).expect("three timers at once");
    let dues: Vec<f64> = full.timers.iter().map(|t| t.due).collect();
    assert_eq!(dues, [1.0, 2.0, 3.0], "soonest first");
    let jumps: Vec<f64> =
        trace.steps.iter().filter(|s| s.event.starts_with("nothing is ready")).map(|s| s.time).collect();
    assert_eq!(jumps, [1.0, 2.0, 3.0], "the loop waits for each timer in turn");
    assert_eq!(trace.steps.last().unwrap().time, 3.0, "gather ends at the longest sleep, not their sum");
    assert_eq!(trace.outcome, "asyncio.run returned [1, 2, 3]");
}

#[test]
fn asyncio_warns_of_a_coroutine_never_awaited_and_an_exception_never_retrieved() {
    let trace = traced("never-awaited");
    assert_eq!(
        trace.findings,
        [
            "RuntimeWarning: coroutine 'report' was never awaited",
            "Task exception was never retrieved: fails raised ValueError: nobody looks"
        ]
    );
    assert!(trace.steps.iter().all(|step| step.tasks.iter().all(|t| t.name != "report")), "it never became a task");
}

#[test]
fn a_call_later_due_after_main_returns_never_runs() {
    let trace = traced("call-later");
    assert!(trace.steps.iter().any(|s| s.event == "call_later's timer is due: the loop runs print('in time')"));
    assert!(!trace.steps.iter().any(|s| s.event.contains("runs print('too late')")));
    assert_eq!(
        trace.findings,
        ["call_later's print('too late'), due at 0.500 s, never ran: the loop stopped at 0.100 s when main returned"]
    );
    // Outside step mode the loop runs a callback that is due while it still runs.
    let ran = Rc::new(Cell::new(0.0));
    let seen = Rc::clone(&ran);
    let outcome: AioResult<()> = EventLoop::new(VirtualClock::new(), false).run(
        async move {
            call_later(Duration::from_millis(50), "set", move || seen.set(conlab_core::aio::now().as_secs_f64()));
            sleep(Duration::from_millis(100)).await
        },
        &Recorder::new(false),
        &|| true,
    );
    assert_eq!((outcome, ran.get()), (Ok(()), 0.05));
}

#[test]
fn cancellation_is_delivered_at_the_await_the_task_sits_in_and_waits_for_its_clean_up() {
    let trace = traced("cancel-cleanup");
    let asked = trace.steps.iter().position(|s| state(s, "worker") == "ready (cancel requested)").unwrap();
    assert_eq!(trace.steps[asked].time, 1.0);
    let delivered = &trace.steps[asked + 1];
    assert!(delivered.event.starts_with("worker runs from line 3 to line 5"), "{delivered:?}");
    assert_eq!(state(delivered, "worker"), "waiting on sleep 250 ms", "caught: it cleans up");
    let end = trace.steps.last().unwrap();
    assert_eq!((state(end, "worker"), end.time), ("cancelled", 1.25));
    assert_eq!(trace.outcome, "asyncio.run returned \"[CancelledError()]\"");
}

#[test]
fn the_loop_runs_the_books_generator_round_robin_in_the_same_order() {
    let trace = traced("round-robin");
    assert!(trace.findings[0].ends_with("A 1 — the same order"), "{:?}", trace.findings);
    let loop_queues: Vec<&Vec<String>> = trace.steps.iter().skip(1).take(5).map(|s| &s.ready).collect();
    let generator_queues: Vec<&Vec<String>> = trace.generator_steps.iter().take(5).map(|s| &s.ready).collect();
    assert_eq!(loop_queues, generator_queues, "the ready queue is the generator scheduler's deque");
    assert_eq!(trace.generator_steps.len(), 7, "five next() that yield, two that raise StopIteration");
}

#[test]
fn every_scenario_ends_and_names_its_listing_lines() {
    for scenario in scenarios() {
        let trace = scenario.trace();
        assert!(!trace.steps.is_empty() && trace.outcome.starts_with("asyncio.run returned"), "{}", scenario.id);
        for step in &trace.steps {
            for task in &step.tasks {
                let line = task.line.unwrap_or(1) as usize;
                assert!((1..=scenario.listing.len()).contains(&line), "{}: {task:?}", scenario.id);
            }
        }
    }
    assert_eq!(
        find("nope").unwrap_err(),
        "unknown loop scenario `nope`; known loop scenarios are create-task, gather-sleeps, never-awaited, \
         call-later, cancel-cleanup, round-robin"
    );
}
