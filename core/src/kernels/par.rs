//! [`Par`]: one way of spreading a kernel's work over threads, chosen at run time, so each
//! kernel is written once and runs sequentially, on rayon, on our work-stealing pool, or as a
//! static split over a thread team.
//!
//! A kernel describes its parallelism with three operations:
//!
//! - [`Par::for_each_mut`] — independent parts (row blocks, buckets) each updated in place;
//! - [`Par::map_reduce`] — an index range cut into pieces of `grain` items, each mapped to a
//!   value, the values combined **left to right** (so an associative, non-commutative combine
//!   such as concatenation gives the sequential answer);
//! - [`Par::join`] — two closures that may run in parallel (divide and conquer).
//!
//! | strategy | parts and pieces | `join` |
//! |---|---|---|
//! | `Seq` | in order on the calling thread | a then b |
//! | `Rayon` | halved recursively with `rayon::join` down to one part (work stealing) | `rayon::join` |
//! | `Steal` | halved recursively with our [`StealPool::join`] | [`StealPool::join`] |
//! | `Team` | one contiguous block of parts per member, fixed before anything runs | a then b (a team cannot fork) |
//!
//! Every part or piece looks at the cancel callback first and is skipped once it says stop, so
//! a cancelled kernel returns within one part's time; the caller discards its output. With a
//! recording [`Recorder`], each part is a span on the lane of the thread that ran it.

use std::ops::Range;

use super::forkjoin::{ForkJoin, Rayon};
use crate::platform::{self, PlatformError};
use crate::sched::partition::block;
use crate::sched::steal::StealPool;
use crate::sync::{lock, Mutex};
use crate::trace::{Recorder, SpanKind};

/// How the work is spread.
#[derive(Clone, Copy)]
pub enum Strategy<'p, 's> {
    /// One thread, in order.
    Seq,
    /// The current rayon pool (run inside `RayonPool::install`).
    Rayon,
    /// Our work-stealing pool.
    Steal(&'p StealPool<'s>),
    /// A static split over a team of this many threads.
    Team(usize),
}

/// A strategy with the run's cancel callback and trace.
#[derive(Clone, Copy)]
pub struct Par<'p, 's> {
    pub strategy: Strategy<'p, 's>,
    keep_going: &'p (dyn Fn() -> bool + Sync),
    trace: &'p Recorder,
}

impl<'p, 's> Par<'p, 's> {
    pub fn new(strategy: Strategy<'p, 's>, keep_going: &'p (dyn Fn() -> bool + Sync), trace: &'p Recorder) -> Self {
        Self { strategy, keep_going, trace }
    }

    /// Runs `body` with a sequential, never cancelled, untraced `Par`: for expected outputs.
    pub fn reference<R>(body: impl FnOnce(&Par<'_, '_>) -> R) -> R {
        let trace = Recorder::new(false);
        body(&Par::new(Strategy::Seq, &|| true, &trace))
    }

    pub fn is_sequential(&self) -> bool {
        matches!(self.strategy, Strategy::Seq)
    }

    /// False once the run was cancelled.
    pub fn keep_going(&self) -> bool {
        (self.keep_going)()
    }

    /// The lane of the thread calling this.
    fn lane(&self, member: usize) -> usize {
        match self.strategy {
            Strategy::Seq => 0,
            Strategy::Rayon => rayon::current_thread_index().unwrap_or(0),
            Strategy::Steal(pool) => pool.current_worker().unwrap_or(0),
            Strategy::Team(_) => member,
        }
    }

    /// Runs one part on lane `member`'s thread, unless cancelled.
    fn run_part<R: Default>(&self, member: usize, label: impl FnOnce() -> String, work: impl FnOnce() -> R) -> R {
        if !self.keep_going() {
            return R::default();
        }
        self.trace.lane(self.lane(member)).span(SpanKind::Run, label, work)
    }

    /// Runs `work(i, &mut parts[i])` for every part.
    pub fn for_each_mut<P: Send>(
        &self,
        parts: &mut [P],
        work: impl Fn(usize, &mut P) + Sync,
    ) -> Result<(), PlatformError> {
        let run = |member: usize, index: usize, part: &mut P| {
            self.run_part(member, || format!("part {index}"), || work(index, part))
        };
        match self.strategy {
            Strategy::Seq => parts.iter_mut().enumerate().for_each(|(index, part)| run(0, index, part)),
            Strategy::Rayon => halve(&Rayon, parts, 0, &run),
            Strategy::Steal(pool) => halve(pool, parts, 0, &run),
            Strategy::Team(threads) => {
                let count = parts.len();
                let mut blocks = Vec::with_capacity(threads);
                let mut rest = parts;
                for member in 0..threads {
                    let (head, tail) = rest.split_at_mut(block(count, threads, member).len());
                    blocks.push(Mutex::new(head));
                    rest = tail;
                }
                platform::run_team(threads, |member| {
                    let first = block(count, threads, member.index).start;
                    for (offset, part) in lock(&blocks[member.index]).iter_mut().enumerate() {
                        run(member.index, first + offset, part);
                    }
                })?;
            }
        }
        Ok(())
    }

    /// `map` over `0..items` cut into pieces of `grain` items, the results combined in order.
    pub fn map_reduce<R: Send + Default>(
        &self,
        items: usize,
        grain: usize,
        map: impl Fn(Range<usize>) -> R + Sync,
        combine: impl Fn(R, R) -> R + Sync,
    ) -> Result<R, PlatformError> {
        let grain = grain.max(1);
        let mut pieces: Vec<(Range<usize>, R)> = (0..items.div_ceil(grain).max(1))
            .map(|i| (i * grain..((i + 1) * grain).min(items), R::default()))
            .collect();
        self.for_each_mut(&mut pieces, |_, (range, result)| *result = map(range.clone()))?;
        Ok(pieces.into_iter().map(|(_, result)| result).reduce(combine).unwrap_or_default())
    }

    /// Runs `a` and `b`, in parallel where the strategy can fork.
    pub fn join<RA: Send, RB: Send>(&self, a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        match self.strategy {
            Strategy::Seq | Strategy::Team(_) => (a(), b()),
            Strategy::Rayon => rayon::join(a, b),
            Strategy::Steal(pool) => pool.join(a, b),
        }
    }

    /// Threads the work may use.
    pub fn threads(&self) -> usize {
        match self.strategy {
            Strategy::Seq => 1,
            Strategy::Rayon => rayon::current_num_threads(),
            Strategy::Steal(pool) => pool.threads(),
            Strategy::Team(threads) => threads,
        }
    }
}

/// So divide-and-conquer kernels written against [`ForkJoin`] run under any strategy.
impl ForkJoin for Par<'_, '_> {
    fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        Par::join(self, a, b)
    }
}

/// Splits `parts` in halves with `forker.join` down to single parts (recursive bisection, as
/// rayon's `par_iter` does).
fn halve<F: ForkJoin, P: Send>(
    forker: &F,
    parts: &mut [P],
    first: usize,
    run: &(impl Fn(usize, usize, &mut P) + Sync),
) {
    match parts {
        [] => {}
        [part] => run(0, first, part),
        _ => {
            let middle = parts.len() / 2;
            let (left, right) = parts.split_at_mut(middle);
            forker.join(|| halve(forker, left, first, run), || halve(forker, right, first + middle, run));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::RayonPool;
    use crate::sync::atomic::{AtomicUsize, Ordering};

    fn every_strategy(check: impl Fn(&Par<'_, '_>) + Sync) {
        let trace = Recorder::new(true);
        let keep_going = || true;
        check(&Par::new(Strategy::Seq, &keep_going, &trace));
        check(&Par::new(Strategy::Team(3), &keep_going, &trace));
        RayonPool::new(2).unwrap().install(|| check(&Par::new(Strategy::Rayon, &keep_going, &trace)));
        StealPool::run(2, &trace, |pool| check(&Par::new(Strategy::Steal(pool), &keep_going, &trace))).unwrap();
    }

    #[test]
    fn every_part_runs_once_with_its_index() {
        every_strategy(|par| {
            let mut parts = vec![0usize; 37];
            par.for_each_mut(&mut parts, |index, part| *part += index + 1).unwrap();
            assert_eq!(parts, (1..=37).collect::<Vec<_>>());
        });
    }

    #[test]
    fn map_reduce_combines_pieces_in_order() {
        every_strategy(|par| {
            let concatenated = par.map_reduce(
                103,
                10,
                |range| range.collect::<Vec<_>>(),
                |mut a, b| {
                    a.extend(b);
                    a
                },
            );
            assert_eq!(concatenated.unwrap(), (0..103).collect::<Vec<_>>());
            assert_eq!(par.map_reduce(0, 10, |range| range.len(), |a, b| a + b).unwrap(), 0);
        });
    }

    #[test]
    fn a_cancelled_run_skips_the_remaining_parts() {
        let trace = Recorder::new(false);
        let calls = AtomicUsize::new(0);
        let keep_going = || calls.fetch_add(1, Ordering::Relaxed) < 3;
        let par = Par::new(Strategy::Seq, &keep_going, &trace);
        let mut parts = vec![0; 10];
        par.for_each_mut(&mut parts, |_, part| *part = 1).unwrap();
        assert_eq!(parts.iter().sum::<i32>(), 3);
    }
}
