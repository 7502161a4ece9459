//! A benchmark, not a test of speed: every kernel of the catalogue (the `scaling` experiment)
//! natively (release `conlab`) and in headless Chromium (the release web build), alternated in
//! pairs within one run so that the machine's drift lands on both sides; prints per kernel the
//! wasm/native time ratio at 1 thread (seq) and at 2 threads (rayon), and each side's
//! efficiency at 2 threads, as medians over the pairs with their spread. Run by
//! `cargo xtask bench`.

use std::collections::BTreeMap;
use std::time::Duration;

use conlab_core::kernels::catalogue;
use conlab_core::stats::Summary;
use conlab_lab::experiment::RunResult;
use conlab_tests::browser::{submit_variants, tempdir, Browser};
use conlab_tests::{conlab_release, root, serve};

/// Alternated pairs per kernel (`CONLAB_PAIRS` to change): three could not tell a 10% gap
/// from the machine's drift.
const PAIRS: usize = 7;

fn pairs() -> usize {
    std::env::var("CONLAB_PAIRS").ok().and_then(|text| text.parse().ok()).unwrap_or(PAIRS)
}
const REPEAT: &str = "3";

fn native_run(kernel: &str) -> RunResult {
    let output = std::process::Command::new(conlab_release())
        .args(["run", "scaling", "--set", &format!("kernel={kernel}"), "--variant", "seq,rayon", "--threads", "1,2"])
        .args(["--repeat", REPEAT, "--warmup", "1", "--format", "json"])
        .output()
        .expect("conlab runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a result")
}

fn browser_run(browser: &Browser, kernel: &str) -> RunResult {
    submit_variants(browser, "scaling", &[("kernel", kernel)], &["seq", "rayon"], "1,2", REPEAT.parse().unwrap());
    assert_eq!(browser.wait_for_status(&["done", "error"], Duration::from_secs(300)), "done", "{:?}", browser.status());
    // The JSON export link holds the full result; execute/sync waits for the returned promise.
    let text = browser.eval("return fetch(document.querySelector('#exports a').href).then(r => r.text());");
    serde_json::from_str(text.as_str().expect("the exported JSON")).expect("a result")
}

fn median_of(result: &RunResult, variant: &str, threads: usize) -> f64 {
    result
        .cell(variant, threads)
        .and_then(|c| c.summary.as_ref())
        .map(|s| s.median)
        .unwrap_or_else(|| panic!("no {variant} × {threads}"))
}

/// "median [min – max]" of `values`.
fn spread(values: &[f64]) -> String {
    let summary = Summary::of(values).expect("measured values");
    format!("{:.2} [{:.2} – {:.2}]", summary.median, summary.min, summary.max)
}

#[test]
#[ignore = "a benchmark: run by `cargo xtask bench`"]
fn kernels_wasm_vs_native_side_by_side() {
    let dist = root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the lab first (cargo xtask bench does)");
    let (_server, url) = serve(&dist);
    let browser = Browser::start(&tempdir("profile-bench"));
    browser.navigate(&url);
    browser.wait_for_status(&["ready"], Duration::from_secs(60));
    conlab_release();

    println!("wasm / native time, and efficiency at 2 threads (rayon vs seq, same side); median [range] over {} alternated pairs", pairs());
    println!(
        "  {:<17} {:<20} {:<20} {:<20} {:<20}",
        "kernel", "wasm/native 1 thread", "wasm/native 2 threads", "efficiency native", "efficiency wasm"
    );
    // CONLAB_KERNELS=a,b measures only those kernels.
    let only = std::env::var("CONLAB_KERNELS").ok();
    for spec in
        catalogue().iter().filter(|spec| only.as_deref().is_none_or(|only| only.split(',').any(|id| id == spec.id)))
    {
        let mut columns: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for pair in 0..pairs() {
            // Alternate which side goes first, so neither always runs on a warmer or cooler machine.
            let (native, wasm) = if pair % 2 == 0 {
                let native = native_run(spec.id);
                (native, browser_run(&browser, spec.id))
            } else {
                let wasm = browser_run(&browser, spec.id);
                (native_run(spec.id), wasm)
            };
            assert!(native.all_checks_passed && wasm.all_checks_passed, "{}", spec.id);
            let efficiency = |result: &RunResult| median_of(result, "seq", 1) / (2.0 * median_of(result, "rayon", 2));
            for (column, value) in [
                median_of(&wasm, "seq", 1) / median_of(&native, "seq", 1),
                median_of(&wasm, "rayon", 2) / median_of(&native, "rayon", 2),
                efficiency(&native),
                efficiency(&wasm),
            ]
            .into_iter()
            .enumerate()
            {
                columns.entry(column).or_default().push(value);
            }
        }
        let cells: Vec<String> = columns.values().map(|values| spread(values)).collect();
        println!("  {:<17} {:<20} {:<20} {:<20} {:<20}", spec.id, cells[0], cells[1], cells[2], cells[3]);
    }
}
