//! `conlab scenarios`, `conlab explore` and `conlab replay`: the debugging lab's deterministic
//! scheduler from the terminal.

use std::fmt::Write as _;

use clap::ValueEnum;
use conlab_core::sim::{
    backoffs_over_seeds, check_range, find_scenario, replay, scenarios, search, Budget, Run, Strategy, RUNS_RANGE,
    SEEDS,
};

#[derive(Clone, Copy, ValueEnum)]
pub enum StrategyName {
    /// Probabilistic concurrency testing: random priorities with `--depth` − 1 change points
    Pct,
    /// Uniformly random among the runnable threads
    Random,
    /// Every schedule with at most `--bound` preemptions, depth first
    Dfs,
    /// A switch at every step (one schedule)
    RoundRobin,
}

#[derive(clap::Args)]
pub struct ExploreArgs {
    /// The scenario (`conlab scenarios` lists them)
    scenario: String,
    #[arg(long, value_enum, default_value_t = StrategyName::Pct)]
    strategy: StrategyName,
    /// Seed of the random and PCT strategies: the same seed finds the same schedule
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs at most (schedules, for DFS)
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// PCT's bug depth d: the ordering constraints it aims to hit
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// DFS's preemption bound
    #[arg(long, default_value_t = 2)]
    bound: usize,
}

pub fn list_scenarios() -> String {
    let width = scenarios().iter().map(|s| s.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for scenario in scenarios() {
        let kind = if scenario.buggy { "bug" } else { "fix" };
        let _ = writeln!(out, "{:width$}  {kind}  {}", scenario.id, scenario.title);
    }
    out
}

pub fn explore(args: &ExploreArgs) -> Result<String, String> {
    let scenario = find_scenario(&args.scenario)?;
    check_range("runs", args.runs, RUNS_RANGE)?;
    let name = args.strategy.to_possible_value().expect("every strategy has a name");
    let strategy = Strategy::named(name.get_name(), args.seed, args.depth, args.bound)?;
    let program = scenario.program();
    let described = strategy.describe_for(&program);
    let budget = Budget { runs: args.runs, ..Budget::default() };
    let outcome = search(&program, strategy, &budget);
    let mut out = format!("{} — {}\n{}\n\n", scenario.id, scenario.title, scenario.story);
    let _ = writeln!(out, "{}", outcome.verdict(&described, budget.max_steps));
    if let Some(over) = backoffs_over_seeds(&program, SEEDS, &budget) {
        let _ = writeln!(out, "{}", over.describe());
    }
    if let Some(run) = &outcome.found {
        out.push_str(&describe_run(scenario.id, run));
    }
    Ok(out)
}

pub fn replay_schedule(scenario: &str, schedule: &str) -> Result<String, String> {
    let scenario = find_scenario(scenario)?;
    let run = replay(&scenario.program(), schedule)?;
    let mut out = format!("{} — {}\n", scenario.id, scenario.title);
    if run.failure.is_none() {
        out.push_str("no failure on this schedule\n");
    }
    out.push_str(&describe_run(scenario.id, &run));
    Ok(out)
}

/// The failure, the schedule with the command that replays it, and every step.
fn describe_run(id: &str, run: &Run) -> String {
    let mut out = String::new();
    if let Some(failure) = &run.failure {
        let _ = writeln!(out, "{failure}");
    }
    let _ = writeln!(out, "schedule: {}\nreplay:   conlab replay {id} {}\n", run.schedule, run.schedule);
    let width = run.steps.iter().map(|s| s.text.chars().count()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "step  thread  line  {:width$}  effect", "code");
    for (index, step) in run.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>4}  {:<6}  {:>4}  {:width$}  {}",
            index + 1,
            step.thread,
            step.line + 1,
            step.text,
            step.effect
        );
    }
    out
}
