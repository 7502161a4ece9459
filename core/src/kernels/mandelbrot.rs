//! The Mandelbrot set by escape time — the kernel of wasm-bindgen-rayon's demo.
//!
//! Each pixel iterates z ← z² + c until |z| > 2 or `max_iter`. Pixels inside the set cost the
//! full `max_iter`, those far outside a few iterations, so equal row blocks carry very unequal
//! work: a static split over threads is imbalanced, which dynamic scheduling (rayon) evens out.

use super::{Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// The region and resolution to render.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub max_iter: u32,
    /// Where the real axis crosses the image, as a fraction of its height from the top: 0.5 is
    /// the symmetric view, whose upper and lower halves carry equal work.
    pub axis: f64,
}

/// Pixels checked between two looks at the cancel flag (≤ 1 ms even at the largest `max_iter`).
const SEGMENT: usize = 64;

/// The view: real part from −2.5 to 1.0, the real axis at [`Frame::axis`], square pixels.
const RE_MIN: f64 = -2.5;
const RE_SPAN: f64 = 3.5;

impl Frame {
    fn point(&self, x: usize, y: usize) -> (f64, f64) {
        let scale = RE_SPAN / self.width as f64;
        let re = RE_MIN + (x as f64 + 0.5) * scale;
        let im = (y as f64 + 0.5 - self.height as f64 * self.axis) * scale;
        (re, im)
    }

    /// Renders row `y` into `row` (length `width`), calling `keep_going` between segments; stops
    /// early and returns false if it says so.
    pub fn render_row(&self, y: usize, row: &mut [u32], mut keep_going: impl FnMut() -> bool) -> bool {
        for (segment_index, segment) in row.chunks_mut(SEGMENT).enumerate() {
            if !keep_going() {
                return false;
            }
            for (offset, pixel) in segment.iter_mut().enumerate() {
                let (re, im) = self.point(segment_index * SEGMENT + offset, y);
                *pixel = escape_time(re, im, self.max_iter);
            }
        }
        true
    }
}

/// Iterations before z escapes |z| > 2, or `max_iter`.
#[inline]
pub fn escape_time(c_re: f64, c_im: f64, max_iter: u32) -> u32 {
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for iteration in 0..max_iter {
        let (re2, im2) = (re * re, im * im);
        if re2 + im2 > 4.0 {
            return iteration;
        }
        im = 2.0 * re * im + c_im;
        re = re2 - im2 + c_re;
    }
    max_iter
}

/// Digest of an image: FNV-1a over all iteration counts, row-major.
pub fn digest(counts: &[u32]) -> u64 {
    super::fnv1a(counts.iter().map(|c| u64::from(*c)))
}

/// The catalogue entry: `size` is the image width, the height 5/8 of it, 500 iterations.
pub const SPEC: KernelSpec = KernelSpec {
    id: "mandelbrot",
    help: "escape-time Mandelbrot, one part per row: very unequal rows",
    unit: "pixels",
    size_means: "image width (px)",
    default_size: 800,
    sizes: (16, 4096),
    work_exponent: 2,
    build: |width, _| {
        let frame = Frame { width, height: (width * 5 / 8).max(1), max_iter: 500, axis: 0.5 };
        Box::new(Render { frame, image: vec![0; frame.width * frame.height] })
    },
};

struct Render {
    frame: Frame,
    image: Vec<u32>,
}

impl Kernel for Render {
    fn work(&self) -> f64 {
        (self.frame.width * self.frame.height) as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        let frame = self.frame;
        let mut rows: Vec<&mut [u32]> = self.image.chunks_mut(frame.width).collect();
        par.for_each_mut(&mut rows, |y, row| {
            frame.render_row(y, row, || true);
        })?;
        super::digest_par(par, &self.image, |count| u64::from(*count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        assert_eq!(escape_time(0.0, 0.0, 100), 100, "the origin is in the set");
        assert_eq!(escape_time(-1.0, 0.0, 100), 100, "period-2 bulb");
        assert_eq!(escape_time(2.0, 2.0, 100), 1, "escapes after one step");
        assert_eq!(escape_time(1.0, 0.0, 100), 3, "0 → 1 → 2 → 5: |2|² = 4 is not > 4");
    }

    #[test]
    fn rows_are_symmetric_about_the_real_axis() {
        let frame = Frame { width: 48, height: 32, max_iter: 200, axis: 0.5 };
        let (mut top, mut bottom) = (vec![0; 48], vec![0; 48]);
        assert!(frame.render_row(3, &mut top, || true));
        assert!(frame.render_row(28, &mut bottom, || true));
        assert_eq!(top, bottom);
        let mut middle = vec![0; 48];
        assert!(frame.render_row(16, &mut middle, || true));
        assert!(middle.contains(&200), "the row next to the real axis crosses the set");
    }

    #[test]
    fn rendering_stops_when_told() {
        let frame = Frame { width: 256, height: 1, max_iter: 10, axis: 0.5 };
        let mut row = vec![7; 256];
        let mut calls = 0;
        assert!(!frame.render_row(0, &mut row, || {
            calls += 1;
            calls < 2
        }));
        assert_eq!(row[SEGMENT..].iter().filter(|c| **c == 7).count(), 256 - SEGMENT);
    }
}
