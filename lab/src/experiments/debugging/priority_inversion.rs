//! `priority-inversion`: the Mars Pathfinder bug on real threads — three `SCHED_FIFO` threads
//! on one CPU, and a mutex with and without priority inheritance.

use std::time::Duration;

use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext, RunError, TimeUnit,
    VariantSpec, Verdict, Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::realtime::{pin_current_thread, set_current_fifo_priority, PriorityMutex};
use conlab_core::platform::{self, run_team, Instant, PlatformError};
use conlab_core::sync::atomic::{AtomicU64, Ordering};
use conlab_core::sync::{lock, Arc, Mutex};
use conlab_core::trace::SpanKind;

pub struct PriorityInversion;

/// The CPU all three threads share.
const CPU: usize = 0;
/// `SCHED_FIFO` priorities of low, medium and high.
const PRIORITIES: [i32; 3] = [10, 20, 30];
/// When high and medium wake, after low has taken the mutex.
const HIGH_WAKES: Duration = Duration::from_millis(2);
const MEDIUM_WAKES: Duration = Duration::from_millis(4);

const HIGH_WAITED: &str = "high waited";

impl Experiment for PriorityInversion {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "priority-inversion",
            title: "Priority inversion on real threads: high waits behind medium",
            topic: super::NAME,
            concept: "priority inversion; priority inheritance",
            teaches: "Three real threads pinned to one CPU under the kernel's real-time scheduler (SCHED_FIFO: the \
                      highest-priority ready thread runs until it blocks). low takes a mutex and works with it for \
                      `section_ms`; 2 ms in, high wakes and blocks on the mutex; 4 ms in, medium wakes and computes \
                      for `medium_ms`. With a plain mutex medium, above low, runs its whole job while low holds the \
                      mutex, and high — the most urgent thread — waits for medium too: Mars Pathfinder's resets in \
                      1997. With a priority-inheritance mutex (PTHREAD_PRIO_INHERIT, what VxWorks turned on for \
                      Pathfinder) low runs at high's priority while high waits, so medium cannot preempt it: high \
                      waits only for the rest of low's section. Natively only, with the right to set real-time \
                      priorities (CAP_SYS_NICE); elsewhere the cells say why. `conlab explore priority-inversion` \
                      shows the same step by step.",
            params: vec![
                ParamSpec::float("section_ms", 10.0, 5.0, 1000.0, "ms", "low's work holding the mutex (CPU time)"),
                ParamSpec::float("medium_ms", 30.0, 1.0, 1000.0, "ms", "medium's job (CPU time)"),
            ],
            variants: vec![
                VariantSpec::fixed("plain", "a pthread mutex with no priority protocol"),
                VariantSpec::fixed("inherit", "a pthread mutex with PTHREAD_PRIO_INHERIT"),
            ],
            baseline: "plain",
            quick: &["section_ms=6", "medium_ms=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Scenario {
            section_ns: params.float("section_ms") * 1e6,
            medium_ns: params.float("medium_ms") * 1e6,
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "with a plain mutex high waits behind medium: its wait is at least 0.8 × medium's job (median run)",
                |facts| {
                    let (waited, medium) = (waited(facts, "plain")?, facts.param("medium_ms")?);
                    verdict(
                        waited >= 0.8 * medium,
                        format!("high waited {waited:.1} ms; medium's job is {medium} ms"),
                        "the threads did not share one CPU (pinning was ignored), so medium did not preempt low",
                    )
                },
            ),
            Claim::new(
                "priority inheritance takes medium out of high's wait: high waits at least 0.7 × medium's job less \
                 than with a plain mutex (median runs)",
                |facts| {
                    let (plain, inherit) = (waited(facts, "plain")?, waited(facts, "inherit")?);
                    let medium = facts.param("medium_ms")?;
                    verdict(
                        plain - inherit >= 0.7 * medium,
                        format!("high waited {plain:.1} ms with a plain mutex, {inherit:.1} ms with inheritance"),
                        "the mutex did not boost its holder (the kernel lacks PI futexes?)",
                    )
                },
            ),
        ]
    }
}

/// High's wait for the mutex in the median run of `variant`, in ms.
fn waited(facts: &Facts<'_>, variant: &str) -> Result<f64, Verdict> {
    facts.native("a browser has no real-time priorities")?;
    facts.metric(variant, 3, HIGH_WAITED)
}

struct Scenario {
    section_ns: f64,
    medium_ns: f64,
    spinner: Spinner,
}

impl Workload for Scenario {
    fn work_units(&self) -> Option<f64> {
        None
    }

    /// Each run's digest: entries into the mutex missing from low's and high's two (0).
    fn expected(&self) -> Digest {
        0
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        // Ask for what the run needs on a thread of its own (never this one, which must not end
        // up pinned), so a refusal skips the cell with the OS's reason before anything is timed.
        if cfg!(target_arch = "wasm32") {
            // A browser refuses, and says why, without a thread of its own (it cannot spawn one).
            set_current_fifo_priority(PRIORITIES[0])?;
        }
        let allowed = Arc::new(Mutex::new(Ok(())));
        let answer = Arc::clone(&allowed);
        platform::spawn_and_join(Box::new(move || {
            *lock(&answer) = pin_current_thread(CPU).and_then(|()| set_current_fifo_priority(PRIORITIES[0]));
        }))?;
        lock(&allowed).clone()?;
        let mutex = PriorityMutex::new(variant == "inherit")?;
        Ok(Box::new(ScenarioCell { scenario: self, mutex }))
    }
}

struct ScenarioCell<'a> {
    scenario: &'a Scenario,
    mutex: PriorityMutex,
}

impl Cell for ScenarioCell<'_> {
    fn threads(&self) -> usize {
        3
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let Scenario { section_ns, medium_ns, spinner } = *self.scenario;
        let (entries, high_waited_ns, ready) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let go = Mutex::new(None::<Instant>);
        let mutex = &self.mutex;
        let refused = Mutex::new(None::<PlatformError>);
        // Member 0 is the calling thread: it only waits. Members 1, 2, 3 are low, medium, high.
        run_team(4, |member| {
            let Some(role) = member.index.checked_sub(1) else { return };
            // The priority first: pinned to a CPU where low spins, a thread still at normal
            // priority would not run again until low is done.
            if let Err(error) = set_current_fifo_priority(PRIORITIES[role]).and_then(|()| pin_current_thread(CPU)) {
                *lock(&refused) = Some(error);
            }
            // Everyone set up (or refused) before low takes the mutex; waits sleep, never spin.
            ready.fetch_add(1, Ordering::Release);
            while ready.load(Ordering::Acquire) < 3 {
                platform::sleep(Duration::from_micros(50));
            }
            if lock(&refused).is_some() {
                return;
            }
            let mut lane = context.trace().lane(role);
            if role == 0 {
                mutex.with(|| {
                    *lock(&go) = Some(Instant::now());
                    entries.fetch_add(1, Ordering::Relaxed);
                    lane.span(SpanKind::Run, || "low: working, holding the mutex", || spinner.spin(section_ns));
                });
                return;
            }
            let start = loop {
                if let Some(start) = *lock(&go) {
                    break start;
                }
                platform::sleep(Duration::from_micros(50));
            };
            if role == 1 {
                platform::sleep(MEDIUM_WAKES.saturating_sub(start.elapsed()));
                lane.span(SpanKind::Run, || "medium: its job", || spinner.spin(medium_ns));
                return;
            }
            platform::sleep(HIGH_WAKES.saturating_sub(start.elapsed()));
            let asked = Instant::now();
            mutex.with(|| {
                high_waited_ns.store(asked.elapsed().as_nanos() as u64, Ordering::Relaxed);
                entries.fetch_add(1, Ordering::Relaxed);
            });
            let got = asked.plus(Duration::from_nanos(high_waited_ns.load(Ordering::Relaxed)));
            context.trace().record_at(2, SpanKind::Wait, "high: waiting for the mutex", asked, got);
        })?;
        if let Some(error) = lock(&refused).take() {
            return Err(error.into());
        }
        context.check_cancel()?;
        context.record_time(HIGH_WAITED, TimeUnit::Milliseconds, high_waited_ns.load(Ordering::Relaxed) as f64);
        Ok(2 - entries.load(Ordering::Relaxed).min(2))
    }
}
