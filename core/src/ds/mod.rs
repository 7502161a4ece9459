//! Concurrent data structures, one module per algorithm, each citing its paper and stating its
//! memory-ordering contract: [`ring`] — Vyukov's bounded MPMC queue; [`channel`] — a blocking MPMC
//! channel on it; [`msqueue`] — the Michael–Scott queue with epoch reclamation; [`treiber`] —
//! Treiber's stack with and without the ABA tag; [`striped`] — a lock-striped hash map.

pub mod channel;
pub mod msqueue;
pub mod ring;
pub mod striped;
pub mod treiber;
