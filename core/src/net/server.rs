//! The books' server designs, each a few dozen lines over the lab's primitives, serving the
//! [`proto`](super::proto) protocol on a [`Network`].
//!
//! | model | threads | CPU part | I/O wait | saturates at (requests/s) |
//! |---|---|---|---|---|
//! | thread per connection | 1 + one per connection | its thread | blocks its thread | min(cores, C) / cpu |
//! | thread pool of k | a loop + k | a pool thread | blocks the pool thread | min(cores, k) / cpu, min(k, C) / (cpu + io) |
//! | event loop | 1 | the loop | a timer on the loop | 1 / cpu |
//! | event loop + k workers | a loop + k | a worker (`to_thread`) | a timer on the loop | min(cores, k) / cpu |
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
//!   hybrid the books end with.
//!
//! Servers run on threads the caller gives them ([`Server::serve`] on each of
//! [`ServerModel::threads`] team members), so that a server and its load generator share one
//! team — in a browser the worker pool is the only source of threads and cannot be nested.
//! [`Server::stop`] ends every member within [`super::POLL`].

use std::io;
use std::time::Duration;

use super::proto::{FrameReader, Request, REQUEST_BYTES};
use super::{Address, Arc, Closer, Listener, Network, Stream};
use crate::aio::{self, AioError, AioResult, EventLoop, Jobs, RealClock};
use crate::kernels::spin::Spinner;
use crate::platform::{self, Instant};
use crate::pymodel::{Bytecode, Interpreter};
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{lock, Condvar, Mutex};
use crate::trace::Recorder;

/// Bytes asked of a read.
const READ_CHUNK: usize = 16 * 1024;
/// Longest blocking read of a connection's thread: a stop ends it sooner, by shutting the
/// connection down.
const IDLE_READ: Duration = Duration::from_secs(1);

/// How a server serves its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerModel {
    ThreadPerConnection,
    ThreadPool { workers: usize },
    EventLoop,
    LoopWithWorkers { workers: usize },
}

impl ServerModel {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ThreadPerConnection => "thread per connection",
            Self::ThreadPool { .. } => "thread pool",
            Self::EventLoop => "event loop",
            Self::LoopWithWorkers { .. } => "event loop + workers",
        }
    }

    /// Threads the server occupies while `connections` clients are connected.
    pub fn threads(&self, connections: usize) -> usize {
        match *self {
            Self::ThreadPerConnection => 1 + connections,
            Self::ThreadPool { workers } | Self::LoopWithWorkers { workers } => 1 + workers,
            Self::EventLoop => 1,
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
    /// A stop-the-world pause (a garbage collector's, say): `(every, length)` — the last
    /// `length` of every `every` since the server was bound, nothing is handled.
    stall: Option<(Duration, Duration)>,
    bound: Instant,
    stop: AtomicBool,
    served: AtomicU64,
    accepted: AtomicU64,
    /// Thread per connection: the connections being served, to end their blocked reads on stop.
    open: Mutex<Vec<Closer>>,
    /// The first failure that was not a client going away.
    failure: Mutex<Option<String>>,
}

impl Server {
    /// Listens on `network` for a server of `model`, whose handlers spin their CPU time with
    /// `spinner`.
    pub fn bind(model: ServerModel, network: &Network, spinner: Spinner) -> io::Result<Self> {
        let listener = network.listen()?;
        Ok(Self {
            model,
            address: listener.address()?,
            listener: Mutex::new(Some(listener)),
            handoff: Mutex::default(),
            handed: Condvar::new(),
            jobs: Arc::default(),
            spinner,
            python: None,
            stall: None,
            bound: Instant::now(),
            stop: AtomicBool::new(false),
            served: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            open: Mutex::default(),
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

    /// This server (thread per connection), with its handlers' CPU part run as Python bytecode
    /// at CPython's pace: connection thread `i` is Python thread `i` of `interpreters[i % n]` —
    /// one interpreter for all (one GIL: `socketserver.ThreadingTCPServer`), or one each (a
    /// GIL per handler, as pre-forked processes or PEP 684 subinterpreters have).
    pub fn with_python(mut self, interpreters: Vec<Interpreter>) -> io::Result<Self> {
        if self.model != ServerModel::ThreadPerConnection || interpreters.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Python handlers run on the thread-per-connection server, with at least one interpreter",
            ));
        }
        self.python = Some(Python { interpreters });
        Ok(self)
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
        self.stop.load(Ordering::Acquire)
    }

    fn fail(&self, what: impl FnOnce() -> String) {
        if !self.stopped() {
            lock(&self.failure).get_or_insert_with(what);
        }
    }

    /// Runs member `index` (of [`ServerModel::threads`]) of the server until [`Server::stop`].
    pub fn serve(self: &Arc<Self>, index: usize) {
        match (self.model, index) {
            (ServerModel::ThreadPerConnection, 0) => self.accept_and_hand_off(),
            (ServerModel::ThreadPerConnection, _) => self.serve_handed_off(index),
            (ServerModel::EventLoop, _) => self.run_loop(Offload::None),
            (ServerModel::ThreadPool { .. }, 0) => self.run_loop(Offload::Handler),
            (ServerModel::LoopWithWorkers { .. }, 0) => self.run_loop(Offload::Cpu),
            (ServerModel::ThreadPool { .. } | ServerModel::LoopWithWorkers { .. }, _) => self.jobs.serve(),
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
                Err(error) => return self.fail(|| format!("accept failed: {error}")),
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
                platform::sleep(request.io);
                if let Err(error) = stream.write_all(&request.response()) {
                    return self.client_error(&error);
                }
                self.served.fetch_add(1, Ordering::AcqRel);
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
                    Offload::Cpu => {
                        let server = Arc::clone(&self);
                        aio::to_thread(move || server.start_handling(&request, 0)).await?;
                        aio::sleep(request.io).await?;
                    }
                    Offload::Handler => {
                        let server = Arc::clone(&self);
                        aio::to_thread(move || {
                            server.start_handling(&request, 0);
                            platform::sleep(request.io);
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
            (cpu.as_nanos() as f64 / (Bytecode::CPU_LOOP_OPS * interpreter.op_ns.max(f64::MIN_POSITIVE))) as i64;
        interpreter.result(&Bytecode::cpu_loop(iterations.max(1)), thread);
    }
}

/// What an event-loop server hands to its worker threads.
#[derive(Clone, Copy)]
enum Offload {
    None,
    Cpu,
    Handler,
}
