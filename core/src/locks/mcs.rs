//! MCS queue lock (Mellor-Crummey & Scott 1991, "Algorithms for scalable synchronization on
//! shared-memory multiprocessors", §2.4).
//!
//! Waiters form a linked queue; `tail` points at the last. An arrival swaps itself in as the
//! tail and, if there was a predecessor, links itself behind it and spins on a flag **in its own
//! node** — so each waiter spins on a different cache line and a release touches only the
//! successor's. FIFO like the ticket lock, but with O(1) cache traffic per handoff.
//!
//! Unlock: with no successor linked yet, try to swing `tail` back to null; if that fails, an
//! arrival is between its swap and its link, so wait for the link, then hand over by clearing
//! the successor's flag.
//!
//! Memory ordering: `tail.swap` is `AcqRel` (Release publishes the node's initialisation to the
//! successor that reads it as its predecessor; Acquire sees the predecessor's node). The link
//! store is `Release`, read with `Acquire` by the predecessor. The handoff store of `locked =
//! false` is `Release`, the waiter's spin load `Acquire`; the uncontended release is the
//! `Release` CAS of `tail` to null, observed by the next `swap`'s Acquire.
//!
//! The holder's token is its queue node. Nodes come from a per-thread free list natively (no
//! allocation per acquisition after warm-up) and are freshly boxed under loom.
//!
//! | `tail` | the holder's `next` | meaning |
//! |---|---|---|
//! | null | – | free |
//! | holder's node | null | held, no waiters |
//! | another node | null | held, a waiter is linking itself |
//! | another node | non-null | held, waiters queued |

use std::ptr::{self, NonNull};

use super::RawLock;
use crate::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use crate::sync::spin_yield;

/// A waiter's queue entry.
#[derive(Debug, Default)]
pub struct Node {
    locked: AtomicBool,
    next: AtomicPtr<Node>,
}

#[derive(Debug)]
pub struct McsLock {
    tail: AtomicPtr<Node>,
}

impl Default for McsLock {
    fn default() -> Self {
        Self { tail: AtomicPtr::new(ptr::null_mut()) }
    }
}

/// The node a holder keeps until it unlocks.
pub struct McsToken(NonNull<Node>);

/// Each thread keeps the nodes it has used for its next acquisitions (under loom too, so the
/// model checks a recycled node's reset).
mod nodes {
    use std::cell::RefCell;

    use super::Node;

    crate::sync::thread_local! {
        #[allow(clippy::vec_box, reason = "a node's address must not move: other threads hold pointers to it")]
        #[allow(clippy::missing_const_for_thread_local, reason = "loom's thread_local! takes no const initialiser")]
        static FREE: RefCell<Vec<Box<Node>>> = RefCell::new(Vec::new());
    }

    pub fn take() -> Box<Node> {
        FREE.with(|free| free.borrow_mut().pop()).unwrap_or_default()
    }

    pub fn give_back(node: Box<Node>) {
        // During thread teardown the list may be gone: then the node is simply freed.
        let _ = FREE.try_with(|free| free.borrow_mut().push(node));
    }
}

fn fresh_node() -> NonNull<Node> {
    let node = nodes::take();
    node.locked.store(true, Ordering::Relaxed);
    node.next.store(ptr::null_mut(), Ordering::Relaxed);
    NonNull::from(Box::leak(node))
}

// SAFETY: the holder is the thread whose node was at the head of the queue: the first to swap
// into an empty tail, or the one whose predecessor cleared its flag. Handoff and release are
// Release operations observed with Acquire (see the module doc).
unsafe impl RawLock for McsLock {
    type Token = McsToken;
    const NAME: &'static str = "mcs";

    fn lock(&self) -> McsToken {
        let node = fresh_node();
        let predecessor = self.tail.swap(node.as_ptr(), Ordering::AcqRel);
        if let Some(predecessor) = NonNull::new(predecessor) {
            // SAFETY: a predecessor's node stays allocated until its owner has handed over to
            // us, which it cannot do before reading the link we store here.
            unsafe { predecessor.as_ref() }.next.store(node.as_ptr(), Ordering::Release);
            // SAFETY: our own node, live until we unlock.
            while unsafe { node.as_ref() }.locked.load(Ordering::Acquire) {
                spin_yield();
            }
        }
        McsToken(node)
    }

    fn try_lock(&self) -> Option<McsToken> {
        let node = fresh_node();
        match self.tail.compare_exchange(ptr::null_mut(), node.as_ptr(), Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => Some(McsToken(node)),
            Err(_) => {
                // SAFETY: never published: `node` came from `Box::leak` above and only we have it.
                nodes::give_back(unsafe { Box::from_raw(node.as_ptr()) });
                None
            }
        }
    }

    unsafe fn unlock(&self, McsToken(node): McsToken) {
        // SAFETY: the caller holds the lock with this token, so `node` is our live queue node.
        let mine = unsafe { node.as_ref() };
        let mut successor = mine.next.load(Ordering::Acquire);
        if successor.is_null() {
            if self.tail.compare_exchange(node.as_ptr(), ptr::null_mut(), Ordering::Release, Ordering::Relaxed).is_ok()
            {
                // SAFETY: nobody swapped in behind us, so nobody else will touch the node.
                nodes::give_back(unsafe { Box::from_raw(node.as_ptr()) });
                return;
            }
            // An arrival swapped the tail but has not linked itself yet.
            loop {
                successor = mine.next.load(Ordering::Acquire);
                if !successor.is_null() {
                    break;
                }
                spin_yield();
            }
        }
        // SAFETY: the successor's node is live: its owner spins on it until this store.
        unsafe { &*successor }.locked.store(false, Ordering::Release);
        // SAFETY: the successor has linked itself (we read the link), so nobody else will
        // access our node again.
        nodes::give_back(unsafe { Box::from_raw(node.as_ptr()) });
    }
}

impl Drop for McsLock {
    fn drop(&mut self) {
        debug_assert!(self.tail.load(Ordering::Relaxed).is_null(), "MCS lock dropped while held");
    }
}
