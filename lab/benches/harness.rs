//! Harness overhead, natively: the probe of `support/probe.rs` (what the runner costs per run,
//! as a share of a 1 ms and a 10 ms cell). Its browser twin is `lab/tests/wasm.rs`'s ignored
//! `harness_overhead_in_a_browser_worker`; `cargo xtask bench` runs both.
//!
//! `cargo bench -p conlab-lab --bench harness` (or `cargo xtask bench`).

#[path = "support/probe.rs"]
mod probe;

fn main() {
    for row in probe::overhead_table() {
        println!("{row}");
    }
}
