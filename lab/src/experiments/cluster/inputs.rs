//! The cluster jobs' inputs, generated alike in every process, and their sequential answers —
//! what every dataflow's output is checked against.
//!
//! Word count reuses the map-reduce experiment's text ([`Corpus`]). The join's tables and the
//! graph's edges are functions of their index, so a worker generates exactly its own share.

use conlab_core::kernels::wordcount::{self, Corpus, WordCount};
use conlab_core::kernels::{mix, splitmix64, Par};

use super::engine::Job;

/// The big table's row `index`: (key, value), the key uniform in `0..rows`.
pub fn big_row(seed: u64, rows: usize, index: usize) -> (u64, u64) {
    let mut state = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let key = splitmix64(&mut state) % rows as u64;
    (key, splitmix64(&mut state))
}

/// The small table's row for `key` (keys `0..size`, one row each).
pub fn small_row(seed: u64, key: u64) -> (u64, u64) {
    (key, mix(key, seed ^ 0x5bd1_e995))
}

/// One joined row's share of the digest.
pub fn joined(key: u64, big: u64, small: u64) -> u64 {
    mix(key, big ^ small.rotate_left(17))
}

/// The graph's edge `index` of `nodes · degree / 2` (self-loops allowed).
pub fn edge(seed: u64, nodes: usize, index: usize) -> (u32, u32) {
    let mut state = seed ^ (index as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let u = splitmix64(&mut state) % nodes as u64;
    let v = splitmix64(&mut state) % nodes as u64;
    (u as u32, v as u32)
}

/// The graph's edge count.
pub fn edges(nodes: usize, degree: usize) -> usize {
    nodes * degree / 2
}

/// One node's final label's share of the digest.
pub fn labelled(node: u32, label: u32) -> u64 {
    mix(u64::from(node), u64::from(label))
}

/// What a correct run of a job produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub digest: u64,
    /// Components: the rounds in which some label changed (round 0 adopts each node's own).
    pub rounds: usize,
    /// Components: the label proposals each round took in.
    pub round_records: Vec<u64>,
}

/// The sequential answer to `job`.
pub fn answer(job: &Job) -> Answer {
    match job {
        Job::WordCount { words, skew, seed, combiner } => {
            let count =
                WordCount { corpus: Corpus::generate(*words, *skew, *seed), partitions: 1, combiner: *combiner };
            let digest = Par::reference(|par| count.count(par)).expect("a sequential run needs no threads").0;
            Answer { digest, rounds: 0, round_records: Vec::new() }
        }
        Job::Join { rows, sizes, seed, .. } => {
            let mut digest = 0u64;
            for &size in sizes {
                for index in 0..*rows {
                    let (key, value) = big_row(*seed, *rows, index);
                    if key < size as u64 {
                        digest = digest.wrapping_add(joined(key, value, small_row(*seed, key).1));
                    }
                }
            }
            Answer { digest, rounds: 0, round_records: Vec::new() }
        }
        Job::Components { nodes, degree, seed } => components(*nodes, *degree, *seed),
    }
}

/// Synchronous minimum-label propagation: in round 0 every node takes its own id; in each later
/// round every node whose label changed in the round before offers it to its neighbours, and
/// each keeps the least offer below its label. It stops after a round with no change.
fn components(nodes: usize, degree: usize, seed: u64) -> Answer {
    let mut neighbours = vec![Vec::new(); nodes];
    for index in 0..edges(nodes, degree) {
        let (u, v) = edge(seed, nodes, index);
        neighbours[u as usize].push(v);
        neighbours[v as usize].push(u);
    }
    let mut labels: Vec<u32> = (0..nodes as u32).collect();
    let mut changed: Vec<u32> = (0..nodes as u32).collect();
    let mut round_records = vec![nodes as u64];
    let mut rounds = 1;
    loop {
        let mut offers = 0u64;
        let mut next = Vec::new();
        let before = labels.clone();
        for &node in &changed {
            for &neighbour in &neighbours[node as usize] {
                offers += 1;
                let label = before[node as usize];
                if label < labels[neighbour as usize] {
                    if labels[neighbour as usize] == before[neighbour as usize] {
                        next.push(neighbour);
                    }
                    labels[neighbour as usize] = label;
                }
            }
        }
        round_records.push(offers);
        if next.is_empty() {
            break;
        }
        rounds += 1;
        changed = next;
    }
    let digest =
        labels.iter().enumerate().fold(0u64, |sum, (node, &label)| sum.wrapping_add(labelled(node as u32, label)));
    Answer { digest, rounds, round_records }
}

pub use wordcount::{hash as word_hash, words, SPLITS};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_propagation_finds_the_components_a_union_find_finds() {
        let (nodes, degree, seed) = (500, 2, 7);
        let answer = components(nodes, degree, seed);
        let mut parent: Vec<u32> = (0..nodes as u32).collect();
        fn root(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                parent[x as usize] = parent[parent[x as usize] as usize];
                x = parent[x as usize];
            }
            x
        }
        for index in 0..edges(nodes, degree) {
            let (u, v) = edge(seed, nodes, index);
            let (a, b) = (root(&mut parent, u), root(&mut parent, v));
            parent[a.max(b) as usize] = a.min(b);
        }
        // The least node of each component is its label: union by minimum keeps roots minimal.
        let digest =
            (0..nodes as u32).fold(0u64, |sum, node| sum.wrapping_add(labelled(node, root(&mut parent, node))));
        assert_eq!(answer.digest, digest);
        assert!(answer.rounds > 3, "a random graph of degree 2 needs several rounds, got {}", answer.rounds);
        assert_eq!(answer.round_records.len(), answer.rounds + 1, "the last round takes offers and changes nothing");
    }

    #[test]
    fn the_join_matches_each_big_row_whose_key_is_below_the_size_once() {
        let job = Job::Join { rows: 1000, sizes: vec![0, 1000], broadcast: false, seed: 3 };
        let all = (0..1000).map(|i| {
            let (key, value) = big_row(3, 1000, i);
            joined(key, value, small_row(3, key).1)
        });
        assert_eq!(answer(&job).digest, all.fold(0u64, u64::wrapping_add));
    }
}
