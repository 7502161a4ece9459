//! The in-memory transport: TCP's shape without a kernel, for browsers (which have no sockets)
//! and for tests.
//!
//! A connection is two bounded byte pipes, one per direction; a listener is a bounded backlog
//! of connections not yet accepted, found by its port on a [`MemoryNetwork`]. Each end can be
//! used blocking (a thread waits on the pipe's condition variable, with a timeout so it can
//! look at its stop flag) or from the event loop (the task parks its waker in the pipe and the
//! peer's write wakes it, from whatever thread the peer runs on).
//!
//! TCP's semantics, kept: bytes arrive in order and exactly once; a full pipe makes the writer
//! wait (flow control); closing one end gives the peer's reads the end of the stream (`Ok(0)`)
//! after the bytes already sent, and the peer's writes `BrokenPipe`; connecting to a port where
//! nothing listens, or whose backlog is full, is refused at once.
//!
//! Every state change happens under the pipe's (or backlog's) mutex, and waiters are notified
//! after it, so a waiter that found nothing and parked is always woken by the next change.

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::Arc;
use crate::sync::{lock, Condvar, Mutex};

/// Bytes a pipe holds before its writer waits: a socket buffer's order of magnitude.
pub const PIPE_BYTES: usize = 64 * 1024;
/// Connections a listener holds before further connects are refused (Linux's `somaxconn`).
pub const BACKLOG: usize = 4096;

/// Listeners by port.
#[derive(Default)]
pub struct MemoryNetwork {
    ports: Mutex<Vec<Option<Arc<Backlog>>>>,
}

impl MemoryNetwork {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A listener on a new port.
    pub fn listen(self: &Arc<Self>) -> MemoryListener {
        let backlog = Arc::new(Backlog::default());
        let mut ports = lock(&self.ports);
        ports.push(Some(Arc::clone(&backlog)));
        MemoryListener { port: ports.len() - 1, backlog, network: Arc::clone(self) }
    }

    /// Connects to the listener on `port`: refused if there is none or its backlog is full.
    pub fn connect(&self, port: usize) -> io::Result<MemoryStream> {
        let refused =
            |why: &str| io::Error::new(io::ErrorKind::ConnectionRefused, format!("memory port {port}: {why}"));
        let backlog = lock(&self.ports).get(port).cloned().flatten().ok_or_else(|| refused("nothing listens there"))?;
        let (client, server) = MemoryStream::pair();
        {
            let mut state = lock(&backlog.state);
            if state.closed {
                return Err(refused("nothing listens there"));
            }
            if state.pending.len() >= BACKLOG {
                return Err(refused("the listener's backlog is full"));
            }
            state.pending.push_back(server);
            if let Some(waker) = state.waiter.take() {
                waker.wake();
            }
        }
        backlog.arrived.notify_one();
        Ok(client)
    }
}

#[derive(Default)]
struct Backlog {
    state: Mutex<BacklogState>,
    arrived: Condvar,
}

#[derive(Default)]
struct BacklogState {
    pending: VecDeque<MemoryStream>,
    closed: bool,
    waiter: Option<Waker>,
}

/// A listening port on a [`MemoryNetwork`]; dropping it closes the port (connections not yet
/// accepted are closed, so their clients read the end of the stream).
pub struct MemoryListener {
    port: usize,
    backlog: Arc<Backlog>,
    network: Arc<MemoryNetwork>,
}

impl MemoryListener {
    pub fn port(&self) -> usize {
        self.port
    }

    /// The next connection, or `None` if none arrived within `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<Option<MemoryStream>> {
        let mut state = lock(&self.backlog.state);
        if state.pending.is_empty() {
            state = self.backlog.arrived.wait_timeout(state, timeout).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(state.pending.pop_front())
    }

    /// The next connection, or parks `cx`'s waker until one arrives.
    pub fn poll_accept(&self, cx: &Context<'_>) -> Poll<io::Result<MemoryStream>> {
        let mut state = lock(&self.backlog.state);
        match state.pending.pop_front() {
            Some(stream) => Poll::Ready(Ok(stream)),
            None => {
                state.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        lock(&self.network.ports)[self.port] = None;
        let pending = {
            let mut state = lock(&self.backlog.state);
            state.closed = true;
            std::mem::take(&mut state.pending)
        };
        drop(pending);
    }
}

/// One direction of a connection.
#[derive(Default)]
struct Pipe {
    state: Mutex<PipeState>,
    readable: Condvar,
    writable: Condvar,
}

#[derive(Default)]
struct PipeState {
    bytes: VecDeque<u8>,
    writer_closed: bool,
    reader_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    /// Copies what is buffered into `buf`: `Some(n)` (0 at the end of the stream), or `None`
    /// when there is nothing yet.
    fn take(state: &mut PipeState, buf: &mut [u8]) -> Option<usize> {
        if state.bytes.is_empty() {
            return (state.writer_closed || buf.is_empty()).then_some(0);
        }
        let count = buf.len().min(state.bytes.len());
        let (front, back) = state.bytes.as_slices();
        let from_front = count.min(front.len());
        buf[..from_front].copy_from_slice(&front[..from_front]);
        buf[from_front..count].copy_from_slice(&back[..count - from_front]);
        state.bytes.drain(..count);
        Some(count)
    }

    /// Appends what fits of `buf`: `Some(Ok(n))`, `Some(Err(BrokenPipe))` if the reader is
    /// gone, or `None` when the pipe is full.
    fn put(state: &mut PipeState, buf: &[u8]) -> Option<io::Result<usize>> {
        if state.reader_closed {
            return Some(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the peer closed the connection")));
        }
        let count = buf.len().min(PIPE_BYTES - state.bytes.len());
        if count == 0 && !buf.is_empty() {
            return None;
        }
        state.bytes.extend(&buf[..count]);
        Some(Ok(count))
    }

    /// After bytes were taken: the writer may go on.
    fn taken(&self, mut state: crate::sync::MutexGuard<'_, PipeState>) {
        let waker = state.writer.take();
        drop(state);
        self.writable.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// After bytes were put (or the writer closed): the reader may go on.
    fn put_done(&self, mut state: crate::sync::MutexGuard<'_, PipeState>) {
        let waker = state.reader.take();
        drop(state);
        self.readable.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// One end of an in-memory connection.
pub struct MemoryStream {
    incoming: Arc<Pipe>,
    outgoing: Arc<Pipe>,
}

impl MemoryStream {
    /// Two connected ends.
    pub fn pair() -> (Self, Self) {
        let (there, back) = (Arc::new(Pipe::default()), Arc::new(Pipe::default()));
        (Self { incoming: Arc::clone(&back), outgoing: Arc::clone(&there) }, Self { incoming: there, outgoing: back })
    }

    /// A handle that ends this end's reads from another thread (as a socket's shutdown does).
    pub fn closer(&self) -> MemoryCloser {
        MemoryCloser(Arc::clone(&self.incoming))
    }

    /// Reads what has arrived, waiting up to `timeout` for something: `Ok(0)` at the end of
    /// the stream, `ErrorKind::WouldBlock` when the time ran out.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let pipe = &self.incoming;
        let mut state = lock(&pipe.state);
        if state.bytes.is_empty() && !state.writer_closed {
            state = pipe.readable.wait_timeout(state, timeout).unwrap_or_else(|p| p.into_inner()).0;
        }
        match Pipe::take(&mut state, buf) {
            Some(count) => {
                pipe.taken(state);
                Ok(count)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes all of `buf`, waiting while the pipe is full.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        let pipe = &self.outgoing;
        while !buf.is_empty() {
            let mut state = lock(&pipe.state);
            match Pipe::put(&mut state, buf) {
                Some(written) => {
                    buf = &buf[written?..];
                    pipe.put_done(state);
                }
                None => drop(pipe.writable.wait(state).unwrap_or_else(|p| p.into_inner())),
            }
        }
        Ok(())
    }

    /// Reads what has arrived (`Ok(0)`: the end of the stream), or parks `cx`'s waker.
    pub fn poll_read(&self, cx: &Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let pipe = &self.incoming;
        let mut state = lock(&pipe.state);
        match Pipe::take(&mut state, buf) {
            Some(count) => {
                pipe.taken(state);
                Poll::Ready(Ok(count))
            }
            None => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Writes what fits of `buf`, or parks `cx`'s waker until there is room.
    pub fn poll_write(&self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let pipe = &self.outgoing;
        let mut state = lock(&pipe.state);
        match Pipe::put(&mut state, buf) {
            Some(written) => {
                pipe.put_done(state);
                Poll::Ready(written)
            }
            None => {
                state.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// See [`MemoryStream::closer`].
pub struct MemoryCloser(Arc<Pipe>);

impl MemoryCloser {
    /// The stream's reads see the end of the stream once what was sent is read.
    pub fn close(&self) {
        let mut state = lock(&self.0.state);
        state.writer_closed = true;
        self.0.put_done(state);
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        let mut incoming = lock(&self.incoming.state);
        incoming.reader_closed = true;
        incoming.bytes.clear();
        self.incoming.taken(incoming);
        let mut outgoing = lock(&self.outgoing.state);
        outgoing.writer_closed = true;
        self.outgoing.put_done(outgoing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_through_a_full_pipe_and_then_the_end_of_the_stream() {
        let network = MemoryNetwork::new();
        let listener = network.listen();
        let client = Mutex::new(Some(network.connect(listener.port()).unwrap()));
        let server = Mutex::new(listener.accept_timeout(Duration::from_secs(1)).unwrap());
        let sent: Vec<u8> = (0..3 * PIPE_BYTES + 17).map(|i| (i % 251) as u8).collect();
        let received = Mutex::new(Vec::new());
        crate::platform::run_team(2, |member| {
            if member.index == 0 {
                // Three pipes' worth: the writer waits until the reader drains it.
                let mut client = lock(&client).take().unwrap();
                client.write_all(&sent).unwrap();
            } else {
                let mut server = lock(&server).take().unwrap();
                let mut buf = [0u8; 1000];
                loop {
                    match server.read_timeout(&mut buf, Duration::from_millis(20)) {
                        Ok(0) => break,
                        Ok(count) => lock(&received).extend_from_slice(&buf[..count]),
                        Err(error) => assert_eq!(error.kind(), io::ErrorKind::WouldBlock),
                    }
                }
            }
        })
        .unwrap();
        assert!(received.into_inner().unwrap() == sent);
    }

    #[test]
    fn a_connect_to_a_closed_port_is_refused_with_the_port_named() {
        let network = MemoryNetwork::new();
        let port = network.listen().port();
        let error = network.connect(port).err().expect("refused");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(error.to_string(), format!("memory port {port}: nothing listens there"));
        assert_eq!(network.connect(99).err().expect("refused").kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn closing_one_end_ends_the_peers_reads_after_the_bytes_sent_and_breaks_its_writes() {
        let (mut a, mut b) = MemoryStream::pair();
        a.write_all(b"last words").unwrap();
        drop(a);
        let mut buf = [0u8; 64];
        let count = b.read_timeout(&mut buf, Duration::from_millis(10)).unwrap();
        assert_eq!(&buf[..count], b"last words");
        assert_eq!(b.read_timeout(&mut buf, Duration::from_millis(10)).unwrap(), 0);
        assert_eq!(b.write_all(b"anyone?").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_read_with_nothing_sent_times_out_as_would_block() {
        let (mut a, _b) = MemoryStream::pair();
        let error = a.read_timeout(&mut [0u8; 8], Duration::from_millis(5)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    }
}
