//! A benchmark, not a test of speed: `mandelbrot` natively (release `conlab`) and in headless
//! Chromium (the release web build), alternated in pairs within one run so that the machine's
//! drift lands on both sides; prints per-cell wasm/native time ratios and each side's speedup
//! at 2 threads as medians over the pairs with their spread. Run by `cargo xtask bench`.

use std::collections::BTreeMap;
use std::time::Duration;

use conlab_core::experiment::RunResult;
use conlab_core::stats::Summary;
use conlab_tests::browser::{submit, tempdir, Browser};
use conlab_tests::{conlab_release, root, serve};

const PAIRS: usize = 5;
const REPEAT: &str = "5";
const CELLS: [(&str, usize); 5] = [("seq", 1), ("team", 1), ("team", 2), ("rayon", 1), ("rayon", 2)];

fn native_run() -> RunResult {
    let output = std::process::Command::new(conlab_release())
        .args(["run", "mandelbrot", "--threads", "1,2", "--repeat", REPEAT, "--warmup", "1", "--format", "json"])
        .output()
        .expect("conlab runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a result")
}

fn browser_run(browser: &Browser) -> RunResult {
    submit(browser, "mandelbrot", &[], "1,2", REPEAT.parse().unwrap());
    assert_eq!(browser.wait_for_status(&["done", "error"], Duration::from_secs(120)), "done", "{:?}", browser.status());
    // The JSON export link holds the full result; execute/sync waits for the returned promise.
    let text = browser.eval("return fetch(document.querySelector('#exports a').href).then(r => r.text());");
    serde_json::from_str(text.as_str().expect("the exported JSON")).expect("a result")
}

fn median_of(result: &RunResult, variant: &str, threads: usize) -> f64 {
    result.cell(variant, threads).and_then(|c| c.summary.as_ref()).map(|s| s.median).unwrap_or_else(|| panic!("no {variant} × {threads}"))
}

/// Median and range of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let summary = Summary::of(values).expect("measured values");
    (summary.median, summary.min, summary.max)
}

#[test]
#[ignore = "a benchmark: run by `cargo xtask bench`"]
fn mandelbrot_wasm_vs_native_side_by_side() {
    let dist = root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the lab first (cargo xtask bench does)");
    let (_server, url) = serve(&dist);
    let browser = Browser::start(&tempdir("profile-bench"));
    browser.navigate(&url);
    browser.wait_for_status(&["ready"], Duration::from_secs(60));
    conlab_release();

    let mut ratios: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    let mut speedups: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for pair in 0..PAIRS {
        // Alternate which side goes first, so neither always runs on a warmer or cooler machine.
        let (native, wasm) = if pair % 2 == 0 {
            let native = native_run();
            (native, browser_run(&browser))
        } else {
            let wasm = browser_run(&browser);
            (native_run(), wasm)
        };
        assert!(native.all_checks_passed && wasm.all_checks_passed);
        for (variant, threads) in CELLS {
            ratios.entry((variant, threads)).or_default().push(median_of(&wasm, variant, threads) / median_of(&native, variant, threads));
        }
        for (side, result) in [("native", &native), ("wasm", &wasm)] {
            for variant in ["team", "rayon"] {
                speedups.entry((side, variant)).or_default().push(median_of(result, "seq", 1) / median_of(result, variant, 2));
            }
        }
        println!(
            "pair {}: seq native {:.1} ms, wasm {:.1} ms; rayon×2 native {:.1} ms, wasm {:.1} ms",
            pair + 1,
            median_of(&native, "seq", 1) * 1e3,
            median_of(&wasm, "seq", 1) * 1e3,
            median_of(&native, "rayon", 2) * 1e3,
            median_of(&wasm, "rayon", 2) * 1e3
        );
    }
    println!("\nwasm / native time ratio, median over {PAIRS} alternated pairs [min – max]:");
    for ((variant, threads), values) in &mut ratios {
        let (median, min, max) = spread(values);
        println!("  {variant:<5} {threads} thread(s): {median:.2} [{min:.2} – {max:.2}]");
    }
    println!("\nspeedup at 2 threads vs seq (same side), median [min – max]:");
    for ((side, variant), values) in &mut speedups {
        let (median, min, max) = spread(values);
        println!("  {side:<6} {variant:<5}: {median:.2}× [{min:.2} – {max:.2}]");
    }
}
