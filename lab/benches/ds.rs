//! Data-structure benchmark: our Vyukov ring against crossbeam's `ArrayQueue` (the same
//! algorithm), our channel against crossbeam's bounded channel, and our Michael–Scott queue
//! against crossbeam's `SegQueue` (both unbounded and lock-free), in the `queue-shootout`
//! experiment, the variants interleaved repetition by repetition; each repetition's ratio of time per item (ours / crossbeam), median [range].
//! Ratios < 1: ours is faster. With 4 threads (2P2C, 3P1C) on 2 cores the polling threads
//! oversubscribe the machine, so those ratios swing widely.
//!
//! `cargo bench -p conlab-core --bench ds` (or `cargo xtask bench`).

use serde_json::json;

mod support;

use support::{measure, ns_per_op, ratio_line, REPEAT};

fn main() {
    println!("data-structure benchmark: {REPEAT} interleaved repetitions");
    let variants = ["ring", "crossbeam-array", "channel", "crossbeam-channel", "ms-queue", "crossbeam-seg"];
    let result = measure("queue-shootout", &[("items", json!(200_000)), ("capacity", json!(1024))], &variants, 1);
    for shape in ["1P1C", "2P2C", "3P1C"] {
        ratio_line(&format!("MPMC ring, {shape}"), &result, "ring", "crossbeam-array", ns_per_op(&result, shape));
        ratio_line(&format!("channel, {shape}"), &result, "channel", "crossbeam-channel", ns_per_op(&result, shape));
        ratio_line(
            &format!("unbounded MPMC queue, {shape}"),
            &result,
            "ms-queue",
            "crossbeam-seg",
            ns_per_op(&result, shape),
        );
    }
}
