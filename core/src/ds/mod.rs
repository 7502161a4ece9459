//! Concurrent data structures, one module per algorithm, each citing its paper and stating its
//! memory-ordering contract: [`ring`] — Vyukov's bounded MPMC queue; [`channel`] — a blocking MPMC
//! channel on it; [`treiber`] — Treiber's stack
//! with and without the ABA tag.

pub mod channel;
pub mod ring;
pub mod treiber;
