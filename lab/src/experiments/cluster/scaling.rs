//! `cluster-scaling`: the same word count on threads that share memory and on processes that
//! talk TCP — what crossing a process boundary costs.

use super::engine::{Job, Shape};
use super::{inputs, record_exchange, word_count_job, word_count_params, ClusterCell};
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Params, RunContext, RunError, VariantSpec, Workload,
};
use conlab_core::kernels::wordcount::{Corpus, WordCount};
use conlab_core::kernels::{Par, Strategy};

pub struct ClusterScaling;

impl Experiment for ClusterScaling {
    fn info(&self) -> ExperimentInfo {
        let params = word_count_params(0.0);
        ExperimentInfo {
            id: "cluster-scaling",
            title: "Threads vs processes: one word count on 1 process × W threads, P processes × 1, P × W",
            topic: super::NAME,
            concept: "distributed dataflow (timely-dataflow: Naiad, SOSP 2013): workers, exchange, processes over TCP",
            teaches: "The map-reduce word count as a timely-dataflow program: each worker maps its share of the text \
                      into (word, 1) records, the exchange sends every record to the worker that owns its word's \
                      hash, and that worker counts. Workers that are threads of one process hand records over in \
                      memory; workers in different processes serialise them and send them over TCP. Same program, \
                      same answer. The table shows what the process boundary costs — the bytes sent between \
                      processes — and the times of 2 processes × 1 worker and 1 process × 2 threads side by side: \
                      whether serialising beats sharing one process's allocator and queues depends on the machine. \
                      `seq` is the `map-reduce` experiment's in-process sequential count: what one worker of a \
                      dataflow costs over a plain loop (McSherry's COST).",
            params,
            variants: vec![
                VariantSpec::fixed("seq", "the map-reduce experiment's sequential count, in this process"),
                VariantSpec::sweep("threads", "1 process × W worker threads: the exchange stays in memory"),
                VariantSpec::sweep("processes", "W processes × 1 worker each: every exchange to another worker is TCP"),
                VariantSpec::sweep("cluster", "`processes` processes × W workers each"),
            ],
            baseline: "seq",
            work_unit: Some("words"),
            quick: &["words=20000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let job = word_count_job(params, false);
        let expected = inputs::answer(&job).digest;
        Ok(Box::new(Scaling { job, params: params.clone(), expected }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "threads share memory, processes send bytes: 1 process × 2 threads sends no byte between processes, \
                 2 processes × 1 send their records over TCP",
                |facts| {
                    let threads = facts.metric("threads", 2, "bytes to other processes")?;
                    let processes = facts.metric("processes", 2, "bytes to other processes")?;
                    verdict(
                        threads == 0.0 && processes > 0.0,
                        format!("between processes: threads {threads:.0} KiB, processes {processes:.0} KiB per run"),
                        "the exchange sent nothing to the other worker",
                    )
                },
            ),
            Claim::new(
                "a dataflow has a COST: on one worker, timely's word count takes ≥ 1.5× the time of the in-process \
                 sequential count — records, exchange and progress tracking are work a loop does not do (McSherry, \
                 Isard and Murray, \"Scalability! But at what COST?\", 2015) (fastest runs)",
                |facts| {
                    facts.lasting("seq", 1, 2.0)?;
                    let ratio = facts.fastest("threads", 1)? / facts.fastest_fixed("seq")?;
                    verdict(
                        ratio >= 1.5,
                        format!("1 timely worker took {ratio:.2}× the sequential count's time"),
                        "the sequential run was disturbed",
                    )
                },
            ),
        ]
    }
}

struct Scaling {
    job: Job,
    params: Params,
    expected: Digest,
}

impl Workload for Scaling {
    fn work_units(&self) -> Option<f64> {
        Some(self.params.count("words") as f64)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let processes = self.params.count("processes");
        let shape = match variant {
            "seq" => return Ok(Box::new(Sequential::new(&self.params))),
            "threads" => Shape { processes: 1, workers: threads },
            "processes" => Shape { processes: threads, workers: 1 },
            _ => Shape { processes, workers: threads },
        };
        ClusterCell::start(&self.job, shape, &self.params, Box::new(record_exchange))
    }
}

/// The in-process sequential count (the `map-reduce` experiment's `seq`).
struct Sequential {
    count: WordCount,
}

impl Sequential {
    fn new(params: &Params) -> Self {
        let corpus = Corpus::generate(params.count("words"), params.float("skew"), params.int("seed") as u64);
        Self { count: WordCount { corpus, partitions: 16, combiner: false } }
    }
}

impl Cell for Sequential {
    fn threads(&self) -> usize {
        1
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let keep_going = || context.check_cancel().is_ok();
        let par = Par::new(Strategy::Seq, &keep_going, context.trace());
        Ok(self.count.count(&par)?.0)
    }
}
