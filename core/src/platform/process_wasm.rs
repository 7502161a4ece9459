//! Worker processes in a browser: dedicated Web Workers, each holding its own instance of the
//! lab's wasm module with its own `WebAssembly.Memory` — share-nothing, like a process.
//!
//! Two browser rules shape this:
//! - A worker starts only while its creator returns to its event loop, and a run blocks the
//!   experiment worker. So `web/www/worker.js` starts the process workers when the lab loads
//!   and hands them over with [`register_process_workers`]; [`WorkerProcess::start`] claims a
//!   free one and resets it (Python's `forkserver` start method works alike: a server started
//!   up front forks each worker). When none is free — a pool larger than the lab's set, or a
//!   replacement for one that was killed — it asks the *spawner* ([`register_spawner`],
//!   `web/www/spawner.js`), a helper worker that is never blocked, to start one: the spawner
//!   creates the Web Worker and hands it one end of a `MessageChannel` made here, whose other
//!   end this side keeps and talks through. The new worker joins the registry.
//! - A blocked thread cannot receive messages. Requests go out with `postMessage` (its payload
//!   structured-cloned, or transferred), but each reply is written by the worker into a
//!   *mailbox* in this side's shared memory — two words (state, length) and a data area — and
//!   announced with `Atomics.notify`, which `memory.atomic.wait32` here wakes from.
//!
//! Mailbox states (`web/www/process-worker.js` is the other side):
//!
//! | state | meaning | who moves it on |
//! |---|---|---|
//! | `EMPTY` | no reply waiting | the worker, after writing length and data |
//! | `REPLY` / `FAILED` | a reply / an error text waits in the data area | the parent, after copying it out |
//! | `CLOSED` | the worker was killed: it writes nothing more | the parent, reusing the mailbox after quarantine |
//!
//! The worker writes the data before its `Atomics.store` of the state (sequentially
//! consistent); the parent's acquire load of the state therefore sees the data. A worker with a
//! second reply ready waits (`Atomics.wait`) until the state is `EMPTY` again.
//!
//! A killed worker (`Worker.terminate`, through the spawner for the ones it started) does not
//! always stop at once: Chromium lets one blocked in `Atomics.wait` wake and run on. So the
//! pool closes its mailbox (a worker waiting to write finds `CLOSED` and drops its reply) and
//! quarantines it for a second before another worker gets it.
//!
//! The JavaScript objects live on the experiment worker's thread (the thread that runs
//! `Workload::cell` and `Cell::run`), so the registry is thread-local.

use core::arch::wasm32::{memory_atomic_notify, memory_atomic_wait32};
use std::cell::RefCell;
use std::time::Duration;

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{Delivery, Instant, PlatformError, StartMethod, WorkerAnswer};
use crate::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use crate::sync::{lock, Mutex};

const EMPTY: u32 = 0;
const REPLY: u32 = 1;
const FAILED: u32 = 2;
/// Set by the pool when it kills the worker: a reply waiting to be written is dropped.
const CLOSED: u32 = 3;

/// Largest reply a mailbox holds (a `map` chunk's replies are ~50 bytes per task).
const MAILBOX_BYTES: usize = 1 << 20;
/// How long a claimed worker may take to answer its reset (a spawned one: to load), and any reply.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a killed worker's mailbox rests before another worker gets it.
const QUARANTINE: Duration = Duration::from_secs(1);
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

#[wasm_bindgen]
extern "C" {
    /// Where requests go: a dedicated Web Worker, or this side's end of a `MessageChannel` to
    /// one the spawner started (both post alike).
    type Endpoint;

    #[wasm_bindgen(method, catch, js_name = postMessage)]
    fn post_message(this: &Endpoint, message: &JsValue, transfer: &JsValue) -> Result<(), JsValue>;

    /// `worker.js`'s `Worker.kill`: `terminate`, counted as a kill rather than a leak.
    #[wasm_bindgen(method)]
    fn kill(this: &Endpoint);

    #[wasm_bindgen(js_name = MessageChannel)]
    type Channel;

    #[wasm_bindgen(constructor, js_class = MessageChannel)]
    fn new() -> Channel;

    #[wasm_bindgen(method, getter)]
    fn port1(this: &Channel) -> Endpoint;

    #[wasm_bindgen(method, getter)]
    fn port2(this: &Channel) -> JsValue;
}

struct Slot {
    endpoint: Endpoint,
    /// The spawner's number for a worker it started; `None` for one `worker.js` started.
    spawned: Option<u32>,
    free: bool,
    /// The mailbox of the worker's last pool, kept for the next: a claim allocates none.
    mailbox: Option<Box<Mailbox>>,
}

/// The spawner and the module its workers load.
struct Spawner {
    worker: Endpoint,
    module: JsValue,
    started: u32,
}

/// Workers killed so far, for the page's health report.
static KILLED: AtomicU32 = AtomicU32::new(0);

/// How many process workers pools have killed (broken-pool's, on purpose).
pub fn killed_process_workers() -> u32 {
    KILLED.load(Ordering::Relaxed)
}

thread_local! {
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
    static SPAWNER: RefCell<Option<Spawner>> = const { RefCell::new(None) };
    /// Killed workers' mailboxes, with when they were killed.
    static QUARANTINED: RefCell<Vec<(Instant, Box<Mailbox>)>> = const { RefCell::new(Vec::new()) };
}

/// Hands the process workers `web/www/worker.js` started (each with its wasm instance loaded)
/// to this thread.
pub fn register_process_workers(workers: Array) {
    SLOTS.with_borrow_mut(|slots| {
        slots.extend(workers.iter().map(|worker| Slot {
            endpoint: worker.unchecked_into(),
            spawned: None,
            free: true,
            mailbox: None,
        }))
    });
}

/// Hands over the spawner (`web/www/spawner.js`) and the compiled module its workers load.
pub fn register_spawner(spawner: JsValue, module: JsValue) {
    SPAWNER.with_borrow_mut(|slot| *slot = Some(Spawner { worker: spawner.unchecked_into(), module, started: 0 }));
}

/// Asks the spawner for a new process worker: the registry's new slot, taken.
fn spawn() -> Result<usize, PlatformError> {
    let spawned = SPAWNER.with_borrow_mut(|spawner| {
        let spawner = spawner.as_mut()?;
        spawner.started += 1;
        let channel = Channel::new();
        let port = channel.port2();
        let request = message(
            "spawn",
            &[("id", JsValue::from(spawner.started)), ("module", spawner.module.clone()), ("port", port.clone())],
        );
        Some(
            spawner
                .worker
                .post_message(&request, &Array::of1(&port))
                .map(|()| (channel.port1(), spawner.started))
                .map_err(|error| js_failure("could not ask the spawner for a worker", error)),
        )
    });
    let (endpoint, id) = spawned.ok_or_else(|| unavailable("no spawner was registered"))??;
    Ok(SLOTS.with_borrow_mut(|slots| {
        slots.push(Slot { endpoint, spawned: Some(id), free: false, mailbox: None });
        slots.len() - 1
    }))
}

/// A mailbox for a claim: the slot's own, a quarantined one that has rested, or a new one.
fn mailbox_for(kept: Option<Box<Mailbox>>) -> Box<Mailbox> {
    let rested = || {
        QUARANTINED.with_borrow_mut(|quarantined| {
            let ready = quarantined.iter().position(|(killed, _)| killed.elapsed() >= QUARANTINE)?;
            let (_, mailbox) = quarantined.swap_remove(ready);
            mailbox.words[0].store(EMPTY, Ordering::Release);
            Some(mailbox)
        })
    };
    kept.or_else(rested).unwrap_or_else(|| Mailbox::new(MAILBOX_BYTES))
}

fn unavailable(message: impl Into<String>) -> PlatformError {
    PlatformError::Unavailable(message.into())
}

/// What a killed worker's pool reads from it from then on.
fn terminated() -> PlatformError {
    unavailable("a Web Worker process failed: it was terminated")
}

fn js_failure(what: &str, error: JsValue) -> PlatformError {
    unavailable(format!("{what}: {}", error.as_string().unwrap_or_else(|| format!("{error:?}"))))
}

/// Where a worker's replies land: in this side's (shared) linear memory.
struct Mailbox {
    /// `[state, length]`
    words: [AtomicU32; 2],
    data: Box<[AtomicU8]>,
}

impl Mailbox {
    fn new(capacity: usize) -> Box<Self> {
        Box::new(Self {
            words: [AtomicU32::new(EMPTY), AtomicU32::new(0)],
            data: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
        })
    }
}

/// A Web Worker with its own wasm instance, claimed from the registry until dropped.
pub struct WorkerProcess {
    slot: usize,
    endpoint: Endpoint,
    mailbox: Box<Mailbox>,
    /// Requests sent and not yet answered: the worker may still write the mailbox.
    outstanding: usize,
    /// Killed by [`WorkerProcess::kill`].
    dead: bool,
}

impl WorkerProcess {
    /// `Ok` if a Web Worker process is registered on this thread (none may be free right now).
    pub fn check() -> Result<(), PlatformError> {
        if SLOTS.with_borrow(Vec::is_empty) {
            return Err(unavailable(
                "no Web Worker processes here: the lab starts them after loading (only on a cross-origin isolated \
                 page, and only in its experiment worker)",
            ));
        }
        Ok(())
    }

    /// `Ok` for `spawn`; a browser has no other start method.
    pub fn check_method(method: StartMethod) -> Result<(), PlatformError> {
        match method {
            StartMethod::Spawn => Self::check(),
            StartMethod::Fork | StartMethod::ForkServer => Err(unavailable(
                "Web Workers are spawn-only: a browser cannot fork — every worker starts from its script and a fresh \
                 wasm instance",
            )),
        }
    }

    /// A browser cannot fork, and has no sockets to share: nothing can call this (the listener
    /// type has no values here).
    pub fn fork_sharing(_answer: WorkerAnswer, listener: &super::socket::TcpListener) -> Result<Self, PlatformError> {
        match *listener {}
    }

    /// Starts a worker by `method` (only `spawn` here; `answer` is the one the workers run).
    pub fn start_with(method: StartMethod, _answer: WorkerAnswer) -> Result<Self, PlatformError> {
        Self::check_method(method)?;
        Self::start()
    }

    /// Claims a free worker and resets it (a fresh process as far as its jobs can tell); with
    /// none free, the spawner starts one.
    pub fn start() -> Result<Self, PlatformError> {
        Self::check()?;
        let free = SLOTS.with_borrow(|slots| slots.iter().position(|slot| slot.free));
        let slot = match free {
            Some(slot) => slot,
            None => spawn().map_err(|why| {
                let count = SLOTS.with_borrow(Vec::len);
                unavailable(format!("all {count} Web Worker processes are in use, and another could not start: {why}"))
            })?,
        };
        let (endpoint, mailbox) = SLOTS.with_borrow_mut(|slots| {
            let taken = &mut slots[slot];
            taken.free = false;
            (taken.endpoint.clone().unchecked_into::<Endpoint>(), mailbox_for(taken.mailbox.take()))
        });
        let mut process = Self { slot, endpoint, mailbox, outstanding: 0, dead: false };
        let claim = message(
            "claim",
            &[
                ("parentMemory", wasm_bindgen::memory()),
                ("mailbox", JsValue::from(process.mailbox.words.as_ptr() as u32)),
                ("data", JsValue::from(process.mailbox.data.as_ptr() as u32)),
                ("capacity", JsValue::from(MAILBOX_BYTES as u32)),
            ],
        );
        process.post(&claim, &JsValue::UNDEFINED)?;
        match process.receive_within(START_TIMEOUT)? {
            ready if ready == b"ready" => Ok(process),
            other => Err(unavailable(format!(
                "a Web Worker process answered its claim with {:?}",
                String::from_utf8_lossy(&other)
            ))),
        }
    }

    /// Posts a message and its payload: structured-cloned ([`Delivery::Copy`]) or with the
    /// payload's buffer in the transfer list ([`Delivery::Transfer`]). Either way the payload
    /// is first copied out of this side's memory into a buffer of its own (a view of shared
    /// memory would be shared, not sent).
    pub fn send(&mut self, bytes: &[u8], payload: &[u8], delivery: Delivery) -> Result<(), PlatformError> {
        let payload = Uint8Array::from(payload);
        let transfer = match delivery {
            Delivery::Copy => JsValue::UNDEFINED,
            Delivery::Transfer => Array::of1(&payload.buffer()).into(),
        };
        let request = message("message", &[("message", Uint8Array::from(bytes).into()), ("payload", payload.into())]);
        self.post(&request, &transfer)
    }

    /// Terminates the worker (`Worker.terminate`, through the spawner for one it started): it
    /// stops at once and its replies with it. Its slot is never claimed again; its mailbox is
    /// quarantined.
    pub fn kill(&mut self) {
        let spawned = SLOTS.with_borrow(|slots| slots[self.slot].spawned);
        match spawned {
            Some(id) => SPAWNER.with_borrow(|spawner| {
                if let Some(spawner) = spawner {
                    let _ =
                        spawner.worker.post_message(&message("terminate", &[("id", id.into())]), &JsValue::UNDEFINED);
                }
            }),
            None => self.endpoint.kill(),
        }
        // `terminate` does not stop a worker blocked in `Atomics.wait` — it wakes and runs on
        // (Chromium): one waiting to write a second reply is told the mailbox is closed.
        let state = &self.mailbox.words[0];
        state.store(CLOSED, Ordering::Release);
        // SAFETY: notify only names the address, a word of this instance's shared memory.
        unsafe { memory_atomic_notify(state.as_ptr().cast::<i32>(), u32::MAX) };
        self.dead = true;
        self.outstanding = 0;
        KILLED.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits up to `timeout` until one of `workers` has a reply (or was killed): its index.
    pub fn wait_any(workers: &mut [&mut WorkerProcess], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now().plus(timeout);
        loop {
            if let Some(ready) = workers.iter_mut().position(|worker| worker.dead || worker.reply_ready()) {
                return Some(ready);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let state = &workers[0].mailbox.words[0];
            // SAFETY: as in `receive_within`: waits at most 1 ms on a word of this instance's
            // shared memory; a reply in another mailbox is seen when the wait ends.
            unsafe { memory_atomic_wait32(state.as_ptr().cast::<i32>(), EMPTY as i32, 1_000_000) };
        }
    }

    /// Whether a reply is waiting in the mailbox, so [`WorkerProcess::receive`] would not block:
    /// for a caller that must not block, an event loop polling.
    pub fn reply_ready(&mut self) -> bool {
        self.mailbox.words[0].load(Ordering::Acquire) != EMPTY
    }

    /// The next reply, in order.
    pub fn receive(&mut self) -> Result<Vec<u8>, PlatformError> {
        self.receive_within(REPLY_TIMEOUT)
    }

    /// Places `bytes` in the worker's own memory, where its answers read them in place: sent
    /// once (structured-cloned), copied into a region the worker allocates, and acknowledged.
    pub fn share(&mut self, bytes: &[u8]) -> Result<(), PlatformError> {
        self.post(&message("share", &[("bytes", Uint8Array::from(bytes).into())]), &JsValue::UNDEFINED)?;
        self.receive().map(drop)
    }

    fn post(&mut self, message: &JsValue, transfer: &JsValue) -> Result<(), PlatformError> {
        if self.dead {
            return Err(terminated());
        }
        self.endpoint
            .post_message(message, transfer)
            .map_err(|error| js_failure("postMessage to a worker process failed", error))?;
        self.outstanding += 1;
        Ok(())
    }

    fn receive_within(&mut self, timeout: Duration) -> Result<Vec<u8>, PlatformError> {
        if self.dead {
            return Err(terminated());
        }
        let [state, len] = &self.mailbox.words;
        let deadline = Instant::now().plus(timeout);
        loop {
            match state.load(Ordering::Acquire) {
                EMPTY if Instant::now() >= deadline => {
                    return Err(unavailable(format!(
                        "a Web Worker process did not answer within {} s",
                        timeout.as_secs()
                    )))
                }
                EMPTY => {
                    // SAFETY: `state` lives in this instance's shared linear memory for as long as
                    // `self`; the instruction only reads it. Waits at most 100 ms (in ns).
                    unsafe { memory_atomic_wait32(state.as_ptr().cast::<i32>(), EMPTY as i32, 100_000_000) };
                }
                outcome => {
                    let length = (len.load(Ordering::Relaxed) as usize).min(MAILBOX_BYTES);
                    let bytes: Vec<u8> =
                        self.mailbox.data[..length].iter().map(|b| b.load(Ordering::Relaxed)).collect();
                    state.store(EMPTY, Ordering::Release);
                    // SAFETY: as above; notify only names the address.
                    unsafe { memory_atomic_notify(state.as_ptr().cast::<i32>(), 1) };
                    self.outstanding -= 1;
                    let text = || String::from_utf8_lossy(&bytes).into_owned();
                    return match outcome {
                        REPLY => Ok(bytes),
                        FAILED => Err(unavailable(format!("a Web Worker process failed: {}", text()))),
                        other => Err(unavailable(format!("a Web Worker process wrote mailbox state {other}"))),
                    };
                }
            }
        }
    }
}

impl Drop for WorkerProcess {
    /// Collects unanswered replies (the worker would write them into this mailbox) and gives
    /// the worker back. One that does not answer in time is killed.
    fn drop(&mut self) {
        while !self.dead && self.outstanding > 0 {
            let before = self.outstanding;
            let _ = self.receive_within(START_TIMEOUT);
            if self.outstanding == before {
                self.kill();
            }
        }
        let mailbox = std::mem::replace(&mut self.mailbox, Mailbox::new(0));
        if self.dead {
            QUARANTINED.with_borrow_mut(|quarantined| quarantined.push((Instant::now(), mailbox)));
            return;
        }
        // Every reply is collected: the mailbox is EMPTY and nobody writes it any more.
        SLOTS.with_borrow_mut(|slots| {
            slots[self.slot].mailbox = Some(mailbox);
            slots[self.slot].free = true;
        });
    }
}

/// `{type, ...fields}` as a JavaScript object.
fn message(kind: &str, fields: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    let set = |key: &str, value: &JsValue| {
        Reflect::set(&object, &JsValue::from_str(key), value).expect("setting a plain object's property")
    };
    set("type", &JsValue::from_str(kind));
    for (key, value) in fields {
        set(key, value);
    }
    object.into()
}

/// The bytes a parent placed in this worker's memory with [`WorkerProcess::share`].
static SHARED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// In a worker: whether its parent has spoken again. A browser's process workers answer one
/// message at a time and are never told to stop mid-answer: never.
pub fn parent_spoke() -> bool {
    false
}

/// In a process worker: the answer to a message (see [`WorkerAnswer`]).
pub fn answer_as_worker(message: &[u8], payload: &[u8], answer: WorkerAnswer) -> Vec<u8> {
    answer(message, payload, &lock(&SHARED))
}

/// In a process worker: replaces the shared region with a copy of `bytes` (none: forget it,
/// as a claim does).
pub fn share_as_worker(bytes: &[u8]) {
    *lock(&SHARED) = bytes.to_vec();
}

pub(super) fn check_delivery(_: Delivery) -> Result<(), PlatformError> {
    Ok(())
}

/// Browsers expose no CPU clock.
pub(super) fn cpu_time() -> Option<Duration> {
    None
}
