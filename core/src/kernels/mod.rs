//! Compute kernels, free of experiment plumbing: each takes plain inputs, checks for
//! cancellation through a callback between chunks of a few microseconds to milliseconds, and
//! returns its output or a digest of it.
//!
//! The [`catalogue`] holds the kernels `scaling` runs: each is written once against [`Par`] and
//! so runs sequentially, on rayon, on our work-stealing pool and as a static split over a team,
//! with the same output (checked against the sequential run's digest). Floating-point kernels
//! keep every sum in one fixed order, or use integer-valued data, so their outputs are
//! bit-identical whatever the thread count.

pub mod blur;
pub mod forkjoin;
pub mod histogram;
pub mod life;
pub mod mandelbrot;
pub mod matmul;
pub mod nbody;
pub mod par;
pub mod pi;
pub mod primes;
pub mod scan;
pub mod sort;
pub mod spin;
pub mod sum_squares;
pub mod wordcount;

pub use par::{Par, Strategy};

use crate::platform::PlatformError;

/// A kernel with its input built, ready to run under any [`Par`].
pub trait Kernel: Send {
    /// Work in one run, in its spec's unit.
    fn work(&self) -> f64;
    /// One run; the digest of its output (meaningless if the run was cancelled).
    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError>;
}

/// A kernel in the catalogue: what it computes and what its one size parameter means.
pub struct KernelSpec {
    pub id: &'static str,
    pub help: &'static str,
    /// What [`Kernel::work`] counts ("flops", "pixels").
    pub unit: &'static str,
    /// What `size` is ("matrix side", "elements"), its default and allowed range.
    pub size_means: &'static str,
    pub default_size: usize,
    pub sizes: (usize, usize),
    /// Work grows as size^exponent (matrix multiply: 3), for growing the work p-fold.
    pub work_exponent: u32,
    pub build: fn(size: usize, seed: u64) -> Box<dyn Kernel>,
}

impl KernelSpec {
    /// The size whose work is `factor` times that of `size` (Gustafson's scaled problem).
    pub fn grown(&self, size: usize, factor: usize) -> usize {
        let grown = size as f64 * (factor as f64).powf(1.0 / f64::from(self.work_exponent));
        (grown.round() as usize).clamp(self.sizes.0, self.sizes.1)
    }
}

/// Every kernel `scaling` can run, in catalogue order.
pub fn catalogue() -> &'static [KernelSpec] {
    &[
        mandelbrot::SPEC,
        matmul::NAIVE,
        matmul::BLOCKED,
        sort::MERGESORT,
        sort::QUICKSORT,
        nbody::SPEC,
        primes::SIEVE,
        primes::TRIAL_DIVISION,
        pi::SPEC,
        histogram::ATOMIC,
        histogram::LOCAL,
        scan::SPEC,
        life::SPEC,
        wordcount::SPEC,
        blur::SPEC,
    ]
}

/// An order-sensitive digest of `values` computed in parallel: the wrapping sum over i of
/// a SplitMix64 finaliser of (i, word(values\[i\])), so the sum's order does not matter but
/// every position does.
pub fn digest_par<T: Sync>(
    par: &Par<'_, '_>,
    values: &[T],
    word: impl Fn(&T) -> u64 + Sync,
) -> Result<u64, PlatformError> {
    par.map_reduce(
        values.len(),
        1 << 16,
        |range| {
            values[range.clone()]
                .iter()
                .zip(range)
                .fold(0u64, |sum, (value, i)| sum.wrapping_add(mix(i as u64, word(value))))
        },
        u64::wrapping_add,
    )
}

/// A well-mixed 64-bit function of a position and a value.
pub fn mix(index: u64, value: u64) -> u64 {
    let mut state = value ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03);
    splitmix64(&mut state)
}

/// FNV-1a, 64-bit: a cheap, order-sensitive digest of a kernel's output.
pub fn fnv1a(words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, word| {
        word.to_le_bytes().iter().fold(hash, |h, byte| (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
    })
}

/// SplitMix64 (Steele, Lea & Flood 2014): deterministic inputs from a seed.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;
    use crate::platform::RayonPool;
    use crate::sched::steal::StealPool;
    use crate::trace::Recorder;

    /// A small size for each kernel: a few milliseconds even in a debug build.
    fn small(spec: &KernelSpec) -> usize {
        (spec.default_size / 64).max(spec.sizes.0).max(if spec.work_exponent > 1 { 40 } else { 5000 })
    }

    #[test]
    fn every_kernel_gives_the_sequential_digest_under_every_strategy() {
        let trace = Recorder::new(true);
        let keep_going = || true;
        for spec in catalogue() {
            let mut kernel = (spec.build)(small(spec), 17);
            let expected = Par::reference(|par| kernel.run(par)).unwrap();
            assert!(kernel.work() > 0.0, "{}", spec.id);
            for threads in [1, 3] {
                let team = kernel.run(&Par::new(Strategy::Team(threads), &keep_going, &trace)).unwrap();
                let rayon = RayonPool::new(threads)
                    .unwrap()
                    .install(|| kernel.run(&Par::new(Strategy::Rayon, &keep_going, &trace)).unwrap());
                let (steal, _) = StealPool::run(threads, &trace, |pool| {
                    kernel.run(&Par::new(Strategy::Steal(pool), &keep_going, &trace)).unwrap()
                })
                .unwrap();
                assert_eq!([team, rayon, steal], [expected; 3], "{} at {threads} threads", spec.id);
            }
        }
    }

    #[test]
    fn sizes_grow_with_the_work() {
        let matmul = &matmul::NAIVE;
        assert_eq!(matmul.grown(100, 8), 200);
        assert_eq!(sort::MERGESORT.grown(1000, 3), 3000);
        assert_eq!(nbody::SPEC.grown(1000, 4), 2000);
        assert_eq!(matmul.grown(2000, 8), matmul.sizes.1, "clamped to the allowed range");
        let ids: Vec<_> = catalogue().iter().map(|spec| spec.id).collect();
        assert!(catalogue().iter().all(|spec| (spec.sizes.0..=spec.sizes.1).contains(&spec.default_size)), "{ids:?}");
    }
}
