//! The jobs as timely dataflows, one [`Driver`] per worker.
//!
//! Every job's dataflow ends the same way: a reporter operator per worker waits until the
//! job's own streams are complete for the epoch (their frontier has passed it), then emits that
//! worker's [`WorkerReport`] — busy time, records in and out, its share of the digest — which
//! is broadcast, so the first worker of every process holds every worker's report once the
//! epoch's probe has passed. Operators that hold data for an epoch keep a capability for it
//! until they have folded it into their report, so the reporter cannot run ahead of them.
//!
//! Time is a `u64`: epoch `e` starts at `e << 32`, and the iterative job's round `r` of that
//! epoch is `(e << 32) + r`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use conlab_core::kernels::wordcount::{self, Corpus};
use conlab_core::platform::Instant;
use conlab_lab::experiments::cluster::engine::{Epoch, Job, WorkerReport};
use conlab_lab::experiments::cluster::inputs::{self, SPLITS};
use timely::communication::Allocate;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::operators::{Capability, Concat, ConnectLoop, Feedback, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle, Scope, Stream, StreamVec};
use timely::worker::Worker;

/// Time of epoch `epoch`'s start.
fn epoch_start(epoch: u64) -> u64 {
    epoch << 32
}

/// Who this worker is in the cluster.
#[derive(Clone, Copy)]
struct Place {
    index: usize,
    peers: usize,
    /// Workers per process: worker `w` lives in process `w / workers`.
    workers: usize,
}

impl Place {
    /// Counts one record of `bytes` bytes sent to worker `target`.
    fn account(self, report: &mut WorkerReport, target: usize, bytes: u64) {
        if target != self.index {
            report.sent_other_workers += 1;
            report.bytes_other_workers += bytes;
            if target / self.workers != self.index / self.workers {
                report.sent_other_processes += 1;
                report.bytes_other_processes += bytes;
            }
        }
    }

    /// Counts one record of `bytes` bytes sent to every other worker (a broadcast).
    fn account_broadcast(self, report: &mut WorkerReport, bytes: u64) {
        report.sent_other_workers += self.peers as u64 - 1;
        report.bytes_other_workers += (self.peers as u64 - 1) * bytes;
        let remote = (self.peers - self.workers) as u64;
        report.sent_other_processes += remote;
        report.bytes_other_processes += remote * bytes;
    }

    fn first_of_process(self) -> bool {
        self.index % self.workers == 0
    }

    fn owns(self, item: usize) -> bool {
        item % self.peers == self.index
    }
}

type Shared<T> = Rc<RefCell<T>>;

/// A worker's input of records of type `D`.
type Input<D> = InputHandle<u64, CapacityContainerBuilder<Vec<D>>>;

/// An operator's output of records of type `D`.
type Output<'a, D> = OutputBuilderSession<'a, u64, CapacityContainerBuilder<Vec<D>>>;

/// Adds the time since `start` to the report's busy time.
fn busy(report: &Shared<WorkerReport>, start: Instant) {
    report.borrow_mut().busy_ns += start.elapsed().as_nanos() as u64;
}

/// The job's inputs a worker feeds each epoch, besides the reporter's marker.
enum Feed {
    Splits(Input<u64>),
    Join(Box<JoinFeed>),
    Seeds(Input<(u32, u32)>, usize),
}

/// The join's two inputs and what to feed them.
struct JoinFeed {
    big: Input<(u64, u64)>,
    small: Input<(u64, u64)>,
    rows: usize,
    sizes: Vec<usize>,
    broadcast: bool,
    seed: u64,
}

/// One worker's dataflow and what drives it, epoch after epoch.
pub struct Driver {
    place: Place,
    feed: Feed,
    marker: Input<()>,
    probe: ProbeHandle<u64>,
    /// The iterative job's loop, to time its rounds.
    rounds: Option<ProbeHandle<u64>>,
    report: Shared<WorkerReport>,
    gathered: Shared<Vec<WorkerReport>>,
    epoch: u64,
}

impl Driver {
    /// Builds `job`'s dataflow on this worker; `workers` is the workers per process.
    pub fn build<A: Allocate>(worker: &mut Worker<A>, job: &Job, workers: usize) -> Self {
        let place = Place { index: worker.index(), peers: worker.peers(), workers };
        let report = Rc::new(RefCell::new(WorkerReport { worker: place.index, ..WorkerReport::default() }));
        let gathered = Rc::new(RefCell::new(Vec::new()));
        let mut marker = InputHandle::new();
        let probe = ProbeHandle::new();
        let mut rounds = None;
        let feed = worker.dataflow::<u64, _, _>(|scope| {
            let markers = scope.input_from(&mut marker);
            let (feed, done, labels): (Feed, Stream<_, Vec<()>>, _) = match job {
                Job::WordCount { words, skew, seed, combiner } => {
                    let (feed, done) =
                        word_count(scope, place, &report, Corpus::generate(*words, *skew, *seed), *combiner);
                    (feed, done, None)
                }
                Job::Join { rows, sizes, broadcast, seed } => {
                    let (feed, done) = join(scope, &report, *rows, sizes.clone(), *broadcast, *seed);
                    (feed, done, None)
                }
                Job::Components { nodes, degree, seed } => {
                    let loop_probe = ProbeHandle::new();
                    let (feed, done, labels) = components(scope, place, &report, *nodes, *degree, *seed, &loop_probe);
                    rounds = Some(loop_probe);
                    (feed, done, Some(labels))
                }
            };
            reporter(markers, done, place, &report, labels)
                .broadcast()
                .inspect({
                    let gathered = gathered.clone();
                    move |report| {
                        if place.first_of_process() {
                            gathered.borrow_mut().push(report.clone());
                        }
                    }
                })
                .probe_with(&probe);
            feed
        });
        Self { place, feed, marker, probe, rounds, report, gathered, epoch: 0 }
    }

    /// Runs every epoch of one run of the job; the first worker of each process returns them.
    pub fn run<A: Allocate>(&mut self, worker: &mut Worker<A>) -> Option<Vec<Epoch>> {
        let epochs = match &self.feed {
            Feed::Join(join) => join.sizes.len(),
            _ => 1,
        };
        let mut done = Vec::with_capacity(epochs);
        for step in 0..epochs {
            let start = Instant::now();
            let size = self.feed_epoch(step);
            self.epoch += 1;
            let next = epoch_start(self.epoch);
            self.marker.advance_to(next);
            self.advance_feed(next);
            let mut rounds_done_ns = Vec::new();
            let mut round_frontier = epoch_start(self.epoch - 1);
            while self.probe.less_than(&next) {
                worker.step_or_park(None);
                if let Some(rounds) = &self.rounds {
                    let frontier = rounds.with_frontier(|f| f.first().copied()).unwrap_or(next).min(next);
                    // Each round the frontier passes is done now; leaving the epoch ends the last.
                    if frontier == next && round_frontier < next {
                        rounds_done_ns.push(start.elapsed().as_nanos() as u64);
                        round_frontier = next;
                    }
                    while round_frontier < frontier {
                        rounds_done_ns.push(start.elapsed().as_nanos() as u64);
                        round_frontier += 1;
                    }
                }
            }
            let mut workers = std::mem::take(&mut *self.gathered.borrow_mut());
            workers.sort_by_key(|report| report.worker);
            done.push(Epoch { ns: start.elapsed().as_nanos() as u64, size, workers, rounds_done_ns });
        }
        self.place.first_of_process().then_some(done)
    }

    /// Feeds this worker's share of the epoch `step` of a run, and the marker; the join's small side's size.
    fn feed_epoch(&mut self, step: usize) -> u64 {
        self.marker.send(());
        let place = self.place;
        let mut report = self.report.borrow_mut();
        match &mut self.feed {
            Feed::Splits(splits) => {
                (0..SPLITS as u64).filter(|split| place.owns(*split as usize)).for_each(|split| splits.send(split));
                0
            }
            Feed::Join(join) => {
                let JoinFeed { big, small, rows, sizes, broadcast, seed } = &mut **join;
                let size = sizes[step];
                for index in (place.index..*rows).step_by(place.peers) {
                    let row = inputs::big_row(*seed, *rows, index);
                    if !*broadcast {
                        place.account(&mut report, (row.0 % place.peers as u64) as usize, 16);
                    }
                    big.send(row);
                }
                for key in (place.index..size).step_by(place.peers) {
                    if *broadcast {
                        place.account_broadcast(&mut report, 16);
                    } else {
                        place.account(&mut report, key % place.peers, 16);
                    }
                    small.send(inputs::small_row(*seed, key as u64));
                }
                size as u64
            }
            Feed::Seeds(seeds, nodes) => {
                (place.index..*nodes).step_by(place.peers).for_each(|node| seeds.send((node as u32, node as u32)));
                0
            }
        }
    }

    fn advance_feed(&mut self, next: u64) {
        match &mut self.feed {
            Feed::Splits(splits) => splits.advance_to(next),
            Feed::Join(join) => {
                join.big.advance_to(next);
                join.small.advance_to(next);
            }
            Feed::Seeds(seeds, _) => seeds.advance_to(next),
        }
    }
}

/// The reporter: once `done`'s frontier has passed an epoch it emits this worker's report
/// (with the labels' digest for the iterative job) and starts the next one afresh.
fn reporter<G: Scope<Timestamp = u64>, C: timely::Container>(
    markers: StreamVec<G, ()>,
    done: Stream<G, C>,
    place: Place,
    report: &Shared<WorkerReport>,
    labels: Option<Shared<Labels>>,
) -> StreamVec<G, WorkerReport> {
    let report = report.clone();
    markers.binary_frontier(done, Pipeline, Pipeline, "Report", move |_, _| {
        let mut pending: Vec<Capability<u64>> = Vec::new();
        move |(markers, markers_frontier), (done, done_frontier), output| {
            markers.for_each_time(|time, _| pending.push(time.retain(output.output_index())));
            done.for_each_time(|_, _| {});
            pending.retain(|capability| {
                let next = epoch_start((capability.time() >> 32) + 1);
                if markers_frontier.less_than(&next) || done_frontier.less_than(&next) {
                    return true;
                }
                let mut finished = std::mem::replace(
                    &mut *report.borrow_mut(),
                    WorkerReport { worker: place.index, ..WorkerReport::default() },
                );
                if let Some(labels) = &labels {
                    finished.digest = finished.digest.wrapping_add(labels.borrow().digest(place));
                }
                output.session(capability).give(finished);
                false
            });
        }
    })
}

/// Word count: this worker's splits mapped to (word, 1) — or (word, count) with the combiner —
/// exchanged by the word's hash and counted; the count's digest goes into the report.
fn word_count<G: Scope<Timestamp = u64>>(
    scope: &mut G,
    place: Place,
    report: &Shared<WorkerReport>,
    corpus: Corpus,
    combiner: bool,
) -> (Feed, StreamVec<G, ()>) {
    let mut splits = InputHandle::new();
    let map_report = report.clone();
    let bounds: Vec<(usize, usize)> = corpus
        .splits(SPLITS)
        .iter()
        .map(|split| {
            let from = split.as_ptr() as usize - corpus.text.as_ptr() as usize;
            (from, from + split.len())
        })
        .collect();
    let text = corpus.text;
    let words = scope.input_from(&mut splits).unary(Pipeline, "Map", move |_, _| {
        move |input, output| {
            input.for_each_time(|time, data| {
                let start = Instant::now();
                let all: Vec<&str> = bounds.iter().map(|&(from, to)| &text[from..to]).collect();
                let mut session = output.session(&time);
                let mut report = map_report.borrow_mut();
                for split in data.flat_map(|d: &mut Vec<u64>| d.drain(..)) {
                    let mut emit = |word: &str, count: u64| {
                        place.account(
                            &mut report,
                            (inputs::word_hash(word) % place.peers as u64) as usize,
                            16 + word.len() as u64,
                        );
                        session.give((word.to_string(), count));
                    };
                    let split = all[split as usize];
                    if combiner {
                        let mut counts: HashMap<&str, u64> = HashMap::new();
                        inputs::words(split).for_each(|word| *counts.entry(word).or_default() += 1);
                        counts.into_iter().for_each(|(word, count)| emit(word, count));
                    } else {
                        inputs::words(split).for_each(|word| emit(word, 1));
                    }
                }
                drop(report);
                busy(&map_report, start);
            });
        }
    });
    let count_report = report.clone();
    let done = words.unary_frontier(
        Exchange::new(|(word, _): &(String, u64)| inputs::word_hash(word)),
        "Count",
        move |_, _| {
            let mut counts: HashMap<String, u64> = HashMap::new();
            let mut held: Option<Capability<u64>> = None;
            move |(input, frontier), _output: &mut Output<'_, ()>| {
                let start = Instant::now();
                let mut report = count_report.borrow_mut();
                input.for_each_time(|time, data| {
                    held.get_or_insert_with(|| time.retain(0));
                    for (word, count) in data.flat_map(|d| d.drain(..)) {
                        report.records_in += 1;
                        *counts.entry(word).or_default() += count;
                    }
                });
                if held.as_ref().is_some_and(|capability| !frontier.less_equal(capability.time())) {
                    let digest = wordcount::digest(counts.iter().map(|(word, count)| (word.as_str(), *count)));
                    report.digest = report.digest.wrapping_add(digest);
                    counts.clear();
                    held = None;
                }
                drop(report);
                busy(&count_report, start);
            }
        },
    );
    (Feed::Splits(splits), done)
}

/// The join: big and small rows exchanged by key (or the small side broadcast, the big side
/// kept), held until the epoch is complete, then joined through a hash table of the small side.
fn join<G: Scope<Timestamp = u64>>(
    scope: &mut G,
    report: &Shared<WorkerReport>,
    rows: usize,
    sizes: Vec<usize>,
    broadcast: bool,
    seed: u64,
) -> (Feed, StreamVec<G, ()>) {
    let (mut big, mut small) = (InputHandle::new(), InputHandle::new());
    let big_rows = scope.input_from(&mut big);
    let small_rows = scope.input_from(&mut small);
    let by_key = |row: &(u64, u64)| row.0;
    let done = if broadcast {
        hash_join(big_rows, small_rows.broadcast(), Pipeline, Pipeline, report.clone())
    } else {
        hash_join(big_rows, small_rows, Exchange::new(by_key), Exchange::new(by_key), report.clone())
    };
    (Feed::Join(Box::new(JoinFeed { big, small, rows, sizes, broadcast, seed })), done)
}

/// Holds an epoch's rows of both sides, then joins them: a hash table of the small side,
/// probed by every big row; the joined rows' digest goes into the report.
fn hash_join<G, P1, P2>(
    big: StreamVec<G, (u64, u64)>,
    small: StreamVec<G, (u64, u64)>,
    big_pact: P1,
    small_pact: P2,
    report: Shared<WorkerReport>,
) -> StreamVec<G, ()>
where
    G: Scope<Timestamp = u64>,
    P1: ParallelizationContract<u64, Vec<(u64, u64)>>,
    P2: ParallelizationContract<u64, Vec<(u64, u64)>>,
{
    big.binary_frontier(small, big_pact, small_pact, "Join", move |_, _| {
        let mut held: Option<Capability<u64>> = None;
        let (mut bigs, mut smalls) = (Vec::new(), Vec::new());
        move |(big, big_frontier), (small, small_frontier), _output: &mut Output<'_, ()>| {
            let start = Instant::now();
            big.for_each_time(|time, data| {
                held.get_or_insert_with(|| time.retain(0));
                data.for_each(|rows| bigs.append(rows));
            });
            small.for_each_time(|time, data| {
                held.get_or_insert_with(|| time.retain(0));
                data.for_each(|rows| smalls.append(rows));
            });
            if let Some(capability) = &held {
                if !big_frontier.less_equal(capability.time()) && !small_frontier.less_equal(capability.time()) {
                    let table: HashMap<u64, u64> = smalls.drain(..).collect();
                    let mut report = report.borrow_mut();
                    report.records_in += (bigs.len() + table.len()) as u64;
                    let digest = bigs.drain(..).fold(0u64, |sum, (key, value)| match table.get(&key) {
                        Some(&other) => sum.wrapping_add(inputs::joined(key, value, other)),
                        None => sum,
                    });
                    report.digest = report.digest.wrapping_add(digest);
                    held = None;
                }
            }
            busy(&report, start);
        }
    })
}

/// Label offers: (node, label).
type Offers = Vec<(u32, u32)>;

/// The iterative job's state on one worker: its nodes' labels and neighbours (node
/// `index + k · peers` is local node `k`).
struct Labels {
    labels: Vec<u32>,
    neighbours: Vec<Vec<u32>>,
    /// The round each local node last changed in, to list each changed node once.
    changed_at: Vec<u64>,
    epoch: u64,
}

impl Labels {
    fn digest(&self, place: Place) -> u64 {
        self.labels.iter().enumerate().fold(0u64, |sum, (local, &label)| {
            sum.wrapping_add(inputs::labelled((place.index + local * place.peers) as u32, label))
        })
    }
}

/// Connected components: seeds (each node's own id) and the loop's offers, exchanged by node;
/// round r's offers are handled once the frontier has passed r, and each node whose label
/// dropped offers it to its neighbours in round r + 1.
fn components<G: Scope<Timestamp = u64>>(
    scope: &mut G,
    place: Place,
    report: &Shared<WorkerReport>,
    nodes: usize,
    degree: usize,
    seed: u64,
    loop_probe: &ProbeHandle<u64>,
) -> (Feed, Stream<G, Vec<()>>, Shared<Labels>) {
    let owned = (place.index..nodes).step_by(place.peers).count();
    let mut neighbours = vec![Vec::new(); owned];
    for index in 0..inputs::edges(nodes, degree) {
        let (u, v) = inputs::edge(seed, nodes, index);
        if place.owns(u as usize) {
            neighbours[u as usize / place.peers].push(v);
        }
        if place.owns(v as usize) {
            neighbours[v as usize / place.peers].push(u);
        }
    }
    let labels = Rc::new(RefCell::new(Labels {
        labels: vec![u32::MAX; owned],
        neighbours,
        changed_at: vec![u64::MAX; owned],
        epoch: u64::MAX,
    }));
    let mut seeds = InputHandle::new();
    let (handle, cycle) = scope.feedback(1);
    let state = labels.clone();
    let report = report.clone();
    let offers = scope.input_from(&mut seeds).concat(cycle).unary_frontier(
        Exchange::new(|(node, _): &(u32, u32)| u64::from(*node)),
        "Label",
        move |_, _| {
            let mut stash: Vec<(Capability<u64>, Offers)> = Vec::new();
            move |(input, frontier), output| {
                let start = Instant::now();
                input.for_each_time(|time, data| {
                    let at = match stash.iter().position(|(held, _)| held.time() == time.time()) {
                        Some(at) => at,
                        None => {
                            stash.push((time.retain(output.output_index()), Vec::new()));
                            stash.len() - 1
                        }
                    };
                    data.for_each(|offers| stash[at].1.append(offers));
                });
                stash.sort_by_key(|(held, _)| *held.time());
                while stash.first().is_some_and(|(held, _)| !frontier.less_equal(held.time())) {
                    let (held, offers) = stash.remove(0);
                    let mut state = state.borrow_mut();
                    let mut report = report.borrow_mut();
                    let time = *held.time();
                    if state.epoch != time >> 32 {
                        state.epoch = time >> 32;
                        state.labels.fill(u32::MAX);
                        state.changed_at.fill(u64::MAX);
                    }
                    let round = (time & u64::from(u32::MAX)) as usize;
                    report.records_in += offers.len() as u64;
                    if report.round_records.len() <= round {
                        report.round_records.resize(round + 1, 0);
                    }
                    report.round_records[round] += offers.len() as u64;
                    let mut changed = Vec::new();
                    for (node, label) in offers {
                        let local = node as usize / place.peers;
                        if label < state.labels[local] {
                            state.labels[local] = label;
                            if state.changed_at[local] != time {
                                state.changed_at[local] = time;
                                changed.push(local);
                            }
                        }
                    }
                    let mut session = output.session(&held);
                    for local in changed {
                        let label = state.labels[local];
                        for &neighbour in &state.neighbours[local] {
                            place.account(&mut report, neighbour as usize % place.peers, 8);
                            session.give((neighbour, label));
                        }
                    }
                }
                busy(&report, start);
            }
        },
    );
    let offers = offers.probe_with(loop_probe);
    offers.clone().connect_loop(handle);
    let done = offers
        .unary(Pipeline, "Rounds", |_, _| move |input, _output: &mut Output<'_, ()>| input.for_each_time(|_, _| {}));
    (Feed::Seeds(seeds, nodes), done, labels)
}
