//! `conlab`: the concurrency lab from the terminal.
//!
//! `list` and `describe` read the registry, `run` measures an experiment (progress bar on
//! stderr, the result on stdout or in a file), `serve` hosts the built web lab with the
//! cross-origin isolation headers its threads need; `calibrate-python` compares the Python
//! model with the real interpreter.

mod calibrate;
mod cli;
mod cluster;
mod explore;
mod resources;
mod serve;
mod step_loop;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Process pools re-execute this binary as their workers.
    if let Ok(exe) = std::env::current_exe() {
        conlab_core::platform::set_worker_executable(exe, vec!["__py-worker".into()]);
    }
    let args = cli::Cli::parse();
    match cli::execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
