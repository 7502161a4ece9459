//! The sampling profiler: one thread wakes at a set rate and reads every worker's published
//! stack ([`StackBoard`]) without stopping it — py-spy's model. Natively it is a thread of the
//! run's team; in a browser, a Web Worker of the team reading the same shared memory.
//!
//! Each tick reads every board once; a board its owner kept changing through the reader's
//! retries counts as torn and is left out. The gaps between ticks are jittered — each drawn
//! uniformly from ½ to 1½ periods — so that a program whose loop period divides the sampler's
//! cannot be sampled at the same phase every time (aliasing, which no number of samples would
//! average out). A tick the sampler woke too late for is skipped, not made up (the OS's sleep
//! granularity caps the rate a sleeping sampler reaches, and the run reports the rate it got).
//! Each sample stands for the mean time between the ticks taken.
//!
//! A sampler that shares a core with the thread it samples must preempt it to see it run. Under
//! Linux's EEVDF scheduler a woken thread does not preempt one running out its slice (0.75 ms or
//! more), so a sampler there read a thread that computes for 80 µs between 1 ms sleeps only while
//! it slept: 0 of 227 samples on a CPU. The sampler asks for the shortest slice (100 µs), which
//! gives its wake-ups the earlier deadline (`platform::realtime::request_time_slice`). perf
//! samples from an interrupt and has no such blind spot; py-spy, a sleeping process, does.

use std::time::Duration;

use super::board::StackBoard;
use super::{Profile, ProfileBuilder};
use crate::platform::{self, Instant};

/// The time slice the sampler asks for: the shortest the kernel grants.
const SLICE: Duration = Duration::from_micros(100);

/// The rates a sampler may be asked for, in Hz.
pub const RATES_HZ: std::ops::RangeInclusive<f64> = 10.0..=10_000.0;

/// What a sampler saw and what it cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampled {
    pub profile: Profile,
    /// Ticks taken.
    pub ticks: u64,
    /// Boards given up on because their owner was mid-push at every retry.
    pub torn: u64,
    /// The sampler's own time per stack read, in ns.
    pub read_ns: f64,
    /// Ticks per second actually reached.
    pub rate_hz: f64,
}

/// Samples `boards` (named `names`, their frame ids indexing `frames`) `rate_hz` times a second
/// until `keep_going` says stop. Empty stacks (a thread not started yet, or done) are skipped.
pub fn sample(
    boards: &[StackBoard],
    names: &[String],
    frames: Vec<String>,
    rate_hz: f64,
    keep_going: &dyn Fn() -> bool,
) -> Sampled {
    let period = Duration::from_secs_f64(1.0 / rate_hz.clamp(*RATES_HZ.start(), *RATES_HZ.end()));
    let mut builder = ProfileBuilder::with_frames(frames, period.as_nanos() as f64);
    let (mut ticks, mut torn, mut reads, mut reading) = (0u64, 0u64, 0u64, Duration::ZERO);
    // Best effort: where the kernel has no per-thread slices the sampler still runs, and on a
    // core of its own it needs none.
    let _ = platform::realtime::request_time_slice(SLICE);
    let start = Instant::now();
    let mut jitter = Jitter::seeded(start.nanos_since_epoch());
    let mut next = start.plus(jitter.gap(period));
    loop {
        let now = Instant::now();
        if now < next {
            platform::sleep(next.duration_since(now));
        }
        if !keep_going() {
            break;
        }
        let before = Instant::now();
        for (board, name) in boards.iter().zip(names) {
            match board.read() {
                Some(snapshot) if !snapshot.frames.is_empty() => {
                    builder.add(name, snapshot.frames, snapshot.state, 1);
                    reads += 1;
                }
                Some(_) => reads += 1,
                None => torn += 1,
            }
        }
        let after = Instant::now();
        reading += after.duration_since(before);
        ticks += 1;
        // The next tick on the grid that is still ahead.
        next = next.plus(jitter.gap(period));
        while next <= after {
            next = next.plus(jitter.gap(period));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut profile = builder.finish();
    if ticks > 0 {
        profile.period_ns = elapsed * 1e9 / ticks as f64;
    }
    Sampled {
        profile,
        ticks,
        torn,
        read_ns: reading.as_nanos() as f64 / reads.max(1) as f64,
        rate_hz: ticks as f64 / elapsed.max(1e-9),
    }
}

/// The gaps between ticks: uniform in ½–1½ periods (xorshift64*, seeded from the clock).
struct Jitter(u64);

impl Jitter {
    fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn gap(&mut self, period: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        period.mul_f64(0.5 + unit)
    }
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;
    use crate::profile::{ThreadState, View};
    use crate::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_sampler_finds_each_thread_where_it_spends_its_time() {
        // Thread 0 sits in `work` and thread 1 waits for the GIL in `main`, for ~60 ms.
        let boards = [StackBoard::default(), StackBoard::default()];
        boards[0].push(0);
        boards[0].push(1);
        boards[1].push(0);
        boards[1].set_state(ThreadState::Gil);
        let names = ["thread 0".to_string(), "thread 1".to_string()];
        let frames = vec!["main".to_string(), "work".to_string()];
        let keep = AtomicBool::new(true);
        let result = crate::sync::Mutex::new(Sampled::default());
        platform::run_team(2, |member| {
            if member.index == 0 {
                *crate::sync::lock(&result) =
                    sample(&boards, &names, frames.clone(), 1000.0, &|| keep.load(Ordering::Acquire));
            } else {
                platform::sleep(Duration::from_millis(60));
                keep.store(false, Ordering::Release);
            }
        })
        .unwrap();
        let result = result.into_inner().unwrap();
        let profile = &result.profile;
        assert!(result.ticks >= 10, "{result:?}");
        assert_eq!(profile.samples(View::Wall), 2 * result.ticks - result.torn);
        assert_eq!(profile.self_share("work", View::OnCpu), 1.0);
        assert!((profile.thread_share("thread 1", View::Wall) - 0.5).abs() < 0.05);
        assert!(result.rate_hz > 100.0 && result.rate_hz <= 1100.0, "{result:?}");
    }

    #[test]
    fn a_sampler_on_the_core_of_the_thread_it_samples_still_sees_its_short_bursts() {
        // One thread computes ~80 µs, then sleeps 1 ms, for ~100 ms: ~7% of its time on a CPU.
        // Pinned to one core with it, a sampler that waited for the core read only the sleeps
        // (0 of ~200 samples on CPU here, kernel 6.18); with its short time slice it preempts.
        if !eevdf_slices() {
            return println!("skipped: no EEVDF custom slices here (Linux 6.12 or later)");
        }
        let board = [StackBoard::default()];
        board[0].push(0);
        let keep = AtomicBool::new(true);
        let result = crate::sync::Mutex::new(Sampled::default());
        let unpinned = AtomicBool::new(false);
        platform::run_team(2, |member| {
            if platform::realtime::pin_current_thread(0).is_err() {
                unpinned.store(true, Ordering::Relaxed);
            }
            if member.index == 0 {
                *crate::sync::lock(&result) =
                    sample(&board, &["thread 0".into()], vec!["main".into()], 2000.0, &|| keep.load(Ordering::Acquire));
                return;
            }
            for _ in 0..100 {
                board[0].set_state(ThreadState::Running);
                let start = Instant::now();
                while start.elapsed() < Duration::from_micros(80) {
                    std::hint::spin_loop();
                }
                board[0].set_state(ThreadState::Io);
                platform::sleep(Duration::from_millis(1));
            }
            keep.store(false, Ordering::Release);
        })
        .unwrap();
        let result = result.into_inner().unwrap();
        if unpinned.into_inner() {
            return println!("skipped: CPU 0 is not this process's to pin to");
        }
        let on_cpu = result.profile.samples(View::OnCpu);
        assert!(on_cpu >= 2, "{on_cpu} of {} samples on a CPU", result.profile.samples(View::Wall));
    }

    /// Whether this kernel has EEVDF's per-thread slices (Linux 6.12 or later).
    fn eevdf_slices() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut numbers = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
        (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (6, 12)
    }
}
