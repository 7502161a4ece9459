//! Memory and a server that several worker processes share, in a browser: the two halves of
//! Python's `multiprocessing.sharedctypes` (`Value`, `RawArray`) and `multiprocessing.managers`.
//!
//! A process worker has a wasm instance and memory of its own (`process_wasm.rs`), and wasm code
//! reaches no memory but its own. What every process worker *can* reach is the experiment
//! worker's memory, handed to it as a `SharedArrayBuffer` when a pool claims it. So both halves
//! live in the experiment worker's memory, and a process worker's wasm calls JavaScript
//! (`conlabParent` in `web/www/process-worker.js`) for every access:
//!
//! - [`SharedWords`]: words of this (the parent's) memory; an [`AttachedWords`] in a process
//!   worker reads and writes them with `Atomics.load/store/add/exchange/compareExchange` and
//!   blocks with `Atomics.wait`/`notify`, which meet this side's `memory.atomic.wait32`/`notify`
//!   on the same addresses.
//! - [`Service`]: the server runs on a thread of this worker's pool (a browser cannot start a
//!   process worker the others can call), serving one mailbox per client:
//!
//! | mailbox state | meaning | who moves it on |
//! |---|---|---|
//! | `IDLE` (0) | nothing asked | the client: request bytes and length written, then `REQUEST`, then the doorbell rung |
//! | `REQUEST` | a request waits | the server: reply bytes and length written, then `ANSWERED`, notified |
//! | `ANSWERED` | a reply waits | the client, after copying it out: `IDLE` |
//!
//! Every state change is a sequentially consistent `Atomics` operation after the bytes it
//! publishes, so whoever reads the new state sees them. The server sleeps on the doorbell, a
//! counter every request bumps, re-reading it before each scan so a ring never goes unheard.

use std::sync::Arc as StdArc;

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use super::futex;
use super::PlatformError;
use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};

#[wasm_bindgen]
extern "C" {
    /// One `Atomics` operation on the parent's memory (see `OP_*`): the old or loaded value.
    #[wasm_bindgen(js_namespace = conlabParent, js_name = words)]
    fn parent_words(op: u32, byte_offset: u32, a: u32, b: u32) -> u32;

    /// One round trip through a mailbox in the parent's memory.
    #[wasm_bindgen(js_namespace = conlabParent, js_name = call, catch)]
    fn parent_call(
        mailbox: u32,
        data: u32,
        capacity: u32,
        doorbell: u32,
        request: &[u8],
    ) -> Result<Uint8Array, JsValue>;
}

const OP_LOAD: u32 = 0;
const OP_STORE: u32 = 1;
const OP_ADD: u32 = 2;
const OP_EXCHANGE: u32 = 3;
const OP_COMPARE_EXCHANGE: u32 = 4;
const OP_WAIT: u32 = 5;
const OP_NOTIFY: u32 = 6;

fn unavailable(message: impl Into<String>) -> PlatformError {
    PlatformError::Unavailable(message.into())
}

fn in_process_worker() -> Result<(), PlatformError> {
    let global: JsValue = js_sys::global().into();
    match js_sys::Reflect::get(&global, &JsValue::from_str("conlabParent")) {
        Ok(value) if !value.is_undefined() => Ok(()),
        _ => Err(unavailable("shared memory and managers are reached from a process worker (process-worker.js) only")),
    }
}

/// Zeroed words of this worker's memory that process workers attach to by
/// [`SharedWords::address`].
pub struct SharedWords(Box<[AtomicU32]>);

impl SharedWords {
    /// `len` zeroed words (≥ 1).
    pub fn new(len: usize) -> Result<Self, PlatformError> {
        Ok(Self((0..len.max(1)).map(|_| AtomicU32::new(0)).collect()))
    }

    /// What a process worker passes to [`AttachedWords::attach`]: `byte offset:words`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.0.as_ptr() as usize, self.0.len())
    }
}

super::words_in_memory!(SharedWords, |this| this.0, futex::wait, futex::wake_one);

/// In a process worker: words of the parent's memory, each access a call to JavaScript.
pub struct AttachedWords {
    offset: u32,
    len: usize,
}

impl AttachedWords {
    pub fn attach(address: &str) -> Result<Self, PlatformError> {
        in_process_worker()?;
        let bad = || unavailable(format!("a shared-memory address that is not `offset:words`: {address:?}"));
        let (offset, len) = address.split_once(':').ok_or_else(bad)?;
        Ok(Self { offset: offset.parse().map_err(|_| bad())?, len: len.parse().map_err(|_| bad())? })
    }

    fn op(&self, op: u32, index: usize, a: u32, b: u32) -> u32 {
        assert!(index < self.len, "word {index} of {}", self.len);
        parent_words(op, self.offset + 4 * index as u32, a, b)
    }
}

impl super::Words for AttachedWords {
    fn len(&self) -> usize {
        self.len
    }
    fn load(&self, index: usize) -> u32 {
        self.op(OP_LOAD, index, 0, 0)
    }
    fn store(&self, index: usize, value: u32) {
        self.op(OP_STORE, index, value, 0);
    }
    fn fetch_add(&self, index: usize, value: u32) -> u32 {
        self.op(OP_ADD, index, value, 0)
    }
    fn swap(&self, index: usize, value: u32) -> u32 {
        self.op(OP_EXCHANGE, index, value, 0)
    }
    fn compare_exchange(&self, index: usize, current: u32, new: u32) -> Result<u32, u32> {
        match self.op(OP_COMPARE_EXCHANGE, index, current, new) {
            old if old == current => Ok(old),
            actual => Err(actual),
        }
    }
    fn wait(&self, index: usize, expected: u32) {
        self.op(OP_WAIT, index, expected, 0);
    }
    fn wake_one(&self, index: usize) {
        self.op(OP_NOTIFY, index, 1, 0);
    }
}

/// How a service answers a request, given its state (one per server, `S::default()` at start).
pub type ServiceHandler<S> = fn(&mut S, &[u8]) -> Vec<u8>;

/// Mailbox states (`IDLE` is 0: mailboxes start zeroed).
const REQUEST: u32 = 1;
const ANSWERED: u32 = 2;
/// Bytes a request or reply may take.
const CAPACITY: usize = 4096;
/// Words of one mailbox: state, length, data.
const MAILBOX_WORDS: usize = 2 + CAPACITY / 4;

struct Mailboxes {
    /// Word 0 the doorbell, then one mailbox per client.
    words: Box<[AtomicU32]>,
    stop: AtomicBool,
    stopped: AtomicU32,
}

impl Mailboxes {
    fn mailbox(&self, client: usize) -> &[AtomicU32] {
        &self.words[1 + client * MAILBOX_WORDS..][..MAILBOX_WORDS]
    }

    fn clients(&self) -> usize {
        (self.words.len() - 1) / MAILBOX_WORDS
    }
}

/// The server: a loop on one of this worker's pool threads; stopped when dropped.
pub struct Service {
    mailboxes: StdArc<Mailboxes>,
}

impl Service {
    /// Starts a server answering `clients` clients with `handler`, on a thread of the pool.
    pub fn start<S: Default + 'static>(clients: usize, handler: ServiceHandler<S>) -> Result<Self, PlatformError> {
        if !super::backend::pool_started() {
            return Err(unavailable(
                "the manager runs on a thread of the worker pool, which starts only on a cross-origin isolated page",
            ));
        }
        let mailboxes = StdArc::new(Mailboxes {
            words: (0..1 + clients * MAILBOX_WORDS).map(|_| AtomicU32::new(0)).collect(),
            stop: AtomicBool::new(false),
            stopped: AtomicU32::new(0),
        });
        let server = StdArc::clone(&mailboxes);
        rayon::spawn(move || serve(&server, handler));
        Ok(Self { mailboxes })
    }

    /// What client `client` passes to [`ServiceClient::connect`]: its mailbox's byte offsets
    /// (state, data) and the doorbell's.
    pub fn address(&self, client: usize) -> String {
        let mailbox = self.mailboxes.mailbox(client);
        format!(
            "{}:{}:{}",
            mailbox.as_ptr() as usize,
            mailbox[2..].as_ptr() as usize,
            self.mailboxes.words.as_ptr() as usize
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let mailboxes = &self.mailboxes;
        mailboxes.stop.store(true, Ordering::SeqCst);
        mailboxes.words[0].fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&mailboxes.words[0]);
        while mailboxes.stopped.load(Ordering::SeqCst) == 0 {
            futex::wait(&mailboxes.stopped, 0);
        }
    }
}

fn serve<S: Default>(mailboxes: &Mailboxes, handler: ServiceHandler<S>) {
    let mut state = S::default();
    let doorbell = &mailboxes.words[0];
    while !mailboxes.stop.load(Ordering::SeqCst) {
        let rung = doorbell.load(Ordering::SeqCst);
        for client in 0..mailboxes.clients() {
            let mailbox = mailboxes.mailbox(client);
            if mailbox[0].load(Ordering::SeqCst) != REQUEST {
                continue;
            }
            let len = (mailbox[1].load(Ordering::SeqCst) as usize).min(CAPACITY);
            let bytes: Vec<u8> =
                mailbox[2..].iter().flat_map(|word| word.load(Ordering::Relaxed).to_le_bytes()).take(len).collect();
            let mut reply = handler(&mut state, &bytes);
            if reply.len() > CAPACITY {
                reply = format!("a reply of {} bytes does not fit a mailbox of {CAPACITY}", reply.len()).into_bytes();
            }
            for (word, chunk) in mailbox[2..].iter().zip(reply.chunks(4)) {
                let mut le = [0u8; 4];
                le[..chunk.len()].copy_from_slice(chunk);
                word.store(u32::from_le_bytes(le), Ordering::Relaxed);
            }
            mailbox[1].store(reply.len() as u32, Ordering::SeqCst);
            mailbox[0].store(ANSWERED, Ordering::SeqCst);
            futex::wake_all(&mailbox[0]);
        }
        futex::wait(doorbell, rung);
    }
    mailboxes.stopped.store(1, Ordering::SeqCst);
    futex::wake_all(&mailboxes.stopped);
}

/// In a process worker: a connection to a [`Service`] through its mailbox.
pub struct ServiceClient {
    mailbox: u32,
    data: u32,
    doorbell: u32,
}

impl ServiceClient {
    pub fn connect(address: &str) -> Result<Self, PlatformError> {
        in_process_worker()?;
        let parts: Vec<u32> = address.split(':').filter_map(|part| part.parse().ok()).collect();
        match parts[..] {
            [mailbox, data, doorbell] => Ok(Self { mailbox, data, doorbell }),
            _ => Err(unavailable(format!("a manager address that is not `state:data:doorbell`: {address:?}"))),
        }
    }

    /// One round trip: `request` into the mailbox, the server's reply out of it.
    pub fn call(&mut self, request: &[u8]) -> Result<Vec<u8>, PlatformError> {
        parent_call(self.mailbox, self.data, CAPACITY as u32, self.doorbell, request)
            .map(|reply| reply.to_vec())
            .map_err(|error| {
                unavailable(format!(
                    "the manager's mailbox: {}",
                    error.as_string().unwrap_or_else(|| format!("{error:?}"))
                ))
            })
    }
}
