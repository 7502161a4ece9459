//! `conlab step-loop`: the event loop from the inside — every task step, due timer and clock
//! jump of a scenario, with the ready queue, the timer heap and every task's state.

use std::fmt::Write as _;

use conlab_core::aio::steps::{find, scenarios, LoopScenario, LoopStep};

#[derive(clap::Args)]
pub struct StepLoopArgs {
    /// The scenario (without one, the list)
    scenario: Option<String>,
    /// Show only the state after this step, with each task's line marked in the listing
    #[arg(long)]
    step: Option<usize>,
}

pub fn step_loop(args: &StepLoopArgs) -> Result<String, String> {
    let Some(id) = &args.scenario else { return Ok(list()) };
    let scenario = find(id)?;
    let trace = scenario.trace();
    let mut out = format!("{} — {}\n{}\n\n", scenario.id, scenario.title, scenario.story);
    if let Some(index) = args.step {
        let last = trace.steps.len();
        let step = trace
            .steps
            .get(index.wrapping_sub(1))
            .ok_or_else(|| format!("parameter `step`: expected an integer from 1 to {last}, got `{index}`"))?;
        out.push_str(&annotated_listing(scenario, step));
        out.push('\n');
        out.push_str(&describe_step(step));
        return Ok(out);
    }
    out.push_str(&numbered_listing(scenario));
    out.push('\n');
    for step in &trace.steps {
        out.push_str(&describe_step(step));
    }
    if !trace.generator_steps.is_empty() {
        out.push_str("\nThe books' generator scheduler on the same work (the deque is its ready queue):\n");
        for step in &trace.generator_steps {
            let _ = writeln!(out, "{:>4}  {}  — deque: {}", step.index, step.event, names(&step.ready));
        }
    }
    let _ = writeln!(out, "\n{}", trace.outcome);
    for finding in &trace.findings {
        let _ = writeln!(out, "finding: {finding}");
    }
    let _ = writeln!(out, "\nconlab step-loop {} --step N shows the state after step N.", scenario.id);
    Ok(out)
}

fn list() -> String {
    let width = scenarios().iter().map(|s| s.id.len()).max().unwrap_or(0);
    scenarios().iter().fold(String::new(), |mut out, scenario| {
        let _ = writeln!(out, "{:width$}  {}", scenario.id, scenario.title);
        out
    })
}

fn numbered_listing(scenario: &LoopScenario) -> String {
    scenario.listing.iter().enumerate().fold(String::new(), |mut out, (index, line)| {
        let _ = writeln!(out, "{:>4}  {line}", index + 1);
        out
    })
}

/// The listing with the tasks last at each line named beside it.
fn annotated_listing(scenario: &LoopScenario, step: &LoopStep) -> String {
    let width = scenario.listing.iter().map(|line| line.chars().count()).max().unwrap_or(0);
    scenario.listing.iter().enumerate().fold(String::new(), |mut out, (index, line)| {
        let here: Vec<&str> = step
            .tasks
            .iter()
            .filter(|task| task.line == Some(index as u32 + 1))
            .map(|task| task.name.as_str())
            .collect();
        let marker = if here.is_empty() { String::new() } else { format!("  ← {}", here.join(", ")) };
        let _ = writeln!(out, "{:>4}  {line:width$}{marker}", index + 1);
        out
    })
}

fn describe_step(step: &LoopStep) -> String {
    let timers: Vec<String> = step.timers.iter().map(|t| format!("{:.3} s {}", t.due, t.what)).collect();
    let tasks: Vec<String> = step
        .tasks
        .iter()
        .map(|t| match t.line {
            Some(line) => format!("{} {} (line {line})", t.name, t.state),
            None => format!("{} {}", t.name, t.state),
        })
        .collect();
    format!(
        "step {} · iteration {} · {:.3} s — {}\n      ready:  {}\n      timers: {}\n      tasks:  {}\n",
        step.index,
        step.iteration,
        step.time,
        step.event,
        names(&step.ready),
        if timers.is_empty() { "—".into() } else { timers.join(" · ") },
        tasks.join(" · ")
    )
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "—".into()
    } else {
        list.join(", ")
    }
}
