//! conlab-web: the browser lab's engine room — a thin shell over conlab-lab and conlab-core.
//!
//! The page (`web/www/app/`, main thread) never runs wasm. It starts one dedicated worker
//! (`web/www/worker.js`) that instantiates this module, starts wasm-bindgen-rayon's worker pool
//! when the page is cross-origin isolated, and calls the functions below. Every value crossing
//! the boundary is JSON of the lab's serde types, so page and CLI read the same result.
//!
//! Cancellation: the worker is busy inside [`run_experiment`] and cannot read messages, so the
//! page writes the cancel flag straight into the shared `WebAssembly.Memory` at
//! [`cancel_flag_address`] (`Atomics.store`). Without cross-origin isolation there is no shared
//! memory to write; the page then terminates the worker and starts a fresh one.

#[cfg(target_arch = "wasm32")]
pub mod worker;

pub mod debugger;
pub mod messages;
