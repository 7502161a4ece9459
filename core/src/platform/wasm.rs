//! wasm32 backend: Web Workers started by wasm-bindgen-rayon, `performance.now()`.
//!
//! The web crate starts the worker pool (`initThreadPool`) and then calls
//! [`register_worker_pool`]; until it does, teams are limited to the calling thread. Everything
//! here runs in dedicated workers, where `memory.atomic.wait32` (std's `Condvar`, `sleep`) is
//! allowed; a page's main thread must never call into it.

#![allow(clippy::disallowed_methods, reason = "the platform layer is the one door to std's clock, threads and sleep")]

use std::cell::Cell;
use std::time::Duration;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;

use super::{PlatformError, TeamMember};
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{lock, Arc, Condvar, Mutex};

pub(super) const PLATFORM_NAME: &str = "wasm32 (browser worker)";
pub(super) const TEAM_LIMIT_REASON: &str =
    "a team runs on the page's worker pool; without cross-origin isolation there is no pool";

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Size of the wasm-bindgen-rayon worker pool, 0 until [`register_worker_pool`].
static POOL_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Records that wasm-bindgen-rayon's pool of `threads` workers is running.
pub fn register_worker_pool(threads: usize) {
    POOL_THREADS.store(threads, Ordering::Release);
}

fn global_property(path: &[&str]) -> Option<JsValue> {
    let mut value: JsValue = js_sys::global().into();
    for key in path {
        value = Reflect::get(&value, &JsValue::from_str(key)).ok()?;
        if value.is_undefined() {
            return None;
        }
    }
    Some(value)
}

/// `performance.now()` counts from each worker's own `timeOrigin`; adding it gives one time base
/// for all workers. The sum is ~1.8e12 ms, where an f64 still resolves 0.25 µs — finer than the
/// browser's coarsened clock (5 µs when cross-origin isolated).
fn absolute_ms() -> f64 {
    thread_local! {
        static TIME_ORIGIN: Cell<Option<f64>> = const { Cell::new(None) };
    }
    let origin = TIME_ORIGIN.with(|cell| {
        cell.get().unwrap_or_else(|| {
            let origin = global_property(&["performance", "timeOrigin"]).and_then(|v| v.as_f64()).unwrap_or(0.0);
            cell.set(Some(origin));
            origin
        })
    });
    origin + performance_now()
}

pub(super) const CODE_WARMS_UP: bool = true;

pub(super) fn since_epoch() -> Duration {
    static EPOCH_MS_BITS: AtomicU64 = AtomicU64::new(0);
    let now = absolute_ms();
    // A load first: a compare-exchange is a write to the line every worker reads the clock
    // through, and two threads timing at once would bounce it between their cores.
    let epoch = match EPOCH_MS_BITS.load(Ordering::Acquire) {
        0 => match EPOCH_MS_BITS.compare_exchange(0, now.to_bits(), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => now,
            Err(bits) => f64::from_bits(bits),
        },
        bits => f64::from_bits(bits),
    };
    Duration::from_secs_f64(((now - epoch) / 1000.0).max(0.0))
}

/// A page opens no files of its own: no limit to name.
pub(super) fn open_files_limit() -> Option<u64> {
    None
}

pub(super) fn hardware_threads() -> usize {
    global_property(&["navigator", "hardwareConcurrency"]).and_then(|v| v.as_f64()).map_or(1, |n| n as usize)
}

pub(super) fn max_team_threads() -> usize {
    POOL_THREADS.load(Ordering::Acquire).max(1)
}

pub(super) fn sleep(duration: Duration) {
    // std implements this with `memory.atomic.wait32`, allowed in workers.
    std::thread::sleep(duration)
}

pub(super) fn yield_now() {
    // A Web Worker cannot give up its time slice; the browser's OS threads are preempted anyway.
    std::hint::spin_loop()
}

pub(super) fn system() -> String {
    global_property(&["navigator", "userAgent"]).and_then(|v| v.as_string()).unwrap_or_else(|| "unknown browser".into())
}

/// A page cannot read its process's memory (`performance.memory` is Chromium's JavaScript heap
/// only).
pub(super) fn memory_use() -> Option<super::MemoryUse> {
    None
}

/// wasm's memory only grows; there is nothing to hand back.
pub(super) fn release_free_memory() {}

pub(super) fn cross_origin_isolated() -> bool {
    global_property(&["crossOriginIsolated"]).and_then(|v| v.as_bool()).unwrap_or(false)
}

pub(super) fn pool_started() -> bool {
    POOL_THREADS.load(Ordering::Acquire) > 0
}

/// A team of one runs inline; a larger team is one `rayon::broadcast` over the pool in which the
/// workers with index ≥ `threads` return at once. broadcast runs exactly one job per worker, so
/// the members are live at the same time. (Panics abort in wasm: panic=abort.)
pub(super) fn run_team(threads: usize, body: &(dyn Fn(TeamMember) + Sync)) -> Result<(), PlatformError> {
    if threads == 1 && !pool_started() {
        body(TeamMember { index: 0, size: 1 });
        return Ok(());
    }
    rayon::broadcast(|context| {
        if context.index() < threads {
            body(TeamMember { index: context.index(), size: threads });
        }
    });
    Ok(())
}

pub(super) fn spawn_and_join(_: Box<dyn FnOnce() + Send>) -> Result<(), PlatformError> {
    Err(PlatformError::Unavailable(
        "a browser cannot start a thread and wait for it: a Web Worker only starts once its creator returns to its \
         event loop, which is why conlab starts its worker pool up front"
            .into(),
    ))
}

pub(super) struct RayonBackend {
    threads: usize,
}

impl RayonBackend {
    pub(super) fn new(threads: usize) -> Result<Self, PlatformError> {
        if !pool_started() {
            return Err(PlatformError::Unavailable(
                "rayon needs the worker pool, which starts only on a cross-origin isolated page".into(),
            ));
        }
        Ok(Self { threads })
    }

    /// Runs `op` on one of the pool's workers, as a native pool's `install` does, while the
    /// caller waits. Called from the experiment's worker, outside the pool, every parallel
    /// section of `op` would otherwise be injected into the pool and the caller woken at its end:
    /// ~3 `Atomics.wait` wake-ups a section, 0.1–0.25 ms each on our 2-core machine, where a
    /// section started inside the pool wakes at most its idle peer. Game of life's 16
    /// generations went from 0.77 to 0.91 of twice one worker's speed (8 alternated pairs).
    pub(super) fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        let surplus = rayon::current_num_threads().saturating_sub(self.threads);
        let _parked = ParkedWorkers::occupy(surplus);
        rayon::scope(|_| op())
    }
}

/// Holds `count` pool workers blocked on a gate until dropped, so they take no rayon jobs.
struct ParkedWorkers {
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    /// (workers parked so far, gate open)
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl ParkedWorkers {
    fn occupy(count: usize) -> Self {
        let gate = Arc::new(Gate::default());
        for _ in 0..count {
            let gate = Arc::clone(&gate);
            // A worker blocked here cannot take a second job, so `count` distinct workers park.
            rayon::spawn(move || {
                let mut state = lock(&gate.state);
                state.0 += 1;
                gate.changed.notify_all();
                while !state.1 {
                    state = gate.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            });
        }
        let mut state = lock(&gate.state);
        while state.0 < count {
            state = gate.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        Self { gate }
    }
}

impl Drop for ParkedWorkers {
    fn drop(&mut self) {
        lock(&self.gate.state).1 = true;
        self.gate.changed.notify_all();
    }
}
