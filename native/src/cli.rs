//! The commands, over conlab-lab's registry and report renderers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use conlab_core::profile::{export, View};
use conlab_lab::experiment::params::parse_assignments;
use conlab_lab::experiment::{self, CancelFlag, ParamKind, Progress, RunRequest, RunResult, Session, Verdict};
use conlab_lab::report;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "conlab",
    version,
    about = "The concurrency lab: run concurrency experiments on real threads and see what happens"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the experiments
    List,
    /// Show an experiment's parameters, variants and what it teaches
    Describe { id: String },
    /// Run an experiment and print its measurements
    Run(Box<RunArgs>),
    /// Serve the built web lab (from `cargo xtask lab`) with COOP/COEP headers on 127.0.0.1
    Serve(crate::serve::ServeArgs),
    /// Run reference scripts with the python3 on PATH and compare CPython with conlab's model
    CalibratePython,
    /// List the debugging lab's scenarios (races, deadlocks, livelocks and their fixes)
    Scenarios,
    /// Search a scenario's interleavings for a failure; print the first failing schedule and its steps
    Explore(crate::explore::ExploreArgs),
    /// Run one schedule of a scenario (letters: A is the first thread), step by step
    Replay { scenario: String, schedule: String },
    /// Step through the event loop: a scenario's every task step with the ready queue, timers and task states
    StepLoop(crate::step_loop::StepLoopArgs),
    /// Run a "beyond one machine" experiment as timely-dataflow processes: on this machine (as
    /// `run` does), or as one process of a cluster spread over machines (--hostfile, --process)
    Cluster(Box<ClusterArgs>),
    /// A cluster process: one member of a local cluster (started by conlab itself)
    #[command(name = "__cluster-process", hide = true)]
    ClusterProcess(crate::cluster::supervisor::ProcessArgs),
    /// A process-pool worker: jobs on stdin, replies on stdout (started by conlab itself)
    #[command(name = "__py-worker", hide = true)]
    PyWorker,
    /// The fork server of process pools started with `forkserver` (started by conlab itself)
    #[command(name = "__fork-server", hide = true)]
    ForkServer,
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The experiment (`conlab list` names them)
    #[arg(required_unless_present = "all")]
    pub(crate) id: Option<String>,
    /// Run every experiment, one after another (with --quick, a tour of the lab); each
    /// prints its table (JSON: one result per line) and a failure does not stop the others
    #[arg(long, conflicts_with_all = [
        "id", "set", "variants", "out", "trace", "svg", "timeline", "depth", "latency", "curves", "profile", "flame",
        "collapsed", "speedscope",
    ])]
    pub(crate) all: bool,
    /// With --all: go round every experiment this many times, and after each round report on
    /// stderr the threads, open files, child processes and memory this process holds (a soak)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: Option<u32>,
    /// Thread counts to sweep, e.g. 1,2,4 [default: 1, 2, 4, … up to the hardware threads]
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// Variants to run, e.g. seq,rayon [default: all]
    #[arg(long = "variant", value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// Set a parameter, e.g. --set width=800 (repeatable)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(crate) set: Vec<String>,
    /// Start from the experiment's quick preset (small sizes: well under a second); --set
    /// still overrides
    #[arg(long)]
    quick: bool,
    /// Timed runs per cell (the default, 6, is the fewest whose median interval reaches 95%)
    #[arg(long, default_value_t = conlab_lab::experiment::DEFAULT_REPEAT)]
    repeat: usize,
    /// Untimed warm-up runs per cell
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the result here instead of stdout
    #[arg(long)]
    out: Option<PathBuf>,
    /// Record each cell's last run and write a Chrome trace (open it in Perfetto)
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write the speedup chart as SVG
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Record each cell's last run and draw every thread's timeline as SVG
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Record each cell's last run and draw its queue depth over time as SVG
    #[arg(long, value_name = "FILE")]
    depth: Option<PathBuf>,
    /// Draw the latencies the run measured (an item's wait, a lock wait…) by percentile, as SVG
    #[arg(long, value_name = "FILE")]
    latency: Option<PathBuf>,
    /// Draw the curves the run measured (latency against offered load, …) as SVG
    #[arg(long, value_name = "FILE")]
    curves: Option<PathBuf>,
    /// Profile the run: sample the span each worker was in (each cell's last run, traced, every
    /// 100 µs or finer), print the frames with the most time and write a flame graph (to --flame,
    /// or conlab-ID-flame.svg). VIEW: `wall` (waits drawn as frames) or `cpu` (running samples)
    #[arg(long, value_name = "VIEW", num_args = 0..=1, default_missing_value = "wall")]
    profile: Option<ProfileView>,
    /// Write the profile's flame graph here, as SVG (implies --profile)
    #[arg(long, value_name = "FILE")]
    flame: Option<PathBuf>,
    /// Write the profile as collapsed stacks, the text flamegraph.pl, inferno and speedscope read
    /// (implies --profile)
    #[arg(long, value_name = "FILE")]
    collapsed: Option<PathBuf>,
    /// Write the profile in speedscope's JSON file format (implies --profile)
    #[arg(long, value_name = "FILE")]
    speedscope: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The cluster's processes, one HOST:PORT per line (process i listens on line i's port);
    /// run the same command on every machine, each with its own --process
    #[arg(long, value_name = "FILE", requires = "process")]
    hostfile: Option<PathBuf>,
    /// This machine's process: its line in the hostfile, counted from 0
    #[arg(long, value_name = "INDEX", requires = "hostfile")]
    process: Option<usize>,
}

/// Which samples a profile's outputs keep.
#[derive(Clone, Copy, ValueEnum)]
enum ProfileView {
    /// Every sample; a waiting worker's stack ends in its wait
    Wall,
    /// Only the samples of running workers
    Cpu,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

pub fn execute(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::List => {
            print!("{}", list());
            Ok(())
        }
        Command::Describe { id } => {
            print!("{}", describe(&id)?);
            Ok(())
        }
        Command::Run(args) => {
            conlab_lab::experiments::cluster::engine::install(&crate::cluster::supervisor::Local);
            run(*args)
        }
        Command::Cluster(args) => crate::cluster::command(args.hostfile.as_deref(), args.process, args.run, run),
        Command::ClusterProcess(args) => crate::cluster::supervisor::serve_as_process(args),
        Command::Serve(args) => crate::serve::serve(args),
        Command::CalibratePython => crate::calibrate::calibrate_python(),
        Command::Scenarios => {
            print!("{}", crate::explore::list_scenarios());
            Ok(())
        }
        Command::Explore(args) => {
            print!("{}", crate::explore::explore(&args)?);
            Ok(())
        }
        Command::Replay { scenario, schedule } => {
            print!("{}", crate::explore::replay_schedule(&scenario, &schedule)?);
            Ok(())
        }
        Command::StepLoop(args) => {
            print!("{}", crate::step_loop::step_loop(&args)?);
            Ok(())
        }
        Command::PyWorker => conlab_core::platform::serve_as_worker(
            std::io::stdin().lock(),
            std::io::stdout().lock(),
            conlab_core::pymodel::process::answer,
        )
        .map_err(|error| format!("worker: {error}")),
        Command::ForkServer => conlab_core::platform::serve_as_fork_server(conlab_core::pymodel::process::answer)
            .map_err(|error| format!("fork server: {error}")),
    }
}

fn list() -> String {
    let infos: Vec<_> = experiment::registry().iter().map(|e| e.info()).collect();
    let width = infos.iter().map(|info| info.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for info in infos {
        let _ = writeln!(out, "{:width$}  {}  [{}]", info.id, info.title, info.topic);
    }
    out
}

fn describe(id: &str) -> Result<String, String> {
    let info = experiment::find(id).map_err(|e| e.to_string())?.info();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — {}\ntopic: {}   concept: {}\n\n{}\n",
        info.id,
        info.title,
        info.topic,
        info.concept,
        textwrap(info.teaches, 96)
    );
    let _ = writeln!(out, "parameters (--set NAME=VALUE):");
    let rows: Vec<[String; 4]> = info
        .params
        .iter()
        .map(|spec| {
            let range = match &spec.kind {
                ParamKind::Int { min, max } => format!("{min}..={max}"),
                ParamKind::Float { min, max } => format!("{min}..={max}"),
                ParamKind::Choice { details, .. } if !details.is_empty() => "see below".into(),
                ParamKind::Choice { choices, .. } => choices.join("|"),
                ParamKind::Bool => "true|false".into(),
            };
            let default =
                if spec.unit.is_empty() { spec.default.to_string() } else { format!("{} {}", spec.default, spec.unit) };
            [spec.name.to_string(), format!("default {default}"), format!("range {range}"), spec.help.to_string()]
        })
        .collect();
    let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
    let (name_width, default_width, range_width) = (width(0), width(1), width(2));
    for [name, default, range, help] in &rows {
        let _ = writeln!(out, "  {name:<name_width$}  {default:<default_width$}  {range:<range_width$}  {help}");
    }
    for spec in &info.params {
        if let ParamKind::Choice { choices, details } = &spec.kind {
            if !details.is_empty() {
                let _ = writeln!(out, "\n{} is one of:", spec.name);
                let width = choices.iter().map(|c| c.chars().count()).max().unwrap_or(0);
                for (choice, detail) in choices.iter().zip(details) {
                    let _ = writeln!(out, "  {choice:<width$}  {detail}");
                }
            }
        }
    }
    let _ = writeln!(out, "\nvariants (--variant a,b):");
    for variant in &info.variants {
        let sweep = if variant.sweeps_threads { "sweeps --threads" } else { "fixed threads" };
        let baseline = if variant.id == info.baseline { ", baseline" } else { "" };
        let _ = writeln!(out, "  {:<16} {} ({sweep}{baseline})", variant.id, variant.help);
    }
    let _ = writeln!(out, "\nquick preset (--quick): {}", info.quick.join(" "));
    let threads: Vec<String> = experiment::default_threads().iter().map(|t| t.to_string()).collect();
    let _ = writeln!(out, "\ndefault --threads here: {}", threads.join(","));
    Ok(out)
}

fn textwrap(text: &str, width: usize) -> String {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("starts with one line");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join("\n")
}

pub(crate) fn run(args: RunArgs) -> Result<(), String> {
    if args.all {
        return run_all(&args, args.rounds.unwrap_or(1));
    }
    if args.rounds.is_some() {
        return Err("--rounds: goes round every experiment; add --all".into());
    }
    let id = args.id.clone().expect("clap requires an id without --all");
    let outputs = Outputs {
        out: args.out.clone(),
        trace: args.trace.clone(),
        svg: args.svg.clone(),
        timeline: args.timeline.clone(),
        depth: args.depth.clone(),
        latency: args.latency.clone(),
        curves: args.curves.clone(),
        profile: profile_outputs(&args, &id),
    };
    // Before the work, not after it: a run of minutes must not end in "cannot write".
    outputs.check_writable()?;
    let recorded =
        outputs.trace.is_some() || outputs.timeline.is_some() || outputs.depth.is_some() || outputs.profile.is_some();
    let mut request = request(&args, &id, recorded)?;
    request.profile = outputs.profile.is_some();
    let result = measure(&request)?;
    write_outputs(&args.format, &outputs, &result)?;
    if result.all_checks_passed {
        Ok(())
    } else {
        Err("a correctness check failed: a parallel variant's output differs from the sequential one".into())
    }
}

/// Where a profile goes, if `args` ask for one: any profile file implies `--profile`, and a
/// profile with no file named draws its flame graph in `conlab-ID-flame.svg`.
fn profile_outputs(args: &RunArgs, id: &str) -> Option<ProfileOutputs> {
    let asked = args.profile.is_some() || args.flame.is_some() || args.collapsed.is_some() || args.speedscope.is_some();
    if !asked {
        return None;
    }
    let named = args.flame.is_some() || args.collapsed.is_some() || args.speedscope.is_some();
    Some(ProfileOutputs {
        view: match args.profile.unwrap_or(ProfileView::Wall) {
            ProfileView::Wall => View::Wall,
            ProfileView::Cpu => View::OnCpu,
        },
        flame: args.flame.clone().or_else(|| (!named).then(|| PathBuf::from(format!("conlab-{id}-flame.svg")))),
        collapsed: args.collapsed.clone(),
        speedscope: args.speedscope.clone(),
    })
}

/// The run `args` ask of experiment `id` (its quick preset under the `--set` values).
fn request(args: &RunArgs, id: &str, trace: bool) -> Result<RunRequest, String> {
    let mut params = parse_assignments(args.set.iter().map(String::as_str)).map_err(|e| e.to_string())?;
    if args.quick {
        let preset = experiment::find(id).map_err(|e| e.to_string())?.info().quick_params();
        for (name, value) in preset {
            params.entry(name).or_insert(value);
        }
    }
    Ok(RunRequest {
        experiment: id.to_string(),
        params,
        variants: args.variants.clone(),
        threads: args.threads.clone(),
        repeat: args.repeat,
        warmup: args.warmup,
        trace,
        profile: false,
    })
}

/// Runs `request` under a progress bar on stderr.
fn measure(request: &RunRequest) -> Result<RunResult, String> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {msg:32} [{bar:30}] {pos}/{len} runs · {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut on_progress = |progress: &Progress| {
        bar.set_length(progress.total as u64);
        bar.set_position(progress.done as u64);
        if !progress.variant.is_empty() {
            let phase = if progress.warmup { " (warm-up)" } else { "" };
            bar.set_message(format!("{} · {} thread(s){phase}", progress.variant, progress.threads));
        }
    };
    let cancel = CancelFlag::new();
    let result = experiment::run(request, Session { progress: &mut on_progress, cancel: &cancel });
    bar.finish_and_clear();
    result.map_err(|e| e.to_string())
}

/// `--all`: every experiment `--rounds` times; what failed is named at the end, and after
/// each round what the process holds goes to stderr.
fn run_all(args: &RunArgs, rounds: u32) -> Result<(), String> {
    if matches!(args.format, Format::Csv) {
        return Err("--format csv: each experiment has columns of its own; with --all use table or json".into());
    }
    let experiments = experiment::registry();
    let mut failed = Vec::new();
    let mut tally = Tally::default();
    for round in 1..=rounds {
        let started = conlab_core::platform::Instant::now();
        for (index, experiment) in experiments.iter().enumerate() {
            let id = experiment.info().id;
            let outcome = request(args, id, false).and_then(|request| measure(&request));
            match (&args.format, &outcome) {
                (Format::Json, Ok(result)) => println!("{}", serde_json::to_string(result).map_err(|e| e.to_string())?),
                (_, Ok(result)) => {
                    println!("── {id} ({}/{}) ──\n{}", index + 1, experiments.len(), report::table(result))
                }
                (_, Err(error)) => eprintln!("{id}: error: {error}"),
            }
            match outcome {
                Ok(result) if result.all_checks_passed => tally.add(&result),
                Ok(_) => failed.push(format!("{id} (a correctness check failed)")),
                Err(error) => failed.push(format!("{id} ({error})")),
            }
        }
        let held = crate::resources::held()
            .map_or_else(|| "what it holds is read from /proc: not on this OS".into(), |held| held.to_string());
        eprintln!(
            "round {round}/{rounds}: {} experiments in {:.1} s · {held}",
            experiments.len(),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!("{tally}");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {} runs failed: {}", failed.len(), experiments.len() * rounds as usize, failed.join(", ")))
    }
}

/// The runs `--all` made that passed their checks, and their lessons by verdict.
#[derive(Default)]
struct Tally {
    runs: usize,
    shown: usize,
    not_shown: usize,
    not_testable: usize,
}

impl Tally {
    fn add(&mut self, result: &RunResult) {
        self.runs += 1;
        for lesson in &result.lessons {
            match lesson.verdict {
                Verdict::Shown { .. } => self.shown += 1,
                Verdict::NotShown { .. } => self.not_shown += 1,
                Verdict::NotTestable { .. } => self.not_testable += 1,
            }
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs passed their checks; their lessons: {} shown, {} not shown, {} not testable here",
            self.runs, self.shown, self.not_shown, self.not_testable
        )
    }
}

/// Files a run writes besides stdout.
struct Outputs {
    out: Option<PathBuf>,
    trace: Option<PathBuf>,
    svg: Option<PathBuf>,
    timeline: Option<PathBuf>,
    depth: Option<PathBuf>,
    latency: Option<PathBuf>,
    curves: Option<PathBuf>,
    profile: Option<ProfileOutputs>,
}

/// The files of a profile, and which samples they keep.
struct ProfileOutputs {
    view: View,
    flame: Option<PathBuf>,
    collapsed: Option<PathBuf>,
    speedscope: Option<PathBuf>,
}

impl Outputs {
    /// Each file named, with the option that names it.
    fn named(&self) -> impl Iterator<Item = (&'static str, &PathBuf)> {
        [
            ("--out", &self.out),
            ("--trace", &self.trace),
            ("--svg", &self.svg),
            ("--timeline", &self.timeline),
            ("--depth", &self.depth),
            ("--latency", &self.latency),
            ("--curves", &self.curves),
            ("--flame", self.profile.as_ref().map_or(&None, |p| &p.flame)),
            ("--collapsed", self.profile.as_ref().map_or(&None, |p| &p.collapsed)),
            ("--speedscope", self.profile.as_ref().map_or(&None, |p| &p.speedscope)),
        ]
        .into_iter()
        .filter_map(|(option, path)| Some((option, path.as_ref()?)))
    }

    /// Every file can be created or overwritten: opened for writing, and a file made only to
    /// find that out removed again.
    fn check_writable(&self) -> Result<(), String> {
        for (option, path) in self.named() {
            let existed = path.exists();
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| format!("{option}: cannot write {}: {e}", path.display()))?;
            if !existed {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }
}

/// Writes one chart to `path`, several as `path`, `path.2.svg`, …; none is the error `none`.
fn write_charts(path: &Path, charts: &[String], none: impl FnOnce() -> String) -> Result<(), String> {
    let write = |path: &Path, contents: &str| {
        std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    match charts {
        [] => Err(none()),
        [first, rest @ ..] => {
            write(path, first)?;
            for (index, chart) in rest.iter().enumerate() {
                write(&path.with_extension(format!("{}.svg", index + 2)), chart)?;
            }
            Ok(())
        }
    }
}

fn write_outputs(format: &Format, outputs: &Outputs, result: &RunResult) -> Result<(), String> {
    let text = match format {
        Format::Table => report::table(result),
        Format::Json => serde_json::to_string_pretty(result).map_err(|e| e.to_string())? + "\n",
        Format::Csv => report::csv(result),
    };
    let write = |path: &PathBuf, contents: &str| {
        std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    match &outputs.out {
        // Checked before the run, a write can still fail (a full disk): the result then goes
        // to stdout, never nowhere.
        Some(path) => write(path, &text).map_err(|error| {
            print!("{text}");
            format!("{error}; the result went to stdout instead")
        })?,
        None => print!("{text}"),
    }
    if let (Some(path), Some(recorded)) = (&outputs.trace, &result.trace) {
        write(path, &recorded.to_chrome_json().to_string())?;
    }
    if let Some(path) = &outputs.svg {
        write(path, &report::chart_svg(result))?;
    }
    if let (Some(path), Some(recorded)) = (&outputs.timeline, &result.trace) {
        write(path, &report::timeline_svg(recorded))?;
    }
    if let (Some(path), Some(recorded)) = (&outputs.depth, &result.trace) {
        let chart = report::depth_svg(recorded)
            .ok_or_else(|| format!("--depth: `{}` left no queue-depth marks to draw", result.experiment))?;
        write(path, &chart)?;
    }
    if let Some(path) = &outputs.latency {
        write_charts(path, &report::latency_svgs(result), || {
            format!("--latency: `{}` measures no latency distribution to draw", result.experiment)
        })?;
    }
    if let Some(path) = &outputs.curves {
        write_charts(path, &report::curve_svgs(result), || {
            format!("--curves: `{}` measures no curve to draw", result.experiment)
        })?;
    }
    if let Some(files) = &outputs.profile {
        write_profile(format, files, result)?;
    }
    Ok(())
}

/// The run's profile: its lines (under the table, or on stderr beside JSON and CSV) and files.
fn write_profile(format: &Format, files: &ProfileOutputs, result: &RunResult) -> Result<(), String> {
    let (profile, source) = report::profile_of(result);
    let lines = report::profile_lines(&profile, source).join("\n");
    match format {
        Format::Table => println!("{lines}"),
        _ => eprintln!("{lines}"),
    }
    if profile.samples(files.view) == 0 {
        let view = if files.view == View::Wall { "" } else { " on a CPU" };
        return Err(format!("--profile: `{}` recorded no span{view} to sample", result.experiment));
    }
    let write = |path: &PathBuf, contents: &str| {
        std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let view = match files.view {
        View::Wall => "wall-clock",
        View::OnCpu => "on-CPU",
    };
    let title = format!("{} — {view} profile of {source}", result.experiment);
    if let Some(path) = &files.flame {
        write(path, &export::flame_svg(&profile, files.view, &title))?;
        eprintln!("flame graph: {}", path.display());
    }
    if let Some(path) = &files.collapsed {
        write(path, &export::collapsed(&profile, files.view))?;
    }
    if let Some(path) = &files.speedscope {
        write(path, &export::speedscope(&profile, files.view, &title).to_string())?;
    }
    Ok(())
}
