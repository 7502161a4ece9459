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
//!
//! Trial division divides in 32 bits: its sizes stop at 2^26, so every number and divisor fits.
//! On a 64-bit host LLVM already divides such operands in 32 bits (it tests the high halves
//! before a 64-bit `div`, which is 1.5–3× slower on many x86 cores); V8 compiles wasm's
//! `i64.rem_u` to the 64-bit `div` as written, which made this kernel 1.7× slower in the
//! browser than natively.

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
                |range| range.filter(|&n| is_prime(small(n))).fold((0, 0), |acc, n| add(acc, (1, n as u64))),
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
        // Offsets into the segment: the loop's own test is the bounds check.
        let mut offset = first - start;
        while offset < composite.len() {
            composite[offset] = true;
            offset += p;
        }
    }
    let from = start.max(2).min(end);
    count_unmarked(from, &composite[from - start..])
}

/// (count, sum) of the numbers `from + i` whose `composite[i]` is false, without a branch per
/// number: a prime adds 1 to the count and its value, masked in, to the sum. The branch on
/// `composite` mispredicted about once per prime, and the loop vectorises, in wasm with simd128
/// (enabled here, where it pays: see ARCHITECTURE.md): a 48 M sieve's counting took 25.1 → 23.7
/// ms natively, 39.5 → 25.0 ms in V8 (node 20; 33.2 ms without SIMD).
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn count_unmarked(from: usize, composite: &[bool]) -> CountAndSum {
    let (mut count, mut sum) = (0u64, 0u64);
    for (number, &crossed_out) in (from as u64..).zip(composite) {
        let prime = u64::from(!crossed_out);
        count += prime;
        sum = sum.wrapping_add(prime.wrapping_neg() & number);
    }
    (count, sum)
}

/// A trial-division number as 32 bits (the kernel's sizes stop at 2^26).
fn small(n: usize) -> u32 {
    u32::try_from(n).expect("trial division's sizes stop at 2^26")
}

/// Trial division by 2 and the odd numbers up to √n.
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 {
        return false;
    }
    // The divisor counts and squares in 64 bits (past 2^16 its square overflows 32) and divides
    // in 32: it stays under 2^16 + 2.
    (3..).step_by(2).take_while(|d: &u64| d * d <= u64::from(n)).all(|d| n % d as u32 != 0)
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

    #[test]
    fn trial_division_holds_up_to_the_top_of_32_bits() {
        // The square root's loop bound cannot overflow: the largest 32-bit prime, its
        // neighbours, and the square of the largest 16-bit prime.
        assert!(is_prime(4_294_967_291));
        assert!(!is_prime(u32::MAX) && !is_prime(4_294_967_293));
        assert!(!is_prime(65_521 * 65_521) && is_prime(65_521));
    }
}
