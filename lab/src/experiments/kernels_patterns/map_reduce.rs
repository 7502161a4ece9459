//! `map-reduce`: word count by partitioning (map, shuffle, reduce) against workers sharing one
//! map — lock-striped or behind a single mutex — with skewed keys and an optional combiner.

use std::collections::HashMap;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::ds::striped::StripedMap;
use conlab_core::kernels::wordcount::{self, Corpus, WordCount, SPLITS};
use conlab_core::kernels::{Par, Strategy};

pub struct MapReduce;

impl Experiment for MapReduce {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "map-reduce",
            title: "Map-reduce word count: phases, skew and stragglers, partitioning vs a shared map",
            topic: super::NAME,
            concept: "MapReduce (Dean & Ghemawat 2004): map, combine, shuffle by key hash, reduce",
            teaches: "Counting words the MapReduce way: mappers emit (word, 1) pairs into one bucket per reduce \
                      partition, chosen by the word's hash; the shuffle hands each reducer its buckets; reducers \
                      sum. With skew, one hot word is a big share of the text, and all of its pairs land in one \
                      partition: that reducer is the straggler (see the straggler ratio, and its long span in the \
                      timeline). A combiner — counting inside each mapper first — sends one pair per distinct word \
                      instead, and the straggler disappears. The shared-map variants skip the shuffle and have every \
                      worker update one concurrent map: behind one mutex the workers take turns; with lock striping \
                      they collide only on the same shard — and the hot word's shard is still a hot spot.",
            params: vec![
                ParamSpec::int("words", 1 << 21, 1, 1 << 26, "words", "words of generated text"),
                ParamSpec::int(
                    "partitions",
                    16,
                    1,
                    1024,
                    "partitions",
                    "reduce partitions, and shards of the striped map",
                ),
                ParamSpec::float("skew", 0.3, 0.0, 0.95, "", "share of the words that are one hot word"),
                ParamSpec::flag("combiner", false, "count inside each mapper before emitting"),
                ParamSpec::int("seed", 1, 0, u32::MAX.into(), "", "seed of the generated text"),
            ],
            variants: vec![
                VariantSpec::fixed("seq", "map, shuffle and reduce on one thread"),
                VariantSpec::sweep("partitioned", "map and reduce phases split over a team; shuffle by hash"),
                VariantSpec::sweep(
                    "striped-map",
                    "every worker updates one lock-striped map (one shard per partition)",
                ),
                VariantSpec::sweep("mutex-map", "every worker updates one Mutex<HashMap>"),
            ],
            baseline: "seq",
            work_unit: Some("words"),
            shows_timeline: true,
            quick: &["words=20000", "partitions=4"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let corpus = Corpus::generate(params.count("words"), params.float("skew"), params.int("seed") as u64);
        let count = WordCount { corpus, partitions: params.count("partitions"), combiner: params.flag("combiner") };
        let expected = Par::reference(|par| count.count(par)).expect("a sequential run needs no threads").0;
        Ok(Box::new(Job { count, expected }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "skew makes a straggler: without a combiner, the hot word's partition receives ≥ 2× its fair share \
                 (1 ÷ partitions) of the pairs",
                |facts| {
                    if facts.param("skew")? == 0.0 || facts.flag("combiner")? {
                        return Err(not_testable("no skew, or a combiner: try skew=0.3 with combiner=false"));
                    }
                    let fair = 100.0 / facts.param("partitions")?;
                    let hot = facts.metric("partitioned", 1, "hot partition")?;
                    verdict(hot >= 2.0 * fair, format!("hot partition {hot:.1}% of the pairs, fair share {fair:.1}%"), "the skewed word hashed with others evenly")
                },
            ),
            Claim::new(
                "one map behind one mutex makes the workers take turns: 2 workers are slower than 1 (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    facts.lasting("mutex-map", 1, 5.0)?;
                    let scaling = facts.scaling("mutex-map", 2)?;
                    verdict(scaling < 1.0, format!("mutex-map, 2 workers over 1: {scaling:.2}×"), "the workers rarely met at the lock")
                },
            ),
            Claim::new(
                "the shuffle beats sharing: at 2 threads the partitioned map-reduce is ≥ 1.5× as fast as the mutex map \
                 (fastest runs)",
                |facts| {
                    facts.cores(2)?;
                    facts.lasting("partitioned", 1, 5.0)?;
                    let ratio = facts.fastest("mutex-map", 2)? / facts.fastest("partitioned", 2)?;
                    verdict(ratio >= 1.5, format!("partitioned {ratio:.2}× the mutex map's speed"), "another program held a core")
                },
            ),
        ]
    }
}

struct Job {
    count: WordCount,
    expected: Digest,
}

impl Workload for Job {
    fn work_units(&self) -> Option<f64> {
        Some(self.count.corpus.words as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        conlab_core::platform::check_team_size(threads)?;
        Ok(Box::new(JobCell {
            job: self,
            variant: variant.to_string(),
            threads: if variant == "seq" { 1 } else { threads },
        }))
    }
}

struct JobCell<'j> {
    job: &'j Job,
    variant: String,
    threads: usize,
}

impl Cell for JobCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let keep_going = || context.check_cancel().is_ok();
        let strategy = if self.variant == "seq" { Strategy::Seq } else { Strategy::Team(self.threads) };
        let par = Par::new(strategy, &keep_going, context.trace());
        let digest = match self.variant.as_str() {
            "striped-map" => shared_map(&self.job.count, &par, self.job.count.partitions, context)?,
            "mutex-map" => shared_map(&self.job.count, &par, 1, context)?,
            _ => partitioned(&self.job.count, &par, context)?,
        };
        context.check_cancel()?;
        Ok(digest)
    }
}

/// The three phases; their times, the straggler ratio and the hot partition's share recorded.
fn partitioned(count: &WordCount, par: &Par<'_, '_>, context: &RunContext) -> Result<Digest, RunError> {
    let (digest, times) = count.count(par)?;
    context.record("map", "ms", times.map * 1e3);
    context.record("shuffle", "ms", times.shuffle * 1e3);
    context.record("reduce", "ms", times.reduce * 1e3);
    let mean = times.reducers.iter().sum::<f64>() / times.reducers.len() as f64;
    let slowest = times.reducers.iter().copied().fold(0.0, f64::max);
    if mean > 0.0 {
        context.record("straggler", "× mean reducer", slowest / mean);
    }
    let pairs: usize = times.pairs.iter().sum();
    if pairs > 0 {
        context.record(
            "hot partition",
            "% of pairs",
            100.0 * *times.pairs.iter().max().unwrap_or(&0) as f64 / pairs as f64,
        );
    }
    Ok(digest)
}

/// Every split counted straight into one shared map of `shards` shards (one shard: a single
/// mutex), through a local combine first if the combiner is on.
fn shared_map(count: &WordCount, par: &Par<'_, '_>, shards: usize, context: &RunContext) -> Result<Digest, RunError> {
    let map: StripedMap<&str, u64> = StripedMap::new(shards);
    let mut splits = count.corpus.splits(SPLITS);
    par.for_each_mut(&mut splits, |_, split| {
        if count.combiner {
            let mut local: HashMap<&str, u64> = HashMap::new();
            wordcount::words(split).for_each(|word| *local.entry(word).or_default() += 1);
            local.into_iter().for_each(|(word, n)| map.update(word, |total| *total += n));
        } else {
            wordcount::words(split).for_each(|word| map.update(word, |total| *total += 1));
        }
    })?;
    context.record("shards", "", map.shard_count() as f64);
    Ok(wordcount::digest(map.drain().into_iter()))
}
