//! Native backend: std threads and `std::time::Instant`.

#![allow(clippy::disallowed_methods, reason = "the platform layer is the one door to std's clock, threads and sleep")]

use std::sync::OnceLock;
use std::time::Duration;

use super::{panic_message, PlatformError, TeamMember};

pub(super) const PLATFORM_NAME: &str = "native";
pub(super) const TEAM_LIMIT_REASON: &str = "conlab caps native teams at 512 OS threads";
const MAX_TEAM: usize = 512;

pub(super) const CODE_WARMS_UP: bool = false;

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
        let first =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(TeamMember { index: 0, size: threads })));
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
