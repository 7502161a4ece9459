//! Compute kernels, free of experiment plumbing: each takes plain inputs, checks for
//! cancellation through a callback between chunks of a few microseconds to milliseconds, and
//! returns its output or a digest of it.

pub mod forkjoin;
pub mod mandelbrot;
pub mod spin;
pub mod sum_squares;

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
