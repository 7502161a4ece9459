//! Sorting `u32` keys two ways, each with a sequential cutoff.
//!
//! - **Merge sort**, bottom-up: runs of [`RUN`] keys are sorted independently, then rounds of
//!   merges double the run length. Round r has n / (RUN · 2^r) independent merges, so the last
//!   rounds run on fewer threads than there are — the last merge is one thread's O(n) pass, a
//!   serial fraction that a speedup curve shows and Amdahl's fit measures.
//! - **Quicksort**: Hoare-style partition, both halves forked with `join` above [`CUTOFF`] keys
//!   (the partition itself is sequential: the top level's O(n) pass is the serial part). A team
//!   cannot fork, so its variant is a *sample sort*: t − 1 splitters from a sorted sample cut
//!   the keys into t buckets in one sequential pass, then each member sorts its bucket.

use super::forkjoin::{quicksort, quicksort_par};
use super::{splitmix64, Kernel, KernelSpec, Par, Strategy};
use crate::platform::PlatformError;

/// Keys per initial run of the merge sort.
pub const RUN: usize = 1 << 12;
/// Below this many keys quicksort recurses sequentially.
pub const CUTOFF: usize = 1 << 12;

pub const MERGESORT: KernelSpec = KernelSpec {
    id: "mergesort",
    help: "bottom-up merge sort: sorted runs of 4096, then rounds of pairwise merges",
    unit: "keys",
    size_means: "keys",
    default_size: 2 << 20,
    sizes: (1, 1 << 25),
    work_exponent: 1,
    build: |n, seed| Box::new(Sort::new(n, seed, Algorithm::Merge)),
};

pub const QUICKSORT: KernelSpec = KernelSpec {
    id: "quicksort",
    help: "quicksort forking both halves above 4096 keys (a team: sample sort)",
    unit: "keys",
    size_means: "keys",
    default_size: 2 << 20,
    sizes: (1, 1 << 25),
    work_exponent: 1,
    build: |n, seed| Box::new(Sort::new(n, seed, Algorithm::Quick)),
};

#[derive(Clone, Copy)]
enum Algorithm {
    Merge,
    Quick,
}

struct Sort {
    input: Vec<u32>,
    keys: Vec<u32>,
    scratch: Vec<u32>,
    algorithm: Algorithm,
}

impl Sort {
    fn new(n: usize, seed: u64, algorithm: Algorithm) -> Self {
        let mut state = seed;
        let input: Vec<u32> = (0..n).map(|_| splitmix64(&mut state) as u32).collect();
        Self { keys: input.clone(), scratch: vec![0; n], input, algorithm }
    }
}

impl Kernel for Sort {
    fn work(&self) -> f64 {
        self.input.len() as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        self.keys.copy_from_slice(&self.input);
        match (self.algorithm, par.strategy) {
            (Algorithm::Merge, _) => merge_sort(par, &mut self.keys, &mut self.scratch)?,
            (Algorithm::Quick, Strategy::Team(threads)) => {
                sample_sort(par, threads, &mut self.keys, &mut self.scratch)?
            }
            (Algorithm::Quick, _) => quicksort_par(par, &mut self.keys, CUTOFF),
        }
        super::digest_par(par, &self.keys, |key| u64::from(*key))
    }
}

/// Sorts `keys` bottom-up, using `scratch` (same length) for the merges.
pub fn merge_sort(par: &Par<'_, '_>, keys: &mut [u32], scratch: &mut [u32]) -> Result<(), PlatformError> {
    let mut runs: Vec<&mut [u32]> = keys.chunks_mut(RUN).collect();
    par.for_each_mut(&mut runs, |_, run| run.sort_unstable())?;
    let mut in_scratch = false;
    let mut width = RUN;
    while width < keys.len() {
        let (from, to): (&[u32], &mut [u32]) = if in_scratch { (scratch, keys) } else { (keys, scratch) };
        let mut pairs: Vec<(&[u32], &mut [u32])> = from.chunks(2 * width).zip(to.chunks_mut(2 * width)).collect();
        par.for_each_mut(&mut pairs, |_, (source, target)| {
            let (left, right) = source.split_at(width.min(source.len()));
            merge(left, right, target);
        })?;
        in_scratch = !in_scratch;
        width *= 2;
    }
    if in_scratch && par.keep_going() {
        keys.copy_from_slice(scratch);
    }
    Ok(())
}

/// Merges two sorted slices into `target`, stably.
fn merge(left: &[u32], right: &[u32], target: &mut [u32]) {
    let (mut i, mut j) = (0, 0);
    for slot in target.iter_mut() {
        if j == right.len() || (i < left.len() && left[i] <= right[j]) {
            *slot = left[i];
            i += 1;
        } else {
            *slot = right[j];
            j += 1;
        }
    }
}

/// Cuts `keys` into one bucket per team member by splitters from a sorted sample (a sequential
/// pass through `scratch`), then sorts the buckets on the team.
fn sample_sort(par: &Par<'_, '_>, threads: usize, keys: &mut [u32], scratch: &mut [u32]) -> Result<(), PlatformError> {
    let step = (keys.len() / (64 * threads)).max(1);
    let mut sample: Vec<u32> = keys.iter().step_by(step).copied().collect();
    sample.sort_unstable();
    let splitters: Vec<u32> = (1..threads).map(|i| sample[i * sample.len() / threads]).collect();
    let bucket_of = |key: u32| splitters.partition_point(|s| *s <= key);
    let mut starts = vec![0usize; threads + 1];
    for key in keys.iter() {
        starts[bucket_of(*key) + 1] += 1;
    }
    for i in 1..=threads {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    for key in keys.iter() {
        let bucket = bucket_of(*key);
        scratch[next[bucket]] = *key;
        next[bucket] += 1;
    }
    let mut buckets = Vec::with_capacity(threads);
    let mut rest = &mut *scratch;
    for bucket in 0..threads {
        let (head, tail) = rest.split_at_mut(starts[bucket + 1] - starts[bucket]);
        buckets.push(head);
        rest = tail;
    }
    par.for_each_mut(&mut buckets, |_, bucket| quicksort(bucket, CUTOFF))?;
    keys.copy_from_slice(scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Recorder;

    fn sorted(n: usize, seed: u64) -> Vec<u32> {
        let mut state = seed;
        let mut keys: Vec<u32> = (0..n).map(|_| splitmix64(&mut state) as u32).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn merge_sort_sorts_odd_and_even_round_counts() {
        for n in [0, 1, 5, RUN, RUN + 1, 3 * RUN + 17, 8 * RUN] {
            let mut sort = Sort::new(n, 3, Algorithm::Merge);
            Par::reference(|par| sort.run(par)).unwrap();
            assert_eq!(sort.keys, sorted(n, 3), "n = {n}");
        }
    }

    #[test]
    fn sample_sort_sorts_on_a_team_even_with_equal_keys() {
        let trace = Recorder::new(false);
        let par = Par::new(Strategy::Team(3), &|| true, &trace);
        let mut sort = Sort::new(50_000, 9, Algorithm::Quick);
        sort.run(&par).unwrap();
        assert_eq!(sort.keys, sorted(50_000, 9));
        let mut same =
            Sort { input: vec![7; 1000], keys: vec![0; 1000], scratch: vec![0; 1000], algorithm: Algorithm::Quick };
        same.run(&par).unwrap();
        assert_eq!(same.keys, vec![7; 1000]);
    }
}
