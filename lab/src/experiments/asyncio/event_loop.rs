//! What the asyncio experiments share: the clock switch, the time scale, and running a demo's
//! `main` on an event loop inside a cell.

use std::future::Future;
use std::time::Duration;

use crate::experiment::{ParamSpec, Params, RunContext, RunError};
use conlab_core::aio::{AioResult, EventLoop, RealClock, VirtualClock};

/// The `clock` parameter, `default` first: the loop's real clock or the virtual one.
pub(crate) fn clock_param(default: &'static str) -> ParamSpec {
    ParamSpec::choice(
        "clock",
        default,
        &["real", "virtual"],
        "real: the loop sleeps; virtual: it jumps to the next timer (exact, instant)",
    )
}

/// The `clock` and `scale` parameters the asyncio experiments that replay a book's timeline take.
pub(crate) fn clock_params() -> [ParamSpec; 2] {
    [
        clock_param("real"),
        ParamSpec::float(
            "scale",
            0.1,
            0.001,
            10.0,
            "× real",
            "real seconds per book second: 0.1 replays a 2 s sleep in 200 ms",
        ),
    ]
}

/// A demo's clock: virtual or real, and how book seconds map to loop time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DemoClock {
    pub virtual_clock: bool,
    pub scale: f64,
}

impl DemoClock {
    pub fn from(params: &Params) -> Self {
        Self { scale: params.float("scale"), ..Self::unscaled(params) }
    }

    /// The `clock` parameter's clock, at loop time (for experiments without `scale`).
    pub fn unscaled(params: &Params) -> Self {
        Self { virtual_clock: params.text("clock") == "virtual", scale: 1.0 }
    }

    /// Loop time for `book_seconds` of the book's story.
    pub fn secs(self, book_seconds: f64) -> Duration {
        Duration::from_secs_f64(book_seconds * self.scale)
    }

    /// Runs `main` on a fresh loop (with `threads` pool workers for `to_thread` if > 0) and
    /// records `loop time` in book seconds.
    pub fn run<T: Send + 'static>(
        self,
        context: &RunContext,
        threads: usize,
        main: impl Future<Output = AioResult<T>> + 'static,
    ) -> Result<T, RunError> {
        let keep_going = || context.check_cancel().is_ok();
        let tracing = context.trace().is_enabled();
        let main = timed(main);
        let event_loop = if self.virtual_clock {
            EventLoop::new(VirtualClock::new(), tracing)
        } else {
            EventLoop::new(RealClock::new(), tracing)
        };
        let outcome = match threads {
            0 => event_loop.run(main, context.trace(), &keep_going),
            _ => event_loop.run_with_threads(threads, main, context.trace(), &keep_going)?,
        };
        let (value, loop_time) = outcome?;
        context.record("loop time", "s", loop_time.as_secs_f64() / self.scale);
        Ok(value)
    }
}

/// `main` with its loop time.
async fn timed<T>(main: impl Future<Output = AioResult<T>>) -> AioResult<(T, Duration)> {
    let start = conlab_core::aio::now();
    let value = main.await?;
    Ok((value, conlab_core::aio::now() - start))
}
