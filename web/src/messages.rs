//! The JSON the worker hands the page, built from conlab-lab's types (native-testable).

use conlab_core::profile::{export, View};
use conlab_core::trace::Trace;
use conlab_lab::experiment::result::SCHEMA_VERSION;
#[cfg(test)]
use conlab_lab::experiment::DEFAULT_REPEAT;
use std::collections::BTreeMap;

use conlab_lab::experiment::settings::{self, Filled, Query};
use conlab_lab::experiment::{self, ExperimentInfo, RunRequest, RunResult, Verdict};
use conlab_lab::experiments::cluster;
use conlab_lab::report;
use serde::Serialize;

/// The catalogue: every experiment's schema and the default thread sweep of this platform with
/// a pool of `pool_threads` (the one being started, so the page's forms need not wait for it).
#[derive(Serialize)]
pub struct Catalogue {
    pub experiments: Vec<Entry>,
    pub default_threads: Vec<usize>,
    /// Timed runs per cell unless asked otherwise (the CLI's `--repeat` default).
    pub default_repeat: usize,
    /// The allowed `repeat` and `warmup`, inclusive: the runner's, for the page's fields' bounds.
    pub repeat_range: (usize, usize),
    pub warmup_range: (usize, usize),
}

/// An experiment's schema and its quick preset's values, checked (what the "quick" button sets).
#[derive(Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub info: ExperimentInfo,
    pub quick_values: BTreeMap<&'static str, experiment::Value>,
}

pub fn catalogue(pool_threads: usize) -> Catalogue {
    let entry = |info: ExperimentInfo| Entry { quick_values: settings::quick_values(&info), info };
    Catalogue {
        experiments: experiment::registry().iter().map(|e| entry(e.info())).collect(),
        default_threads: experiment::default_threads_up_to(pool_threads),
        default_repeat: experiment::DEFAULT_REPEAT,
        repeat_range: experiment::REPEAT_RANGE,
        warmup_range: experiment::WARMUP_RANGE,
    }
}

/// A finished run as the page shows it: the result plus its rendered chart and CSV.
#[derive(Serialize)]
pub struct Finished<'a> {
    pub result: &'a RunResult,
    /// One sentence: the title, the fastest cell, how the cells were timed.
    pub summary: String,
    /// The experiment's lessons as this run checked them, one line each (as under the CLI's table).
    pub lessons: Vec<LessonLine>,
    /// The same table the CLI prints, for the page to render.
    pub table: report::Table,
    pub chart_svg: String,
    /// The fitted serial fractions, one sentence each (as under the CLI's table).
    pub fits: Vec<String>,
    /// The table's footnotes (noise, what the intervals cover, batched cells), as the CLI's.
    pub notes: Vec<String>,
    /// What the runs reported in words (a misuse caught), one line per finding, by cell.
    pub findings: Vec<String>,
    pub csv: String,
    pub chrome_trace: Option<serde_json::Value>,
    /// Every thread's timeline, when a trace was recorded.
    pub timeline_svg: Option<String>,
    /// Queue depth over time, when the trace holds depth marks.
    pub depth_svg: Option<String>,
    /// A percentile plot per latency distribution the run measured.
    pub latency_svgs: Vec<String>,
    /// A chart per curve the run measured (latency against offered load, …).
    pub curve_svgs: Vec<String>,
    /// The run's profile as flame graphs and files, when it took one (a profiler of its own
    /// frames, or a trace to sample).
    pub flame: Option<Flame>,
    /// The run's settings as a permalink's query (name, value pairs in order).
    pub link: Vec<(String, String)>,
    /// A stored result's settings, checked for the form ([`render`] only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<Filled>,
}

pub fn finished(result: &RunResult) -> Finished<'_> {
    Finished {
        result,
        summary: report::summary_line(result),
        lessons: result
            .lessons
            .iter()
            .zip(report::lesson_lines(result))
            .map(|(lesson, text)| LessonLine {
                verdict: match lesson.verdict {
                    Verdict::Shown { .. } => "shown",
                    Verdict::NotShown { .. } => "not-shown",
                    Verdict::NotTestable { .. } => "not-testable",
                },
                text,
            })
            .collect(),
        table: report::table_data(result),
        chart_svg: report::chart_svg(result),
        fits: report::fit_lines(result),
        notes: report::notes(result),
        findings: report::finding_lines(result),
        csv: report::csv(result),
        chrome_trace: result.trace.as_ref().map(|trace| trace.to_chrome_json()),
        timeline_svg: result.trace.as_ref().map(report::timeline_svg),
        depth_svg: result.trace.as_ref().and_then(report::depth_svg),
        latency_svgs: report::latency_svgs(result),
        curve_svgs: report::curve_svgs(result),
        flame: flame(result),
        link: settings::query_of(result),
        form: None,
    }
}

/// A run's profile for the page: a flame graph per view, what was sampled, the lines the CLI
/// prints, and the wall-clock profile as collapsed stacks and speedscope's JSON for download.
#[derive(Serialize)]
pub struct Flame {
    pub wall_svg: String,
    pub cpu_svg: String,
    pub lines: Vec<String>,
    pub collapsed: String,
    pub speedscope: String,
}

fn flame(result: &RunResult) -> Option<Flame> {
    let (profile, source) = report::profile_of(result);
    if profile.samples(View::Wall) == 0 {
        return None;
    }
    let title = |view: &str| format!("{} — {view} profile of {source}", result.experiment);
    Some(Flame {
        wall_svg: export::flame_svg(&profile, View::Wall, &title("wall-clock")),
        cpu_svg: export::flame_svg(&profile, View::OnCpu, &title("on-CPU")),
        lines: report::profile_lines(&profile, source),
        collapsed: export::collapsed(&profile, View::Wall),
        speedscope: export::speedscope(&profile, View::Wall, &title("wall-clock")).to_string(),
    })
}

/// A lesson's line and its verdict (`shown`, `not-shown`, `not-testable`), for the page to mark.
#[derive(Serialize)]
pub struct LessonLine {
    pub verdict: &'static str,
    pub text: String,
}

/// A stored result (JSON of `RunResult`) rendered as after a run, with its settings checked
/// for a form whose thread counts go up to `form_threads`.
pub fn render(result_json: &str, form_threads: usize) -> Result<String, String> {
    let result = parse_result(result_json)?;
    let form = form_of(&result, form_threads);
    serde_json::to_string(&Finished { form: Some(form), ..finished(&result) }).map_err(|e| e.to_string())
}

/// An imported result (`conlab run --format json`), checked: the settings it ran with, for the
/// page's form, and where it was measured.
#[derive(Serialize)]
pub struct Imported<'a> {
    pub experiment: &'a str,
    pub form: Filled,
    pub platform: &'a str,
    /// A cluster's result: a page can start no processes, so it shows the result as measured
    /// rather than comparing it with a run of its own.
    pub opens: bool,
}

/// [`Imported`] as JSON, or what is wrong with the file — in words the page shows as they are.
pub fn imported(result_json: &str, form_threads: usize) -> Result<String, String> {
    let result = parse_result(result_json)?;
    let imported = Imported {
        experiment: &result.experiment,
        form: form_of(&result, form_threads),
        platform: &result.environment.platform.platform,
        opens: cluster::EXPERIMENTS.iter().any(|experiment| experiment.info().id == result.experiment),
    };
    serde_json::to_string(&imported).map_err(|e| e.to_string())
}

fn form_of(result: &RunResult, form_threads: usize) -> Filled {
    settings::fill(&settings::query_of(result).into_iter().collect(), form_threads)
}

/// A permalink's query (JSON object of text) checked for the form, as JSON of [`Filled`]; `null`
/// when the link names no experiment (a plain visit, or a debugging-lab link).
pub fn link(query_json: &str, form_threads: usize) -> Result<String, String> {
    let query = parse_query(query_json)?;
    let filled = query.contains_key("experiment").then(|| settings::fill(&query, form_threads));
    serde_json::to_string(&filled).map_err(|e| e.to_string())
}

/// The form's fields (JSON object of text) checked as a run would check them: the message of
/// the first setting that does not fit, or an empty string.
pub fn form_problem(query_json: &str) -> Result<String, String> {
    Ok(settings::check(&parse_query(query_json)?).err().map(|error| error.to_string()).unwrap_or_default())
}

/// The form's fields (JSON object of text) as a run request, or the CLI's message for the first
/// setting that does not fit.
pub fn request(query_json: &str) -> Result<RunRequest, String> {
    settings::request(&parse_query(query_json)?).map_err(|error| error.to_string())
}

fn parse_query(json: &str) -> Result<Query, String> {
    serde_json::from_str(json).map_err(|e| format!("malformed settings (an object of text expected): {e}"))
}

/// This page's result beside an imported one (`conlab run --format json`): the comparison
/// table, or why they do not compare.
pub fn compare(here_json: &str, there_json: &str) -> Result<String, String> {
    let table = report::comparison(&parse_result(here_json)?, &parse_result(there_json)?)?;
    serde_json::to_string(&table).map_err(|e| e.to_string())
}

/// A window (`from` < `to`, fractions of each cell's run) of a trace's timeline, as SVG.
pub fn timeline(trace_json: &str, from: f64, to: f64) -> Result<String, String> {
    let trace: Trace = serde_json::from_str(trace_json).map_err(|e| format!("not a conlab trace: {e}"))?;
    Ok(report::timeline_window_svg(&trace, report::Window::new(from, to)?))
}

fn parse_result(json: &str) -> Result<RunResult, String> {
    let result: RunResult = serde_json::from_str(json)
        .map_err(|e| format!("not a conlab result (`conlab run --format json` writes one): {e}"))?;
    if result.schema != SCHEMA_VERSION {
        return Err(format!("a conlab result of schema {}, this lab reads schema {SCHEMA_VERSION}", result.schema));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_lists_every_experiment_with_its_schema() {
        let json = serde_json::to_value(catalogue(1)).unwrap();
        let ids: Vec<_> =
            json["experiments"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
        let registered: Vec<_> = experiment::registry().iter().map(|e| e.info().id.to_string()).collect();
        assert_eq!(ids, registered);
        assert_eq!(ids[0], "mandelbrot");
        let width = &json["experiments"][0]["params"][0];
        assert_eq!(
            (width["name"].as_str(), width["type"].as_str(), width["min"].as_i64()),
            (Some("width"), Some("int"), Some(16))
        );
        assert_eq!(json["default_threads"][0], 1);
        assert_eq!(json["default_repeat"], DEFAULT_REPEAT, "the page's form starts from the CLI's default");
        assert_eq!((json["repeat_range"][0].as_u64(), json["repeat_range"][1].as_u64()), (Some(1), Some(1000)));
        assert_eq!((json["warmup_range"][0].as_u64(), json["warmup_range"][1].as_u64()), (Some(0), Some(100)));
    }

    /// A tiny mandelbrot run at `threads` (as the form's field holds them), `repeat` times.
    fn small_mandelbrot(threads: &str, repeat: usize) -> RunResult {
        let form = request(&format!(
            r#"{{"experiment":"mandelbrot","width":"32","height":"16","max_iter":"20","threads":"{threads}","repeat":"{repeat}","warmup":"0"}}"#
        ))
        .unwrap();
        let cancel = experiment::CancelFlag::new();
        experiment::run(&form, experiment::Session { progress: &mut |_| {}, cancel: &cancel }).unwrap()
    }

    #[test]
    fn a_finished_run_carries_the_cli_table_chart_and_csv() {
        let result = small_mandelbrot("1,2", 2);
        let json = serde_json::to_value(finished(&result)).unwrap();
        let headers = json["table"]["headers"].as_array().unwrap();
        let rows = json["table"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), result.cells.len());
        assert!(rows.iter().all(|row| row["cells"].as_array().unwrap().len() == headers.len() && row["check"] == "ok"));
        assert!(json["chart_svg"].as_str().unwrap().starts_with("<svg"));
        let summary = json["summary"].as_str().unwrap();
        assert!(summary.starts_with(&format!("{}. Best: ", result.title)), "{summary}");
        assert!(summary.contains("× vs seq. 2 runs per cell after 0 warm-up; whole run "), "{summary}");
        assert_eq!(json["csv"].as_str().unwrap().lines().count(), 1 + rows.len());
    }

    #[test]
    fn stored_results_render_and_compare_and_garbage_is_named() {
        let result = small_mandelbrot("1", 1);
        let json = serde_json::to_string(&result).unwrap();
        let rendered: serde_json::Value = serde_json::from_str(&render(&json, 2).unwrap()).unwrap();
        assert_eq!(rendered["result"]["experiment"], "mandelbrot");
        // The form takes the stored settings, checked; the link holds them.
        assert_eq!(rendered["form"]["params"]["width"], 32);
        assert_eq!(
            (&rendered["form"]["threads"], &rendered["form"]["problems"]),
            (&"1".into(), &serde_json::json!([]))
        );
        assert_eq!(rendered["link"][0], serde_json::json!(["experiment", "mandelbrot"]));
        let table: serde_json::Value = serde_json::from_str(&compare(&json, &json).unwrap()).unwrap();
        assert!(table["rows"].as_array().unwrap().iter().all(|row| row["cells"][4] == "1.00×"));
        assert!(render("{}", 2).unwrap_err().starts_with("not a conlab result"));
        let old = json.replacen(&format!("\"schema\":{SCHEMA_VERSION}"), "\"schema\":0", 1);
        assert_eq!(
            render(&old, 2).unwrap_err(),
            format!("a conlab result of schema 0, this lab reads schema {SCHEMA_VERSION}")
        );
    }

    #[test]
    fn a_timeline_window_renders_and_a_bad_one_is_refused() {
        let trace = r#"{"cells":[{"variant":"seq","threads":1,"spans":[{"thread":0,"start_ns":0,"end_ns":1000,"kind":"run","label":"all"}]}]}"#;
        assert!(timeline(trace, 0.25, 0.5).unwrap().contains("250 ns – 500 ns of 1.00 µs"));
        assert!(timeline(trace, 0.5, 0.25).unwrap_err().starts_with("a timeline window needs"));
        assert!(timeline("[]", 0.0, 1.0).unwrap_err().starts_with("not a conlab trace"));
    }

    #[test]
    fn an_import_names_what_is_wrong_with_the_file() {
        let good = serde_json::to_string(&small_mandelbrot("1,2", 1)).unwrap();
        let settings: serde_json::Value = serde_json::from_str(&imported(&good, 2).unwrap()).unwrap();
        assert_eq!(
            (settings["experiment"].as_str(), &settings["form"]["threads"]),
            (Some("mandelbrot"), &serde_json::json!("1,2"))
        );
        assert_eq!(settings["opens"], false, "the page runs a mandelbrot and compares");
        // Imported into a page with fewer threads: the form keeps its own, and says why.
        let narrow: serde_json::Value = serde_json::from_str(&imported(&good, 1).unwrap()).unwrap();
        assert_eq!(
            narrow["form"]["problems"],
            serde_json::json!(["parameter `threads`: expected an integer from 1 to 1, got `2`"])
        );
        let mut damaged: serde_json::Value = serde_json::from_str(&good).unwrap();
        damaged.as_object_mut().unwrap().remove("variants");
        let error = imported(&damaged.to_string(), 2).unwrap_err();
        assert!(error.starts_with("not a conlab result") && error.contains("missing field `variants`"), "{error}");
        assert!(imported("[]", 2).unwrap_err().starts_with("not a conlab result"));
        // A stored result damaged the same way is refused by the same check.
        assert!(render(&damaged.to_string(), 2).unwrap_err().contains("missing field `variants`"));
    }

    #[test]
    fn the_form_and_links_are_checked_by_the_runners_rules() {
        let form = request(r#"{"experiment":"map-reduce","combiner":"yes","threads":"1,2"}"#).unwrap();
        assert_eq!((form.repeat, form.warmup, form.threads), (DEFAULT_REPEAT, 1, Some(vec![1, 2])));
        assert_eq!(form_problem(r#"{"experiment":"map-reduce","combiner":"yes"}"#).unwrap(), "");
        assert_eq!(
            form_problem(r#"{"experiment":"map-reduce","combiner":"maybe"}"#).unwrap(),
            "parameter `combiner`: expected true or false, got `maybe`"
        );
        let filled: serde_json::Value =
            serde_json::from_str(&link(r#"{"experiment":"map-reduce","combiner":"yes"}"#, 2).unwrap()).unwrap();
        assert_eq!((&filled["params"]["combiner"], &filled["problems"]), (&true.into(), &serde_json::json!([])));
        assert_eq!(link(r#"{"scenario":"abba-deadlock"}"#, 2).unwrap(), "null", "not an experiment's link");
        assert!(request("{").unwrap_err().starts_with("malformed settings"));
        assert!(link(r#"{"width":3}"#, 2).unwrap_err().starts_with("malformed settings"));
    }
}
