//! A 256-bin histogram of bytes, two ways.
//!
//! - **Shared atomics**: every thread does `fetch_add(1, Relaxed)` on one shared array of
//!   counters. Correct (an atomic increment is never lost) but each increment takes the
//!   counter's cache line exclusively, so threads hitting the same bins take turns — and the
//!   line bounces between cores even when they hit different bins on the same line.
//! - **Per-thread + merge**: each piece counts into its own private array, merged at the end
//!   (256 additions per piece): no sharing while counting, the textbook fix.
//!
//! Relaxed is enough for the counters: nothing is published through them, and the join at the
//! end of the parallel section orders every increment before the final read.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;
use crate::sync::atomic::{AtomicU32, Ordering};

pub const BINS: usize = 256;
/// Bytes per piece.
const PIECE: usize = 1 << 16;

pub const ATOMIC: KernelSpec = KernelSpec {
    id: "histogram-atomic",
    help: "256-bin byte histogram, every thread incrementing shared atomic counters",
    unit: "bytes",
    size_means: "bytes",
    default_size: 16 << 20,
    sizes: (1, 1 << 28),
    work_exponent: 1,
    build: |n, seed| Box::new(Histogram::new(n, seed, true)),
};

pub const LOCAL: KernelSpec = KernelSpec {
    id: "histogram-local",
    help: "256-bin byte histogram, private counts per piece merged at the end",
    unit: "bytes",
    size_means: "bytes",
    default_size: 64 << 20,
    sizes: (1, 1 << 28),
    work_exponent: 1,
    build: |n, seed| Box::new(Histogram::new(n, seed, false)),
};

struct Histogram {
    bytes: Vec<u8>,
    shared: Vec<AtomicU32>,
    atomic: bool,
}

impl Histogram {
    fn new(n: usize, seed: u64, atomic: bool) -> Self {
        let mut state = seed;
        // Skewed like text: the low bits of two random bytes ANDed favour small values.
        let bytes = (0..n).map(|_| (splitmix64(&mut state) & 0xff & (splitmix64(&mut state) | 0x0f)) as u8).collect();
        Self { bytes, shared: (0..BINS).map(|_| AtomicU32::new(0)).collect(), atomic }
    }

    fn counts(&self, par: &Par<'_, '_>) -> Result<Vec<u64>, PlatformError> {
        let bytes = &self.bytes;
        if self.atomic {
            self.shared.iter().for_each(|bin| bin.store(0, Ordering::Relaxed));
            par.map_reduce(
                bytes.len(),
                PIECE,
                |range| {
                    bytes[range].iter().for_each(|b| {
                        self.shared[usize::from(*b)].fetch_add(1, Ordering::Relaxed);
                    })
                },
                |(), ()| (),
            )?;
            Ok(self.shared.iter().map(|bin| u64::from(bin.load(Ordering::Relaxed))).collect())
        } else {
            let counts = par.map_reduce(
                bytes.len(),
                PIECE,
                |range| {
                    // On this thread's stack: a byte always indexes it (no bounds checks), and no
                    // other thread's counts share its cache lines — heap blocks of two threads
                    // can sit side by side (one heap in wasm), and then their hot bins would.
                    let mut bins = [0u64; BINS];
                    bytes[range].iter().for_each(|b| bins[usize::from(*b)] += 1);
                    bins.to_vec()
                },
                |mut a, b| {
                    a.resize(BINS, 0);
                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    a
                },
            )?;
            Ok(counts)
        }
    }
}

impl Kernel for Histogram {
    fn work(&self) -> f64 {
        self.bytes.len() as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        Ok(super::fnv1a(self.counts(par)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_count_every_byte_once() {
        let (atomic, local) = (Histogram::new(300_001, 5, true), Histogram::new(300_001, 5, false));
        let mut expected = vec![0u64; BINS];
        atomic.bytes.iter().for_each(|b| expected[usize::from(*b)] += 1);
        let trace = crate::trace::Recorder::new(false);
        let team = Par::new(super::super::Strategy::Team(3), &|| true, &trace);
        assert_eq!(atomic.counts(&team).unwrap(), expected);
        assert_eq!(local.counts(&team).unwrap(), expected);
        assert_eq!(Par::reference(|par| local.counts(par)).unwrap(), expected);
    }
}
