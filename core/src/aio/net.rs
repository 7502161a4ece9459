//! asyncio's streams over the lab's networks: [`Listener`] (`asyncio.start_server`) and
//! [`Stream`] (`open_connection`'s reader and writer in one), on loopback TCP through the
//! loop's readiness reactor, or on in-memory pipes.
//!
//! `accept`, `read` and `write_all` are cancellation points like the module's other futures.
//! A socket registers with the loop's reactor, started with the loop's first socket; from then
//! on the idle loop waits in the reactor's `poll` — asyncio's `select()`. Pipes need no reactor:
//! the peer's write wakes the reading task from its own thread. While a task holds a socket or a
//! pipe the loop is not stalled when every task waits: a peer may still write.
//!
//! Connecting is done blocking: on 127.0.0.1 a connect completes or is refused within
//! microseconds, and a refused one is a `ConnectionRefusedError` naming the address.

use std::future::poll_fn;
use std::io;

use super::clock::Remote;
use super::executor::{cancel_point, loop_remote, waiting_on, Waiting};
use super::{AioError, AioResult};
use crate::net::memory::{MemoryListener, MemoryStream};
use crate::net::{Address, Network};
use crate::platform::socket::{AsyncTcpListener, AsyncTcpStream};

/// A live I/O source of the loop (keeps a loop whose tasks all wait from counting as stalled).
struct Source(std::sync::Arc<Remote>);

impl Source {
    fn open() -> Self {
        let remote = loop_remote();
        remote.open_io_source();
        Self(remote)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.0.close_io_source();
    }
}

/// What asyncio raises for an OS error: its exception class, then the message.
fn raised(error: io::Error) -> AioError {
    let class = match error.kind() {
        io::ErrorKind::ConnectionRefused => "ConnectionRefusedError",
        io::ErrorKind::ConnectionReset => "ConnectionResetError",
        io::ErrorKind::BrokenPipe => "BrokenPipeError",
        io::ErrorKind::Unsupported => "NotImplementedError",
        _ => "OSError",
    };
    AioError::Raised(format!("{class}: {}", crate::platform::describe_io_error(&error)))
}

enum ListenerKind {
    Tcp(AsyncTcpListener),
    Memory(MemoryListener),
}

/// A listening server socket on the loop.
pub struct Listener {
    kind: ListenerKind,
    address: Address,
    _source: Source,
}

impl Listener {
    /// Listens at a fresh address of `network`.
    pub fn bind(network: &Network) -> AioResult<Self> {
        Self::adopt(network.listen().map_err(raised)?)
    }

    /// Moves a listener bound beforehand (whose address its clients already know) onto the loop.
    pub fn adopt(listener: crate::net::Listener) -> AioResult<Self> {
        let source = Source::open();
        let address = listener.address().map_err(raised)?;
        let kind = match listener {
            crate::net::Listener::Tcp(listener) => {
                let reactor = source.0.reactor().map_err(raised)?;
                ListenerKind::Tcp(listener.into_async(&reactor).map_err(raised)?)
            }
            crate::net::Listener::Memory(listener) => ListenerKind::Memory(listener),
        };
        Ok(Self { kind, address, _source: source })
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// The next connection.
    pub async fn accept(&self) -> AioResult<Stream> {
        let kind = poll_fn(|cx| {
            cancel_point()?;
            let accepted = match &self.kind {
                ListenerKind::Tcp(listener) => listener.poll_accept(cx).map_ok(StreamKind::Tcp),
                ListenerKind::Memory(listener) => listener.poll_accept(cx).map_ok(StreamKind::Memory),
            };
            if accepted.is_pending() {
                waiting_on(Waiting::On("accept"));
            }
            accepted.map_err(raised)
        })
        .await?;
        Ok(Stream { kind, _source: Source::open() })
    }
}

enum StreamKind {
    Tcp(AsyncTcpStream),
    Memory(MemoryStream),
}

/// A connection on the loop: reads and writes are awaited. One task may read while another
/// writes (share it in an `Rc`); two concurrent readers, or writers, would steal each other's
/// wake-ups.
pub struct Stream {
    kind: StreamKind,
    _source: Source,
}

impl Stream {
    /// Connects to `address` on `network`.
    pub fn connect(network: &Network, address: &Address) -> AioResult<Self> {
        let source = Source::open();
        let kind = match network.connect(address).map_err(raised)? {
            crate::net::Stream::Tcp(stream) => {
                let reactor = source.0.reactor().map_err(raised)?;
                StreamKind::Tcp(stream.into_async(&reactor).map_err(raised)?)
            }
            crate::net::Stream::Memory(stream) => StreamKind::Memory(stream),
        };
        Ok(Self { kind, _source: source })
    }

    /// Reads what has arrived, at most `buf.len()` bytes; `Ok(0)` at the end of the stream.
    pub async fn read(&self, buf: &mut [u8]) -> AioResult<usize> {
        poll_fn(|cx| {
            cancel_point()?;
            let read = match &self.kind {
                StreamKind::Tcp(stream) => stream.poll_read(cx, buf),
                StreamKind::Memory(stream) => stream.poll_read(cx, buf),
            };
            if read.is_pending() {
                waiting_on(Waiting::On("read"));
            }
            read.map_err(raised)
        })
        .await
    }

    /// Writes all of `buf`, waiting while the peer's buffer is full (`writer.write` followed
    /// by `await writer.drain()`).
    pub async fn write_all(&self, mut buf: &[u8]) -> AioResult<()> {
        while !buf.is_empty() {
            let written = poll_fn(|cx| {
                cancel_point()?;
                let written = match &self.kind {
                    StreamKind::Tcp(stream) => stream.poll_write(cx, buf),
                    StreamKind::Memory(stream) => stream.poll_write(cx, buf),
                };
                if written.is_pending() {
                    waiting_on(Waiting::On("write"));
                }
                written.map_err(raised)
            })
            .await?;
            if written == 0 {
                return Err(raised(io::ErrorKind::WriteZero.into()));
            }
            buf = &buf[written..];
        }
        Ok(())
    }
}
