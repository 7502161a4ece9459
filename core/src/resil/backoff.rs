//! Retry delays: immediate, exponential, and the two jittered schedules Marc Brooker measured
//! in "Exponential Backoff and Jitter" (AWS Architecture Blog, 2015).
//!
//! | schedule | delay before retry n (n ≥ 1) |
//! |---|---|
//! | immediate | 0 |
//! | exponential | min(cap, base · 2ⁿ⁻¹) |
//! | full jitter | uniform(0, min(cap, base · 2ⁿ⁻¹)) |
//! | decorrelated jitter | min(cap, uniform(base, 3 · previous)), previous starting at base |
//!
//! Exponential backoff lowers the retry rate of one client but keeps clients that failed
//! together in step: they retry together and collide again. Jitter spreads them; full jitter
//! spreads the most, decorrelated jitter keeps delays growing while spreading them.

use std::time::Duration;

use super::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Immediate,
    Exponential,
    FullJitter,
    Decorrelated,
}

/// A schedule with its base and cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub schedule: Schedule,
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const IMMEDIATE: Self = Self { schedule: Schedule::Immediate, base: Duration::ZERO, cap: Duration::ZERO };

    /// The delay before retry `retry` (1 for the first retry); `previous` is the delay before
    /// the retry before it (`base` for the first), which only decorrelated jitter reads.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut Rng) -> Duration {
        let exponential = || {
            let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
            self.base.checked_mul(factor).map_or(self.cap, |delay| delay.min(self.cap))
        };
        match self.schedule {
            Schedule::Immediate => Duration::ZERO,
            Schedule::Exponential => exponential(),
            Schedule::FullJitter => exponential().mul_f64(rng.uniform()),
            Schedule::Decorrelated => {
                let (low, high) = (self.base.as_secs_f64(), previous.max(self.base).as_secs_f64() * 3.0);
                Duration::from_secs_f64(rng.between(low, high)).min(self.cap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn backoff(schedule: Schedule) -> Backoff {
        Backoff { schedule, base: MS(10), cap: MS(1000) }
    }

    /// Delays for retries 1..=n, each fed the previous one.
    fn delays(backoff: Backoff, n: u32, seed: u64) -> Vec<Duration> {
        let mut rng = Rng::new(seed);
        let mut previous = backoff.base;
        (1..=n)
            .map(|retry| {
                previous = backoff.delay(retry, previous, &mut rng);
                previous
            })
            .collect()
    }

    #[test]
    fn exponential_doubles_from_base_up_to_cap() {
        let expected: Vec<Duration> = [10, 20, 40, 80, 160, 320, 640, 1000, 1000].map(MS).to_vec();
        assert_eq!(delays(backoff(Schedule::Exponential), 9, 1), expected);
        assert_eq!(backoff(Schedule::Exponential).delay(200, MS(0), &mut Rng::new(1)), MS(1000), "no overflow");
        assert_eq!(delays(Backoff::IMMEDIATE, 3, 1), vec![Duration::ZERO; 3]);
    }

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling_and_spreads_over_it() {
        let ceiling = delays(backoff(Schedule::Exponential), 8, 1);
        for seed in 0..200 {
            for (delay, ceiling) in delays(backoff(Schedule::FullJitter), 8, seed).iter().zip(&ceiling) {
                assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            }
        }
        // Retry 4's ceiling is 80 ms: a thousand clients' delays fill its quarters evenly.
        let mut quarters = [0; 4];
        for seed in 0..1000 {
            let delay = delays(backoff(Schedule::FullJitter), 4, seed)[3];
            quarters[(delay.as_secs_f64() / 0.020) as usize] += 1;
        }
        assert!(quarters.iter().all(|&n| (200..300).contains(&n)), "{quarters:?}");
    }

    #[test]
    fn decorrelated_jitter_grows_from_base_within_three_times_the_last_delay() {
        for seed in 0..200 {
            let mut previous = MS(10);
            for delay in delays(backoff(Schedule::Decorrelated), 12, seed) {
                assert!(delay >= MS(10) && delay <= (previous * 3).min(MS(1000)), "{delay:?} after {previous:?}");
                previous = delay;
            }
        }
    }
}
