//! Echo-server benchmark: our event loop on its mio reactor (`aio::net`) against a tokio
//! current-thread echo server, both on loopback TCP, driven by the same blocking client.
//!
//! Each sample starts the server on one thread and `C` client threads, each with one
//! connection doing `ROUND_TRIPS` round trips of a 64-byte message (send, read the echo back);
//! the time per request is the slowest client's time over all requests. The two servers
//! alternate in short pairs (the order flips each pair) so the machine's drift lands on both;
//! each pair gives a ratio (ours / tokio, < 1: ours is faster), shown as the median and range.
//!
//! `cargo bench -p conlab-core --bench echo` (or `cargo xtask bench`).

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::time::Duration;

    use conlab_core::aio::net::{Listener, Stream};
    use conlab_core::aio::{spawn, AioResult, EventLoop, RealClock};
    use conlab_core::net::{Address, Network};
    use conlab_core::platform::{run_team, Instant};
    use conlab_core::stats::Summary;
    use conlab_core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use conlab_core::sync::{lock, Arc, Mutex};
    use conlab_core::trace::Recorder;

    const PAIRS: usize = 15;
    const ROUND_TRIPS: usize = 3000;
    const MESSAGE: usize = 64;

    #[derive(Clone, Copy, PartialEq)]
    enum Server {
        Ours,
        Tokio,
    }

    /// What a sample's members share: the server's address once it listens, the clients that
    /// have finished, and the stop flag the last of them raises.
    #[derive(Default)]
    struct Rendezvous {
        address: Mutex<Option<SocketAddr>>,
        finished: AtomicUsize,
        stop: AtomicBool,
    }

    async fn echo_ours(stream: Stream) -> AioResult<()> {
        let mut buf = [0u8; 4096];
        loop {
            let count = stream.read(&mut buf).await?;
            if count == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..count]).await?;
        }
    }

    fn serve_ours(rendezvous: &Arc<Rendezvous>) {
        let shared = Arc::clone(rendezvous);
        let main = async move {
            let listener = Listener::bind(&Network::Tcp)?;
            let Address::Tcp(address) = listener.address() else { unreachable!("a TCP listener") };
            *lock(&shared.address) = Some(address);
            loop {
                let stream = listener.accept().await?;
                spawn(echo_ours(stream));
            }
        };
        let keep_going = || !rendezvous.stop.load(Ordering::Acquire);
        let _stopped: AioResult<()> =
            EventLoop::new(RealClock::new(), false).run(main, &Recorder::new(false), &keep_going);
    }

    fn serve_tokio(rendezvous: &Rendezvous) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().expect("tokio");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            *lock(&rendezvous.address) = Some(listener.local_addr().expect("an address"));
            while !rendezvous.stop.load(Ordering::Acquire) {
                let Ok(accepted) = tokio::time::timeout(Duration::from_millis(20), listener.accept()).await else {
                    continue;
                };
                let (mut stream, _) = accepted.expect("accept");
                stream.set_nodelay(true).expect("nodelay");
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(count) => {
                                if stream.write_all(&buf[..count]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
    }

    /// One client connection's round trips; its elapsed time.
    fn client(address: SocketAddr) -> Duration {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let message = [7u8; MESSAGE];
        let mut echo = [0u8; MESSAGE];
        let start = Instant::now();
        for _ in 0..ROUND_TRIPS {
            stream.write_all(&message).expect("send");
            stream.read_exact(&mut echo).expect("the echo");
        }
        assert_eq!(echo, message);
        start.elapsed()
    }

    /// ns per request with `clients` connections.
    fn sample(server: Server, clients: usize) -> f64 {
        let rendezvous = Arc::new(Rendezvous::default());
        let slowest = Mutex::new(Duration::ZERO);
        run_team(clients + 1, |member| {
            if member.index == 0 {
                match server {
                    Server::Ours => serve_ours(&rendezvous),
                    Server::Tokio => serve_tokio(&rendezvous),
                }
                return;
            }
            let address = loop {
                if let Some(address) = *lock(&rendezvous.address) {
                    break address;
                }
                std::hint::spin_loop();
            };
            let elapsed = client(address);
            let mut slowest = lock(&slowest);
            *slowest = (*slowest).max(elapsed);
            drop(slowest);
            if rendezvous.finished.fetch_add(1, Ordering::AcqRel) + 1 == clients {
                rendezvous.stop.store(true, Ordering::Release);
            }
        })
        .expect("the team runs");
        slowest.into_inner().expect("no client panicked").as_nanos() as f64 / (clients * ROUND_TRIPS) as f64
    }

    fn spread(values: &[f64]) -> (f64, f64, f64) {
        let summary = Summary::of(values).expect("measured values");
        (summary.median, summary.min, summary.max)
    }

    pub fn main() {
        println!("echo server: ns per request, {ROUND_TRIPS} round trips of {MESSAGE} B per connection, {PAIRS} alternating pairs");
        for clients in [1, 4] {
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            for pair in 0..PAIRS {
                let order = if pair % 2 == 0 { [Server::Ours, Server::Tokio] } else { [Server::Tokio, Server::Ours] };
                for server in order {
                    let ns = sample(server, clients);
                    if server == Server::Ours {
                        mine.push(ns)
                    } else {
                        theirs.push(ns)
                    }
                }
            }
            let ratios: Vec<f64> = mine.iter().zip(&theirs).map(|(a, b)| a / b).collect();
            let (ratio, low, high) = spread(&ratios);
            println!(
                "  {clients} connection{}: ours / tokio current_thread: {ratio:.2} [{low:.2} – {high:.2}]   (ours {:.0} ns, tokio {:.0} ns per request)",
                if clients == 1 { "" } else { "s" },
                spread(&mine).0,
                spread(&theirs).0
            );
        }
    }
}

fn main() {
    #[cfg(not(target_arch = "wasm32"))]
    native::main();
}
