//! The threading-primitives gallery (`prim-*`): each experiment's lesson holds on real threads,
//! its misuse ends in a finding within the timeout, and every blocking wait and wake-up is on
//! the timeline.

use conlab_core::trace::SpanKind;
use conlab_lab::experiment::{run, CancelFlag, CellResult, RunRequest, RunResult, Session};
use serde_json::json;

fn traced(id: &str, params: &[(&str, serde_json::Value)]) -> RunResult {
    // These tests count what threads did at the same time: alone, so they have the cores.
    let _alone = crate::alone();
    let request = RunRequest {
        experiment: id.into(),
        params: params.iter().map(|(name, value)| (name.to_string(), value.clone())).collect(),
        threads: Some(vec![1]),
        repeat: 3,
        warmup: 1,
        trace: true,
        profile: false,
        ..RunRequest::default()
    };
    run(&request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).unwrap_or_else(|e| panic!("{id}: {e}"))
}

fn cell<'r>(result: &'r RunResult, variant: &str) -> &'r CellResult {
    result.cells.iter().find(|c| c.variant == variant).unwrap_or_else(|| panic!("{variant}"))
}

/// A metric's value in every timed run.
fn values(result: &RunResult, variant: &str, metric: &str) -> Vec<f64> {
    cell(result, variant).metrics.get(metric).unwrap_or_else(|| panic!("{variant}: {metric}")).values.clone()
}

fn passed(result: &RunResult, variant: &str) -> bool {
    cell(result, variant).check.as_ref().is_some_and(|check| check.passed)
}

/// The labels of the spans of `kind` in a variant's traced run.
fn labels(result: &RunResult, variant: &str, kind: SpanKind) -> Vec<String> {
    let trace = result.trace.as_ref().expect("traced");
    let cell = trace.cells.iter().find(|c| c.variant == variant).expect("cell traced");
    cell.spans.iter().filter(|s| s.kind == kind).map(|s| s.label.to_string()).collect()
}

/// Every wait span on the timeline ends in a wake-up mark.
fn waits_wake(result: &RunResult, variant: &str) {
    let (waits, marks) = (labels(result, variant, SpanKind::Wait), labels(result, variant, SpanKind::Mark));
    assert!(!waits.is_empty(), "{variant}: waits drawn");
    for wait in &waits {
        assert!(
            marks.iter().any(|mark| mark.starts_with(&format!("woke: {wait}"))),
            "{variant}: a wake-up after `{wait}`: {marks:?}"
        );
    }
}

/// The number just before `suffix` in `text` (a finding's measured figure).
fn number_before(text: &str, suffix: &str) -> f64 {
    let head = &text[..text.find(suffix).unwrap_or_else(|| panic!("no `{suffix}` in: {text}"))];
    let start = head.rfind(|c: char| !(c.is_ascii_digit() || c == '.')).map_or(0, |i| i + 1);
    head[start..].parse().unwrap_or_else(|_| panic!("no number before `{suffix}` in: {text}"))
}

#[test]
fn rlock_reenters_where_a_plain_lock_deadlocks_its_own_holder_until_the_timeout() {
    let result = traced("prim-rlock", &[("transfers", json!(5)), ("hold_ms", json!(0.2)), ("timeout_ms", json!(30))]);
    assert!(passed(&result, "rlock") && passed(&result, "split"), "money conserved, every transfer made");
    assert!(
        values(&result, "rlock", "deepest hold").iter().all(|d| *d == 2.0),
        "withdraw() re-entered transfer()'s RLock"
    );
    assert!(values(&result, "lock", "self-deadlocks").iter().all(|d| *d == 2.0), "both workers stuck on themselves");
    assert!(values(&result, "lock", "transfers done").iter().all(|d| *d == 0.0));
    let lock = cell(&result, "lock");
    assert!(lock.summary.as_ref().unwrap().min >= 2.0 * 0.030, "each worker waited out its timeout");
    assert_eq!(lock.findings.len(), 2, "{:?}", lock.findings);
    // What the run saw: how long each holder really waited for itself (its 30 ms timeout, or more).
    for finding in &lock.findings {
        let waited = number_before(finding, " ms for itself");
        assert!(finding.contains("self-deadlock") && (30.0..200.0).contains(&waited), "{finding}");
    }
    assert_eq!(lock.finding_runs, 3);
    waits_wake(&result, "lock");
    waits_wake(&result, "rlock");
}

#[test]
fn a_semaphore_caps_connections_at_k_and_an_extra_release_raises_the_cap() {
    let result = traced(
        "prim-semaphore",
        &[("workers", json!(5)), ("requests", json!(3)), ("limit", json!(2)), ("hold_ms", json!(15))],
    );
    assert!(passed(&result, "bounded") && passed(&result, "none"));
    assert!(values(&result, "bounded", "max in flight").iter().all(|m| *m == 2.0), "k = 2, and the demand to fill it");
    assert!(values(&result, "none", "max in flight").iter().all(|m| *m > 2.0), "no limit: more than k at once");
    assert!(values(&result, "leaky", "permits at the end").iter().all(|p| *p == 3.0), "one permit gained");
    assert!(values(&result, "leaky", "max in flight").iter().all(|m| *m <= 3.0));
    assert!(values(&result, "leaky-bounded", "permits at the end").iter().all(|p| *p <= 2.0), "never above k");
    let bounded = &cell(&result, "leaky-bounded").findings;
    assert!(bounded.iter().any(|f| f.contains("ValueError")), "{bounded:?}");
    // The leak's finding says what the first run measured: its permits and its peak.
    let leaky = cell(&result, "leaky");
    let finding = &leaky.findings[0];
    assert!(finding.contains("ended the run with 3 permits where it began with 2"), "{finding}");
    let peak = leaky.metrics["max in flight"].values[0];
    assert!(finding.contains(&format!("(at most {peak} in the whole run)")), "{finding} vs a measured peak of {peak}");
    waits_wake(&result, "bounded");
}

#[test]
fn an_event_releases_every_waiter_and_a_pulse_is_missed_by_a_late_one() {
    let result = traced(
        "prim-event",
        &[("waiters", json!(4)), ("setup_ms", json!(20)), ("poll_ms", json!(2)), ("timeout_ms", json!(40))],
    );
    assert!(passed(&result, "event") && passed(&result, "poll"));
    assert!(values(&result, "poll", "polls").iter().all(|p| *p >= 4.0), "each waiter slept at least once");
    assert!(values(&result, "pulse", "missed").iter().all(|m| *m == 1.0), "only the late waiter");
    assert!(values(&result, "pulse", "released").iter().all(|r| *r == 3.0), "set(); clear() released those waiting");
    assert!(cell(&result, "pulse").findings[0].contains("missed the pulse"), "{:?}", cell(&result, "pulse").findings);
    assert!(cell(&result, "event").latencies.contains_key("woken after set()"));
    waits_wake(&result, "event");
    assert!(labels(&result, "pulse", SpanKind::Mark).contains(&"ready.set(); ready.clear()".to_string()));
}

#[test]
fn a_condition_needs_while_and_the_lock_around_the_check() {
    let result = traced(
        "prim-condition",
        &[
            ("consumers", json!(3)),
            ("items", json!(12)),
            ("produce_ms", json!(1)),
            ("gap_ms", json!(0.8)),
            ("timeout_ms", json!(40)),
        ],
    );
    assert!(passed(&result, "while"), "every item consumed once");
    let index_errors: f64 = values(&result, "if", "IndexError").iter().sum();
    assert!(index_errors >= 1.0, "notify_all() woke several; `if` popped an empty buffer");
    assert!(cell(&result, "if").findings.iter().any(|f| f.contains("IndexError")));
    // One consumer, whose window outlasts the time to make an item: the put and its notify land
    // in the window nearly every time.
    let alone = traced(
        "prim-condition",
        &[
            ("consumers", json!(1)),
            ("items", json!(12)),
            ("produce_ms", json!(1)),
            ("gap_ms", json!(1.5)),
            ("timeout_ms", json!(40)),
        ],
    );
    assert!(
        values(&alone, "check-outside", "lost wake-ups").iter().all(|lost| *lost >= 1.0),
        "a notify between the unlocked check and the wait"
    );
    assert!(cell(&alone, "check-outside").findings.iter().all(|f| f.contains("lost wake-up")));
    waits_wake(&result, "while");
    assert!(labels(&result, "while", SpanKind::Mark).iter().any(|m| m.contains("notify_all()")), "notifies drawn");
}

#[test]
fn a_barrier_keeps_phases_apart_and_breaks_when_a_party_never_comes() {
    let result = traced(
        "prim-barrier",
        &[
            ("workers", json!(4)),
            ("phases", json!(4)),
            ("work_ms", json!(2)),
            ("spread", json!(2)),
            ("timeout_ms", json!(40)),
        ],
    );
    assert!(passed(&result, "barrier"));
    assert!(values(&result, "barrier", "stale reads").iter().all(|s| *s == 0.0));
    assert!(values(&result, "barrier", "barrier actions").iter().all(|a| *a == 4.0), "the action ran once per phase");
    assert!(values(&result, "none", "stale reads").iter().all(|s| *s > 0.0), "without it, fast workers read ahead");
    assert!(values(&result, "missing-party", "BrokenBarrierError").iter().all(|b| *b == 3.0), "all the others");
    assert!(
        values(&result, "missing-party", "stuck in the barrier (max)").iter().all(|ms| *ms >= 40.0),
        "until the timeout"
    );
    assert!(
        values(&result, "abort", "stuck in the barrier (max)").iter().all(|ms| *ms < 40.0),
        "abort() tells them at once"
    );
    // The findings give the stuck time the runs measured, not the timeout they were set.
    let missing = cell(&result, "missing-party");
    assert!(missing.findings[0].contains("never reached barrier.wait()"));
    let stuck = number_before(&missing.findings[0], " ms, until a timeout");
    assert!((stuck - missing.metrics["stuck in the barrier (max)"].values[0]).abs() < 1.0, "{}", missing.findings[0]);
    let abort = cell(&result, "abort");
    let stuck = number_before(&abort.findings[0], " ms in the barrier");
    assert!(
        stuck < 40.0 && (stuck - abort.metrics["stuck in the barrier (max)"].values[0]).abs() < 0.01,
        "{}",
        abort.findings[0]
    );
    waits_wake(&result, "barrier");
    let marks = labels(&result, "barrier", SpanKind::Mark);
    assert_eq!(marks.iter().filter(|m| m.contains("last to arrive")).count(), 4, "one last arrival per phase");
}

#[test]
fn a_bounded_queue_pushes_back_and_join_waits_for_every_task_done() {
    let result = traced(
        "prim-queue",
        &[
            ("consumers", json!(2)),
            ("items", json!(20)),
            ("maxsize", json!(3)),
            ("produce_ms", json!(0.1)),
            ("consume_ms", json!(2)),
            ("timeout_ms", json!(40)),
        ],
    );
    assert!(passed(&result, "bounded") && passed(&result, "unbounded"));
    assert!(values(&result, "bounded", "max depth").iter().all(|d| *d <= 3.0), "never above maxsize");
    assert!(values(&result, "bounded", "producer blocked").iter().all(|ms| *ms > 0.0), "backpressure");
    assert!(values(&result, "unbounded", "max depth").iter().all(|d| *d > 3.0), "no bound: the depth grows");
    assert!(values(&result, "unbounded", "producer blocked").iter().all(|ms| *ms == 0.0));
    assert!(values(&result, "no-task-done", "join() waited").iter().all(|ms| *ms >= 40.0));
    assert!(
        cell(&result, "no-task-done").findings[0].contains("20 of the 20 tasks put never marked done")
            && number_before(&cell(&result, "no-task-done").findings[0], " ms (its timeout)") >= 40.0,
        "{:?}",
        cell(&result, "no-task-done").findings
    );
    waits_wake(&result, "bounded");
    assert!(
        labels(&result, "bounded", SpanKind::Mark).iter().any(|m| m == "queue depth 3"),
        "depth marks for the depth chart"
    );
}

#[test]
fn thread_local_state_is_each_threads_own_and_a_global_is_overwritten() {
    let result =
        traced("prim-thread-local", &[("workers", json!(4)), ("requests", json!(100)), ("work_us", json!(50))]);
    assert!(passed(&result, "thread-local") && passed(&result, "global-locked"), "every request read back its own id");
    let wrong: f64 = values(&result, "global", "wrong reads").iter().sum();
    assert!(wrong > 0.0, "four threads, one variable");
    assert!(cell(&result, "global").findings[0].contains("another worker's id"));
    waits_wake(&result, "global-locked");
}
