//! Task wakers: 64 slots share one allocation.
//!
//! A waker must reach its task's wake-up state from any thread (a `to_thread` job wakes its
//! task from a pool thread), so that state is reference-counted and atomic. One `Arc` per slot
//! cost a burst of 100 000 tasks 100 000 allocations and frees (and 48 bytes each); here a
//! [`WakeChunk`] holds the `queued` flags of 64 consecutive slots, and a slot's [`Waker`] is a
//! raw waker whose data pointer is the chunk's address with the slot's index (0–63) in its six
//! low bits — the chunk is 64-byte aligned, so they are free. Cloning or dropping a waker counts
//! on the chunk's `Arc`: a chunk lives while any of its slots' wakers does.
//!
//! Ordering contract: `queued` is swapped to true with AcqRel by a wake (only the waker that
//! flips it queues the slot) and stored false with Release by the loop just before it polls the
//! slot's task — so a wake that lands during the poll queues it again, and no wake is lost.
//!
//! A wake on the loop's own thread pushes the slot on a thread-local list (no lock); any other
//! thread goes through the loop's [`Remote`] (a mutex and the idle loop's wake-up).

use std::cell::{Cell, RefCell};
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::clock::Remote;
use crate::sync::atomic::{AtomicBool, Ordering};

/// Wakers cross threads: std's `Arc`, as raw wakers expect of what they count.
type WakeArc<T> = std::sync::Arc<T>;

/// Slots per chunk: the index must fit the low bits the chunk's alignment leaves free.
pub(super) const CHUNK: usize = 64;

/// The wake-up flags of slots `first .. first + 64`.
#[repr(align(64))]
pub(super) struct WakeChunk {
    first: usize,
    remote: WakeArc<Remote>,
    queued: [AtomicBool; CHUNK],
}

thread_local! {
    /// The running loop's [`Remote`], to recognise wakes on the loop's own thread.
    static LOCAL_REMOTE: Cell<*const Remote> = const { Cell::new(std::ptr::null()) };
    /// Tasks woken on the loop's own thread, in wake order.
    static LOCAL_WAKES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks `remote`'s loop as the one running on this thread (None: none is).
pub(super) fn set_local_loop(remote: Option<&WakeArc<Remote>>) {
    LOCAL_REMOTE.with(|local| local.set(remote.map_or(std::ptr::null(), WakeArc::as_ptr)));
    LOCAL_WAKES.with_borrow_mut(Vec::clear);
}

/// Moves the slots woken on this thread, in wake order, to the end of `ready`.
pub(super) fn drain_local_wakes(ready: &mut std::collections::VecDeque<usize>) {
    LOCAL_WAKES.with_borrow_mut(|wakes| ready.extend(wakes.drain(..)));
}

/// The slots woken on this thread and not yet drained, in wake order.
pub(super) fn local_wakes() -> Vec<usize> {
    LOCAL_WAKES.with_borrow(Clone::clone)
}

impl WakeChunk {
    /// The chunk of slots `first .. first + 64` of the loop behind `remote`.
    pub(super) fn new(first: usize, remote: WakeArc<Remote>) -> WakeArc<Self> {
        WakeArc::new(Self { first, remote, queued: std::array::from_fn(|_| AtomicBool::new(false)) })
    }

    /// Queues slot `index` of this chunk unless it is queued already.
    pub(super) fn wake(&self, index: usize) {
        if self.queued[index].swap(true, Ordering::AcqRel) {
            return;
        }
        let id = self.first + index;
        let local = LOCAL_REMOTE.with(|remote| std::ptr::eq(remote.get(), WakeArc::as_ptr(&self.remote)));
        if local {
            LOCAL_WAKES.with_borrow_mut(|wakes| wakes.push(id));
        } else {
            self.remote.push(id);
        }
    }

    /// The loop is about to poll slot `index`: wakes from now on queue it again.
    pub(super) fn clear(&self, index: usize) {
        self.queued[index].store(false, Ordering::Release);
    }

    /// A waker for slot `index` of `chunk`.
    pub(super) fn waker(chunk: &WakeArc<Self>, index: usize) -> Waker {
        assert!(index < CHUNK, "a chunk has {CHUNK} slots");
        let data = WakeArc::into_raw(WakeArc::clone(chunk)).map_addr(|addr| addr | index).cast::<()>();
        // SAFETY: `data` carries one strong count of `chunk` (the clone above, leaked into the
        // pointer) and VTABLE's functions keep the raw-waker contract with it: see each one.
        unsafe { Waker::new(data, &VTABLE) }
    }
}

/// A `static`, not a `const`: one address, so `Waker::will_wake` recognises a slot's clones.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

/// The chunk and slot index a waker's data pointer names.
fn split(data: *const ()) -> (*const WakeChunk, usize) {
    let index = data.addr() & (CHUNK - 1);
    (data.map_addr(|addr| addr & !(CHUNK - 1)).cast::<WakeChunk>(), index)
}

/// # Safety
/// `data` comes from [`WakeChunk::waker`] (or this function) and its count is still held.
unsafe fn clone_raw(data: *const ()) -> RawWaker {
    let (chunk, _) = split(data);
    // SAFETY: `chunk` is the `Arc` pointer `into_raw` gave, and the waker being cloned holds a
    // strong count, so the chunk is alive; the new waker takes one more count.
    unsafe { WakeArc::increment_strong_count(chunk) };
    RawWaker::new(data, &VTABLE)
}

/// # Safety
/// As [`clone_raw`]; consumes the waker's count.
unsafe fn wake_raw(data: *const ()) {
    // SAFETY: the caller's contract, passed on; the count is then given back once.
    unsafe {
        wake_by_ref_raw(data);
        drop_raw(data);
    }
}

/// # Safety
/// As [`clone_raw`].
unsafe fn wake_by_ref_raw(data: *const ()) {
    let (chunk, index) = split(data);
    // SAFETY: the waker holds a strong count, so the chunk is alive for this call.
    unsafe { &*chunk }.wake(index);
}

/// # Safety
/// As [`clone_raw`]; gives the waker's count back.
unsafe fn drop_raw(data: *const ()) {
    let (chunk, _) = split(data);
    // SAFETY: the count this waker held, released once; the last one frees the chunk.
    unsafe { WakeArc::decrement_strong_count(chunk) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_waker_queues_its_slot_once_until_cleared_and_keeps_its_chunk_alive() {
        let remote = WakeArc::new(Remote::default());
        set_local_loop(Some(&remote));
        let chunk = WakeChunk::new(128, WakeArc::clone(&remote));
        let waker = WakeChunk::waker(&chunk, 5);
        let twin = waker.clone();
        assert!(waker.will_wake(&twin));
        assert!(!waker.will_wake(&WakeChunk::waker(&chunk, 6)));
        waker.wake_by_ref();
        twin.wake_by_ref();
        assert_eq!(local_wakes(), [133], "queued once");
        chunk.clear(5);
        drop(chunk);
        twin.wake();
        assert_eq!(local_wakes(), [133, 133], "queued again after the poll began; the chunk outlives its Arc");
        let mut ready = std::collections::VecDeque::new();
        drain_local_wakes(&mut ready);
        assert_eq!(ready, [133, 133]);
        set_local_loop(None);
        drop(waker);
    }
}
