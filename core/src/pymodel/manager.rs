//! State several worker processes share, three ways — Python's `multiprocessing` offers all
//! three, and they differ in cost per access by orders of magnitude:
//!
//! - **a manager** (`Manager().dict()`): the dict lives in a server process; every `d[key]`
//!   and `d[key] = v` on a proxy is a request serialised to it and a reply back — a round trip
//!   through the kernel (a socket natively; a mailbox in shared memory in browsers). The server
//!   answers one request at a time, as CPython's does under its GIL.
//! - **a `Value`** in shared memory (`Value('q', 0)`): the number itself is read and written in
//!   place, behind a lock every process shares ([`ProcessLock`]); `with v.get_lock(): v.value
//!   += 1` is the safe update.
//! - **a raw array** (`RawArray('q', n)`): shared memory with no lock; each worker updates its
//!   own element (on a cache line of its own here), so nothing is serialised.
//!
//! Workers pay CPython's interpreter time around each access: `python_ns` per Python-level
//! step ([`Spinner`] busy work), 0 for native code — one step being about what CPython 3.11
//! takes for `a[i] += 1` on a raw array. A `Value` update is 8 steps, as CPython 3.11 spends
//! them (measured: 335 ns for `with v.get_lock(): pass`, 440 ns more for `v.value += 1` inside
//! it, at 95 ns a step): 2 to call `get_lock()` and enter the `with`, 4.5 with the lock held to
//! read `v.value` and write it back (its property takes the lock again, recursively), 1.5 to
//! leave. A raw-array update is one step. A proxy call runs
//! `proxy_steps` on each side besides its round trip: CPython's proxy pickles the call and goes
//! through `Connection.send`/`recv` in Python, and the server's thread unpickles it, looks the
//! method up, calls it and pickles the answer (on one 2-core VM a proxy's `d[k]` took 50 µs
//! where a bare `Connection` round trip took 32).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::kernels::spin::Spinner;
use crate::locks::process_lock::ProcessLock;
use crate::platform::{AttachedWords, ServiceClient, Words};

/// A request to the manager's dict (what a proxy pickles).
#[derive(Debug, Serialize, Deserialize)]
pub enum DictRequest {
    /// `d[key]` (0 for a missing key here: `collections.defaultdict(int)`).
    Get(String),
    /// `d[key] = value`.
    Set(String, i64),
}

/// What a proxy sends: the operation, and the Python time the server spends on it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProxyCall {
    pub op: DictRequest,
    /// The server's own Python steps for this call, in ns (unpickling, dispatch, pickling).
    pub server_ns: f64,
    pub spinner: Spinner,
}

/// The manager's dict: the service state of `platform::Service`.
pub type Dict = HashMap<String, i64>;

/// The manager server's answer to one call: the value read, or `null` for a set.
pub fn serve_dict(dict: &mut Dict, request: &[u8]) -> Vec<u8> {
    let reply: Result<Option<i64>, String> = match serde_json::from_slice::<ProxyCall>(request) {
        Ok(call) => {
            call.spinner.spin(call.server_ns);
            match call.op {
                DictRequest::Get(key) => Ok(Some(dict.get(&key).copied().unwrap_or(0))),
                DictRequest::Set(key, value) => {
                    dict.insert(key, value);
                    Ok(None)
                }
            }
        }
        Err(error) => Err(format!("a request that is not a dict operation: {error}")),
    };
    serde_json::to_vec(&reply).expect("replies serialise")
}

/// A dict proxy in a worker process: a connection to the manager.
pub struct DictProxy {
    client: ServiceClient,
    pace: Pace,
}

impl DictProxy {
    pub fn connect(address: &str, pace: Pace) -> Result<Self, String> {
        ServiceClient::connect(address).map(|client| Self { client, pace }).map_err(|error| error.to_string())
    }

    /// One proxy call: this side's Python steps, the round trip (the server's steps in it).
    fn call(&mut self, op: DictRequest) -> Result<Option<i64>, String> {
        let Pace { python_ns, proxy_steps, spinner } = self.pace;
        let side_ns = python_ns * proxy_steps;
        spinner.spin(side_ns);
        let bytes = serde_json::to_vec(&ProxyCall { op, server_ns: side_ns, spinner }).expect("calls serialise");
        let reply = self.client.call(&bytes).map_err(|error| error.to_string())?;
        serde_json::from_slice::<Result<Option<i64>, String>>(&reply)
            .map_err(|error| format!("the manager replied nonsense: {error}"))?
    }

    pub fn get(&mut self, key: &str) -> Result<i64, String> {
        self.call(DictRequest::Get(key.to_string()))?.ok_or_else(|| "the manager answered a get with nothing".into())
    }

    pub fn set(&mut self, key: &str, value: i64) -> Result<(), String> {
        self.call(DictRequest::Set(key.to_string(), value)).map(drop)
    }
}

/// How a worker's updates pay CPython's interpreter time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    /// Nanoseconds of one Python-level step.
    pub python_ns: f64,
    /// Steps a proxy call runs on each side, the client's and the server's.
    pub proxy_steps: f64,
    pub spinner: Spinner,
}

impl Pace {
    fn steps(self, count: f64) {
        self.spinner.spin(count * self.python_ns);
    }
}

/// `d[key] += 1`, `updates` times through a proxy (a get and a set: two round trips each).
/// Returns how far the dict's value moved, read back through the proxy: `updates` when every
/// set reached the manager.
pub fn manager_updates(address: &str, key: &str, updates: u32, pace: Pace) -> Result<i64, String> {
    let mut proxy = DictProxy::connect(address, pace)?;
    let first = proxy.get(key)?;
    let mut value = first;
    for done in 0..updates {
        if done > 0 {
            value = proxy.get(key)?;
        }
        proxy.set(key, value + 1)?;
    }
    Ok(proxy.get(key)? - first)
}

/// The words of a `Value`: its lock, then the number (one word: 32 bits are plenty here).
pub const VALUE_LOCK: usize = 0;
pub const VALUE_WORD: usize = 1;

/// `with v.get_lock(): v.value += 1`, `updates` times, on the `Value` at `address`.
pub fn value_updates(address: &str, updates: u32, pace: Pace) -> Result<i64, String> {
    let words = AttachedWords::attach(address).map_err(|error| error.to_string())?;
    let lock = ProcessLock::new(&words, VALUE_LOCK);
    for _ in 0..updates {
        pace.steps(2.0);
        lock.with(|| {
            pace.steps(2.0);
            let value = words.load(VALUE_WORD);
            pace.steps(2.5);
            words.store(VALUE_WORD, value.wrapping_add(1));
        });
        pace.steps(1.5);
    }
    Ok(i64::from(updates))
}

/// Words between two raw-array elements: one element per 64-byte cache line.
pub const ELEMENT_STRIDE: usize = 16;

/// `a[slot] += 1` (a read, then a write: no lock), `updates` times, on the raw array at
/// `address`.
pub fn raw_array_updates(address: &str, slot: usize, updates: u32, pace: Pace) -> Result<i64, String> {
    let words = AttachedWords::attach(address).map_err(|error| error.to_string())?;
    let index = slot * ELEMENT_STRIDE;
    if index >= words.len() {
        return Err(format!("element {slot} of a raw array of {} words", words.len()));
    }
    for _ in 0..updates {
        pace.steps(1.0);
        words.store(index, words.load(index).wrapping_add(1));
    }
    Ok(i64::from(updates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dict_answers_gets_and_sets_and_says_what_it_cannot_read() {
        let mut dict = Dict::new();
        let spinner = Spinner::calibrate();
        let ask = |dict: &mut Dict, op: DictRequest| {
            let call = serde_json::to_vec(&ProxyCall { op, server_ns: 0.0, spinner }).unwrap();
            serde_json::from_slice::<Result<Option<i64>, String>>(&serve_dict(dict, &call)).unwrap()
        };
        assert_eq!(ask(&mut dict, DictRequest::Get("w0".into())), Ok(Some(0)));
        assert_eq!(ask(&mut dict, DictRequest::Set("w0".into(), 5)), Ok(None));
        assert_eq!(ask(&mut dict, DictRequest::Get("w0".into())), Ok(Some(5)));
        let nonsense: Result<Option<i64>, String> = serde_json::from_slice(&serve_dict(&mut dict, b"{")).unwrap();
        assert!(nonsense.unwrap_err().contains("not a dict operation"));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn updates_through_a_manager_a_value_and_a_raw_array_all_land() {
        use crate::platform::{Service, SharedWords};
        let pace = Pace { python_ns: 0.0, proxy_steps: 0.0, spinner: Spinner::calibrate() };
        let manager = Service::start::<Dict>(1, serve_dict).unwrap();
        assert_eq!(manager_updates(&manager.address(0), "w0", 50, pace), Ok(50));
        assert_eq!(manager_updates(&manager.address(0), "w0", 3, pace), Ok(3), "a second job moves it on");
        let value = SharedWords::new(2).unwrap();
        assert_eq!(value_updates(&value.address(), 1000, pace), Ok(1000));
        assert_eq!((value.load(VALUE_LOCK), value.load(VALUE_WORD)), (0, 1000));
        let array = SharedWords::new(2 * ELEMENT_STRIDE).unwrap();
        assert_eq!(raw_array_updates(&array.address(), 1, 7, pace), Ok(7));
        assert_eq!(array.load(ELEMENT_STRIDE), 7);
        assert!(raw_array_updates(&array.address(), 2, 1, pace).unwrap_err().contains("element 2"));
    }
}
