//! locks & atomics: Races, locks under contention and what the cache does to shared data.

use crate::experiment::Experiment;

mod batched_updates;
mod contention_ladder;
mod false_sharing;
mod lock_contention;
mod lost_update;
mod rwlock_mix;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "locks & atomics";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &lost_update::LostUpdate,
    &lock_contention::LockContention,
    &contention_ladder::ContentionLadder,
    &false_sharing::FalseSharing,
    &rwlock_mix::RwlockMix,
    &batched_updates::BatchedUpdates,
];
