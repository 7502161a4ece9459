//! Static partitioning: the work is cut into one contiguous, equal-sized block per thread before
//! anything runs (OpenMP's `schedule(static)`, `Pool.map` with `chunksize = n / workers`). There
//! is no scheduler and so no overhead — and no remedy when the blocks turn out unequal in
//! cost: every thread waits for the slowest block.

use std::ops::Range;

use crate::platform::{self, Instant, PlatformError};
use crate::trace::{Recorder, SpanKind};

/// The block of `0..items` thread `index` of `threads` gets: sizes differ by at most one.
pub fn block(items: usize, threads: usize, index: usize) -> Range<usize> {
    let (base, extra) = (items / threads, items % threads);
    let start = index * base + index.min(extra);
    start..start + base + usize::from(index < extra)
}

/// Runs `work(range)` for each thread's [`block`] of `0..items` on a team of `threads`, each
/// block recorded as one span on its thread's lane.
pub fn run_blocks(
    threads: usize,
    items: usize,
    recorder: &Recorder,
    work: impl Fn(Range<usize>) + Sync,
) -> Result<(), PlatformError> {
    platform::run_team(threads, |member| {
        let range = block(items, threads, member.index);
        let start = Instant::now();
        let label = recorder.is_enabled().then(|| format!("items {}–{}", range.start, range.end.saturating_sub(1)));
        work(range);
        if let Some(label) = label {
            recorder.record_at(member.index, SpanKind::Run, label, start, Instant::now());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn blocks_cover_everything_once_and_differ_by_at_most_one() {
        for (items, threads) in [(10, 3), (3, 5), (0, 2), (1000, 7), (8, 8)] {
            let blocks: Vec<_> = (0..threads).map(|index| block(items, threads, index)).collect();
            assert_eq!(blocks[0].start, 0);
            assert_eq!(blocks.last().unwrap().end, items);
            assert!(blocks.windows(2).all(|w| w[0].end == w[1].start));
            let sizes: Vec<_> = blocks.iter().map(|b| b.len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn run_blocks_runs_every_item_once() {
        let seen: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        run_blocks(3, 100, &Recorder::new(false), |range| {
            for item in range {
                seen[item].fetch_add(1, Ordering::Relaxed);
            }
        })
        .unwrap();
        assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1));
    }
}
