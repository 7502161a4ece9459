//! Every registered experiment, run end to end through the runner with small parameters:
//! correctness checks, progress, cancellation, traces, validation, and the runner's own
//! bookkeeping (checked against an experiment built here to fail on purpose).

use std::collections::BTreeMap;
use std::time::Duration;

use conlab_core::profile::View;
use conlab_core::trace::SpanKind;
use conlab_lab::experiment::{
    self, run, run_experiment, CancelFlag, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params,
    Progress, RunContext, RunError, RunRequest, RunResult, Session, VariantSpec, Verdict, Workload,
};
use serde_json::json;

use crate::common::{lessons_show, request, run_quietly, settle_before, small, small_kernel};
use crate::{alone, beside};

/// Presses Cancel on `cancel` after `delay`, from an OS thread of its own — the user, outside
/// the run. (In the browser the page cancels through shared memory.)
#[allow(clippy::disallowed_methods, reason = "a native test's stand-in for the user needs an OS thread of its own")]
fn cancel_after(cancel: &CancelFlag, delay: std::time::Duration) -> std::thread::JoinHandle<()> {
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        cancel.cancel();
    })
}

/// Variants that run on worker processes.
const PROCESS_BACKED: [&str; 7] = ["process", "processes", "forkserver", "copy", "transfer", "shared", "to-process"];

#[test]
fn every_experiment_passes_its_correctness_check_on_every_variant() {
    let _beside = beside();
    for experiment in experiment::registry() {
        let info = experiment.info();
        let result = run_quietly(&small(info.id)).unwrap_or_else(|e| panic!("{}: {e}", info.id));
        assert!(result.all_checks_passed, "{}: {:#?}", info.id, result.cells);
        for variant in &info.variants {
            let cells: Vec<_> = result.cells.iter().filter(|c| c.variant == variant.id).collect();
            let expected = if variant.sweeps_threads { 3 } else { 1 };
            assert_eq!(cells.len(), expected, "{} {}", info.id, variant.id);
            for cell in cells {
                if info.id == "priority-inversion" && cell.skipped.is_some() {
                    // Real-time priorities need CAP_SYS_NICE: without it the cell says so.
                    assert!(cell.skipped.as_deref().is_some_and(|why| why.contains("CAP_SYS_NICE")), "{cell:?}");
                    continue;
                }
                if info.topic == "beyond one machine" && variant.id != "seq" {
                    // A cluster runs on the engine `conlab` installs (the CLI suite runs them).
                    assert_eq!(
                        cell.skipped.as_deref(),
                        Some(
                            format!("threads unavailable: {}", conlab_lab::experiments::cluster::engine::NO_ENGINE)
                                .as_str()
                        ),
                        "{cell:?}"
                    );
                    continue;
                }
                if PROCESS_BACKED.contains(&variant.id) {
                    // Process pools re-execute the conlab binary, absent from conlab-core's tests
                    // (the CLI suite runs them), and pipes cannot transfer: skipped, saying why.
                    assert!(
                        cell.skipped.as_deref().is_some_and(|why| why.contains("conlab") || why.contains("copies")),
                        "{cell:?}"
                    );
                    continue;
                }
                assert_eq!(cell.samples.len(), 3);
                assert!(cell.summary.as_ref().unwrap().median > 0.0);
                match variant.unchecked {
                    Some(why) => assert_eq!((cell.check.as_ref(), cell.unchecked.as_deref()), (None, Some(why))),
                    None => assert!(cell.check.as_ref().unwrap().passed, "{} {}", info.id, variant.id),
                }
                // A variant wrong on purpose has no rate, speedup or efficiency: only its times.
                let derived = !info.fixed_duration && variant.unchecked.is_none();
                assert_eq!(cell.speedup_vs_baseline.is_some(), derived, "{} {}", info.id, variant.id);
                if variant.unchecked.is_some() {
                    assert_eq!((cell.throughput, cell.efficiency), (None, None), "{} {}", info.id, variant.id);
                }
            }
        }
        let baseline_ran = result.cells.iter().any(|c| c.variant == info.baseline && c.skipped.is_none());
        if !info.fixed_duration && baseline_ran {
            let baseline = result.cells.iter().find(|c| c.variant == info.baseline).unwrap();
            assert_eq!(baseline.speedup_vs_baseline, Some(1.0), "{}", info.id);
        }
        let json = serde_json::to_string(&result).unwrap();
        assert_eq!(serde_json::from_str::<RunResult>(&json).unwrap(), result, "the result round-trips through JSON");
    }
}

/// `op_ns` at its lowest (0: the interpreter's dispatch alone) is a pace like any other: every
/// experiment that takes it runs at its quick preset and ends. A server's Python handler once
/// divided its work by the 0 and looped 2^63 times (`calibrate-python` fits 0 in a debug build).
#[test]
fn every_python_model_runs_and_ends_at_the_lowest_op_ns() {
    let _beside = beside();
    for experiment in conlab_lab::experiment::registry() {
        let info = experiment.info();
        if !info.params.iter().any(|param| param.name == "op_ns") {
            continue;
        }
        let mut request = small(info.id);
        request.params.insert("op_ns".into(), json!(0.0));
        request.threads = Some(vec![2]);
        request.repeat = 1;
        request.warmup = 0;
        run_quietly(&request).unwrap_or_else(|error| panic!("{} at op_ns=0: {error}", info.id));
    }
}

#[test]
fn io_fanout_times_are_the_waves_of_sleeps() {
    let _alone = alone();
    // 8 calls of 10 ms: sequentially 80 ms; a pool of k runs ceil(8/k) waves; a thread per
    // task one wave. Sleeps never end early (lower bounds, every run); the fastest run may
    // exceed its waves only by the slack of starting threads and waking up on a busy machine.
    const SLACK: f64 = 0.006;
    let mut request = request("io-fanout", &[("tasks", json!(8)), ("latency", json!(10.0))], &[1, 2, 4]);
    request.repeat = 4;
    let result = run_quietly(&request).unwrap();
    let summary = |variant: &str, threads: usize| result.cell(variant, threads).unwrap().summary.clone().unwrap();
    let cells = [("seq", 1, 8.0), ("pool", 1, 8.0), ("pool", 2, 4.0), ("pool", 4, 2.0), ("thread-per-task", 8, 1.0)];
    for (variant, threads, waves) in cells {
        let (floor, summary) = (waves * 0.010, summary(variant, threads));
        assert!(
            summary.min >= floor,
            "{variant} × {threads}: a run took {} s, under its {waves} waves of sleep",
            summary.min
        );
        assert!(
            summary.min <= floor + SLACK,
            "{variant} × {threads}: fastest run {} s, over {waves} waves + {SLACK} s",
            summary.min
        );
    }
    assert_eq!(result.cell("thread-per-task", 8).unwrap().threads, 8);
}

#[test]
fn lost_update_loses_nothing_alone_and_only_when_racy() {
    let _beside = beside();
    let result = run_quietly(&small("lost-update")).unwrap();
    let lost = |variant: &str, threads: usize| result.cell(variant, threads).unwrap().metrics["lost updates"].max;
    assert_eq!(lost("racy", 1), 0.0, "one thread cannot race with itself");
    let racy = &result.cell("racy", 2).unwrap().metrics;
    assert_eq!(racy["expected"].median, 40_000.0);
    assert_eq!(
        racy["expected"].values.iter().zip(&racy["counted"].values).map(|(e, c)| e - c).collect::<Vec<_>>(),
        racy["lost updates"].values
    );
    for threads in [1, 2, 3] {
        assert_eq!((lost("fetch-add", threads), lost("mutex", threads)), (0.0, 0.0));
    }
    // Whether the racy variant loses updates depends on real parallel timing: reported, not asserted.
    println!("racy, 2 threads: {} of 40000 lost", lost("racy", 2));
}

#[test]
fn lock_contention_reports_throughput_fairness_and_waits_for_every_lock() {
    let _beside = beside();
    let result = run_quietly(&small("lock-contention")).unwrap();
    assert!(result.fixed_duration && result.all_checks_passed);
    for cell in &result.cells {
        let metric = |name: &str| cell.metrics[name].median;
        assert!(metric("acquisitions") > 0.0, "{} {}", cell.variant, cell.threads);
        assert!((1.0 / cell.threads as f64 - 1e-9..=1.0 + 1e-9).contains(&metric("fairness")));
        assert!(metric("wait p50") <= metric("wait p99") && metric("wait p99") <= metric("wait max"));
        assert!(metric("per thread min") <= metric("per thread max"));
    }
    let mut traced = small("lock-contention");
    // Long enough that both threads certainly meet at the lock, even on a loaded machine.
    traced.params.insert("duration_ms".into(), json!(40));
    traced.trace = true;
    traced.variants = Some(vec!["parking".into()]);
    let trace = run_quietly(&traced).unwrap().trace.unwrap();
    let two = trace.cells.iter().find(|c| c.threads == 2).unwrap();
    for (thread, kind) in [(0, SpanKind::Wait), (0, SpanKind::Run), (1, SpanKind::Wait), (1, SpanKind::Run)] {
        assert!(two.spans.iter().any(|s| s.thread == thread && s.kind == kind), "thread {thread} {kind:?}");
    }
    assert!(two.spans.len() <= 2 * 2 * 500, "bounded: {}", two.spans.len());
    let mut none = small("lock-contention");
    none.params.insert("regime".into(), json!("none"));
    assert!(run_quietly(&none).unwrap().all_checks_passed, "a lock per thread");
}

/// `--profile` on every experiment: each one's quick preset, traced and profiled, has samples —
/// its own frames, its spans, or at least what the platform records of its threads (each team
/// member's body, every futex wait and sleep).
#[test]
fn every_experiment_can_be_profiled() {
    let _beside = beside();
    let mut empty = Vec::new();
    for experiment in experiment::registry() {
        let id = experiment.info().id;
        let mut request = RunRequest { repeat: 1, warmup: 0, trace: true, profile: true, ..small(id) };
        request.threads = Some(vec![2]);
        let result = run_quietly(&request).unwrap_or_else(|e| panic!("{id}: {e}"));
        let ran = result.cells.iter().any(|cell| cell.skipped.is_none());
        let (profile, _) = conlab_lab::report::profile_of(&result);
        if ran && profile.samples(View::Wall) == 0 {
            empty.push(id);
        }
    }
    assert!(empty.is_empty(), "no samples: {empty:?}");
}

#[test]
fn progress_counts_every_run_and_ends_complete() {
    let _beside = beside();
    let mut seen: Vec<Progress> = Vec::new();
    let request = small("mandelbrot");
    run(&request, Session { progress: &mut |p| seen.push(p.clone()), cancel: &CancelFlag::new() }).unwrap();
    let total = (1 + 3 + 3 + 3) * (request.warmup + request.repeat);
    assert!(seen.iter().all(|p| p.total == total));
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(seen.last().unwrap().done, total);
    assert_eq!(seen.iter().filter(|p| p.warmup).count(), 10);
}

#[test]
fn cancelling_mid_run_stops_quickly_with_cancelled() {
    let _beside = beside();
    let cancel = CancelFlag::new();
    let mut runs = 0;
    let mut request = request("io-fanout", &[("tasks", json!(4)), ("latency", json!(1000.0))], &[1, 2]);
    request.repeat = 50;
    let started = conlab_core::platform::Instant::now();
    let watchdog = cancel_after(&cancel, Duration::from_millis(150));
    let outcome = run(&request, Session { progress: &mut |_| runs += 1, cancel: &cancel });
    watchdog.join().unwrap();
    assert_eq!(outcome.unwrap_err(), RunError::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a 1 s sleep must notice the cancel within ~20 ms: {:?}",
        started.elapsed()
    );
    assert_eq!(runs, 1, "stopped inside the first run");
}

#[test]
fn a_trace_records_each_cell_and_exports_to_chrome_format() {
    let _beside = beside();
    let mut request = small("mandelbrot");
    request.trace = true;
    let result = run_quietly(&request).unwrap();
    let trace = result.trace.as_ref().unwrap();
    assert_eq!(trace.cells.len(), 10);
    let team = trace.cells.iter().find(|c| c.variant == "team" && c.threads == 3).unwrap();
    let threads: std::collections::BTreeSet<_> = team.spans.iter().map(|s| s.thread).collect();
    assert_eq!(threads.len(), 3, "one lane per team member");
    let rayon = trace.cells.iter().find(|c| c.variant == "rayon" && c.threads == 2).unwrap();
    assert_eq!(rayon.spans.len(), 64, "one span per row");
    let chrome = trace.to_chrome_json();
    assert!(chrome["traceEvents"].as_array().unwrap().len() > 64);
}

#[test]
fn bad_requests_name_the_parameter_and_the_range() {
    let _beside = beside();
    let message = |request: &RunRequest| run_quietly(request).unwrap_err().to_string();
    assert_eq!(
        message(&request("mandelbrot", &[("max_iter", json!(0))], &[1])),
        "parameter `max_iter`: expected an integer from 1 to 100000, got `0`"
    );
    let max = conlab_core::platform::max_team_threads();
    assert_eq!(
        message(&request("mandelbrot", &[], &[0])),
        format!("parameter `threads`: expected an integer from 1 to {max}, got `0`")
    );
    let mut bad_variant = small("mandelbrot");
    bad_variant.variants = Some(vec!["gpu".into()]);
    assert_eq!(
        message(&bad_variant),
        "parameter `variant`: unknown variant `gpu`; mandelbrot has seq, team, rayon, steal"
    );
    let mut no_repeats = small("mandelbrot");
    no_repeats.repeat = 0;
    assert_eq!(message(&no_repeats), "parameter `repeat`: expected an integer from 1 to 1000, got `0`");
    assert!(message(&request("nope", &[], &[1])).starts_with("unknown experiment `nope`"));
}

/// An experiment whose `broken` variant returns a wrong digest on its second run.
struct Faulty;
struct FaultyWorkload;
struct FaultyCell {
    broken: bool,
    runs: u64,
}

impl Experiment for Faulty {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "faulty",
            title: "test double",
            topic: "tests",
            concept: "none",
            teaches: "nothing",
            params: vec![ParamSpec::int("n", 1, 1, 10, "", "unused")],
            variants: vec![VariantSpec::fixed("good", ""), VariantSpec::sweep("broken", "")],
            baseline: "good",
            work_unit: None,
            fixed_duration: false,
            chart_metric: None,
            shows_timeline: false,
            quick: &["n=1"],
        }
    }

    fn prepare(&self, _: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(FaultyWorkload))
    }

    fn claims(&self) -> Vec<Claim> {
        Vec::new()
    }
}

impl Workload for FaultyWorkload {
    fn work_units(&self) -> Option<f64> {
        None
    }
    fn expected(&self) -> Digest {
        42
    }
    fn cell(&self, variant: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(FaultyCell { broken: variant == "broken", runs: 0 }))
    }
}

impl Cell for FaultyCell {
    fn threads(&self) -> usize {
        1
    }
    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        self.runs += 1;
        context.sleep(Duration::from_micros(200))?;
        Ok(if self.broken && self.runs == 2 { 7 } else { 42 })
    }
}

#[test]
fn one_wrong_run_fails_the_check_and_says_what_it_got() {
    let _beside = beside();
    let request = RunRequest {
        experiment: "faulty".into(),
        threads: Some(vec![1]),
        repeat: 3,
        warmup: 0,
        params: BTreeMap::new(),
        ..Default::default()
    };
    let result =
        run_experiment(&Faulty, &request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).unwrap();
    assert!(!result.all_checks_passed);
    let broken = result.cell("broken", 1).unwrap().check.clone().unwrap();
    assert!(!broken.passed);
    assert_eq!((broken.expected.as_str(), broken.actual.as_str()), ("0x000000000000002a", "0x0000000000000007"));
    assert!(result.cell("good", 1).unwrap().check.as_ref().unwrap().passed);
    assert!(result.cell("good", 1).unwrap().throughput.is_none());
}

#[test]
fn every_experiment_stops_soon_after_a_cancel_at_its_defaults() {
    let _beside = beside();
    for experiment in experiment::registry() {
        let id = experiment.info().id;
        let cancel = CancelFlag::new();
        let watchdog = cancel_after(&cancel, Duration::from_millis(100));
        let mut request =
            RunRequest { experiment: id.into(), repeat: 1000, threads: Some(vec![1, 2]), ..RunRequest::default() };
        request.warmup = 0;
        let started = conlab_core::platform::Instant::now();
        let outcome = run(&request, Session { progress: &mut |_| {}, cancel: &cancel });
        let finished = started.elapsed();
        watchdog.join().unwrap();
        if outcome.is_ok() {
            // A thousand runs on the virtual clock can finish before the cancel comes.
            assert!(finished < Duration::from_millis(100), "{id} finished after the cancel ({finished:?})");
            continue;
        }
        assert_eq!(outcome.err(), Some(RunError::Cancelled), "{id}");
        // Set-up (e.g. the reference result) is not cancellable; runs poll every ~20 ms.
        assert!(started.elapsed() < Duration::from_secs(3), "{id} took {:?} to stop", started.elapsed());
    }
}

/// The cell's spans of `kind`.
fn spans_of(result: &RunResult, variant: &str, threads: usize, kind: SpanKind) -> usize {
    let trace = result.trace.as_ref().expect("traced");
    let cell = trace.cells.iter().find(|c| c.variant == variant && c.threads == threads).expect("cell traced");
    cell.spans.iter().filter(|span| span.kind == kind).count()
}

#[test]
fn scheduler_timelines_show_stealing_idling_and_submissions() {
    let _beside = beside();
    // Long enough (20 ms) for every worker to have started and looked for work.
    let mut request = request(
        "imbalance",
        &[("work_ms", json!(20)), ("sizes", json!("heavy-tailed")), ("tasks", json!(16))],
        &[1, 2, 3],
    );
    request.trace = true;
    let result = run_quietly(&request).unwrap();
    assert!(spans_of(&result, "steal", 2, SpanKind::Steal) > 0, "steal workers look for work");
    assert!(spans_of(&result, "steal", 3, SpanKind::Run) > 0);
    assert!(spans_of(&result, "fifo", 2, SpanKind::Mark) == 16, "one submission mark per task");
    assert!(spans_of(&result, "fifo", 2, SpanKind::Run) == 16, "one run span per task");
    assert!(spans_of(&result, "static", 3, SpanKind::Run) == 3, "one block per thread");
    for threads in [1, 2, 3] {
        let metrics = &result.cell("steal", threads).unwrap().metrics;
        assert!(["steals", "failed steals", "parks"].iter().all(|name| metrics.contains_key(*name)), "{metrics:?}");
    }
    assert_eq!(result.cell("steal", 1).unwrap().metrics["steals"].max, 0.0, "nobody to steal from");
    let svg = conlab_lab::report::timeline_svg(result.trace.as_ref().unwrap());
    assert!(svg.contains(r#"class="steal""#) && svg.contains("fifo · 2 threads"));
}

#[test]
fn idle_steal_workers_park() {
    let _beside = beside();
    // Four 1:2:3:4 tasks on three workers: the worker left without a task parks.
    let mut request = request("imbalance", &[("work_ms", json!(30)), ("sizes", json!("1:2:3:4"))], &[3]);
    request.trace = true;
    request.variants = Some(vec!["steal".into()]);
    let result = run_quietly(&request).unwrap();
    assert!(spans_of(&result, "steal", 3, SpanKind::Idle) > 0, "{:?}", result.trace);
}

#[test]
fn imbalance_reports_the_cap_of_total_over_largest() {
    let _beside = beside();
    let result =
        run_quietly(&request("imbalance", &[("work_ms", json!(4)), ("sizes", json!("1:2:3:4"))], &[1, 2, 3])).unwrap();
    let cap = |threads| result.cell("static", threads).unwrap().metrics["speedup cap"].median;
    assert_eq!((cap(1), cap(2)), (1.0, 2.0));
    assert!((cap(3) - 2.5).abs() < 1e-9, "10 units / largest 4 = 2.5, below 3 threads");
}

#[test]
fn fork_join_on_a_fifo_pool_exhausts_it_and_gives_up_instead_of_hanging() {
    let _beside = beside();
    let result = run_quietly(&small("fork-join")).unwrap();
    for threads in [1, 2, 3] {
        let fifo = result.cell("fifo", threads).unwrap();
        assert_eq!(fifo.metrics["pool exhausted"].median, 1.0, "{threads} workers");
        assert!(fifo.metrics["timed-out waits"].min >= 1.0);
        assert!(result.cell("steal", threads).unwrap().check.as_ref().unwrap().passed);
    }
}

#[test]
fn executor_patterns_cancel_only_queued_tasks_and_map_waits_for_the_first_input() {
    let _beside = beside();
    let result = run_quietly(&small("executor-patterns")).unwrap();
    for threads in [1, 2, 3] {
        let cancel = &result.cell("cancel", threads).unwrap().metrics;
        assert!(cancel["ran"].max <= threads as f64, "at most the running tasks escape a cancel");
        assert_eq!(cancel["ran"].median + cancel["cancelled"].median, 5.0);
        // Task 0 is the longest (5 × 1 ms), and map yields it first.
        assert!(result.cell("map", threads).unwrap().metrics["first result"].min >= 5.0);
        assert_eq!(result.cell("callbacks", threads).unwrap().metrics["callbacks run"].median, 5.0);
    }
}

#[test]
fn gil_race_loses_nothing_with_the_gil_and_loses_updates_with_a_call_or_without_it() {
    let _alone = alone();
    let mut request = request("gil-race", &[("increments", json!(200_000))], &[2]);
    request.repeat = 1;
    // Losing needs the two threads to overlap; on 2 shared cores the second can start late, so
    // up to three runs, and the losses must show in one (a full suite read none in one run).
    // The GIL's exact total must hold in every run.
    let mut losses = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        let lost = |variant: &str| result.cell(variant, 2).unwrap().metrics["lost updates"].median;
        assert_eq!(lost("gil"), 0.0, "CPython 3.10+ gives the exact total");
        assert!(result.cell("gil", 2).unwrap().check.as_ref().unwrap().passed);
        losses.push((lost("gil-call"), lost("free-threaded")));
        if lost("gil-call") > 0.0 && lost("free-threaded") > 0.0 {
            return;
        }
    }
    panic!("a switch at the call, and no GIL at all, must lose updates; lost (gil-call, free-threaded): {losses:?}");
}

#[test]
fn under_the_gil_two_cpu_bound_threads_are_no_faster_than_one_and_free_threaded_ones_are_twice_as_fast() {
    let _alone = alone();
    // Laws of the model, not speed targets: the GIL serialises bytecode, so the speedup at
    // N = 2 stays near 1 (< 1.3 even on a noisy machine); free-threaded threads share nothing
    // while they loop (their totals are locals, as in the Python), so two cores run two loops.
    // At the default pace (the one a shared counter's cache line would slow most); ~30 ms runs,
    // 1 and 2 threads interleaved. Each side's fastest run (load elsewhere slows runs, never
    // speeds them up); a noisy stretch can hold a whole run back, so up to three runs are made
    // and the law must show in one — threads sharing a cache line show it in none (1.35× here).
    let params = [("iterations", json!(1_000_000)), ("switch_ms", json!(1.0))];
    let mut request = request("gil-cpu", &params, &[1, 2]);
    request.repeat = 7;
    request.variants = Some(vec!["gil".into(), "free-threaded".into()]);
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        let fastest = |variant: &str, threads| result.cell(variant, threads).unwrap().summary.as_ref().unwrap().min;
        let speedup = |variant: &str| fastest(variant, 1) / fastest(variant, 2);
        assert!(result.cell("gil", 2).unwrap().metrics["drop requests"].median >= 1.0, "the threads took turns");
        rounds.push((speedup("gil"), speedup("free-threaded")));
        if speedup("free-threaded") >= 1.6 {
            break;
        }
    }
    assert!(rounds.iter().all(|&(gil, _)| gil < 1.3), "GIL speedups at 2 threads (fastest runs): {rounds:?}");
    if rounds.iter().all(|&(_, free)| free < 1.6) {
        // Two cores' worth of speedup needs two cores: with a neighbour on one (a fresh clone
        // read 1.12–1.47× while two busy threads got 1.36 cores) the law is inconclusive.
        let parallelism = crate::common::parallelism_now();
        assert!(
            parallelism < 1.7,
            "free-threaded speedups at 2 threads (fastest runs): {rounds:?}; two busy threads get {parallelism:.2} cores"
        );
        println!("free-threaded law inconclusive: {rounds:?} while two busy threads got {parallelism:.2} cores");
    }
}

#[test]
fn native_code_scales_when_it_releases_the_gil_for_long_and_not_when_it_releases_it_per_element() {
    let _alone = alone();
    // The granularity of the release: one call per thread for its whole share (~10 ms each at
    // 2 threads) scales with the cores; the same work as a 320 ns call per element takes the
    // GIL back thousands of times and gains nothing (0.95–1.00× here at the defaults, 1.22×
    // in the luckiest of 8 runs). Fastest runs, up to three rounds, and each law must show in
    // one: the whole-share law (inconclusive when two busy threads get under 1.7 cores) and the
    // per-element one (no gain, and its threads queue for the GIL; a fresh-clone CI run, with
    // other tests on the cores, once missed it in a round).
    let mut request = request("gil-cpu", &[("iterations", json!(1_000_000))], &[1, 2]);
    request.repeat = 5;
    request.variants = Some(vec!["nogil-ext".into(), "per-element".into()]);
    let per_element_shows = |&(_, each, waits): &(f64, f64, f64)| each <= 1.3 && waits >= 3.0;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        let fastest = |variant: &str, threads| result.cell(variant, threads).unwrap().summary.as_ref().unwrap().min;
        let speedup = |variant: &str| fastest(variant, 1) / fastest(variant, 2);
        let wait = |threads| result.cell("per-element", threads).unwrap().metrics["GIL wait"].median;
        rounds.push((speedup("nogil-ext"), speedup("per-element"), wait(2) / wait(1)));
        if rounds.iter().any(|&(whole, _, _)| whole >= 1.6) && rounds.iter().any(per_element_shows) {
            return;
        }
    }
    assert!(
        rounds.iter().any(per_element_shows),
        "(nogil-ext speedup, per-element speedup, per-element GIL wait at 2 threads over 1): {rounds:?}"
    );
    if rounds.iter().all(|&(whole, _, _)| whole < 1.6) {
        let parallelism = crate::common::parallelism_now();
        assert!(
            parallelism < 1.7,
            "nogil-ext speedups at 2 threads: {rounds:?}; two busy threads get {parallelism:.2} cores"
        );
        println!("nogil-ext law inconclusive: {rounds:?} while two busy threads got {parallelism:.2} cores");
    }
}

#[test]
fn a_reader_preferring_rwlock_starves_a_writer_beside_steady_readers_and_a_writer_preferring_one_does_not() {
    let _alone = alone();
    // Beside two readers reading back to back, the books' lock lets a writer in only when both
    // happen to be out at once (p99 7.4 ms here: it waited for the readers to finish), ours
    // shuts the door on new readers (p99 30 µs). A neighbour that deschedules a reader opens
    // gaps for the writer, so up to three runs, and the law must show in one.
    let mut request = request("rwlock-mix", &[("reads", json!("100")), ("operations", json!(5_000))], &[2]);
    request.repeat = 3;
    request.variants = Some(vec!["rwlock".into(), "reader-rwlock".into()]);
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed, "no torn read");
        let p99 = |variant: &str| result.cell(variant, 2).unwrap().metrics["writer wait p99"].median;
        rounds.push((p99("reader-rwlock"), p99("rwlock")));
        if p99("reader-rwlock") >= 5.0 * p99("rwlock") {
            return;
        }
    }
    panic!("writer wait p99 beside 2 readers, µs (reader-rwlock, rwlock): {rounds:?}");
}

#[test]
fn batching_shared_updates_buys_throughput_up_to_a_knee_and_pays_in_staleness() {
    let _alone = alone();
    // At 2 threads: every-1 67 M ops/s, every-100 365 M, every-1000 387 M here; the reader's
    // median lag 0, 95 and 959 operations. Up to three rounds, and both laws must show in one:
    // a busy core slows the batched side, and it halves the lag too (with one worker descheduled
    // the reader sees one worker's pending batch, not two: a fresh-clone CI run read 1, 107, 447).
    let mut request = request("batched-updates", &[("operations", json!(1_000_000))], &[2]);
    request.repeat = 4;
    request.variants = Some(vec!["every-1".into(), "every-100".into(), "every-1000".into()]);
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed, "every update lands: the totals are exact");
        let fastest = |variant: &str| result.cell(variant, 2).unwrap().summary.as_ref().unwrap().min;
        let lag = |variant: &str| result.cell(variant, 2).unwrap().metrics["reader lag p50"].median;
        let lags = [lag("every-1"), lag("every-100"), lag("every-1000")];
        let (gain, flat) = (fastest("every-1") / fastest("every-100"), fastest("every-100") / fastest("every-1000"));
        let lag_grows = lags[1] > lags[0] && lags[2] >= 2.0 * lags[1] && lags[2] >= 10.0 * lags[0].max(1.0);
        rounds.push((gain, flat, lags));
        if gain >= 2.0 && flat < 1.3 && lag_grows {
            return;
        }
    }
    panic!(
        "(every-100 over every-1, every-1000 over every-100 at 2 threads on fastest runs, \
         median lags of every-1, every-100, every-1000): {rounds:?}"
    );
}

#[test]
fn stripes_cut_contention_by_their_number_on_uniform_keys_and_a_hot_stripe_stays_hot_on_skewed_ones() {
    let _alone = alone();
    // Contended updates at 2 threads here: 14–19% on one lock, 3.9–4.9% on 16 stripes,
    // 0.25–0.32% on 256 (about 1/S once the lock is not saturated); under Zipf keys the hottest of 256 stripes keeps ~8% of the updates and its
    // own contention ~5%, while the average stripe's falls under 1%. Contention needs the two
    // threads to run at once, so up to three runs, and the law must show in one.
    let run = |distribution: &str| {
        let settings = [("distribution", json!(distribution)), ("updates", json!(200_000))];
        let mut request = request("lock-striping", &settings, &[2]);
        request.repeat = 3;
        request.variants = Some(vec!["stripes-1".into(), "stripes-16".into(), "stripes-256".into()]);
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed, "no update lost");
        let metric = |variant: &str, name: &str| result.cell(variant, 2).unwrap().metrics[name].median;
        (
            metric("stripes-1", "contended %"),
            metric("stripes-16", "contended %"),
            metric("stripes-256", "contended %"),
            metric("stripes-256", "hot stripe share %"),
            metric("stripes-256", "hot stripe contended %"),
        )
    };
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let (one, sixteen, many, share, _) = run("uniform");
        assert!(share < 1.0, "uniform keys: no stripe of 256 takes 1% ({share:.2}%)");
        let (_, _, zipf_many, hot_share, hot) = run("zipf");
        assert!(hot_share >= 5.0, "Zipf keys: the hottest stripe keeps its share ({hot_share:.1}%)");
        rounds.push((one, sixteen, many, hot, zipf_many));
        if one > 2.0 * sixteen && sixteen > 4.0 * many && hot > 2.0 * zipf_many.max(0.1) {
            return;
        }
    }
    panic!("contended % (1, 16, 256 stripes uniform; the hottest and the average of 256 under Zipf): {rounds:?}");
}

#[test]
fn a_killed_worker_breaks_the_pool_or_is_replaced_and_no_task_is_lost_either_way() {
    let _beside = beside();
    // The pool kills a forked worker after 3 of 12 tasks: it reads the dead worker's end within
    // a fraction of a millisecond (0.1 ms here); `fail` fails every unfinished task with
    // BrokenProcessPool, `supervise` reruns the dead worker's tasks on a replacement.
    let mut request = request("broken-pool", &[("tasks", json!(12)), ("kill_after", json!(3))], &[1, 2]);
    request.repeat = 2;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every task completed or was reported failed: {:#?}", result.cells);
    for threads in [1, 2] {
        let metric = |variant: &str, name: &str| result.cell(variant, threads).unwrap().metrics[name].clone();
        assert!(metric("fail", "detected after").max < 50.0, "{threads}: {:?}", metric("fail", "detected after"));
        assert!(metric("fail", "failed").min >= 1.0 && metric("fail", "completed").max <= 11.0);
        assert_eq!((metric("supervise", "completed").min, metric("supervise", "failed").max), (12.0, 0.0));
        assert!(metric("supervise", "retried").min >= 1.0, "{threads}: the dead worker's tasks ran again");
        let findings = &result.cell("fail", threads).unwrap().findings;
        assert!(findings.iter().any(|f| f.starts_with("BrokenProcessPool")), "{findings:?}");
    }
}

#[test]
fn a_sampler_finds_the_planted_hot_path_within_its_binomial_error_and_cprofile_counts_every_call() {
    let _alone = alone();
    // 4000 iterations a thread (~20 ms) sampled at 5 kHz: here transform's exact share was 65.8%
    // and the sampler read it within 1 σ; every one of 3 × 4000 + 1 calls per thread counted.
    let settings = [("iterations", json!(4000)), ("rate_hz", json!(5000.0))];
    let mut request = request("hot-path", &settings, &[1, 2]);
    request.repeat = 3;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every thread summed its calls' loops: {:#?}", result.cells);
    for lesson in &result.lessons {
        assert!(matches!(lesson.verdict, Verdict::Shown { .. }), "{lesson:?}");
    }
    let profile = result.cell("sampling", 2).unwrap().profile.as_ref().expect("the sampler's profile");
    assert_eq!(profile.hottest(View::OnCpu).map(|(name, _)| name), Some("transform".to_string()));
    assert!(profile.samples(View::Wall) > profile.samples(View::OnCpu), "under the GIL a thread also waits");
    assert!(result.cell("instrumenting", 1).unwrap().profile.is_none(), "an instrumenting run takes no samples");
}

#[test]
fn cprofile_slows_many_tiny_calls_and_inflates_their_caller_while_sampling_costs_little() {
    let _alone = alone();
    // At the defaults on 1 thread: cProfile's model took 2.3× the unprofiled run (~390 ns a
    // call, CPython's cProfile 372 ns here), `<module>` read 33.8% of the self time for 6.3% of
    // the instructions; a 1 kHz sampler cost ≤ 8%; every rate within 3σ of the pooled share.
    let mut request = request("profiler-overhead", &[], &[1]);
    request.repeat = 5;
    lessons_show(&request, 3).unwrap_or_else(|failure| panic!("{failure}"));
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every thread summed its calls' loops");
    let calls = result.cell("instrumenting", 1).unwrap().metrics["calls"].min;
    assert_eq!(calls, 1.0 + 6_000.0 * 21.0, "20 tiny calls and a big one per iteration, and <module>");
}

#[test]
fn cprofile_in_the_main_thread_misses_the_workers_a_sampler_does_not() {
    let _alone = alone();
    // Here: 0 work calls seen from the main thread (100% of its time in join), 40 000 with a
    // tracer in every thread, and a sampler found all 3 threads with work ~100% on a CPU.
    let mut request = request("main-thread-only", &[("iterations", json!(8000))], &[1, 2]);
    request.repeat = 3;
    lessons_show(&request, 3).unwrap_or_else(|failure| panic!("{failure}"));
}

#[test]
fn on_cpu_profiles_miss_the_waits_wall_clock_ones_show_io_and_the_gil() {
    let _alone = alone();
    // Here: query_db 0% on-CPU and 93% wall-clock; in `roles` 15% of the samples waited for the
    // lock, 18–20% for the GIL, 56–58% for I/O, and the on-CPU view was 95% crunch.
    let mut request = request("wall-vs-cpu", &[("requests", json!(30))], &[1, 2]);
    request.repeat = 3;
    lessons_show(&request, 5).unwrap_or_else(|failure| panic!("{failure}"));
    // Each wait in the wall view's stacks in one of up to three runs (a sampler can miss a short
    // wait while another test holds a core); the on-CPU view never shows one.
    let waits =
        ["waiter;update_under_lock;(waiting for a lock)", "fetch;(waiting for the GIL)", "fetch;(waiting for I/O)"];
    let mut readings = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        let profile = result.cell("roles", 4).unwrap().profile.as_ref().unwrap();
        assert!(!conlab_core::profile::export::collapsed(profile, View::OnCpu).contains("waiting"));
        let wall = conlab_core::profile::export::collapsed(profile, View::Wall);
        let missing: Vec<&str> = waits.into_iter().filter(|wait| !wall.contains(wait)).collect();
        if missing.is_empty() {
            return;
        }
        readings.push(format!("missing {missing:?} from\n{wall}"));
    }
    panic!("{}", readings.join("\n"));
}

#[test]
fn a_manager_costs_a_round_trip_per_access_a_value_queues_at_its_lock_and_a_raw_array_scales() {
    let _alone = alone();
    // Forked workers for 30 ms a run at CPython's pace: here a manager update took 99 µs and a
    // locked Value's 0.74 µs; 2 workers got 1.98× one's updates/s from a raw array and 0.7×
    // from the Value. Every update landed (the runs' checks), and the fastest runs decide.
    let mut request = request("manager-vs-shared", &[("duration_ms", json!(30))], &[1, 2]);
    request.repeat = 3;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "no update was lost: {:#?}", result.cells);
    let cell = |variant: &str, workers: usize| result.cell(variant, workers).unwrap();
    let per_update = |variant: &str| cell(variant, 1).metrics["per update"].min;
    assert!(
        per_update("manager") >= 20.0 * per_update("value"),
        "manager {} ns vs value {} ns per update",
        per_update("manager"),
        per_update("value")
    );
    let gain = |variant: &str| cell(variant, 2).metrics["updates/s"].max / cell(variant, 1).metrics["updates/s"].max;
    let slower = cell("value", 2).metrics["per update"].median / cell("value", 1).metrics["per update"].median;
    assert!(
        slower >= 1.3 && gain("value") < gain("raw-array"),
        "a Value update {slower:.2}× as long at 2 workers; updates/s value {:.2}×, raw array {:.2}×",
        gain("value"),
        gain("raw-array")
    );
    if conlab_core::platform::hardware_threads() >= 2 {
        assert!(gain("raw-array") >= 1.5, "raw array {:.2}× at 2 workers", gain("raw-array"));
    }
}

#[test]
fn on_one_cpu_a_plain_mutex_makes_high_wait_for_medium_and_priority_inheritance_does_not() {
    let _alone = alone();
    // SCHED_FIFO threads pinned to CPU 0: high waited 38.8 ms behind medium's 30 ms job with a
    // plain mutex, 8.2 ms (the rest of low's section) with PTHREAD_PRIO_INHERIT. Where the OS
    // refuses real-time priorities the cells say why, and the law cannot be tested.
    let settings = [("section_ms", json!(6.0)), ("medium_ms", json!(20.0))];
    let mut request = request("priority-inversion", &settings, &[3]);
    request.repeat = 3;
    let result = run_quietly(&request).unwrap();
    if let Some(why) = result.cells.iter().find_map(|cell| cell.skipped.clone()) {
        assert!(why.contains("CAP_SYS_NICE"), "{why}");
        println!("priority-inversion inconclusive here: {why}");
        return;
    }
    assert!(result.all_checks_passed, "low and high each got the mutex once");
    let waited = |variant: &str| result.cell(variant, 3).unwrap().metrics["high waited"].median;
    assert!(waited("plain") >= 16.0, "high waits behind medium's 20 ms: {} ms", waited("plain"));
    assert!(
        waited("plain") - waited("inherit") >= 14.0,
        "inheritance: {} vs {} ms",
        waited("plain"),
        waited("inherit")
    );
}

#[test]
fn gil_handovers_count_the_gil_changing_hands_and_nothing_else() {
    let _beside = beside();
    // One definition in both experiments: a thread alone never hands the GIL over (its first
    // take is no handover); two threads hand it over at least once per drop request.
    let mut cpu = request(
        "gil-cpu",
        &[("iterations", json!(200_000)), ("switch_ms", json!(0.5)), ("op_ns", json!(20.0))],
        &[1, 2],
    );
    cpu.variants = Some(vec!["gil".into()]);
    cpu.repeat = 1;
    // A drop request needs the two threads to overlap; beside other tests on 2 cores the second
    // can start after the first has finished, so up to three runs, and one must show a request.
    let mut requested = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&cpu).unwrap();
        let metric = |threads, name: &str| result.cell("gil", threads).unwrap().metrics[name].median;
        assert_eq!(metric(1, "GIL handovers"), 0.0);
        let (handovers, requests) = (metric(2, "GIL handovers"), metric(2, "drop requests"));
        assert!(handovers >= requests, "{handovers} handovers for {requests} drop requests");
        requested.push(requests);
        if requests >= 1.0 {
            break;
        }
    }
    assert!(requested.iter().any(|&r| r >= 1.0), "drop requests at 2 threads, run by run: {requested:?}");
    let mut sweep = request("switch-interval", &[("iterations", json!(20_000)), ("switch_ms", json!("1"))], &[1]);
    sweep.repeat = 1;
    let alone = run_quietly(&sweep).unwrap();
    assert_eq!(
        alone.cell("gil", 1).unwrap().metrics["1 ms: handovers"].median,
        0.0,
        "the same definition: one thread, none"
    );
}

#[test]
fn shorter_switch_intervals_switch_more_and_convoys_wait_for_the_interval() {
    let _alone = alone();
    // ~25 ms of loop per interval: a thread woken on this virtual machine may take a few ms to
    // run again, which would leave a shorter run only a handover or two at any interval.
    let mut sweep = request("switch-interval", &[("iterations", json!(400_000)), ("switch_ms", json!("sweep"))], &[2]);
    sweep.repeat = 1;
    let result = run_quietly(&sweep).unwrap();
    let metrics = &result.cell("gil", 2).unwrap().metrics;
    assert!(metrics["0.1 ms: handovers"].median > metrics["50 ms: handovers"].median, "{metrics:?}");

    // The I/O thread beside one CPU-bound thread waits for a drop request: about the interval.
    let mut convoy = request("gil-convoy", &[("requests", json!(20)), ("switch_ms", json!(2.0))], &[1, 2]);
    convoy.repeat = 1;
    let result = run_quietly(&convoy).unwrap();
    let p50 = |variant: &str, threads| result.cell(variant, threads).unwrap().metrics["response p50"].median;
    assert!(p50("gil", 2) >= 1_500.0, "behind a CPU-bound thread: {} µs", p50("gil", 2));
    assert!(p50("gil", 1) < 1_000.0 && p50("free-threaded", 2) < 1_000.0, "alone or without a GIL it runs at once");
}

#[test]
fn io_bound_threads_overlap_their_waits_even_under_the_gil() {
    let _alone = alone();
    let params = [("workload", json!("io-bound")), ("tasks", json!(4)), ("io_ms", json!(20))];
    let mut request = request("models-matrix", &params, &[1, 2]);
    request.repeat = 3;
    request.variants = Some(vec!["threads".into()]);
    let result = run_quietly(&request).unwrap();
    // 4 × 20 ms of sleeping: 80 ms on one thread, 40 ms on two, because I/O releases the GIL.
    let two = result.cell("threads", 2).unwrap().summary.as_ref().unwrap().median;
    assert!((0.040..0.070).contains(&two), "two threads took {two} s");
}

#[test]
fn asyncio_to_thread_gains_nothing_for_cpu_bound_python_under_the_gil() {
    let _alone = alone();
    // The loop's thread and the to_thread workers are Python threads of one GIL: handing the
    // computing to two workers leaves it as slow as computing on the loop (fastest runs).
    let params = [("workload", json!("cpu-bound")), ("tasks", json!(4)), ("iterations", json!(300_000))];
    let mut request = request("models-matrix", &params, &[2]);
    request.repeat = 5;
    request.variants = Some(vec!["asyncio".into(), "asyncio-to-thread".into(), "free-threaded".into()]);
    // The contrast, free-threaded threads scaling, needs two free cores: a noisy stretch can
    // hold a whole run back, so up to three runs are made and it must show in one; the lesson
    // itself must hold in every run.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        let fastest = |variant: &str, threads| result.cell(variant, threads).unwrap().summary.as_ref().unwrap().min;
        let gain = fastest("asyncio", 1) / fastest("asyncio-to-thread", 2);
        assert!(gain < 1.3, "asyncio.to_thread on 2 workers ran {gain:.2}× the loop's speed");
        rounds.push(fastest("asyncio-to-thread", 2) / fastest("free-threaded", 2));
        if rounds.last().is_some_and(|&free| free > 1.4) {
            break;
        }
    }
    assert!(
        rounds.iter().any(|&free| free > 1.4),
        "free-threaded threads do scale: {rounds:.2?}× asyncio.to_thread's speed on 2 workers"
    );
}

#[test]
fn asyncio_experiments_reproduce_the_books_timelines_exactly_on_the_virtual_clock() {
    let _beside = beside();
    let virtual_run = |id: &str, params: &[(&str, serde_json::Value)]| {
        let mut params = params.to_vec();
        params.push(("clock", json!("virtual")));
        let mut request = request(id, &params, &[1]);
        request.repeat = 1;
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed, "{id}: {:#?}", result.cells);
        result
    };
    let metric = |result: &conlab_lab::experiment::RunResult, variant: &str, name: &str| {
        result.cell(variant, 1).unwrap().metrics[name].median
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;

    let gather = virtual_run("gather-timeline", &[]);
    assert!(close(metric(&gather, "sequential", "loop time"), 6.0));
    assert!(
        close(metric(&gather, "gather", "loop time"), 2.5) && close(metric(&gather, "taskgroup", "loop time"), 2.5)
    );

    let waves = virtual_run("semaphore-waves", &[]);
    assert!(close(metric(&waves, "semaphore", "loop time"), 4.5), "⌈5/2⌉ · 1.5 s");
    assert_eq!(metric(&waves, "semaphore", "max in flight"), 2.0);
    assert!(close(metric(&waves, "unlimited", "loop time"), 1.5));

    let pipeline = virtual_run("async-pipeline", &[]);
    assert!(close(metric(&pipeline, "chain", "loop time"), 6.0), "10 items × (0.1 + 0.3 + 0.2)");
    assert!(close(metric(&pipeline, "pipeline", "loop time"), 3.3), "9 × 0.3 (the slowest) + 0.6");

    let queue = virtual_run("queue-backpressure", &[]);
    assert_eq!(metric(&queue, "bounded", "max depth"), 3.0, "never past maxsize");
    assert!(metric(&queue, "unbounded", "max depth") > 3.0);
    assert!(
        metric(&queue, "bounded", "producer blocked") > 0.0 && metric(&queue, "unbounded", "producer blocked") == 0.0
    );

    // Every documented cancellation outcome is the run's correctness check.
    let cancellation = virtual_run("cancellation", &[]);
    assert_eq!(metric(&cancellation, "taskgroup", "cleaned up"), 2.0);
    assert_eq!(metric(&cancellation, "shield", "finished"), 1.0);
}

#[test]
fn asyncio_tasks_lose_updates_at_await_points_and_the_async_primitives_keep_the_gallerys_lessons() {
    let _beside = beside();
    let exact = |id: &str, params: &[(&str, serde_json::Value)]| {
        let mut request = request(id, params, &[1]);
        request.repeat = 1;
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed, "{id}: {:#?}", result.cells);
        result
    };
    let metric = |result: &conlab_lab::experiment::RunResult, variant: &str, name: &str| {
        result.cell(variant, 1).unwrap().metrics[name].median
    };
    // Ten tasks in step, on the virtual clock: every round of ten increments adds one, whether
    // they await a 1 ms call or asyncio.sleep(0).
    for awaited in ["io", "sleep0"] {
        let race = exact("async-race", &[("await", json!(awaited))]);
        assert_eq!(metric(&race, "await-between", "lost updates"), 900.0, "{awaited}");
        assert_eq!(metric(&race, "no-await", "lost updates") + metric(&race, "lock", "lost updates"), 0.0);
    }
    let race = exact("async-race", &[]);
    assert_eq!(metric(&race, "lock", "loop time"), 1.0, "10 × 100 calls of 1 ms, one at a time");
    assert_eq!(metric(&race, "no-await", "loop time"), 0.1, "100 calls of 1 ms, overlapped");
    let alone = exact("async-race", &[("tasks", json!(1))]);
    assert_eq!(metric(&alone, "await-between", "lost updates"), 0.0, "one task has nobody to race");

    let gallery = exact("async-primitives", &[("clock", json!("virtual"))]);
    let effects = |variant: &str| metric(&gallery, variant, "misuse effects");
    assert_eq!((effects("event"), effects("event-pulse")), (0.0, 1.0), "the late waiter missed the pulse");
    assert_eq!(metric(&gallery, "event", "woken after set() (max)"), 0.0);
    assert_eq!((effects("condition"), effects("condition-if")), (0.0, 3.0), "one item, four woken: three IndexErrors");
    assert_eq!(metric(&gallery, "barrier", "phase spread (max)"), 0.0);
    // asyncio's barrier is not broken by a waiter's timeout (CPython 3.11: the three others each
    // raise TimeoutError); abort() gives them BrokenBarrierError at once.
    assert_eq!(
        (metric(&gallery, "barrier-leaver", "timed out"), metric(&gallery, "barrier-leaver", "broken")),
        (3.0, 0.0)
    );
    assert_eq!(
        (metric(&gallery, "barrier-abort", "timed out"), metric(&gallery, "barrier-abort", "broken")),
        (0.0, 3.0)
    );
    assert!(metric(&gallery, "barrier-abort", "loop time") < metric(&gallery, "barrier-leaver", "loop time"));
    assert_eq!(metric(&gallery, "barrier", "loop time"), 0.06, "three phases of the slowest party's 4 × 5 ms");
    assert_eq!(metric(&gallery, "semaphore", "max in flight"), 2.0);
    assert_eq!(metric(&gallery, "semaphore-leaky", "max in flight"), 3.0, "the second release let a third in");
    assert!(
        gallery.lessons.iter().all(|lesson| matches!(lesson.verdict, conlab_lab::experiment::Verdict::Shown { .. })),
        "{:#?}",
        gallery.lessons
    );
}

#[test]
fn a_blocking_coroutine_lags_the_loop_and_to_thread_helps_only_without_the_gil() {
    let _alone = alone();
    let switch_ms = 5.0;
    let params = [("cpu_ms", json!(100)), ("heartbeat_ms", json!(10)), ("switch_ms", json!(switch_ms))];
    let mut request = request("loop-starvation", &params, &[1]);
    request.repeat = 3;
    // The process variant needs the conlab binary: the CLI suite runs it.
    request.variants = Some(["blocking", "chunked", "to-thread", "to-thread-free-threaded"].map(String::from).to_vec());
    // Each wake-up of the loop waits for the GIL the offloaded bytecode holds: a switch
    // interval. On this virtual machine a woken thread now and then runs again only
    // milliseconds later, and a run where the loop keeps finding the GIL free comes out of
    // that; so up to five runs are made, the later ones half a second apart, and the lag must
    // show in one (a loop that does not wait for the GIL shows it in none: 0.1 ms; a fresh
    // clone's suite read 0.09–0.11 ms in three runs in a row).
    let mut gil_lags = Vec::new();
    let result = loop {
        settle_before(gil_lags.len());
        let result = run_quietly(&request).unwrap();
        gil_lags.push(result.cell("to-thread", 1).unwrap().metrics["lag p50"].median);
        if (0.5 * switch_ms..=2.0 * switch_ms).contains(gil_lags.last().unwrap()) || gil_lags.len() == 5 {
            break result;
        }
    };
    assert!(
        gil_lags.iter().any(|gil| (0.5 * switch_ms..=2.0 * switch_ms).contains(gil)),
        "to_thread under the GIL: lag p50 {gil_lags:?} ms, switch interval {switch_ms} ms"
    );
    let lag = |variant: &str, name: &str| result.cell(variant, 1).unwrap().metrics[name].median;
    assert!(lag("blocking", "lag max") > 40.0, "the loop was blocked: {} ms", lag("blocking", "lag max"));
    let free = lag("to-thread-free-threaded", "lag p50");
    assert!(free < 0.5 * switch_ms, "free-threaded to_thread: lag p50 {free} ms");
    // A slice runs, then the heartbeat that fell due during it queues behind the next slice.
    // A maximum is what noise moves most, and only upwards: the run with the smallest (a full
    // suite once read a median of 15.08 ms).
    let chunked = result.cell("chunked", 1).unwrap().metrics["lag max"].min;
    assert!(chunked <= 2.0 * 5.0 + 5.0, "chunked: lag max {chunked} ms in the calmest run");
}

#[test]
fn scaling_runs_every_kernel_checks_it_and_fits_a_serial_fraction() {
    let _beside = beside();
    for spec in conlab_core::kernels::catalogue() {
        let mut request = small_kernel(spec, &[1, 2]);
        request.repeat = 2;
        let result = run_quietly(&request).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
        assert!(result.all_checks_passed, "{}: {:#?}", spec.id, result.cells);
        assert_eq!(result.work_unit.as_deref(), Some(spec.unit));
        let fitted: Vec<&str> = result.fits.iter().map(|fit| fit.variant.as_str()).collect();
        assert_eq!(fitted, ["team", "rayon", "steal"], "{}", spec.id);
        assert!(result.fits.iter().all(|fit| (0.0..=1.0).contains(&fit.serial_fraction) && fit.points == 1));
    }
}

#[test]
fn scaling_with_threads_grows_the_problem_and_fits_gustafson() {
    let _beside = beside();
    let params = [("kernel", json!("matmul-blocked")), ("size", json!(64)), ("growth", json!("with-threads"))];
    let result = run_quietly(&request("scaling", &params, &[1, 2])).unwrap();
    assert!(result.all_checks_passed, "each grown size checked against its own sequential run");
    let size = |variant: &str, threads: usize| result.cell(variant, threads).unwrap().metrics["size"].median;
    assert_eq!(
        (size("team", 1), size("team", 2), size("rayon", 2)),
        (64.0, 81.0, 81.0),
        "64 · ∛2 ≈ 81: twice the flops"
    );
    let (one, two) = (result.cell("team", 1).unwrap(), result.cell("team", 2).unwrap());
    let rate_ratio = two.throughput.unwrap() / one.throughput.unwrap();
    assert!((two.speedup_vs_one_thread.unwrap() - rate_ratio).abs() < 1e-9, "scaled speedup is a ratio of rates");
    assert!(result.fits.iter().all(|fit| fit.law == conlab_lab::experiment::ScalingLaw::Gustafson));
}

#[test]
fn scaling_rejects_a_size_outside_the_kernels_range() {
    let _beside = beside();
    let error = run_quietly(&request("scaling", &[("kernel", json!("matmul-naive")), ("size", json!(5000))], &[1]))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "parameter `size`: matmul-naive takes a size (matrix side n) from 1 to 2048, or 0 for its default 384; got `5000`"
    );
}

#[test]
fn map_reduce_skew_makes_a_straggler_that_the_combiner_removes() {
    // Reducer times are short (with the combiner, tens of µs): a preemption would make any of
    // them a "straggler", so this runs alone and reads each side's least disturbed run.
    let _alone = alone();
    let run = |combiner: bool| {
        let params = [("words", json!(200_000)), ("skew", json!(0.5)), ("combiner", json!(combiner))];
        let mut request = request("map-reduce", &params, &[2]);
        request.variants = Some(vec!["partitioned".into()]);
        request.repeat = 5;
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed);
        let metric = |name: &str| result.cell("partitioned", 2).unwrap().metrics[name].min;
        (metric("hot partition"), metric("straggler"))
    };
    let (hot, straggler) = run(false);
    assert!(hot >= 50.0, "the hot word's pairs all hash to one partition: {hot:.1}%");
    let (hot_combined, straggler_combined) = run(true);
    assert!(hot_combined < 20.0, "one pair per split for the hot word: {hot_combined:.1}%");
    assert!(
        straggler > 2.0 * straggler_combined,
        "straggler {straggler:.2}× vs {straggler_combined:.2}× with the combiner"
    );
}

#[test]
fn bounded_buffers_hold_their_capacity_and_the_unbounded_queue_does_not() {
    let _beside = beside();
    let params = [
        ("items", json!(5_000)),
        ("producers", json!(2)),
        ("capacity", json!(8)),
        ("consumers", json!(1)),
        ("work_ns", json!(2_000)),
    ];
    let result = run_quietly(&request("producer-consumer", &params, &[1])).unwrap();
    assert!(result.all_checks_passed, "every item taken exactly once");
    let max_depth = |variant: &str| result.cell(variant, 3).unwrap().metrics["max depth"].median;
    for bounded in ["mutex-condvar", "channel", "ring"] {
        assert!(
            max_depth(bounded) <= 8.0 + 1.0,
            "{bounded}: {} (capacity + the consumer's item in hand)",
            max_depth(bounded)
        );
    }
    assert!(max_depth("ms-queue") > 100.0, "no backpressure: {}", max_depth("ms-queue"));
    let p99 = |variant: &str| result.cell(variant, 3).unwrap().metrics["latency p99"].median;
    assert!(p99("ms-queue") > p99("channel"), "a long queue is a long wait");
    for cell in &result.cells {
        // Each item's latency lands in the distribution the lab plots: 2 × 5 000 per timed run.
        let latency = &cell.latencies["item latency"];
        assert_eq!(latency.count, 2 * 5_000 * result.repeat as u64, "{}", cell.variant);
        let values: Vec<f64> = latency.percentiles.iter().map(|p| p.nanoseconds).collect();
        assert!(values.windows(2).all(|pair| pair[0] <= pair[1]), "percentiles rise: {values:?}");
    }
}

#[test]
fn a_pipeline_runs_at_its_slowest_stage_and_replicating_it_helps() {
    let _beside = beside();
    let params = [("cost_ms", json!(1.0)), ("items", json!(30)), ("factor", json!(3.0))];
    let mut request = request("pipeline", &params, &[1]);
    request.repeat = 2;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every item through every stage, in order");
    let cell = |variant: &str| result.cells.iter().find(|c| c.variant == variant).unwrap();
    for variant in ["sequential", "pipeline", "replicated"] {
        let (measured, predicted) = (cell(variant).throughput.unwrap(), cell(variant).metrics["predicted"].median);
        // Sleeps never end early, so the law is an upper bound; filling and draining the pipe
        // and waking threads cost the rest.
        assert!(
            measured <= predicted * 1.02 && measured >= predicted * 0.6,
            "{variant}: {measured:.0} vs {predicted:.0} items/s"
        );
    }
    let busy = |stage: &str| cell("pipeline").metrics[stage].median;
    assert!(
        busy("stage 2 busy") > 80.0 && busy("stage 1 busy") < 50.0 && busy("stage 3 busy") < 50.0,
        "the others wait on stage 2"
    );
    assert_eq!(cell("replicated").threads, 5, "⌈3⌉ threads on the bottleneck");
}

#[test]
fn a_bottleneck_past_the_last_stage_is_refused() {
    let _beside = beside();
    let error = run_quietly(&request("pipeline", &[("stages", json!(2)), ("bottleneck", json!(3))], &[1])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "parameter `bottleneck`: expected 0 (none) or a stage from 1 to 2 (`stages`), got `3`"
    );
}

#[test]
fn a_real_abba_deadlock_is_caught_by_the_wait_for_graph_and_ordered_locks_never_deadlock() {
    let _alone = alone();
    let params =
        [("attempts", json!(10)), ("hold_us", json!(5_000)), ("stagger_us", json!(0)), ("timeout_ms", json!(5_000))];
    let mut request = request("deadlock-watchdog", &params, &[2]);
    request.repeat = 1;
    request.warmup = 0;
    let result = run_quietly(&request).unwrap();
    let metric =
        |variant: &str, name: &str| result.cells.iter().find(|c| c.variant == variant).unwrap().metrics[name].median;
    // Both hold their first lock for 5 ms from the same start: nearly every attempt deadlocks.
    assert!(metric("abba", "deadlocks") >= 5.0, "{}", metric("abba", "deadlocks"));
    assert_eq!(metric("abba", "timed out"), 0.0, "every deadlock found by its cycle, none by the deadline");
    assert!(result.all_checks_passed, "ordered: every attempt of both threads ended");
    assert_eq!(metric("ordered", "deadlocks"), 0.0);
    let detection = &result.cells[0].latencies["deadlock detection"];
    assert!(detection.count >= 5 && detection.at(50.0).unwrap() < 1e9, "caught within a second: {detection:?}");
}

/// An experiment whose run takes no time worth measuring: a few additions.
struct Trivial;
/// Runs of [`Trivial`] made, warm-up and discarded batches included.
static TRIVIAL_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
struct TrivialWorkload;
struct TrivialCell(u64);

impl Experiment for Trivial {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "trivial",
            title: "test double",
            topic: "tests",
            concept: "none",
            teaches: "nothing",
            params: vec![],
            variants: vec![VariantSpec::fixed("add", "")],
            baseline: "add",
            work_unit: None,
            fixed_duration: false,
            chart_metric: None,
            shows_timeline: false,
            quick: &[],
        }
    }

    fn prepare(&self, _: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(TrivialWorkload))
    }

    fn claims(&self) -> Vec<Claim> {
        Vec::new()
    }
}

impl Workload for TrivialWorkload {
    fn work_units(&self) -> Option<f64> {
        None
    }
    fn expected(&self) -> Digest {
        3
    }
    fn cell(&self, _: &str, _: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(TrivialCell(0)))
    }
}

impl Cell for TrivialCell {
    fn threads(&self) -> usize {
        1
    }
    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        self.0 += 1;
        TRIVIAL_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        context.record("runs so far", "", self.0 as f64);
        let mut number = conlab_core::stats::LogHistogram::default();
        number.record(self.0);
        context.record_latency("run number", &number);
        context.report(format!("run {}", self.0));
        Ok(std::hint::black_box(1u64) + 2)
    }
}

#[test]
fn runs_too_short_for_the_clock_are_timed_in_batches_and_reported_per_run() {
    let request =
        RunRequest { experiment: "trivial".into(), threads: Some(vec![1]), repeat: 5, warmup: 0, ..Default::default() };
    let result =
        run_experiment(&Trivial, &request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).unwrap();
    let cell = &result.cells[0];
    assert!(cell.runs_per_sample > 1, "a few additions are far below 100 ticks of any clock: {cell:?}");
    assert!(cell.samples.iter().all(|s| *s > 0.0), "every sample a real time per run: {:?}", cell.samples);
    assert!(cell.check.as_ref().unwrap().passed, "every run of every batch checked");
    // One value per sample — the mean over its batch — rising with the runs really made.
    let runs = &cell.metrics["runs so far"];
    assert_eq!(runs.values.len(), 5);
    assert!(
        runs.values.windows(2).all(|w| w[1] > w[0]) && runs.values[4] > cell.runs_per_sample as f64,
        "{:?} ×{}",
        runs.values,
        cell.runs_per_sample
    );
    assert!(conlab_lab::report::table(&result).contains("(batched)"));
    // Batches too short to time were thrown away, and what their runs recorded with them: the
    // latencies kept are fewer than the runs made.
    let made = TRIVIAL_RUNS.load(std::sync::atomic::Ordering::Relaxed);
    let kept = cell.latencies["run number"].count;
    assert!(kept < made, "{kept} runs' latencies kept of {made} made: a discarded batch's were kept");
    assert_eq!(cell.finding_runs, 5, "one reporting sample per timed batch");
}

/// The GIL model's free-threaded mode: an overhead of 50% costs 50% on the whole instruction (a
/// flat op_ns × 1.5 read 20–30% natively, where the dispatch overlaps the busy work). Alone:
/// beside the core suite's stress tests three attempts read 1.27–1.30×. The two timed in
/// alternation, the fastest of seven each; up to three attempts, each calibrating afresh.
#[test]
fn a_free_threaded_instruction_costs_its_overhead_on_the_whole_instruction() {
    use conlab_core::kernels::spin::Spinner;
    use conlab_core::platform::Instant;
    use conlab_core::pymodel::{calibrate_free_threading, Bytecode, Interpreter, Mode};
    let _alone = alone();
    let program = Bytecode::counting_loop(0, 100_000);
    let spinner = Spinner::calibrate();
    let timed = |overhead: f64| {
        let interpreter = Interpreter { mode: Mode::FreeThreaded { overhead }, op_ns: 6.5, spinner };
        let start = Instant::now();
        interpreter.result(&program, 0);
        start.elapsed().as_secs_f64()
    };
    let mut ratios = Vec::new();
    for attempt in 0..3 {
        settle_before(attempt);
        calibrate_free_threading(6.5, 0.5, spinner);
        let (mut plain, mut costly) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..7 {
            plain = plain.min(timed(0.0));
            costly = costly.min(timed(0.5));
        }
        ratios.push(costly / plain);
        if (1.35..=1.65).contains(ratios.last().unwrap()) {
            return;
        }
    }
    panic!("50% overhead read as {ratios:.2?}×");
}

#[test]
fn each_server_design_answers_up_to_its_predicted_ceiling_and_an_event_loop_is_one_core_for_cpu() {
    let _alone = alone();
    // CPU-bound requests (2 ms of CPU, 1 ms of I/O) on 16 connections: the ceilings are
    // cores / cpu for threads, loop + workers and 2 pre-forked processes (1000/s on 2 cores),
    // 1 / cpu for the event loop (500/s), and k / (cpu + io) for a pool of 2 (667/s). Offered
    // 500, 1000 and 1500/s. The SO_REUSEPORT group's hash leaves 14 of 16 connections on one
    // worker (and so one core) in 0.4% of runs; one shared socket's race does it in most.
    let settings = [
        ("cpu_us", json!(2000.0)),
        ("io_ms", json!(1.0)),
        ("connections", json!(16)),
        ("workers", json!(2)),
        ("max_rate", json!(1500.0)),
        ("steps", json!(3)),
        ("point_ms", json!(150)),
    ];
    let mut request = request("server-load", &settings, &[1]);
    request.variants = Some(
        ["thread-per-connection", "thread-pool", "event-loop", "loop-workers", "pre-forked-reuseport"]
            .map(String::from)
            .to_vec(),
    );
    request.repeat = 2;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every answer checked: {:#?}", result.cells);
    let metric =
        |variant: &str, name: &str| result.cells.iter().find(|c| c.variant == variant).unwrap().metrics[name].clone();
    for variant in ["thread-per-connection", "thread-pool", "event-loop", "loop-workers", "pre-forked-reuseport"] {
        let (peak, ceiling) = (metric(variant, "peak / ceiling").max, metric(variant, "predicted ceiling").median);
        assert!(peak <= 1.2, "{variant}: {peak:.2}× its ceiling of {ceiling:.0}/s");
    }
    let answered = |variant: &str| metric(variant, "answered at max load").max;
    assert!(
        (0.8..=1.2).contains(&(answered("event-loop") / 500.0)),
        "the event loop answered {:.0}/s, its ceiling 1/cpu is 500/s",
        answered("event-loop")
    );
    if conlab_core::platform::hardware_threads() >= 2 {
        for parallel in ["loop-workers", "pre-forked-reuseport"] {
            assert!(
                answered(parallel) >= 1.5 * answered("event-loop"),
                "{parallel}: {:.0}/s, with the CPU on one loop {:.0}/s",
                answered(parallel),
                answered("event-loop")
            );
        }
    }
}

#[test]
fn pre_forked_workers_sharing_one_socket_race_for_the_connections_and_a_reuseport_group_spreads_them() {
    let _alone = alone();
    // 32 connections over 8 workers at the I/O-bound defaults: here the busiest worker held
    // 91% of them on one shared socket and 17% in an SO_REUSEPORT group (12 workers).
    let settings = [("workers", json!(8)), ("steps", json!(2)), ("max_rate", json!(800.0))];
    let mut request = request("server-load", &settings, &[1]);
    request.variants = Some(vec!["pre-forked".into(), "pre-forked-reuseport".into()]);
    request.repeat = 2;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "{:#?}", result.cells);
    let share = |variant: &str| {
        result.cells.iter().find(|c| c.variant == variant).unwrap().metrics["busiest worker's share"].median
    };
    let (shared, group) = (share("pre-forked"), share("pre-forked-reuseport"));
    assert!(
        shared >= 1.5 * group,
        "busiest worker: {shared:.2} of the connections on one socket, {group:.2} in the group"
    );
}

#[test]
fn a_closed_loop_hides_a_stalling_servers_pauses_that_an_open_loop_reports() {
    let _alone = alone();
    // Stalls of 100 ms at the end of every 300 ms, two of them in the run: here the open loop's
    // p99 read 100 ms and the closed loop's 0.7 ms (its maximum 100 ms).
    let settings = [("every_ms", json!(300)), ("stall_ms", json!(100)), ("duration_ms", json!(600))];
    let mut request = request("coordinated-omission", &settings, &[1]);
    request.repeat = 3;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "{:#?}", result.cells);
    let metric =
        |variant: &str, name: &str| result.cells.iter().find(|c| c.variant == variant).unwrap().metrics[name].clone();
    let (open, closed) = (metric("open-loop", "p99").min, metric("closed-loop", "p99").max);
    assert!(open >= 50.0, "the open loop's p99 {open:.1} ms misses the 100 ms stalls");
    assert!(closed <= open / 4.0, "the closed loop's p99 {closed:.1} ms against the open loop's {open:.1} ms");
    assert!(metric("closed-loop", "max").min >= 50.0, "the closed loop's maximum still shows a stall");
    let latency = &result.cells.iter().find(|c| c.variant == "open-loop").unwrap().latencies["latency"];
    assert!(latency.count > 0);
}

#[test]
fn slicing_the_buffer_per_message_is_quadratic_in_the_batch_and_an_offset_is_flat() {
    let _alone = alone();
    // 64-byte messages: here slice-copy took 113 ns a message one per read and 782 ns a thousand
    // per read; the offset reader 98 and 94 ns.
    let mut request = request("framing", &[("messages", json!(10_000))], &[1]);
    request.repeat = 3;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every message framed whole and in order: {:#?}", result.cells);
    let fastest = |variant: &str, batch: usize| {
        let name = format!("ns/message at batch {batch}");
        result.cells.iter().find(|c| c.variant == variant).unwrap().metrics[&name].min
    };
    let growth = |variant: &str| fastest(variant, 1000) / fastest(variant, 1);
    assert!(growth("slice-copy") >= 3.0, "slice-copy per message: ×{:.2} from batch 1 to 1000", growth("slice-copy"));
    assert!(growth("offset") <= 1.5, "offset per message: ×{:.2} from batch 1 to 1000", growth("offset"));
}

#[test]
fn under_one_gil_a_slow_endpoint_holds_up_the_fast_one_and_a_gil_per_process_does_not() {
    let _alone = alone();
    // 40 slow requests/s of 20 ms beside 200 fast ones of 0.2 ms, 500 ms a load: here the fast
    // p99 went from 1.4–4.1 ms alone to 33–51 ms under one GIL and 16–26 ms on a loop with
    // to_thread, and stayed at 3.9–4.0 ms with a GIL per handler, 4.0–4.5 ms free-threaded,
    // 2.2–4.2 ms on a loop with a process pool. Fastest runs on both sides: one p99 of ~100
    // fast requests swings with a single late one — three runs, since the fastest of two once
    // read 6.4 ms alone for one GIL (a fresh-clone CI run), and up to three rounds, since the
    // fastest of three once read 6.3 ms alone (another).
    let mut request = request("gil-server", &[("steps", json!(1)), ("point_ms", json!(500))], &[1]);
    request.repeat = 3;
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let result = run_quietly(&request).unwrap();
        assert!(result.all_checks_passed, "{:#?}", result.cells);
        let fastest =
            |variant: &str, name: &str| result.cells.iter().find(|c| c.variant == variant).unwrap().metrics[name].min;
        let alone_and_loaded = |variant: &str| {
            (fastest(variant, "fast p99 with no slow load"), fastest(variant, "fast p99 at max slow load"))
        };
        let held_up = ["gil", "loop-to-thread"].map(alone_and_loaded);
        let one_gil = held_up[0].1;
        let flat = ["gil-per-process", "free-threaded", "loop-process-pool"]
            .map(|variant| fastest(variant, "fast p99 at max slow load"));
        let shows = held_up.iter().all(|&(alone, loaded)| loaded >= 3.0 * alone && loaded >= 2.5)
            && flat.iter().all(|&p99| p99 < one_gil / 2.0);
        rounds.push((held_up, flat));
        if shows {
            return;
        }
    }
    panic!(
        "fast p99 in ms, fastest runs: (alone, loaded) for gil and loop-to-thread, then loaded for \
         gil-per-process, free-threaded and loop-process-pool: {rounds:?}"
    );
}

#[test]
fn idle_connections_cost_a_thread_and_its_stack_each_or_a_registration_on_one_loop() {
    let _alone = alone();
    // 200 idle connections beside 2 active ones: here a thread per connection took 201 threads
    // and 1.95 MiB of address space per connection (19.8 KiB resident), the event loop one
    // thread and 0.5 KiB (16.7 KiB resident: its read buffer).
    let settings = [("idle", json!(200)), ("active", json!(2)), ("duration_ms", json!(100))];
    let mut request = request("connections", &settings, &[1]);
    request.repeat = 2;
    let result = run_quietly(&request).unwrap();
    assert!(result.all_checks_passed, "every connection accepted: {:#?}", result.cells);
    let metric =
        |variant: &str, name: &str| result.cells.iter().find(|c| c.variant == variant).unwrap().metrics[name].clone();
    assert_eq!(metric("thread-per-connection", "server threads").min, 203.0);
    assert_eq!(metric("event-loop", "server threads").max, 1.0);
    if conlab_core::platform::memory_use().is_some() {
        let reserved = |variant: &str| metric(variant, "address space per connection").median;
        assert!(
            reserved("thread-per-connection") >= 1024.0 && reserved("event-loop") < 64.0,
            "address space per connection: {:.0} KiB with threads, {:.1} KiB on the loop",
            reserved("thread-per-connection"),
            reserved("event-loop")
        );
    }
}
