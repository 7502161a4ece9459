//! `switch-interval`: CPU-bound threads under the GIL at switch intervals from 0.1 to 50 ms —
//! how often the GIL changes hands, and what the handovers cost.

use std::time::Duration;

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::{Bytecode, Interpreter, Mode};
use conlab_core::sync::Arc;

pub struct SwitchInterval;

/// Intervals a sweep visits, with the names of their two metrics.
const INTERVALS: [(&str, f64, &str, &str); 6] = [
    ("0.1", 0.1, "0.1 ms: time", "0.1 ms: handovers"),
    ("0.5", 0.5, "0.5 ms: time", "0.5 ms: handovers"),
    ("1", 1.0, "1 ms: time", "1 ms: handovers"),
    ("5", 5.0, "5 ms: time", "5 ms: handovers"),
    ("10", 10.0, "10 ms: time", "10 ms: handovers"),
    ("50", 50.0, "50 ms: time", "50 ms: handovers"),
];

impl Experiment for SwitchInterval {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "switch-interval",
            title: "The switch interval: how often the GIL changes hands",
            topic: super::NAME,
            concept: "sys.setswitchinterval",
            teaches: "CPU-bound threads under the GIL take turns: a waiting thread asks for the GIL after the switch \
                      interval, and the holder hands it over at its next loop back-edge. So the GIL changes hands at \
                      most once per interval — fewer times, because every handover also wakes a sleeping thread, \
                      which costs tens to hundreds of µs before the next interval starts: at 0.1 ms the turns are \
                      mostly that cost (CPython on this machine: `conlab calibrate-python` counts its handovers at \
                      0.1, 1 and 5 ms beside the model's). Short intervals mean many handovers and a slower run; long \
                      ones few switches but long stretches where the other threads — and any I/O thread — wait. Each \
                      run sweeps the interval from 0.1 ms to 50 ms (CPython's default is 5 ms); the columns give the \
                      run time and the handovers at each. One thread never hands it over: compare.",
            params: vec![
                ParamSpec::int(
                    "iterations",
                    1_000_000,
                    1,
                    100_000_000,
                    "per thread",
                    "loop iterations each thread runs",
                ),
                ParamSpec::choice(
                    "switch_ms",
                    "sweep",
                    &["sweep", "0.1", "0.5", "1", "5", "10", "50"],
                    "switch interval in ms: every one, or one",
                ),
                ParamSpec::op_ns(),
            ],
            variants: vec![VariantSpec::sweep("gil", "CPU-bound Python threads under the GIL")],
            baseline: "gil",
            chart_metric: Some("5 ms: handovers"),
            quick: &["iterations=200000", "switch_ms=sweep"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        let chosen = params.text("switch_ms");
        Ok(Box::new(Sweep {
            intervals: INTERVALS
                .iter()
                .filter(|(name, ..)| chosen == "sweep" || *name == chosen)
                .map(|&(_, ms, t, s)| (ms, t, s))
                .collect(),
            iterations: params.int("iterations"),
            op_ns: params.float("op_ns"),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the GIL changes hands at most once per interval: at 2 threads no run hands it over more often than \
                 its time ÷ the interval (+ 2 for the threads' start and end)",
                |facts| {
                    let mut seen = Vec::new();
                    let mut holds = true;
                    for (_, ms, time, handovers) in measured(facts, 2) {
                        let (time, handovers) =
                            (facts.metric_of("gil", 2, time)?, facts.metric_of("gil", 2, handovers)?);
                        let excess =
                            time.values.iter().zip(&handovers.values).map(|(t, h)| h - t / ms).fold(f64::MIN, f64::max);
                        holds &= excess <= 2.0;
                        seen.push(format!("{ms} ms: {:.0} of at most {:.0}", handovers.median, time.median / ms));
                    }
                    if seen.is_empty() {
                        return Err(not_testable("nothing ran at 2 threads"));
                    }
                    verdict(
                        holds,
                        format!("handovers (median run): {}", seen.join(", ")),
                        "a bug in the GIL model's timer",
                    )
                },
            ),
            Claim::new(
                "a longer interval means fewer handovers: at 2 threads each interval the run outlasts four times \
                 over hands the GIL over less often than the shorter ones (median runs)",
                |facts| {
                    // An interval the run outlasts four times over; in a shorter run the few
                    // handovers are start and end, not turns.
                    let rates: Vec<(f64, f64)> = measured(facts, 2)
                        .map(|(_, ms, time, handovers)| {
                            let time = facts.metric("gil", 2, time)?;
                            Ok((ms, facts.metric("gil", 2, handovers)? / time, time >= 4.0 * ms))
                        })
                        .collect::<Result<Vec<_>, Verdict>>()?
                        .into_iter()
                        .filter_map(|(ms, rate, outlasted)| outlasted.then_some((ms, rate)))
                        .collect();
                    if rates.len() < 2 {
                        return Err(not_testable(
                            "fewer than two intervals ran four times over (raise iterations, or sweep switch_ms)",
                        ));
                    }
                    let falling = rates.windows(2).all(|pair| pair[1].1 < pair[0].1);
                    let seen: Vec<String> =
                        rates.iter().map(|(ms, rate)| format!("{ms} ms {:.0}/s", rate * 1e3)).collect();
                    verdict(falling, seen.join(", "), "another program held a core during one interval's run")
                },
            ),
            Claim::new("one thread never hands the GIL over", |facts| {
                let most = measured(facts, 1)
                    .map(|(.., handovers)| facts.metric_max("gil", 1, handovers))
                    .collect::<Result<Vec<f64>, Verdict>>()?
                    .into_iter()
                    .fold(0.0, f64::max);
                verdict(most == 0.0, format!("at most {most:.0} handovers in a 1-thread run"), "a bug in the GIL model")
            }),
        ]
    }
}

/// The sweep's intervals the run measured at `threads`: (name, ms, time metric, handovers metric).
fn measured<'f>(
    facts: &'f Facts<'_>,
    threads: usize,
) -> impl Iterator<Item = (&'static str, f64, &'static str, &'static str)> + 'f {
    INTERVALS.into_iter().filter(move |(.., handovers)| facts.metric("gil", threads, handovers).is_ok())
}

struct Sweep {
    /// (interval in ms, time metric, handovers metric)
    intervals: Vec<(f64, &'static str, &'static str)>,
    iterations: i64,
    op_ns: f64,
    spinner: Spinner,
}

impl Workload for Sweep {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Per thread and interval, `iterations` increments of the thread's own variable; the
    /// digest is their total over all threads divided by the thread count.
    fn expected(&self) -> Digest {
        self.iterations as u64 * self.intervals.len() as u64
    }

    fn cell(&self, _: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(SweepCell { sweep: self, threads }))
    }
}

struct SweepCell<'a> {
    sweep: &'a Sweep,
    threads: usize,
}

impl Cell for SweepCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let sweep = self.sweep;
        let mut total = 0u64;
        for &(ms, time_metric, switch_metric) in &sweep.intervals {
            let gil = Arc::new(Gil::new(Duration::from_secs_f64(ms / 1e3)));
            let interpreter =
                Interpreter { mode: Mode::Gil(Arc::clone(&gil)), op_ns: sweep.op_ns, spinner: sweep.spinner };
            let start = context.now();
            let program = |thread| Bytecode::counting_loop(thread, sweep.iterations);
            let team = interpreter
                .run_team(self.threads, self.threads, program, context.trace(), &|| context.check_cancel().is_ok())?;
            context.check_cancel()?;
            context.record(time_metric, "ms", start.elapsed().as_secs_f64() * 1e3);
            context.record(switch_metric, "per run", gil.handovers() as f64);
            total += team.values.iter().map(|v| *v as u64).sum::<u64>() / self.threads as u64;
        }
        Ok(total)
    }
}
