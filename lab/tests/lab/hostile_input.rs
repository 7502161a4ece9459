//! Hostile input (proptest): every parser that takes settings as text from outside — a CLI
//! `--set`, a link's query, a form's fields, a thread list, a count — returns a value within
//! its parameter's range or an error naming the setting, whatever text it is given: huge
//! numbers (a thread count of 10^9, `repeat=1e12`), signs, NaN, lists, Unicode. Never a panic.
//! (Natively: proptest does not build for wasm32; the parsers are the same code there.)
#![cfg(not(target_arch = "wasm32"))]

use conlab_lab::experiment::params::parse_assignments;
use conlab_lab::experiment::settings::{self, Query, RUN_KEYS};
use conlab_lab::experiment::{registry, ExperimentInfo, ParamKind, ParamSpec, Value, REPEAT_RANGE, WARMUP_RANGE};
use proptest::prelude::*;

use crate::beside;

/// The largest thread count any run accepts (the runner's team limit).
const MAX_THREADS: usize = 10_000;

/// Every range's edges and their neighbours outside, as text: where an off-by-one would show.
fn edges() -> Vec<String> {
    let mut edges = Vec::new();
    for spec in registry().iter().flat_map(|e| e.info().params) {
        match spec.kind {
            ParamKind::Int { min, max } => {
                edges.extend([min.saturating_sub(1), min, max, max.saturating_add(1)].map(|n| n.to_string()))
            }
            ParamKind::Float { min, max } => {
                edges.extend([min - 1e-9, min, max, max + 1e-9 * max.abs().max(1.0)].map(|x| x.to_string()))
            }
            _ => {}
        }
    }
    edges.extend(["0", "1", "1000", "1001", "100", "101", "10000", "10001"].map(String::from));
    edges
}

/// Text a user, a link or a damaged file could put in a setting.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(edges()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        (0i64..5000).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "1e12",
            "1000000000",
            "99999999999999999999999",
            "-1",
            "-0",
            "0",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "",
            " ",
            ",",
            "1,,2",
            " 2 , 1 ",
            "0x10",
            "1_000",
            "true",
            "yes",
            "on",
            "maybe",
        ])
        .prop_map(String::from),
        "[0-9, -]{0,14}",
        "\\PC{0,12}",
    ]
}

/// An experiment's id, or a name the lab does not have.
fn experiment_id() -> impl Strategy<Value = String> {
    let ids: Vec<String> = registry().iter().map(|e| e.info().id.to_string()).collect();
    prop_oneof![9 => prop::sample::select(ids), 1 => "\\PC{0,10}"]
}

/// A setting's name: the run's, a parameter's of any experiment, or none at all.
fn setting_name() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = RUN_KEYS.iter().filter(|key| **key != "experiment").map(|k| k.to_string()).collect();
    names.extend(registry().iter().flat_map(|e| e.info().params).map(|spec| spec.name.to_string()));
    prop_oneof![9 => prop::sample::select(names), 1 => "\\PC{0,10}"]
}

/// A link's query or a form's fields: an experiment (usually) and a few settings.
fn query() -> impl Strategy<Value = Query> {
    (prop::option::weighted(0.95, experiment_id()), prop::collection::btree_map(setting_name(), hostile_text(), 0..6))
        .prop_map(|(experiment, mut query)| {
            query.remove("experiment");
            if let Some(id) = experiment {
                query.insert("experiment".into(), id);
            }
            query
        })
}

/// Whether `value` fits `spec`: the only values a parser may hand back.
fn fits(spec: &ParamSpec, value: &Value) -> bool {
    match (&spec.kind, value) {
        (ParamKind::Int { min, max }, Value::Int(v)) => (min..=max).contains(&v),
        (ParamKind::Float { min, max }, Value::Float(v)) => v.is_finite() && min <= v && v <= max,
        (ParamKind::Choice { choices, .. }, Value::Text(v)) => choices.contains(&v.as_str()),
        (ParamKind::Bool, Value::Bool(_)) => true,
        _ => false,
    }
}

fn info_of(id: &str) -> ExperimentInfo {
    registry().into_iter().find(|e| e.info().id == id).expect("a registered id").info()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every parameter of every experiment, given any text: a value in its range or an error
    /// that names it and says what it allows.
    #[test]
    fn a_parameter_takes_any_text_and_answers_in_range_or_names_itself(text in hostile_text()) {
        let _beside = beside();
        for spec in registry().iter().flat_map(|e| e.info().params) {
            match spec.parse(&text.as_str().into()) {
                Ok(value) => prop_assert!(fits(&spec, &value), "{}={text:?} gave {value:?}", spec.name),
                Err(error) => {
                    prop_assert_eq!(&error.param, spec.name);
                    prop_assert_eq!(error.message, format!("expected {}, got `{}`", spec.kind, text.trim()));
                }
            }
        }
    }

    /// `--set` assignments: each a trimmed, non-empty name with its value, or "expected name=value".
    #[test]
    fn set_assignments_split_or_say_what_they_expect(assignments in prop::collection::vec("\\PC{0,12}", 0..4)) {
        let _beside = beside();
        match parse_assignments(assignments.iter().map(String::as_str)) {
            Ok(raw) => prop_assert!(raw.keys().all(|name| !name.is_empty() && name.trim() == name)),
            Err(error) => prop_assert_eq!(error.message, "expected name=value"),
        }
    }

    /// A form or a link, checked as a run would check it: accepted within every range, or the
    /// first setting that does not fit, named.
    #[test]
    fn a_query_is_accepted_in_range_or_refused_naming_the_setting(query in query()) {
        let _beside = beside();
        match settings::request(&query).and_then(|request| {
            settings::check(&query).map(|()| request)
        }) {
            Ok(request) => {
                prop_assert!(request.threads.iter().flatten().all(|&t| (1..=MAX_THREADS).contains(&t)));
                prop_assert!((REPEAT_RANGE.0..=REPEAT_RANGE.1).contains(&request.repeat));
                prop_assert!((WARMUP_RANGE.0..=WARMUP_RANGE.1).contains(&request.warmup));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(
                    message.starts_with("parameter `") || message.starts_with("unknown experiment `"),
                    "{message}"
                );
            }
        }
    }

    /// A link filling a form: what fits comes back canonical and in range, the rest is named;
    /// a link with nothing wrong is one a run accepts.
    #[test]
    fn a_link_fills_what_fits_and_names_the_rest(query in query(), form_threads in 1usize..=16) {
        let _beside = beside();
        let filled = settings::fill(&query, form_threads);
        let Some(id) = filled.experiment else {
            prop_assert_eq!(filled.problems.len(), 1);
            return Ok(());
        };
        let info = info_of(id);
        for (name, value) in &filled.params {
            let spec = info.params.iter().find(|spec| spec.name == *name).expect("a declared parameter");
            prop_assert!(fits(spec, value), "{name}: {value:?}");
            let again = spec.parse(&value.to_string().as_str().into());
            prop_assert_eq!(again.as_ref(), Ok(value), "canonical");
        }
        if let Some(threads) = &filled.threads {
            let counts: Vec<usize> = threads.split(',').map(|t| t.parse().unwrap()).collect();
            prop_assert!(counts.iter().all(|&t| (1..=form_threads).contains(&t)), "{threads}");
        }
        let settings_given = query.len() - 1;
        let taken = filled.params.len()
            + [
                filled.variants.is_some(),
                filled.threads.is_some(),
                filled.repeat.is_some(),
                filled.warmup.is_some(),
                filled.trace.is_some(),
                filled.profile.is_some(),
            ]
                .iter()
                .filter(|&&taken| taken)
                .count();
        prop_assert_eq!(taken + filled.problems.len(), settings_given, "each setting taken or named: {:?}", filled);
        if filled.problems.is_empty() {
            prop_assert!(settings::check(&query).is_ok(), "{:?}", settings::check(&query));
        }
    }
}
