//! conlab-core's primitives from outside the crate, natively: one test binary (one link on two
//! cores) with a module per room. The loom models are a binary of their own (`loom.rs`: they
//! build with `--cfg loom`); the wasm suite is the lab's (`lab/tests/wasm.rs`).

mod aio;
mod loop_steps;
mod net;
mod prims;
mod resil;
mod sim;
