//! Worker processes in a browser: dedicated Web Workers, each holding its own instance of the
//! lab's wasm module with its own `WebAssembly.Memory` — share-nothing, like a process.
//!
//! Two browser rules shape this:
//! - A worker starts only while its creator returns to its event loop, and a run blocks the
//!   experiment worker. So `web/www/worker.js` starts the process workers when the lab loads
//!   and hands them over with [`register_process_workers`]; [`WorkerProcess::start`] claims a
//!   free one and resets it (Python's `forkserver` start method works alike: a server started
//!   up front forks each worker).
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
//!
//! The worker writes the data before its `Atomics.store` of the state (sequentially
//! consistent); the parent's acquire load of the state therefore sees the data. A worker with a
//! second reply ready waits (`Atomics.wait`) until the state is `EMPTY` again.
//!
//! The JavaScript objects live on the experiment worker's thread (the thread that runs
//! `Workload::cell` and `Cell::run`), so the registry is thread-local.

use core::arch::wasm32::{memory_atomic_notify, memory_atomic_wait32};
use std::cell::RefCell;
use std::time::Duration;

use js_sys::{Array, Object, Reflect, Uint8Array, WebAssembly};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{Delivery, Instant, PlatformError, StartMethod, WorkerAnswer};
use crate::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use crate::sync::{lock, Mutex};

const EMPTY: u32 = 0;
const REPLY: u32 = 1;
const FAILED: u32 = 2;

/// Largest reply a mailbox holds (a `map` chunk's replies are ~50 bytes per task).
const MAILBOX_BYTES: usize = 1 << 20;
/// How long a claimed worker may take to answer its reset, and any reply.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

#[wasm_bindgen]
extern "C" {
    /// A dedicated Web Worker (the two methods used here).
    #[wasm_bindgen(js_name = Worker)]
    type WebWorker;

    #[wasm_bindgen(method, catch, js_name = postMessage)]
    fn post_message(this: &WebWorker, message: &JsValue, transfer: &JsValue) -> Result<(), JsValue>;

    #[wasm_bindgen(method)]
    fn terminate(this: &WebWorker);
}

struct Slot {
    worker: WebWorker,
    /// The worker's own memory (shared, so this side can place bytes in it).
    memory: WebAssembly::Memory,
    free: bool,
    /// The mailbox of the worker's last pool, kept for the next: a claim allocates none.
    mailbox: Option<Box<Mailbox>>,
}

thread_local! {
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// Hands the process workers `web/www/worker.js` started (each with its wasm instance loaded)
/// to this thread: `workers[i]` with its memory `memories[i]`.
pub fn register_process_workers(workers: Array, memories: Array) {
    SLOTS.with_borrow_mut(|slots| {
        slots.extend(workers.iter().zip(memories.iter()).map(|(worker, memory)| Slot {
            worker: worker.unchecked_into(),
            memory: memory.unchecked_into(),
            free: true,
            mailbox: None,
        }))
    });
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
    worker: WebWorker,
    memory: WebAssembly::Memory,
    mailbox: Box<Mailbox>,
    /// Requests sent and not yet answered: the worker may still write the mailbox.
    outstanding: usize,
    /// Terminated by [`WorkerProcess::kill`].
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

    /// Starts a worker by `method` (only `spawn` here; `answer` is the one the workers run).
    pub fn start_with(method: StartMethod, _answer: WorkerAnswer) -> Result<Self, PlatformError> {
        Self::check_method(method)?;
        Self::start()
    }

    /// Claims a free worker and resets it (a fresh process as far as its jobs can tell).
    pub fn start() -> Result<Self, PlatformError> {
        Self::check()?;
        let claimed = SLOTS.with_borrow_mut(|slots| {
            let count = slots.len();
            let (slot, free) = slots.iter_mut().enumerate().find(|(_, slot)| slot.free).ok_or_else(|| {
                unavailable(format!(
                    "all {count} Web Worker processes are in use (the lab starts that many when it loads)"
                ))
            })?;
            free.free = false;
            let mailbox = free.mailbox.take().unwrap_or_else(|| Mailbox::new(MAILBOX_BYTES));
            Ok::<_, PlatformError>((
                slot,
                free.worker.clone().unchecked_into::<WebWorker>(),
                free.memory.clone(),
                mailbox,
            ))
        })?;
        let (slot, worker, memory, mailbox) = claimed;
        let mut process = Self { slot, worker, memory, mailbox, outstanding: 0, dead: false };
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
        process.receive_within(START_TIMEOUT)?;
        Ok(process)
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

    /// Terminates the worker (`Worker.terminate`): it stops at once and its replies with it.
    /// Its slot stays taken and its mailbox is leaked, never reused under a writer that might
    /// still be finishing: the lab's pool of Web Worker processes is one smaller until reload.
    pub fn kill(&mut self) {
        self.worker.terminate();
        self.dead = true;
        self.outstanding = 0;
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

    /// Places `bytes` in the worker's own memory, where its answers read them in place: the
    /// worker allocates the region and replies with its address; this side writes into it
    /// through the worker's `SharedArrayBuffer`.
    pub fn share(&mut self, bytes: &[u8]) -> Result<(), PlatformError> {
        self.post(&message("share", &[("len", JsValue::from(bytes.len() as u32))]), &JsValue::UNDEFINED)?;
        let reply = self.receive()?;
        let address = u32::from_le_bytes(
            reply.try_into().map_err(|_| unavailable("a worker sent no address for the shared region"))?,
        );
        let buffer = self.memory.buffer();
        Uint8Array::new_with_byte_offset_and_length(&buffer, address, bytes.len() as u32).copy_from(bytes);
        Ok(())
    }

    fn post(&mut self, message: &JsValue, transfer: &JsValue) -> Result<(), PlatformError> {
        if self.dead {
            return Err(terminated());
        }
        self.worker
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
    /// the worker back. One that does not answer in time is terminated and its mailbox leaked,
    /// never freed under a writer; its slot stays taken.
    fn drop(&mut self) {
        if self.dead {
            Box::leak(std::mem::replace(&mut self.mailbox, Mailbox::new(0)));
            return;
        }
        while self.outstanding > 0 {
            let before = self.outstanding;
            let _ = self.receive_within(START_TIMEOUT);
            if self.outstanding == before {
                self.worker.terminate();
                Box::leak(std::mem::replace(&mut self.mailbox, Mailbox::new(0)));
                return;
            }
        }
        // Every reply is collected: the mailbox is EMPTY and nobody writes it any more.
        let mailbox = std::mem::replace(&mut self.mailbox, Mailbox::new(0));
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

/// In a process worker: the answer to a message (see [`WorkerAnswer`]).
pub fn answer_as_worker(message: &[u8], payload: &[u8], answer: WorkerAnswer) -> Vec<u8> {
    answer(message, payload, &lock(&SHARED))
}

/// In a process worker: replaces the shared region with `len` zero bytes and returns its
/// address, for the parent to write into (0 bytes: forget it, as a claim does).
pub fn share_as_worker(len: usize) -> usize {
    let mut shared = lock(&SHARED);
    *shared = vec![0; len];
    shared.as_ptr() as usize
}

pub(super) fn check_delivery(_: Delivery) -> Result<(), PlatformError> {
    Ok(())
}

/// Browsers expose no CPU clock.
pub(super) fn cpu_time() -> Option<Duration> {
    None
}
