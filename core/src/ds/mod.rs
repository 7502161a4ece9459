//! Concurrent data structures, one module per algorithm, each citing its paper and stating its
//! memory-ordering contract: [`ring`] — Vyukov's bounded MPMC queue.

pub mod ring;
