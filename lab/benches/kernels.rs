//! Kernel benchmark: every kernel of the catalogue through the `scaling` experiment, `seq` and
//! the three parallel variants at 2 threads interleaved repetition by repetition. Prints each
//! repetition's parallel efficiency at 2 threads, T(seq) / (2 · T(variant)), as a median
//! [range]: 1.0 is a perfect doubling. The target for mandelbrot and matrix multiply is ≥ 0.9.
//!
//! `cargo bench -p conlab-core --bench kernels` (or `cargo xtask bench`).

use conlab_core::kernels::catalogue;
use serde_json::json;

mod support;

use support::{cell, measure, spread, REPEAT};

fn main() {
    println!("kernel benchmark: efficiency at 2 threads vs seq, {REPEAT} interleaved repetitions, median [range]");
    println!("  {:<17} {:>9}  {:<22} {:<22} {:<22}", "kernel", "seq", "team", "rayon", "steal");
    for spec in catalogue() {
        let result = measure("scaling", &[("kernel", json!(spec.id))], &["seq", "team", "rayon", "steal"], 2);
        let seq = &cell(&result, "seq").samples;
        let efficiency = |variant: &str| -> String {
            let parallel = &cell(&result, variant).samples;
            let values: Vec<f64> = seq.iter().zip(parallel).map(|(one, two)| one / (2.0 * two)).collect();
            let (median, low, high) = spread(&values);
            format!("{median:.2} [{low:.2} – {high:.2}]")
        };
        println!(
            "  {:<17} {:>6.1} ms  {:<22} {:<22} {:<22}",
            spec.id,
            spread(&seq.iter().map(|s| s * 1e3).collect::<Vec<_>>()).0,
            efficiency("team"),
            efficiency("rayon"),
            efficiency("steal")
        );
    }
}
