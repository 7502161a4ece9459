//! The resilience lessons on the real clock (the defaults run on the virtual one, where every
//! time is exact, and `lessons.rs` checks those): the loop really sleeps, timers fire late on a
//! busy machine, and the lessons must still show. Each runs only the variants its lessons
//! compare, once per try, to keep the suite's minutes.

use conlab_lab::experiment::{RunRequest, Verdict};
use serde_json::json;

use crate::alone;
use crate::common::{run_quietly, settle_before};

/// `experiment`'s `variants` with its quick preset and `settings` on top, on the real clock.
fn on_the_real_clock(experiment: &str, variants: &[&str], settings: &[(&str, &str)]) -> RunRequest {
    let info = conlab_lab::experiment::find(experiment).unwrap().info();
    let mut params = info.quick_params();
    params.insert("clock".into(), json!("real"));
    for (name, value) in settings {
        params.insert(name.to_string(), json!(value));
    }
    RunRequest {
        experiment: experiment.into(),
        params,
        variants: Some(variants.iter().map(ToString::to_string).collect()),
        repeat: 1,
        warmup: 0,
        ..RunRequest::default()
    }
}

/// The lessons at `claims` show in one of three runs (a loaded machine's late timers may
/// blur one); the verdicts of every run otherwise.
fn shows(request: &RunRequest, claims: &[usize]) {
    let mut readings = Vec::new();
    for attempt in 0..3 {
        settle_before(attempt);
        let result = run_quietly(request).unwrap();
        let verdicts: Vec<&Verdict> = claims.iter().map(|&claim| &result.lessons[claim].verdict).collect();
        if verdicts.iter().all(|verdict| matches!(verdict, Verdict::Shown { .. })) {
            return;
        }
        readings.push(format!("{verdicts:?}"));
    }
    panic!("{}: {readings:#?}", request.experiment);
}

#[test]
fn on_the_real_clock_immediate_retries_storm_and_a_budget_bounds_them() {
    let _alone = alone();
    shows(&on_the_real_clock("retry-storm", &["none", "immediate", "budget"], &[]), &[0, 1, 2]);
}

#[test]
fn on_the_real_clock_a_bounded_queue_keeps_serving_at_twice_the_capacity() {
    let _alone = alone();
    let variants = ["unbounded", "bounded", "lifo", "adaptive-codel"];
    shows(&on_the_real_clock("load-shedding", &variants, &[("overload", "2")]), &[0, 1]);
}

#[test]
fn on_the_real_clock_the_breaker_fails_fast_and_hedging_cuts_the_tail() {
    let _alone = alone();
    shows(&on_the_real_clock("circuit-breaker", &["no-breaker", "breaker"], &[]), &[0, 1, 2]);
    shows(&on_the_real_clock("hedging", &["none", "p95"], &[]), &[0]);
}

#[test]
fn on_the_real_clock_gather_leaves_siblings_running_and_a_task_group_cancels_them() {
    let _alone = alone();
    let variants = ["gather", "return-exceptions", "taskgroup"];
    shows(&on_the_real_clock("gather-errors", &variants, &[("step_ms", "20")]), &[0, 1, 2]);
}
