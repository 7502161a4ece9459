//! Loopback TCP, natively: blocking sockets for thread-based servers and clients, and
//! non-blocking ones driven by a readiness [`Reactor`] for the event loop.
//!
//! The reactor is [mio](https://docs.rs/mio)'s `Poll` (epoll on Linux, kqueue on the BSDs and
//! macOS), the layer under tokio, used edge-triggered as mio requires: a source's readiness is
//! remembered per direction until an operation returns `WouldBlock`, and only then does the
//! task park its waker and wait for the next edge. Readiness is set only by [`Reactor::turn`]
//! on the loop's thread and cleared only by operations on that thread, so "clear, then park"
//! cannot miss an edge. Other threads wake a waiting loop through a `mio::Waker` (an eventfd).
//!
//! Every socket is on 127.0.0.1 and has `TCP_NODELAY` set: a request/response protocol must not
//! wait 40 ms for Nagle's algorithm to fill a segment.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use std::sync::Arc;

use crate::sync::{lock, Mutex};

/// The token of the reactor's own waker.
const WAKE_TOKEN: mio::Token = mio::Token(usize::MAX);

/// A listening socket on 127.0.0.1 for blocking accepts.
pub struct TcpListener(std::net::TcpListener);

impl TcpListener {
    /// Listens on 127.0.0.1 at a port the system picks.
    pub fn bind_loopback() -> io::Result<Self> {
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map(Self)
    }

    /// `count` listening sockets on one fresh port of 127.0.0.1, each with `SO_REUSEPORT`: the
    /// kernel spreads new connections over them by a hash of each connection's addresses, so
    /// processes that accept on one each share the load without racing for one queue.
    pub fn bind_loopback_group(count: usize) -> io::Result<Vec<Self>> {
        let mut group: Vec<Self> = Vec::with_capacity(count);
        for _ in 0..count {
            let port = match group.first() {
                Some(first) => first.local_addr()?.port(),
                None => 0,
            };
            group.push(Self(reuse_port_listener(port)?));
        }
        Ok(group)
    }

    /// In a worker forked by [`super::WorkerProcess::fork_sharing`]: the listening socket it
    /// inherited (taken once; a second call is refused).
    pub fn inherited() -> io::Result<Self> {
        static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let fd = super::process::INHERITED_FD;
        let mut kind: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: asks for an int-sized option into `kind`, whose size `len` gives; the call
        // fails cleanly if the descriptor is not an open socket.
        let listening =
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&raw mut kind).cast(), &mut len) }
                == 0
                && kind != 0;
        if !listening || TAKEN.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "this process inherited no listening socket"));
        }
        // SAFETY: descriptor 3 is the listening socket `fork_sharing` placed there (checked just
        // above), and `TAKEN` makes this the one owner.
        Ok(Self(unsafe { std::net::TcpListener::from_raw_fd(fd) }))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The next connection, or `None` if none arrived within `timeout` (so an accepting thread
    /// can look at its stop flag between waits).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<Option<TcpStream>> {
        let mut poll = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `poll` is one valid, initialised pollfd that lives across the call, and the
        // count passed is 1.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        match ready {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => Ok(None),
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(None),
            _ => {
                let (stream, _) = self.0.accept()?;
                TcpStream::configure(stream).map(Some)
            }
        }
    }

    /// This listener, non-blocking, on `reactor`.
    pub fn into_async(self, reactor: &Arc<Reactor>) -> io::Result<AsyncTcpListener> {
        self.0.set_nonblocking(true)?;
        let mut inner = mio::net::TcpListener::from_std(self.0);
        let io = reactor.register(&mut inner)?;
        Ok(AsyncTcpListener { inner, io })
    }
}

/// A socket listening on 127.0.0.1:`port` (`0`: one the system picks) with `SO_REUSEPORT` set
/// before it binds, as the option requires.
fn reuse_port_listener(port: u16) -> io::Result<std::net::TcpListener> {
    let check = |result: libc::c_int| if result < 0 { Err(io::Error::last_os_error()) } else { Ok(result) };
    // SAFETY: `socket` takes no pointers; a descriptor it returns is owned at once below.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a fresh socket that nothing else owns; the listener closes it if a step fails.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    // SAFETY: an int-sized option from `on`, whose size is passed, on an open socket.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid `sockaddr_in` that lives across the call, with its size.
    check(unsafe {
        libc::bind(fd, (&raw const address).cast(), std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
    })?;
    // SAFETY: `listen` on a bound socket this function owns.
    check(unsafe { libc::listen(fd, 128) })?;
    Ok(listener)
}

/// A connected socket for blocking reads (with a timeout) and writes.
pub struct TcpStream(std::net::TcpStream);

impl TcpStream {
    /// Connects to `address` (127.0.0.1: refused at once when nothing listens there).
    pub fn connect(address: SocketAddr) -> io::Result<Self> {
        Self::configure(std::net::TcpStream::connect(address)?)
    }

    fn configure(stream: std::net::TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(false)?;
        Ok(Self(stream))
    }

    /// Reads what has arrived, waiting up to `timeout` for something: `Ok(0)` at the end of
    /// the stream, `ErrorKind::WouldBlock` when the time ran out.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.0.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.0.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::TimedOut => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        }
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    /// A handle that shuts the connection down from another thread: a read blocked on it
    /// returns the end of the stream at once.
    pub fn closer(&self) -> io::Result<TcpCloser> {
        self.0.try_clone().map(TcpCloser)
    }

    /// This stream, non-blocking, on `reactor`.
    pub fn into_async(self, reactor: &Arc<Reactor>) -> io::Result<AsyncTcpStream> {
        self.0.set_nonblocking(true)?;
        let mut inner = mio::net::TcpStream::from_std(self.0);
        let io = reactor.register(&mut inner)?;
        Ok(AsyncTcpStream { inner, io })
    }
}

/// See [`TcpStream::closer`].
pub struct TcpCloser(std::net::TcpStream);

impl TcpCloser {
    pub fn close(&self) {
        // Shutting down a socket the peer already closed fails harmlessly.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// The readiness reactor: a `mio::Poll`, the readiness of each registered socket, and a waker
/// for other threads.
pub struct Reactor {
    /// The poll and its event buffer: used by the loop's thread only (the lock is never
    /// contended; it makes the reactor `Sync` so that other threads may hold it to wake it).
    poll: Mutex<(mio::Poll, mio::Events)>,
    registry: mio::Registry,
    waker: mio::Waker,
    /// Each registered socket's readiness by token; a deregistered socket's slot is reused.
    sources: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    readiness: Vec<Option<Arc<Readiness>>>,
    free: Vec<usize>,
}

impl Reactor {
    pub fn new() -> io::Result<Arc<Self>> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        Ok(Arc::new(Self {
            poll: Mutex::new((poll, mio::Events::with_capacity(256))),
            registry,
            waker,
            sources: Mutex::default(),
        }))
    }

    /// Waits up to `timeout` for socket events or a [`Reactor::wake`], then wakes the tasks
    /// waiting on the sockets that became ready (on this, the loop's thread).
    pub fn turn(&self, timeout: Duration) {
        let mut ready = Vec::new();
        {
            let mut poll = lock(&self.poll);
            let (poll, events) = &mut *poll;
            match poll.poll(events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return,
                Err(error) => panic!("the reactor's poll failed: {error}"),
            }
            let sources = lock(&self.sources);
            for event in events.iter().filter(|event| event.token() != WAKE_TOKEN) {
                if let Some(Some(readiness)) = sources.readiness.get(event.token().0) {
                    let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                    let writable = event.is_writable() || event.is_write_closed() || event.is_error();
                    ready.extend(readiness.set(readable, writable));
                }
            }
        }
        // Woken outside the locks: a waker may run arbitrary code.
        for waker in ready {
            waker.wake();
        }
    }

    /// Makes a [`Reactor::turn`] in progress (or the next one) return at once.
    pub fn wake(&self) {
        // An eventfd write: it can only fail if the counter overflows, and then it is readable.
        let _ = self.waker.wake();
    }

    fn register(self: &Arc<Self>, source: &mut impl mio::event::Source) -> io::Result<Registration> {
        let readiness = Arc::new(Readiness::default());
        let token = {
            let mut sources = lock(&self.sources);
            let token = sources.free.pop().unwrap_or_else(|| {
                sources.readiness.push(None);
                sources.readiness.len() - 1
            });
            sources.readiness[token] = Some(Arc::clone(&readiness));
            token
        };
        let registered =
            self.registry.register(source, mio::Token(token), mio::Interest::READABLE | mio::Interest::WRITABLE);
        let registration = Registration { reactor: Arc::clone(self), token, readiness };
        registered.map(|()| registration)
    }
}

/// One direction's state: ready to try, or parked with the waiting task's waker.
#[derive(Default)]
struct Direction {
    /// No `WouldBlock` seen since the last edge (a fresh socket is tried at once).
    tried_out: bool,
    waiter: Option<Waker>,
}

/// A socket's readiness in both directions.
#[derive(Default)]
struct Readiness(Mutex<[Direction; 2]>);

const READ: usize = 0;
const WRITE: usize = 1;

impl Readiness {
    /// An edge: marks the directions ready and returns their parked wakers.
    fn set(&self, readable: bool, writable: bool) -> Vec<Waker> {
        let mut directions = lock(&self.0);
        let mut woken = Vec::new();
        for (index, edge) in [(READ, readable), (WRITE, writable)] {
            if edge {
                directions[index].tried_out = false;
                woken.extend(directions[index].waiter.take());
            }
        }
        woken
    }
}

/// A socket's place in the reactor; deregistered by its owner's `Drop`.
struct Registration {
    reactor: Arc<Reactor>,
    token: usize,
    readiness: Arc<Readiness>,
}

impl Registration {
    /// Runs `operation` until it does not return `WouldBlock`, or parks `cx`'s waker for the
    /// direction's next edge.
    fn poll_io<R>(
        &self,
        cx: &Context<'_>,
        direction: usize,
        mut operation: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            {
                let mut directions = lock(&self.readiness.0);
                let state = &mut directions[direction];
                if state.tried_out {
                    state.waiter = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            match operation() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    lock(&self.readiness.0)[direction].tried_out = true;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn deregister(&self, source: &mut impl mio::event::Source) {
        // Deregistering a socket we registered cannot fail in a way we could act on.
        let _ = self.reactor.registry.deregister(source);
        let mut sources = lock(&self.reactor.sources);
        sources.readiness[self.token] = None;
        sources.free.push(self.token);
    }
}

/// A non-blocking listening socket on the reactor.
pub struct AsyncTcpListener {
    inner: mio::net::TcpListener,
    io: Registration,
}

impl AsyncTcpListener {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts the next connection, registered on the same reactor.
    pub fn poll_accept(&self, cx: &Context<'_>) -> Poll<io::Result<AsyncTcpStream>> {
        self.io.poll_io(cx, READ, || self.inner.accept()).map(|accepted| {
            let (mut inner, _) = accepted?;
            inner.set_nodelay(true)?;
            let io = self.io.reactor.register(&mut inner)?;
            Ok(AsyncTcpStream { inner, io })
        })
    }
}

impl Drop for AsyncTcpListener {
    fn drop(&mut self) {
        self.io.deregister(&mut self.inner);
    }
}

/// A non-blocking connected socket on the reactor: one task may read while another writes
/// (each direction parks one waker).
pub struct AsyncTcpStream {
    inner: mio::net::TcpStream,
    io: Registration,
}

impl AsyncTcpStream {
    /// Reads what has arrived (`Ok(0)`: the end of the stream), or waits for more.
    pub fn poll_read(&self, cx: &Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, READ, || (&self.inner).read(buf))
    }

    /// Writes as much of `buf` as the socket takes now, or waits for room.
    pub fn poll_write(&self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, WRITE, || (&self.inner).write(buf))
    }
}

impl Drop for AsyncTcpStream {
    fn drop(&mut self) {
        self.io.deregister(&mut self.inner);
    }
}
