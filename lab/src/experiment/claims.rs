//! Lessons as claims: what an experiment teaches, stated over its own result and checked by
//! every run.
//!
//! An experiment's [`Claim`]s are sentences with a threshold ("steal's 2-thread speedup beats
//! team's by ≥ 10%, fastest runs") and a check over the finished [`RunResult`]. Each run
//! evaluates them into [`Lesson`]s — **shown** (with the numbers), **not shown** (the numbers
//! and the likely reason) or **not testable here** (too few cores, a variant not run, a clock
//! too coarse) — which the CLI prints under the table, the page lists beside the summary and
//! the JSON keeps. A lesson that does not show on the user's machine is said plainly instead
//! of leaving a chart to mislead.
//!
//! Timing claims compare **fastest runs** (a cell's minimum sample): noise on a shared machine
//! only ever adds time, so the minimum is the run least disturbed and a claim between minima
//! is not flipped by a busy neighbour the way one between medians can be.

use serde::{Deserialize, Serialize};

use super::result::{CellResult, Metric, RunResult};

/// One lesson of an experiment, as a claim its run can check.
pub struct Claim {
    /// The lesson in one sentence, with the threshold it is held to.
    pub statement: &'static str,
    /// Reads the claim off a result. `Err` carries the verdict when a fact it needs is missing
    /// (the helpers of [`Facts`] answer [`Verdict::NotTestable`]), so checks can use `?`.
    pub check: fn(&Facts<'_>) -> Result<Verdict, Verdict>,
}

impl Claim {
    pub const fn new(statement: &'static str, check: fn(&Facts<'_>) -> Result<Verdict, Verdict>) -> Self {
        Self { statement, check }
    }
}

/// What a run made of a claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The run shows it; `observed` gives the numbers.
    Shown { observed: String },
    /// The run does not show it: the numbers, and the likely reason.
    NotShown { observed: String, likely: String },
    /// This run cannot tell, and why.
    NotTestable { why: String },
}

/// A claim and its verdict, as a result carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    pub claim: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Lesson {
    pub fn not_shown(&self) -> bool {
        matches!(self.verdict, Verdict::NotShown { .. })
    }
}

/// Every claim of `claims` checked against `result`.
pub fn evaluate(claims: &[Claim], result: &RunResult) -> Vec<Lesson> {
    let facts = Facts { result };
    claims
        .iter()
        .map(|claim| Lesson { claim: claim.statement.into(), verdict: (claim.check)(&facts).unwrap_or_else(|why| why) })
        .collect()
}

/// `Shown` when `holds`, otherwise `NotShown` with `likely` as the reason; `observed` either way.
pub fn verdict(holds: bool, observed: String, likely: &str) -> Result<Verdict, Verdict> {
    Ok(if holds { Verdict::Shown { observed } } else { Verdict::NotShown { observed, likely: likely.into() } })
}

/// A "not testable here" verdict.
pub fn not_testable(why: impl Into<String>) -> Verdict {
    Verdict::NotTestable { why: why.into() }
}

/// The facts a claim reads off a result; each answers "not testable" when the run lacks it.
pub struct Facts<'r> {
    pub result: &'r RunResult,
}

impl Facts<'_> {
    /// The cell (`variant`, `threads`), measured.
    pub fn cell(&self, variant: &str, threads: usize) -> Result<&CellResult, Verdict> {
        let cell = self
            .result
            .cell(variant, threads)
            .ok_or_else(|| not_testable(format!("{variant} did not run at {threads} thread{}", plural(threads))))?;
        match &cell.skipped {
            Some(why) => Err(not_testable(format!("{variant} at {threads} could not run here: {why}"))),
            None if cell.samples.is_empty() => Err(not_testable(format!("{variant} at {threads} has no timed runs"))),
            None => Ok(cell),
        }
    }

    /// The cell's fastest run, in seconds.
    pub fn fastest(&self, variant: &str, threads: usize) -> Result<f64, Verdict> {
        Ok(self.cell(variant, threads)?.samples.iter().copied().fold(f64::INFINITY, f64::min))
    }

    /// The cell's median run, in seconds: for a slowdown by contention, whose fastest run is
    /// the one where the threads happened to overlap least.
    pub fn median(&self, variant: &str, threads: usize) -> Result<f64, Verdict> {
        let cell = self.cell(variant, threads)?;
        cell.summary
            .as_ref()
            .map(|s| s.median)
            .ok_or_else(|| not_testable(format!("{variant} at {threads} has no summary")))
    }

    /// The thread count a variant that runs once picked itself (a fixed variant's one cell).
    pub fn fixed_threads(&self, variant: &str) -> Result<usize, Verdict> {
        let cell = self.result.cells.iter().find(|cell| cell.variant == variant);
        cell.map(|cell| cell.threads).ok_or_else(|| not_testable(format!("{variant} did not run")))
    }

    /// The fastest run of a variant that runs once, at the thread count it picks itself.
    pub fn fastest_fixed(&self, variant: &str) -> Result<f64, Verdict> {
        self.fastest(variant, self.fixed_threads(variant)?)
    }

    /// The cell's fastest run as a rate: units of work per second where the cell's work is
    /// known (cells that grow the problem with the threads differ in it), else runs per second.
    pub fn fastest_rate(&self, variant: &str, threads: usize) -> Result<f64, Verdict> {
        let cell = self.cell(variant, threads)?;
        let fastest = self.fastest(variant, threads)?;
        let work = match (cell.throughput, &cell.summary) {
            (Some(throughput), Some(summary)) => throughput * summary.median,
            _ => 1.0,
        };
        Ok(work / fastest)
    }

    /// The cell's fastest rate over the baseline's fastest 1-thread rate (for equal work, the
    /// ratio of the fastest times).
    pub fn speedup(&self, variant: &str, threads: usize) -> Result<f64, Verdict> {
        Ok(self.fastest_rate(variant, threads)? / self.fastest_rate(&self.result.baseline, 1)?)
    }

    /// This variant's fastest rate at `threads` over its fastest rate at 1 thread.
    pub fn scaling(&self, variant: &str, threads: usize) -> Result<f64, Verdict> {
        Ok(self.fastest_rate(variant, threads)? / self.fastest_rate(variant, 1)?)
    }

    /// The median of metric `name` in the cell.
    pub fn metric(&self, variant: &str, threads: usize, name: &str) -> Result<f64, Verdict> {
        Ok(self.metric_of(variant, threads, name)?.median)
    }

    /// The smallest value of metric `name` in any timed run of the cell (for a time: the run
    /// least disturbed).
    pub fn metric_min(&self, variant: &str, threads: usize, name: &str) -> Result<f64, Verdict> {
        Ok(self.metric_of(variant, threads, name)?.min)
    }

    /// The largest value of metric `name` in any timed run of the cell.
    pub fn metric_max(&self, variant: &str, threads: usize, name: &str) -> Result<f64, Verdict> {
        Ok(self.metric_of(variant, threads, name)?.max)
    }

    /// Metric `name` of a variant that runs once, at the thread count it picks itself.
    pub fn fixed_metric(&self, variant: &str, name: &str) -> Result<&Metric, Verdict> {
        self.metric_of(variant, self.fixed_threads(variant)?, name)
    }

    /// Metric `name` of the cell, every run's value in it.
    pub fn metric_of(&self, variant: &str, threads: usize, name: &str) -> Result<&Metric, Verdict> {
        self.cell(variant, threads)?
            .metrics
            .get(name)
            .ok_or_else(|| not_testable(format!("{variant} at {threads} did not measure {name}")))
    }

    /// At least `threads` hardware threads, or "not testable": a speedup at `threads` needs as
    /// many cores to run on.
    pub fn cores(&self, threads: usize) -> Result<(), Verdict> {
        let here = self.result.environment.platform.hardware_threads;
        if here >= threads {
            Ok(())
        } else {
            Err(not_testable(format!("needs {threads} cores; this machine has {here}")))
        }
    }

    /// A native run, or "not testable" with `why` the browser differs.
    pub fn native(&self, why: &str) -> Result<(), Verdict> {
        if self.result.environment.platform.platform == "native" {
            Ok(())
        } else {
            Err(not_testable(format!("in the browser {why}")))
        }
    }

    /// The thread counts `variant` ran at (skipped cells left out), in order.
    pub fn threads_of(&self, variant: &str) -> Vec<usize> {
        let ran = |cell: &&CellResult| cell.variant == variant && cell.skipped.is_none() && !cell.samples.is_empty();
        self.result.cells.iter().filter(ran).map(|cell| cell.threads).collect()
    }

    /// Parameter `name` as text (a choice).
    pub fn text(&self, name: &str) -> Result<&str, Verdict> {
        match self.result.params.get(name) {
            Some(super::Value::Text(value)) => Ok(value),
            _ => Err(not_testable(format!("the run has no text parameter `{name}`"))),
        }
    }

    /// Parameter `name` as a switch.
    pub fn flag(&self, name: &str) -> Result<bool, Verdict> {
        match self.result.params.get(name) {
            Some(super::Value::Bool(value)) => Ok(*value),
            _ => Err(not_testable(format!("the run has no switch `{name}`"))),
        }
    }

    /// "Not testable" unless the cell's fastest run took at least `ms`: a speedup read off
    /// shorter runs mostly times starting and waking threads (a quick preset's tiny problem).
    pub fn lasting(&self, variant: &str, threads: usize, ms: f64) -> Result<(), Verdict> {
        let fastest = self.fastest(variant, threads)? * 1e3;
        if fastest >= ms {
            Ok(())
        } else {
            Err(not_testable(format!(
                "{variant}'s runs take {fastest:.2} ms, too short for a speedup (under {ms} ms, starting threads \
                 dominates): enlarge the problem"
            )))
        }
    }

    /// Parameter `name` as a number (the experiment declared it; a claim may depend on it).
    pub fn param(&self, name: &str) -> Result<f64, Verdict> {
        match self.result.params.get(name) {
            Some(super::Value::Int(value)) => Ok(*value as f64),
            Some(super::Value::Float(value)) => Ok(*value),
            _ => Err(not_testable(format!("the run has no numeric parameter `{name}`"))),
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}
