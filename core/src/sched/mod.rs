//! Schedulers: how tasks get onto threads.
//!
//! - [`fifo`]: `FifoPool`, Python's `ThreadPoolExecutor` — one shared FIFO queue, futures;
//! - [`steal`]: `StealPool`, work stealing over per-worker [`deque`]s, with `join` and `scope`;
//! - [`partition`]: static partitioning — equal chunks fixed up front, no scheduler at all;
//! - [`sleep`]: how idle stealing workers park without losing a wake-up.
//!
//! All run on a `platform::run_team` thread team, so they work natively and in browser
//! workers alike, and record per-worker timelines into a `trace::Recorder`.

pub mod deque;
pub mod fifo;
pub mod partition;
pub mod sleep;
pub mod steal;
