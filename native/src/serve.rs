//! `conlab serve`: a static file server for the built web lab.
//!
//! Wasm threads need `SharedArrayBuffer`, which browsers only grant to cross-origin isolated
//! pages: every response carries `Cross-Origin-Opener-Policy: same-origin` and
//! `Cross-Origin-Embedder-Policy: require-corp`. Binds 127.0.0.1 only.
//!
//! Each connection gets its own thread and one request (`Connection: close`). A browser opens
//! several connections at once for a page of modules, and may hold some idle; none can keep
//! another's request waiting. (tiny_http 0.12, used before, runs connections on a pool that
//! counts a thread as idle until it wakes, so a burst can queue a connection behind idle
//! keep-alive ones: the page's ten modules then did not load, now and then, for minutes.)

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The built lab [default: ./dist, else the workspace's dist/]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Open the lab in the default browser
    #[arg(long)]
    open: bool,
}

fn default_dir() -> PathBuf {
    let local = PathBuf::from("dist");
    if local.join("index.html").is_file() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist")
    }
}

pub fn serve(args: ServeArgs) -> Result<(), String> {
    let dir = args.dir.unwrap_or_else(default_dir);
    if !dir.join("index.html").is_file() {
        return Err(format!(
            "no built web lab in {} (index.html missing); build it with `cargo xtask lab`",
            dir.display()
        ));
    }
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let port = listener.local_addr().map(|addr| addr.port()).unwrap_or(args.port);
    let url = format!("http://127.0.0.1:{port}/");
    println!("serving {} at {url}  (Ctrl-C to stop)", dir.display());
    if args.open {
        open_browser(&url);
    }
    let dir = Arc::new(dir);
    for stream in listener.incoming().flatten() {
        let dir = Arc::clone(&dir);
        on_its_own_thread(move || {
            // A client that hangs up or sends garbage costs only its own connection.
            let _ = answer(&dir, stream);
        });
    }
    Ok(())
}

#[allow(
    clippy::disallowed_methods,
    reason = "a native-only tool, not lab code: the platform layer is for what also runs in browsers"
)]
fn on_its_own_thread(work: impl FnOnce() + Send + 'static) {
    std::thread::spawn(work);
}

/// Reads one request from `stream` and answers it; the connection then closes.
fn answer(dir: &Path, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST_BYTES));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers say nothing a static server needs; read up to the blank line that ends them.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && !header.trim().is_empty() {
        header.clear();
    }
    let mut words = request_line.split_whitespace();
    let reply = match (words.next(), words.next()) {
        (Some("GET" | "HEAD"), Some(target)) => respond(dir, target),
        (Some(_), Some(_)) => Reply::text(405, "Method Not Allowed", "this server only answers GET and HEAD\n"),
        _ => Reply::text(400, "Bad Request", "expected a request line such as GET / HTTP/1.1\n"),
    };
    reply.write_to(&stream, request_line.starts_with("HEAD "))
}

/// Longest wait for a request, and its largest size: an idle or endless client is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

struct Reply {
    status: u16,
    reason: &'static str,
    mime: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, reason: &'static str, text: &str) -> Self {
        Self { status, reason, mime: "text/plain; charset=utf-8", body: text.as_bytes().to_vec() }
    }

    fn write_to(&self, mut stream: &TcpStream, head_only: bool) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\n\
             Cross-Origin-Resource-Policy: same-origin\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
            self.status,
            self.reason,
            self.mime,
            self.body.len()
        );
        stream.write_all(head.as_bytes())?;
        if !head_only {
            stream.write_all(&self.body)?;
        }
        stream.flush()
    }
}

/// The file `target` names under `dir` (`/` is `index.html`); 404 for anything else, a path
/// that would leave `dir` included.
fn respond(dir: &Path, target: &str) -> Reply {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let relative = Path::new(path.trim_start_matches('/'));
    let file = if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        None
    } else if relative.as_os_str().is_empty() {
        Some(dir.join("index.html"))
    } else {
        Some(dir.join(relative))
    };
    match file.as_ref().and_then(|f| std::fs::read(f).ok().map(|bytes| (f, bytes))) {
        Some((file, body)) => Reply { status: 200, reason: "OK", mime: content_type(file), body },
        None => Reply::text(404, "Not Found", &format!("not found: {path}\n")),
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    if std::process::Command::new(opener).arg(url).spawn().is_err() {
        eprintln!("could not start {opener}; open {url} yourself");
    }
}
