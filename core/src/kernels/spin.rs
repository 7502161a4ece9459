//! Busy work of a chosen length: the "critical section" and "work between acquisitions" of the
//! lock experiments.
//!
//! [`Spinner::calibrate`] times a long loop once and converts nanoseconds into iterations, so
//! the same parameter means the same time natively and in a browser worker (where the clock is
//! too coarse — 5 µs — to time short sections directly).

use std::hint::black_box;

use crate::platform::Instant;

/// Iterations per nanosecond of [`Spinner::spin`] on this machine.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spinner {
    iterations_per_ns: f64,
}

impl Spinner {
    /// Measures the loop over ~5 ms (best of three, so a preemption does not skew it).
    pub fn calibrate() -> Self {
        const ITERATIONS: u64 = 2_000_000;
        let best = (0..3)
            .map(|_| {
                let start = Instant::now();
                spin_iterations(ITERATIONS);
                start.elapsed().as_nanos().max(1) as f64
            })
            .fold(f64::INFINITY, f64::min);
        Self { iterations_per_ns: ITERATIONS as f64 / best }
    }

    /// Busy-works for about `nanos` nanoseconds.
    #[inline]
    pub fn spin(self, nanos: f64) {
        if nanos > 0.0 {
            spin_iterations((nanos * self.iterations_per_ns) as u64);
        }
    }
}

#[inline]
fn spin_iterations(iterations: u64) {
    let mut x = 0u64;
    for i in 0..iterations {
        x = black_box(x.wrapping_add(i));
    }
    black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_spins_take_roughly_the_asked_time() {
        let spinner = Spinner::calibrate();
        assert!(spinner.iterations_per_ns > 0.0);
        let start = Instant::now();
        spinner.spin(2_000_000.0);
        let took = start.elapsed().as_secs_f64();
        // Generous both ways: a busy machine slows calibration (shorter spins) or the spin itself
        // (longer); the point is the order of magnitude.
        assert!((0.0002..0.5).contains(&took), "2 ms of spinning took {took} s");
    }
}
