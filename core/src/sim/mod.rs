//! The debugging lab: a deterministic scheduler for virtual threads that finds races,
//! deadlocks and livelocks on demand, and replays what it found step by step.
//!
//! A real run of a racy listing usually gives the right answer; the bug needs one interleaving
//! among millions. Here a program is a few virtual threads written in a tiny step language
//! ([`program`]): every read, write, lock, wait or notify is one line and one scheduling point,
//! and the scheduler, not the OS, picks who runs next ([`explore`]: round-robin, seeded random,
//! PCT, or exhaustive DFS with a preemption bound). The [`machine`] checks every state: failed
//! assertions, deadlocks with their wait-for cycle, data races by vector clocks, livelocks as
//! fair cycles. Every run is a schedule string (`ABBA…`, a letter per step) that replays
//! exactly. [`scenarios`] holds the books' bugs, each with a fixed twin; [`watchdog`] catches a
//! deadlock among real threads and reports its cycle instead of hanging.

pub mod explore;
pub mod machine;
pub mod program;
pub mod scenarios;
pub mod watchdog;

pub use explore::{
    backoffs_over_seeds, check_range, replay, search, state_after, Budget, OverSeeds, Run, Search, Strategy,
    BOUND_RANGE, DEPTH_RANGE, RUNS_RANGE, SEEDS,
};
pub use machine::{Failure, Snapshot, Step};
pub use program::{Listing, Program};
pub use scenarios::{find_scenario, scenarios, Scenario};
