//! The lab from outside: one test binary (one link on two cores) with a module per suite.
//! `cli` runs with `cargo test`; the others need a release build and a browser and are
//! `#[ignore]`d: `cargo xtask test` runs `browser::`, `cargo xtask bench` the two side-by-side
//! benchmarks, each by its module path.

mod browser;
mod cli;
mod cluster;
mod steal_vs_rayon;
mod wasm_vs_native;
