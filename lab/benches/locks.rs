//! Lock benchmark: our parking mutex against `std::sync::Mutex` and `parking_lot::Mutex` in the
//! four contention regimes, and every lock with more threads than cores.
//!
//! It runs the `lock-contention` experiment itself (fixed-duration runs, acquisitions counted),
//! whose runner interleaves the locks repetition by repetition and rotates their order, so the
//! machine's drift (±20% within 100 ms on a shared 2-core box) lands on all sides alike. For
//! each repetition, a lock's time per acquisition is divided by std's from the same repetition;
//! the table gives the median of those ratios and their range (and the same against
//! parking_lot's time). Ratios < 1: faster than std (or parking_lot).
//!
//! `cargo bench -p conlab-core --bench locks` (or `cargo xtask bench`).

use conlab_core::locks::{LockKind, REGIMES};
use conlab_core::platform::hardware_threads;
use conlab_core::stats::Summary;
use conlab_lab::experiment::{run, CancelFlag, RunRequest, RunResult, Session};
use serde_json::json;

const REPEAT: usize = 15;

fn measure(regime: &str, threads: usize, kinds: &[LockKind]) -> RunResult {
    let request = RunRequest {
        experiment: "lock-contention".into(),
        params: [("regime".to_string(), json!(regime)), ("duration_ms".to_string(), json!(30))].into(),
        variants: Some(kinds.iter().map(|k| k.name().to_string()).collect()),
        threads: Some(vec![threads]),
        repeat: REPEAT,
        warmup: 1,
        trace: false,
        profile: false,
    };
    let result =
        run(&request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() }).expect("the experiment runs");
    assert!(result.all_checks_passed, "a lock lost increments");
    result
}

/// Median and range of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let summary = Summary::of(values).expect("measured values");
    (summary.median, summary.min, summary.max)
}

fn report(label: &str, result: &RunResult) {
    let rates = |variant: &str| {
        result.cells.iter().find(|c| c.variant == variant).expect("measured").metrics["acquisitions"].values.clone()
    };
    let std_rates = rates("std");
    let parking_lot_rates = rates("parking_lot");
    println!("\n{label} — {} threads; std: {:.1} M acquisitions/s", result.threads[0], spread(&std_rates).0 / 1e6);
    for cell in &result.cells {
        // time per acquisition / theirs = their rate / this rate, repetition by repetition
        let against = |theirs: &[f64]| {
            let ratios: Vec<f64> = rates(&cell.variant).iter().zip(theirs).map(|(rate, their)| their / rate).collect();
            spread(&ratios)
        };
        let ((median, low, high), (lot, lot_low, lot_high)) = (against(&std_rates), against(&parking_lot_rates));
        println!(
            "  {:<12} time / std: {median:>7.2}  [{low:.2} – {high:.2}]   / parking_lot: {lot:>7.2}  [{lot_low:.2} – {lot_high:.2}]",
            cell.variant
        );
    }
}

fn main() {
    let cores = hardware_threads().max(2);
    println!(
        "lock benchmark: {REPEAT} interleaved repetitions of 30 ms per lock; {} hardware threads",
        hardware_threads()
    );
    for regime in REGIMES {
        report(
            &format!("regime {}", regime.name),
            &measure(regime.name, cores, &[LockKind::Parking, LockKind::Std, LockKind::ParkingLot]),
        );
    }
    // Spinning waiters burn the CPU a preempted holder needs; FIFO spinlocks hand the lock to
    // threads that are not running.
    report("oversubscribed: regime heavy, threads = 2 × cores", &measure("heavy", 2 * cores, &LockKind::ALL));
}
