//! The debugging lab's JSON: scenarios with their listings, the state after a schedule, and
//! searches — conlab-core's `sim` as the page's step mode shows it (native-testable).

use conlab_core::aio::steps;
use conlab_core::sim::{
    self, check_range, find_scenario, Budget, Listing, Run, Scenario, Snapshot, Strategy, RUNS_RANGE,
};
use conlab_lab::report::wait_for_svg;
use serde::Serialize;

/// A scenario and its program's listing, for the scenario picker and the thread columns.
#[derive(Serialize)]
struct ScenarioView<'a> {
    #[serde(flatten)]
    scenario: &'a Scenario,
    listing: Listing,
}

pub fn scenarios() -> Result<String, String> {
    let views: Vec<ScenarioView<'_>> = sim::scenarios()
        .iter()
        .map(|scenario| ScenarioView { scenario, listing: scenario.program().listing() })
        .collect();
    serde_json::to_string(&views).map_err(|e| e.to_string())
}

/// The event loop's step-mode scenarios (id, title, story, listing), for the loop stepper.
pub fn loop_scenarios() -> Result<String, String> {
    serde_json::to_string(steps::scenarios()).map_err(|e| e.to_string())
}

/// A loop scenario run to its end in step mode: every step with the loop's state after it.
pub fn loop_trace(scenario: &str) -> Result<String, String> {
    serde_json::to_string(&steps::find(scenario)?.trace()).map_err(|e| e.to_string())
}

/// Where a schedule leads: its steps, every thread's line and state, the shared state, and
/// the failure reached (in words, and the wait-for graph when it is a deadlock).
#[derive(Serialize)]
struct State {
    run: Run,
    snapshot: Snapshot,
    failure: Option<String>,
    wait_for_svg: Option<String>,
}

pub fn state(scenario: &str, schedule: &str) -> Result<String, String> {
    let scenario = find_scenario(scenario)?;
    let (run, snapshot) = sim::state_after(&scenario.program(), schedule)?;
    let failure = run.failure.as_ref().map(ToString::to_string);
    let wait_for_svg = run.failure.as_ref().and_then(wait_for_svg);
    serde_json::to_string(&State { run, snapshot, failure, wait_for_svg }).map_err(|e| e.to_string())
}

/// A search's outcome in the page's words.
#[derive(Serialize)]
struct Found {
    strategy: String,
    runs: usize,
    /// Every schedule within the bound ran to its end and passed.
    proves: bool,
    /// The failing schedule, for the page to replay step by step.
    schedule: Option<String>,
    summary: String,
}

pub fn search(
    scenario: &str,
    strategy: &str,
    seed: u64,
    runs: usize,
    depth: usize,
    bound: usize,
) -> Result<String, String> {
    let scenario = find_scenario(scenario)?;
    let runs = check_range("runs", runs, RUNS_RANGE)?;
    let strategy = Strategy::named(strategy, seed, depth, bound)?;
    let budget = Budget { runs, ..Budget::default() };
    let program = scenario.program();
    let outcome = sim::search(&program, strategy, &budget);
    let described = strategy.describe_for(&program);
    let mut summary = outcome.verdict(&described, budget.max_steps);
    if let Some(over) = sim::backoffs_over_seeds(&program, sim::SEEDS, &budget) {
        summary = format!("{summary} {}", over.describe());
    }
    let found = Found {
        strategy: described,
        runs: outcome.runs,
        proves: outcome.proves(),
        schedule: outcome.found.map(|run| run.schedule),
        summary,
    };
    serde_json::to_string(&found).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_stepper_gets_each_scenario_and_its_steps() {
        let all: serde_json::Value = serde_json::from_str(&loop_scenarios().unwrap()).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 6);
        assert_eq!(all[1]["id"], "gather-sleeps");
        let trace: serde_json::Value = serde_json::from_str(&loop_trace("gather-sleeps").unwrap()).unwrap();
        assert_eq!(trace["steps"][3]["timers"].as_array().unwrap().len(), 3);
        assert!(loop_trace("nope").unwrap_err().starts_with("unknown loop scenario `nope`"));
    }

    #[test]
    fn the_step_mode_sees_listings_states_and_searches() {
        let all: serde_json::Value = serde_json::from_str(&scenarios().unwrap()).unwrap();
        assert_eq!(all[0]["id"], "lost-update");
        assert_eq!(all[0]["listing"]["threads"][0]["lines"][0], "tmp = counter");
        let deadlocked: serde_json::Value = serde_json::from_str(&state("abba-deadlock", "AB").unwrap()).unwrap();
        assert_eq!(deadlocked["snapshot"]["locks"]["a"], "A");
        assert!(deadlocked["failure"].as_str().unwrap().starts_with("deadlock:"));
        assert!(deadlocked["wait_for_svg"].as_str().unwrap().contains("edge cycle"));
        assert_eq!(
            state("abba-deadlock", "ABA").unwrap_err(),
            "schedule: step 3 is `A`, but A cannot run there (blocked on b)"
        );
        let found: serde_json::Value =
            serde_json::from_str(&search("missed-wakeup", "pct", 1, 1000, 3, 2).unwrap()).unwrap();
        assert!(found["schedule"].as_str().is_some_and(|s| !s.is_empty()), "{found}");
        let proof: serde_json::Value =
            serde_json::from_str(&search("abba-deadlock-fixed", "dfs", 1, 1000, 3, 2).unwrap()).unwrap();
        assert_eq!((proof["proves"].as_bool(), proof["schedule"].as_str()), (Some(true), None));
        assert!(proof["summary"].as_str().unwrap().ends_with("correct within that bound"), "{proof}");
        assert_eq!(
            search("abba-deadlock", "bfs", 1, 10, 3, 2).unwrap_err(),
            "parameter `strategy`: expected one of pct, random, dfs, round-robin, got `bfs`"
        );
    }
}
