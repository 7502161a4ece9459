//! `conlab calibrate-python`: the model against the real interpreter.
//!
//! Runs the reference scripts in `native/python/` (embedded in the binary) with the `python3` on
//! PATH, runs the matching conlab experiments with the same sizes, and prints both side by side
//! with their ratio — plus the `op_ns` that would make the model's bytecode as fast as this
//! machine's CPython.

use std::io::Write as _;
use std::process::{Command, Stdio};

use conlab_core::experiment::{self, CancelFlag, RunRequest, RunResult, Session};
use conlab_core::report::{format_metric, format_seconds};
use serde_json::{json, Value};

const GIL_CPU: &str = include_str!("../python/gil_cpu.py");
const GIL_RACE: &str = include_str!("../python/gil_race.py");
const IO_FANOUT: &str = include_str!("../python/io_fanout.py");

const ITERATIONS: u64 = 2_000_000;
const INCREMENTS: u64 = 1_000_000;
const TASKS: u64 = 8;
const LATENCY_MS: f64 = 20.0;
/// Bytecode instructions per iteration of the model's loops.
const MODEL_OPS_PER_ITERATION: f64 = 5.0;
/// The experiments' default `op_ns`.
const DEFAULT_OP_NS: f64 = 5.0;

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

fn model(id: &str, params: Value, variants: &[&str], threads: &[usize]) -> Result<RunResult, String> {
    let request = RunRequest {
        experiment: id.into(),
        params: serde_json::from_value(params).expect("an object"),
        variants: Some(variants.iter().map(|v| v.to_string()).collect()),
        threads: Some(threads.to_vec()),
        repeat: 3,
        warmup: 1,
        trace: false,
    };
    experiment::run(&request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).map_err(|e| e.to_string())
}

fn median(result: &RunResult, variant: &str, threads: usize) -> f64 {
    result.cell(variant, threads).and_then(|c| c.summary.as_ref()).map_or(f64::NAN, |s| s.median)
}

fn metric(result: &RunResult, variant: &str, threads: usize, name: &str) -> f64 {
    result.cell(variant, threads).and_then(|c| c.metrics.get(name)).map_or(f64::NAN, |m| m.median)
}

fn number(value: &Value, key: &str) -> Result<f64, String> {
    value[key].as_f64().ok_or_else(|| format!("python3 printed no `{key}`"))
}

/// One comparison row: what, CPython's figure, the model's, as text, and their ratio.
struct Row(String, String, String, String);

fn ratio(model: f64, cpython: f64) -> String {
    if cpython == 0.0 && model == 0.0 {
        "equal".into()
    } else if cpython == 0.0 {
        "–".into()
    } else {
        format!("{:.2}", model / cpython)
    }
}

pub fn calibrate_python() -> Result<(), String> {
    let threads = 2;
    let cpu = python(GIL_CPU, &[ITERATIONS.to_string(), threads.to_string(), "3".into()])?;
    let version = cpu["version"].as_str().unwrap_or("?").to_string();
    let switch_ms = number(&cpu, "switch_interval_s")? * 1e3;
    let race = python(GIL_RACE, &[INCREMENTS.to_string(), threads.to_string()])?;
    let io = python(IO_FANOUT, &[TASKS.to_string(), (LATENCY_MS / 1e3).to_string()])?;

    eprintln!("CPython done; running the model (gil-cpu, gil-race, io-fanout)…");
    let gil_cpu = model("gil-cpu", json!({ "iterations": ITERATIONS, "switch_ms": switch_ms }), &["seq", "gil"], &[threads])?;
    let gil_race = model("gil-race", json!({ "increments": INCREMENTS, "switch_ms": switch_ms }), &["gil", "gil-call"], &[threads])?;
    let io_fanout = model("io-fanout", json!({ "tasks": TASKS, "latency": LATENCY_MS }), &["seq", "thread-per-task"], &[1])?;

    let cpy_iteration = number(&cpu, "ns_per_iteration")?;
    let model_iteration = median(&gil_cpu, "seq", 1) / ITERATIONS as f64 * 1e9;
    let cpy_speedup = number(&cpu, "seq_s")? / number(&cpu, "threads_s")?;
    let model_speedup = median(&gil_cpu, "seq", 1) / median(&gil_cpu, "gil", threads);
    let (cpy_plain, cpy_call) = (number(&race, "plain_lost")?, number(&race, "call_lost")?);
    let (model_plain, model_call) =
        (metric(&gil_race, "gil", threads, "lost updates"), metric(&gil_race, "gil-call", threads, "lost updates"));
    let (cpy_seq, cpy_threads) = (number(&io, "seq_s")?, number(&io, "threads_s")?);
    let (model_seq, model_threads) = (median(&io_fanout, "seq", 1), median(&io_fanout, "thread-per-task", TASKS as usize));

    let rows = [
        Row(
            "gil-cpu: ns per loop iteration".into(),
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
        Row(
            format!("gil-race: lost, counter += 1 ({threads}×{INCREMENTS})"),
            format_metric(cpy_plain),
            format_metric(model_plain),
            ratio(model_plain, cpy_plain),
        ),
        Row(
            "gil-race: lost, a call between load and store".into(),
            format_metric(cpy_call),
            format_metric(model_call),
            ratio(model_call, cpy_call),
        ),
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
    ];
    let cpython = format!("CPython {version}");
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    println!("{:<width$}  {cpython:>14}  {:>10}  {:>15}", "quantity", "model", "model / CPython");
    for Row(what, cpy, model, ratio) in &rows {
        println!("{what:<width$}  {cpy:>14}  {model:>10}  {ratio:>15}");
    }
    // The model's loop costs a + b·op_ns per iteration (a: our interpreter's own dispatch); two
    // points give the line, and the op_ns at which it meets CPython's figure.
    let bare = model("gil-cpu", json!({ "iterations": ITERATIONS, "op_ns": 0.0 }), &["seq"], &[1])?;
    let base = median(&bare, "seq", 1) / ITERATIONS as f64 * 1e9;
    let slope = (model_iteration - base) / DEFAULT_OP_NS;
    println!(
        "\nThe model's loop: {base:.1} ns per iteration of interpreter overhead + {slope:.2} ns per unit of op_ns \
         ({MODEL_OPS_PER_ITERATION} instructions; default op_ns {DEFAULT_OP_NS})."
    );
    if cpy_iteration > base && slope > 0.0 {
        println!("This machine's CPython matches --set op_ns={:.1}.", (cpy_iteration - base) / slope);
    } else {
        println!("This machine's CPython runs the loop faster than the model's bare interpreter: use --set op_ns=0.");
    }
    Ok(())
}
