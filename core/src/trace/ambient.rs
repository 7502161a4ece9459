//! Profiling any experiment: while a run is profiled, the platform records what it alone knows
//! about each thread — a team member's whole body, and every time a thread blocks (a futex wait,
//! a sleep) — so that even an experiment that records no spans of its own has a profile.
//!
//! The runner makes a recorder *ambient* on its own thread for one run ([`with_ambient`]);
//! [`crate::platform::run_team`] hands it to every member it starts ([`member`]), and each
//! thread keeps its spans in a thread-local buffer it flushes to the recorder once, at the end.
//! Nothing is recorded, and a blocking call costs one thread-local look, when no run is profiled.

use std::borrow::Cow;
use std::cell::RefCell;

use super::{Recorder, Span, SpanKind};
use crate::platform::Instant;

/// The lane of the thread that runs the experiment (the runner's), when it blocks itself.
pub const RUNNER_LANE: usize = (1 << 20) + 1;

struct Ambient {
    /// Valid while the thread is inside [`with_ambient`] or a team member's body: see there.
    recorder: *const Recorder,
    lane: usize,
    spans: Vec<Span>,
}

crate::sync::thread_local! {
    #[allow(clippy::missing_const_for_thread_local, reason = "loom's thread_local! takes no const initialiser")]
    static CURRENT: RefCell<Option<Ambient>> = RefCell::new(None);
}

/// Where the calling thread's ambient recorder is, if a profiled run is going on.
#[derive(Clone, Copy)]
pub struct AmbientRecorder(*const Recorder);

// SAFETY: the pointer is only dereferenced while the recorder it points to is borrowed by
// `with_ambient` further up the stack of the thread that started the team, which outlives
// every member (run_team returns only after all of them have), and `Recorder` is `Sync`.
unsafe impl Send for AmbientRecorder {}
// SAFETY: as above; sharing the pointer only lets members reach the same `Sync` recorder.
unsafe impl Sync for AmbientRecorder {}

/// Runs `f` with `recorder` ambient on this thread: teams started inside record their members,
/// and this thread's own blocking is recorded on [`RUNNER_LANE`].
/// The whole of `f` is recorded there as one span, so that every profiled run has a frame, even
/// one whose work happens in other processes.
pub fn with_ambient<R>(recorder: &Recorder, f: impl FnOnce() -> R) -> R {
    let previous = install(recorder, RUNNER_LANE);
    let start = Instant::now();
    let result = f();
    record(SpanKind::Run, Cow::Borrowed("the run"), start, Instant::now());
    finish(previous);
    result
}

/// The calling thread's ambient recorder, for a team it starts.
pub fn current() -> Option<AmbientRecorder> {
    CURRENT.with(|current| current.borrow().as_ref().map(|ambient| AmbientRecorder(ambient.recorder)))
}

/// Runs team member `lane`'s `body` with `ambient` installed on its thread, and records the
/// body as one span.
pub fn member<R>(ambient: Option<AmbientRecorder>, lane: usize, body: impl FnOnce() -> R) -> R {
    let Some(AmbientRecorder(recorder)) = ambient else { return body() };
    // SAFETY: see `AmbientRecorder`: the recorder outlives the team this member belongs to.
    let previous = install(unsafe { &*recorder }, lane);
    let start = Instant::now();
    let result = body();
    record(SpanKind::Run, Cow::Owned(format!("team member {lane}")), start, Instant::now());
    finish(previous);
    result
}

/// Records that this thread blocked from `start` to now in `what`, if a run is profiled (a
/// thread-local look otherwise; callers that would read the clock only for it ask
/// [`recording`] first).
pub fn blocked(what: &'static str, start: Instant) {
    record(SpanKind::Wait, Cow::Borrowed(what), start, Instant::now());
}

/// Whether the calling thread records its blocking (so a blocking call reads the clock first).
pub fn recording() -> bool {
    CURRENT.with(|current| current.borrow().is_some())
}

fn record(kind: SpanKind, label: Cow<'static, str>, start: Instant, end: Instant) {
    CURRENT.with(|current| {
        if let Some(ambient) = current.borrow_mut().as_mut() {
            let (start_ns, end_ns) = (start.nanos_since_epoch(), end.nanos_since_epoch());
            ambient.spans.push(Span { thread: ambient.lane, start_ns, end_ns, kind, label });
        }
    })
}

fn install(recorder: &Recorder, lane: usize) -> Option<Ambient> {
    let ambient = Ambient { recorder, lane, spans: Vec::new() };
    CURRENT.with(|current| current.borrow_mut().replace(ambient))
}

/// Flushes this thread's spans and puts back what was installed before.
fn finish(previous: Option<Ambient>) {
    let mine = CURRENT.with(|current| std::mem::replace(&mut *current.borrow_mut(), previous));
    if let Some(Ambient { recorder, spans, .. }) = mine {
        // SAFETY: installed by `with_ambient` or `member` on this thread from a live borrow that
        // lasts until they return, which is after this call.
        let recorder = unsafe { &*recorder };
        for span in spans {
            recorder.record_span(span);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::platform::{run_team, sleep};
    use std::time::Duration;

    #[test]
    fn a_profiled_run_records_each_member_and_its_blocking_and_an_unprofiled_one_nothing() {
        let recorder = Recorder::new(true);
        with_ambient(&recorder, || {
            run_team(2, |_| sleep(Duration::from_millis(2))).unwrap();
            sleep(Duration::from_millis(1));
        });
        let spans = recorder.take();
        for lane in [0, 1] {
            let member = spans.iter().find(|s| s.thread == lane && s.label == format!("team member {lane}")).unwrap();
            let slept = spans.iter().find(|s| s.thread == lane && s.label == "sleeping").unwrap();
            assert!(member.start_ns <= slept.start_ns && slept.end_ns <= member.end_ns, "{spans:?}");
            assert_eq!(slept.kind, SpanKind::Wait);
        }
        assert!(spans.iter().any(|s| s.thread == RUNNER_LANE && s.label == "sleeping"));
        assert!(spans.iter().any(|s| s.thread == RUNNER_LANE && s.label == "waiting for its team"));
        assert!(spans.iter().any(|s| s.thread == RUNNER_LANE && s.label == "the run" && s.kind == SpanKind::Run));
        // Outside `with_ambient` the same team records nothing, anywhere.
        run_team(2, |_| sleep(Duration::from_millis(1))).unwrap();
        assert!(recorder.take().is_empty() && !recording());
    }
}
