//! resilience: Failures met and measured — retries with backoff and jitter, retry budgets,
//! circuit breakers, hedged requests, load shedding, micro-batching, and what `gather` does
//! with the siblings of a failed task.

use crate::experiment::Experiment;

mod circuit_breaker;
mod gather_errors;
mod hedging;
mod load_shedding;
mod micro_batching;
mod retry_storm;
mod stage;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "resilience";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &retry_storm::RetryStorm,
    &circuit_breaker::CircuitBreaker,
    &hedging::Hedging,
    &load_shedding::LoadShedding,
    &micro_batching::MicroBatching,
    &gather_errors::GatherErrors,
];
