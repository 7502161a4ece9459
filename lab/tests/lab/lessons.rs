//! Lessons as claims, registry-wide: every experiment states its lessons as claims, and at its
//! defaults every claim shows (or cannot be tested on this machine, and says why).

use conlab_lab::experiment::{registry, RunRequest, Verdict};
use serde_json::json;

use crate::alone;
use crate::common::{lessons_show, run_quietly};

#[test]
fn every_experiment_states_its_lessons_as_claims() {
    for experiment in registry() {
        let id = experiment.info().id;
        let claims = experiment.claims();
        assert!(!claims.is_empty(), "{id} states no claims");
        for claim in &claims {
            assert!(!claim.statement.is_empty() && !claim.statement.ends_with('.'), "{id}: {:?}", claim.statement);
        }
    }
}

/// Each experiment at its defaults: every claim shows in one of up to five runs
/// (or cannot be tested on this machine, and says why). A full suite read gil-cpu's
/// free-threaded scaling at 1.17–1.35× in three runs in a row while a neighbour held a core.
/// Every experiment runs before the test fails, so one failure lists them all.
#[test]
fn at_their_defaults_the_experiments_show_every_lesson() {
    let _alone = alone();
    let failures: Vec<String> = registry()
        .iter()
        .filter_map(|experiment| {
            let request = RunRequest { experiment: experiment.info().id.into(), ..RunRequest::default() };
            lessons_show(&request, 5).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An experiment under settings that make one of its claims testable.
struct Beyond {
    experiment: &'static str,
    settings: &'static [(&'static str, &'static str)],
    threads: Vec<usize>,
    /// The claim's index.
    claim: usize,
}

/// Lessons the defaults cannot test, each under the settings that make it testable.
#[test]
fn beyond_their_defaults_the_experiments_show_the_other_regimes() {
    let _alone = alone();
    let cores = conlab_core::platform::hardware_threads();
    let beyond = |experiment, settings, threads, claim| Beyond { experiment, settings, threads, claim };
    let cases = [
        beyond("lock-contention", &[("regime", "none"), ("duration_ms", "20")], vec![1, 2], 1),
        beyond("lock-contention", &[("regime", "extreme"), ("duration_ms", "20")], vec![2 * cores], 2),
        beyond("rwlock-mix", &[("reads", "100"), ("section_ns", "0"), ("operations", "200000")], vec![1, 2], 2),
        beyond("imbalance", &[("sizes", "increasing")], vec![1, 2], 2),
        beyond("deadlock-watchdog", &[("stagger_us", "0"), ("hold_us", "10")], vec![2], 3),
        beyond("lock-striping", &[("distribution", "zipf"), ("updates", "200000")], vec![1, 2], 2),
    ];
    for Beyond { experiment, settings, threads, claim } in cases {
        // Settings as a link or `--set` gives them: text, read by the experiment's own parser.
        let params = settings.iter().map(|(name, value)| (name.to_string(), json!(value))).collect();
        let request =
            RunRequest { experiment: experiment.into(), params, threads: Some(threads), ..RunRequest::default() };
        lessons_show(&request, 5).unwrap_or_else(|failure| panic!("{failure}"));
        let lesson = &run_quietly(&request).unwrap().lessons[claim];
        assert!(!matches!(lesson.verdict, Verdict::NotTestable { .. }), "{experiment}: {lesson:?}");
    }
}
