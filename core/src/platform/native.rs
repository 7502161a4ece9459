//! Native backend: std threads and `std::time::Instant`.

use std::sync::OnceLock;
use std::time::Duration;

use super::{panic_message, PlatformError, TeamMember};

pub(super) const PLATFORM_NAME: &str = "native";
pub(super) const TEAM_LIMIT_REASON: &str = "conlab caps native teams at 512 OS threads";
const MAX_TEAM: usize = 512;

pub(super) fn since_epoch() -> Duration {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed()
}

pub(super) fn hardware_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(super) fn max_team_threads() -> usize {
    MAX_TEAM
}

pub(super) fn sleep(duration: Duration) {
    std::thread::sleep(duration)
}

pub(super) fn system() -> String {
    format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
}

pub(super) fn cross_origin_isolated() -> bool {
    true
}

/// Member 0 runs on the calling thread; members 1.. on scoped threads, joined explicitly so a
/// panic becomes an error instead of propagating.
pub(super) fn run_team(threads: usize, body: &(dyn Fn(TeamMember) + Sync)) -> Result<(), PlatformError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads)
            .map(|index| {
                std::thread::Builder::new()
                    .name(format!("conlab-team-{index}"))
                    .spawn_scoped(scope, move || body(TeamMember { index, size: threads }))
            })
            .collect();
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(TeamMember { index: 0, size: threads })));
        let mut outcome = first.map_err(|payload| PlatformError::MemberPanicked(panic_message(&*payload)));
        for handle in handles {
            let joined = match handle {
                Ok(handle) => handle.join().map_err(|payload| PlatformError::MemberPanicked(panic_message(&*payload))),
                Err(error) => Err(PlatformError::Unavailable(format!("could not spawn a thread: {error}"))),
            };
            outcome = outcome.and(joined);
        }
        outcome
    })
}

pub(super) fn spawn_and_join(body: Box<dyn FnOnce() + Send>) -> Result<(), PlatformError> {
    let handle = std::thread::Builder::new()
        .spawn(body)
        .map_err(|error| PlatformError::Unavailable(format!("could not spawn a thread: {error}")))?;
    handle.join().map_err(|payload| PlatformError::MemberPanicked(panic_message(&*payload)))
}

pub(super) struct RayonPool(rayon::ThreadPool);

impl RayonPool {
    pub(super) fn new(threads: usize) -> Result<Self, PlatformError> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("conlab-rayon-{index}"))
            .build()
            .map(Self)
            .map_err(|error| PlatformError::Unavailable(format!("could not start rayon: {error}")))
    }

    pub(super) fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        self.0.install(op)
    }
}

static WORKER: std::sync::OnceLock<(std::path::PathBuf, Vec<String>)> = std::sync::OnceLock::new();

pub fn set_worker_executable(path: std::path::PathBuf, args: Vec<String>) {
    let _ = WORKER.set((path, args));
}

/// A child process speaking one line per message over its stdin and stdout.
pub struct WorkerProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

fn broken(error: impl std::fmt::Display) -> PlatformError {
    PlatformError::Unavailable(format!("a worker process failed: {error}"))
}

fn registered_worker() -> Result<&'static (std::path::PathBuf, Vec<String>), PlatformError> {
    WORKER.get().ok_or_else(|| {
        PlatformError::Unavailable("process pools re-execute the `conlab` binary, which did not register itself here".into())
    })
}

impl WorkerProcess {
    /// `Ok` if worker processes can be started here (without starting one).
    pub fn check() -> Result<(), PlatformError> {
        registered_worker().map(drop)
    }

    pub fn start() -> Result<Self, PlatformError> {
        use std::process::{Command, Stdio};
        let (path, args) = registered_worker()?;
        let mut child = Command::new(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| PlatformError::Unavailable(format!("could not start a worker process: {error}")))?;
        let stdin = child.stdin.take();
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        Ok(Self { child, stdin, stdout })
    }

    pub fn send_line(&mut self, line: &[u8]) -> Result<(), PlatformError> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().ok_or_else(|| broken("its input is closed"))?;
        stdin.write_all(line).and_then(|()| stdin.write_all(b"\n")).and_then(|()| stdin.flush()).map_err(broken)
    }

    pub fn receive_line(&mut self) -> Result<String, PlatformError> {
        use std::io::BufRead;
        let mut line = String::new();
        if self.stdout.read_line(&mut line).map_err(broken)? == 0 {
            return Err(broken("it exited"));
        }
        Ok(line)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Closing its input ends the worker's loop.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
