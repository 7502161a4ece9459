//! What the `prim-*` experiments (Python's `threading` primitives, [`conlab_core::prims`]) share:
//! their catalogue topic, the timeout every blocking call takes, blocking calls drawn on the
//! timeline as a wait ending in a wake-up mark, and sleeps that stand for work or I/O.
//!
//! Every blocking call in a gallery experiment has a timeout, so a misuse — a self-deadlock, a
//! lost wake-up, a party that never arrives — ends in a finding ([`RunContext::report`]) instead
//! of a hung lab.

use std::borrow::Cow;
use std::time::Duration;

use crate::experiment::{ParamSpec, Params, RunContext, RunError, CANCEL_POLL};
use conlab_core::platform::{check_team_size, Instant, PlatformError};
use conlab_core::trace::{Lane, SpanKind};

pub(crate) fn timeout_param() -> ParamSpec {
    ParamSpec::int(
        "timeout_ms",
        200,
        10,
        10_000,
        "ms",
        "every blocking call's timeout: how long a misuse waits before it is reported",
    )
}

pub(crate) fn timeout(params: &Params) -> Duration {
    Duration::from_millis(params.int("timeout_ms") as u64)
}

pub(crate) fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1e3)
}

/// A team of `threads` can start here (else the cell is skipped, saying why).
pub(crate) fn team(threads: usize) -> Result<usize, PlatformError> {
    check_team_size(threads).map(|()| threads)
}

/// Runs a blocking call and draws it: a wait span "`call`" while it blocked, then a wake-up
/// mark "woke: `call` → `outcome`" where it returned.
pub(crate) fn blocking<R>(
    lane: &mut Lane<'_>,
    call: &'static str,
    wait: impl FnOnce() -> R,
    outcome: impl FnOnce(&R) -> String,
) -> R {
    if !lane.is_enabled() {
        return wait();
    }
    let start = Instant::now();
    let result = wait();
    let end = Instant::now();
    lane.record(SpanKind::Wait, call, start, end);
    lane.record(SpanKind::Mark, format!("woke: {call} → {}", outcome(&result)), end, end);
    result
}

/// Work or I/O for `duration` (a sleep, as `time.sleep` stands in for it in the books), drawn
/// as a run span; `Err(Cancelled)` as soon as the run is cancelled.
pub(crate) fn work<L: Into<Cow<'static, str>>>(
    context: &RunContext,
    lane: &mut Lane<'_>,
    label: impl FnOnce() -> L,
    duration: Duration,
) -> Result<(), RunError> {
    lane.span(SpanKind::Run, label, || context.sleep(duration))
}

/// Calls `attempt` with slices of at most [`CANCEL_POLL`] until it succeeds or `timeout` has
/// passed (`Ok(None)`), looking at the cancel flag between slices. Only for calls that wait for
/// a state (a free lock, a permit, room in a queue): retrying one is the same as waiting longer.
pub(crate) fn patiently<R>(
    context: &RunContext,
    timeout: Duration,
    mut attempt: impl FnMut(Duration) -> Option<R>,
) -> Result<Option<R>, RunError> {
    let deadline = Instant::now().plus(timeout);
    loop {
        context.check_cancel()?;
        let now = Instant::now();
        let slice = deadline.duration_since(now).min(CANCEL_POLL);
        if let Some(done) = attempt(slice) {
            return Ok(Some(done));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
    }
}
