//! Hostile input to the page's engine (proptest), natively: what a user imports, what
//! localStorage hands back after years or a crash, what a link or the step mode types in.
//! Every entry point answers with a value or an error in words; none panics (a panic in the
//! worker aborts the wasm instance and takes the lab's pool with it).

#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;

use conlab_lab::experiment::result::SCHEMA_VERSION;
use conlab_lab::experiment::{self, CancelFlag, RunRequest, Session};
use conlab_web::{debugger, messages};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A real result, traced and profiled so that its timeline and flame graph render too
/// (`conlab run --trace --profile --format json`).
fn good() -> &'static Value {
    static GOOD: OnceLock<Value> = OnceLock::new();
    GOOD.get_or_init(|| {
        let params = [("width", "32"), ("height", "16"), ("max_iter", "20")];
        let request = RunRequest {
            experiment: "mandelbrot".into(),
            params: params.iter().map(|(name, value)| (name.to_string(), json!(value))).collect(),
            threads: Some(vec![1, 2]),
            repeat: 2,
            warmup: 0,
            trace: true,
            profile: true,
            ..RunRequest::default()
        };
        let cancel = CancelFlag::new();
        let result = experiment::run(&request, Session { progress: &mut |_| {}, cancel: &cancel }).unwrap();
        serde_json::to_value(result).unwrap()
    })
}

/// Every place in `value`, as JSON pointers (`/cells/0/samples/1`).
fn pointers(value: &Value, at: String, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(key, child)| pointers(child, format!("{at}/{key}"), into)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, child)| pointers(child, format!("{at}/{i}"), into))
        }
        _ => {}
    }
    into.push(at);
}

fn all_pointers() -> Vec<String> {
    let mut all = Vec::new();
    pointers(good(), String::new(), &mut all);
    all.retain(|pointer| !pointer.is_empty());
    all
}

/// A value a damaged or hand-edited file could hold where another was.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            Value::Null,
            json!(true),
            json!(0),
            json!(-1),
            json!(0.0),
            json!(1e-300),
            json!(1e308),
            json!(-1e308),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(""),
            json!("x"),
            json!([]),
            json!({}),
            json!([0, 0]),
            json!(1_000_000_000),
        ]),
        any::<f64>().prop_filter("JSON numbers are finite", |x| x.is_finite()).prop_map(|x| json!(x)),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,8}".prop_map(Value::String),
    ]
}

/// One damage: a place replaced by `Some` value, or removed.
type Damage = (prop::sample::Index, Option<Value>);

fn damaged(damages: &[Damage]) -> String {
    let places = all_pointers();
    let mut value = good().clone();
    for (place, replacement) in damages {
        let pointer = place.get(&places);
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
        match (value.pointer_mut(parent), replacement) {
            (Some(Value::Object(map)), None) => {
                map.remove(key);
            }
            (Some(Value::Array(items)), None) => {
                if let Ok(i) = key.parse::<usize>() {
                    if i < items.len() {
                        items.remove(i);
                    }
                }
            }
            (Some(_), Some(replacement)) => {
                if let Some(slot) = value.pointer_mut(pointer) {
                    *slot = replacement.clone();
                }
            }
            _ => {}
        }
    }
    value.to_string()
}

/// What `render` and `imported` may refuse a file with: the two sentences the page shows.
fn refused_in_words(error: &str) -> bool {
    error.starts_with("not a conlab result") || error.starts_with("a conlab result of schema")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

    /// A stored or imported result with one to three places damaged (a field removed, a
    /// number made huge, negative or zero, a list emptied, a type swapped) renders, imports
    /// and compares — or is refused in words.
    #[test]
    fn a_damaged_result_renders_or_is_refused_in_words(
        damages in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(hostile_value())), 1..4),
        form_threads in 1usize..=16,
    ) {
        let json = damaged(&damages);
        let good = good().to_string();
        if let Err(error) = messages::render(&json, form_threads) {
            prop_assert!(refused_in_words(&error), "{error}");
        }
        if let Err(error) = messages::imported(&json, form_threads) {
            prop_assert!(refused_in_words(&error), "{error}");
        }
        let _ = messages::compare(&good, &json);
        let _ = messages::compare(&json, &good);
    }

    /// Any text at all where a result, a trace or a form's settings should be.
    #[test]
    fn any_text_is_refused_in_words(text in "\\PC{0,64}", from in any::<f64>(), to in any::<f64>()) {
        prop_assert!(messages::render(&text, 2).is_err_and(|error| refused_in_words(&error)));
        prop_assert!(messages::imported(&text, 2).is_err_and(|error| refused_in_words(&error)));
        let _ = messages::link(&text, 2);
        let _ = messages::form_problem(&text);
        let _ = messages::request(&text);
        let _ = messages::timeline(&text, from, to);
    }

    /// A trace's timeline window between any two numbers (NaN, infinities, reversed).
    #[test]
    fn any_timeline_window_draws_or_is_refused(from in any::<f64>(), to in any::<f64>()) {
        let trace = good()["trace"].to_string();
        if let Err(error) = messages::timeline(&trace, from, to) {
            prop_assert!(error.starts_with("a timeline window needs"), "{error}");
        }
    }

    /// The step mode's schedules: any letters (the scenario's threads, others, repeats) replay
    /// to a state or stop at the step that cannot run, in words.
    #[test]
    fn any_schedule_replays_or_names_its_bad_step(scenario in 0usize..64, schedule in "[A-F a-z0-9]{0,60}") {
        let all = conlab_core::sim::scenarios();
        let id = all[scenario % all.len()].id;
        if let Err(error) = debugger::state(id, &schedule) {
            prop_assert!(error.starts_with("schedule: step "), "{error}");
        }
    }

    /// Searches with any strategy name and settings: a finding or the parameter named.
    #[test]
    fn any_search_settings_search_or_name_the_parameter(
        scenario in 0usize..64,
        strategy in prop_oneof![prop::sample::select(vec!["pct", "random", "dfs", "round-robin"]).prop_map(String::from), "\\PC{0,6}"],
        seed in any::<u64>(),
        runs in prop_oneof![0usize..50, any::<usize>()],
        depth in prop_oneof![0usize..6, any::<usize>()],
        bound in prop_oneof![0usize..3, any::<usize>()],
    ) {
        let all = conlab_core::sim::scenarios();
        let id = all[scenario % all.len()].id;
        if let Err(error) = debugger::search(id, &strategy, seed, runs, depth, bound) {
            prop_assert!(error.starts_with("parameter `"), "{error}");
        }
    }
}

/// 100 MB where a result should be — a string, nesting past serde's depth limit, a huge
/// array — is refused in words, promptly, without holding more than the text itself.
#[test]
fn a_hundred_megabyte_file_is_refused_in_words() {
    const SIZE: usize = 100 << 20;
    let string = format!("\"{}\"", "a".repeat(SIZE));
    let nested = "[".repeat(SIZE);
    let numbers = format!("[{}0]", "0,".repeat(SIZE / 2));
    for (what, text) in [("a string", string), ("nesting", nested), ("an array", numbers)] {
        let started = conlab_core::platform::Instant::now();
        let error = messages::imported(&text, 2).unwrap_err();
        assert!(error.starts_with("not a conlab result"), "{what}: {error}");
        assert!(started.elapsed().as_secs() < 30, "{what} took {:?}", started.elapsed());
    }
}

/// A result from an older schema, and one from this schema missing what this lab needs.
#[test]
fn an_older_schema_is_named() {
    let mut old = good().clone();
    old["schema"] = json!(SCHEMA_VERSION - 1);
    assert_eq!(
        messages::render(&old.to_string(), 2).unwrap_err(),
        format!("a conlab result of schema {}, this lab reads schema {SCHEMA_VERSION}", SCHEMA_VERSION - 1)
    );
}
