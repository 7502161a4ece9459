//! servers & load: servers under real load on real sockets (in-memory pipes in a browser) —
//! the server designs, the latency hockey stick, and load generators that do not lie.
//!
//! The family helper: [`load_point`] runs one load against a fresh server on its own team and
//! turns what went wrong into the run's error or check.

use std::time::Duration;

use crate::experiment::{Experiment, RunContext, RunError};
use conlab_core::kernels::spin::Spinner;
use conlab_core::net::load::{serve_and_load, Load, LoadReport, LoadSpec};
use conlab_core::net::proto::Request;
use conlab_core::net::server::{Server, ServerModel};
use conlab_core::net::Network;
use conlab_core::sync::Arc;

mod connections;
mod coordinated_omission;
mod framing;
mod gil_server;
mod server_load;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "servers & load";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &server_load::ServerLoad,
    &coordinated_omission::CoordinatedOmission,
    &connections::Connections,
    &gil_server::GilServer,
    &framing::Framing,
];

/// A request that burns `cpu_us` of CPU, then waits `io_ms`, and is answered with
/// `response_bytes`.
fn request(cpu_us: f64, io_ms: f64, response_bytes: usize) -> Request {
    Request {
        id: 0,
        cpu: Duration::from_secs_f64(cpu_us / 1e6),
        io: Duration::from_secs_f64(io_ms / 1e3),
        response_bytes: u32::try_from(response_bytes).unwrap_or(u32::MAX),
        endpoint: 0,
    }
}

/// A load of `duration` whose answers are awaited as long again, its time series in tenths;
/// no idle connections.
fn spec(load: Load, request: Request, duration: Duration, seed: u64) -> LoadSpec {
    LoadSpec {
        load,
        request,
        duration,
        grace: duration,
        bucket: (duration / 10).max(Duration::from_millis(1)),
        seed,
        idle: 0,
        settle: Duration::ZERO,
    }
}

/// A load that went as it should: every request answered once, in order, or still out at the
/// end; otherwise the wrong answer fails the run.
fn checked(report: LoadReport) -> Result<LoadReport, RunError> {
    if let Some(error) = &report.first_error {
        return Err(RunError::Failed(format!("the load's connections failed: {error}")));
    }
    if report.answered + report.unanswered + report.errors != report.sent {
        return Err(RunError::Failed(format!(
            "{} requests sent but {} answered and {} still out",
            report.sent, report.answered, report.unanswered
        )));
    }
    Ok(report)
}

/// Binds a `model` server on `network` (stalling as `stalls` says) and runs `spec` against it;
/// a cancel ends both within ~20 ms. Returns the load's report and what `observe` reads off the
/// server afterwards.
fn load_point<R>(
    model: ServerModel,
    network: &Network,
    spinner: Spinner,
    stalls: Option<(Duration, Duration)>,
    spec: &LoadSpec,
    context: &RunContext,
    observe: impl FnOnce(&Server) -> R,
) -> Result<(LoadReport, R), RunError> {
    let server = Server::bind(model, network, spinner)
        .map_err(|error| RunError::Failed(format!("the {} server could not listen: {error}", model.name())))?;
    let server = Arc::new(match stalls {
        Some((every, length)) => server.with_stalls(every, length),
        None => server,
    });
    let (report, _served) = serve_and_load(&server, network, spec, &|| context.check_cancel().is_ok())?;
    if let Some(failure) = server.failure() {
        return Err(RunError::Failed(format!("the {} server failed: {failure}", model.name())));
    }
    Ok((checked(report?)?, observe(&server)))
}
