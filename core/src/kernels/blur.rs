//! Box blur of a grayscale image as a separable convolution: a (2r + 1)-tap horizontal pass
//! into a temporary image, then a vertical pass back — 2(2r + 1) reads per pixel instead of
//! (2r + 1)² for the 2-D kernel.
//!
//! Both passes split the image into bands of rows; the vertical pass reads rows of the
//! temporary image that neighbouring bands wrote, so it starts only after the horizontal pass
//! has finished everywhere (the end of one parallel section is the barrier). Edges clamp.
//! Integer sums keep the output exact whatever the split.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// The blur radius r.
pub const RADIUS: usize = 4;
/// Rows per part.
const BAND: usize = 16;

pub const SPEC: KernelSpec = KernelSpec {
    id: "blur",
    help: "separable 9 × 9 box blur: horizontal pass, barrier, vertical pass",
    unit: "pixels",
    size_means: "image side (px)",
    default_size: 2560,
    sizes: (1, 8192),
    work_exponent: 2,
    build: |side, seed| Box::new(Blur::new(side, seed)),
};

struct Blur {
    side: usize,
    image: Vec<u16>,
    across: Vec<u16>,
    output: Vec<u16>,
}

impl Blur {
    fn new(side: usize, seed: u64) -> Self {
        let mut state = seed;
        let image = (0..side * side).map(|_| (splitmix64(&mut state) & 0xff) as u16).collect();
        Self { side, image, across: vec![0; side * side], output: vec![0; side * side] }
    }
}

const TAPS: u32 = (2 * RADIUS + 1) as u32;

/// `index + offset` for offset in −r..=r, clamped to `0..length`.
fn clamped(index: usize, length: usize) -> impl Iterator<Item = usize> {
    (0..=2 * RADIUS).map(move |k| (index + k).saturating_sub(RADIUS).min(length - 1))
}

/// Each pixel of `row` replaced by the mean of the 2r + 1 around it (with SIMD in wasm, as
/// natively).
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn blur_row(row: &[u16], out: &mut [u16]) {
    for (x, slot) in out.iter_mut().enumerate() {
        *slot = (clamped(x, row.len()).map(|i| u32::from(row[i])).sum::<u32>() / TAPS) as u16;
    }
}

/// Row `y` of the vertical pass: the mean of rows y − r … y + r of `across`, column by column
/// (whole rows added at a time, so the reads stream through memory; with SIMD in wasm).
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn blur_column(across: &[u16], side: usize, y: usize, sums: &mut [u32], out: &mut [u16]) {
    sums.fill(0);
    for row in clamped(y, side) {
        sums.iter_mut().zip(&across[row * side..][..side]).for_each(|(sum, pixel)| *sum += u32::from(*pixel));
    }
    out.iter_mut().zip(sums.iter()).for_each(|(slot, sum)| *slot = (sum / TAPS) as u16);
}

impl Kernel for Blur {
    fn work(&self) -> f64 {
        (self.side * self.side) as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        let side = self.side;
        let image = &self.image;
        let mut bands: Vec<&mut [u16]> = self.across.chunks_mut(BAND * side).collect();
        par.for_each_mut(&mut bands, |index, band| {
            for (offset, out) in band.chunks_mut(side).enumerate() {
                blur_row(&image[(index * BAND + offset) * side..][..side], out);
            }
        })?;
        let across = &self.across;
        let mut bands: Vec<&mut [u16]> = self.output.chunks_mut(BAND * side).collect();
        par.for_each_mut(&mut bands, |index, band| {
            let mut sums = vec![0u32; side];
            for (offset, out) in band.chunks_mut(side).enumerate() {
                blur_column(across, side, index * BAND + offset, &mut sums, out);
            }
        })?;
        super::digest_par(par, &self.output, |pixel| u64::from(*pixel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_passes_equal_the_two_dimensional_box() {
        let mut blur = Blur::new(21, 4);
        Par::reference(|par| blur.run(par)).unwrap();
        let side = 21;
        for (y, x) in [(0, 0), (3, 17), (10, 10), (20, 5)] {
            let sum: u32 = clamped(y, side)
                .map(|row| {
                    clamped(x, side).map(|column| u32::from(blur.image[row * side + column])).sum::<u32>() / TAPS
                })
                .sum();
            assert_eq!(u32::from(blur.output[y * side + x]), sum / TAPS, "pixel ({x}, {y})");
        }
        let mut flat = Blur { side: 3, image: vec![9; 9], across: vec![0; 9], output: vec![0; 9] };
        Par::reference(|par| flat.run(par)).unwrap();
        assert_eq!(flat.output, vec![9; 9], "a flat image stays flat");
    }
}
