//! Summary statistics for repeated timings.
//!
//! Timings on a shared machine are skewed and noisy, so the headline figure is the **median**,
//! with a distribution-free 95% confidence interval from order statistics (the ranks come from
//! the Binomial(n, ½) distribution of how many samples fall below the true median). The mean
//! comes with a Student-t interval. With fewer than 6 samples no pair of ranks reaches 95%; the
//! interval is then [min, max] and [`Summary::median_ci_level`] says what it really covers.
//! A relative spread of the median's interval above [`NOISY_SPREAD`] sets [`Summary::noisy`].

use serde::{Deserialize, Serialize};

/// Relative width of the median's CI, (hi − lo) / median, above which a result is flagged noisy.
pub const NOISY_SPREAD: f64 = 0.10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub stddev: f64,
    pub median_ci: (f64, f64),
    /// The confidence the median's interval actually has (≥ 0.95 unless n < 6).
    pub median_ci_level: f64,
    pub mean_ci: (f64, f64),
    /// (median_ci.1 − median_ci.0) / median.
    pub relative_spread: f64,
    pub noisy: bool,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none or any is not finite.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let stddev =
            if n > 1 { (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        let (lo_rank, hi_rank, median_ci_level) = median_ci_ranks(n);
        let median_ci = (sorted[lo_rank], sorted[hi_rank]);
        let half_width = if n > 1 { student_t_975(n - 1) * stddev / (n as f64).sqrt() } else { 0.0 };
        let relative_spread = if median > 0.0 { (median_ci.1 - median_ci.0) / median } else { 0.0 };
        Some(Self {
            n,
            min: sorted[0],
            max: sorted[n - 1],
            median,
            mean,
            stddev,
            median_ci,
            median_ci_level,
            mean_ci: (mean - half_width, mean + half_width),
            relative_spread,
            noisy: n > 1 && relative_spread > NOISY_SPREAD,
        })
    }
}

/// 0-based ranks (lo, hi) of the narrowest symmetric order-statistic interval around the median
/// whose coverage P(lo < B ≤ hi), B ~ Binomial(n, ½), is at least 0.95, and that coverage.
/// Falls back to (0, n − 1) when even that is below 0.95.
pub fn median_ci_ranks(n: usize) -> (usize, usize, f64) {
    assert!(n > 0, "median_ci_ranks of no samples");
    let pmf = binomial_half_pmf(n);
    // Coverage of [x_(k), x_(n-1-k)] (0-based) is P(k+1 ≤ B ≤ n-1-k).
    let coverage = |k: usize| -> f64 { pmf[k + 1..n - k].iter().sum() };
    let full = if n >= 2 { coverage(0) } else { 0.0 };
    let mut best = (0, n - 1, full);
    let mut k = 1;
    while k + 1 < n - k && coverage(k) >= 0.95 {
        best = (k, n - 1 - k, coverage(k));
        k += 1;
    }
    best
}

fn binomial_half_pmf(n: usize) -> Vec<f64> {
    // In log space so large n does not overflow.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64;
    let mut pmf = Vec::with_capacity(n + 1);
    for k in 0..=n {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        pmf.push((ln_choose + ln_half_n).exp());
    }
    pmf
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
pub fn student_t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        // Cornish–Fisher expansion around the normal quantile; < 0.001 off for df > 30.
        _ => {
            let z: f64 = 1.959_964;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// Speedup of `time` over `baseline` (both medians): baseline / time.
pub fn speedup(baseline: f64, time: f64) -> Option<f64> {
    (time > 0.0 && baseline > 0.0).then(|| baseline / time)
}

/// Parallel efficiency: speedup over one thread, divided by the thread count.
pub fn efficiency(speedup_vs_one: f64, threads: usize) -> f64 {
    speedup_vs_one / threads as f64
}

/// Amdahl's law: the speedup on `threads` threads of a program whose `serial` fraction of the
/// one-thread time cannot run in parallel, 1 / (f + (1 − f) / p).
pub fn amdahl_speedup(serial: f64, threads: f64) -> f64 {
    1.0 / (serial + (1.0 - serial) / threads)
}

/// Gustafson's law: the scaled speedup when the parallel part grows with the threads,
/// f + (1 − f)·p = p − f·(p − 1).
pub fn gustafson_speedup(serial: f64, threads: f64) -> f64 {
    threads - serial * (threads - 1.0)
}

/// The serial fraction f that best explains measured (threads, speedup over one thread) points
/// under Amdahl's law, by least squares on the time per unit of work: 1/S − 1/p = f·(1 − 1/p),
/// a line through the origin (the Karp–Flatt metric is this for a single point). `None` without
/// a point above one thread. Clamped to [0, 1]: superlinear points (a cache effect) give 0.
pub fn amdahl_fit(points: &[(usize, f64)]) -> Option<f64> {
    fit_through_origin(points.iter().map(|&(p, s)| {
        let p = p as f64;
        (1.0 - 1.0 / p, 1.0 / s - 1.0 / p)
    }))
}

/// The serial fraction f that best explains (threads, scaled speedup) points under Gustafson's
/// law, by least squares on p − S = f·(p − 1).
pub fn gustafson_fit(points: &[(usize, f64)]) -> Option<f64> {
    fit_through_origin(points.iter().map(|&(p, s)| {
        let p = p as f64;
        (p - 1.0, p - s)
    }))
}

/// The slope of y = f·x by least squares over points with x > 0, clamped to [0, 1].
fn fit_through_origin(points: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let (xy, xx) =
        points.filter(|(x, y)| *x > 0.0 && y.is_finite()).fold((0.0, 0.0), |(xy, xx), (x, y)| (xy + x * y, xx + x * x));
    (xx > 0.0).then(|| (xy / xx).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_recover_the_serial_fraction_of_their_own_law() {
        let threads = [1, 2, 4, 8, 16];
        let amdahl: Vec<(usize, f64)> = threads.iter().map(|&p| (p, amdahl_speedup(0.1, p as f64))).collect();
        assert!(close(amdahl_fit(&amdahl).unwrap(), 0.1));
        let gustafson: Vec<(usize, f64)> = threads.iter().map(|&p| (p, gustafson_speedup(0.25, p as f64))).collect();
        assert!(close(gustafson_fit(&gustafson).unwrap(), 0.25));
        assert!(close(amdahl_speedup(0.0, 8.0), 8.0) && close(gustafson_speedup(1.0, 8.0), 1.0));
        assert_eq!(amdahl_fit(&[(1, 1.0)]), None, "one thread says nothing about the serial part");
        assert_eq!(amdahl_fit(&[(2, 2.5)]), Some(0.0), "superlinear: clamped");
        // Noise around f = 0.2 at two threads (S = 1.667): a least-squares compromise.
        let noisy = amdahl_fit(&[(2, 1.6), (2, 1.75)]).unwrap();
        assert!((0.14..0.26).contains(&noisy), "{noisy}");
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(1.0)
    }

    #[test]
    fn basic_moments() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!((s.n, s.min, s.max, s.median, s.mean), (5, 1.0, 5.0, 3.0, 3.0));
        assert!(close(s.stddev, 2.5f64.sqrt()));
        let half = 2.776 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!(close(s.mean_ci.0, 3.0 - half) && close(s.mean_ci.1, 3.0 + half));
        assert_eq!(Summary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap().median, 2.5);
    }

    #[test]
    fn empty_or_non_finite_samples_have_no_summary() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn median_ci_matches_published_ranks() {
        // Small-sample tables (e.g. Conover, Practical Nonparametric Statistics): n = 6 gives
        // [x(1), x(6)] at 96.9%; n = 10 gives [x(2), x(9)] at 97.9%; n = 20 gives [x(6), x(15)] at 95.9%.
        let (lo, hi, level) = median_ci_ranks(6);
        assert_eq!((lo, hi), (0, 5));
        assert!((level - 0.96875).abs() < 1e-9);
        let (lo, hi, level) = median_ci_ranks(10);
        assert_eq!((lo, hi), (1, 8));
        assert!((level - 0.978_515_625).abs() < 1e-9);
        let (lo, hi, level) = median_ci_ranks(20);
        assert_eq!((lo, hi), (5, 14));
        assert!((level - 0.958_610_5).abs() < 1e-6);
    }

    #[test]
    fn few_samples_say_how_little_their_interval_covers() {
        let (lo, hi, level) = median_ci_ranks(3);
        assert_eq!((lo, hi), (0, 2));
        assert!((level - 0.75).abs() < 1e-12);
        assert_eq!(median_ci_ranks(1), (0, 0, 0.0));
    }

    #[test]
    fn wide_spread_is_flagged_noisy() {
        let steady = Summary::of(&[100.0, 101.0, 99.0, 100.5, 100.2, 99.8]).unwrap();
        assert!(!steady.noisy, "{steady:?}");
        let noisy = Summary::of(&[100.0, 150.0, 80.0, 120.0, 60.0, 140.0]).unwrap();
        assert!(noisy.noisy, "{noisy:?}");
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(student_t_975(1), 12.706);
        assert!((student_t_975(60) - 2.000).abs() < 0.001);
        assert!((student_t_975(120) - 1.980).abs() < 0.001);
    }

    #[test]
    fn speedup_and_efficiency() {
        assert_eq!(speedup(10.0, 2.5), Some(4.0));
        assert_eq!(speedup(10.0, 0.0), None);
        assert_eq!(efficiency(3.0, 4), 0.75);
    }
}

/// A latency histogram with logarithmic buckets (8 per power of two, ≤ 12.5% relative error),
/// cheap to record into and to merge — the idea of HdrHistogram (Tene), much simplified.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BUCKETS: u64 = 8;

impl LogHistogram {
    fn bucket(value: u64) -> usize {
        if value < SUB_BUCKETS {
            return value as usize;
        }
        let power = 63 - u64::from(value.leading_zeros());
        let sub = (value >> (power - 3)) & (SUB_BUCKETS - 1);
        ((power - 2) * SUB_BUCKETS + sub) as usize
    }

    /// The smallest value that falls in `bucket`'s successor, minus one: the bucket's upper bound.
    fn upper_bound(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUB_BUCKETS {
            return bucket;
        }
        let power = bucket / SUB_BUCKETS + 2;
        let sub = bucket % SUB_BUCKETS;
        ((SUB_BUCKETS + sub + 1) << (power - 3)) - 1
    }

    pub fn record(&mut self, value: u64) {
        let bucket = Self::bucket(value);
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &LogHistogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as its bucket's upper bound (capped at the max seen).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::upper_bound(bucket).min(self.max);
            }
        }
        self.max
    }
}

/// Jain's fairness index of shares x: (Σx)² / (n·Σx²) — 1 when all are equal, 1/n when one
/// thread gets everything (Jain, Chiu & Hawe 1984).
pub fn jain_fairness(shares: &[f64]) -> f64 {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        1.0
    } else {
        sum * sum / (shares.len() as f64 * squares)
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;

    #[test]
    fn buckets_are_within_an_eighth() {
        for value in [0u64, 1, 7, 8, 9, 15, 16, 100, 1_000, 123_456, 10_000_000_000] {
            let bound = LogHistogram::upper_bound(LogHistogram::bucket(value));
            assert!(bound >= value && (bound - value) as f64 <= value as f64 / 8.0 + 1.0, "{value} → {bound}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut histogram = LogHistogram::default();
        for value in 1..=1000 {
            histogram.record(value);
        }
        let p50 = histogram.quantile(0.5);
        let p99 = histogram.quantile(0.99);
        assert!((500..=563).contains(&p50), "{p50}");
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(histogram.quantile(1.0), 1000);
        let mut other = LogHistogram::default();
        other.record(5_000);
        histogram.merge(&other);
        assert_eq!((histogram.count(), histogram.max()), (1001, 5000));
    }

    #[test]
    fn fairness_index() {
        assert_eq!(jain_fairness(&[5.0, 5.0, 5.0, 5.0]), 1.0);
        assert_eq!(jain_fairness(&[8.0, 0.0, 0.0, 0.0]), 0.25);
        assert!((jain_fairness(&[1.0, 3.0]) - 0.8).abs() < 1e-12);
    }
}
