//! `prim-condition`: producer and consumers around a `Condition` — `while not items: wait()`
//! works; `if` lets a woken consumer pop an empty buffer; checking outside the lock loses
//! wake-ups.

use std::collections::VecDeque;
use std::time::Duration;

use super::prim_gallery::{blocking, millis, team, timeout, timeout_param, work};
use crate::experiment::{
    run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError,
    VariantSpec, Workload,
};
use conlab_core::platform::Instant;
use conlab_core::prims::Condition;
use conlab_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use conlab_core::trace::{Lane, SpanKind};

pub struct PrimCondition;

impl Experiment for PrimCondition {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-condition",
            title: "Condition: while, not if — and the wake-up lost outside the lock",
            topic: super::NAME,
            concept: "threading.Condition (wait / notify_all), spurious and stolen wake-ups, lost wake-ups",
            teaches: "Thread 0 produces `items`, one every `produce_ms`: `with cond: items.append(x); \
                      cond.notify_all()`. The consumers wait for items. Written `while not items: cond.wait()` it \
                      just works. Written `if not items: cond.wait()`, a consumer woken by `notify_all()` goes \
                      straight to `items.pop(0)` — but another woken consumer may have taken the item first, and the \
                      pop raises `IndexError`: that thread dies. Checking `if not items` *before* taking the lock \
                      opens a window (`gap_ms` widens it): the producer's append and notify land between the check \
                      and the `wait()`, nobody was waiting, and the consumer sleeps with items in the buffer — a \
                      lost wake-up — until the next notify, or its timeout after the last one. Every wait, \
                      notify and wake-up is on the timeline.",
            params: vec![
                ParamSpec::int("consumers", 3, 1, 15, "threads", "consumer threads"),
                ParamSpec::int("items", 20, 1, 100_000, "", "items the producer makes"),
                ParamSpec::float("produce_ms", 2.0, 0.0, 1_000.0, "ms", "time to make one item"),
                ParamSpec::float(
                    "gap_ms",
                    2.5,
                    0.0,
                    100.0,
                    "ms",
                    "check-outside: time between the unlocked check and the wait",
                ),
                timeout_param(),
            ],
            variants: vec![
                VariantSpec::fixed("while", "with cond: while not items: cond.wait(); items.pop(0)"),
                VariantSpec::fixed("if", "with cond: if not items: cond.wait(); items.pop(0)")
                    .unchecked("pops an empty buffer on purpose: the consumer raises IndexError and dies"),
                VariantSpec::fixed("check-outside", "if not items: (no lock) … with cond: cond.wait()")
                    .unchecked("loses wake-ups on purpose: consumers sleep with items in the buffer"),
            ],
            baseline: "while",
            work_unit: Some("items"),
            shows_timeline: true,
            quick: &["items=10", "produce_ms=1", "timeout_ms=50"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Buffer {
            consumers: params.count("consumers"),
            items: params.count("items"),
            produce: millis(params.float("produce_ms")),
            gap: millis(params.float("gap_ms")),
            timeout: timeout(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new("`while not items: cond.wait()` just works: every item is consumed in every run", |facts| {
                let items = facts.param("items")?;
                let consumed = facts.fixed_metric("while", "consumed")?.min;
                verdict(
                    consumed == items,
                    format!("{consumed:.0} of {items} consumed (fewest run)"),
                    "a bug in the Condition model",
                )
            }),
            Claim::new(
                "`if not items: cond.wait()` lets a woken consumer pop an empty buffer: IndexError kills it",
                |facts| {
                    let died = facts.fixed_metric("if", "IndexError")?.max;
                    verdict(
                        died >= 1.0,
                        format!("up to {died:.0} consumers died in a run"),
                        "only one consumer was woken at a time (add consumers)",
                    )
                },
            ),
            Claim::new("checking outside the lock loses wake-ups: consumers sleep with items in the buffer", |facts| {
                let lost = facts.fixed_metric("check-outside", "lost wake-ups")?.max;
                verdict(
                    lost >= 1.0,
                    format!("up to {lost:.0} lost wake-ups in a run"),
                    "the producer never landed in the window (raise gap_ms)",
                )
            }),
        ]
    }
}

struct Buffer {
    consumers: usize,
    items: usize,
    produce: Duration,
    gap: Duration,
    timeout: Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    While,
    If,
    CheckOutside,
}

impl Workload for Buffer {
    fn work_units(&self) -> Option<f64> {
        Some(self.items as f64)
    }

    /// Every item consumed once.
    fn expected(&self) -> Digest {
        self.items as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let style = match variant {
            "while" => Style::While,
            "if" => Style::If,
            _ => Style::CheckOutside,
        };
        Ok(Box::new(BufferCell { buffer: self, threads: team(self.consumers + 1)?, style }))
    }
}

struct BufferCell<'a> {
    buffer: &'a Buffer,
    threads: usize,
    style: Style,
}

/// `Some(item)`, or `None`: the stop sentinel, one per consumer.
type Items = VecDeque<Option<u64>>;

#[derive(Default)]
struct Tally {
    consumed: AtomicUsize,
    index_errors: AtomicUsize,
    lost_wake_ups: AtomicUsize,
    /// Time consumers slept with items in the buffer.
    slept_with_items_ns: AtomicU64,
    timed_out: AtomicUsize,
}

impl BufferCell<'_> {
    fn produce(&self, cond: &Condition<Items>, lane: &mut Lane<'_>, context: &RunContext) -> Result<(), RunError> {
        let mut produced = Ok(());
        for item in 0..self.buffer.items as u64 {
            produced = work(context, lane, || format!("making item {item}"), self.buffer.produce);
            if produced.is_err() {
                break;
            }
            cond.lock().push_back(Some(item));
            cond.notify_all();
            let now = Instant::now();
            lane.record(SpanKind::Mark, format!("items.append({item}); notify_all()"), now, now);
        }
        // Done (or cancelled): one stop sentinel per consumer.
        cond.lock().extend(std::iter::repeat_n(None, self.buffer.consumers));
        cond.notify_all();
        produced
    }

    fn consume(
        &self,
        me: usize,
        cond: &Condition<Items>,
        tally: &Tally,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<(), RunError> {
        let timeout = Some(self.buffer.timeout);
        loop {
            context.check_cancel()?;
            if self.style == Style::CheckOutside && cond.lock().is_empty() {
                self.wait_after_unlocked_check(me, cond, tally, lane, context)?;
            }
            let mut items = cond.lock();
            if items.is_empty() {
                match self.style {
                    Style::While | Style::CheckOutside => {
                        let ready = blocking(
                            lane,
                            "while not items: cond.wait()",
                            || items.wait_for(timeout, |b| !b.is_empty()),
                            |r| r.to_string(),
                        );
                        if !ready && self.style == Style::While {
                            return Err(RunError::Failed(format!(
                                "no item within timeout_ms={}: raise it",
                                self.buffer.timeout.as_millis()
                            )));
                        }
                    }
                    Style::If => {
                        let notified = blocking(
                            lane,
                            "if not items: cond.wait()",
                            || items.wait(timeout),
                            |n| if *n { "notified".into() } else { "timed out".into() },
                        );
                        if items.is_empty() {
                            tally.index_errors.fetch_add(1, Ordering::Relaxed);
                            let why = if notified {
                                "woken by notify_all(), it found the buffer empty — another consumer had taken the item"
                            } else {
                                "its wait timed out with the buffer still empty"
                            };
                            context.report(format!(
                                "consumer {me}: {why}, and items.pop(0) raised IndexError: pop from empty list — the \
                                 thread died. `while not items: cond.wait()` re-checks after every wake-up."
                            ));
                            return Ok(());
                        }
                    }
                }
            }
            match items.pop_front() {
                Some(Some(_)) => {
                    tally.consumed.fetch_add(1, Ordering::Relaxed);
                }
                Some(None) => return Ok(()),
                None => {} // woke by timeout with nothing: look again
            }
        }
    }

    /// `if not items:` read without the lock, then `with cond: cond.wait()` — the notify that
    /// came in between is lost.
    fn wait_after_unlocked_check(
        &self,
        me: usize,
        cond: &Condition<Items>,
        tally: &Tally,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<(), RunError> {
        work(context, lane, || "saw no items (unlocked); about to wait", self.buffer.gap)?;
        let mut items = cond.lock();
        let waiting_with = items.len();
        let started = Instant::now();
        let notified = blocking(
            lane,
            "cond.wait()",
            || items.wait(Some(self.buffer.timeout)),
            |n| if *n { "notified".into() } else { "timed out".into() },
        );
        if !notified {
            tally.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        if waiting_with > 0 {
            tally.lost_wake_ups.fetch_add(1, Ordering::Relaxed);
            tally.slept_with_items_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let until = if notified {
                "until the next notify".to_string()
            } else {
                format!("until its {} ms timeout", self.buffer.timeout.as_millis())
            };
            context.report(format!(
                "consumer {me} saw an empty buffer without the lock; the producer's append and notify_all() came \
                 before its wait(), which slept with items in the buffer {until} — a lost wake-up"
            ));
        }
        Ok(())
    }
}

impl Cell for BufferCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let cond = Condition::new(Items::new());
        let tally = Tally::default();
        run_members(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            if member.index == 0 {
                self.produce(&cond, &mut lane, context)
            } else {
                self.consume(member.index, &cond, &tally, &mut lane, context)
            }
        })?;
        let consumed = tally.consumed.load(Ordering::Relaxed);
        context.record("consumed", "items", consumed as f64);
        match self.style {
            Style::While => {}
            Style::If => {
                context.record("IndexError", "consumers died", tally.index_errors.load(Ordering::Relaxed) as f64)
            }
            Style::CheckOutside => {
                context.record("lost wake-ups", "", tally.lost_wake_ups.load(Ordering::Relaxed) as f64);
                context.record(
                    "slept with items",
                    "ms",
                    tally.slept_with_items_ns.load(Ordering::Relaxed) as f64 / 1e6,
                );
                context.record("timed-out waits", "", tally.timed_out.load(Ordering::Relaxed) as f64);
            }
        }
        Ok(consumed as u64)
    }
}
