//! Worker processes, natively: started by one of Python's three start methods and spoken to
//! over two pipes, and shared memory as a file under `/dev/shm` mapped by both sides (what
//! Python's `multiprocessing.shared_memory` does).
//!
//! - **spawn**: the registered executable (the `conlab` binary) started afresh as a child
//!   (`posix_spawn`: no copy of this process), its stdin and stdout the pipes.
//! - **fork**: a `fork()` of this process. The child inherits this process's memory
//!   copy-on-write — the kernel copies its page tables, so the start costs more the more memory
//!   this process has touched — and only one thread, the forking one: it does nothing but
//!   async-signal-safe calls (`dup2`, `close_range`) until it runs the worker loop, and leaves
//!   with `_exit`, never returning into the parent's code.
//! - **forkserver**: a small single-threaded server (the executable again) started once per
//!   process; each worker is a fork of it, which opens two named pipes (FIFOs) the parent
//!   created, so the start costs the same whatever this process holds.
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
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::{Delivery, PlatformError, StartMethod, WorkerAnswer};

const MESSAGE: u8 = 0;
const SHARE: u8 = 1;

/// Where a worker forked by [`WorkerProcess::fork_sharing`] finds the descriptor it shares.
pub(super) const INHERITED_FD: RawFd = 3;

/// The argument that makes the registered executable serve as the fork server
/// ([`serve_as_fork_server`]).
pub const FORK_SERVER_ARG: &str = "__fork-server";

static WORKER: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// This process's fork server, started by the first forkserver worker. A registry, not a
/// primitive under study: std's lock even under loom (whose Mutex has no const constructor).
static FORK_SERVER: std::sync::Mutex<Option<ForkServer>> = std::sync::Mutex::new(None);

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

/// How this process knows its worker, to wait for it at the end.
enum Handle {
    Spawned(Child),
    /// A child of this process, by its pid.
    Forked(libc::pid_t),
    /// A child of the fork server (which waits for it), by its pid.
    Served(libc::pid_t),
}

/// A process serving [`serve_as_worker`]'s protocol; it exits when this is dropped.
pub struct WorkerProcess {
    handle: Handle,
    input: Option<BufWriter<File>>,
    output: BufReader<File>,
    /// The region last shared with this worker; unlinked and unmapped with it.
    shared: Option<Mapping>,
}

impl WorkerProcess {
    /// `Ok` if worker processes can be started here (without starting one).
    pub fn check() -> Result<(), PlatformError> {
        registered_worker().map(drop)
    }

    /// `Ok` if worker processes can be started here by `method`.
    pub fn check_method(method: StartMethod) -> Result<(), PlatformError> {
        match method {
            StartMethod::Spawn | StartMethod::ForkServer => Self::check(),
            StartMethod::Fork => Ok(()),
        }
    }

    /// Starts a worker process by spawning the registered executable.
    pub fn start() -> Result<Self, PlatformError> {
        let (path, args) = registered_worker()?;
        let mut child = spawn_piped(path, args, "a worker process")?;
        let input = child.stdin.take().map(|stdin| BufWriter::new(File::from(std::os::fd::OwnedFd::from(stdin))));
        let output = BufReader::new(File::from(std::os::fd::OwnedFd::from(child.stdout.take().expect("piped"))));
        Ok(Self { handle: Handle::Spawned(child), input, output, shared: None })
    }

    /// Starts a worker process by `method`; a forked worker answers with `answer` (a spawned
    /// one runs what the executable registered).
    pub fn start_with(method: StartMethod, answer: WorkerAnswer) -> Result<Self, PlatformError> {
        match method {
            StartMethod::Spawn => Self::start(),
            StartMethod::Fork => Self::fork(answer),
            StartMethod::ForkServer => Self::fork_served(),
        }
    }

    /// `fork()`s this process as a worker answering with `answer` whose descriptor 3 is
    /// `listener`: a pre-forked server's worker, which accepts on the socket it inherited
    /// ([`super::socket::TcpListener::inherited`]) beside its siblings — gunicorn's design.
    pub fn fork_sharing(answer: WorkerAnswer, listener: &super::socket::TcpListener) -> Result<Self, PlatformError> {
        Self::fork_keeping(answer, Some(listener.raw_fd()))
    }

    /// `fork()`s this process; the child serves on two fresh pipes.
    fn fork(answer: WorkerAnswer) -> Result<Self, PlatformError> {
        Self::fork_keeping(answer, None)
    }

    /// [`WorkerProcess::fork`], the child keeping `inherited` as its descriptor 3.
    fn fork_keeping(answer: WorkerAnswer, inherited: Option<RawFd>) -> Result<Self, PlatformError> {
        let failed = |error: io::Error| PlatformError::Unavailable(format!("could not fork a worker: {error}"));
        let (to_child, from_child) = (pipe().map_err(failed)?, pipe().map_err(failed)?);
        // SAFETY: `fork` in a process that may have other threads: the child runs only
        // `become_worker`, which makes async-signal-safe calls until the worker loop, whose own
        // allocations glibc's fork handlers make safe, and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(failed(io::Error::last_os_error()));
        }
        if pid == 0 {
            become_worker(to_child.0.as_raw_fd(), from_child.1.as_raw_fd(), inherited, answer);
        }
        let (input, output) = (File::from(to_child.1), File::from(from_child.0));
        Ok(Self {
            handle: Handle::Forked(pid),
            input: Some(BufWriter::new(input)),
            output: BufReader::new(output),
            shared: None,
        })
    }

    /// Asks this process's fork server (started on first use) for a worker.
    fn fork_served() -> Result<Self, PlatformError> {
        let mut server = FORK_SERVER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if server.is_none() {
            *server = Some(ForkServer::start()?);
        }
        let (input, output, pid) = server.as_mut().expect("started").fork()?;
        Ok(Self {
            handle: Handle::Served(pid),
            input: Some(BufWriter::new(input)),
            output: BufReader::new(output),
            shared: None,
        })
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

    /// Kills the worker at once (`SIGKILL`, as the OOM killer would): its replies stop, and
    /// reading them finds its end.
    pub fn kill(&mut self) {
        let pid = match &self.handle {
            Handle::Spawned(child) => child.id() as libc::pid_t,
            Handle::Forked(pid) | Handle::Served(pid) => *pid,
        };
        // SAFETY: `kill` only sends a signal. The pid is a process this one started (reaped only
        // in `drop`) or one its fork server started; a server's child that already exited may in
        // principle have had its pid reused, a risk Python's `Process.kill` takes alike.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }

    /// Waits up to `timeout` until one of `workers` has a reply (or has ended): its index.
    pub fn wait_any(workers: &mut [&mut WorkerProcess], timeout: std::time::Duration) -> Option<usize> {
        if let Some(ready) = workers.iter().position(|worker| !worker.output.buffer().is_empty()) {
            return Some(ready);
        }
        let mut fds: Vec<libc::pollfd> = workers
            .iter()
            .map(|worker| libc::pollfd { fd: worker.output.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let start = super::Instant::now();
        // SAFETY: `fds` holds one valid pollfd per worker (fds open while the workers live).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        crate::trace::ambient::blocked("waiting for a worker process", start);
        if ready <= 0 {
            return None;
        }
        fds.iter().position(|fd| fd.revents != 0)
    }

    /// The next reply, in order.
    pub fn receive(&mut self) -> Result<Vec<u8>, PlatformError> {
        let start = super::Instant::now();
        let reply = read_frame(&mut self.output);
        crate::trace::ambient::blocked("waiting for a worker process", start);
        reply.map_err(|error| match error.kind() {
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
        match &mut self.handle {
            Handle::Spawned(child) => drop(child.wait()),
            Handle::Forked(pid) => {
                // SAFETY: waits for our own child by its pid; the status is not read.
                unsafe { libc::waitpid(*pid, std::ptr::null_mut(), 0) };
            }
            Handle::Served(_) => {}
        }
    }
}

/// The registered executable with `args`, its stdin and stdout piped to this process.
fn spawn_piped(path: &Path, args: &[String], what: &str) -> Result<Child, PlatformError> {
    Command::new(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| PlatformError::Unavailable(format!("could not start {what}: {error}")))
}

/// A pipe's two ends, read then write, closed on exec.
pub(super) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `pipe2` writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened by `pipe2` and are owned by nobody else.
    Ok(unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) })
}

/// In a freshly forked child: makes `input` and `output` its stdin and stdout (and `inherited`
/// its descriptor 3), closes every other descriptor it inherited (another worker's pipe held
/// open here would never see its end), serves, and exits without running the parent's exit
/// handlers.
fn become_worker(input: RawFd, output: RawFd, inherited: Option<RawFd>, answer: WorkerAnswer) -> ! {
    match inherited {
        Some(inherited) => keep_only(&[(input, 0), (output, 1), (inherited, INHERITED_FD)]),
        None => keep_only(&[(input, 0), (output, 1)]),
    }
    // SAFETY: descriptors 0 and 1 are open (just duplicated) and owned by nothing else here.
    let (stdin, stdout) = unsafe { (File::from_raw_fd(0), File::from_raw_fd(1)) };
    let served = serve_as_worker(stdin, stdout, answer);
    // SAFETY: ends this process at once, as a forked child must.
    unsafe { libc::_exit(i32::from(served.is_err())) }
}

/// In a freshly forked child: duplicates each `(from, to)` descriptor onto `to`, keeps stderr
/// (for panics) and closes every other descriptor above them, so that no other process's pipe
/// is held open here; exits at once if a duplication fails. Only async-signal-safe calls.
pub(super) fn keep_only(moves: &[(RawFd, RawFd)]) {
    let first_closed = moves.iter().map(|&(_, to)| to as u32 + 1).fold(3, u32::max);
    // SAFETY: `dup2`, `close_range`, `close` and `_exit` are async-signal-safe; the descriptors
    // are this child's copies.
    unsafe {
        if moves.iter().any(|&(from, to)| libc::dup2(from, to) < 0) {
            libc::_exit(3);
        }
        if libc::syscall(libc::SYS_close_range, first_closed, u32::MAX, 0u32) != 0 {
            for fd in first_closed as RawFd..1024 {
                libc::close(fd);
            }
        }
    }
}

/// A running fork server and this process's ends of its pipes.
struct ForkServer {
    child: Child,
    requests: ChildStdin,
    replies: BufReader<ChildStdout>,
    /// FIFOs made so far, for unique names.
    made: u64,
}

impl ForkServer {
    fn start() -> Result<Self, PlatformError> {
        let (path, _) = registered_worker()?;
        let mut child = spawn_piped(path, &[FORK_SERVER_ARG.to_string()], "the fork server")?;
        let requests = child.stdin.take().expect("piped");
        let replies = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Self { child, requests, replies, made: 0 })
    }

    /// One worker: two FIFOs made here, their paths to the server, which forks a child that
    /// opens them (its stdin first, so both sides open in the same order and neither waits
    /// forever); the server's reply is the child's pid or why it failed.
    fn fork(&mut self) -> Result<(File, File, libc::pid_t), PlatformError> {
        let failed = |error: &dyn std::fmt::Display| {
            PlatformError::Unavailable(format!("the fork server could not start a worker: {error}"))
        };
        let dir = std::env::temp_dir();
        let fifo = |end: &str| dir.join(format!("conlab-fork-{}-{}-{end}", std::process::id(), self.made));
        let (to_child, from_child) = (fifo("in"), fifo("out"));
        self.made += 1;
        for path in [&to_child, &from_child] {
            let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| failed(&e))?;
            // SAFETY: a NUL-terminated path that lives across the call.
            if unsafe { libc::mkfifo(name.as_ptr(), 0o600) } != 0 {
                return Err(failed(&io::Error::last_os_error()));
            }
        }
        let opened = (|| {
            writeln!(self.requests, "{}\t{}", to_child.display(), from_child.display())?;
            self.requests.flush()?;
            let input = OpenOptions::new().write(true).open(&to_child)?;
            let output = File::open(&from_child)?;
            let mut reply = String::new();
            std::io::BufRead::read_line(&mut self.replies, &mut reply)?;
            match reply.trim().parse::<libc::pid_t>() {
                Ok(pid) => Ok((input, output, pid)),
                Err(_) => Err(io::Error::other(reply.trim().to_string())),
            }
        })();
        for path in [&to_child, &from_child] {
            let _ = std::fs::remove_file(path);
        }
        opened.map_err(|error| failed(&error))
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fork server's loop (the executable run with [`FORK_SERVER_ARG`]): for each request line
/// — two FIFO paths — forks a worker that opens them as its stdin and stdout and serves with
/// `answer`, and replies with its pid. Single-threaded, so forking it is safe; children are
/// reaped by the kernel (SIGCHLD ignored).
pub fn serve_as_fork_server(answer: WorkerAnswer) -> io::Result<()> {
    // SAFETY: setting SIGCHLD's disposition to "ignore" at start-up, before any child exists.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut replies = io::stdout().lock();
    for request in std::io::BufRead::lines(io::stdin().lock()) {
        let request = request?;
        let Some((input, output)) = request.split_once('\t') else {
            writeln!(replies, "a request that is not two paths: {request:?}")?;
            continue;
        };
        let (input, output) = (std::ffi::CString::new(input)?, std::ffi::CString::new(output)?);
        // SAFETY: this process has one thread; the child opens the FIFOs and serves.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: `open` on NUL-terminated paths prepared before the fork.
            let (from, to) =
                unsafe { (libc::open(input.as_ptr(), libc::O_RDONLY), libc::open(output.as_ptr(), libc::O_WRONLY)) };
            if from < 0 || to < 0 {
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(4) };
            }
            become_worker(from, to, None, answer);
        }
        if pid < 0 {
            writeln!(replies, "fork failed: {}", io::Error::last_os_error())?;
        } else {
            writeln!(replies, "{pid}")?;
        }
        replies.flush()?;
    }
    Ok(())
}

/// In a worker process: whether its parent has sent another message, or gone — for an answer
/// that runs until told to stop (a pre-forked server's). Never blocks.
pub fn parent_spoke() -> bool {
    // A message that came right behind the one being answered may already sit in the worker's
    // read buffer, not in the pipe (a pre-forked server stopped before it began: its STOP was
    // read with its SERVE, and polling the pipe alone left it serving forever).
    if INPUT_READ_AHEAD.load(Ordering::Acquire) {
        return true;
    }
    let mut input = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd (standard input, a worker's message pipe); a zero timeout
    // returns at once.
    let ready = unsafe { libc::poll(&mut input, 1, 0) };
    ready != 0
}

/// Whether the worker's read buffer holds bytes of a message after the one being answered
/// ([`parent_spoke`] reads it).
static INPUT_READ_AHEAD: AtomicBool = AtomicBool::new(false);

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
                INPUT_READ_AHEAD.store(!input.buffer().is_empty(), Ordering::Release);
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

pub(super) fn read_frame(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A file mapped into memory with `MAP_SHARED`: writes through one mapping are visible through
/// every other mapping of the file, in any process.
pub(super) struct Mapping {
    address: *mut u8,
    len: usize,
    /// Set for the creator, which removes the file when dropped (mappings outlive the name).
    path: Option<PathBuf>,
}

impl Mapping {
    /// A new zeroed region of `len` bytes (≥ 1) under `/dev/shm` (the temp dir if there is none).
    pub(super) fn create(len: usize) -> io::Result<Self> {
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

    /// Maps an existing region for reading and writing.
    pub(super) fn open_writable(path: &Path, len: usize) -> io::Result<Self> {
        Self::map(&OpenOptions::new().read(true).write(true).open(path)?, len, true)
    }

    /// The file's path, for the creator's mapping.
    pub(super) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The region's first byte (page-aligned) and its length.
    pub(super) fn raw(&self) -> (*mut u8, usize) {
        (self.address, self.len)
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
