//! Divide-and-conquer kernels — naive Fibonacci and quicksort, each with a sequential cutoff —
//! written once against [`ForkJoin`], so the same code runs on rayon's `join` and ours.

use crate::sched::steal::StealPool;

/// Something that can run two closures, potentially in parallel, and wait for both.
pub trait ForkJoin: Sync {
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
}

impl ForkJoin for StealPool<'_> {
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        StealPool::join(self, a, b)
    }
}

/// `rayon::join` on the current rayon pool.
pub struct Rayon;

impl ForkJoin for Rayon {
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        rayon::join(a, b)
    }
}

/// fib(n) the exponential way: the classic fork-join benchmark (Cilk's `fib`).
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// fib(n), forking both calls while n > `cutoff`.
pub fn fib_par(pool: &impl ForkJoin, n: u32, cutoff: u32) -> u64 {
    if n <= cutoff.max(1) {
        return fib(n);
    }
    let (a, b) = pool.join(|| fib_par(pool, n - 1, cutoff), || fib_par(pool, n - 2, cutoff));
    a + b
}

/// Splits `v` around a median-of-three pivot: returns p with v[..p] ≤ v[p] ≤ v[p+1..].
pub fn partition(v: &mut [u32]) -> usize {
    let (last, mid) = (v.len() - 1, v.len() / 2);
    // Median of first, middle and last, moved to the end as the pivot.
    if v[mid] < v[0] {
        v.swap(mid, 0);
    }
    if v[last] < v[0] {
        v.swap(last, 0);
    }
    if v[mid] < v[last] {
        v.swap(mid, last);
    }
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}

/// Quicksort that sorts pieces of at most `cutoff` elements with `sort_unstable`.
pub fn quicksort(v: &mut [u32], cutoff: usize) {
    if v.len() <= cutoff.max(2) {
        v.sort_unstable();
        return;
    }
    let p = partition(v);
    let (left, right) = v.split_at_mut(p);
    quicksort(left, cutoff);
    quicksort(&mut right[1..], cutoff);
}

/// [`quicksort`], sorting the two sides of each partition in parallel.
pub fn quicksort_par(pool: &impl ForkJoin, v: &mut [u32], cutoff: usize) {
    if v.len() <= cutoff.max(2) {
        v.sort_unstable();
        return;
    }
    let p = partition(v);
    let (left, right) = v.split_at_mut(p);
    pool.join(|| quicksort_par(pool, left, cutoff), || quicksort_par(pool, &mut right[1..], cutoff));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::splitmix64;
    use crate::trace::Recorder;

    fn random(len: usize, seed: u64) -> Vec<u32> {
        let mut state = seed;
        (0..len).map(|_| splitmix64(&mut state) as u32 % 1000).collect()
    }

    #[test]
    fn fib_matches_the_sequence_on_both_joins() {
        assert_eq!((0..10).map(fib).collect::<Vec<_>>(), [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
        assert_eq!(fib_par(&Rayon, 25, 10), 75025);
        let (value, _) = StealPool::run(3, &Recorder::new(false), |pool| fib_par(pool, 25, 10)).unwrap();
        assert_eq!(value, 75025);
    }

    #[test]
    fn quicksorts_sort_with_duplicates_and_any_cutoff() {
        for (len, cutoff) in [(0, 1), (1, 1), (2, 1), (3, 1), (1000, 1), (1000, 16), (5000, 100)] {
            let mut expected = random(len, len as u64);
            let (mut seq, mut par, mut ours) = (expected.clone(), expected.clone(), expected.clone());
            expected.sort_unstable();
            quicksort(&mut seq, cutoff);
            quicksort_par(&Rayon, &mut par, cutoff);
            StealPool::run(2, &Recorder::new(false), |pool| quicksort_par(pool, &mut ours, cutoff)).unwrap();
            assert_eq!((&seq, &par, &ours), (&expected, &expected, &expected), "len {len} cutoff {cutoff}");
        }
    }
}
