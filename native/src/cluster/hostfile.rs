//! A cluster over several machines: a hostfile lists one `HOST:PORT` per process, and every
//! machine runs the same `conlab cluster` command with its own `--process` index.
//!
//! This process is then one member: each cell of the run joins a cluster of its own (timely
//! connects every pair of processes; process `i` listens on line `i`'s port plus the cell's
//! number, counted from 0, so the cells of a run use consecutive ports). Every process prepares
//! and runs the same cells in the same order, so they meet at each one.
//! A cell meant for one process runs on process 0 alone; one that needs a different number of
//! processes than the hostfile lists is skipped, saying so.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use conlab_core::platform::PlatformError;
use conlab_lab::experiment::{RunContext, RunError};
use conlab_lab::experiments::cluster::engine::{Cluster, Engine, Job, Round, Shape};

use super::member::{Member, Missed};

/// The processes' addresses, one per line; blank lines and `#` comments are skipped.
pub fn read(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the hostfile {}: {error}", path.display()))?;
    parse(&text).map_err(|error| format!("hostfile {}: {error}", path.display()))
}

fn parse(text: &str) -> Result<Vec<String>, String> {
    let mut addresses = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let wrong = |why: &str| format!("line {}: `{line}` is not HOST:PORT ({why})", number + 1);
        let (host, port) = line.rsplit_once(':').ok_or_else(|| wrong("no `:` before the port"))?;
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(wrong("the host is empty or has spaces"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => {}
            _ => return Err(wrong("the port must be a number from 1 to 65535")),
        }
        addresses.push(line.to_string());
    }
    if addresses.is_empty() {
        return Err("no HOST:PORT line: list one per process".into());
    }
    Ok(addresses)
}

/// This process's place in a cluster spread over machines.
pub struct Hostfile {
    pub addresses: Vec<String>,
    pub process: usize,
    /// Cells started so far: the next one's port offset.
    pub cells: std::sync::atomic::AtomicU16,
}

impl Hostfile {
    /// The addresses with every port moved up by `offset`.
    fn shifted(&self, offset: u16) -> Result<Vec<String>, RunError> {
        self.addresses
            .iter()
            .map(|address| {
                let (host, port) = address.rsplit_once(':').expect("parsed as HOST:PORT");
                let port = port.parse::<u16>().expect("parsed as a port").checked_add(offset).ok_or_else(|| {
                    RunError::Failed(format!("{address}: cell {offset} of the run would need a port above 65535"))
                })?;
                Ok(format!("{host}:{port}"))
            })
            .collect()
    }
}

impl Engine for Hostfile {
    fn start(&self, job: &Job, shape: Shape, deadline: Duration) -> Result<Box<dyn Cluster>, RunError> {
        let skip = |why: String| RunError::Platform(PlatformError::Unavailable(why));
        let cell = self.cells.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addresses = match shape.processes {
            1 if self.process == 0 => Vec::new(),
            1 => return Err(skip("a one-process cell runs on process 0 alone".into())),
            count if count == self.addresses.len() => self.shifted(cell)?,
            count => {
                return Err(skip(format!(
                    "this cell needs {count} processes; the hostfile lists {}",
                    self.addresses.len()
                )))
            }
        };
        let (joined, member) = mpsc::channel();
        let (job, process) = (job.clone(), self.process);
        let join = move || {
            let _ = joined.send(Member::join(&job, shape, process, addresses));
        };
        std::thread::Builder::new()
            .name("cluster-join".into())
            .spawn(join)
            .map_err(|error| RunError::Failed(error.to_string()))?;
        match member.recv_timeout(deadline) {
            Ok(Ok(member)) => Ok(Box::new(Remote { member, deadline, process })),
            Ok(Err(error)) => Err(RunError::Failed(format!("process {process} could not join the cluster: {error}"))),
            Err(_) => Err(RunError::Failed(format!(
                "process {process} could not connect to every process of the hostfile (cell {cell}: {}) within the \
                 deadline ({} s): is `conlab cluster` running with the same arguments on each, and are the ports open?",
                self.shifted(cell).map(|addresses| addresses.join(", ")).unwrap_or_default(),
                deadline.as_secs()
            ))),
        }
    }
}

struct Remote {
    member: Member,
    deadline: Duration,
    /// This process's index in the hostfile.
    process: usize,
}

impl Cluster for Remote {
    fn run(&mut self, context: &RunContext) -> Result<Round, RunError> {
        context.check_cancel()?;
        self.member.run(Some(self.deadline)).map_err(|missed| match missed {
            Missed::Deadline => RunError::Failed(format!(
                "a run did not finish within the deadline ({} s): another process stopped, or runs other cells",
                self.deadline.as_secs()
            )),
            Missed::Failed(why) => RunError::Failed(format!("process {}: {why}", self.process)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostfile_lists_addresses_and_a_bad_line_is_named() {
        assert_eq!(
            parse("# two machines\n10.0.0.1:2101\n\n10.0.0.2:2101 # the second\n").unwrap(),
            ["10.0.0.1:2101", "10.0.0.2:2101"]
        );
        assert_eq!(
            parse("a:1\nb:99999\n").unwrap_err(),
            "line 2: `b:99999` is not HOST:PORT (the port must be a number from 1 to 65535)"
        );
        assert_eq!(
            parse("a:1\nlocalhost\n").unwrap_err(),
            "line 2: `localhost` is not HOST:PORT (no `:` before the port)"
        );
        assert!(parse("# nothing\n").unwrap_err().starts_with("no HOST:PORT line"));
    }
}
