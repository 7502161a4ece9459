//! Resilience and flow control on the asyncio-style loop: a flaky downstream service and the
//! patterns that meet its failures.
//!
//! - [`downstream`]: the service — a log-normal latency with a tail, an error rate, an outage
//!   window, and `workers` requests in service at once; the rest wait in its admission queue,
//!   so load beyond capacity turns into queueing delay and retries feed back into the load.
//! - [`admission`]: what the service does with a request that finds every worker busy —
//!   queue it without bound, reject it when the queue is full, serve the newest first (LIFO),
//!   or drop while the standing delay stays above target (CoDel).
//! - [`backoff`], [`budget`], [`breaker`]: the client's retry delays (exponential, full and
//!   decorrelated jitter), its retry budget, and its circuit breaker.
//! - [`client`]: one client composing them — per-attempt timeout, retries, budget, breaker,
//!   hedged requests and deadline propagation — and counting what happened.
//! - [`batcher`]: micro-batching in front of a service whose cost is fixed + per item.
//!
//! Everything runs on one [`crate::aio::EventLoop`], on its real clock or on its virtual one: a
//! virtual run replays seconds of traffic in milliseconds with exact times, which is how the
//! tests pin the backoff schedule, the breaker's transitions, CoDel's drops and the batcher's
//! flushes. Nothing here blocks: every wait is a timer on the loop.

pub mod admission;
pub mod backoff;
pub mod batcher;
pub mod breaker;
pub mod budget;
pub mod client;
pub mod downstream;

use std::time::Duration;

use crate::kernels::splitmix64;

/// A seeded generator (SplitMix64) for latencies, errors and jitter: the same seed replays the
/// same run on the virtual clock.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (splitmix64(&mut self.0) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// A standard normal variate (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// z of the standard normal's 0.50, 0.95 and 0.99 quantiles.
const Z: [(f64, f64); 3] = [(0.50, 0.0), (0.95, 1.644_853_627), (0.99, 2.326_347_874)];

/// A log-normal latency given by its median and its p99: ln X ~ N(ln median, σ²) with
/// σ = ln(p99 / median) / z₀.₉₉ — a body near the median and a long right tail, the shape
/// measured service latencies have.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormal {
    median: Duration,
    sigma: f64,
}

impl LogNormal {
    /// `p99` below `median` is taken as equal to it (no tail).
    pub fn from_median_p99(median: Duration, p99: Duration) -> Self {
        let median = median.max(Duration::from_nanos(1));
        let sigma = (p99.max(median).as_secs_f64() / median.as_secs_f64()).ln() / Z[2].1;
        Self { median, sigma }
    }

    /// A latency; exactly the median when there is no tail.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        if self.sigma == 0.0 {
            return self.median;
        }
        self.median.mul_f64((self.sigma * rng.normal()).exp().min(1e6))
    }

    /// The 0.50, 0.95 or 0.99 quantile (`None` for other levels).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let z = Z.iter().find(|(level, _)| (level - q).abs() < 1e-9)?.1;
        Some(self.median.mul_f64((self.sigma * z).exp()))
    }

    pub fn mean(&self) -> Duration {
        self.median.mul_f64((self.sigma * self.sigma / 2.0).exp())
    }
}

/// Events counted per time slice of a run: the time series the page draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Slices {
    width: Duration,
    counts: Vec<u64>,
}

impl Slices {
    /// `width` is at least 1 µs.
    pub fn new(width: Duration) -> Self {
        Self { width: width.max(Duration::from_micros(1)), counts: Vec::new() }
    }

    pub fn add(&mut self, at: Duration) {
        let index = (at.as_nanos() / self.width.as_nanos()) as usize;
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += 1;
    }

    pub fn width(&self) -> Duration {
        self.width
    }

    /// The count in each slice, the first starting at loop time 0.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The count in slice `index` (0 past the end).
    pub fn at(&self, index: usize) -> u64 {
        self.counts.get(index).copied().unwrap_or(0)
    }

    /// Events in [from, to), counted by whole slices (a slice counts when it starts inside).
    pub fn between(&self, from: Duration, to: Duration) -> u64 {
        let first = from.as_nanos().div_ceil(self.width.as_nanos()) as usize;
        let end = to.as_nanos().div_ceil(self.width.as_nanos()) as usize;
        (first..end).map(|index| self.at(index)).sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_normal_has_the_median_and_p99_it_was_given() {
        let latency = LogNormal::from_median_p99(Duration::from_millis(10), Duration::from_millis(50));
        let mut rng = Rng::new(7);
        let mut samples: Vec<Duration> = (0..100_000).map(|_| latency.sample(&mut rng)).collect();
        samples.sort_unstable();
        let (median, p99) = (samples[50_000].as_secs_f64(), samples[99_000].as_secs_f64());
        assert!((median - 0.010).abs() < 0.0003, "median {median}");
        assert!((p99 - 0.050).abs() < 0.003, "p99 {p99}");
        let p95 = latency.quantile(0.95).unwrap().as_secs_f64();
        assert!((p95 - samples[95_000].as_secs_f64()).abs() < 0.002, "p95 {p95}");
        assert!(latency.quantile(0.9).is_none());
        let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
        assert!((mean - latency.mean().as_secs_f64()).abs() < 0.0003, "mean {mean}");
    }

    #[test]
    fn slices_count_by_start_time() {
        let mut slices = Slices::new(Duration::from_millis(10));
        for ms in [0, 5, 9, 10, 35] {
            slices.add(Duration::from_millis(ms));
        }
        assert_eq!(slices.counts(), &[3, 1, 0, 1]);
        assert_eq!(slices.between(Duration::from_millis(10), Duration::from_millis(40)), 2);
        assert_eq!(
            slices.between(Duration::from_millis(1), Duration::from_millis(40)),
            2,
            "slice 0 starts before 1 ms"
        );
        assert_eq!(slices.total(), 5);
    }
}
