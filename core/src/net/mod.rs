//! Networking for the servers lab: one interface over two transports.
//!
//! - **Loopback TCP** (natively): real sockets on 127.0.0.1 — blocking ones for thread-based
//!   servers and clients, non-blocking ones on the event loop's mio reactor
//!   ([`crate::platform::socket`], [`crate::aio::net`]).
//! - **In-memory pipes** ([`memory`], everywhere; the only one in a browser, which has no
//!   sockets): bounded byte pipes between threads or workers with TCP's ordering, flow control,
//!   end-of-stream and refusal.
//!
//! A [`Network`] is where servers listen and clients connect; it says which [`Transport`] ran.
//! [`Listener`] and [`Stream`] are the blocking side (a thread per connection, a thread pool):
//! their waits time out every [`POLL`] so a thread can look at its stop flag, and never hang a
//! run. The event loop's side is [`crate::aio::net`], over the same network.

pub mod load;
pub mod memory;
pub mod proto;
pub mod server;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::platform::socket;
use memory::{MemoryCloser, MemoryListener, MemoryNetwork, MemoryStream};

/// std's `Arc`, whatever `crate::sync` holds: the servers take `self: &Arc<Self>`, which loom's
/// `Arc` cannot be. `net` is not loom-modelled; its parts are tested on real threads and sockets.
pub(crate) type Arc<T> = std::sync::Arc<T>;

/// Longest blocking wait before a thread looks at its stop flag again.
pub const POLL: Duration = Duration::from_millis(20);

/// Which transport carried the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Memory,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP sockets on 127.0.0.1",
            Self::Memory => "in-memory pipes (no sockets in a browser)",
        })
    }
}

/// Where servers listen and clients connect.
#[derive(Clone)]
pub enum Network {
    Tcp,
    Memory(Arc<MemoryNetwork>),
}

impl Network {
    /// Loopback TCP natively; in-memory pipes in a browser.
    pub fn for_platform() -> Self {
        if cfg!(target_arch = "wasm32") {
            Self::memory()
        } else {
            Self::Tcp
        }
    }

    /// A fresh in-memory network.
    pub fn memory() -> Self {
        Self::Memory(MemoryNetwork::new())
    }

    pub fn transport(&self) -> Transport {
        match self {
            Self::Tcp => Transport::Tcp,
            Self::Memory(_) => Transport::Memory,
        }
    }

    /// A listener at a fresh address.
    pub fn listen(&self) -> io::Result<Listener> {
        match self {
            Self::Tcp => socket::TcpListener::bind_loopback().map(Listener::Tcp),
            Self::Memory(network) => Ok(Listener::Memory(network.listen())),
        }
    }

    /// A blocking connection to `address`.
    pub fn connect(&self, address: &Address) -> io::Result<Stream> {
        match (self, address) {
            (Self::Tcp, Address::Tcp(address)) => socket::TcpStream::connect(*address).map(Stream::Tcp),
            (Self::Memory(network), Address::Memory(port)) => network.connect(*port).map(Stream::Memory),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{address} is not on this network"))),
        }
    }
}

/// A listener's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Memory(usize),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(address) => write!(f, "{address}"),
            Self::Memory(port) => write!(f, "memory port {port}"),
        }
    }
}

/// A blocking listener.
pub enum Listener {
    Tcp(socket::TcpListener),
    Memory(MemoryListener),
}

impl Listener {
    pub fn address(&self) -> io::Result<Address> {
        match self {
            Self::Tcp(listener) => listener.local_addr().map(Address::Tcp),
            Self::Memory(listener) => Ok(Address::Memory(listener.port())),
        }
    }

    /// The next connection, or `None` if none arrived within [`POLL`].
    pub fn accept(&self) -> io::Result<Option<Stream>> {
        match self {
            Self::Tcp(listener) => listener.accept_timeout(POLL).map(|stream| stream.map(Stream::Tcp)),
            Self::Memory(listener) => listener.accept_timeout(POLL).map(|stream| stream.map(Stream::Memory)),
        }
    }
}

/// A blocking connection.
pub enum Stream {
    Tcp(socket::TcpStream),
    Memory(MemoryStream),
}

impl Stream {
    /// Reads what has arrived (`Ok(0)`: the end of the stream), waiting up to [`POLL`]:
    /// `ErrorKind::WouldBlock` when nothing came.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_within(buf, POLL)
    }

    /// [`Stream::read`], waiting up to `timeout`.
    pub fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        match self {
            Self::Tcp(stream) => stream.read_timeout(buf, timeout),
            Self::Memory(stream) => stream.read_timeout(buf, timeout),
        }
    }

    /// A handle that ends this connection's blocked reads from another thread.
    pub fn closer(&self) -> io::Result<Closer> {
        match self {
            Self::Tcp(stream) => stream.closer().map(Closer::Tcp),
            Self::Memory(stream) => Ok(Closer::Memory(stream.closer())),
        }
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => stream.write_all(buf),
            Self::Memory(stream) => stream.write_all(buf),
        }
    }
}

/// Ends a connection's blocked reads from another thread (a server stopping).
pub enum Closer {
    Tcp(socket::TcpCloser),
    Memory(MemoryCloser),
}

impl Closer {
    pub fn close(&self) {
        match self {
            Self::Tcp(closer) => closer.close(),
            Self::Memory(closer) => closer.close(),
        }
    }
}
