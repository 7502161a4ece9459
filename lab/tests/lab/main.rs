//! conlab-lab natively, end to end through the runner: one test binary (one link on two cores)
//! with a module per concern. The wasm suite is a binary of its own (`wasm.rs`: another target,
//! run in headless Chromium).

#[path = "../common/mod.rs"]
mod common;
mod experiments;
mod gallery;
mod hostile_input;
mod lessons;
mod resilience;

/// Tests whose assertions are laws about timing (a speedup, a latency) run alone: the others
/// share the 2 cores with each other, never with them.
pub(crate) static CORES: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub(crate) fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    CORES.write().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn beside() -> std::sync::RwLockReadGuard<'static, ()> {
    CORES.read().unwrap_or_else(|p| p.into_inner())
}
