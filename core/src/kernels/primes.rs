//! Counting primes up to N, two ways.
//!
//! - **Segmented sieve of Eratosthenes**: the primes up to √N are sieved first (sequentially,
//!   tiny); then each segment of [`SEGMENT`] numbers is crossed out independently with them —
//!   a cache-sized, embarrassingly parallel piece of work, all pieces costing about the same.
//! - **Trial division**: each number is divided by the odd numbers up to its square root. A
//!   number's cost grows with √n and primes cost the most, so equal blocks of numbers are
//!   unequal in work: later blocks are heavier, a static split finishes last on its last thread.
//!
//! Both produce (count, sum) of the primes, combined over pieces.

use super::{Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// Numbers per sieve segment (32 KiB of flags: one L1 cache).
pub const SEGMENT: usize = 1 << 15;
/// Numbers per trial-division piece.
const TRIAL_PIECE: usize = 1 << 11;

pub const SIEVE: KernelSpec = KernelSpec {
    id: "sieve",
    help: "segmented sieve of Eratosthenes, 32 Ki numbers per segment",
    unit: "numbers",
    size_means: "N (count primes ≤ N)",
    default_size: 48_000_000,
    sizes: (2, 1 << 31),
    work_exponent: 1,
    build: |n, _| Box::new(Primes { limit: n, sieve: true }),
};

pub const TRIAL_DIVISION: KernelSpec = KernelSpec {
    id: "trial-division",
    help: "trial division by odd numbers up to √n: later numbers cost more",
    unit: "numbers",
    size_means: "N (count primes ≤ N)",
    default_size: 1_000_000,
    sizes: (2, 1 << 26),
    work_exponent: 1,
    build: |n, _| Box::new(Primes { limit: n, sieve: false }),
};

struct Primes {
    limit: usize,
    sieve: bool,
}

type CountAndSum = (u64, u64);

fn add((count_a, sum_a): CountAndSum, (count_b, sum_b): CountAndSum) -> CountAndSum {
    (count_a + count_b, sum_a.wrapping_add(sum_b))
}

impl Kernel for Primes {
    fn work(&self) -> f64 {
        self.limit as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        let numbers = self.limit + 1;
        let (count, sum) = if self.sieve {
            let base = base_primes(self.limit.isqrt());
            par.map_reduce(numbers, SEGMENT, |range| sieve_segment(&base, range.start, range.end), add)?
        } else {
            par.map_reduce(
                numbers,
                TRIAL_PIECE,
                |range| range.filter(|n| is_prime(*n as u64)).fold((0, 0), |acc, n| add(acc, (1, n as u64))),
                add,
            )?
        };
        Ok(super::fnv1a([count, sum]))
    }
}

/// The primes ≤ `limit`, by a plain sieve.
pub fn base_primes(limit: usize) -> Vec<usize> {
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    for n in 2..=limit {
        if !composite[n] {
            primes.push(n);
            (n * n..=limit).step_by(n).for_each(|multiple| composite[multiple] = true);
        }
    }
    primes
}

/// (count, sum) of the primes in `start..end`, crossing out multiples of `base` (all primes
/// ≤ √(end − 1)).
fn sieve_segment(base: &[usize], start: usize, end: usize) -> CountAndSum {
    let mut composite = vec![false; end - start];
    for &p in base {
        let first = (p * p).max(start.div_ceil(p) * p);
        (first..end).step_by(p).for_each(|multiple| composite[multiple - start] = true);
    }
    (start.max(2)..end).filter(|n| !composite[n - start]).fold((0, 0), |acc, n| add(acc, (1, n as u64)))
}

/// Trial division by 2 and the odd numbers up to √n.
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 {
        return false;
    }
    (3..).step_by(2).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the kernel against a plain sieve; the number of primes.
    fn count(limit: usize, sieve: bool) -> usize {
        let mut primes = Primes { limit, sieve };
        let digest = Par::reference(|par| primes.run(par)).unwrap();
        let expected = base_primes(limit);
        assert_eq!(digest, crate::kernels::fnv1a([expected.len() as u64, expected.iter().sum::<usize>() as u64]));
        expected.len()
    }

    #[test]
    fn both_ways_agree_with_a_plain_sieve() {
        for limit in [2, 3, 10, 97, SEGMENT - 1, SEGMENT, 3 * SEGMENT + 5] {
            count(limit, true);
            count(limit, false);
        }
        assert_eq!(count(100, true), 25);
        assert_eq!(count(1_000_000, true), 78_498);
    }
}
