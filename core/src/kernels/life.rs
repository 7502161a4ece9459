//! Conway's Game of Life on a torus: a stencil computation with a barrier per generation.
//!
//! Generation g + 1 is computed from generation g into a second grid (double buffering), one
//! part per band of rows; each row reads its two neighbours, which other parts also read but
//! nobody writes. The end of each parallel section is the barrier: no part starts generation
//! g + 2 before all of g + 1 is written.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// Generations per run.
pub const GENERATIONS: usize = 16;
/// Rows per part.
const BAND: usize = 8;

pub const SPEC: KernelSpec = KernelSpec {
    id: "game-of-life",
    help: "Game of Life on a square torus, 16 generations, double-buffered",
    unit: "cell updates",
    size_means: "grid side",
    default_size: 1024,
    sizes: (3, 16_384),
    work_exponent: 2,
    build: |side, seed| Box::new(Life::new(side, seed)),
};

struct Life {
    side: usize,
    start: Vec<u8>,
    grid: Vec<u8>,
    next: Vec<u8>,
}

impl Life {
    fn new(side: usize, seed: u64) -> Self {
        let mut state = seed;
        let start: Vec<u8> = (0..side * side).map(|_| u8::from(splitmix64(&mut state) % 3 == 0)).collect();
        Self { side, grid: start.clone(), next: start.clone(), start }
    }
}

/// Row `y` of the next generation from `grid`.
fn step_row(grid: &[u8], side: usize, y: usize, out: &mut [u8]) {
    let row = |dy: usize| &grid[((y + side + dy - 1) % side) * side..][..side];
    let (up, here, down) = (row(0), row(1), row(2));
    for (x, cell) in out.iter_mut().enumerate() {
        let (left, right) = ((x + side - 1) % side, (x + 1) % side);
        let neighbours = up[left] + up[x] + up[right] + here[left] + here[right] + down[left] + down[x] + down[right];
        *cell = u8::from(neighbours == 3 || (neighbours == 2 && here[x] == 1));
    }
}

impl Kernel for Life {
    fn work(&self) -> f64 {
        (self.side * self.side * GENERATIONS) as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        let side = self.side;
        self.grid.copy_from_slice(&self.start);
        for _ in 0..GENERATIONS {
            let grid = &self.grid;
            let mut bands: Vec<&mut [u8]> = self.next.chunks_mut(BAND * side).collect();
            par.for_each_mut(&mut bands, |index, band| {
                for (offset, out) in band.chunks_mut(side).enumerate() {
                    step_row(grid, side, index * BAND + offset, out);
                }
            })?;
            std::mem::swap(&mut self.grid, &mut self.next);
        }
        super::digest_par(par, &self.grid, |cell| u64::from(*cell))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blinker_oscillates_and_a_block_stays() {
        let side = 8;
        let mut grid = vec![0u8; side * side];
        for (y, x) in [(2, 1), (2, 2), (2, 3), (5, 5), (5, 6), (6, 5), (6, 6)] {
            grid[y * side + x] = 1;
        }
        let mut next = vec![0u8; side * side];
        for (y, out) in next.chunks_mut(side).enumerate() {
            step_row(&grid, side, y, out);
        }
        let alive: Vec<(usize, usize)> =
            (0..side * side).filter(|i| next[*i] == 1).map(|i| (i / side, i % side)).collect();
        assert_eq!(alive, [(1, 2), (2, 2), (3, 2), (5, 5), (5, 6), (6, 5), (6, 6)]);
    }
}
