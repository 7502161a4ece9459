//! `join-strategies`: a partitioned join (both sides exchanged by key) against a broadcast join
//! (the small side copied to every worker, the big side left where it is) as the small side grows.

use super::engine::{Job, Round, Shape};
use super::{cluster_params, inputs, record_exchange, ClusterCell};
use crate::experiment::{
    not_testable, verdict, Cell, Claim, CurveSpec, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params,
    RunContext, RunError, VariantSpec, Verdict, Workload,
};

pub struct JoinStrategies;

const TIME: CurveSpec = CurveSpec { name: "join time", x: "small side (rows)", y: "ms", log_x: true, log_y: true };
const MOVED: CurveSpec = CurveSpec {
    name: "records moved",
    x: "small side (rows)",
    y: "records to other workers",
    log_x: true,
    log_y: true,
};

/// The small side's sizes, as fractions of the big side's rows.
const SIZES: [f64; 6] = [1.0 / 64.0, 1.0 / 16.0, 0.25, 0.5, 1.0, 2.0];

impl Experiment for JoinStrategies {
    fn info(&self) -> ExperimentInfo {
        let mut params = vec![
            ParamSpec::int("rows", 1 << 18, 64, 1 << 24, "rows", "rows of the big table"),
            ParamSpec::int("seed", 1, 0, u32::MAX.into(), "", "seed of the generated tables"),
        ];
        params.extend(cluster_params());
        ExperimentInfo {
            id: "join-strategies",
            title: "Partitioned vs broadcast join as the small side grows: where the crossover is",
            topic: super::NAME,
            concept: "distributed joins: shuffle (hash-partitioned) join vs broadcast join (Spark, Dask, SQL engines)",
            teaches: "Two ways to join a big table with a smaller one across N workers. Partitioned: both sides are \
                      exchanged by key, so matching rows meet at one worker — (big + small) × (N − 1)/N records move. \
                      Broadcast: every worker gets a copy of the small side and joins its own big rows where they \
                      are — small × (N − 1) records move, and every worker builds the whole small table. Each run \
                      joins the big table with small sides of 1/64 to 2× its size, one after another; the curves \
                      show records moved and time per size for each strategy, and the claims read off where \
                      broadcasting stops paying.",
            params,
            variants: vec![
                VariantSpec::sweep("partitioned", "both sides exchanged by the key's hash"),
                VariantSpec::sweep("broadcast", "the small side sent to every worker; the big side stays put"),
            ],
            baseline: "partitioned",
            work_unit: Some("rows"),
            quick: &["rows=4096"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let rows = params.count("rows");
        let sizes: Vec<usize> = SIZES.iter().map(|fraction| ((rows as f64 * fraction) as usize).max(1)).collect();
        let job = |broadcast| Job::Join { rows, sizes: sizes.clone(), broadcast, seed: params.int("seed") as u64 };
        let expected = inputs::answer(&job(false)).digest;
        let work = sizes.iter().map(|size| rows + size).sum::<usize>() as f64;
        Ok(Box::new(Joins { partitioned: job(false), broadcast: job(true), params: params.clone(), expected, work }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "records: broadcasting a small side moves fewer records than partitioning both sides, and a small \
                 side twice the big one moves more",
                |facts| {
                    let workers = widest(facts)?;
                    let (first, last) = (at(facts, workers, MOVED, 0)?, at(facts, workers, MOVED, SIZES.len() - 1)?);
                    verdict(
                        first.1 < first.0 && last.1 > last.0,
                        format!(
                            "{workers} workers, records moved (partitioned → broadcast): smallest side {:.0} → {:.0}, \
                             largest {:.0} → {:.0}",
                            first.0, first.1, last.0, last.1
                        ),
                        "the exchange's counts did not follow the sizes",
                    )
                },
            ),
            Claim::new(
                "time: with the smallest side (1/64 of the big table) the broadcast join is faster than the \
                 partitioned one (median of the runs)",
                |facts| {
                    let workers = widest(facts)?;
                    let (partitioned, broadcast) = at(facts, workers, TIME, 0)?;
                    verdict(
                        broadcast < partitioned,
                        format!("{workers} workers, smallest side: partitioned {partitioned:.2} ms, broadcast {broadcast:.2} ms{}", crossover(facts, workers)),
                        "moving the big side was cheap next to the join's own work at this size",
                    )
                },
            ),
        ]
    }
}

/// The most workers both variants ran at (at least 2).
fn widest(facts: &Facts<'_>) -> Result<usize, Verdict> {
    let workers =
        facts.threads_of("broadcast").into_iter().filter(|t| facts.threads_of("partitioned").contains(t)).max();
    match workers {
        Some(workers) if workers >= 2 => Ok(workers),
        _ => Err(not_testable("a join on one worker moves nothing: run at least 2 workers in all")),
    }
}

/// The two strategies' median at the `index`-th size on `curve`.
fn at(facts: &Facts<'_>, workers: usize, curve: CurveSpec, index: usize) -> Result<(f64, f64), Verdict> {
    let point = |variant| -> Result<f64, Verdict> {
        let cell = facts.cell(variant, workers)?;
        cell.curves
            .get(curve.name)
            .and_then(|curve| curve.points.get(index))
            .map(|point| point.median)
            .ok_or_else(|| not_testable(format!("{variant} recorded no `{}` curve", curve.name)))
    };
    Ok((point("partitioned")?, point("broadcast")?))
}

/// Where broadcast's median time first exceeds partitioned's, in words.
fn crossover(facts: &Facts<'_>, workers: usize) -> String {
    let times: Vec<(f64, f64)> = (0..SIZES.len()).map_while(|index| at(facts, workers, TIME, index).ok()).collect();
    match times.iter().position(|(partitioned, broadcast)| broadcast > partitioned) {
        Some(0) => String::new(),
        Some(index) => format!(
            "; broadcast fell behind between small sides of {} and {} of the big table",
            fraction(SIZES[index - 1]),
            fraction(SIZES[index])
        ),
        None => "; broadcast stayed ahead at every size run".into(),
    }
}

fn fraction(size: f64) -> String {
    if size >= 1.0 {
        format!("{size}×")
    } else {
        format!("1/{:.0}", 1.0 / size)
    }
}

struct Joins {
    partitioned: Job,
    broadcast: Job,
    params: Params,
    expected: Digest,
    work: f64,
}

impl Workload for Joins {
    fn work_units(&self) -> Option<f64> {
        Some(self.work)
    }

    fn expected(&self) -> Digest {
        self.expected
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let shape = Shape { processes: self.params.count("processes"), workers: threads };
        let job = if variant == "broadcast" { &self.broadcast } else { &self.partitioned };
        ClusterCell::start(job, shape, &self.params, Box::new(record_join))
    }
}

/// The exchange's totals, and each size's time and records moved on the curves.
fn record_join(round: &Round, shape: Shape, context: &RunContext) {
    record_exchange(round, shape, context);
    for epoch in &round.epochs {
        let size = epoch.size as f64;
        context.record_point(TIME, size, epoch.ns as f64 / 1e6);
        context.record_point(MOVED, size, epoch.workers.iter().map(|w| w.sent_other_workers).sum::<u64>() as f64);
    }
}
