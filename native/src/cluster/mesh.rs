//! The connections between a cluster's processes, made before timely starts its workers.
//!
//! timely's own `create_sockets` (timely-communication 0.28) polls its listener without
//! blocking and sleeps a whole second whenever no peer has connected yet — and a peer that
//! starts a few milliseconds later has not. Every start of a local cluster took that second:
//! `--quick` runs of the four cluster experiments took 16.2 s; they take 0.16 s now. Here a
//! process binds its own address, connects to every process listed before it (retrying while
//! that one is not listening yet: 2 ms, doubling up to 0.5 s between tries, for processes on
//! other machines started by hand) and then accepts every process listed after it, blocking in
//! `accept`. A connection to a bound listener waits in its backlog until it is accepted, so
//! doing the two in that order cannot deadlock. The handshake is timely's: the connecting
//! process sends its index as a big-endian `u64`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use conlab_core::platform;

/// The first pause before trying a peer that is not listening yet, and the longest one.
const FIRST_RETRY: Duration = Duration::from_millis(2);
const LAST_RETRY: Duration = Duration::from_millis(500);

/// One stream to every other process of `addresses`, by index, `None` at `process` itself (as
/// timely's `initialize_networking_from_sockets` takes them).
pub fn connect(process: usize, addresses: &[String]) -> io::Result<Vec<Option<TcpStream>>> {
    // Two processes on one address would wait for each other for ever (one connects to itself).
    for (index, address) in addresses.iter().enumerate() {
        if let Some(twin) = addresses[index + 1..].iter().position(|other| other == address) {
            let message = format!("processes {index} and {} are both given {address}", index + 1 + twin);
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
    }
    connect_from(TcpListener::bind(&addresses[process])?, process, addresses)
}

/// [`connect`], with this process's listener already bound to its address.
fn connect_from(listener: TcpListener, process: usize, addresses: &[String]) -> io::Result<Vec<Option<TcpStream>>> {
    let mut streams: Vec<Option<TcpStream>> = Vec::with_capacity(addresses.len());
    for address in &addresses[..process] {
        let mut stream = connect_when_listening(address)?;
        stream.set_nodelay(true)?;
        stream.write_all(&(process as u64).to_be_bytes())?;
        streams.push(Some(stream));
    }
    streams.push(None);
    streams.resize_with(addresses.len(), || None);
    for _ in process + 1..addresses.len() {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut index = [0; 8];
        stream.read_exact(&mut index)?;
        let peer = usize::try_from(u64::from_be_bytes(index)).unwrap_or(usize::MAX);
        let slot = streams
            .get_mut(peer)
            .filter(|_| peer > process)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("a peer said it was process {peer}")))?;
        if slot.replace(stream).is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("process {peer} connected twice")));
        }
    }
    Ok(streams)
}

/// A stream to `address`, retrying while nothing listens there yet.
fn connect_when_listening(address: &str) -> io::Result<TcpStream> {
    let mut pause = FIRST_RETRY;
    loop {
        match TcpStream::connect(address) {
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                platform::sleep(pause);
                pause = (pause * 2).min(LAST_RETRY);
            }
            connected => return connected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_processes_started_in_any_order_each_hold_a_stream_to_the_other_two() {
        // Bound here and handed over: a port picked, released and bound again can be taken in
        // between (a child another test forks inherits the listener until it execs).
        let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
        let (done, finished) = std::sync::mpsc::channel();
        let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
        for process in [2, 0, 1] {
            let (listener, addresses, done) = (listeners[process].take().unwrap(), ports.clone(), done.clone());
            let connect =
                move || done.send((process, connect_from(listener, process, &addresses).map_err(|e| e.to_string())));
            std::thread::Builder::new().spawn(connect).unwrap();
            platform::sleep(Duration::from_millis(20));
        }
        for _ in 0..3 {
            let (process, streams) = finished.recv_timeout(Duration::from_secs(20)).expect("all three connect");
            let held: Vec<bool> = streams.unwrap().iter().map(Option::is_some).collect();
            let expected: Vec<bool> = (0..3).map(|peer| peer != process).collect();
            assert_eq!(held, expected, "process {process}");
        }
    }

    #[test]
    fn two_processes_on_one_address_are_refused_at_once() {
        let addresses = ["127.0.0.1:1".to_string(), "127.0.0.1:2".into(), "127.0.0.1:1".into()];
        let error = connect(1, &addresses).unwrap_err();
        assert_eq!(error.to_string(), "processes 0 and 2 are both given 127.0.0.1:1");
    }
}
