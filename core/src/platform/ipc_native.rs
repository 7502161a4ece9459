//! Memory and a server that several worker processes share, natively: the two halves of
//! Python's `multiprocessing.sharedctypes` (`Value`, `RawArray`) and `multiprocessing.managers`.
//!
//! - [`SharedWords`]: 32-bit words in a file under `/dev/shm` that every process maps with
//!   `MAP_SHARED` ([`AttachedWords`] in a worker, by the file's path, as `SharedMemory(name)`
//!   attaches). Atomic instructions on them are atomic across processes; blocking goes through
//!   the *shared* futex operations (`FUTEX_WAIT`/`FUTEX_WAKE` without `FUTEX_PRIVATE_FLAG`,
//!   which keys a wait by the physical page, so a waiter in one process is found by a waker in
//!   another — the private ops that std and `atomic-wait` use key it by this process's address
//!   space and would never meet).
//! - [`Service`]: a server process — a `fork()` of this one, like Python 3.11's `Manager()` on
//!   Linux — listening on a Unix socket; each [`ServiceClient`] connects to its path and every
//!   call is a round trip (a length-prefixed request, then the reply). The server answers one
//!   request at a time from a `poll` loop, as CPython's manager does in effect (its thread per
//!   connection runs under one GIL), and exits when the process that started it closes its
//!   end of a pipe (or exits).

#![allow(clippy::disallowed_methods, reason = "the platform layer is the one door to std's clock, threads and sleep")]

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{keep_only, pipe, read_frame, Mapping};
use super::PlatformError;
/// std's atomics even under loom: the words are memory other processes map, which loom cannot
/// model (the lock on them is checked on `LocalWords`).
use std::sync::atomic::AtomicU32;

fn failed(what: &str, error: impl std::fmt::Display) -> PlatformError {
    PlatformError::Unavailable(format!("{what}: {error}"))
}

/// The longest a shared-futex wait sleeps before its caller looks again.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The words of a mapping.
fn words_of(mapping: &Mapping) -> &[AtomicU32] {
    let (address, len) = mapping.raw();
    // SAFETY: the mapping is page-aligned, `len` bytes long and lives as long as the borrow;
    // `AtomicU32` has the size and alignment of `u32`, and every access to these words, in any
    // process, is atomic.
    unsafe { std::slice::from_raw_parts(address.cast::<AtomicU32>(), len / 4) }
}

fn futex_wait_shared(word: &AtomicU32, expected: u32) {
    let timeout = libc::timespec { tv_sec: 0, tv_nsec: WAIT_SLICE.as_nanos() as libc::c_long };
    // SAFETY: a futex wait on a live, aligned word (it only reads it) with a valid timeout;
    // any outcome (woken, timed out, value changed, interrupted) is a spurious return to callers.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &timeout) };
}

fn futex_wake_shared(word: &AtomicU32) {
    // SAFETY: wakes at most one waiter on the word's address; the memory is not accessed.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Zeroed words that worker processes attach to by [`SharedWords::address`]; the file is
/// removed when this is dropped (mappings outlive the name).
pub struct SharedWords {
    mapping: Mapping,
}

impl SharedWords {
    /// `len` zeroed words (≥ 1).
    pub fn new(len: usize) -> Result<Self, PlatformError> {
        let mapping = Mapping::create(len.max(1) * 4).map_err(|error| failed("shared memory", error))?;
        Ok(Self { mapping })
    }

    /// What a worker passes to [`AttachedWords::attach`]: the file's path.
    pub fn address(&self) -> String {
        self.mapping.path().expect("a created mapping has a path").to_string_lossy().into_owned()
    }
}

super::words_in_memory!(SharedWords, |this| words_of(&this.mapping), futex_wait_shared, futex_wake_shared);

/// In a worker process: the words a parent shared, mapped here until dropped.
pub struct AttachedWords {
    mapping: Mapping,
}

impl AttachedWords {
    pub fn attach(address: &str) -> Result<Self, PlatformError> {
        let path = Path::new(address);
        let len = std::fs::metadata(path).map_err(|error| failed(&format!("shared memory {address}"), error))?.len();
        let mapping = Mapping::open_writable(path, len as usize)
            .map_err(|error| failed(&format!("shared memory {address}"), error))?;
        Ok(Self { mapping })
    }
}

super::words_in_memory!(AttachedWords, |this| words_of(&this.mapping), futex_wait_shared, futex_wake_shared);

/// How a service answers a request, given its state (one per server, `S::default()` at start).
pub type ServiceHandler<S> = fn(&mut S, &[u8]) -> Vec<u8>;

/// A server process and the path clients connect to; stopped and removed when dropped.
pub struct Service {
    pid: libc::pid_t,
    /// This side's end of the pipe whose closing tells the server to exit.
    lifeline: Option<OwnedFd>,
    path: PathBuf,
}

impl Service {
    /// Starts a server answering with `handler`: a fork of this process that listens on a new
    /// Unix socket (`clients` is how many will connect; any number may, natively).
    pub fn start<S: Default>(_clients: usize, handler: ServiceHandler<S>) -> Result<Self, PlatformError> {
        let path = std::env::temp_dir().join(format!(
            "conlab-manager-{}-{}.sock",
            std::process::id(),
            super::Instant::now().nanos_since_epoch()
        ));
        let listener =
            UnixListener::bind(&path).map_err(|error| failed("could not open the manager's socket", error))?;
        let (life_read, life_write) = pipe().map_err(|error| failed("could not start the manager", error))?;
        // SAFETY: `fork` in a process that may have other threads: the child only duplicates and
        // closes descriptors (async-signal-safe) before its loop, whose allocations glibc's fork
        // handlers make safe, and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let _ = std::fs::remove_file(&path);
            return Err(failed("could not fork the manager", io::Error::last_os_error()));
        }
        if pid == 0 {
            become_server(life_read.as_raw_fd(), listener.as_raw_fd(), handler);
        }
        drop((listener, life_read));
        Ok(Self { pid, lifeline: Some(life_write), path })
    }

    /// What a client passes to [`ServiceClient::connect`]: the socket's path.
    pub fn address(&self, _client: usize) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        // SAFETY: waits for our own child by its pid; the status is not read.
        unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
        let _ = std::fs::remove_file(&self.path);
    }
}

/// In the forked server: the lifeline becomes fd 0 and the listener fd 3, every other inherited
/// descriptor but stderr is closed (a worker's pipe held open here would never see its end),
/// then serves.
fn become_server<S: Default>(lifeline: RawFd, listener: RawFd, handler: ServiceHandler<S>) -> ! {
    keep_only(&[(lifeline, 0), (listener, 3)]);
    // SAFETY: descriptor 3 is open (just duplicated) and owned by nothing else here.
    let listener = unsafe { UnixListener::from_raw_fd(3) };
    let served = serve(&listener, handler);
    // SAFETY: ends this process at once, as a forked child must.
    unsafe { libc::_exit(i32::from(served.is_err())) }
}

/// The server's loop: one request at a time, from whichever connection has one, until the
/// lifeline (fd 0) reads end-of-file.
fn serve<S: Default>(listener: &UnixListener, handler: ServiceHandler<S>) -> io::Result<()> {
    let mut state = S::default();
    let mut clients: Vec<UnixStream> = Vec::new();
    loop {
        let mut fds: Vec<libc::pollfd> = [0, listener.as_raw_fd()]
            .into_iter()
            .chain(clients.iter().map(AsRawFd::as_raw_fd))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: `fds` holds valid pollfds for descriptors open during the call; no timeout.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if fds[0].revents != 0 {
            return Ok(());
        }
        let mut closed = Vec::new();
        for (index, fd) in fds[2..].iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let client = &mut clients[index];
            match read_frame(client) {
                Ok(request) => write_frame(client, &handler(&mut state, &request))?,
                Err(_) => closed.push(index),
            }
        }
        for index in closed.into_iter().rev() {
            clients.swap_remove(index);
        }
        if fds[1].revents != 0 {
            let (client, _) = listener.accept()?;
            clients.push(client);
        }
    }
}

/// A connection to a [`Service`].
pub struct ServiceClient {
    stream: UnixStream,
}

impl ServiceClient {
    pub fn connect(address: &str) -> Result<Self, PlatformError> {
        let stream =
            UnixStream::connect(address).map_err(|error| failed(&format!("the manager at {address}"), error))?;
        Ok(Self { stream })
    }

    /// One round trip: `request` to the server, its reply back.
    pub fn call(&mut self, request: &[u8]) -> Result<Vec<u8>, PlatformError> {
        write_frame(&mut self.stream, request)
            .and_then(|()| read_frame(&mut self.stream))
            .map_err(|error| failed("the manager's connection", error))
    }
}

/// A length-prefixed frame in one write (so the server's read finds it whole).
fn write_frame(output: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("a frame over 4 GiB"))?;
    output.write_all(&[&len.to_le_bytes()[..], bytes].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Words;

    #[derive(Default)]
    struct Count(u32);

    fn count(state: &mut Count, request: &[u8]) -> Vec<u8> {
        state.0 += u32::from(request[0]);
        state.0.to_le_bytes().to_vec()
    }

    #[test]
    fn clients_of_one_server_share_its_state_and_it_stops_with_its_owner() {
        let service = Service::start::<Count>(2, count).unwrap();
        let (mut a, mut b) = (
            ServiceClient::connect(&service.address(0)).unwrap(),
            ServiceClient::connect(&service.address(1)).unwrap(),
        );
        assert_eq!(a.call(&[2]).unwrap(), 2u32.to_le_bytes());
        assert_eq!(b.call(&[3]).unwrap(), 5u32.to_le_bytes());
        let path = service.address(0);
        drop(service);
        assert!(!Path::new(&path).exists());
        assert!(a.call(&[1]).is_err(), "the server is gone");
    }

    #[test]
    fn attached_words_are_the_shared_ones() {
        let shared = SharedWords::new(4).unwrap();
        let attached = AttachedWords::attach(&shared.address()).unwrap();
        attached.fetch_add(3, 7);
        assert_eq!(shared.load(3), 7);
        assert_eq!(attached.len(), 4);
        shared.wake_one(3);
        shared.wait(3, 0); // the value differs: returns at once
        assert!(AttachedWords::attach("/nonexistent/conlab")
            .err()
            .unwrap()
            .to_string()
            .contains("/nonexistent/conlab"));
    }
}
