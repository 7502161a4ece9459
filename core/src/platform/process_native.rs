//! Worker processes, natively: the registered executable (the `conlab` binary) started as a
//! child and spoken to over its stdin and stdout, and shared memory as a file under `/dev/shm`
//! mapped by both sides (what Python's `multiprocessing.shared_memory` does).
//!
//! Wire format (all lengths little-endian `u32`, except the shared region's `u64`):
//!
//! | direction | frame |
//! |---|---|
//! | parent → worker | `0`, message length, message, payload length, payload |
//! | parent → worker | `1`, path length, path, region length (`u64`): map this region |
//! | worker → parent | reply length, reply (an empty reply acknowledges a `1`) |

#![allow(clippy::disallowed_methods, reason = "the platform layer is the one door to std's clock, threads and sleep")]

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use super::{Delivery, PlatformError, WorkerAnswer};

const MESSAGE: u8 = 0;
const SHARE: u8 = 1;

static WORKER: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// Registers the executable (and its arguments) that serves as a worker process:
/// [`serve_as_worker`] must be what it runs.
pub fn set_worker_executable(path: PathBuf, args: Vec<String>) {
    let _ = WORKER.set((path, args));
}

fn registered_worker() -> Result<&'static (PathBuf, Vec<String>), PlatformError> {
    WORKER.get().ok_or_else(|| {
        PlatformError::Unavailable(
            "process pools re-execute the `conlab` binary, which did not register itself here".into(),
        )
    })
}

fn broken(error: impl std::fmt::Display) -> PlatformError {
    PlatformError::Unavailable(format!("a worker process failed: {error}"))
}

/// A child process serving [`serve_as_worker`]'s protocol; it exits when this is dropped.
pub struct WorkerProcess {
    child: Child,
    input: Option<BufWriter<ChildStdin>>,
    output: BufReader<ChildStdout>,
    /// The region last shared with this worker; unlinked and unmapped with it.
    shared: Option<Mapping>,
}

impl WorkerProcess {
    /// `Ok` if worker processes can be started here (without starting one).
    pub fn check() -> Result<(), PlatformError> {
        registered_worker().map(drop)
    }

    /// Starts a worker process.
    pub fn start() -> Result<Self, PlatformError> {
        let (path, args) = registered_worker()?;
        let mut child = Command::new(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| PlatformError::Unavailable(format!("could not start a worker process: {error}")))?;
        let input = child.stdin.take().map(BufWriter::new);
        let output = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self { child, input, output, shared: None })
    }

    /// Sends a message and its payload. A pipe always copies: [`Delivery::Transfer`] is refused.
    pub fn send(&mut self, message: &[u8], payload: &[u8], delivery: Delivery) -> Result<(), PlatformError> {
        check_delivery(delivery)?;
        let input = self.input.as_mut().ok_or_else(|| broken("its input is closed"))?;
        let written = input
            .write_all(&[MESSAGE])
            .and_then(|()| write_frame(input, message))
            .and_then(|()| write_frame(input, payload))
            .and_then(|()| input.flush());
        written.map_err(broken)
    }

    /// Whether a reply (or the worker's exit) is waiting, so [`WorkerProcess::receive`] would
    /// not block: for a caller that must not block, an event loop polling.
    pub fn reply_ready(&mut self) -> bool {
        if !self.output.buffer().is_empty() {
            return true;
        }
        let mut pending = libc::pollfd { fd: self.output.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call (an fd this process owns, open
        // while `self` lives); a zero timeout returns at once.
        let ready = unsafe { libc::poll(&mut pending, 1, 0) };
        ready != 0
    }

    /// The next reply, in order.
    pub fn receive(&mut self) -> Result<Vec<u8>, PlatformError> {
        read_frame(&mut self.output).map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => broken("it exited"),
            _ => broken(error),
        })
    }

    /// Places `bytes` in memory the worker reads in place: a new file under `/dev/shm`, mapped
    /// here and (after the worker acknowledges) there; the worker's answers see it as `shared`.
    pub fn share(&mut self, bytes: &[u8]) -> Result<(), PlatformError> {
        let mut mapping = Mapping::create(bytes.len()).map_err(|e| broken(format!("shared memory: {e}")))?;
        mapping.bytes_mut().copy_from_slice(bytes);
        let path = mapping.path.as_deref().expect("a created mapping has a path").to_string_lossy().into_owned();
        let input = self.input.as_mut().ok_or_else(|| broken("its input is closed"))?;
        let written = input
            .write_all(&[SHARE])
            .and_then(|()| write_frame(input, path.as_bytes()))
            .and_then(|()| input.write_all(&(bytes.len() as u64).to_le_bytes()))
            .and_then(|()| input.flush());
        written.map_err(broken)?;
        self.shared = Some(mapping);
        match self.receive()? {
            ack if ack.is_empty() => Ok(()),
            other => Err(broken(String::from_utf8_lossy(&other))),
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Closing its input ends the worker's loop.
        drop(self.input.take());
        let _ = self.child.wait();
    }
}

/// A worker process's main loop: answers each message with `answer(message, payload, shared)`
/// until its input closes. `shared` is the region last shared with it, empty before any.
pub fn serve_as_worker(input: impl Read, output: impl Write, answer: WorkerAnswer) -> io::Result<()> {
    let (mut input, mut output) = (BufReader::new(input), BufWriter::new(output));
    let mut shared: Option<Mapping> = None;
    loop {
        let mut tag = [0u8];
        match input.read_exact(&mut tag) {
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            read => read?,
        }
        let reply = match tag[0] {
            MESSAGE => {
                let (message, payload) = (read_frame(&mut input)?, read_frame(&mut input)?);
                answer(&message, &payload, shared.as_ref().map_or(&[], Mapping::bytes))
            }
            SHARE => {
                let path = String::from_utf8(read_frame(&mut input)?).map_err(io::Error::other)?;
                let mut len = [0u8; 8];
                input.read_exact(&mut len)?;
                let len = usize::try_from(u64::from_le_bytes(len)).map_err(io::Error::other)?;
                match Mapping::open(Path::new(&path), len) {
                    Ok(mapping) => {
                        shared = Some(mapping);
                        Vec::new()
                    }
                    Err(error) => format!("could not map {path}: {error}").into_bytes(),
                }
            }
            other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown frame tag {other}"))),
        };
        write_frame(&mut output, &reply)?;
        output.flush()?;
    }
}

fn write_frame(output: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("a message over 4 GiB"))?;
    output.write_all(&len.to_le_bytes())?;
    output.write_all(bytes)
}

fn read_frame(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A file mapped into memory with `MAP_SHARED`: writes through one mapping are visible through
/// every other mapping of the file, in any process.
struct Mapping {
    address: *mut u8,
    len: usize,
    /// Set for the creator, which removes the file when dropped (mappings outlive the name).
    path: Option<PathBuf>,
}

impl Mapping {
    /// A new zeroed region of `len` bytes (≥ 1) under `/dev/shm` (the temp dir if there is none).
    fn create(len: usize) -> io::Result<Self> {
        let dir = Path::new("/dev/shm");
        let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
        // Unique names: this process's id and a clock reading, bumped past any name taken.
        let mut stamp = super::Instant::now().nanos_since_epoch();
        let (file, path) = loop {
            let path = dir.join(format!("conlab-{}-{stamp}", std::process::id()));
            match OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => stamp += 1,
                Err(error) => return Err(error),
            }
        };
        let mapped = file.set_len(len as u64).and_then(|()| Self::map(&file, len, true));
        match mapped {
            Ok(mut mapping) => {
                mapping.path = Some(path);
                Ok(mapping)
            }
            Err(error) => {
                let _ = std::fs::remove_file(&path);
                Err(error)
            }
        }
    }

    /// Maps an existing region read-only.
    fn open(path: &Path, len: usize) -> io::Result<Self> {
        Self::map(&File::open(path)?, len, false)
    }

    fn map(file: &File, len: usize, writable: bool) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::other("a shared region needs at least 1 byte"));
        }
        let protection = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a fresh mapping chosen by the kernel (null hint) of a file we hold open; it
        // aliases no Rust object. The result is checked before use.
        let address =
            unsafe { libc::mmap(std::ptr::null_mut(), len, protection, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { address: address.cast(), len, path: None })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `address` is a live mapping of `len` readable bytes until `drop`. Other
        // processes write it only while this side is not reading (the message protocol orders
        // them: the parent writes before it sends the message that makes the worker read).
        unsafe { std::slice::from_raw_parts(self.address, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; only the creator's mapping is writable and `&mut self` makes
        // this the only view in this process.
        unsafe { std::slice::from_raw_parts_mut(self.address, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `map` created; no slice of it outlives `self`.
        unsafe { libc::munmap(self.address.cast(), self.len) };
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(super) fn check_delivery(delivery: Delivery) -> Result<(), PlatformError> {
    match delivery {
        Delivery::Copy => Ok(()),
        Delivery::Transfer => Err(PlatformError::Unavailable(
            "a pipe always copies; only browsers transfer buffers (postMessage's transfer list)".into(),
        )),
    }
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// that ownership (no thread-local state is involved).
unsafe impl Send for Mapping {}

/// CPU time (user + system) of this process and of its children that have exited and been
/// waited for, from `getrusage`.
pub(super) fn cpu_time() -> Option<std::time::Duration> {
    let used = |who| {
        // SAFETY: `getrusage` fills the zeroed struct it is given; it is read only on success.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid `who` and a pointer to a live `rusage`.
        (unsafe { libc::getrusage(who, &mut usage) } == 0).then(|| {
            let seconds = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
            seconds(usage.ru_utime) + seconds(usage.ru_stime)
        })
    };
    Some(used(libc::RUSAGE_SELF)? + used(libc::RUSAGE_CHILDREN)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_with_shared(message: &[u8], payload: &[u8], shared: &[u8]) -> Vec<u8> {
        [message, b"|", payload, b"|", shared].concat()
    }

    fn message(message: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![MESSAGE];
        write_frame(&mut bytes, message).unwrap();
        write_frame(&mut bytes, payload).unwrap();
        bytes
    }

    fn replies(mut output: &[u8]) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| read_frame(&mut output).ok()).collect()
    }

    #[test]
    fn a_worker_answers_each_message_in_order_and_stops_at_end_of_input() {
        let input = [message(b"a", b"1"), message(b"b", b"")].concat();
        let mut output = Vec::new();
        serve_as_worker(input.as_slice(), &mut output, echo_with_shared).unwrap();
        assert_eq!(replies(&output), [b"a|1|".to_vec(), b"b||".to_vec()]);
    }

    #[test]
    fn a_shared_region_is_read_in_place_by_a_second_mapping() {
        let mut region = Mapping::create(5).unwrap();
        region.bytes_mut().copy_from_slice(b"hello");
        let path = region.path.clone().unwrap();
        let mut input = vec![SHARE];
        write_frame(&mut input, path.to_str().unwrap().as_bytes()).unwrap();
        input.extend_from_slice(&5u64.to_le_bytes());
        input.extend(message(b"m", b""));
        let mut output = Vec::new();
        serve_as_worker(input.as_slice(), &mut output, echo_with_shared).unwrap();
        assert_eq!(replies(&output), [b"".to_vec(), b"m||hello".to_vec()]);
        drop(region);
        assert!(!path.exists(), "the creator removes the file");
    }

    #[test]
    fn pipes_refuse_to_transfer() {
        let error = Delivery::Transfer.check().unwrap_err();
        assert!(error.to_string().contains("copies"), "{error}");
    }

    #[test]
    fn cpu_time_grows_while_this_process_computes() {
        let before = cpu_time().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x + 1);
        }
        assert!(cpu_time().unwrap() > before);
    }
}
