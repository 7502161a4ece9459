//! Dense matrix multiply C = A·B, n × n, the textbook way and cache-blocked.
//!
//! The naive i-j-k loop reads B down a column for every element of C: a new cache line per
//! multiply once a column no longer fits in cache. The blocked version walks T × T tiles in
//! i-k-j order, so a tile of B is reused from cache T times and the inner loop runs along rows
//! (it vectorises). Both split C into bands of rows, one part per band: no two parts write the
//! same element, so no synchronisation is needed.
//!
//! The entries are small integers held in `f64` (−8 … 8): every partial sum is an exact integer
//! below 2⁵³, so the naive and blocked orders of summation give bit-identical C.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// Rows of C per part.
const BAND: usize = 16;
/// Side of a tile in the blocked version (3 tiles of 64² f64 = 96 KiB: within L2).
const TILE: usize = 64;

pub const NAIVE: KernelSpec = KernelSpec {
    id: "matmul-naive",
    help: "matrix multiply, i-j-k loops (B read down columns)",
    unit: "flops",
    size_means: "matrix side n",
    default_size: 384,
    sizes: (1, 2048),
    work_exponent: 3,
    build: |n, seed| Box::new(MatMul::new(n, seed, false)),
};

pub const BLOCKED: KernelSpec = KernelSpec {
    id: "matmul-blocked",
    help: "matrix multiply, 64 × 64 tiles in i-k-j order",
    unit: "flops",
    size_means: "matrix side n",
    default_size: 768,
    sizes: (1, 2048),
    work_exponent: 3,
    build: |n, seed| Box::new(MatMul::new(n, seed, true)),
};

/// Inputs A and B, output C, row-major.
pub struct MatMul {
    n: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    blocked: bool,
}

impl MatMul {
    pub fn new(n: usize, seed: u64, blocked: bool) -> Self {
        let mut state = seed;
        let mut entries = || (0..n * n).map(|_| (splitmix64(&mut state) % 17) as f64 - 8.0).collect::<Vec<_>>();
        let (a, b) = (entries(), entries());
        Self { n, a, b, c: vec![0.0; n * n], blocked }
    }

    /// C's rows `first..first + band.len() / n`, written into `band`. In wasm with SIMD: the
    /// blocked inner loop is two f64 lanes per instruction, as SSE2 gives it natively.
    #[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
    fn band(&self, first: usize, band: &mut [f64]) {
        let (n, a, b) = (self.n, &self.a, &self.b);
        if self.blocked {
            band.fill(0.0);
            let last_row = first + band.len() / n - 1;
            for k0 in (0..n).step_by(TILE) {
                for j0 in (0..n).step_by(TILE) {
                    let (k1, j1) = ((k0 + TILE).min(n), (j0 + TILE).min(n));
                    // Two rows of C at a time, four rows of B per pass: each C element loaded
                    // and stored once per four multiply-adds, each B element loaded once per two.
                    let mut pairs = band.chunks_exact_mut(2 * n);
                    for (p, pair) in pairs.by_ref().enumerate() {
                        let (upper, lower) = pair.split_at_mut(n);
                        let a_rows = [&a[(first + 2 * p) * n..][..n], &a[(first + 2 * p + 1) * n..][..n]];
                        tile_rows2(a_rows, [&mut upper[j0..j1], &mut lower[j0..j1]], b, n, (k0, k1), j0);
                    }
                    let odd = pairs.into_remainder();
                    if !odd.is_empty() {
                        tile_row(&a[last_row * n..][..n], &mut odd[j0..j1], b, n, (k0, k1), j0);
                    }
                }
            }
        } else {
            for (r, c_row) in band.chunks_mut(n).enumerate() {
                let a_row = &a[(first + r) * n..][..n];
                for (j, c) in c_row.iter_mut().enumerate() {
                    *c = (0..n).map(|k| a_row[k] * b[k * n + j]).sum();
                }
            }
        }
    }
}

/// `c += a[k] · B[k][j0..]` over `k0..k1`, four rows of B per pass over `c`.
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn tile_row(a: &[f64], c: &mut [f64], b: &[f64], n: usize, (k0, k1): (usize, usize), j0: usize) {
    let width = c.len();
    let b_row = |k: usize| &b[k * n + j0..][..width];
    let mut k = k0;
    while k + 4 <= k1 {
        let (a0, a1, a2, a3) = (a[k], a[k + 1], a[k + 2], a[k + 3]);
        let rows = b_row(k).iter().zip(b_row(k + 1)).zip(b_row(k + 2)).zip(b_row(k + 3));
        for (c, (((b0, b1), b2), b3)) in c.iter_mut().zip(rows) {
            *c += a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3;
        }
        k += 4;
    }
    for (k, &a_k) in a.iter().enumerate().take(k1).skip(k) {
        for (c, b) in c.iter_mut().zip(b_row(k)) {
            *c += a_k * b;
        }
    }
}

/// [`tile_row`] for two rows of A and C at once: each B element loaded serves both.
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn tile_rows2(a: [&[f64]; 2], c: [&mut [f64]; 2], b: &[f64], n: usize, (k0, k1): (usize, usize), j0: usize) {
    let [c0, c1] = c;
    let width = c0.len();
    let b_row = |k: usize| &b[k * n + j0..][..width];
    let mut k = k0;
    while k + 4 <= k1 {
        let (x0, x1, x2, x3) = (a[0][k], a[0][k + 1], a[0][k + 2], a[0][k + 3]);
        let (y0, y1, y2, y3) = (a[1][k], a[1][k + 1], a[1][k + 2], a[1][k + 3]);
        let rows = b_row(k).iter().zip(b_row(k + 1)).zip(b_row(k + 2)).zip(b_row(k + 3));
        for ((c0, c1), (((b0, b1), b2), b3)) in c0.iter_mut().zip(c1.iter_mut()).zip(rows) {
            *c0 += x0 * b0 + x1 * b1 + x2 * b2 + x3 * b3;
            *c1 += y0 * b0 + y1 * b1 + y2 * b2 + y3 * b3;
        }
        k += 4;
    }
    for (k, (&x, &y)) in a[0].iter().zip(a[1]).enumerate().take(k1).skip(k) {
        for ((c0, c1), b) in c0.iter_mut().zip(c1.iter_mut()).zip(b_row(k)) {
            *c0 += x * b;
            *c1 += y * b;
        }
    }
}

impl Kernel for MatMul {
    fn work(&self) -> f64 {
        2.0 * (self.n as f64).powi(3)
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        let n = self.n;
        let mut c = std::mem::take(&mut self.c);
        let mut bands: Vec<&mut [f64]> = c.chunks_mut(BAND * n).collect();
        let this = &*self;
        par.for_each_mut(&mut bands, |index, band| this.band(index * BAND, band))?;
        let digest = super::digest_par(par, &c, |x| *x as i64 as u64);
        self.c = c;
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_product() {
        let mut product =
            MatMul { n: 2, a: vec![1.0, 2.0, 3.0, 4.0], b: vec![5.0, 6.0, 7.0, 8.0], c: vec![0.0; 4], blocked: false };
        Par::reference(|par| product.run(par)).unwrap();
        assert_eq!(product.c, [19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn blocked_equals_naive_across_tile_edges() {
        let n = TILE + 13;
        let (mut naive, mut blocked) = (MatMul::new(n, 7, false), MatMul::new(n, 7, true));
        let digests = Par::reference(|par| (naive.run(par).unwrap(), blocked.run(par).unwrap()));
        assert_eq!(digests.0, digests.1);
        assert_eq!(naive.c, blocked.c);
    }
}
