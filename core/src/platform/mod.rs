//! Everything that differs between a native process and a browser worker, in one place.
//!
//! conlab-core runs natively (std threads, `std::time::Instant`) and on
//! `wasm32-unknown-unknown` with real threads (Web Workers sharing one `WebAssembly.Memory`,
//! started by wasm-bindgen-rayon). On wasm32 `std::thread::spawn` fails and `Instant::now()`
//! panics, so no other module calls them: they come here for
//!
//! - [`Instant`]: a monotonic clock (std natively, `performance.timeOrigin + performance.now()` in
//!   a worker, made comparable across workers);
//! - [`hardware_threads`], [`max_team_threads`], [`timer_resolution`], [`info`];
//! - [`run_team`]: run one closure on N threads at once and join them (scoped std threads
//!   natively, all started before any runs, so that a refused thread fails the team cleanly;
//!   `rayon::broadcast` on the worker pool in wasm);
//! - [`spawn_and_join`]: one new OS thread per call (natively only: browsers cannot);
//! - [`WorkerProcess`]: a share-nothing worker for process pools (a child process natively, a
//!   Web Worker with its own wasm instance in browsers) — natively also forked with a listening
//!   socket to share (a pre-forked server's worker, told to stop by [`parent_spoke`]) — and
//!   [`cpu_time`];
//! - [`RayonPool`]: rayon restricted to exactly N worker threads;
//! - [`sleep`]: block the calling thread (never called on a page's main thread); [`yield_now`];
//! - [`wait`], [`wake_one`], [`wake_all`]: futex-style parking on a 32-bit atomic;
//! - [`socket`]: loopback TCP, blocking and on a readiness reactor (natively mio; browsers have
//!   no sockets and say so), and [`describe_io_error`], which names the open-files limit;
//! - [`realtime`]: pinning a thread to a CPU, a short time slice, `SCHED_FIFO` priorities and a
//!   priority-inheritance mutex (Linux; browsers say they cannot).
//!
//! The backend is chosen by `cfg` here and nowhere else; an unsupported target fails to compile
//! with a message rather than misbehaving at run time (the pattern of parking_lot's
//! `thread_parker`).

mod futex;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(not(target_arch = "wasm32"))]
#[path = "native.rs"]
mod backend;

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[path = "wasm.rs"]
mod backend;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
compile_error!(
    "conlab-core on wasm32 needs real threads: build with nightly, `-Z build-std=panic_abort,std` \
     and the `+atomics` rustflags from .cargo/config.toml (`cargo xtask lab` does this)"
);

#[cfg(not(target_arch = "wasm32"))]
#[path = "process_native.rs"]
mod process;

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[path = "process_wasm.rs"]
mod process;

/// Real-time scheduling: natively on Linux; in browsers every call says it cannot.
#[cfg(not(target_arch = "wasm32"))]
#[path = "realtime_native.rs"]
pub mod realtime;

#[cfg(target_arch = "wasm32")]
#[path = "realtime_wasm.rs"]
pub mod realtime;

/// Loopback TCP: blocking sockets and the event loop's readiness reactor (mio); in browsers
/// every bind and connect says a page has no sockets.
#[cfg(not(target_arch = "wasm32"))]
#[path = "socket_native.rs"]
pub mod socket;

#[cfg(target_arch = "wasm32")]
#[path = "socket_wasm.rs"]
pub mod socket;

#[cfg(target_arch = "wasm32")]
pub use backend::register_worker_pool;
pub use futex::{wait, wake_all, wake_one};
#[cfg(target_arch = "wasm32")]
pub use process::{
    answer_as_worker, killed_process_workers, register_process_workers, register_spawner, share_as_worker,
};
/// Worker processes: natively the registered executable over pipes; in browsers Web Workers
/// each with its own wasm instance and memory.
pub use process::{parent_spoke, WorkerProcess};
#[cfg(not(target_arch = "wasm32"))]
pub use process::{serve_as_fork_server, serve_as_worker, set_worker_executable, FORK_SERVER_ARG};

#[cfg(not(target_arch = "wasm32"))]
#[path = "ipc_native.rs"]
mod ipc;

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[path = "ipc_wasm.rs"]
mod ipc;

/// Memory and a server several worker processes share: natively a `/dev/shm` mapping and a
/// forked server on a Unix socket; in browsers the experiment worker's own memory, reached by
/// the process workers through JavaScript's `Atomics`.
pub use ipc::{AttachedWords, Service, ServiceClient, ServiceHandler, SharedWords};

/// 32-bit words that several threads or processes read and write atomically (every operation
/// sequentially consistent, as JavaScript's `Atomics` are), with futex-style blocking: the
/// ground a lock between processes stands on.
#[allow(clippy::len_without_is_empty, reason = "a region always has words")]
pub trait Words {
    fn len(&self) -> usize;
    fn load(&self, index: usize) -> u32;
    fn store(&self, index: usize, value: u32);
    /// Adds (wrapping) and returns the old value.
    fn fetch_add(&self, index: usize, value: u32) -> u32;
    fn swap(&self, index: usize, value: u32) -> u32;
    /// `Ok(old)` if the word was `current` and is now `new`, else `Err(actual)`.
    fn compare_exchange(&self, index: usize, current: u32, new: u32) -> Result<u32, u32>;
    /// Blocks while the word is `expected`, for a while at most; may return spuriously.
    fn wait(&self, index: usize, expected: u32);
    /// Wakes one thread blocked in [`Words::wait`] on the word, in any process.
    fn wake_one(&self, index: usize);
}

/// `Words` over atomics in this process's memory: `$atomics` gives the slice, `$wait`/`$wake`
/// block and wake on one of them.
macro_rules! words_in_memory {
    ($type:ty, |$this:ident| $atomics:expr, $wait:path, $wake:path) => {
        impl $crate::platform::Words for $type {
            fn len(&self) -> usize {
                let $this = self;
                $atomics.len()
            }
            fn load(&self, index: usize) -> u32 {
                let $this = self;
                $atomics[index].load($crate::sync::atomic::Ordering::SeqCst)
            }
            fn store(&self, index: usize, value: u32) {
                let $this = self;
                $atomics[index].store(value, $crate::sync::atomic::Ordering::SeqCst)
            }
            fn fetch_add(&self, index: usize, value: u32) -> u32 {
                let $this = self;
                $atomics[index].fetch_add(value, $crate::sync::atomic::Ordering::SeqCst)
            }
            fn swap(&self, index: usize, value: u32) -> u32 {
                let $this = self;
                $atomics[index].swap(value, $crate::sync::atomic::Ordering::SeqCst)
            }
            fn compare_exchange(&self, index: usize, current: u32, new: u32) -> Result<u32, u32> {
                use $crate::sync::atomic::Ordering::SeqCst;
                let $this = self;
                $atomics[index].compare_exchange(current, new, SeqCst, SeqCst)
            }
            fn wait(&self, index: usize, expected: u32) {
                let $this = self;
                $wait(&$atomics[index], expected)
            }
            fn wake_one(&self, index: usize) {
                let $this = self;
                $wake(&$atomics[index])
            }
        }
    };
}
pub(crate) use words_in_memory;

/// Words of this process's own memory (threads, or a lock's model check under loom).
pub struct LocalWords(pub Box<[crate::sync::atomic::AtomicU32]>);

impl LocalWords {
    /// `len` zeroed words.
    pub fn new(len: usize) -> Self {
        Self((0..len).map(|_| crate::sync::atomic::AtomicU32::new(0)).collect())
    }
}

words_in_memory!(LocalWords, |this| this.0, futex::wait, futex::wake_one);

/// How a worker process starts: Python's `multiprocessing` start methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMethod {
    /// A fresh process running the program from its start (`spawn`: macOS's and Windows'
    /// default; natively the `conlab` binary re-executed, in browsers a Web Worker).
    Spawn,
    /// A copy of this process by `fork()` (`fork`: Linux's default until Python 3.14). Native only.
    Fork,
    /// A fork of a small server process started once (`forkserver`: Linux's default from
    /// Python 3.14). Native only.
    ForkServer,
}

impl StartMethod {
    /// What Python 3.11 uses here: `fork` on Linux natively, `spawn` in browsers (the only one).
    pub const PLATFORM_DEFAULT: StartMethod =
        if cfg!(target_arch = "wasm32") { StartMethod::Spawn } else { StartMethod::Fork };
}

/// How a message's payload reaches a worker process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Copied: through a pipe natively, by structured clone (`postMessage`) in browsers.
    Copy,
    /// Moved without a copy: `postMessage` with the buffer in the transfer list (browsers only).
    Transfer,
}

impl Delivery {
    /// `Ok` if this platform can deliver this way.
    pub fn check(self) -> Result<(), PlatformError> {
        process::check_delivery(self)
    }
}

/// What a worker process does with a message: `answer(message, payload, shared)` returns the
/// reply; `shared` holds the bytes last placed with [`WorkerProcess::share`] (empty if none).
pub type WorkerAnswer = fn(&[u8], &[u8], &[u8]) -> Vec<u8>;

/// This process's memory, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// In RAM now (a thread's stack counts only the pages it has touched).
    pub resident: u64,
    /// Address space reserved (a thread's whole stack counts, touched or not).
    pub reserved: u64,
}

/// This process's memory (Linux: `/proc/self/statm`); `None` where the platform does not say
/// (other systems, browsers). Kernel memory — a thread's kernel stack, a socket's buffers — is in
/// neither figure.
pub fn memory_use() -> Option<MemoryUse> {
    backend::memory_use()
}

/// Hands memory the allocator holds free back to the system (glibc's `malloc_trim`), so that a
/// reading of [`memory_use`] after new allocations counts them and not a reuse of memory an
/// earlier run freed; nothing where there is no such call.
pub fn release_free_memory() {
    backend::release_free_memory()
}

/// CPU time (user + system) used so far by this process and its finished worker processes;
/// `None` where the platform has no CPU clock (browsers).
pub fn cpu_time() -> Option<Duration> {
    process::cpu_time()
}

/// A point on the platform's monotonic clock, as the time since a process-wide epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The current time.
    pub fn now() -> Self {
        Self(backend::since_epoch())
    }

    /// Time passed since `self`.
    pub fn elapsed(self) -> Duration {
        Self::now().duration_since(self)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// The instant `duration` after `self`.
    pub fn plus(self, duration: Duration) -> Instant {
        Self(self.0.saturating_add(duration))
    }

    /// Nanoseconds since the process-wide epoch (the time base of traces).
    pub fn nanos_since_epoch(self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Logical processors the platform reports (`available_parallelism`,
/// `navigator.hardwareConcurrency`).
pub fn hardware_threads() -> usize {
    backend::hardware_threads().max(1)
}

/// The largest team [`run_team`] can start right now (natively a fixed cap; in wasm the size of
/// the worker pool, or 1 when no pool could be started).
pub fn max_team_threads() -> usize {
    backend::max_team_threads()
}

/// Whether code speeds up over its first runs on every thread: a browser compiles wasm in
/// tiers, per worker, and swaps the optimised code in only when a function is entered again
/// (no on-stack replacement), so a worker's first runs of a hot loop take up to twice as long
/// — for a varying number of runs, as its compiler threads get a core. Natively the code is
/// compiled ahead of time.
pub const CODE_WARMS_UP: bool = backend::CODE_WARMS_UP;

/// Blocks the calling thread for `duration` (in wasm: `memory.atomic.wait32` in a worker).
/// A profiled run records the sleep ([`crate::trace::ambient`]).
pub fn sleep(duration: Duration) {
    if crate::trace::ambient::recording() {
        let start = Instant::now();
        backend::sleep(duration);
        crate::trace::ambient::blocked("sleeping", start);
    } else {
        backend::sleep(duration)
    }
}

/// Offers the rest of the calling thread's time slice to other threads: what a spin-wait does
/// now and then when threads outnumber cores (a CPU hint only in wasm, which cannot yield).
pub fn yield_now() {
    backend::yield_now()
}

/// The smallest step the clock is seen to take (browsers coarsen `performance.now()`).
pub fn timer_resolution() -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..16 {
        let start = Instant::now();
        let mut next = Instant::now();
        while next == start {
            next = Instant::now();
        }
        best = best.min(next.duration_since(start));
    }
    best
}

/// Facts about where this code runs, for a result's environment block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlatformInfo {
    /// `native` or `wasm32 (browser worker)`.
    pub platform: String,
    /// Operating system and architecture (`linux x86_64`) or the browser's user agent.
    pub system: String,
    pub hardware_threads: usize,
    pub max_team_threads: usize,
    /// Whether the page is cross-origin isolated (always true natively: no such limit).
    pub cross_origin_isolated: bool,
    pub timer_resolution_ns: u64,
}

/// Describes the running platform.
pub fn info() -> PlatformInfo {
    PlatformInfo {
        platform: backend::PLATFORM_NAME.to_string(),
        system: backend::system(),
        hardware_threads: hardware_threads(),
        max_team_threads: max_team_threads(),
        cross_origin_isolated: backend::cross_origin_isolated(),
        timer_resolution_ns: u64::try_from(timer_resolution().as_nanos()).unwrap_or(u64::MAX),
    }
}

/// A thread's place in a team started by [`run_team`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TeamMember {
    /// 0-based, unique within the team.
    pub index: usize,
    /// Number of threads in the team.
    pub size: usize,
}

/// Why a team or pool could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// More threads were asked for than the platform can give.
    TooManyThreads { requested: usize, available: usize, why: &'static str },
    /// A team of zero threads.
    NoThreads,
    /// A team member panicked; the message is the panic's.
    MemberPanicked(String),
    /// The platform could not start the threads.
    Unavailable(String),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyThreads { requested, available, why } => {
                write!(f, "{requested} threads requested but this platform can run at most {available} at once ({why})")
            }
            Self::NoThreads => write!(f, "a thread team needs at least 1 thread"),
            Self::MemberPanicked(message) => write!(f, "a worker thread panicked: {message}"),
            Self::Unavailable(message) => write!(f, "threads unavailable: {message}"),
        }
    }
}

impl std::error::Error for PlatformError {}

/// `Ok` if a team of `requested` threads can start here, else the error [`run_team`] would give.
pub fn check_team_size(requested: usize) -> Result<(), PlatformError> {
    if requested == 0 {
        return Err(PlatformError::NoThreads);
    }
    let available = max_team_threads();
    if requested > available {
        return Err(PlatformError::TooManyThreads { requested, available, why: backend::TEAM_LIMIT_REASON });
    }
    Ok(())
}

/// `error`'s text, and where it is the process running out of files (`EMFILE`) the limit it
/// ran into: each connection holds a descriptor on each side of it (a thread per connection
/// one more, to shut it down from another thread).
pub fn describe_io_error(error: &std::io::Error) -> String {
    match (error.raw_os_error(), backend::open_files_limit()) {
        (Some(EMFILE), Some(limit)) => format!(
            "{error}: this process may hold {limit} open files (`ulimit -n`), and a connection in the lab holds \
             one for the client's end and one or two for the server's"
        ),
        _ => error.to_string(),
    }
}

/// Linux's "too many open files" (per process).
const EMFILE: i32 = 24;

/// Runs `body` on `threads` threads at once, each with its [`TeamMember`], and returns when all
/// have finished. All members are live at the same time, so they may wait for each other.
pub fn run_team<F>(threads: usize, body: F) -> Result<(), PlatformError>
where
    F: Fn(TeamMember) + Sync,
{
    check_team_size(threads)?;
    // A profiled run's members record their bodies and their blocking.
    match crate::trace::ambient::current() {
        None => backend::run_team(threads, &body),
        ambient => {
            let start = Instant::now();
            let ran = backend::run_team(threads, &|member: TeamMember| {
                crate::trace::ambient::member(ambient, member.index, || body(member))
            });
            crate::trace::ambient::blocked("waiting for its team", start);
            ran
        }
    }
}

/// Starts a new OS thread running `body` and waits for it: what "a thread per task" costs.
/// Browsers cannot do this (see the wasm backend's error), so it fails there.
pub fn spawn_and_join(body: impl FnOnce() + Send + 'static) -> Result<(), PlatformError> {
    backend::spawn_and_join(Box::new(body))
}

/// rayon, held to exactly `threads` worker threads.
///
/// Natively a dedicated `rayon::ThreadPool`. In wasm the one global pool (wasm-bindgen-rayon's)
/// is shared: [`RayonPool::install`] parks the surplus workers on a gate for the duration of the
/// call, so exactly `threads` of them take rayon jobs. Either way `install` runs its closure on
/// one of the pool's workers.
pub struct RayonPool {
    inner: backend::RayonBackend,
    threads: usize,
}

impl RayonPool {
    /// A pool of `threads` workers, or an error naming the platform's limit.
    pub fn new(threads: usize) -> Result<Self, PlatformError> {
        check_team_size(threads)?;
        Ok(Self { inner: backend::RayonBackend::new(threads)?, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `op` with rayon's parallel iterators and `join` confined to this pool's workers.
    pub fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        self.inner.install(op)
    }
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn clock_advances_and_is_monotonic() {
        let start = Instant::now();
        sleep(Duration::from_millis(2));
        let end = Instant::now();
        assert!(end > start);
        assert!(end.duration_since(start) >= Duration::from_millis(2));
        assert_eq!(start.duration_since(end), Duration::ZERO);
    }

    #[test]
    fn team_members_run_concurrently_with_distinct_indices() {
        let seen = AtomicUsize::new(0);
        let arrived = AtomicUsize::new(0);
        run_team(4, |member| {
            assert_eq!(member.size, 4);
            seen.fetch_or(1 << member.index, Ordering::Relaxed);
            // A spin barrier: only terminates if all four are live at once.
            arrived.fetch_add(1, Ordering::AcqRel);
            while arrived.load(Ordering::Acquire) < 4 {
                std::hint::spin_loop();
            }
        })
        .unwrap();
        assert_eq!(seen.into_inner(), 0b1111);
    }

    #[test]
    fn team_size_limits_are_errors_not_panics() {
        assert_eq!(run_team(0, |_| {}), Err(PlatformError::NoThreads));
        let too_many = max_team_threads() + 1;
        let error = run_team(too_many, |_| {}).unwrap_err();
        assert!(error.to_string().contains(&format!("{too_many} threads requested")), "{error}");
    }

    #[test]
    fn a_panicking_member_is_reported() {
        let error = run_team(2, |member| {
            if member.index == 1 {
                panic!("member one fails");
            }
        })
        .unwrap_err();
        assert_eq!(error, PlatformError::MemberPanicked("member one fails".into()));
    }

    #[test]
    fn the_process_memory_grows_by_what_is_touched() {
        let Some(before) = memory_use() else { return };
        // Read through `black_box`, so that an optimised build keeps the writes.
        let touched = std::hint::black_box(vec![1u8; 16 << 20]);
        let after = memory_use().unwrap();
        assert!(after.resident >= before.resident + (12 << 20), "{before:?} → {after:?}");
        assert!(after.reserved >= after.resident);
        drop(touched);
    }

    #[test]
    fn rayon_pool_uses_exactly_its_threads() {
        use rayon::prelude::*;
        let pool = RayonPool::new(2).unwrap();
        let max_index =
            pool.install(|| (0..10_000).into_par_iter().map(|_| rayon::current_thread_index().unwrap()).max());
        assert!(max_index.unwrap() < 2);
        assert_eq!(pool.install(rayon::current_num_threads), 2);
        assert!(pool.install(rayon::current_thread_index).is_some(), "install runs its closure on a worker");
    }
}
