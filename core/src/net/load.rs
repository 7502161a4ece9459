//! Load generators that do not lie: closed loop (`ab`, `wrk`) and open loop (`wrk2`).
//!
//! - **Closed loop**: N users, each on its own connection, send a request, wait for the answer,
//!   think, and send the next. Latency runs from the actual send. When the server stalls, the
//!   users stall with it and stop sending, so the stall is recorded once per user rather than
//!   once per request that *would* have been sent — Gil Tene's "coordinated omission".
//! - **Open loop**: requests arrive at rate λ on a fixed schedule (constant gaps, or Poisson:
//!   exponential gaps), spread over C connections (each its own schedule at λ/C, which merged
//!   is the same process). Requests are pipelined — a connection's writer sends on schedule
//!   whether or not earlier answers came back, and its reader matches answers in order — and
//!   latency runs from the *intended* send time, so a sender that falls behind (its socket
//!   full, its own thread late) counts the delay too.
//!
//! Both run on one event-loop thread with a bounded life: sending stops at the duration, answers
//! still out are awaited for the grace period, and any still missing then are counted as
//! unanswered and recorded at their age (a request that never came back is at least that late —
//! leaving it out would flatter the tail). Every answer is checked: its id is the next one the
//! connection awaits and its payload is whole. While sending, the requests in flight are sampled
//! every millisecond, so Little's law (L = λW) can be checked against the latencies.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::proto::{decode_response_header, FrameReader, Request, RESPONSE_HEADER_BYTES};
use super::server::Server;
use super::{Address, Arc, Network, Transport};
use crate::aio::{self, AioError, AioResult, EventLoop, JoinHandle, RealClock};
use crate::kernels::splitmix64;
use crate::platform::{self, MemoryUse, PlatformError};
use crate::stats::LogHistogram;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{lock, Mutex};
use crate::trace::Recorder;

/// Bytes asked of a read.
const READ_CHUNK: usize = 16 * 1024;
/// How often the requests in flight are counted.
const SAMPLE_EVERY: Duration = Duration::from_millis(1);

/// The gaps between an open loop's arrivals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    Constant,
    Poisson,
}

/// Who sends, and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// `users` on a connection each, thinking `think` between an answer and the next request.
    Closed { users: usize, think: Duration },
    /// `rate` requests per second over `connections` connections.
    Open { rate: f64, arrivals: Arrivals, connections: usize },
}

impl Load {
    pub fn connections(&self) -> usize {
        match *self {
            Self::Closed { users, .. } => users,
            Self::Open { connections, .. } => connections,
        }
    }
}

/// A load run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub load: Load,
    /// Every request's profile (its id is set per request).
    pub request: Request,
    /// How long requests are sent.
    pub duration: Duration,
    /// How long answers still out at the end are awaited.
    pub grace: Duration,
    /// The time series' bucket width.
    pub bucket: Duration,
    pub seed: u64,
    /// Connections opened before the load's own and held open, idle, to the end.
    pub idle: usize,
    /// A wait after connecting, before the first request: the server accepts the connections;
    /// then the process's memory is read ([`LoadReport::memory`]).
    pub settle: Duration,
}

impl LoadSpec {
    /// Every connection the load opens: the idle ones and its own.
    pub fn connections(&self) -> usize {
        self.idle + self.load.connections()
    }
}

/// One bucket of the time series: the answers that arrived in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Latencies (ns) of the answers that arrived in the bucket.
    pub latency: LogHistogram,
}

/// What a load run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    pub transport: Transport,
    pub sent: u64,
    pub answered: u64,
    /// Still unanswered when the grace period ended.
    pub unanswered: u64,
    /// Connections the server closed with requests still out; those requests count as errors.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latency (ns): from the intended send (open loop) or the send (closed loop) to the whole
    /// answer; unanswered requests at their age at the end.
    pub latency: LogHistogram,
    /// How long requests were sent.
    pub sending: Duration,
    /// From the first send to the last answer (or to the end of the grace period, if answers
    /// were still missing then).
    pub elapsed: Duration,
    /// Time series by arrival of the answer since the first send, `bucket` wide.
    pub series: Vec<Bucket>,
    pub bucket: Duration,
    /// Little's law: the requests in flight, sampled every millisecond while sending (L) ...
    pub mean_in_flight: f64,
    /// ... and the send rate times the mean time from send to answer (λ·W).
    pub rate_times_wait: f64,
    /// The process's memory once every connection was open and settled, where the platform
    /// says.
    pub memory: Option<MemoryUse>,
}

impl LoadReport {
    /// Answers per second in the second half of the sending window, when the pipeline has
    /// filled: the offered rate at a load the server keeps up with, its ceiling past it. `None`
    /// when no whole bucket of the series falls in that half.
    pub fn steady_throughput(&self) -> Option<f64> {
        let bucket = self.bucket.as_secs_f64();
        let (from, to) = (self.sending.as_secs_f64() / 2.0, self.sending.as_secs_f64());
        let inside: Vec<usize> = (0..self.series.len())
            .filter(|&index| index as f64 * bucket >= from - 1e-12 && (index + 1) as f64 * bucket <= to + 1e-12)
            .collect();
        let answers: u64 = inside.iter().map(|&index| self.series[index].latency.count()).sum();
        (!inside.is_empty()).then(|| answers as f64 / (inside.len() as f64 * bucket))
    }

    /// Answers per second, from the first send to the last answer: at a load the server keeps
    /// up with, the offered rate; past its ceiling, the rate it drains at.
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One request on its way.
struct Outstanding {
    id: u64,
    /// From when its latency runs.
    since: Duration,
    sent: Duration,
}

/// What the generator's tasks share (one thread: `Cell`s and `RefCell`s).
#[derive(Default)]
struct Tally {
    sent: Cell<u64>,
    answered: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    latency: RefCell<LogHistogram>,
    series: RefCell<Vec<Bucket>>,
    in_flight: Cell<u64>,
    /// Σ (answer − send) over answered requests, in ns.
    total_wait: Cell<u128>,
    /// Sends started then (loop time).
    start: Cell<Duration>,
    /// Sends stop after this (loop time).
    stop_sending: Cell<Duration>,
    /// When the latest answer arrived (loop time).
    last_answer: Cell<Duration>,
    bucket: Cell<Duration>,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Tally {
    fn answered(&self, request: &Outstanding) {
        let now = aio::now();
        let latency = nanos(now.saturating_sub(request.since));
        self.latency.borrow_mut().record(latency);
        let index = (now.saturating_sub(self.start.get()).as_nanos() / self.bucket.get().as_nanos().max(1)) as usize;
        let mut series = self.series.borrow_mut();
        if series.len() <= index {
            series.resize(index + 1, Bucket::default());
        }
        series[index].latency.record(latency);
        self.answered.set(self.answered.get() + 1);
        self.in_flight.set(self.in_flight.get() - 1);
        self.last_answer.set(now);
        self.total_wait.set(self.total_wait.get() + now.saturating_sub(request.sent).as_nanos());
    }

    fn connection_lost(&self, lost: usize, why: String) {
        self.errors.set(self.errors.get() + lost as u64);
        self.in_flight.set(self.in_flight.get() - lost as u64);
        self.first_error.borrow_mut().get_or_insert(why);
    }
}

/// A client connection: the stream and its unanswered requests, in order.
struct Connection {
    stream: aio::net::Stream,
    waiting: RefCell<VecDeque<Outstanding>>,
}

impl Connection {
    async fn send(&self, tally: &Tally, request: &Request, since: Duration) -> AioResult<()> {
        let sent = aio::now();
        self.waiting.borrow_mut().push_back(Outstanding { id: request.id, since, sent });
        tally.sent.set(tally.sent.get() + 1);
        tally.in_flight.set(tally.in_flight.get() + 1);
        self.stream.write_all(&request.encode()).await
    }

    /// Reads the next answer whole (through the reader's `frames`) and checks it answers the
    /// oldest request out.
    async fn receive(&self, tally: &Tally, frames: &mut FrameReader) -> AioResult<()> {
        let (id, length) = self.frame(frames, RESPONSE_HEADER_BYTES, decode_response_header).await?;
        let payload_ok = self.frame(frames, length, |bytes| bytes.iter().all(|&byte| byte == id as u8)).await?;
        let Some(request) = self.waiting.borrow_mut().pop_front() else {
            return Err(AioError::Raised(format!("an answer (id {id}) to no request")));
        };
        if request.id != id || !payload_ok {
            return Err(AioError::Raised(format!(
                "request {} was answered with id {id} (payload {}): answers out of order or corrupt",
                request.id,
                if payload_ok { "whole" } else { "corrupt" }
            )));
        }
        tally.answered(&request);
        Ok(())
    }

    /// The next `length` bytes, read as they arrive, handed to `parse`.
    async fn frame<R>(&self, frames: &mut FrameReader, length: usize, parse: impl FnOnce(&[u8]) -> R) -> AioResult<R> {
        while frames.available() < length {
            let count = self.stream.read(frames.space(READ_CHUNK)).await?;
            frames.filled(READ_CHUNK, count);
            if count == 0 {
                return Err(AioError::Raised("ConnectionResetError: the server closed the connection".into()));
            }
        }
        Ok(parse(frames.take(length).expect("available")))
    }

    /// After the connection failed: its requests out are lost.
    fn lost(&self, tally: &Tally, error: &AioError) {
        let lost = self.waiting.borrow_mut().drain(..).count();
        if lost > 0 {
            tally.connection_lost(lost, error.to_string());
        }
    }
}

/// Runs `spec` against the server at `address` on this thread's own event loop. `keep_going`
/// is asked at least every 20 ms; once false the run ends with [`AioError::Stopped`].
pub fn generate(
    network: &Network,
    address: Address,
    spec: &LoadSpec,
    keep_going: &dyn Fn() -> bool,
) -> AioResult<LoadReport> {
    let (network, spec) = (network.clone(), spec.clone());
    EventLoop::new(RealClock::new(), false).run(drive(network, address, spec), &Recorder::new(false), keep_going)
}

async fn drive(network: Network, address: Address, spec: LoadSpec) -> AioResult<LoadReport> {
    let tally = Rc::new(Tally::default());
    tally.bucket.set(spec.bucket);
    let connect = || {
        aio::net::Stream::connect(&network, &address)
            .map_err(|error| AioError::Raised(format!("connecting to {address}: {error}")))
    };
    // Held open, never used, until the report is made.
    let _idle: Vec<aio::net::Stream> = (0..spec.idle).map(|_| connect()).collect::<AioResult<_>>()?;
    let mut connections = Vec::new();
    for _ in 0..spec.load.connections() {
        connections.push(Rc::new(Connection { stream: connect()?, waiting: RefCell::default() }));
    }
    if !spec.settle.is_zero() {
        aio::sleep(spec.settle).await?;
    }
    let memory = platform::memory_use();
    let start = aio::now();
    tally.start.set(start);
    tally.stop_sending.set(start + spec.duration);
    let tasks = start_senders(&spec, start, &connections, &tally);
    let sampler = aio::spawn(sample_in_flight(Rc::clone(&tally)));
    aio::sleep(spec.duration).await?;
    let sending = aio::now().saturating_sub(start);
    let mean_in_flight = sampler.await?;
    // Answers still out: wait for them up to the grace period.
    let deadline = aio::now() + spec.grace;
    while tally.in_flight.get() > 0 && aio::now() < deadline {
        aio::sleep(SAMPLE_EVERY).await?;
    }
    for task in &tasks {
        task.cancel();
    }
    let now = aio::now();
    let elapsed = tally.last_answer.get().max(start + sending).saturating_sub(start);
    let mut unanswered = 0;
    for connection in &connections {
        for request in connection.waiting.borrow_mut().drain(..) {
            tally.latency.borrow_mut().record(nanos(now.saturating_sub(request.since)));
            unanswered += 1;
        }
    }
    let answered = tally.answered.get();
    let mean_wait = tally.total_wait.get() as f64 / 1e9 / answered.max(1) as f64;
    let rate = tally.sent.get() as f64 / sending.as_secs_f64().max(1e-9);
    Ok(LoadReport {
        transport: network.transport(),
        sent: tally.sent.get(),
        answered,
        unanswered,
        errors: tally.errors.get(),
        first_error: tally.first_error.take(),
        latency: tally.latency.take(),
        sending,
        elapsed,
        series: tally.series.take(),
        bucket: spec.bucket,
        mean_in_flight,
        rate_times_wait: rate * mean_wait,
        memory,
    })
}

/// The tasks that send (and, for the open loop, the readers beside them).
fn start_senders(
    spec: &LoadSpec,
    start: Duration,
    connections: &[Rc<Connection>],
    tally: &Rc<Tally>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (index, connection) in connections.iter().enumerate() {
        let (connection, tally) = (Rc::clone(connection), Rc::clone(tally));
        let template = spec.request;
        let first_id = index as u64;
        let stride = connections.len() as u64;
        match spec.load {
            Load::Closed { think, .. } => {
                tasks.push(aio::spawn(closed_user(connection, tally, template, first_id, stride, think)));
            }
            Load::Open { rate, arrivals, .. } => {
                let per_connection = rate / connections.len() as f64;
                let schedule = Schedule {
                    next: start + Duration::from_secs_f64(index as f64 / rate.max(1e-9)),
                    mean_gap: 1.0 / per_connection.max(1e-9),
                    arrivals,
                    state: spec.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                };
                tasks.push(aio::spawn(open_reader(Rc::clone(&connection), Rc::clone(&tally))));
                tasks.push(aio::spawn(open_writer(connection, tally, template, first_id, stride, schedule)));
            }
        }
    }
    tasks
}

/// One user of a closed loop.
async fn closed_user(
    connection: Rc<Connection>,
    tally: Rc<Tally>,
    template: Request,
    mut id: u64,
    stride: u64,
    think: Duration,
) -> AioResult<()> {
    let mut frames = FrameReader::default();
    while aio::now() < tally.stop_sending.get() {
        let request = Request { id, ..template };
        let exchanged = async {
            connection.send(&tally, &request, aio::now()).await?;
            connection.receive(&tally, &mut frames).await
        }
        .await;
        if let Err(error) = exchanged {
            connection.lost(&tally, &error);
            return Err(error);
        }
        id += stride;
        if !think.is_zero() {
            aio::sleep(think).await?;
        }
    }
    Ok(())
}

/// When an open loop's next request on one connection is due.
struct Schedule {
    next: Duration,
    mean_gap: f64,
    arrivals: Arrivals,
    state: u64,
}

impl Schedule {
    fn advance(&mut self) {
        let gap = match self.arrivals {
            Arrivals::Constant => self.mean_gap,
            Arrivals::Poisson => {
                let uniform = ((splitmix64(&mut self.state) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                -uniform.ln() * self.mean_gap
            }
        };
        self.next += Duration::from_secs_f64(gap);
    }
}

/// An open loop's sender on one connection: each request at its intended time, late ones at
/// once (latency still counts from when they were due).
async fn open_writer(
    connection: Rc<Connection>,
    tally: Rc<Tally>,
    template: Request,
    mut id: u64,
    stride: u64,
    mut schedule: Schedule,
) -> AioResult<()> {
    while schedule.next < tally.stop_sending.get() {
        let wait = schedule.next.saturating_sub(aio::now());
        if !wait.is_zero() {
            aio::sleep(wait).await?;
        }
        if let Err(error) = connection.send(&tally, &Request { id, ..template }, schedule.next).await {
            connection.lost(&tally, &error);
            return Err(error);
        }
        id += stride;
        schedule.advance();
    }
    Ok(())
}

/// An open loop's reader on one connection: answers in order, until cancelled.
async fn open_reader(connection: Rc<Connection>, tally: Rc<Tally>) -> AioResult<()> {
    let mut frames = FrameReader::default();
    loop {
        if let Err(error) = connection.receive(&tally, &mut frames).await {
            if error != AioError::Cancelled {
                connection.lost(&tally, &error);
            }
            return Err(error);
        }
    }
}

/// The mean of the requests in flight, counted every millisecond until sending stops.
async fn sample_in_flight(tally: Rc<Tally>) -> AioResult<f64> {
    let (mut sum, mut samples) = (0u64, 0u64);
    while aio::now() < tally.stop_sending.get() {
        sum += tally.in_flight.get();
        samples += 1;
        aio::sleep(SAMPLE_EVERY).await?;
    }
    Ok(sum as f64 / samples.max(1) as f64)
}

/// Runs `server` on its threads and `spec` against it on one more, in one team, and stops the
/// server when the load is done: `(the load's report, requests the server answered)`.
pub fn serve_and_load(
    server: &Arc<Server>,
    network: &Network,
    spec: &LoadSpec,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<(AioResult<LoadReport>, u64), PlatformError> {
    let (mut reports, served) = serve_and_load_all(server, network, std::slice::from_ref(spec), keep_going)?;
    Ok((reports.pop().expect("one load"), served))
}

/// [`serve_and_load`] with several loads at once (a slow endpoint's beside a fast one's), each
/// on its own generator thread; the server stops when the last is done.
pub fn serve_and_load_all(
    server: &Arc<Server>,
    network: &Network,
    specs: &[LoadSpec],
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<(Vec<AioResult<LoadReport>>, u64), PlatformError> {
    let connections = specs.iter().map(LoadSpec::connections).sum();
    let threads = server.model().threads(connections);
    let reports: Vec<Mutex<Option<AioResult<LoadReport>>>> = specs.iter().map(|_| Mutex::new(None)).collect();
    let done = AtomicUsize::new(0);
    platform::run_team(threads + specs.len(), |member| {
        if let Some(generator) = member.index.checked_sub(threads) {
            let outcome = generate(network, server.address(), &specs[generator], keep_going);
            *lock(&reports[generator]) = Some(outcome);
            if done.fetch_add(1, Ordering::AcqRel) + 1 == specs.len() {
                server.stop();
            }
        } else {
            server.serve(member.index);
        }
    })?;
    let reports = reports
        .into_iter()
        .map(|report| report.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every generator ran"))
        .collect();
    Ok((reports, server.served()))
}
