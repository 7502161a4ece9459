//! `aba`: the ABA problem reproduced on a Treiber stack whose head is a bare index, and the tag
//! that fixes it.

use crate::experiment::{
    not_testable, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, ScalingLaw, VariantSpec, Verdict, Workload,
};
use conlab_core::ds::treiber::{Head, IndexStack};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::run_team;
use conlab_core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Aba;

impl Experiment for Aba {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "aba",
            title: "The ABA problem: a lock-free stack that corrupts itself",
            topic: super::NAME,
            concept: "ABA; tagged pointers; Treiber stack",
            teaches:
                "A lock-free pop reads the top node X and its successor Y, then swaps the head from X to Y in one \
                      compare-and-swap. If, in between, other threads pop X, pop Y and push X back, the head is X \
                      again — the CAS cannot tell — and Y, which another thread now holds, becomes the top: two \
                      threads own the same node, or nodes vanish from the stack. Each thread here pops two nodes and \
                      pushes them back, over and over, on a small pool; `window_ns` widens the gap between the read \
                      and the CAS. The untagged head breaks (`corrupted pops`: a node popped while another thread held \
                      it; `lost nodes`: missing at the end); a counter packed beside the index, bumped by every \
                      successful CAS, makes the stale CAS fail, and nothing goes wrong. The tagged variant is checked; \
                      the untagged one is wrong on purpose.",
            params: vec![
                ParamSpec::int("cycles", 100_000, 1, 100_000_000, "per thread", "pop two, push two, this many times"),
                ParamSpec::int("nodes", 8, 3, 1 << 20, "nodes", "nodes in the pool (fewer: more reuse, more ABA)"),
                ParamSpec::int("window_ns", 200, 0, 1_000_000, "ns", "busy time between reading the top and the CAS"),
            ],
            variants: vec![
                VariantSpec::sweep("untagged", "head = the top node's index").unchecked("the ABA problem, on purpose"),
                VariantSpec::sweep("tagged", "head = index + a counter bumped by every CAS"),
            ],
            baseline: "tagged",
            work_unit: Some("cycles"),
            chart_metric: Some("corrupted pops"),
            quick: &["cycles=5000"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Churn {
            cycles: params.int("cycles") as u64,
            nodes: params.int("nodes") as u32,
            window_ns: params.int("window_ns") as f64,
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "the untagged head breaks at 2 threads: pops corrupted or nodes lost in at least one run",
                |facts| {
                    facts.cores(2)?;
                    let (corrupted, lost) = damage(facts, "untagged", 2)?;
                    verdict(
                        corrupted + lost > 0.0,
                        format!("untagged, 2 threads, worst run: {corrupted:.0} corrupted pops, {lost:.0} lost nodes"),
                        "the threads did not interleave inside the window (raise window_ns or cycles)",
                    )
                },
            ),
            Claim::new("one thread alone cannot meet ABA: the untagged head loses nothing at 1 thread", |facts| {
                let (corrupted, lost) = damage(facts, "untagged", 1)?;
                verdict(
                    corrupted + lost == 0.0,
                    format!("untagged, 1 thread, worst run: {corrupted:.0} corrupted pops, {lost:.0} lost nodes"),
                    "a bug in the stack itself",
                )
            }),
            Claim::new("the tag fixes it: the tagged head loses nothing at any thread count", |facts| {
                let mut seen = Vec::new();
                for threads in facts.threads_of("tagged") {
                    let (corrupted, lost) = damage(facts, "tagged", threads)?;
                    if corrupted + lost > 0.0 {
                        return verdict(
                            false,
                            format!("tagged, {threads} threads: {corrupted:.0} corrupted pops, {lost:.0} lost nodes"),
                            "a bug in the tagged CAS",
                        );
                    }
                    seen.push(threads.to_string());
                }
                if seen.is_empty() {
                    return Err(not_testable("the tagged stack did not run"));
                }
                verdict(true, format!("no corrupted pop or lost node in any run at {} threads", seen.join(", ")), "")
            }),
        ]
    }
}

/// The worst run's corrupted pops and lost nodes.
fn damage(facts: &Facts<'_>, variant: &str, threads: usize) -> Result<(f64, f64), Verdict> {
    Ok((facts.metric_max(variant, threads, "corrupted pops")?, facts.metric_max(variant, threads, "lost nodes")?))
}

struct Churn {
    cycles: u64,
    nodes: u32,
    window_ns: f64,
    spinner: Spinner,
}

impl Workload for Churn {
    /// Each cell's own: every thread makes `cycles`.
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// The work grows with the threads, so speedups are ratios of cycles per second.
    fn scaling_law(&self) -> ScalingLaw {
        ScalingLaw::Gustafson
    }

    /// Every node back on the stack exactly once.
    fn expected(&self) -> Digest {
        u64::from(self.nodes)
    }

    fn cell(&self, variant: &str, threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let mode = if variant == "tagged" { Head::Tagged } else { Head::Untagged };
        Ok(Box::new(ChurnCell { churn: self, mode, threads }))
    }
}

struct ChurnCell<'a> {
    churn: &'a Churn,
    mode: Head,
    threads: usize,
}

impl Cell for ChurnCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn work_units(&self) -> Option<f64> {
        Some((self.churn.cycles * self.threads as u64) as f64)
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Churn { cycles, nodes, window_ns, spinner } = *self.churn;
        let stack = IndexStack::full(nodes, self.mode);
        let held: Vec<AtomicBool> = (0..nodes).map(|_| AtomicBool::new(false)).collect();
        let corrupted = AtomicU64::new(0);
        let take = |node: u32| {
            if held[node as usize].swap(true, Ordering::AcqRel) {
                corrupted.fetch_add(1, Ordering::Relaxed);
            }
        };
        let give_back = |node: u32| {
            held[node as usize].store(false, Ordering::Release);
            stack.push(node);
        };
        let pop = || stack.pop_with(|| spinner.spin(window_ns));
        run_team(self.threads, |_| {
            context.repeat(cycles, |_| {
                // A stack that lost its nodes may look empty: skip the cycle then.
                let Some(first) = pop() else { return };
                take(first);
                let second = pop();
                if let Some(second) = second {
                    take(second);
                }
                give_back(first);
                if let Some(second) = second {
                    give_back(second);
                }
            });
        })?;
        context.check_cancel()?;
        let mut left = stack.nodes();
        left.sort_unstable();
        left.dedup();
        context.record("corrupted pops", "pops", corrupted.into_inner() as f64);
        context.record("lost nodes", "nodes", f64::from(nodes) - left.len() as f64);
        Ok(left.len() as u64)
    }
}
