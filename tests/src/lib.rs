//! Helpers shared by the end-to-end suites in `tests/tests/end_to_end/`: the workspace's paths, the
//! `conlab` binary (built on first use), and child processes that are killed when dropped.
#![allow(
    clippy::disallowed_methods,
    reason = "tooling, native only: the lab's platform rules are for the code that also runs in browsers"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub mod browser;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

/// How many rounds a soak runs: `CONLAB_SOAK_ROUNDS` (`cargo xtask soak` sets it), else
/// `default` (the short form `cargo xtask test` runs).
pub fn soak_rounds(default: usize) -> usize {
    std::env::var("CONLAB_SOAK_ROUNDS").ok().and_then(|rounds| rounds.parse().ok()).unwrap_or(default)
}

/// The `conlab` binary (debug), built once per test process through the cargo running us.
pub fn conlab() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_conlab(false))
}

/// The `conlab` binary optimised, for measurements.
pub fn conlab_release() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_conlab(true))
}

fn build_conlab(release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--package", "conlab"]).current_dir(root());
    if release {
        command.arg("--release");
    }
    assert!(command.status().expect("cargo runs").success(), "building conlab failed");
    root().join(if release { "target/release/conlab" } else { "target/debug/conlab" })
}

/// A child process killed (and reaped) on drop, so a failing test leaves nothing behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `conlab serve --port 0 --dir <dir>` and returns it with the URL it announced.
pub fn serve(dir: &Path) -> (Guard, String) {
    let mut child = Command::new(conlab())
        .args(["serve", "--port", "0", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("conlab serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("conlab serve prints its URL");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    (Guard(child), url)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Ports for a hostfile of `processes` lines on 127.0.0.1 whose runs have `cells` cells (cell k
/// listens on each line's port + k), every one free a moment ago and below Linux's ephemeral
/// range (32768 and up). A port from `bind(0)` is in that range, where the earlier cells' own
/// connections take their source ports: a run saw process 0's cell-1 port taken that way.
pub fn hostfile_ports(processes: usize, cells: u16) -> Vec<u16> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut state = u64::from(std::process::id()) ^ now.as_nanos() as u64;
    let span = cells * processes as u16;
    loop {
        let base = 20_000 + (conlab_core::kernels::splitmix64(&mut state) % 12_000) as u16;
        let held: Vec<_> =
            (base..base + span).map_while(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok()).collect();
        if held.len() == usize::from(span) {
            return (0..processes as u16).map(|process| base + process * cells).collect();
        }
    }
}
