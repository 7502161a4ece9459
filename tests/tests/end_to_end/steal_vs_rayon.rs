//! A benchmark, not a test of speed: our StealPool against rayon, natively (release `conlab`)
//! and in headless Chromium (the release web build), on the same experiments the native
//! `sched` bench uses. Each side's runner interleaves the two variants repetition by repetition;
//! the ratio steal / rayon is taken per repetition and reported as the median with its range.
//! Run by `cargo xtask bench`.

use std::time::Duration;

use conlab_core::stats::Summary;
use conlab_lab::experiment::RunResult;
use conlab_tests::browser::{submit_variants, tempdir, Browser};
use conlab_tests::{conlab_release, root, serve};

const REPEAT: u32 = 15;
const THREADS: &str = "2";
const CASES: [(&str, &[(&str, &str)]); 3] =
    [("fork-join", &[("problem", "fib")]), ("fork-join", &[("problem", "quicksort")]), ("mandelbrot", &[])];

fn native_run(experiment: &str, params: &[(&str, &str)]) -> RunResult {
    let mut command = std::process::Command::new(conlab_release());
    command.args([
        "run",
        experiment,
        "--variant",
        "steal",
        "--variant",
        "rayon",
        "--threads",
        THREADS,
        "--warmup",
        "2",
    ]);
    command.args(["--repeat", &REPEAT.to_string(), "--format", "json"]);
    for (name, value) in params {
        command.args(["--set", &format!("{name}={value}")]);
    }
    let output = command.output().expect("conlab runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a result")
}

fn browser_run(browser: &Browser, experiment: &str, params: &[(&str, &str)]) -> RunResult {
    submit_variants(browser, experiment, params, &["steal", "rayon"], THREADS, REPEAT);
    assert_eq!(browser.wait_for_status(&["done", "error"], Duration::from_secs(300)), "done", "{:?}", browser.status());
    let text = browser.eval("return fetch(document.querySelector('#exports a').href).then(r => r.text());");
    serde_json::from_str(text.as_str().expect("the exported JSON")).expect("a result")
}

fn samples(result: &RunResult, variant: &str) -> Vec<f64> {
    result.cells.iter().find(|c| c.variant == variant).unwrap_or_else(|| panic!("no {variant} cell")).samples.clone()
}

fn report(side: &str, label: &str, result: &RunResult) {
    assert!(result.all_checks_passed, "{side} {label}: wrong result");
    let (steal, rayon) = (samples(result, "steal"), samples(result, "rayon"));
    let ratios: Vec<f64> = steal.iter().zip(&rayon).map(|(a, b)| a / b).collect();
    let summary = Summary::of(&ratios).expect("samples");
    let median = |v: &[f64]| Summary::of(v).expect("samples").median * 1e3;
    println!(
        "  {side:<8} {label:<24} steal / rayon: {:.2} [{:.2} – {:.2}]  (steal {:.1} ms, rayon {:.1} ms)",
        summary.median,
        summary.min,
        summary.max,
        median(&steal),
        median(&rayon)
    );
}

#[test]
#[ignore = "a benchmark: run by `cargo xtask bench`"]
fn steal_pool_vs_rayon_natively_and_in_chromium() {
    let dist = root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the lab first (cargo xtask bench does)");
    let (_server, url) = serve(&dist);
    let browser = Browser::start(&tempdir("profile-steal-bench"));
    browser.navigate(&url);
    browser.wait_for_status(&["ready"], Duration::from_secs(60));
    println!("\nStealPool vs rayon, {THREADS} threads, {REPEAT} interleaved repetitions (< 1: ours faster):");
    for (experiment, params) in CASES {
        let label = params.first().map_or(experiment.to_string(), |(_, value)| format!("{experiment} {value}"));
        report("native", &label, &native_run(experiment, params));
        report("chromium", &label, &browser_run(&browser, experiment, params));
    }
}
