//! Direct-sum n-body gravity: every body pulls on every other, O(n²) interactions per step.
//!
//! Each step computes all accelerations (the parallel part: one part per band of bodies, each
//! body's sum over the others in index order), then moves the bodies with a leapfrog-style
//! update (sequential, O(n)). Softening ε keeps close encounters finite. Because each body's
//! sum always runs in the same order, positions are bit-identical under every strategy.

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::PlatformError;

/// Steps per run.
pub const STEPS: usize = 4;
const DT: f64 = 1e-3;
const SOFTENING_SQUARED: f64 = 1e-4;
/// Bodies per part.
const BAND: usize = 32;

pub const SPEC: KernelSpec = KernelSpec {
    id: "nbody",
    help: "direct-sum gravity, 4 steps: all pairs in parallel, the moves sequential",
    unit: "interactions",
    size_means: "bodies",
    default_size: 2560,
    sizes: (2, 65_536),
    work_exponent: 2,
    build: |n, seed| Box::new(NBody::new(n, seed)),
};

struct NBody {
    start: Vec<[f64; 4]>,
    /// x, y, z, mass.
    bodies: Vec<[f64; 4]>,
    velocities: Vec<[f64; 3]>,
    accelerations: Vec<[f64; 3]>,
}

impl NBody {
    fn new(n: usize, seed: u64) -> Self {
        let mut state = seed;
        let mut unit = || (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
        let start: Vec<[f64; 4]> = (0..n).map(|_| [unit() - 0.5, unit() - 0.5, unit() - 0.5, 0.5 + unit()]).collect();
        Self { bodies: start.clone(), start, velocities: vec![[0.0; 3]; n], accelerations: vec![[0.0; 3]; n] }
    }
}

/// The acceleration of body `i` from all others, summed in index order.
fn acceleration(bodies: &[[f64; 4]], i: usize) -> [f64; 3] {
    let [xi, yi, zi, _] = bodies[i];
    let mut total = [0.0; 3];
    for [x, y, z, mass] in bodies {
        let (dx, dy, dz) = (x - xi, y - yi, z - zi);
        let distance_squared = dx * dx + dy * dy + dz * dz + SOFTENING_SQUARED;
        let scale = mass / (distance_squared * distance_squared.sqrt());
        total[0] += dx * scale;
        total[1] += dy * scale;
        total[2] += dz * scale;
    }
    total
}

impl Kernel for NBody {
    fn work(&self) -> f64 {
        (self.bodies.len() as f64).powi(2) * STEPS as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        self.bodies.copy_from_slice(&self.start);
        self.velocities.fill([0.0; 3]);
        for _ in 0..STEPS {
            let bodies = &self.bodies;
            let mut bands: Vec<&mut [[f64; 3]]> = self.accelerations.chunks_mut(BAND).collect();
            par.for_each_mut(&mut bands, |index, band| {
                for (offset, slot) in band.iter_mut().enumerate() {
                    *slot = acceleration(bodies, index * BAND + offset);
                }
            })?;
            for ((body, velocity), acceleration) in
                self.bodies.iter_mut().zip(&mut self.velocities).zip(&self.accelerations)
            {
                for axis in 0..3 {
                    velocity[axis] += acceleration[axis] * DT;
                    body[axis] += velocity[axis] * DT;
                }
            }
        }
        super::digest_par(par, &self.bodies, |[x, y, z, _]| {
            x.to_bits() ^ y.to_bits().rotate_left(21) ^ z.to_bits().rotate_left(42)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_bodies_fall_towards_each_other_symmetrically() {
        let mut pair = NBody::new(2, 0);
        pair.start = vec![[-0.5, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0]];
        Par::reference(|par| pair.run(par)).unwrap();
        let ([a, ..], [b, ..]) = (pair.bodies[0], pair.bodies[1]);
        assert!(a > -0.5 && b < 0.5, "they moved closer: {a} {b}");
        assert!((a + b).abs() < 1e-15, "and symmetrically");
    }
}
