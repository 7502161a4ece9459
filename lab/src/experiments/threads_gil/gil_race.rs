//! `gil-race`: `counter += 1` from N threads under the GIL (no update lost), with a call
//! between the load and the store (updates lost), and free-threaded (updates lost).

use std::time::Duration;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::{Bytecode, Interpreter, Mode};
use conlab_core::sync::Arc;

pub struct GilRace;

impl Experiment for GilRace {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "gil-race",
            title: "Does the GIL protect counter += 1?",
            topic: super::NAME,
            concept: "race conditions under the GIL",
            teaches: "The books' lost-update listing prints the right total under CPython 3.10+ — not because `+=` is \
                      atomic, but because the interpreter only hands the GIL over at eval-breaker points (a loop's \
                      back-edge and a Python function's first instruction, `RESUME`), and there is none between the \
                      load and the store of `counter += 1`. Put a call between them (`x = counter; f(); counter = x + \
                      1`) and a drop request can land inside `f`: the thread sleeps holding a stale `x` while the \
                      others run a whole switch interval, then stores `x + 1` over all their work — CPython 3.11 loses \
                      about 0.3 of the increments that way on 2 threads and half on 4 (`conlab calibrate-python` \
                      measures both against this model). Without the GIL (free-threaded Python) the plain loop loses \
                      updates too. `lost updates` is expected − counted; expected is 0 only for `gil`.",
            params: vec![
                ParamSpec::int("increments", 200_000, 1, 100_000_000, "per thread", "increments each thread performs"),
                ParamSpec::op_ns(),
                ParamSpec::float(
                    "switch_ms",
                    0.2,
                    0.01,
                    1000.0,
                    "ms",
                    "the switch interval (short: more switches, more chances)",
                ),
            ],
            variants: vec![
                VariantSpec::sweep("gil", "counter += 1 under the GIL"),
                VariantSpec::sweep("gil-call", "x = counter; f(); counter = x + 1 under the GIL").unchecked(
                    "a GIL switch at the call lands between the load and the store: updates are lost on purpose",
                ),
                VariantSpec::sweep("free-threaded", "counter += 1 without a GIL").unchecked(
                    "without a GIL the load and the store of two threads interleave: updates are lost on purpose",
                ),
            ],
            baseline: "gil",
            chart_metric: Some("lost updates"),
            quick: &["increments=20000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Race {
            increments: params.int("increments"),
            op_ns: params.float("op_ns"),
            switch: Duration::from_secs_f64(params.float("switch_ms") / 1e3),
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("under the GIL `counter += 1` loses no update, at any thread count", |facts| {
                let mut seen = Vec::new();
                for threads in facts.threads_of("gil") {
                    let lost = facts.metric_max("gil", threads, "lost updates")?;
                    if lost > 0.0 {
                        return verdict(
                            false,
                            format!("{lost:.0} lost at {threads} threads"),
                            "a switch point between the load and the store",
                        );
                    }
                    seen.push(threads.to_string());
                }
                verdict(!seen.is_empty(), format!("none lost at {} threads", seen.join(", ")), "gil did not run")
            }),
            Claim::new(
                "a call between the load and the store lets a switch land there: gil-call loses updates at 2 threads",
                |facts| {
                    let lost = facts.metric_max("gil-call", 2, "lost updates")?;
                    verdict(
                        lost > 0.0,
                        format!("up to {lost:.0} lost in a run"),
                        "no drop request landed inside the call (raise increments)",
                    )
                },
            ),
            Claim::new(
                "without the GIL the plain loop loses updates: free-threaded at 2 threads loses some",
                |facts| {
                    facts.cores(2)?;
                    let lost = facts.metric_max("free-threaded", 2, "lost updates")?;
                    verdict(
                        lost > 0.0,
                        format!("up to {lost:.0} lost in a run"),
                        "the two threads did not overlap (raise increments)",
                    )
                },
            ),
        ]
    }
}

struct Race {
    increments: i64,
    op_ns: f64,
    switch: Duration,
    spinner: Spinner,
}

/// The counter a correct run ends with, for `threads` threads; the digest packs it with the
/// thread count so every cell checks against its own expectation.
fn digest(threads: usize, counter: i64) -> Digest {
    ((threads as u64) << 48) ^ counter as u64
}

impl Workload for Race {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Cells differ in thread count, so each checks `digest(threads, threads × increments)`:
    /// the runner's single expected digest is for one thread, and [`RaceCell::run`] maps a
    /// correct count at any thread count onto it.
    fn expected(&self) -> Digest {
        digest(1, self.increments)
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        Ok(Box::new(RaceCell { race: self, variant: variant.to_string(), threads }))
    }
}

struct RaceCell<'a> {
    race: &'a Race,
    variant: String,
    threads: usize,
}

impl Cell for RaceCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let race = self.race;
        let mode = match self.variant.as_str() {
            "free-threaded" => Mode::FreeThreaded { overhead: 0.0 },
            _ => Mode::Gil(Arc::new(Gil::new(race.switch))),
        };
        let program = match self.variant.as_str() {
            "gil-call" => Bytecode::increment_loop_with_call(race.increments),
            _ => Bytecode::increment_loop(race.increments),
        };
        let interpreter = Interpreter { mode, op_ns: race.op_ns, spinner: race.spinner };
        let team = interpreter
            .run_team(self.threads, 1, |_| program.clone(), context.trace(), &|| context.check_cancel().is_ok())?;
        context.check_cancel()?;
        let expected = race.increments * self.threads as i64;
        let counted = team.values[0];
        context.record("lost updates", "increments", (expected - counted) as f64);
        // A correct count maps onto the one expected digest; a wrong one does not.
        Ok(if counted == expected { digest(1, race.increments) } else { digest(self.threads, counted) })
    }
}
