//! Servers and load generators on real loopback sockets and on in-memory pipes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conlab_core::aio::AioError;
use conlab_core::kernels::spin::Spinner;
use conlab_core::net::load::{generate, serve_and_load, Arrivals, Load, LoadReport, LoadSpec};
use conlab_core::net::proto::Request;
use conlab_core::net::server::{Server, ServerModel};
use conlab_core::net::{Address, Network, Transport};
use conlab_core::platform::{run_team, Instant};
use conlab_core::pymodel::gil::Gil;
use conlab_core::pymodel::{Interpreter, Mode};

const MODELS: [ServerModel; 4] = [
    ServerModel::ThreadPerConnection,
    ServerModel::ThreadPool { workers: 3 },
    ServerModel::EventLoop,
    ServerModel::LoopWithWorkers { workers: 2 },
];

fn networks() -> [Network; 2] {
    [Network::Tcp, Network::memory()]
}

fn spec(load: Load, cpu_us: u64, io_us: u64, duration_ms: u64) -> LoadSpec {
    LoadSpec {
        load,
        request: Request {
            id: 0,
            cpu: Duration::from_micros(cpu_us),
            io: Duration::from_micros(io_us),
            response_bytes: 300,
            endpoint: 0,
        },
        duration: Duration::from_millis(duration_ms),
        grace: Duration::from_secs(2),
        bucket: Duration::from_millis(50),
        seed: 7,
        idle: 0,
        settle: Duration::ZERO,
    }
}

fn spinner() -> Spinner {
    static SPINNER: OnceLock<Spinner> = OnceLock::new();
    *SPINNER.get_or_init(Spinner::calibrate)
}

fn run(model: ServerModel, network: &Network, spec: &LoadSpec) -> (LoadReport, u64) {
    let server = Arc::new(Server::bind(model, network, spinner()).unwrap());
    let (report, served) = serve_and_load(&server, network, spec, &|| true).unwrap();
    assert_eq!(server.failure(), None, "{}", model.name());
    (report.unwrap(), served)
}

#[test]
fn every_request_is_answered_once_and_in_order_by_every_model_on_both_transports() {
    for network in networks() {
        for model in MODELS {
            let closed = spec(Load::Closed { users: 4, think: Duration::ZERO }, 50, 500, 150);
            let open = spec(Load::Open { rate: 2000.0, arrivals: Arrivals::Poisson, connections: 4 }, 20, 200, 150);
            for spec in [closed, open] {
                let (report, served) = run(model, &network, &spec);
                let what = format!("{} on {}, {:?}", model.name(), network.transport(), spec.load);
                assert_eq!(report.transport, network.transport());
                assert!(report.sent > 20, "{what}: only {} sent", report.sent);
                assert_eq!((report.errors, report.first_error.as_deref()), (0, None), "{what}");
                assert_eq!(report.unanswered, 0, "{what}");
                assert_eq!(report.answered, report.sent, "{what}");
                assert_eq!(served, report.sent, "{what}: the server answered each request once");
                assert_eq!(report.latency.count(), report.answered, "{what}");
            }
        }
    }
}

#[test]
fn pre_forked_processes_share_the_listener_and_answer_every_request_once_and_in_order() {
    let closed = spec(Load::Closed { users: 6, think: Duration::ZERO }, 50, 500, 200);
    let open = spec(Load::Open { rate: 2000.0, arrivals: Arrivals::Poisson, connections: 6 }, 20, 200, 200);
    for (model, spec) in [false, true]
        .into_iter()
        .flat_map(|reuse_port| [&closed, &open].map(|spec| (ServerModel::PreForked { processes: 3, reuse_port }, spec)))
    {
        let server = Arc::new(Server::bind(model, &Network::Tcp, spinner()).unwrap());
        let (report, served) = serve_and_load(&server, &Network::Tcp, spec, &|| true).unwrap();
        let report = report.unwrap();
        assert_eq!(server.failure(), None);
        assert!(report.sent > 20, "only {} sent", report.sent);
        assert_eq!((report.errors, report.first_error.as_deref()), (0, None));
        assert_eq!((report.unanswered, report.answered), (0, report.sent));
        assert_eq!(served, report.sent, "the workers' counts, added up: each request answered once");
        assert_eq!(server.accepted(), 6, "the workers accepted every connection once between them");
        assert_eq!(server.worker_accepts().len(), 3, "every worker reported");
    }
    // Python handlers: each worker runs an interpreter with a GIL of its own.
    let python = |mode| Interpreter { mode, op_ns: 6.5, spinner: spinner() };
    for mode in [Mode::Gil(Arc::new(Gil::new(Duration::from_millis(5)))), Mode::FreeThreaded { overhead: 0.0 }] {
        let model = ServerModel::PreForked { processes: 2, reuse_port: true };
        let server = Server::bind(model, &Network::Tcp, spinner()).unwrap().with_python(vec![python(mode)]).unwrap();
        let server = Arc::new(server);
        let (report, served) = serve_and_load(&server, &Network::Tcp, &open, &|| true).unwrap();
        let report = report.unwrap();
        assert_eq!(server.failure(), None);
        assert_eq!((report.answered, served, report.errors), (report.sent, report.sent, 0));
    }
    let model = ServerModel::PreForked { processes: 3, reuse_port: false };
    let refused = Server::bind(model, &Network::memory(), spinner()).err().expect("no processes on pipes in memory");
    assert!(refused.to_string().contains("pre-forked processes share a listening TCP socket"), "{refused}");
}

/// Stopped before its workers start, so each worker's stop comes right behind its start and
/// one read of the pipe takes both: the worker must still hear it (it once served forever,
/// and its supervisor waited forever for its reply).
#[test]
fn a_pre_forked_server_stopped_before_its_workers_start_ends_at_once() {
    for reuse_port in [false, true] {
        let server = Arc::new(
            Server::bind(ServerModel::PreForked { processes: 2, reuse_port }, &Network::Tcp, spinner()).unwrap(),
        );
        server.stop();
        let started = Instant::now();
        run_team(2, |member| server.serve(member.index)).unwrap();
        let took = started.elapsed();
        assert_eq!(server.failure(), None);
        assert_eq!(server.worker_accepts().len(), 2, "every worker heard the stop and reported");
        assert!(took < Duration::from_secs(2), "the workers took {took:?} to stop");
    }
}

#[test]
fn littles_law_holds_on_a_steady_open_loop_run() {
    for network in networks() {
        // 400/s against an event loop that takes 0.1 ms of CPU and 5 ms of I/O per request:
        // about two requests in flight, far below saturation.
        let spec = spec(Load::Open { rate: 400.0, arrivals: Arrivals::Poisson, connections: 8 }, 100, 5000, 600);
        let (report, _) = run(ServerModel::EventLoop, &network, &spec);
        let (l, lw) = (report.mean_in_flight, report.rate_times_wait);
        assert!(lw > 1.0, "{}: λW = {lw:.2}", network.transport());
        // Stated tolerance: 25% — L is sampled every millisecond, and the run's edges (its
        // first requests, the ones still out at the end) weigh on a 0.6 s run.
        assert!((l - lw).abs() / lw < 0.25, "{}: L = {l:.2} but λW = {lw:.2}", network.transport());
    }
}

#[test]
fn the_open_loop_sees_a_stalling_servers_pauses_the_closed_loop_hides() {
    let network = Network::for_platform();
    // The server stops the world for the last 200 ms of every second.
    let (every, stall) = (Duration::from_secs(1), Duration::from_millis(200));
    let mut p99 = Vec::new();
    let users = Load::Closed { users: 4, think: Duration::from_millis(1) };
    let arrivals = Load::Open { rate: 400.0, arrivals: Arrivals::Constant, connections: 4 };
    for load in [users, arrivals] {
        let server =
            Arc::new(Server::bind(ServerModel::EventLoop, &network, spinner()).unwrap().with_stalls(every, stall));
        let spec = spec(load, 50, 0, 1000);
        let (report, _) = serve_and_load(&server, &network, &spec, &|| true).unwrap();
        p99.push(Duration::from_nanos(report.unwrap().latency.quantile(0.99)));
    }
    let (closed, open) = (p99[0], p99[1]);
    assert!(open >= stall / 2, "open-loop p99 {open:?} < half the {stall:?} stall");
    assert!(closed < open / 2, "closed-loop p99 {closed:?} is not far below the open loop's {open:?}");
}

#[test]
fn a_refused_connection_is_a_clear_error_naming_the_address() {
    for network in networks() {
        let address = {
            let listener = network.listen().unwrap();
            listener.address().unwrap()
        };
        let spec = spec(Load::Closed { users: 1, think: Duration::ZERO }, 0, 0, 10);
        let error = generate(&network, address, &spec, &|| true).unwrap_err();
        let AioError::Raised(message) = error else { panic!("{error:?}") };
        assert!(message.starts_with(&format!("connecting to {address}: ConnectionRefusedError")), "{message}");
        if network.transport() == Transport::Memory {
            assert!(matches!(address, Address::Memory(_)));
        }
    }
}

#[test]
fn a_stopped_run_ends_promptly_however_far_behind_the_server_is() {
    let network = Network::for_platform();
    let server = Arc::new(Server::bind(ServerModel::EventLoop, &network, spinner()).unwrap());
    // 10 ms of CPU per request at 1000/s: hopelessly behind; stopped after 100 ms.
    let spec = spec(Load::Open { rate: 1000.0, arrivals: Arrivals::Constant, connections: 2 }, 10_000, 0, 5000);
    let started = Instant::now();
    let (report, _) =
        serve_and_load(&server, &network, &spec, &|| started.elapsed() < Duration::from_millis(100)).unwrap();
    assert_eq!(report.unwrap_err(), AioError::Stopped);
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[test]
fn a_stopping_thread_per_connection_server_ends_its_idle_connections_threads_at_once() {
    // 40 idle connections, each a thread blocked in its read (for up to a second between looks
    // at the stop flag): the stop shuts them down, so the run ends long before that second.
    for network in networks() {
        let server = Arc::new(Server::bind(ServerModel::ThreadPerConnection, &network, spinner()).unwrap());
        let spec = LoadSpec { idle: 40, ..spec(Load::Closed { users: 1, think: Duration::ZERO }, 10, 0, 50) };
        let started = Instant::now();
        let (report, _) = serve_and_load(&server, &network, &spec, &|| true).unwrap();
        let report = report.unwrap();
        assert_eq!(server.accepted(), 41, "{}", network.transport());
        assert!(report.answered > 0 && report.errors == 0);
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "{}: took {:?}",
            network.transport(),
            started.elapsed()
        );
    }
}
