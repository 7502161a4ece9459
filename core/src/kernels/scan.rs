//! Inclusive prefix sum (scan) of `u64`s, wrapping.
//!
//! Sequentially one pass: out[i] = out[i − 1] + in[i]. In parallel the classic two-pass block
//! scan (Blelloch 1990's reduce-then-scan on blocks): (1) each block is scanned locally and its
//! total kept; (2) the block totals are scanned sequentially (one number per block); (3) each
//! block but the first adds its offset. The parallel version reads and writes the data twice,
//! so it does about twice the sequential work: its speedup over `seq` tops out near p / 2 on a
//! memory-bound machine — the price of breaking a chain of dependencies.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// Elements per block.
pub const BLOCK: usize = 1 << 16;

pub const SPEC: KernelSpec = KernelSpec {
    id: "prefix-sum",
    help: "inclusive scan: one pass sequentially, two passes over 64 Ki blocks in parallel",
    unit: "elements",
    size_means: "elements",
    default_size: 8 << 20,
    sizes: (1, 1 << 26),
    work_exponent: 1,
    build: |n, seed| Box::new(Scan::new(n, seed)),
};

struct Scan {
    input: Vec<u64>,
    output: Vec<u64>,
}

impl Scan {
    fn new(n: usize, seed: u64) -> Self {
        let mut state = seed;
        Self { input: (0..n).map(|_| splitmix64(&mut state) >> 40).collect(), output: vec![0; n] }
    }
}

/// Scans `input` into `output`, starting from `carry`; returns the last sum.
fn scan_into(input: &[u64], output: &mut [u64], carry: u64) -> u64 {
    input.iter().zip(output).fold(carry, |sum, (x, out)| {
        *out = sum.wrapping_add(*x);
        *out
    })
}

impl Kernel for Scan {
    fn work(&self) -> f64 {
        self.input.len() as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        if par.is_sequential() {
            scan_into(&self.input, &mut self.output, 0);
        } else {
            let input = &self.input;
            let mut blocks: Vec<(&mut [u64], u64)> = self.output.chunks_mut(BLOCK).map(|block| (block, 0)).collect();
            par.for_each_mut(&mut blocks, |index, (block, total)| {
                *total = scan_into(&input[index * BLOCK..][..block.len()], block, 0)
            })?;
            let mut offset = 0u64;
            for (_, total) in &mut blocks {
                (*total, offset) = (offset, offset.wrapping_add(*total));
            }
            par.for_each_mut(&mut blocks, |_, (block, offset)| {
                if *offset != 0 {
                    block.iter_mut().for_each(|x| *x = x.wrapping_add(*offset));
                }
            })?;
        }
        super::digest_par(par, &self.output, |x| *x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Recorder;

    #[test]
    fn the_block_scan_equals_the_sequential_one() {
        for n in [0, 1, BLOCK, 3 * BLOCK + 7] {
            let mut scan = Scan::new(n, 11);
            let expected = Par::reference(|par| scan.run(par)).unwrap();
            let sequential = scan.output.clone();
            let trace = Recorder::new(false);
            let digest = scan.run(&Par::new(super::super::Strategy::Team(2), &|| true, &trace)).unwrap();
            assert_eq!(scan.output, sequential);
            assert_eq!(digest, expected);
        }
        let mut small = Scan { input: vec![1, 2, 3, 4], output: vec![0; 4] };
        Par::reference(|par| small.run(par)).unwrap();
        assert_eq!(small.output, [1, 3, 6, 10]);
    }
}
