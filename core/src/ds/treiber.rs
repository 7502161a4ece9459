//! Treiber's lock-free stack (R. K. Treiber, "Systems Programming: Coping with Parallelism",
//! IBM RJ 5118, 1986) over a fixed pool of nodes, with and without the tag that defeats ABA.
//!
//! `head` names the top node; `pop` reads the top `x` and its successor `y`, then swings `head`
//! from `x` to `y` with one compare-and-swap; `push` links a node above `head` the same way.
//! Nodes are indices into a pool and are reused at once — so the stack also shows the ABA
//! problem: between a thread's read of (`x`, `y`) and its CAS, other threads may pop `x`, pop
//! `y`, and push `x` back with a different successor. `head` is `x` again, the CAS succeeds, and
//! `y` — now held by another thread — becomes the top. [`Head::Tagged`] packs a counter next to
//! the index that every successful CAS increments (IBM System/370's tagged pointers), so a
//! stale `x` no longer compares equal. Reusing pool nodes (never freeing them) is also what
//! makes reading `x.next` after a concurrent pop safe.
//!
//! | `head` word | untagged | tagged |
//! |---|---|---|
//! | bits 0–31 | top node's index (`EMPTY` if none) | same |
//! | bits 32–63 | 0 | a counter bumped by every successful CAS |
//!
//! Memory ordering: a push writes `node.next` then publishes it with a Release CAS on `head`; a
//! pop's Acquire load of `head` makes that `next` visible before it is read.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::spin_yield;

/// No node.
const EMPTY: u32 = u32::MAX;

/// Whether `head` carries an ABA tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    Untagged,
    Tagged,
}

/// A Treiber stack of node indices `0..capacity`.
pub struct IndexStack {
    head: AtomicU64,
    next: Box<[AtomicU32]>,
    mode: Head,
}

fn index(word: u64) -> u32 {
    word as u32
}

impl IndexStack {
    /// A stack holding every node, 0 on top.
    pub fn full(capacity: u32, mode: Head) -> Self {
        let next = (0..capacity).map(|i| AtomicU32::new(if i + 1 < capacity { i + 1 } else { EMPTY })).collect();
        Self { head: AtomicU64::new(if capacity > 0 { 0 } else { u64::from(EMPTY) }), next, mode }
    }

    /// `head`'s next value: `node` on top, the tag bumped if tagged.
    fn successor(&self, old: u64, node: u32) -> u64 {
        match self.mode {
            Head::Untagged => u64::from(node),
            Head::Tagged => ((old >> 32).wrapping_add(1) << 32) | u64::from(node),
        }
    }

    /// Pushes `node` (which the caller popped, so no one else holds it).
    pub fn push(&self, node: u32) {
        let mut old = self.head.load(Ordering::Relaxed);
        loop {
            self.next[node as usize].store(index(old), Ordering::Relaxed);
            match self.head.compare_exchange_weak(old, self.successor(old, node), Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(current) => {
                    old = current;
                    spin_yield();
                }
            }
        }
    }

    /// Pops the top node; `between` runs after reading the top and its successor and before
    /// the CAS — the window in which ABA strikes (a demo widens it).
    pub fn pop_with(&self, mut between: impl FnMut()) -> Option<u32> {
        let mut old = self.head.load(Ordering::Acquire);
        loop {
            let top = index(old);
            if top == EMPTY {
                return None;
            }
            let next = self.next[top as usize].load(Ordering::Relaxed);
            between();
            match self.head.compare_exchange_weak(old, self.successor(old, next), Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(top),
                Err(current) => {
                    old = current;
                    spin_yield();
                }
            }
        }
    }

    pub fn pop(&self) -> Option<u32> {
        self.pop_with(|| {})
    }

    /// The nodes from the top down (at most `capacity + 1` steps, so a corrupted, cyclic stack
    /// still ends). Call when no other thread is using the stack.
    pub fn nodes(&self) -> Vec<u32> {
        let mut nodes = Vec::new();
        let mut at = index(self.head.load(Ordering::Acquire));
        while at != EMPTY && nodes.len() <= self.next.len() {
            nodes.push(at);
            at = self.next[at as usize].load(Ordering::Relaxed);
        }
        nodes
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pops_in_lifo_order_and_takes_nodes_back() {
        for mode in [Head::Untagged, Head::Tagged] {
            let stack = IndexStack::full(3, mode);
            assert_eq!(stack.nodes(), [0, 1, 2]);
            let (a, b) = (stack.pop().unwrap(), stack.pop().unwrap());
            stack.push(a);
            assert_eq!((a, b, stack.nodes()), (0, 1, vec![0, 2]));
            assert_eq!([stack.pop(), stack.pop(), stack.pop()], [Some(0), Some(2), None]);
        }
    }

    #[test]
    fn the_aba_interleaving_corrupts_an_untagged_stack_but_not_a_tagged_one() {
        // Played out by hand: A reads top 0 and its successor 1; meanwhile B pops 0 and 1 and
        // pushes 0 back (its successor is now 2); then A's CAS.
        for (mode, expected) in [(Head::Untagged, vec![1, 2]), (Head::Tagged, vec![2])] {
            let stack = IndexStack::full(3, mode);
            let mut stolen = None;
            let popped = stack.pop_with(|| {
                if stolen.is_none() {
                    let (x, y) = (stack.pop().unwrap(), stack.pop().unwrap());
                    stack.push(x);
                    stolen = Some(y);
                }
            });
            // Untagged: A "pops" 0 and installs 1 — which B holds — as the top. Tagged: A's CAS
            // fails, it retries and pops the re-pushed 0; 2 is left, 1 stays with B.
            assert_eq!((popped, stack.nodes()), (Some(0), expected), "{mode:?}");
        }
    }
}
