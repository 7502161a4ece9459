//! Task blocks: each thread keeps the memory of its finished tasks for the tasks it creates next.
//!
//! Every task lives in one heap block (its header, then its future, then its result). A burst
//! of 100 000 tasks allocates ~18 MB of them and frees them all when it ends; glibc then hands
//! the top of its heap back to the kernel (`M_TRIM_THRESHOLD`), and the next burst takes a page
//! fault on every 4 KiB of it again. Measured on the `aio` benchmark (2-core VM, Linux 6.18):
//! 192 ns per spawned task, 106 ns with glibc told never to trim — so about 45% of a task's cost
//! was the kernel zeroing pages. CPython's own answer to the same churn is free lists (its
//! object allocator keeps arenas); ours is this cache.
//!
//! A freed block goes on a per-thread free list of its size class (16-byte steps up to 1 KiB;
//! the list is threaded through the free blocks themselves, so keeping a block costs nothing
//! more); an allocation pops the most recently freed block of its class — warm in cache. A
//! thread keeps at most [`KEEP_BYTES`]; past that, and for blocks over 1 KiB or aligned past
//! 16, blocks go straight back to the global allocator. The thread's blocks are freed when it
//! exits.
//!
//! [`Shared`] is the counted pointer to a block (what `Rc` was, with this cache as its
//! allocator): single-threaded (`!Send`), its count in the block's own header ([`Counted`]).

use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// Size classes are multiples of this; it is also every cached block's alignment.
const GRAIN: usize = 16;
/// Cached sizes: 16 B … 1 KiB.
const CLASSES: usize = 64;
/// What one thread keeps at most: a burst of ~150 000 small tasks.
const KEEP_BYTES: usize = 32 << 20;

/// A free block's first bytes: the next free block of its class.
struct FreeBlock {
    next: Option<NonNull<FreeBlock>>,
}

struct Cache {
    heads: [Option<NonNull<FreeBlock>>; CLASSES],
    bytes: usize,
    /// The most bytes it keeps: [`KEEP_BYTES`].
    limit: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache::new(KEEP_BYTES)) };
}

/// The class of blocks of `layout`, if it is cached.
fn class_of(layout: Layout) -> Option<usize> {
    (layout.align() <= GRAIN && layout.size() <= GRAIN * CLASSES).then(|| layout.size().max(1).div_ceil(GRAIN) - 1)
}

/// The layout every block of `class` is allocated with.
fn class_layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * GRAIN, GRAIN).expect("a class size is a small multiple of its alignment")
}

/// A block for a value of `layout` (not zero-sized): a cached one if the thread has one.
fn allocate(layout: Layout) -> NonNull<u8> {
    let (cached, layout) = match class_of(layout) {
        Some(class) => {
            let popped = CACHE.try_with(|cache| cache.borrow_mut().pop(class)).ok().flatten();
            (popped, class_layout(class))
        }
        None => (None, layout),
    };
    cached.unwrap_or_else(|| {
        // SAFETY: `layout` is not zero-sized: a task block holds at least its header.
        let block = unsafe { alloc::alloc(layout) };
        NonNull::new(block).unwrap_or_else(|| alloc::handle_alloc_error(layout))
    })
}

/// Gives back a block [`allocate`] returned for `layout`; its value is already dropped.
///
/// # Safety
/// `block` came from [`allocate`] with this `layout` and is not used afterwards.
unsafe fn release(block: NonNull<u8>, layout: Layout) {
    let (block, layout) = match class_of(layout) {
        Some(class) => {
            let kept = CACHE.try_with(|cache| cache.borrow_mut().push(class, block)).unwrap_or(false);
            if kept {
                return;
            }
            (block, class_layout(class))
        }
        None => (block, layout),
    };
    // SAFETY: the caller's contract: `allocate` got it from the global allocator with `layout`
    // (its class's layout when it has a class).
    unsafe { alloc::dealloc(block.as_ptr(), layout) };
}

impl Cache {
    const fn new(limit: usize) -> Self {
        Self { heads: [None; CLASSES], bytes: 0, limit }
    }

    fn pop(&mut self, class: usize) -> Option<NonNull<u8>> {
        let head = self.heads[class]?;
        // SAFETY: a listed block is a live allocation of this class that only the list owns,
        // and its first bytes hold the `FreeBlock` written by `push`.
        self.heads[class] = unsafe { head.as_ref().next };
        self.bytes -= class_layout(class).size();
        Some(head.cast())
    }

    /// Keeps `block` of `class` unless that would pass the limit.
    fn push(&mut self, class: usize, block: NonNull<u8>) -> bool {
        let size = class_layout(class).size();
        if self.bytes + size > self.limit {
            return false;
        }
        let free = block.cast::<FreeBlock>();
        // SAFETY: the block is at least 16 bytes, 16-aligned, and ours alone (its value is
        // dropped and its owner gave it up): room for the one pointer a `FreeBlock` holds.
        unsafe { free.write(FreeBlock { next: self.heads[class] }) };
        self.heads[class] = Some(free);
        self.bytes += size;
        true
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for class in 0..CLASSES {
            while let Some(block) = self.pop(class) {
                // SAFETY: a cached block was allocated with its class's layout and nothing
                // else refers to it.
                unsafe { alloc::dealloc(block.as_ptr(), class_layout(class)) };
            }
        }
    }
}

/// A value that keeps its own reference count (a task's header).
pub(super) trait Counted {
    fn refs(&self) -> &Cell<usize>;
}

/// A counted pointer to a value in a cached block — `Rc`, allocated through this module.
pub(super) struct Shared<C: ?Sized + Counted> {
    ptr: NonNull<C>,
    /// Owns a `C` (for the drop checker) and is neither `Send` nor `Sync`.
    _owns: PhantomData<C>,
}

/// Moving the pointer never moves the value (as with `Rc`).
impl<C: ?Sized + Counted> Unpin for Shared<C> {}

impl<C: Counted> Shared<C> {
    /// Moves `value` into a block; its count must read 1.
    pub(super) fn new(value: C) -> Self {
        assert_eq!(value.refs().get(), 1, "a new block's value is referenced once");
        let ptr = allocate(Layout::new::<C>()).cast::<C>();
        // SAFETY: `allocate` returned a block with `C`'s size and at least its alignment.
        unsafe { ptr.write(value) };
        Self { ptr, _owns: PhantomData }
    }
}

impl<C: ?Sized + Counted> Shared<C> {
    /// This pointer as another view of the same block (`Shared<dyn Task>` from a typed one):
    /// `view` is an unsizing or upcasting coercion of the pointer.
    pub(super) fn view<V: ?Sized + Counted>(this: &Self, view: impl FnOnce(NonNull<C>) -> NonNull<V>) -> Shared<V> {
        let ptr = view(this.ptr);
        assert!(std::ptr::addr_eq(ptr.as_ptr(), this.ptr.as_ptr()), "a view of the same block");
        this.refs().set(this.refs().get() + 1);
        Shared { ptr, _owns: PhantomData }
    }

    /// Whether both point at the same block.
    pub(super) fn ptr_eq<V: ?Sized + Counted>(this: &Self, other: &Shared<V>) -> bool {
        std::ptr::addr_eq(this.ptr.as_ptr(), other.ptr.as_ptr())
    }
}

impl<C: ?Sized + Counted> Deref for Shared<C> {
    type Target = C;

    fn deref(&self) -> &C {
        // SAFETY: the block stays allocated and its value undropped while any `Shared` to it
        // lives (the count says how many), and values are only ever shared, never mutated
        // through a `Shared`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<C: ?Sized + Counted> Clone for Shared<C> {
    fn clone(&self) -> Self {
        self.refs().set(self.refs().get() + 1);
        Self { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<C: ?Sized + Counted> Drop for Shared<C> {
    fn drop(&mut self) {
        let refs = self.refs().get() - 1;
        self.refs().set(refs);
        if refs > 0 {
            return;
        }
        let layout = Layout::for_value::<C>(self);
        // SAFETY: this was the last pointer to the block: its value is dropped once, in place,
        // and the block, allocated by `Shared::new` with the value's layout (which `for_value`
        // reads back through the same vtable), is given back once.
        unsafe {
            self.ptr.as_ptr().drop_in_place();
            release(self.ptr.cast(), layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe {
        refs: Cell<usize>,
        dropped: std::rc::Rc<Cell<usize>>,
        payload: [u64; 5],
    }

    impl Counted for Probe {
        fn refs(&self) -> &Cell<usize> {
            &self.refs
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.dropped.set(self.dropped.get() + 1);
        }
    }

    fn probe(dropped: &std::rc::Rc<Cell<usize>>, tag: u64) -> Shared<Probe> {
        Shared::new(Probe { refs: Cell::new(1), dropped: dropped.clone(), payload: [tag; 5] })
    }

    #[test]
    fn the_value_is_dropped_once_with_its_last_pointer_and_its_block_serves_the_next_value() {
        let dropped = std::rc::Rc::new(Cell::new(0));
        let first = probe(&dropped, 1);
        let twin = first.clone();
        let address = first.ptr.addr();
        drop(first);
        assert_eq!((dropped.get(), twin.payload), (0, [1; 5]), "alive while a pointer is");
        drop(twin);
        assert_eq!(dropped.get(), 1);
        let second = probe(&dropped, 2);
        assert_eq!(second.ptr.addr(), address, "the freed block is reused, most recent first");
        assert_eq!(second.payload, [2; 5]);
    }

    #[test]
    fn a_view_counts_as_a_pointer() {
        let dropped = std::rc::Rc::new(Cell::new(0));
        let first = probe(&dropped, 7);
        let view: Shared<Probe> = Shared::view(&first, |ptr| ptr);
        assert!(Shared::ptr_eq(&first, &view));
        drop(first);
        assert_eq!((dropped.get(), view.payload), (0, [7; 5]), "the view keeps it alive");
        drop(view);
        assert_eq!(dropped.get(), 1);
    }

    #[test]
    fn a_cache_keeps_blocks_up_to_its_limit_and_frees_them_when_dropped() {
        let class = 3;
        let size = class_layout(class).size();
        let mut cache = Cache::new(2 * size + size / 2);
        let blocks: Vec<_> = (0..3).map(|_| allocate(class_layout(class))).collect();
        let kept: Vec<bool> = blocks.iter().map(|&block| cache.push(class, block)).collect();
        assert_eq!(kept, [true, true, false], "the third would pass the limit");
        assert_eq!(cache.bytes, 2 * size);
        // SAFETY: the block the cache refused, allocated with its class's layout, unused since.
        unsafe { release(blocks[2], class_layout(class)) };
        assert_eq!(cache.pop(class), Some(blocks[1]), "most recently kept first");
        assert_eq!(cache.pop(2), None, "another class's list is empty");
        assert!(cache.push(class, blocks[1]));
        drop(cache);
    }

    #[test]
    fn blocks_past_a_kib_or_aligned_past_16_are_not_cached() {
        assert_eq!(class_of(Layout::from_size_align(1024, 16).unwrap()), Some(CLASSES - 1));
        assert_eq!(class_of(Layout::from_size_align(1025, 8).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 64).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(17, 8).unwrap()), Some(1));
    }
}
