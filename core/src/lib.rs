//! conlab-core: the primitives the concurrency lab teaches — locks, `threading` primitives,
//! data structures, schedulers, the asyncio-style loop, the Python model, kernels, the
//! deterministic scheduler — and what they stand on.
//!
//! See ARCHITECTURE.md at the repository root for the map. In short: [`platform`] is the only
//! module that knows whether it runs natively or in a browser worker; [`sync`] is the only door
//! for atomics and locks; [`stats`], [`trace`] and [`units`] are what experiments measure with.
//! This crate knows no experiment (they live in `conlab-lab`, which depends on it) and touches
//! neither the DOM nor the terminal.

// wasm builds are nightly-only anyway (build-std, atomics); the futex intrinsics are still gated.
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod aio;
pub mod ds;
pub mod hash;
pub mod kernels;
pub mod locks;
pub mod net;
pub mod platform;
pub mod prims;
pub mod profile;
pub mod pymodel;
pub mod resil;
pub mod sched;
pub mod sim;
pub mod stats;
pub mod sync;
pub mod trace;
pub mod units;
