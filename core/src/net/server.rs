//! The books' server designs, each a few dozen lines over the lab's primitives, serving the
//! [`proto`](super::proto) protocol on a [`Network`].
//!
//! | model | threads | CPU part | I/O wait | saturates at (requests/s) |
//! |---|---|---|---|---|
//! | thread per connection | 1 + one per connection | its thread | blocks its thread | min(cores, C) / cpu |
//! | thread pool of k | a loop + k | a pool thread | blocks the pool thread | min(cores, k) / cpu, min(k, C) / (cpu + io) |
//! | event loop | 1 | the loop | a timer on the loop | 1 / cpu |
//! | event loop + k workers | a loop + k | a worker (`to_thread`) | a timer on the loop | min(cores, k) / cpu |
//! | k pre-forked processes | k processes, a loop each | its process's loop | a timer on that loop | min(cores, k) / cpu |
//!
//! With C connections, each answering one request at a time, no model exceeds C / (cpu + io)
//! either; [`ServerModel::capacity`] computes the smaller of the bounds. Every connection is persistent and
//! its requests are answered in order, one at a time: a server reads a request, handles it,
//! writes the response, then reads the next — which is what keeps per-connection order.
//!
//! - **Thread per connection** (`socketserver.ThreadingTCPServer`): an acceptor hands each
//!   connection to a thread of its own. A browser cannot start a thread on demand, so the
//!   threads are started with the run and each waits for its connection; a connection beyond
//!   them waits for a thread to become free.
//! - **Thread pool** (`ThreadPoolExecutor` behind a selector): an event loop watches every
//!   connection and hands each complete request to k pool threads, which run the handler as
//!   blocking code (CPU, then a blocking "database call"); the loop writes the answer.
//! - **Event loop** (asyncio): one thread; the CPU part runs on the loop (and blocks every other
//!   connection meanwhile), the I/O wait is a timer, so waits overlap for free.
//! - **Event loop + workers** (`loop.run_in_executor` / `to_thread` for the CPU part): the
//!   hybrid the books end with. [`Server::offloading_only`] sends one endpoint's requests to
//!   the workers and runs the others on the loop.
//! - **Pre-forked processes** (gunicorn, nginx, Apache's prefork; natively, on TCP): the server
//!   `fork()`s k worker processes that inherit its listening socket and each run an event loop
//!   accepting on it. Every worker's epoll is woken by each new connection and they race to
//!   accept it: the one already awake usually wins, and drains the queue — with few long-lived
//!   connections one worker may hold them all (the thundering herd, and why nginx grew an
//!   `accept_mutex`). With `reuse_port` each worker accepts on its own socket of an
//!   `SO_REUSEPORT` group and the kernel spreads connections by a hash of their addresses
//!   (nginx's `reuseport`). Member i starts worker i, waits for the stop, tells the worker, and
//!   adds up what it accepted and served.
//!
//! Any model's CPU part can be Python bytecode under the GIL model instead of plain work
//! ([`Server::with_python`]): "a Python server under the GIL" is a switch.
//!
//! Servers run on threads the caller gives them ([`Server::serve`] on each of
//! [`ServerModel::threads`] team members), so that a server and its load generator share one
//! team — in a browser the worker pool is the only source of threads and cannot be nested.
//! [`Server::stop`] ends every member within [`super::POLL`].

use std::cell::Cell;
use std::io;
use std::time::Duration;

use super::proto::{FrameReader, Request, REQUEST_BYTES};
use super::{Address, Arc, Closer, Listener, Network, Stream};
use crate::aio::{self, AioError, AioResult, EventLoop, Jobs, RealClock};
use crate::kernels::spin::Spinner;
use crate::platform::{self, Delivery, Instant, WorkerProcess};
use crate::pymodel::gil::Gil;
use crate::pymodel::{Bytecode, Interpreter, Mode};
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{lock, Condvar, Mutex};
use crate::trace::Recorder;

/// Bytes asked of a read.
const READ_CHUNK: usize = 16 * 1024;
/// Longest blocking read of a connection's thread: a stop ends it sooner, by shutting the
/// connection down.
const IDLE_READ: Duration = Duration::from_secs(1);

/// How long a pre-forked worker has to answer its stop (it looks every [`super::POLL`]).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A pre-forked worker's messages: serve (then the configuration), and stop.
const SERVE: u8 = 0;
const STOP: u8 = 1;

thread_local! {
    /// The server member this thread runs: a worker's Python thread number.
    static MEMBER: Cell<usize> = const { Cell::new(0) };
}

/// How a server serves its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerModel {
    ThreadPerConnection,
    ThreadPool {
        workers: usize,
    },
    EventLoop,
    LoopWithWorkers {
        workers: usize,
    },
    /// `reuse_port`: each worker accepts on a socket of its own in one `SO_REUSEPORT` group
    /// instead of all on one.
    PreForked {
        processes: usize,
        reuse_port: bool,
    },
}

impl ServerModel {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ThreadPerConnection => "thread per connection",
            Self::ThreadPool { .. } => "thread pool",
            Self::EventLoop => "event loop",
            Self::LoopWithWorkers { .. } => "event loop + workers",
            Self::PreForked { reuse_port: false, .. } => "pre-forked processes",
            Self::PreForked { reuse_port: true, .. } => "pre-forked processes (SO_REUSEPORT)",
        }
    }

    /// Threads the server occupies while `connections` clients are connected.
    pub fn threads(&self, connections: usize) -> usize {
        match *self {
            Self::ThreadPerConnection => 1 + connections,
            Self::ThreadPool { workers } | Self::LoopWithWorkers { workers } => 1 + workers,
            Self::EventLoop => 1,
            Self::PreForked { processes, .. } => processes,
        }
    }

    /// The most requests per second it can answer with `cores` cores and `connections`
    /// connections, each request taking `cpu` of CPU and then `io` of waiting: the saturation
    /// point the hockey stick should bend at.
    pub fn capacity(&self, cpu: Duration, io: Duration, connections: usize, cores: usize) -> f64 {
        let (cpu, io) = (cpu.as_secs_f64(), io.as_secs_f64());
        let cpu_bound = |threads: usize| threads.min(cores) as f64 / cpu;
        let per_thread = |threads: usize| threads as f64 / (cpu + io);
        match *self {
            Self::ThreadPerConnection => cpu_bound(connections).min(per_thread(connections)),
            Self::ThreadPool { workers } => cpu_bound(workers).min(per_thread(workers.min(connections))),
            Self::EventLoop => cpu_bound(1).min(per_thread(connections)),
            Self::LoopWithWorkers { workers } => cpu_bound(workers).min(per_thread(connections)),
            Self::PreForked { processes, .. } => cpu_bound(processes).min(per_thread(connections)),
        }
    }
}

/// A server on a network: its listener, its model, and what it has done.
pub struct Server {
    model: ServerModel,
    address: Address,
    /// Taken by the member that accepts.
    listener: Mutex<Option<Listener>>,
    /// Thread per connection: accepted connections waiting for their thread.
    handoff: Mutex<Vec<Stream>>,
    handed: Condvar,
    jobs: Arc<Jobs>,
    /// Spins a request's CPU time as work (a preempted handler takes longer, as real work does).
    spinner: Spinner,
    /// Runs the CPU part as Python bytecode instead ([`Server::with_python`]).
    python: Option<Python>,
    /// Loop + workers: the one endpoint whose requests go to the workers ([`Server::offloading_only`]).
    offloaded: Option<u32>,
    /// A pre-forked worker's stop: its parent speaking ([`platform::parent_spoke`]).
    stop_when: Option<fn() -> bool>,
    /// A stop-the-world pause (a garbage collector's, say): `(every, length)` — the last
    /// `length` of every `every` since the server was bound, nothing is handled.
    stall: Option<(Duration, Duration)>,
    bound: Instant,
    stop: AtomicBool,
    served: AtomicU64,
    accepted: AtomicU64,
    /// Thread per connection: the connections being served, to end their blocked reads on stop.
    open: Mutex<Vec<Closer>>,
    /// Pre-forked with `reuse_port`: the group's other sockets, one taken by each member after 0.
    group: Mutex<Vec<Option<Listener>>>,
    /// Pre-forked: the connections each worker accepted, as the workers report at the stop.
    worker_accepts: Mutex<Vec<u64>>,
    /// The first failure that was not a client going away.
    failure: Mutex<Option<String>>,
}

impl Server {
    /// Listens on `network` for a server of `model`, whose handlers spin their CPU time with
    /// `spinner`. Pre-forked processes need TCP: a pipe in memory cannot be shared by processes.
    pub fn bind(model: ServerModel, network: &Network, spinner: Spinner) -> io::Result<Self> {
        if matches!(model, ServerModel::PreForked { .. }) && network.transport() != super::Transport::Tcp {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "pre-forked processes share a listening TCP socket, not pipes in memory (a browser has no sockets \
                 and cannot fork)",
            ));
        }
        match model {
            ServerModel::PreForked { processes, reuse_port: true } => {
                let group = platform::socket::TcpListener::bind_loopback_group(processes.max(1))?;
                let mut group = group.into_iter().map(Listener::Tcp);
                let first = group.next().ok_or_else(|| io::Error::other("a group of no sockets"))?;
                let server = Self::adopt(model, first, spinner)?;
                *lock(&server.group) = group.map(Some).collect();
                Ok(server)
            }
            _ => Self::adopt(model, network.listen()?, spinner),
        }
    }

    /// A server of `model` on `listener`.
    fn adopt(model: ServerModel, listener: Listener, spinner: Spinner) -> io::Result<Self> {
        Ok(Self {
            model,
            address: listener.address()?,
            listener: Mutex::new(Some(listener)),
            handoff: Mutex::default(),
            handed: Condvar::new(),
            jobs: Arc::default(),
            spinner,
            python: None,
            offloaded: None,
            stop_when: None,
            stall: None,
            bound: Instant::now(),
            stop: AtomicBool::new(false),
            served: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            open: Mutex::default(),
            group: Mutex::default(),
            worker_accepts: Mutex::default(),
            failure: Mutex::default(),
        })
    }

    /// This server, pausing for `length` at the end of every `every` (`length < every`): the
    /// handler that would run during a pause waits for its end — on the event loop, blocking the
    /// loop, as a collector's pause stops every thread.
    pub fn with_stalls(mut self, every: Duration, length: Duration) -> Self {
        self.stall = Some((every, length.min(every)));
        self
    }

    /// This server, with its handlers' CPU part run as Python bytecode at CPython's pace: member
    /// `i` (connection thread `i`; `0` the loop, `1..=k` the workers) is Python thread `i` of
    /// `interpreters[i % n]` — one interpreter for all (one GIL: `socketserver.ThreadingTCPServer`,
    /// asyncio with `to_thread`), or one each (a GIL per handler or worker, as processes or PEP
    /// 684 subinterpreters have). Pre-forked workers each run an interpreter like
    /// `interpreters[0]` in their own process, with a GIL of its own.
    pub fn with_python(mut self, interpreters: Vec<Interpreter>) -> io::Result<Self> {
        if interpreters.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "Python handlers need an interpreter"));
        }
        self.python = Some(Python { interpreters });
        Ok(self)
    }

    /// This server (loop + workers), sending only `endpoint`'s requests to its workers and
    /// running every other request on the loop: `run_in_executor` for the heavy endpoint alone.
    pub fn offloading_only(mut self, endpoint: u32) -> Self {
        self.offloaded = Some(endpoint);
        self
    }

    /// Waits out a pause in progress.
    fn sit_out_stall(&self) {
        if let Some((every, length)) = self.stall {
            let since = self.bound.elapsed();
            let phase = Duration::from_nanos((since.as_nanos() % every.as_nanos().max(1)) as u64);
            if phase >= every - length {
                platform::sleep(every - phase);
            }
        }
    }

    /// Everything a request asks for that runs on one thread (`thread`, for the Python model):
    /// a pause in progress, then the CPU.
    fn start_handling(&self, request: &Request, thread: usize) {
        self.sit_out_stall();
        match &self.python {
            Some(python) => python.run(request.cpu, thread),
            None => self.spinner.spin(request.cpu.as_nanos() as f64),
        }
    }

    /// A blocking I/O wait of `io` (a database call) on thread `thread`: a Python thread drops
    /// its GIL for the call and needs it back afterwards.
    fn block_in_io(&self, io: Duration, thread: usize) {
        if !io.is_zero() {
            platform::sleep(io);
            self.after_blocking_call(thread);
        }
    }

    /// A Python thread back from a blocking call (`recv`, `sendall`, a database call), which
    /// released its GIL: it takes the GIL again to go on — under a busy GIL, a wait for the
    /// holder's next switch, as CPython's handler threads wait at every socket call.
    fn after_blocking_call(&self, thread: usize) {
        if let Some(python) = &self.python {
            python.reacquire(thread);
        }
    }

    pub fn model(&self) -> ServerModel {
        self.model
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }

    /// The first thing that went wrong on the server's side, if anything did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }

    /// Pre-forked: the connections each worker accepted (in the order the workers stopped).
    pub fn worker_accepts(&self) -> Vec<u64> {
        lock(&self.worker_accepts).clone()
    }

    /// Ends every member's work within [`super::POLL`]: the connections being served are shut
    /// down, which ends their threads' blocked reads.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.handed.notify_all();
        for closer in lock(&self.open).drain(..) {
            closer.close();
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.stop_when.is_some_and(|told| told())
    }

    fn fail(&self, what: impl FnOnce() -> String) {
        if !self.stopped() {
            lock(&self.failure).get_or_insert_with(what);
        }
    }

    /// Runs member `index` (of [`ServerModel::threads`]) of the server until [`Server::stop`].
    pub fn serve(self: &Arc<Self>, index: usize) {
        MEMBER.set(index);
        match (self.model, index) {
            (ServerModel::ThreadPerConnection, 0) => self.accept_and_hand_off(),
            (ServerModel::ThreadPerConnection, _) => self.serve_handed_off(index),
            (ServerModel::EventLoop, _) => self.run_loop(Offload::None),
            (ServerModel::ThreadPool { .. }, 0) => self.run_loop(Offload::Handler),
            (ServerModel::LoopWithWorkers { .. }, 0) => self.run_loop(Offload::Cpu),
            (ServerModel::ThreadPool { .. } | ServerModel::LoopWithWorkers { .. }, _) => self.jobs.serve(),
            (ServerModel::PreForked { reuse_port, .. }, _) => self.supervise_forked(index, reuse_port),
        }
    }

    /// A pre-forked worker: forks it with the listening socket, tells it how to serve, waits for
    /// the stop (or its early end), and adds what it did to this server's counts.
    fn supervise_forked(&self, index: usize, reuse_port: bool) {
        let mut worker = match self.fork_worker(index, reuse_port) {
            Ok(worker) => worker,
            Err(error) => return self.fail(|| error),
        };
        if let Err(error) = worker.send(&self.serve_message(), &[], Delivery::Copy) {
            return self.fail(|| format!("a pre-forked worker did not start: {error}"));
        }
        // A reply before the stop is a worker that ended early: it says why.
        while !self.stopped() && WorkerProcess::wait_any(&mut [&mut worker], super::POLL).is_none() {}
        let _ = worker.send(&[STOP], &[], Delivery::Copy);
        // A worker that cannot hear the stop must not hold the run (and the lab) forever.
        if WorkerProcess::wait_any(&mut [&mut worker], STOP_GRACE).is_none() {
            worker.kill();
            // After the stop, where `fail` records nothing: this failure is the stop's own.
            let why = format!("pre-forked worker {index} did not answer its stop within {STOP_GRACE:?}: killed");
            lock(&self.failure).get_or_insert(why);
            return;
        }
        match worker.receive() {
            Ok(reply) => self.absorb(&reply),
            Err(error) => self.fail(|| format!("a pre-forked worker failed: {error}")),
        }
    }

    /// Forks member `index`'s worker with the socket it accepts on: the one shared socket, or
    /// its own of the group — whose parent's copy closes once forked, so that the kernel sends
    /// it no connection nobody accepts.
    fn fork_worker(&self, index: usize, reuse_port: bool) -> Result<WorkerProcess, String> {
        let forked = if reuse_port {
            let own = match index {
                0 => lock(&self.listener).take(),
                _ => lock(&self.group).get_mut(index - 1).and_then(Option::take),
            };
            match own {
                Some(Listener::Tcp(listener)) => WorkerProcess::fork_sharing(serve_forked, &listener),
                _ => return Err(format!("pre-forked worker {index} has no socket of the group")),
            }
        } else {
            match &*lock(&self.listener) {
                Some(Listener::Tcp(listener)) => WorkerProcess::fork_sharing(serve_forked, listener),
                _ => return Err("a pre-forked worker needs the TCP listener".into()),
            }
        };
        forked.map_err(|error| format!("could not fork a worker: {error}"))
    }

    /// [`SERVE`] with this server's spinner and stalls, and its interpreter if its handlers run
    /// Python, as [`serve_forked`] reads them.
    fn serve_message(&self) -> Vec<u8> {
        let mut message = vec![SERVE];
        message.extend_from_slice(&self.spinner.to_bytes());
        let (every, length) = self.stall.unwrap_or_default();
        for span in [every, length] {
            message.extend_from_slice(&(span.as_nanos() as u64).to_le_bytes());
        }
        if let Some(python) = &self.python {
            message.extend_from_slice(&python.recipe());
        }
        message
    }

    /// Adds a pre-forked worker's reply ([`forked_reply`]) to this server's counts.
    fn absorb(&self, reply: &[u8]) {
        let count = |range: std::ops::Range<usize>| {
            reply.get(range).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8")))
        };
        self.served.fetch_add(count(0..8), Ordering::AcqRel);
        self.accepted.fetch_add(count(8..16), Ordering::AcqRel);
        lock(&self.worker_accepts).push(count(8..16));
        if let Some(failure) = reply.get(16..).filter(|rest| !rest.is_empty()) {
            let failure = String::from_utf8_lossy(failure).into_owned();
            self.fail(|| format!("a pre-forked worker: {failure}"));
        }
    }

    fn accept_and_hand_off(&self) {
        let Some(listener) = lock(&self.listener).take() else { return };
        while !self.stopped() {
            match listener.accept() {
                Ok(Some(stream)) => {
                    self.accepted.fetch_add(1, Ordering::AcqRel);
                    lock(&self.handoff).push(stream);
                    self.handed.notify_one();
                }
                Ok(None) => {}
                Err(error) => return self.fail(|| format!("accept failed: {}", platform::describe_io_error(&error))),
            }
        }
    }

    fn serve_handed_off(&self, thread: usize) {
        loop {
            let stream = {
                let mut handoff = lock(&self.handoff);
                loop {
                    if self.stopped() {
                        return;
                    }
                    if let Some(stream) = handoff.pop() {
                        break stream;
                    }
                    handoff = self.handed.wait_timeout(handoff, super::POLL).unwrap_or_else(|p| p.into_inner()).0;
                }
            };
            self.serve_blocking(stream, thread);
        }
    }

    /// One connection on this thread: read a request, handle it, answer, until the client
    /// closes or the server stops.
    fn serve_blocking(&self, mut stream: Stream, thread: usize) {
        if let Ok(closer) = stream.closer() {
            lock(&self.open).push(closer);
        }
        // A stop that drained the open connections before this one was added set its flag first.
        if self.stopped() {
            return;
        }
        let mut frames = FrameReader::default();
        loop {
            while let Some(bytes) = frames.take(REQUEST_BYTES) {
                let request = Request::decode(bytes);
                self.start_handling(&request, thread);
                self.block_in_io(request.io, thread);
                if let Err(error) = stream.write_all(&request.response()) {
                    return self.client_error(&error);
                }
                self.served.fetch_add(1, Ordering::AcqRel);
                self.after_blocking_call(thread);
            }
            if self.stopped() {
                return;
            }
            let space = frames.space(READ_CHUNK);
            // A thread blocks in its read as a real one does (no wake-ups while idle): a stop
            // shuts the connection down, which ends the read.
            match stream.read_within(space, IDLE_READ) {
                Ok(0) => return,
                Ok(count) => frames.filled(READ_CHUNK, count),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => frames.filled(READ_CHUNK, 0),
                Err(error) => return self.client_error(&error),
            }
        }
    }

    /// A client that goes away mid-conversation ends its connection, not the server.
    fn client_error(&self, error: &io::Error) {
        let gone = matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
        );
        if !gone {
            self.fail(|| format!("a connection failed: {error}"));
        }
    }

    /// The event-loop models: accept on the loop, one task per connection.
    fn run_loop(self: &Arc<Self>, offload: Offload) {
        let Some(listener) = lock(&self.listener).take() else { return };
        let event_loop = EventLoop::new(RealClock::new(), false).with_jobs(Arc::clone(&self.jobs));
        let server = Arc::clone(self);
        let outcome = event_loop.run(
            async move {
                let listener = aio::net::Listener::adopt(listener)?;
                loop {
                    let stream = listener.accept().await?;
                    server.accepted.fetch_add(1, Ordering::AcqRel);
                    aio::spawn(Arc::clone(&server).serve_async(stream, offload));
                }
            },
            &Recorder::new(false),
            &|| !self.stopped(),
        );
        self.jobs.close();
        match outcome {
            Ok(()) | Err(AioError::Stopped) => {}
            Err(error) => self.fail(|| format!("the event loop failed: {error}")),
        }
    }

    async fn serve_async(self: Arc<Self>, stream: aio::net::Stream, offload: Offload) -> AioResult<()> {
        let mut frames = FrameReader::default();
        loop {
            while let Some(bytes) = frames.take(REQUEST_BYTES) {
                let request = Request::decode(bytes);
                match offload {
                    Offload::None => {
                        self.start_handling(&request, 0);
                        aio::sleep(request.io).await?;
                    }
                    Offload::Cpu if self.offloaded.is_some_and(|endpoint| endpoint != request.endpoint) => {
                        self.start_handling(&request, 0);
                        aio::sleep(request.io).await?;
                    }
                    Offload::Cpu => {
                        let server = Arc::clone(&self);
                        aio::to_thread(move || server.start_handling(&request, MEMBER.get())).await?;
                        aio::sleep(request.io).await?;
                    }
                    Offload::Handler => {
                        let server = Arc::clone(&self);
                        aio::to_thread(move || {
                            server.start_handling(&request, MEMBER.get());
                            server.block_in_io(request.io, MEMBER.get());
                        })
                        .await?;
                    }
                }
                stream.write_all(&request.response()).await?;
                self.served.fetch_add(1, Ordering::AcqRel);
            }
            let count = stream.read(frames.space(READ_CHUNK)).await?;
            frames.filled(READ_CHUNK, count);
            if count == 0 {
                return Ok(());
            }
        }
    }
}

/// A pre-forked worker's answer, in the forked child: [`SERVE`] (a spinner's calibration, a
/// stall's period and length in nanoseconds, and [`Python::recipe`] if the handlers run Python)
/// serves the inherited listener on an event loop — stalls timed from the worker's start — until
/// the parent speaks again, and replies with what it did; the [`STOP`] that follows gets an
/// empty reply.
fn serve_forked(message: &[u8], _: &[u8], _: &[u8]) -> Vec<u8> {
    let Some((&SERVE, config)) = message.split_first() else { return Vec::new() };
    let served = (|| {
        let (config, recipe) = config.split_at_checked(32).ok_or_else(|| io::Error::other("a short message"))?;
        let spinner = Spinner::from_bytes(config[..16].try_into().expect("16 bytes"));
        let span = |at: usize| Duration::from_nanos(u64::from_le_bytes(config[at..at + 8].try_into().expect("8")));
        let listener = Listener::Tcp(platform::socket::TcpListener::inherited()?);
        let mut server = Server::adopt(ServerModel::EventLoop, listener, spinner)?;
        if !span(24).is_zero() {
            server = server.with_stalls(span(16), span(24));
        }
        if !recipe.is_empty() {
            server.python = Some(Python { interpreters: vec![Python::from_recipe(recipe, spinner)?] });
        }
        server.stop_when = Some(platform::parent_spoke);
        let server = Arc::new(server);
        server.serve(0);
        Ok::<_, io::Error>(forked_reply(server.served(), server.accepted(), server.failure().as_deref()))
    })();
    served.unwrap_or_else(|error| forked_reply(0, 0, Some(&format!("could not serve: {error}"))))
}

/// A pre-forked worker's reply: requests served, connections accepted (`u64` each), and its
/// failure's text if it had one.
fn forked_reply(served: u64, accepted: u64, failure: Option<&str>) -> Vec<u8> {
    let mut reply = [served.to_le_bytes(), accepted.to_le_bytes()].concat();
    reply.extend_from_slice(failure.unwrap_or_default().as_bytes());
    reply
}

/// Python handlers: the interpreters the connection threads run their bytecode under.
struct Python {
    interpreters: Vec<Interpreter>,
}

impl Python {
    /// `cpu` of Python work (a counting loop, five instructions an iteration at the
    /// interpreter's pace) as Python thread `thread`, taking and dropping its GIL as CPython does.
    fn run(&self, cpu: Duration, thread: usize) {
        let interpreter = &self.interpreters[thread % self.interpreters.len()];
        let iterations =
            crate::pymodel::loop_iterations(cpu.as_nanos() as f64, Bytecode::CPU_LOOP_OPS, interpreter.op_ns);
        interpreter.result(&Bytecode::cpu_loop(iterations.max(1)), thread);
    }

    /// The first interpreter, for a forked worker to build its own like it: its pace (`f64`),
    /// then `0` and its GIL's switch interval in seconds, or `1` and free-threading's overhead.
    fn recipe(&self) -> Vec<u8> {
        let interpreter = &self.interpreters[0];
        let (tag, value) = match &interpreter.mode {
            Mode::Gil(gil) => (0u8, gil.interval().as_secs_f64()),
            Mode::FreeThreaded { overhead } => (1u8, *overhead),
        };
        [&interpreter.op_ns.to_le_bytes()[..], &[tag], &value.to_le_bytes()].concat()
    }

    /// An interpreter built from a [`Python::recipe`], with a GIL of its own.
    fn from_recipe(recipe: &[u8], spinner: Spinner) -> io::Result<Interpreter> {
        let malformed = || io::Error::other("a malformed interpreter recipe");
        let number = |at: usize| recipe.get(at..at + 8).map(|b| f64::from_le_bytes(b.try_into().expect("8")));
        let (op_ns, value) = (number(0).ok_or_else(malformed)?, number(9).ok_or_else(malformed)?);
        let mode = match recipe.get(8) {
            Some(0) => {
                let interval = Duration::try_from_secs_f64(value).map_err(|_| malformed())?;
                Mode::Gil(crate::sync::Arc::new(Gil::new(interval)))
            }
            Some(1) => Mode::FreeThreaded { overhead: value },
            _ => return Err(malformed()),
        };
        Ok(Interpreter { mode, op_ns, spinner })
    }

    /// Python thread `thread` takes its GIL for a few instructions and drops it again.
    fn reacquire(&self, thread: usize) {
        self.interpreters[thread % self.interpreters.len()].result(&Bytecode::cpu_loop(1), thread);
    }
}

/// What an event-loop server hands to its worker threads.
#[derive(Clone, Copy)]
enum Offload {
    None,
    Cpu,
    Handler,
}
