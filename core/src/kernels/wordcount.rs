//! Word count the MapReduce way (Dean & Ghemawat 2004) on generated text.
//!
//! 1. **map** — the text is cut into [`SPLITS`] splits at word boundaries; each split emits
//!    (word, count) pairs into one bucket per reduce partition, chosen by the word's hash. With
//!    the *combiner* a split first counts its words locally and emits one pair per distinct
//!    word; without it, one pair per word.
//! 2. **shuffle** — partition p gathers bucket p of every split (moving vectors, no copying).
//! 3. **reduce** — each partition sums its pairs into a map.
//!
//! The text's *skew* is the share of words that are one hot word. All its pairs hash to one
//! partition, so without a combiner that partition's reducer gets a `skew` share of all pairs
//! and finishes long after the others: the straggler. The combiner turns them into one pair per
//! split. The digest is order-independent (a wrapping sum over distinct words), so it does not
//! depend on the partition count either.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::hash::Fnv;

use super::{splitmix64, Kernel, KernelSpec, Par};
use crate::platform::{Instant, PlatformError};

/// Splits of the text for the map phase.
pub const SPLITS: usize = 64;
/// Reduce partitions in the `scaling` kernel.
const PARTITIONS: usize = 16;
/// The hot word of a skewed text.
pub const HOT_WORD: &str = "the";

pub const SPEC: KernelSpec = KernelSpec {
    id: "word-count",
    help: "map-reduce word count, 16 partitions, no combiner, 20% of the words one hot word",
    unit: "words",
    size_means: "words of text",
    default_size: 2 << 20,
    sizes: (1, 1 << 26),
    work_exponent: 1,
    build: |words, seed| {
        Box::new(WordCount { corpus: Corpus::generate(words, 0.2, seed), partitions: PARTITIONS, combiner: false })
    },
};

type Counts<'t> = HashMap<&'t str, u64, BuildHasherDefault<Fnv>>;

/// A word's FNV-1a hash: its partition and its share of the digest.
pub fn hash(word: &str) -> u64 {
    let mut hasher = Fnv::default();
    hasher.write(word.as_bytes());
    hasher.finish()
}

/// Generated text: words separated by single spaces.
pub struct Corpus {
    pub text: String,
    pub words: usize,
}

impl Corpus {
    /// `words` words: with probability `skew` the hot word, otherwise a word of rank
    /// ⌊20 000^u⌋ for uniform u (log-uniform: a few common words, a long tail).
    pub fn generate(words: usize, skew: f64, seed: u64) -> Self {
        let mut state = seed;
        let mut unit = || (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
        let mut text = String::with_capacity(words * 6);
        for i in 0..words {
            if i > 0 {
                text.push(' ');
            }
            if unit() < skew {
                text.push_str(HOT_WORD);
            } else {
                let mut rank = 20_000f64.powf(unit()) as usize;
                // Letters of the rank in base 26 ("b", "ba", …): never "the".
                loop {
                    text.push(char::from(b'a' + (rank % 26) as u8));
                    rank /= 26;
                    if rank == 0 {
                        break;
                    }
                }
                text.push('q');
            }
        }
        Self { text, words }
    }

    /// The text cut into `count` splits, each ending at a word boundary.
    pub fn splits(&self, count: usize) -> Vec<&str> {
        let mut splits = Vec::with_capacity(count);
        let mut rest = self.text.as_str();
        for remaining in (1..=count).rev() {
            let target = rest.len() / remaining;
            let end = rest[target..].find(' ').map_or(rest.len(), |space| target + space);
            let (split, tail) = rest.split_at(end);
            splits.push(split);
            rest = tail.strip_prefix(' ').unwrap_or(tail);
        }
        splits
    }
}

/// How long each phase took, and each reducer.
#[derive(Clone, Debug, Default)]
pub struct PhaseTimes {
    pub map: f64,
    pub shuffle: f64,
    pub reduce: f64,
    pub reducers: Vec<f64>,
    /// Pairs each partition received.
    pub pairs: Vec<usize>,
}

pub struct WordCount {
    pub corpus: Corpus,
    pub partitions: usize,
    pub combiner: bool,
}

type Buckets<'t> = Vec<Vec<(&'t str, u64)>>;

impl WordCount {
    /// Runs the three phases; the digest of the counts, and the phases' times.
    pub fn count(&self, par: &Par<'_, '_>) -> Result<(u64, PhaseTimes), PlatformError> {
        let partitions = self.partitions;
        let mut times = PhaseTimes::default();
        let start = Instant::now();
        let mut maps: Vec<(&str, Buckets<'_>)> =
            self.corpus.splits(SPLITS).into_iter().map(|split| (split, Vec::new())).collect();
        par.for_each_mut(&mut maps, |_, (split, buckets)| *buckets = self.map(split))?;
        let mapped = Instant::now();
        times.map = mapped.duration_since(start).as_secs_f64();

        let mut reduces: Vec<(Buckets<'_>, u64, f64)> =
            (0..partitions).map(|_| (Vec::with_capacity(SPLITS), 0, 0.0)).collect();
        for (_, buckets) in maps {
            for (partition, bucket) in buckets.into_iter().enumerate() {
                reduces[partition].0.push(bucket);
            }
        }
        let shuffled = Instant::now();
        times.shuffle = shuffled.duration_since(mapped).as_secs_f64();
        times.pairs = reduces.iter().map(|(buckets, ..)| buckets.iter().map(Vec::len).sum()).collect();

        par.for_each_mut(&mut reduces, |_, (buckets, digest, seconds)| {
            let start = Instant::now();
            *digest = reduce(buckets);
            *seconds = start.elapsed().as_secs_f64();
        })?;
        times.reduce = shuffled.elapsed().as_secs_f64();
        times.reducers = reduces.iter().map(|(.., seconds)| *seconds).collect();
        Ok((reduces.iter().fold(0u64, |sum, (_, digest, _)| sum.wrapping_add(*digest)), times))
    }

    /// One split's pairs, bucketed by partition.
    fn map<'t>(&self, split: &'t str) -> Buckets<'t> {
        let mut buckets: Buckets<'t> = vec![Vec::new(); self.partitions];
        let partition_of = |word: &str| (hash(word) % self.partitions as u64) as usize;
        if self.combiner {
            let mut counts = Counts::default();
            words(split).for_each(|word| *counts.entry(word).or_default() += 1);
            counts.into_iter().for_each(|(word, count)| buckets[partition_of(word)].push((word, count)));
        } else {
            words(split).for_each(|word| buckets[partition_of(word)].push((word, 1)));
        }
        buckets
    }
}

/// The words of a split.
pub fn words(split: &str) -> impl Iterator<Item = &str> {
    split.split(' ').filter(|word| !word.is_empty())
}

/// Sums one partition's pairs; the partition's share of the digest.
fn reduce(buckets: &Buckets<'_>) -> u64 {
    let mut counts = Counts::default();
    buckets.iter().flatten().for_each(|(word, count)| *counts.entry(word).or_default() += count);
    digest(counts.iter().map(|(word, count)| (*word, *count)))
}

/// The digest of word counts, in any order: the wrapping sum of mix(hash(word), count).
pub fn digest<'t>(counts: impl Iterator<Item = (&'t str, u64)>) -> u64 {
    counts.fold(0u64, |sum, (word, count)| sum.wrapping_add(super::mix(hash(word), count)))
}

impl Kernel for WordCount {
    fn work(&self) -> f64 {
        self.corpus.words as f64
    }

    fn run(&mut self, par: &Par<'_, '_>) -> Result<u64, PlatformError> {
        Ok(self.count(par)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_a_plain_count_with_and_without_combiner() {
        let corpus = Corpus::generate(20_000, 0.3, 1);
        assert_eq!(corpus.text.split(' ').count(), 20_000);
        let mut plain = Counts::default();
        corpus.text.split(' ').for_each(|word| *plain.entry(word).or_default() += 1);
        assert!((plain[HOT_WORD] as f64 / 20_000.0 - 0.3).abs() < 0.02);
        let expected =
            plain.iter().fold(0u64, |sum, (word, count)| sum.wrapping_add(crate::kernels::mix(hash(word), *count)));
        let mut count = WordCount { corpus, partitions: 7, combiner: false };
        let (digest, times) = Par::reference(|par| count.count(par)).unwrap();
        assert_eq!(digest, expected);
        assert_eq!(times.pairs.iter().sum::<usize>(), 20_000);
        assert!(
            *times.pairs.iter().max().unwrap() as f64 >= 0.3 * 20_000.0 * 0.9,
            "the hot word's partition is the biggest"
        );
        count.combiner = true;
        let (digest, times) = Par::reference(|par| count.count(par)).unwrap();
        assert_eq!(digest, expected);
        assert!(times.pairs.iter().sum::<usize>() < 20_000);
    }

    #[test]
    fn splits_end_at_word_boundaries_and_cover_the_text() {
        let corpus = Corpus::generate(1000, 0.0, 2);
        let splits = corpus.splits(SPLITS);
        assert_eq!(splits.len(), SPLITS);
        assert_eq!(splits.iter().map(|s| s.split(' ').filter(|w| !w.is_empty()).count()).sum::<usize>(), 1000);
        assert_eq!(splits.join(" "), corpus.text);
    }
}
