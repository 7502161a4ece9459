//! conlab-core: the concurrency lab's engine.
//!
//! See ARCHITECTURE.md at the repository root for the map. In short: [`platform`] is the only
//! module that knows whether it runs natively or in a browser worker; [`sync`] is the only door
//! for atomics and locks; [`experiment`] holds the registry and the runner; [`aio`] is the
//! asyncio-style event loop; [`kernels`],
//! [`stats`] and [`trace`] are what experiments are built from; [`report`] renders results.
//! Nothing here touches the DOM or the terminal.

// wasm builds are nightly-only anyway (build-std, atomics); the futex intrinsics are still gated.
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod aio;
pub mod ds;
pub mod experiment;
pub mod kernels;
pub mod locks;
pub mod platform;
pub mod prims;
pub mod pymodel;
pub mod report;
pub mod sched;
pub mod sim;
pub mod stats;
pub mod sync;
pub mod trace;
