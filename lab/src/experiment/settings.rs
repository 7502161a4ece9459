//! Settings as text — a permalink's query, a form's fields — checked by the runner's rules.
//!
//! A front end that holds settings as text (the page: its fields and links) never parses them;
//! it hands the text here, so it accepts exactly what the CLI accepts, in the same words:
//!
//! - [`request`] turns a form into a [`RunRequest`]; the first setting that does not fit is the
//!   error, as the CLI would give it ([`check`] asks the same without running).
//! - [`fill`] reads a link, a stored or an imported result for a form: each setting that fits
//!   comes back in its canonical form, each that does not is left out and named in
//!   [`Filled::problems`] (the form keeps its default there).
//! - [`query_of`] writes a result's settings as a link's query.
//!
//! A [`Query`] names the run's settings by [`RUN_KEYS`] and each parameter by its own name
//! (`?experiment=scaling&kernel=blur&threads=1,2`), the permalink format since the first page.

use std::collections::BTreeMap;

use serde::Serialize;

use super::params::{ParamError, ParamSpec, Value};
use super::runner::{self, check_range, range_error, validated_threads, validated_variants};
use super::{find, ExperimentInfo, RunError, RunRequest, RunResult, REPEAT_RANGE, WARMUP_RANGE};

/// A link's query or a form's fields: setting name → text.
pub type Query = BTreeMap<String, String>;

/// The query's names for the run's settings; every other name is a parameter's.
pub const RUN_KEYS: [&str; 7] = ["experiment", "variants", "threads", "repeat", "warmup", "trace", "profile"];

/// A query's settings that fit, canonical, for a form; the rest named in `problems`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Filled {
    /// `None` when the query names no experiment this lab has (nothing else is then checked).
    pub experiment: Option<&'static str>,
    pub params: BTreeMap<&'static str, Value>,
    pub variants: Option<Vec<&'static str>>,
    /// Thread counts as the field shows them: `1,2,4`.
    pub threads: Option<String>,
    pub repeat: Option<usize>,
    pub warmup: Option<usize>,
    pub trace: Option<bool>,
    /// Profile the run (the page's switch, the CLI's `--profile`).
    pub profile: Option<bool>,
    /// One sentence per setting that did not fit, in the CLI's words.
    pub problems: Vec<String>,
}

/// The form `query` describes, as a request; the first setting that does not fit is the error.
pub fn request(query: &Query) -> Result<RunRequest, RunError> {
    let experiment = query.get("experiment").ok_or_else(|| ParamError {
        param: "experiment".into(),
        message: "choose an experiment (`conlab list` shows them)".into(),
    })?;
    let defaults = RunRequest::default();
    Ok(RunRequest {
        experiment: experiment.clone(),
        params: param_texts(query).map(|(name, text)| (name.clone(), text.as_str().into())).collect(),
        variants: query.get("variants").map(|text| list(text).map(String::from).collect()),
        threads: query.get("threads").map(|text| thread_counts(text)).transpose()?,
        repeat: query.get("repeat").map_or(Ok(defaults.repeat), |text| count("repeat", text, REPEAT_RANGE))?,
        warmup: query.get("warmup").map_or(Ok(defaults.warmup), |text| count("warmup", text, WARMUP_RANGE))?,
        trace: query.get("trace").map(|text| flag("trace", text)).transpose()?.unwrap_or(defaults.trace),
        profile: query.get("profile").map(|text| flag("profile", text)).transpose()?.unwrap_or(defaults.profile),
    })
}

/// Whether the form `query` describes would run: the error [`runner::run`] would give, if any.
pub fn check(query: &Query) -> Result<(), RunError> {
    runner::check(&request(query)?)
}

/// `query` checked for a form whose thread counts may go up to `max_threads`.
pub fn fill(query: &Query, max_threads: usize) -> Filled {
    let mut filled = Filled::default();
    let experiment = match query.get("experiment").map(|id| find(id)) {
        Some(Ok(experiment)) => experiment,
        Some(Err(error)) => {
            filled.problems.push(error.to_string());
            return filled;
        }
        None => {
            filled.problems.push("the settings name no experiment".into());
            return filled;
        }
    };
    let info = experiment.info();
    filled.experiment = Some(info.id);
    let problems = &mut filled.problems;
    for (name, text) in param_texts(query) {
        if let Some((name, value)) = fits(problems, param(&info, name, text)) {
            filled.params.insert(name, value);
        }
    }
    filled.variants = query.get("variants").and_then(|text| {
        let names = list(text).map(String::from).collect();
        fits(problems, validated_variants(&info, Some(&names)))
    });
    filled.threads = query.get("threads").and_then(|text| {
        let counts = thread_counts(text).and_then(|counts| validated_threads(Some(&counts), max_threads));
        fits(problems, counts).map(|counts| joined(&counts))
    });
    filled.repeat = query.get("repeat").and_then(|text| fits(problems, count("repeat", text, REPEAT_RANGE)));
    filled.warmup = query.get("warmup").and_then(|text| fits(problems, count("warmup", text, WARMUP_RANGE)));
    filled.trace = query.get("trace").and_then(|text| fits(problems, flag("trace", text)));
    filled.profile = query.get("profile").and_then(|text| fits(problems, flag("profile", text)));
    filled
}

/// The value, or `None` with the problem noted.
fn fits<T>(problems: &mut Vec<String>, outcome: Result<T, ParamError>) -> Option<T> {
    outcome.map_err(|problem| problems.push(problem.to_string())).ok()
}

/// The settings `result` ran with, as a link's query in the order a reader expects: the
/// experiment, its parameters, then the run's settings (`trace` only when one was recorded).
pub fn query_of(result: &RunResult) -> Vec<(String, String)> {
    let mut query = vec![("experiment".to_string(), result.experiment.clone())];
    query.extend(result.params.iter().map(|(name, value)| (name.clone(), value.to_string())));
    query.push(("variants".into(), result.variants.join(",")));
    query.push(("threads".into(), joined(&result.threads)));
    query.push(("repeat".into(), result.repeat.to_string()));
    query.push(("warmup".into(), result.warmup.to_string()));
    if result.trace.is_some() {
        query.push(("trace".into(), "1".into()));
    }
    query
}

/// The quick preset's values, checked: what the page's "quick" button sets.
pub fn quick_values(info: &ExperimentInfo) -> BTreeMap<&'static str, Value> {
    info.quick_params()
        .iter()
        .map(|(name, raw)| {
            let text = raw.as_str().unwrap_or_default();
            param(info, name, text).unwrap_or_else(|error| panic!("{}: quick preset: {error}", info.id))
        })
        .collect()
}

fn param_texts(query: &Query) -> impl Iterator<Item = (&String, &String)> {
    query.iter().filter(|(name, _)| !RUN_KEYS.contains(&name.as_str()))
}

/// Parameter `name` of `info` set to `text`: its canonical name and value.
fn param(info: &ExperimentInfo, name: &str, text: &str) -> Result<(&'static str, Value), ParamError> {
    let spec =
        info.params.iter().find(|spec| spec.name == name).ok_or_else(|| ParamError::unknown(name, &info.params))?;
    Ok((spec.name, spec.parse(&text.into())?))
}

/// The comma-separated items of `text`, trimmed, empty ones dropped.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty())
}

fn thread_counts(text: &str) -> Result<Vec<usize>, ParamError> {
    list(text).map(|item| item.parse()).collect::<Result<_, _>>().map_err(|_| ParamError {
        param: "threads".into(),
        message: format!("expected counts such as 1,2,4, got `{text}`"),
    })
}

fn count(name: &str, text: &str, range: (usize, usize)) -> Result<usize, ParamError> {
    match text.trim().parse() {
        Ok(value) => check_range(name, value, range),
        Err(_) => Err(range_error(name, text, range)),
    }
}

/// A yes/no setting, spelled as a flag parameter may be (`true`, `1`, `yes`, `on`, …).
fn flag(name: &'static str, text: &str) -> Result<bool, ParamError> {
    match ParamSpec::flag(name, false, "").parse(&text.into())? {
        Value::Bool(value) => Ok(value),
        other => unreachable!("a flag parses to a bool, not {other:?}"),
    }
}

fn joined(counts: &[usize]) -> String {
    counts.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{registry, run, CancelFlag, Session};

    fn query(pairs: &[(&str, &str)]) -> Query {
        pairs.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect()
    }

    #[test]
    fn a_form_becomes_the_request_the_cli_would_make() {
        let form = query(&[
            ("experiment", "map-reduce"),
            ("words", " 2000 "),
            ("combiner", "yes"),
            ("variants", "seq, partitioned"),
            ("threads", "2,1"),
            ("repeat", "3"),
            ("warmup", "0"),
            ("trace", "on"),
        ]);
        let request = request(&form).unwrap();
        assert_eq!(request.variants, Some(vec!["seq".to_string(), "partitioned".to_string()]));
        assert_eq!((request.threads, request.repeat, request.warmup, request.trace), (Some(vec![2, 1]), 3, 0, true));
        // The parameters stay text: the runner parses them as it parses the CLI's --set.
        assert_eq!(request.params["combiner"], serde_json::json!("yes"));
        check(&form).unwrap();
    }

    #[test]
    fn a_form_that_does_not_fit_gets_the_clis_message() {
        let message = |pairs: &[(&str, &str)]| check(&query(pairs)).unwrap_err().to_string();
        assert_eq!(
            message(&[("experiment", "mandelbrot"), ("width", "99999")]),
            "parameter `width`: expected an integer from 16 to 4096, got `99999`"
        );
        assert_eq!(
            message(&[("experiment", "map-reduce"), ("combiner", "maybe")]),
            "parameter `combiner`: expected true or false, got `maybe`"
        );
        assert_eq!(
            message(&[("experiment", "mandelbrot"), ("repeat", "5000")]),
            "parameter `repeat`: expected an integer from 1 to 1000, got `5000`"
        );
        assert_eq!(
            message(&[("experiment", "mandelbrot"), ("threads", "1,x")]),
            "parameter `threads`: expected counts such as 1,2,4, got `1,x`"
        );
        assert_eq!(
            message(&[("experiment", "mandelbrot"), ("variants", "")]),
            "parameter `variant`: choose at least one variant"
        );
        assert!(message(&[("experiment", "nope")]).starts_with("unknown experiment `nope`"));
        assert!(message(&[]).starts_with("parameter `experiment`: choose an experiment"));
    }

    #[test]
    fn a_broken_link_keeps_what_fits_and_names_the_rest() {
        let link = query(&[
            ("experiment", "scaling"),
            ("kernel", "nope"),
            ("size", "-5"),
            ("seed", "7"),
            ("bogus", "1"),
            ("variants", "seq,rayon"),
            ("threads", "4,1,2,2"),
            ("repeat", "5000"),
            ("trace", "maybe"),
        ]);
        let filled = fill(&link, 2);
        assert_eq!(filled.experiment, Some("scaling"));
        assert_eq!(filled.params, BTreeMap::from([("seed", Value::Int(7))]));
        assert_eq!(filled.variants, Some(vec!["seq", "rayon"]));
        assert_eq!((filled.threads, filled.repeat, filled.warmup, filled.trace), (None, None, None, None));
        let named: Vec<_> = filled.problems.iter().map(|p| p.split('`').nth(1).unwrap()).collect();
        assert_eq!(named, ["bogus", "kernel", "size", "threads", "repeat", "trace"], "{:?}", filled.problems);
        assert_eq!(filled.problems[3], "parameter `threads`: expected an integer from 1 to 2, got `4`");
        assert_eq!(filled.problems[4], "parameter `repeat`: expected an integer from 1 to 1000, got `5000`");
    }

    #[test]
    fn a_link_fills_the_form_with_canonical_values() {
        let link = query(&[
            ("experiment", "map-reduce"),
            ("combiner", "yes"),
            ("skew", "0.5"),
            ("threads", " 2, 1,2"),
            ("warmup", "0"),
        ]);
        let filled = fill(&link, 8);
        assert_eq!(filled.problems, Vec::<String>::new());
        assert_eq!(filled.params, BTreeMap::from([("combiner", Value::Bool(true)), ("skew", Value::Float(0.5))]));
        assert_eq!((filled.threads.as_deref(), filled.warmup, filled.variants), (Some("1,2"), Some(0), None));
        let unknown = fill(&query(&[("experiment", "nope"), ("width", "1")]), 8);
        assert_eq!(unknown.experiment, None);
        assert!(unknown.problems[0].starts_with("unknown experiment `nope`"), "{:?}", unknown.problems);
    }

    #[test]
    fn a_results_link_opens_its_settings_again() {
        let form = query(&[
            ("experiment", "map-reduce"),
            ("words", "2000"),
            ("combiner", "true"),
            ("skew", "0.5"),
            ("variants", "seq,partitioned"),
            ("threads", "1,2"),
            ("repeat", "1"),
            ("warmup", "0"),
            ("trace", "1"),
        ]);
        let cancel = CancelFlag::new();
        let result = run(&request(&form).unwrap(), Session { progress: &mut |_| {}, cancel: &cancel }).unwrap();
        let link: Query = query_of(&result).into_iter().collect();
        assert_eq!(query_of(&result)[0], ("experiment".into(), "map-reduce".into()), "the experiment comes first");
        let filled = fill(&link, 2);
        assert_eq!(filled.problems, Vec::<String>::new());
        let params: BTreeMap<String, Value> = filled.params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(&params, &result.params);
        assert_eq!(
            (filled.variants, filled.threads.as_deref(), filled.repeat, filled.warmup, filled.trace),
            (Some(vec!["seq", "partitioned"]), Some("1,2"), Some(1), Some(0), Some(true))
        );
    }

    #[test]
    fn every_quick_preset_fits_and_no_parameter_takes_a_run_settings_name() {
        for experiment in registry() {
            let info = experiment.info();
            assert_eq!(quick_values(&info).len(), info.quick.len(), "{}", info.id);
            for spec in &info.params {
                assert!(!RUN_KEYS.contains(&spec.name), "{}: parameter `{}` shadows a run setting", info.id, spec.name);
            }
        }
    }
}
