//! `conlab calibrate-python`: the model against the real interpreter.
//!
//! Runs the reference scripts in `native/python/` (embedded in the binary) with the `python3` on
//! PATH; fits the model's pace (`op_ns`) to this machine's CPython by running the model's loop
//! until its time per iteration meets CPython's, and shows that fit measured; then runs the
//! matching conlab experiments at that pace with the same sizes and prints both side by side.

use std::io::Write as _;
use std::process::{Command, Stdio};

use conlab_lab::experiment::{self, CancelFlag, RunRequest, RunResult, Session};
use conlab_lab::report::{format_metric, format_seconds};
use serde_json::{json, Value};

const GIL_CPU: &str = include_str!("../python/gil_cpu.py");
const GIL_RACE: &str = include_str!("../python/gil_race.py");
const IO_FANOUT: &str = include_str!("../python/io_fanout.py");
const SWITCH_INTERVAL: &str = include_str!("../python/switch_interval.py");
const GIL_NATIVE: &str = include_str!("../python/gil_native.py");
const MANAGER_SHARED: &str = include_str!("../python/manager_shared.py");
const GIL_SERVER: &str = include_str!("../python/gil_server.py");
const CPROFILE: &str = include_str!("../python/cprofile_overhead.py");

const ITERATIONS: u64 = 2_000_000;
/// Increments per thread in the race: ~75 ms of CPython's read-call-write loop, some 15 tenures
/// of the default 5 ms switch interval on 2 threads.
const INCREMENTS: u64 = 1_000_000;
/// Runs of each race, on both sides: one run's lost fraction swings ±0.1 with where its few
/// switches happen to land (measured: a standard deviation of 0.065 for CPython on 2 threads),
/// and now and then a run lands far off; the median of ten is steady to a few hundredths.
const RACE_RUNS: usize = 10;
const RACE_THREADS: [usize; 2] = [2, 4];
/// Iterations per thread of the switch-interval runs: some 70 ms of 2 threads' loops.
const SWITCH_ITERATIONS: u64 = 1_000_000;
/// The switch intervals (ms) whose handover rates are compared: the switch-interval
/// experiment's metrics are named after them.
const SWITCH_INTERVALS: [&str; 3] = ["0.1", "1", "5"];
/// nogil-ext and per-element: 16 MB hashed in 2 KB blocks, the smallest buffer CPython's
/// hashlib hashes with the GIL released (some 11 ms for one thread).
const NATIVE_BLOCKS: u64 = 8192;
const NATIVE_BLOCK_BYTES: u64 = 2048;
/// Runs of each side: at 2 KB a call releases the GIL for ~1.3 µs, and two threads sometimes
/// fall into step and sometimes queue at every call — in CPython as in the model — so the
/// speedups compared are the medians' and the rows show the range.
const NATIVE_RUNS: usize = 9;
/// manager-vs-shared: runs a side, and updates per worker (manager; Value and raw array) —
/// some 0.4 s of CPython's manager and 0.2 s of its Value per run.
const SHARING_RUNS: usize = 5;
const SHARING_UPDATES: (u64, u64) = (4_000, 200_000);
const SHARING_VARIANTS: [&str; 3] = ["manager", "value", "raw-array"];
/// gil-server on both sides: a fast endpoint (0.2 ms of the loop, 200 requests/s) alone and
/// beside a slow one (20 ms, 40/s), 3 connections each, 3 s per load — some 600 fast requests,
/// so that the p99 is not one request's.
const SERVER_FAST_US: f64 = 200.0;
const SERVER_SLOW_MS: f64 = 20.0;
const SERVER_RATES: (f64, f64) = (200.0, 40.0);
const SERVER_CONNECTIONS: usize = 3;
const SERVER_LOAD_MS: u64 = 3000;
/// profiler-overhead on both sides: rounds of 20 calls of a 4-iteration function and one of a
/// 100-iteration one, the fastest of 5 runs plain and under cProfile (~25 and ~65 ms in CPython).
const OVERHEAD_ROUNDS: u64 = 6000;
const OVERHEAD_RUNS: usize = 5;
const TASKS: u64 = 8;
const LATENCY_MS: f64 = 20.0;
/// Bytecode instructions per iteration of the model's loop (`total = total + 1`).
const MODEL_OPS_PER_ITERATION: f64 = 5.0;
/// The fit stops once the model's pace is this close to CPython's.
const FIT_TOLERANCE: f64 = 0.03;
const FIT_STEPS: usize = 5;

/// Runs a reference script (fed on stdin) and parses the JSON line it prints.
fn python(script: &str, args: &[String]) -> Result<Value, String> {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("calibrate-python needs `python3` on PATH: {error}"))?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("unexpected output from python3: {e}"))
}

fn model(id: &str, params: Value, variants: &[&str], threads: &[usize], repeat: usize) -> Result<RunResult, String> {
    let request = RunRequest {
        experiment: id.into(),
        params: serde_json::from_value(params).expect("an object"),
        variants: Some(variants.iter().map(|v| v.to_string()).collect()),
        threads: Some(threads.to_vec()),
        repeat,
        warmup: 1,
        trace: false,
        profile: false,
    };
    experiment::run(&request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).map_err(|e| e.to_string())
}

/// A cell's fastest run, as CPython's side is timed (the best of its repetitions).
fn fastest(result: &RunResult, variant: &str, threads: usize) -> f64 {
    result.cell(variant, threads).and_then(|c| c.summary.as_ref()).map_or(f64::NAN, |s| s.min)
}

fn median(result: &RunResult, variant: &str, threads: usize) -> f64 {
    result.cell(variant, threads).and_then(|c| c.summary.as_ref()).map_or(f64::NAN, |s| s.median)
}

/// The middle value (the mean of the middle two): one run whose few switches landed unusually
/// does not move it.
fn middle(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn number(value: &Value, key: &str) -> Result<f64, String> {
    value[key].as_f64().ok_or_else(|| format!("python3 printed no `{key}`"))
}

/// The lost fractions of a race script's runs: `race[threads][kind]`.
fn race_fractions(race: &Value, threads: usize, kind: &str) -> Result<Vec<f64>, String> {
    race[threads.to_string()][kind]
        .as_array()
        .and_then(|runs| runs.iter().map(Value::as_f64).collect())
        .ok_or_else(|| format!("python3 printed no `{kind}` runs for {threads} threads"))
}

/// The model's fastest ns per loop iteration at `op_ns`.
fn model_pace(op_ns: f64) -> Result<f64, String> {
    let run = model("gil-cpu", json!({ "iterations": ITERATIONS, "op_ns": op_ns }), &["seq"], &[1], 3)?;
    Ok(fastest(&run, "seq", 1) / ITERATIONS as f64 * 1e9)
}

/// The `op_ns` at which the model's loop runs at `target` ns per iteration, and the pace
/// measured there. The pace grows with `op_ns` but not along a line (the interpreter's own
/// dispatch runs alongside the busy work and sets a floor), so this searches: a first guess,
/// then secant steps on measured points.
fn fit_op_ns(target: f64) -> Result<(f64, f64), String> {
    let mut points = vec![];
    let mut op_ns = target / MODEL_OPS_PER_ITERATION;
    for _ in 0..FIT_STEPS {
        let pace = model_pace(op_ns)?;
        eprintln!("  op_ns={op_ns:.2}: {pace:.1} ns per iteration (CPython: {target:.1})");
        points.push((op_ns, pace));
        if (pace / target - 1.0).abs() <= FIT_TOLERANCE {
            break;
        }
        op_ns = match points.as_slice() {
            [.., (x0, y0), (x1, y1)] if (y1 - y0).abs() > 1e-9 => x1 + (target - y1) * (x1 - x0) / (y1 - y0),
            // One point: scale it.
            _ => op_ns * target / pace,
        }
        .clamp(0.0, 1000.0);
    }
    let best = points.iter().min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs())).expect("measured");
    Ok(*best)
}

/// One comparison row: what, CPython's figure, the model's, as text, and how they compare.
struct Row(String, String, String, String);

fn ratio(model: f64, cpython: f64) -> String {
    if cpython == 0.0 && model == 0.0 {
        "equal".into()
    } else if cpython == 0.0 {
        "–".into()
    } else {
        format!("{:.2}×", model / cpython)
    }
}

/// A speedup on more threads, from the medians of each side's runs, with the range the runs
/// spanned (the fastest and slowest multi-threaded run against the one-thread median).
fn speedup_row(what: String, cpython: (&[f64], &[f64]), model: (&[f64], &[f64])) -> Row {
    let speedup = |(one, more): (&[f64], &[f64])| {
        let base = middle(one);
        let (fastest, slowest) = more.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        (base / middle(more), base / slowest, base / fastest)
    };
    let (cpy, cpy_low, cpy_high) = speedup(cpython);
    let (mine, low, high) = speedup(model);
    Row(
        what,
        format!("{cpy:.2}× ({cpy_low:.2}–{cpy_high:.2})"),
        format!("{mine:.2}× ({low:.2}–{high:.2})"),
        ratio(mine, cpy),
    )
}

/// gil-server on both sides: the fast endpoint's p99 alone, and its p50 and p99 beside the slow
/// load (ms).
fn server_rows(cpython: &Value, model: &RunResult) -> Result<Vec<Row>, String> {
    let mine = |metric: &str| {
        model
            .cells
            .iter()
            .find(|c| c.variant == "gil")
            .and_then(|c| c.metrics.get(metric))
            .map(|m| m.median)
            .ok_or_else(|| format!("the gil-server model measured no {metric}"))
    };
    let row = |what: &str, key: &str, metric: &str| -> Result<Row, String> {
        let (cpy, mine) = (number(cpython, key)?, mine(metric)?);
        Ok(Row(format!("gil-server: {what} (ms)"), format!("{cpy:.2}"), format!("{mine:.2}"), ratio(mine, cpy)))
    };
    let (fast, slow) = (SERVER_RATES.0, SERVER_RATES.1);
    Ok(vec![
        row(
            &format!("the fast endpoint's p99, {fast} requests/s alone"),
            "fast_p99_alone_ms",
            "fast p99 with no slow load",
        )?,
        row(&format!("its p50 beside {slow} slow requests/s"), "fast_p50_loaded_ms", "fast p50 at max slow load")?,
        row(&format!("its p99 beside {slow} slow requests/s"), "fast_p99_loaded_ms", "fast p99 at max slow load")?,
    ])
}

/// manager-vs-shared's `variant` on both sides: time per update at 1 and `threads` workers, and
/// how updates/s grow from 1 to `threads` (medians of the runs).
fn sharing_rows(cpython: &Value, model: &RunResult, variant: &str, threads: usize) -> Result<Vec<Row>, String> {
    // CPython's runs are [per update ns, updates/s] pairs.
    let cpy = |workers: usize, column: usize| -> Result<f64, String> {
        let runs = cpython[variant][workers.to_string()]
            .as_array()
            .ok_or_else(|| format!("python3 printed no {variant} runs"))?;
        let values: Option<Vec<f64>> = runs.iter().map(|run| run[column].as_f64()).collect();
        Ok(middle(&values.ok_or_else(|| format!("python3 printed malformed {variant} runs"))?))
    };
    let mine = |workers: usize, metric: &str| {
        model
            .cell(variant, workers)
            .and_then(|c| c.metrics.get(metric))
            .map(|m| m.median)
            .ok_or_else(|| format!("the manager-vs-shared model measured no {metric} for {variant} at {workers}"))
    };
    let per_update = |workers: usize| -> Result<Row, String> {
        let (cpy, mine) = (cpy(workers, 0)?, mine(workers, "per update")?);
        Ok(Row(
            format!(
                "manager-vs-shared {variant}: time per update, {workers} worker{}",
                if workers == 1 { "" } else { "s" }
            ),
            format_seconds(cpy / 1e9),
            format_seconds(mine / 1e9),
            ratio(mine, cpy),
        ))
    };
    let (cpy_gain, gain) = (cpy(threads, 1)? / cpy(1, 1)?, mine(threads, "updates/s")? / mine(1, "updates/s")?);
    Ok(vec![
        per_update(1)?,
        per_update(threads)?,
        Row(
            format!("manager-vs-shared {variant}: updates/s at {threads} workers ÷ 1"),
            format!("{cpy_gain:.2}×"),
            format!("{gain:.2}×"),
            ratio(gain, cpy_gain),
        ),
    ])
}

/// cProfile on both sides: its cost per call, the slowdown, and where its cost lands.
fn cprofile_rows(cpython: &Value, model: &RunResult) -> Result<Vec<Row>, String> {
    let calls = model
        .cell("instrumenting", 1)
        .and_then(|cell| cell.metrics.get("calls"))
        .map(|metric| metric.median)
        .ok_or("the profiler-overhead model counted no calls")?;
    let (none, traced) = (fastest(model, "none", 1), fastest(model, "instrumenting", 1));
    let share = |name: &str| {
        model.cell("instrumenting", 1).and_then(|cell| cell.metrics.get(name)).map(|m| m.median).unwrap_or(f64::NAN)
    };
    let cpy_share = |name: &str| number(&cpython["shares"], name).map(|share| share * 100.0);
    let (plain, profiled) = (number(cpython, "plain_s")?, number(cpython, "profiled_s")?);
    let per_call = number(cpython, "per_call_ns")?;
    let model_per_call = (traced - none) * 1e9 / calls;
    let percent = |model: f64, cpython: f64| format!("{:+.1} points", model - cpython);
    Ok(vec![
        Row(
            "profiler-overhead: cProfile's cost per call".into(),
            format!("{per_call:.0} ns"),
            format!("{model_per_call:.0} ns"),
            ratio(model_per_call, per_call),
        ),
        Row(
            "profiler-overhead: time under cProfile ÷ without".into(),
            format!("{:.2}×", profiled / plain),
            format!("{:.2}×", traced / none),
            ratio(traced / none, profiled / plain),
        ),
        Row(
            "profiler-overhead: the caller's share of tottime (main / <module>)".into(),
            format!("{:.1}%", cpy_share("main")?),
            format!("{:.1}%", share("<module>, timed")),
            percent(share("<module>, timed"), cpy_share("main")?),
        ),
        Row(
            "profiler-overhead: tiny's share of tottime".into(),
            format!("{:.1}%", cpy_share("tiny")?),
            format!("{:.1}%", share("tiny, timed")),
            percent(share("tiny, timed"), cpy_share("tiny")?),
        ),
    ])
}

fn fraction_row(what: String, cpython: f64, model: f64) -> Row {
    Row(what, format!("{cpython:.2}"), format!("{model:.2}"), format!("{:+.2}", model - cpython))
}

pub fn calibrate_python() -> Result<(), String> {
    let threads = 2;
    eprintln!("CPython: the loop alone and on {threads} threads, the races, the I/O fan-out…");
    let cpu = python(GIL_CPU, &[ITERATIONS.to_string(), threads.to_string(), "3".into()])?;
    let version = cpu["version"].as_str().unwrap_or("?").to_string();
    let switch_ms = number(&cpu, "switch_interval_s")? * 1e3;
    let mut race_args = vec![INCREMENTS.to_string(), RACE_RUNS.to_string()];
    race_args.extend(RACE_THREADS.iter().map(usize::to_string));
    let race = python(GIL_RACE, &race_args)?;
    let io = python(IO_FANOUT, &[TASKS.to_string(), (LATENCY_MS / 1e3).to_string()])?;
    let mut switch_args = vec![SWITCH_ITERATIONS.to_string(), threads.to_string()];
    switch_args.extend(SWITCH_INTERVALS.iter().map(|ms| ms.to_string()));
    let switches = python(SWITCH_INTERVAL, &switch_args)?;
    let native =
        python(GIL_NATIVE, &[NATIVE_BLOCKS.to_string(), NATIVE_BLOCK_BYTES.to_string(), NATIVE_RUNS.to_string()])?;
    let sharing = python(
        MANAGER_SHARED,
        &[SHARING_RUNS.to_string(), SHARING_UPDATES.0.to_string(), SHARING_UPDATES.1.to_string()],
    )?;
    let profiled = python(CPROFILE, &[OVERHEAD_ROUNDS.to_string(), OVERHEAD_RUNS.to_string()])?;
    let cpy_iteration = number(&cpu, "ns_per_iteration")?;
    eprintln!("CPython: a ThreadingTCPServer with a slow and a fast endpoint…");
    let server = python(
        GIL_SERVER,
        &[
            cpy_iteration.to_string(),
            SERVER_FAST_US.to_string(),
            SERVER_SLOW_MS.to_string(),
            SERVER_RATES.0.to_string(),
            SERVER_RATES.1.to_string(),
            SERVER_CONNECTIONS.to_string(),
            (SERVER_LOAD_MS as f64 / 1e3).to_string(),
            "1".into(),
        ],
    )?;

    eprintln!("The model: fitting op_ns to CPython's {cpy_iteration:.1} ns per iteration…");
    let (op_ns, model_iteration) = fit_op_ns(cpy_iteration)?;
    eprintln!("The model at op_ns={op_ns:.2}: gil-cpu, gil-race, io-fanout, switch-interval…");
    let gil_cpu = model(
        "gil-cpu",
        json!({ "iterations": ITERATIONS, "switch_ms": switch_ms, "op_ns": op_ns }),
        &["seq", "gil"],
        &[threads],
        3,
    )?;
    let gil_race = model(
        "gil-race",
        json!({ "increments": INCREMENTS, "switch_ms": switch_ms, "op_ns": op_ns }),
        &["gil", "gil-call"],
        &RACE_THREADS,
        RACE_RUNS,
    )?;
    let io_fanout =
        model("io-fanout", json!({ "tasks": TASKS, "latency": LATENCY_MS }), &["seq", "thread-per-task"], &[1], 3)?;
    let switch_interval = model(
        "switch-interval",
        json!({ "iterations": SWITCH_ITERATIONS, "switch_ms": "sweep", "op_ns": op_ns }),
        &["gil"],
        &[threads],
        3,
    )?;

    let (call_ns, block_ns) = (number(&native, "call_ns")?, number(&native, "block_ns")?);
    let gil_native = model(
        "gil-cpu",
        json!({ "iterations": NATIVE_BLOCKS, "native_ns": block_ns, "call_ns": call_ns, "element": 1,
                "switch_ms": switch_ms, "op_ns": op_ns }),
        &["nogil-ext", "per-element"],
        &[1, threads],
        NATIVE_RUNS,
    )?;

    let gil_server = model(
        "gil-server",
        json!({ "fast_us": SERVER_FAST_US, "slow_ms": SERVER_SLOW_MS, "fast_rate": SERVER_RATES.0,
                "max_slow_rate": SERVER_RATES.1, "steps": 1, "connections": SERVER_CONNECTIONS,
                "point_ms": SERVER_LOAD_MS, "switch_ms": switch_ms, "op_ns": op_ns }),
        &["gil"],
        &[1],
        1,
    )?;

    let overhead = model(
        "profiler-overhead",
        json!({ "iterations": OVERHEAD_ROUNDS, "op_ns": op_ns }),
        &["none", "instrumenting"],
        &[1],
        OVERHEAD_RUNS,
    )?;

    let step_ns = number(&sharing, "step_ns")?;
    let shared_model = model(
        "manager-vs-shared",
        json!({ "python_ns": step_ns, "duration_ms": 200 }),
        &SHARING_VARIANTS,
        &[1, threads],
        SHARING_RUNS,
    )?;

    let cpy_speedup = number(&cpu, "seq_s")? / number(&cpu, "threads_s")?;
    let model_speedup = fastest(&gil_cpu, "seq", 1) / fastest(&gil_cpu, "gil", threads);
    let model_lost = |variant: &str, threads: usize| -> f64 {
        let lost = gil_race
            .cell(variant, threads)
            .and_then(|c| c.metrics.get("lost updates"))
            .map_or(f64::NAN, |m| middle(&m.values));
        lost / (threads as f64 * INCREMENTS as f64)
    };
    let (cpy_seq, cpy_threads) = (number(&io, "seq_s")?, number(&io, "threads_s")?);
    let (model_seq, model_threads) =
        (median(&io_fanout, "seq", 1), median(&io_fanout, "thread-per-task", TASKS as usize));

    let mut rows = vec![
        Row(
            format!("gil-cpu: ns per loop iteration (op_ns={op_ns:.2})"),
            format!("{cpy_iteration:.1}"),
            format!("{model_iteration:.1}"),
            ratio(model_iteration, cpy_iteration),
        ),
        Row(
            format!("gil-cpu: speedup on {threads} threads"),
            format!("{cpy_speedup:.2}×"),
            format!("{model_speedup:.2}×"),
            ratio(model_speedup, cpy_speedup),
        ),
    ];
    for threads in RACE_THREADS {
        let plain = middle(&race_fractions(&race, threads, "plain")?);
        rows.push(fraction_row(
            format!("gil-race: lost fraction, counter += 1, {threads} threads"),
            plain,
            model_lost("gil", threads),
        ));
    }
    for threads in RACE_THREADS {
        let call = middle(&race_fractions(&race, threads, "call")?);
        rows.push(fraction_row(
            format!("gil-race: lost fraction, x = counter; f(); counter = x + 1, {threads} threads"),
            call,
            model_lost("gil-call", threads),
        ));
    }
    rows.extend([
        Row(
            format!("io-fanout: {TASKS} × {LATENCY_MS} ms, sequential"),
            format_seconds(cpy_seq),
            format_seconds(model_seq),
            ratio(model_seq, cpy_seq),
        ),
        Row(
            "io-fanout: a thread per call".into(),
            format_seconds(cpy_threads),
            format_seconds(model_threads),
            ratio(model_threads, cpy_threads),
        ),
    ]);

    for (variant, side, what) in [
        ("nogil-ext", "whole", "gil-cpu nogil-ext: sha256, one call per thread"),
        ("per-element", "each", "gil-cpu per-element: sha256, one call per 2 KB"),
    ] {
        let runs = |threads: usize| {
            native[side][threads.to_string()]
                .as_array()
                .and_then(|runs| runs.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                .ok_or_else(|| format!("python3 printed no `{side}` runs for {threads} threads"))
        };
        let (cpy_one, cpy_two) = (runs(1)?, runs(threads)?);
        let samples =
            |threads: usize| gil_native.cell(variant, threads).map(|c| c.samples.clone()).filter(|s| !s.is_empty());
        let (Some(model_one), Some(model_two)) = (samples(1), samples(threads)) else {
            return Err(format!("the gil-cpu model measured nothing for {variant}"));
        };
        rows.push(speedup_row(format!("{what}, {threads} threads"), (&cpy_one, &cpy_two), (&model_one, &model_two)));
    }
    rows.push(Row(
        "gil-cpu per-element: a call's work with the GIL held (sha256(b''))".into(),
        format!("{call_ns:.0} ns"),
        format!("{call_ns:.0} ns"),
        "set to CPython's".into(),
    ));

    rows.push(Row(
        "manager-vs-shared: a Python step (a[0] += 1 on a RawArray), python_ns".into(),
        format!("{step_ns:.0} ns"),
        format!("{step_ns:.0} ns"),
        "set to CPython's".into(),
    ));
    for variant in SHARING_VARIANTS {
        rows.extend(sharing_rows(&sharing, &shared_model, variant, threads)?);
    }

    for (ms, run) in SWITCH_INTERVALS.iter().zip(switches["runs"].as_array().into_iter().flatten()) {
        let cpython = number(run, "handovers")? / number(run, "seconds")?;
        let metric = |name: &str| {
            switch_interval
                .cell("gil", threads)
                .and_then(|c| c.metrics.get(&format!("{ms} ms: {name}")))
                .map(|m| m.median)
        };
        let model = match (metric("handovers"), metric("time")) {
            (Some(handovers), Some(time_ms)) => handovers / (time_ms / 1e3),
            _ => return Err(format!("the switch-interval model measured nothing at {ms} ms")),
        };
        rows.push(Row(
            format!("switch-interval: GIL handovers per second at {ms} ms, {threads} threads"),
            format!("{cpython:.0}"),
            format!("{model:.0}"),
            ratio(model, cpython),
        ));
    }

    rows.extend(server_rows(&server, &gil_server)?);
    rows.extend(cprofile_rows(&profiled, &overhead)?);

    let cpython = format!("CPython {version}");
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    println!("{:<width$}  {cpython:>14}  {:>10}  {:>16}", "quantity", "model", "model vs CPython");
    for Row(what, cpy, model, compared) in &rows {
        println!("{what:<width$}  {cpy:>14}  {model:>10}  {compared:>16}");
    }
    println!(
        "\nLost fractions are the median of {RACE_RUNS} runs of {} increments per thread, at CPython's switch interval \
         ({} ms); the last column is their difference.",
        format_metric(INCREMENTS as f64),
        format_metric(switch_ms)
    );
    println!(
        "Handovers are counted where the loop sees them (an iteration that finds the other thread ran last); a \
         thread asks for the GIL after the interval, so neither side exceeds 1/interval."
    );
    println!(
        "sha256 speedups are medians of {NATIVE_RUNS} runs a side (in brackets: the slowest and fastest run against \
         the 1-thread median); the model hashes nothing: it is set to CPython's measured time per 2 KB block \
         ({block_ns:.0} ns) and per call ({call_ns:.0} ns)."
    );
    println!(
        "manager-vs-shared: forked workers on both sides, medians of {SHARING_RUNS} runs; CPython's workers make {} \
         manager and {} Value or raw-array updates each, the model's run for 200 ms.",
        SHARING_UPDATES.0, SHARING_UPDATES.1
    );
    println!(
        "gil-server: one run of {} s per load a side ({} fast requests/s alone, then beside {} slow ones/s), \
         latency from each request's intended send; CPython's server is socketserver.ThreadingTCPServer in a \
         process of its own, loaded from this one.",
        SERVER_LOAD_MS as f64 / 1e3,
        SERVER_RATES.0,
        SERVER_RATES.1
    );
    println!(
        "profiler-overhead: {OVERHEAD_ROUNDS} rounds of 20 calls of a 4-iteration function and one of a 100-iteration \
         one, the fastest of {OVERHEAD_RUNS} runs a side with and without cProfile (the model's hooks at their \
         default hook_ns); shares are of the profiler's own self-time column (tottime)."
    );
    println!("This machine's CPython runs the loop at the model's pace with --set op_ns={op_ns:.2} (measured above).");
    Ok(())
}
