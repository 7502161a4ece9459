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
    let listener = TcpListener::bind(&addresses[process])?;
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
        let ports: Vec<String> =
            (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()).collect();
        let mut handles = Vec::new();
        for process in [2, 0, 1] {
            let addresses = ports.clone();
            handles.push((process, std::thread::Builder::new().spawn(move || connect(process, &addresses)).unwrap()));
            platform::sleep(Duration::from_millis(20));
        }
        for (process, handle) in handles {
            let streams = handle.join().unwrap().unwrap();
            let held: Vec<bool> = streams.iter().map(Option::is_some).collect();
            let expected: Vec<bool> = (0..3).map(|peer| peer != process).collect();
            assert_eq!(held, expected, "process {process}");
        }
    }
}
