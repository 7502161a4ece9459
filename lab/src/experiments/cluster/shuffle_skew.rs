//! `shuffle-skew`: the hot key in a distributed exchange — one worker's share of the records and
//! its busy time — and the combiner (counting before the exchange) as the fix.

use super::engine::{Job, Shape};
use super::{inputs, record_exchange, word_count_job, word_count_params, ClusterCell};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, Params, RunError, VariantSpec,
    Verdict, Workload,
};

pub struct ShuffleSkew;

impl Experiment for ShuffleSkew {
    fn info(&self) -> ExperimentInfo {
        let params = word_count_params(0.5);
        ExperimentInfo {
            id: "shuffle-skew",
            title: "The hot key: one worker's share of a distributed shuffle, and the combiner",
            topic: super::NAME,
            concept: "data skew in a shuffle (MapReduce's combiner; Spark's map-side aggregation)",
            teaches: "An exchange sends each record to the worker that owns its key's hash. When one word is a large \
                      share of the text (the skew knob), every one of its records goes to the same worker: that \
                      worker receives far more than its fair share, counts longest, and everyone waits for it — the \
                      straggler. The combiner counts inside each worker before the exchange, so each worker sends one \
                      record per distinct word: the hot word costs one record per worker instead of millions, the \
                      shares even out, and far fewer records cross the network.",
            params,
            variants: vec![
                VariantSpec::sweep("plain", "(word, 1) for every word, exchanged by the word's hash"),
                VariantSpec::sweep("combiner", "each worker counts its words first and exchanges (word, count)"),
            ],
            baseline: "plain",
            work_unit: Some("words"),
            quick: &["words=20000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let job = |combiner| word_count_job(params, combiner);
        let expected = inputs::answer(&job(false)).digest;
        Ok(Box::new(Skew { plain: job(false), combined: job(true), params: params.clone(), expected }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the hot key makes a hot worker: without a combiner, the busiest worker receives ≥ 1.5× its fair \
                 share of the exchanged records",
                |facts| {
                    let (workers, fair) = widest(facts, "plain")?;
                    if facts.param("skew")? < 0.2 {
                        return Err(not_testable("little skew: try skew=0.5"));
                    }
                    let busiest = facts.metric("plain", workers, "busiest worker's records")?;
                    verdict(
                        busiest >= 1.5 * fair,
                        format!("{workers} workers: the busiest received {busiest:.1}% of the records, fair share {fair:.1}%"),
                        "the hot word's records were not a large share",
                    )
                },
            ),
            Claim::new(
                "the combiner evens the shares and shrinks the shuffle: the busiest worker receives ≤ 1.5× its fair \
                 share and ≥ 2× fewer records cross between workers",
                |facts| {
                    let (workers, fair) = widest(facts, "combiner")?;
                    let busiest = facts.metric("combiner", workers, "busiest worker's records")?;
                    let plain = facts.metric("plain", workers, "records to other workers")?;
                    let combined = facts.metric("combiner", workers, "records to other workers")?.max(1.0);
                    verdict(
                        busiest <= 1.5 * fair && plain / combined >= 2.0,
                        format!(
                            "busiest worker {busiest:.1}% (fair {fair:.1}%); records between workers {plain:.0} → \
                             {combined:.0} ({:.0}× fewer)",
                            plain / combined
                        ),
                        "the text has few repeated words per worker",
                    )
                },
            ),
        ]
    }
}

/// The most workers `variant` ran at (at least 2) and their fair share in percent.
fn widest(facts: &Facts<'_>, variant: &str) -> Result<(usize, f64), Verdict> {
    let workers = facts.threads_of(variant).into_iter().max().unwrap_or(0);
    if workers < 2 {
        return Err(not_testable("one worker has no one to share with: run at least 2 workers in all"));
    }
    Ok((workers, 100.0 / workers as f64))
}

struct Skew {
    plain: Job,
    combined: Job,
    params: Params,
    expected: Digest,
}

impl Workload for Skew {
    fn work_units(&self) -> Option<f64> {
        Some(self.params.count("words") as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let shape = Shape { processes: self.params.count("processes"), workers: threads };
        let job = if variant == "combiner" { &self.combined } else { &self.plain };
        ClusterCell::start(job, shape, &self.params, Box::new(record_exchange))
    }
}
