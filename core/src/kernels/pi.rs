//! Monte Carlo π: the fraction of random points in the unit square that fall inside the quarter
//! circle is π/4.
//!
//! Reproducible whatever the thread count: the samples are cut into fixed blocks of
//! [`BLOCK`], and block b draws from its own SplitMix64 stream seeded by (seed, b). Which thread
//! runs a block never changes what it draws — the pattern of per-task seeding (NumPy's
//! `SeedSequence.spawn`, rayon's examples) rather than one shared generator behind a lock.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// Samples per independently seeded block.
pub const BLOCK: usize = 1 << 16;

pub const SPEC: KernelSpec = KernelSpec {
    id: "monte-carlo-pi",
    help: "Monte Carlo π, one seeded random stream per block of 65 536 samples",
    unit: "samples",
    size_means: "samples",
    default_size: 32 << 20,
    sizes: (1, 1 << 31),
    work_exponent: 1,
    build: |samples, seed| Box::new(MonteCarloPi { samples, seed }),
};

pub struct MonteCarloPi {
    pub samples: usize,
    pub seed: u64,
}

impl MonteCarloPi {
    /// Points of block `block` (samples `range`) inside the quarter circle.
    fn hits(&self, block: usize, samples: usize) -> u64 {
        let mut state = super::mix(block as u64, self.seed);
        let mut unit = || (splitmix64(&mut state) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        (0..samples)
            .filter(|_| {
                let (x, y) = (unit(), unit());
                x * x + y * y < 1.0
            })
            .count() as u64
    }

    /// The estimate from a hit count.
    pub fn estimate(&self, hits: u64) -> f64 {
        4.0 * hits as f64 / self.samples as f64
    }

    pub fn count_hits(&self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        let blocks = self.samples.div_ceil(BLOCK);
        par.map_reduce(
            blocks,
            1,
            |range| range.map(|block| self.hits(block, BLOCK.min(self.samples - block * BLOCK))).sum(),
            |a, b| a + b,
        )
    }
}

impl Kernel for MonteCarloPi {
    fn work(&self) -> f64 {
        self.samples as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        self.count_hits(par)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_close_and_the_same_on_every_run() {
        let pi = MonteCarloPi { samples: 4 * BLOCK + 123, seed: 42 };
        let hits = Par::reference(|par| pi.count_hits(par)).unwrap();
        assert_eq!(hits, Par::reference(|par| pi.count_hits(par)).unwrap());
        assert!((pi.estimate(hits) - std::f64::consts::PI).abs() < 0.02, "{}", pi.estimate(hits));
    }
}
