//! Loopback TCP in a browser: there is none. A page cannot open or accept a TCP connection, so
//! binding or connecting says so, and the types that would hold a socket have no values (the
//! lab's servers run on `net::memory` there instead).

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

fn unavailable() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a browser page cannot open TCP sockets: the lab's servers use the in-memory transport there",
    )
}

pub enum TcpListener {}

impl TcpListener {
    pub fn bind_loopback() -> io::Result<Self> {
        Err(unavailable())
    }

    pub fn bind_loopback_group(_count: usize) -> io::Result<Vec<Self>> {
        Err(unavailable())
    }

    pub fn inherited() -> io::Result<Self> {
        Err(unavailable())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match *self {}
    }

    pub fn accept_timeout(&self, _timeout: Duration) -> io::Result<Option<TcpStream>> {
        match *self {}
    }

    pub fn into_async(self, _reactor: &Arc<Reactor>) -> io::Result<AsyncTcpListener> {
        match self {}
    }
}

pub enum TcpStream {}

impl TcpStream {
    pub fn connect(_address: SocketAddr) -> io::Result<Self> {
        Err(unavailable())
    }

    pub fn read_timeout(&mut self, _buf: &mut [u8], _timeout: Duration) -> io::Result<usize> {
        match *self {}
    }

    pub fn write_all(&mut self, _buf: &[u8]) -> io::Result<()> {
        match *self {}
    }

    pub fn closer(&self) -> io::Result<TcpCloser> {
        match *self {}
    }

    pub fn into_async(self, _reactor: &Arc<Reactor>) -> io::Result<AsyncTcpStream> {
        match self {}
    }
}

pub enum TcpCloser {}

impl TcpCloser {
    pub fn close(&self) {
        match *self {}
    }
}

pub enum Reactor {}

impl Reactor {
    pub fn new() -> io::Result<Arc<Self>> {
        Err(unavailable())
    }

    pub fn turn(&self, _timeout: Duration) {
        match *self {}
    }

    pub fn wake(&self) {
        match *self {}
    }
}

pub enum AsyncTcpListener {}

impl AsyncTcpListener {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match *self {}
    }

    pub fn poll_accept(&self, _cx: &Context<'_>) -> Poll<io::Result<AsyncTcpStream>> {
        match *self {}
    }
}

pub enum AsyncTcpStream {}

impl AsyncTcpStream {
    pub fn poll_read(&self, _cx: &Context<'_>, _buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match *self {}
    }

    pub fn poll_write(&self, _cx: &Context<'_>, _buf: &[u8]) -> Poll<io::Result<usize>> {
        match *self {}
    }
}
