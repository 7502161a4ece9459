//! `conlab serve`: a static file server for the built web lab.
//!
//! Wasm threads need `SharedArrayBuffer`, which browsers only grant to cross-origin isolated
//! pages: every response carries `Cross-Origin-Opener-Policy: same-origin` and
//! `Cross-Origin-Embedder-Policy: require-corp`. Binds 127.0.0.1 only.

use std::path::{Component, Path, PathBuf};

use tiny_http::{Header, Response, Server};

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
    let server =
        Server::http(("127.0.0.1", args.port)).map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let port = server.server_addr().to_ip().map(|addr| addr.port()).unwrap_or(args.port);
    let url = format!("http://127.0.0.1:{port}/");
    println!("serving {} at {url}  (Ctrl-C to stop)", dir.display());
    if args.open {
        open_browser(&url);
    }
    for request in server.incoming_requests() {
        let response = respond(&dir, request.url());
        let _ = request.respond(response);
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

fn respond(dir: &Path, url: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let relative = Path::new(path.trim_start_matches('/'));
    let file = if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        None
    } else if relative.as_os_str().is_empty() {
        Some(dir.join("index.html"))
    } else {
        Some(dir.join(relative))
    };
    let (status, body, mime) = match file.as_ref().and_then(|f| std::fs::read(f).ok().map(|bytes| (f, bytes))) {
        Some((file, bytes)) => (200, bytes, content_type(file)),
        None => (404, format!("not found: {path}\n").into_bytes(), "text/plain; charset=utf-8"),
    };
    Response::from_data(body)
        .with_status_code(status)
        .with_header(header("Content-Type", mime))
        .with_header(header("Cross-Origin-Opener-Policy", "same-origin"))
        .with_header(header("Cross-Origin-Embedder-Policy", "require-corp"))
        .with_header(header("Cross-Origin-Resource-Policy", "same-origin"))
        .with_header(header("Cache-Control", "no-cache"))
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
