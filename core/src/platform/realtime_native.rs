//! Real-time scheduling, natively (Linux): pinning the calling thread to one CPU, asking for a
//! short time slice (EEVDF), giving it a `SCHED_FIFO` priority, and a pthread mutex with or
//! without priority inheritance (`PTHREAD_PRIO_INHERIT`: while a higher-priority thread is
//! blocked on it, its holder runs at that priority). Setting a real-time priority needs
//! `CAP_SYS_NICE` (or an `RLIMIT_RTPRIO` allowance); without it the calls say so and nothing
//! changes.

#![allow(clippy::disallowed_methods, reason = "the platform layer is the one door to the OS's scheduler")]

use std::cell::UnsafeCell;
use std::io;

use super::PlatformError;

fn refused(what: &str, error: io::Error) -> PlatformError {
    PlatformError::Unavailable(format!("{what}: {error}"))
}

/// Pins the calling thread to CPU `cpu`: from now on it runs there only.
pub fn pin_current_thread(cpu: usize) -> Result<(), PlatformError> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(PlatformError::Unavailable(format!("CPU {cpu} is beyond the CPU set's size")));
    }
    // SAFETY: a zeroed `cpu_set_t` is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above) and `set` is a live cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the set is live for the call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(refused(&format!("could not pin a thread to CPU {cpu}"), io::Error::last_os_error()));
    }
    Ok(())
}

/// Gives the calling thread `SCHED_FIFO` priority `priority` (1–99): it runs until it blocks,
/// yields or a higher-priority thread is ready on its CPU.
pub fn set_current_fifo_priority(priority: i32) -> Result<(), PlatformError> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: the calling thread's own handle and a live parameter struct.
    let error = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if error != 0 {
        return Err(refused(
            "the OS refused a real-time priority (SCHED_FIFO needs CAP_SYS_NICE or an RLIMIT_RTPRIO allowance)",
            io::Error::from_raw_os_error(error),
        ));
    }
    Ok(())
}

/// `struct sched_attr` as `sched_setattr(2)` takes it (its first, version-0 layout).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime_ns: u64,
    deadline_ns: u64,
    period_ns: u64,
}

/// Asks the kernel for a time slice of `slice` for the calling thread, a normal (`SCHED_OTHER`)
/// thread still. Under EEVDF (Linux 6.12 and later) a thread with a shorter slice gets an earlier
/// virtual deadline, so when it wakes it preempts a thread running out a longer slice on its CPU
/// instead of waiting for it to block; older kernels accept the call and ignore the slice. Needs
/// no privilege: the kernel clamps the slice to 0.1–100 ms.
pub fn request_time_slice(slice: std::time::Duration) -> Result<(), PlatformError> {
    let runtime_ns = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: 0,
        priority: 0,
        runtime_ns,
        deadline_ns: 0,
        period_ns: 0,
    };
    // SAFETY: pid 0 is the calling thread; `attr` is a live, fully initialised sched_attr whose
    // `size` field says how much of it the kernel may read.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(refused("the OS refused a time slice", io::Error::last_os_error()));
    }
    Ok(())
}

/// A pthread mutex, with priority inheritance or without (the default protocol).
pub struct PriorityMutex {
    /// Boxed: a pthread mutex must not move once initialised.
    mutex: Box<UnsafeCell<libc::pthread_mutex_t>>,
}

// SAFETY: a pthread mutex is made to be locked and unlocked from any thread.
unsafe impl Sync for PriorityMutex {}
// SAFETY: as above; it is destroyed by whoever drops it, once no thread holds it.
unsafe impl Send for PriorityMutex {}

impl PriorityMutex {
    pub fn new(inherit: bool) -> Result<Self, PlatformError> {
        let mutex = Box::new(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
        // SAFETY: a zeroed attribute object is initialised by `pthread_mutexattr_init` before
        // use and destroyed after; the mutex is initialised in place, where it stays.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            let protocol = if inherit { libc::PTHREAD_PRIO_INHERIT } else { libc::PTHREAD_PRIO_NONE };
            let set = libc::pthread_mutexattr_setprotocol(&mut attr, protocol);
            let made = if set == 0 { libc::pthread_mutex_init(mutex.get(), &attr) } else { set };
            libc::pthread_mutexattr_destroy(&mut attr);
            if made != 0 {
                return Err(refused("could not make a pthread mutex", io::Error::from_raw_os_error(made)));
            }
        }
        Ok(Self { mutex })
    }

    /// Runs `f` holding the mutex.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unlock<'a>(&'a PriorityMutex);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: this guard exists only while the calling thread holds the mutex.
                unsafe { libc::pthread_mutex_unlock(self.0.mutex.get()) };
            }
        }
        // SAFETY: an initialised mutex that does not move; a default or PI mutex's lock cannot
        // fail for a thread that does not hold it already.
        unsafe { libc::pthread_mutex_lock(self.mutex.get()) };
        let _held = Unlock(self);
        f()
    }
}

impl Drop for PriorityMutex {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody holds or waits for the mutex any more.
        unsafe { libc::pthread_mutex_destroy(self.mutex.get()) };
    }
}
