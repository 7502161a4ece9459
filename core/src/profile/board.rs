//! A thread's stack, published for a sampler on another thread to read without stopping it —
//! the py-spy model (py-spy reads a CPython thread's frame list from outside the process; here
//! the interpreter writes its frames into a small shared array).
//!
//! Algorithm: a single-writer sequence lock (Lameter 2005; the memory-model treatment follows
//! Boehm 2012, as [`crate::locks::seqlock`] does). The owning thread is the only writer, so it
//! needs no writer lock: a push or pop makes `seq` odd, changes the frames, the depth and the
//! state, and makes `seq` even again. A reader reads `seq`, the words, then `seq` again, and
//! keeps the snapshot only if both reads saw the same even number; otherwise it retries a few
//! times and then gives the tick up as *torn* (a sampler must never wait for a worker).
//!
//! Memory ordering — writer: `seq = odd` (Relaxed), `fence(Release)`, words (Relaxed),
//! `seq = even` (Release). Reader: `s1 = seq` (Acquire), words (Relaxed), `fence(Acquire)`,
//! `s2 = seq` (Relaxed). If any word a reader loaded came from a write, its acquire fence makes
//! that write's odd `seq` visible to the second load, and the snapshot is dropped.
//!
//! | `seq` | meaning |
//! |---|---|
//! | even | stable: a snapshot read between two equal even values is a real stack of the thread |
//! | odd | the thread is pushing or popping: readers retry |
//!
//! A push or pop costs the worker four relaxed stores and a release fence (free on x86): the
//! only cost the sampling profiler puts on the threads it watches.

use super::ThreadState;
use crate::sync::atomic::{fence, AtomicU32, Ordering};

/// Frames deeper than this are not published (the deepest are dropped; the depth still counts
/// them, so pops stay balanced). The lab's programs nest a few calls.
pub const MAX_DEPTH: usize = 32;

/// How many times a reader retries a snapshot overlapped by a push or pop before it gives the
/// tick up.
const READ_ATTEMPTS: u32 = 4;

/// One thread's published stack: frame ids, root first, and what the thread is doing.
#[derive(Debug)]
pub struct StackBoard {
    seq: AtomicU32,
    /// Frames on the stack (may exceed [`MAX_DEPTH`]; only that many are published).
    depth: AtomicU32,
    state: AtomicU32,
    frames: [AtomicU32; MAX_DEPTH],
}

impl Default for StackBoard {
    fn default() -> Self {
        Self {
            seq: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            state: AtomicU32::new(ThreadState::Running as u32),
            frames: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// A consistent reading of a [`StackBoard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub frames: Vec<u32>,
    pub state: ThreadState,
}

impl StackBoard {
    /// The owner enters frame `frame`.
    pub fn push(&self, frame: u32) {
        self.write(|board, depth| {
            if let Some(slot) = board.frames.get(depth as usize) {
                slot.store(frame, Ordering::Relaxed);
            }
            board.depth.store(depth + 1, Ordering::Relaxed);
        });
    }

    /// The owner leaves its innermost frame.
    pub fn pop(&self) {
        self.write(|board, depth| board.depth.store(depth.saturating_sub(1), Ordering::Relaxed));
    }

    /// The owner starts or stops waiting.
    pub fn set_state(&self, state: ThreadState) {
        self.write(|board, _| board.state.store(state as u32, Ordering::Relaxed));
    }

    /// One change by the owner, between an odd and an even `seq`.
    fn write(&self, change: impl FnOnce(&Self, u32)) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        change(self, self.depth.load(Ordering::Relaxed));
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The stack as it was at one moment, or `None` if the owner kept changing it (torn).
    pub fn read(&self) -> Option<Snapshot> {
        for _ in 0..READ_ATTEMPTS {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                crate::sync::spin_yield();
                continue;
            }
            let depth = (self.depth.load(Ordering::Relaxed) as usize).min(MAX_DEPTH);
            let frames: Vec<u32> = self.frames[..depth].iter().map(|f| f.load(Ordering::Relaxed)).collect();
            let state = self.state.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(Snapshot { frames, state: ThreadState::from_u32(state) });
            }
        }
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::run_team;

    #[test]
    fn a_reader_sees_only_stacks_the_owner_really_had() {
        // The owner walks 0 → 0,1 → 0,1,2 → 0,1 → 0 …: every real stack is a prefix of 0,1,2.
        const ROUNDS: u32 = if cfg!(miri) { 20 } else { 20_000 };
        let board = StackBoard::default();
        board.push(0);
        let torn = crate::sync::atomic::AtomicU32::new(0);
        run_team(2, |member| {
            for _ in 0..ROUNDS {
                if member.index == 0 {
                    board.push(1);
                    board.set_state(ThreadState::Gil);
                    board.push(2);
                    board.pop();
                    board.set_state(ThreadState::Running);
                    board.pop();
                } else {
                    match board.read() {
                        Some(Snapshot { frames, .. }) => {
                            assert!(!frames.is_empty() && frames.iter().enumerate().all(|(i, f)| *f == i as u32))
                        }
                        None => {
                            torn.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
        .unwrap();
        // How many reads gave up depends on the machine (under ThreadSanitizer the owner is
        // mid-change nearly always); that a still board reads whole does not.
        println!("{} of {ROUNDS} reads torn", torn.load(Ordering::Relaxed));
        assert_eq!(board.read().map(|s| s.frames), Some(vec![0]));
    }

    #[test]
    fn frames_past_the_published_depth_keep_pops_balanced() {
        let board = StackBoard::default();
        for frame in 0..MAX_DEPTH as u32 + 3 {
            board.push(frame);
        }
        assert_eq!(board.read().unwrap().frames.len(), MAX_DEPTH);
        for _ in 0..3 {
            board.pop();
        }
        assert_eq!(board.read().unwrap().frames, (0..MAX_DEPTH as u32).collect::<Vec<_>>());
        board.pop();
        assert_eq!(board.read().unwrap().frames.len(), MAX_DEPTH - 1);
    }
}
