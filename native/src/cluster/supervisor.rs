//! The local engine: a cluster of processes on 127.0.0.1, started and watched by this one.
//!
//! Each process is this executable re-run as `__cluster-process` with the job, its index and
//! every process's address (free ports, chosen here). It prints `conlab-cluster ready` once
//! timely has connected it to the others, reads `run` lines on its standard input, and answers
//! each with `conlab-cluster round JSON`; end of input stops it. Anything else it prints
//! (timely's connection retries, a panic) is kept as its last words, for the error message.
//!
//! Every wait has the run's deadline. A process that exits, or fails to answer in time, fails
//! the run with a message naming it and why; dropping the cluster closes every process's input,
//! waits briefly, and kills whatever is still running — nothing is left behind.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conlab_core::platform::Instant;
use conlab_lab::experiment::{RunContext, RunError};
use conlab_lab::experiments::cluster::engine::{Cluster, Engine, Job, Round, Shape};

use super::member::Member;

/// The hidden command a cluster process runs.
pub const PROCESS_COMMAND: &str = "__cluster-process";
const READY: &str = "conlab-cluster ready";
const ROUND: &str = "conlab-cluster round ";
/// How long a stopped cluster's processes get to exit before they are killed.
const GRACE: Duration = Duration::from_secs(2);
/// How often a wait looks at the cancel flag.
const POLL: Duration = Duration::from_millis(20);

/// Starts clusters on this machine.
pub struct Local;

impl Engine for Local {
    fn start(&self, job: &Job, shape: Shape, deadline: Duration) -> Result<Box<dyn Cluster>, RunError> {
        let addresses = free_addresses(shape.processes)?;
        let job_json = serde_json::to_string(job).map_err(|error| RunError::Failed(error.to_string()))?;
        let executable =
            std::env::current_exe().map_err(|error| failed("cannot find conlab's own executable", error))?;
        let (events, inbox) = mpsc::channel();
        let mut cluster = LocalCluster { processes: Vec::new(), inbox, deadline, addresses: addresses.clone() };
        for index in 0..shape.processes {
            let mut child = Command::new(&executable)
                .args([PROCESS_COMMAND, "--process", &index.to_string(), "--workers", &shape.workers.to_string()])
                .args(["--addresses", &addresses.join(","), "--job", &job_json])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|error| failed(&format!("could not start cluster process {index}"), error))?;
            let last_words = Arc::new(Mutex::new(VecDeque::new()));
            listen(index, child.stdout.take().expect("piped"), events.clone());
            keep_last_words(child.stderr.take().expect("piped"), last_words.clone());
            let input = child.stdin.take();
            cluster.processes.push(Process { child, input, last_words });
        }
        drop(events);
        cluster.await_all(None, |line| (line == READY).then_some(()), "to connect to the others")?;
        Ok(Box::new(cluster))
    }
}

/// One process of a local cluster.
struct Process {
    child: Child,
    input: Option<ChildStdin>,
    /// Its last lines of output besides the protocol's: why it failed, when it does.
    last_words: Arc<Mutex<VecDeque<String>>>,
}

/// What a process's output reader reports.
enum Event {
    Line(usize, String),
    Closed(usize),
}

struct LocalCluster {
    processes: Vec<Process>,
    inbox: Receiver<Event>,
    deadline: Duration,
    addresses: Vec<String>,
}

impl Cluster for LocalCluster {
    fn run(&mut self, context: &RunContext) -> Result<Round, RunError> {
        for (index, process) in self.processes.iter_mut().enumerate() {
            let sent = process.input.as_mut().map(|input| input.write_all(b"run\n").and_then(|()| input.flush()));
            if !matches!(sent, Some(Ok(()))) {
                return Err(self.died(index, "while being told to run"));
            }
        }
        let mut rounds =
            self.await_all(Some(context), |line| line.strip_prefix(ROUND).map(str::to_owned), "to finish the run")?;
        serde_json::from_str(&rounds.swap_remove(0))
            .map_err(|error| RunError::Failed(format!("process 0 reported a round conlab cannot read: {error}")))
    }
}

impl LocalCluster {
    /// Waits until every process has printed a line `accept` takes; their answers, by process.
    fn await_all<T>(
        &mut self,
        context: Option<&RunContext>,
        accept: impl Fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<Vec<T>, RunError> {
        let start = Instant::now();
        let mut answers: Vec<Option<T>> = (0..self.processes.len()).map(|_| None).collect();
        while answers.iter().any(Option::is_none) {
            if let Some(context) = context {
                context.check_cancel()?;
            }
            match self.inbox.recv_timeout(POLL) {
                Ok(Event::Line(index, line)) => match accept(&line) {
                    Some(answer) => answers[index] = Some(answer),
                    None => remember(&self.processes[index].last_words, line),
                },
                Ok(Event::Closed(index)) => return Err(self.died(index, what)),
                Err(RecvTimeoutError::Timeout) if start.elapsed() > self.deadline => {
                    let late: Vec<String> = answers
                        .iter()
                        .enumerate()
                        .filter(|(_, answer)| answer.is_none())
                        .map(|(index, _)| self.describe(index))
                        .collect();
                    return Err(RunError::Failed(format!(
                        "the cluster did not manage {what} within the deadline ({} s): no answer from {}",
                        self.deadline.as_secs(),
                        late.join("; ")
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Failed("every cluster process is gone".into()))
                }
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// The error for process `index`, which closed its output: how it ended and its last words.
    fn died(&mut self, index: usize, what: &str) -> RunError {
        let deadline = Instant::now();
        let status = loop {
            match self.processes[index].child.try_wait() {
                Ok(Some(status)) => break describe_status(status),
                Ok(None) if deadline.elapsed() < GRACE => conlab_core::platform::sleep(POLL),
                _ => break "stopped answering".to_string(),
            }
        };
        RunError::Failed(format!("cluster {} {status} while waiting for it {what}", self.describe(index)))
    }

    /// "process 1 of 2 (127.0.0.1:40123), last said: …".
    fn describe(&self, index: usize) -> String {
        let words =
            self.processes[index].last_words.lock().map(|words| words.iter().cloned().collect::<Vec<_>>().join(" | "));
        let words = words.unwrap_or_default();
        let said = if words.is_empty() { String::new() } else { format!(", last said: {words}") };
        format!("process {index} of {} ({}){said}", self.processes.len(), self.addresses[index])
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for process in &mut self.processes {
            process.input.take();
        }
        let start = Instant::now();
        for process in &mut self.processes {
            while matches!(process.child.try_wait(), Ok(None)) && start.elapsed() < GRACE {
                conlab_core::platform::sleep(POLL);
            }
            if matches!(process.child.try_wait(), Ok(None)) {
                let _ = process.child.kill();
            }
            let _ = process.child.wait();
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                9 => " (SIGKILL: killed)",
                15 => " (SIGTERM)",
                6 => " (SIGABRT)",
                11 => " (SIGSEGV)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "exited".to_string(),
    }
}

/// `count` addresses on 127.0.0.1 whose ports were free a moment ago.
fn free_addresses(count: usize) -> Result<Vec<String>, RunError> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| failed("could not find free ports on 127.0.0.1", error))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|error| failed("could not read a port", error))
}

fn failed(what: &str, error: impl std::fmt::Display) -> RunError {
    RunError::Failed(format!("{what}: {error}"))
}

/// Reads process `index`'s output into `events`; reports its end.
fn listen(index: usize, output: impl std::io::Read + Send + 'static, events: Sender<Event>) {
    let reader = move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if events.send(Event::Line(index, line)).is_err() {
                return;
            }
        }
        let _ = events.send(Event::Closed(index));
    };
    std::thread::Builder::new().name(format!("cluster-{index}-out")).spawn(reader).expect("a reader thread");
}

/// Keeps the last lines a process writes to its standard error.
fn keep_last_words(errors: impl std::io::Read + Send + 'static, last_words: Arc<Mutex<VecDeque<String>>>) {
    let reader =
        move || BufReader::new(errors).lines().map_while(Result::ok).for_each(|line| remember(&last_words, line));
    std::thread::Builder::new().name("cluster-err".into()).spawn(reader).expect("a reader thread");
}

fn remember(last_words: &Mutex<VecDeque<String>>, line: String) {
    if let Ok(mut words) = last_words.lock() {
        if words.len() == 3 {
            words.pop_front();
        }
        words.push_back(line);
    }
}

/// The arguments of a cluster process.
#[derive(clap::Args)]
pub struct ProcessArgs {
    #[arg(long)]
    process: usize,
    #[arg(long)]
    workers: usize,
    #[arg(long, value_delimiter = ',')]
    addresses: Vec<String>,
    #[arg(long)]
    job: String,
}

/// A cluster process: joins the cluster, then runs the job once per `run` line until its input ends.
pub fn serve_as_process(args: ProcessArgs) -> Result<(), String> {
    let job: Job = serde_json::from_str(&args.job).map_err(|error| format!("a cluster process's job: {error}"))?;
    let shape = Shape { processes: args.addresses.len().max(1), workers: args.workers };
    let member = Member::join(&job, shape, args.process, args.addresses)?;
    let mut output = std::io::stdout().lock();
    let say =
        |output: &mut std::io::StdoutLock<'_>, line: &str| writeln!(output, "{line}").and_then(|()| output.flush());
    say(&mut output, READY).map_err(|error| error.to_string())?;
    for line in std::io::stdin().lock().lines() {
        if line.map_err(|error| error.to_string())? != "run" {
            continue;
        }
        let round = member.run(None).map_err(|missed| missed.to_string())?;
        let json = serde_json::to_string(&round).map_err(|error| error.to_string())?;
        say(&mut output, &format!("{ROUND}{json}")).map_err(|error| error.to_string())?;
    }
    Ok(())
}
