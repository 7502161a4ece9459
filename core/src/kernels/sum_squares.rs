//! Sum of squares: a memory-bound reduction.
//!
//! Inputs are below 2¹⁶, so each square fits in 32 bits and a sum of up to 2³² of them in a u64:
//! the total is exact whatever the order of additions, so every parallel split must match the
//! sequential sum bit for bit.

/// Elements summed between two looks at the cancel flag (~10–50 µs of work).
pub const CHUNK: usize = 1 << 16;

/// `len` pseudo-random inputs below 2¹⁶ from `seed`.
pub fn inputs(len: usize, seed: u64) -> Vec<u32> {
    let mut state = seed;
    (0..len).map(|_| (super::splitmix64(&mut state) >> 48) as u32).collect()
}

/// Σ x² over `values`.
#[inline]
pub fn sum_of_squares(values: &[u32]) -> u64 {
    values.iter().map(|&x| u64::from(x) * u64::from(x)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sum() {
        assert_eq!(sum_of_squares(&[1, 2, 3]), 14);
        assert_eq!(sum_of_squares(&[u16::MAX as u32; 4]), 4 * 65535u64 * 65535);
    }

    #[test]
    fn inputs_are_deterministic_and_bounded() {
        let a = inputs(1000, 7);
        assert_eq!(a, inputs(1000, 7));
        assert_ne!(a, inputs(1000, 8));
        assert!(a.iter().all(|x| *x < 1 << 16));
        assert!(a.iter().any(|x| *x > 1 << 15), "uses the full range");
    }
}
