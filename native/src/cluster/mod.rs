//! `conlab cluster` and the cluster engine: the "beyond one machine" experiments' jobs run as
//! timely-dataflow processes.
//!
//! [`supervisor`] starts a cluster's processes on 127.0.0.1 (this executable, re-run as
//! `__cluster-process`) and talks to them over their standard input and output; with a
//! hostfile, [`hostfile`] makes this process one member of a cluster spread over machines.
//! [`member`] is a process's share of a cluster, [`dataflows`] the jobs as dataflows.

mod dataflows;
pub mod hostfile;
mod member;
mod mesh;
pub mod supervisor;

use std::path::Path;

use conlab_lab::experiments::cluster::{engine, EXPERIMENTS};

use crate::cli::RunArgs;

/// `conlab cluster ID …`: installs the engine — a local cluster, or this process's place in the
/// hostfile's — and runs the experiment with `run`.
pub fn command(
    hostfile: Option<&Path>,
    process: Option<usize>,
    mut args: RunArgs,
    run: fn(RunArgs) -> Result<(), String>,
) -> Result<(), String> {
    let ids: Vec<&str> = EXPERIMENTS.iter().map(|experiment| experiment.info().id).collect();
    let id = args.id.clone().unwrap_or_default();
    if args.all || !ids.contains(&id.as_str()) {
        return Err(format!("conlab cluster runs one of the cluster experiments: {}", ids.join(", ")));
    }
    match (hostfile, process) {
        (Some(path), Some(process)) => {
            let addresses = hostfile::read(path)?;
            if process >= addresses.len() {
                return Err(format!(
                    "--process {process}: the hostfile lists {} processes, so the index must be 0 to {}",
                    addresses.len(),
                    addresses.len() - 1
                ));
            }
            let processes = format!("processes={}", addresses.len());
            if args.set.iter().any(|set| set.starts_with("processes=") && *set != processes) {
                return Err(format!("--set processes: the hostfile decides it ({processes})"));
            }
            args.set.push(processes);
            engine::install(Box::leak(Box::new(hostfile::Hostfile { addresses, process, cells: Default::default() })));
        }
        _ => engine::install(&supervisor::Local),
    }
    run(args)
}
