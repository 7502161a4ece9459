//! Native backend: std threads and `std::time::Instant`.

#![allow(clippy::disallowed_methods, reason = "the platform layer is the one door to std's clock, threads and sleep")]

use std::sync::OnceLock;
use std::time::Duration;

use super::{panic_message, PlatformError, TeamMember};

pub(super) const PLATFORM_NAME: &str = "native";
pub(super) const TEAM_LIMIT_REASON: &str =
    "conlab caps native teams at 10 000 OS threads; the system's own limits may refuse fewer";
const MAX_TEAM: usize = 10_000;

pub(super) const CODE_WARMS_UP: bool = false;

pub(super) fn since_epoch() -> Duration {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed()
}

/// The most files (sockets included) this process may hold open: `RLIMIT_NOFILE`'s soft limit.
pub(super) fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes one `rlimit` into the struct it is given, which lives across the call.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
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

pub(super) fn yield_now() {
    std::thread::yield_now()
}

pub(super) fn system() -> String {
    format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
}

pub(super) fn memory_use() -> Option<super::MemoryUse> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut pages = statm.split_whitespace().map(|field| field.parse::<u64>().ok());
    let (reserved, resident) = (pages.next()??, pages.next()??);
    // SAFETY: sysconf only reads a configuration value.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    Some(super::MemoryUse { resident: resident * page, reserved: reserved * page })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) fn release_free_memory() {
    // SAFETY: malloc_trim only returns free pages of glibc's own heaps to the system.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(super) fn release_free_memory() {}

pub(super) fn cross_origin_isolated() -> bool {
    true
}

/// Member 0 runs on the calling thread; members 1.. on scoped threads, joined explicitly so a
/// panic becomes an error instead of propagating. The members wait at a gate until every thread
/// has started: if the system refuses one (its limit on threads or on memory for their stacks),
/// none runs `body` — members that wait for each other would otherwise wait for one that never
/// came — and the error says which thread was refused.
pub(super) fn run_team(threads: usize, body: &(dyn Fn(TeamMember) + Sync)) -> Result<(), PlatformError> {
    let gate = StartGate::default();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads - 1);
        let mut refused = None;
        for index in 1..threads {
            let gate = &gate;
            let spawned =
                std::thread::Builder::new().name(format!("conlab-team-{index}")).spawn_scoped(scope, move || {
                    if gate.wait() {
                        body(TeamMember { index, size: threads });
                    }
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    refused = Some(PlatformError::Unavailable(format!(
                        "the system refused thread {} of a team of {threads} ({error}): its limit on threads \
                         (ulimit -u, kernel.threads-max) or on memory for their stacks",
                        index + 1
                    )));
                    break;
                }
            }
        }
        gate.open(refused.is_none());
        let first = match refused {
            Some(error) => Err(error),
            None => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(TeamMember { index: 0, size: threads })))
                    .map_err(|payload| PlatformError::MemberPanicked(panic_message(&*payload)))
            }
        };
        handles.into_iter().fold(first, |outcome, handle| {
            outcome.and(handle.join().map_err(|payload| PlatformError::MemberPanicked(panic_message(&*payload))))
        })
    })
}

/// Holds a team's members until every one has started: then lets them run, or tells them to
/// leave.
#[derive(Default)]
struct StartGate {
    /// `None` while threads are being started; then whether the team runs.
    verdict: std::sync::Mutex<Option<bool>>,
    decided: std::sync::Condvar,
}

impl StartGate {
    fn open(&self, run: bool) {
        *self.verdict.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run);
        self.decided.notify_all();
    }

    /// Whether this member runs, once that is decided.
    fn wait(&self) -> bool {
        let verdict = self.verdict.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let verdict = self.decided.wait_while(verdict, |verdict| verdict.is_none());
        verdict.unwrap_or_else(std::sync::PoisonError::into_inner).unwrap_or(false)
    }
}

pub(super) fn spawn_and_join(body: Box<dyn FnOnce() + Send>) -> Result<(), PlatformError> {
    let handle = std::thread::Builder::new()
        .spawn(body)
        .map_err(|error| PlatformError::Unavailable(format!("could not spawn a thread: {error}")))?;
    handle.join().map_err(|payload| PlatformError::MemberPanicked(panic_message(&*payload)))
}

pub(super) struct RayonBackend(rayon::ThreadPool);

impl RayonBackend {
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
