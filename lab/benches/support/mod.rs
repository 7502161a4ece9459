//! What the benchmarks share: running an experiment with its variants interleaved, and printing
//! per-repetition ratios (median and range). Each benchmark uses its own part of it.
#![allow(dead_code)]

use conlab_core::stats::Summary;
use conlab_lab::experiment::{run, CancelFlag, CellResult, RunRequest, RunResult, Session};
use serde_json::Value;

pub const REPEAT: usize = 21;

pub fn measure(experiment: &str, params: &[(&str, Value)], variants: &[&str], threads: usize) -> RunResult {
    let request = RunRequest {
        experiment: experiment.into(),
        params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        variants: Some(variants.iter().map(|v| v.to_string()).collect()),
        threads: Some(vec![threads]),
        repeat: REPEAT,
        warmup: 2,
        trace: false,
        profile: false,
    };
    let result =
        run(&request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).expect("the experiment runs");
    assert!(result.all_checks_passed, "{experiment}: a variant computed a wrong result");
    result
}

/// Median and range of `values`.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let summary = Summary::of(values).expect("measured values");
    (summary.median, summary.min, summary.max)
}

/// Values of one cell per repetition, and the unit they are printed in.
pub type Values<'r> = (Box<dyn Fn(&str) -> Vec<f64> + 'r>, &'static str);

/// Per-repetition ratio of `ours` to `anchor` (times, or a metric): median and range.
pub fn ratio_line(label: &str, result: &RunResult, ours: &str, anchor: &str, (values, unit): Values<'_>) {
    let (mine, theirs) = (values(ours), values(anchor));
    let ratios: Vec<f64> = mine.iter().zip(&theirs).map(|(a, b)| a / b).collect();
    let (median, low, high) = spread(&ratios);
    println!(
        "  {label:<34} {ours} / {anchor}: {median:>5.2}  [{low:.2} – {high:.2}]   ({ours} {:.1} {unit}, {anchor} {:.1} {unit}; {} threads)",
        spread(&mine).0,
        spread(&theirs).0,
        result.threads[0]
    );
}

pub fn cell<'r>(result: &'r RunResult, variant: &str) -> &'r CellResult {
    result.cells.iter().find(|c| c.variant == variant).expect("measured")
}

/// Run times in ms.
pub fn times(result: &RunResult) -> Values<'_> {
    (Box::new(move |variant| cell(result, variant).samples.iter().map(|s| s * 1e3).collect()), "ms")
}

/// A recorded metric, in its own unit.
pub fn metric<'r>(result: &'r RunResult, name: &'r str, unit: &'static str) -> Values<'r> {
    (Box::new(move |variant| cell(result, variant).metrics[name].values.clone()), unit)
}

/// Time per operation in ns, from a throughput metric in millions per second.
pub fn ns_per_op<'r>(result: &'r RunResult, name: &'r str) -> Values<'r> {
    (
        Box::new(move |variant| cell(result, variant).metrics[name].values.iter().map(|mops| 1e3 / mops).collect()),
        "ns/op",
    )
}
