//! The JSON the worker hands the page, built from conlab-lab's types (native-testable).

use conlab_core::trace::Trace;
use conlab_lab::experiment::result::SCHEMA_VERSION;
#[cfg(test)]
use conlab_lab::experiment::DEFAULT_REPEAT;
use conlab_lab::experiment::{self, ExperimentInfo, RunRequest, RunResult};
use conlab_lab::report;
use serde::Serialize;

/// The catalogue: every experiment's schema and the default thread sweep of this platform with
/// a pool of `pool_threads` (the one being started, so the page's forms need not wait for it).
#[derive(Serialize)]
pub struct Catalogue {
    pub experiments: Vec<ExperimentInfo>,
    pub default_threads: Vec<usize>,
    /// Timed runs per cell unless asked otherwise (the CLI's `--repeat` default).
    pub default_repeat: usize,
    /// The allowed `repeat` and `warmup`, inclusive: the runner's, so the page's fields and
    /// links check what the CLI checks.
    pub repeat_range: (usize, usize),
    pub warmup_range: (usize, usize),
}

pub fn catalogue(pool_threads: usize) -> Catalogue {
    Catalogue {
        experiments: experiment::registry().iter().map(|e| e.info()).collect(),
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
}

pub fn finished(result: &RunResult) -> Finished<'_> {
    Finished {
        result,
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
    }
}

/// A stored or imported result (JSON of `RunResult`) rendered as after a run.
pub fn render(result_json: &str) -> Result<String, String> {
    let result = parse_result(result_json)?;
    serde_json::to_string(&finished(&result)).map_err(|e| e.to_string())
}

/// An imported result (`conlab run --format json`), checked: the settings it ran with, for the
/// page's form, and where it was measured.
#[derive(Serialize)]
pub struct Imported<'a> {
    pub experiment: &'a str,
    pub params: &'a std::collections::BTreeMap<String, experiment::Value>,
    pub variants: &'a [String],
    pub threads: &'a [usize],
    pub repeat: usize,
    pub warmup: usize,
    pub platform: &'a str,
}

/// [`Imported`] as JSON, or what is wrong with the file — in words the page shows as they are.
pub fn imported(result_json: &str) -> Result<String, String> {
    let result = parse_result(result_json)?;
    let imported = Imported {
        experiment: &result.experiment,
        params: &result.params,
        variants: &result.variants,
        threads: &result.threads,
        repeat: result.repeat,
        warmup: result.warmup,
        platform: &result.environment.platform.platform,
    };
    serde_json::to_string(&imported).map_err(|e| e.to_string())
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

/// Parses the page's run request; a malformed one is reported like any other bad input.
pub fn parse_request(json: &str) -> Result<RunRequest, String> {
    serde_json::from_str(json).map_err(|e| format!("malformed run request: {e}"))
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

    /// A tiny mandelbrot run at `threads` (JSON list), `repeat` times.
    fn small_mandelbrot(threads: &str, repeat: usize) -> RunResult {
        let request = parse_request(&format!(
            r#"{{"experiment":"mandelbrot","params":{{"width":32,"height":16,"max_iter":20}},"threads":{threads},"repeat":{repeat},"warmup":0}}"#
        ))
        .unwrap();
        let cancel = experiment::CancelFlag::new();
        experiment::run(&request, experiment::Session { progress: &mut |_| {}, cancel: &cancel }).unwrap()
    }

    #[test]
    fn a_finished_run_carries_the_cli_table_chart_and_csv() {
        let result = small_mandelbrot("[1,2]", 2);
        let json = serde_json::to_value(finished(&result)).unwrap();
        let headers = json["table"]["headers"].as_array().unwrap();
        let rows = json["table"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), result.cells.len());
        assert!(rows.iter().all(|row| row["cells"].as_array().unwrap().len() == headers.len() && row["check"] == "ok"));
        assert!(json["chart_svg"].as_str().unwrap().starts_with("<svg"));
        assert_eq!(json["csv"].as_str().unwrap().lines().count(), 1 + rows.len());
    }

    #[test]
    fn stored_results_render_and_compare_and_garbage_is_named() {
        let result = small_mandelbrot("[1]", 1);
        let json = serde_json::to_string(&result).unwrap();
        let rendered: serde_json::Value = serde_json::from_str(&render(&json).unwrap()).unwrap();
        assert_eq!(rendered["result"]["experiment"], "mandelbrot");
        let table: serde_json::Value = serde_json::from_str(&compare(&json, &json).unwrap()).unwrap();
        assert!(table["rows"].as_array().unwrap().iter().all(|row| row["cells"][4] == "1.00×"));
        assert!(render("{}").unwrap_err().starts_with("not a conlab result"));
        let old = json.replacen(&format!("\"schema\":{SCHEMA_VERSION}"), "\"schema\":0", 1);
        assert_eq!(
            render(&old).unwrap_err(),
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
        let good = serde_json::to_string(&small_mandelbrot("[1,2]", 1)).unwrap();
        let settings: serde_json::Value = serde_json::from_str(&imported(&good).unwrap()).unwrap();
        assert_eq!(
            (settings["experiment"].as_str(), &settings["threads"]),
            (Some("mandelbrot"), &serde_json::json!([1, 2]))
        );
        let mut damaged: serde_json::Value = serde_json::from_str(&good).unwrap();
        damaged.as_object_mut().unwrap().remove("variants");
        let error = imported(&damaged.to_string()).unwrap_err();
        assert!(error.starts_with("not a conlab result") && error.contains("missing field `variants`"), "{error}");
        assert!(imported("[]").unwrap_err().starts_with("not a conlab result"));
        // A stored result damaged the same way is refused by the same check.
        assert!(render(&damaged.to_string()).unwrap_err().contains("missing field `variants`"));
    }

    #[test]
    fn requests_parse_with_defaults_and_reject_garbage() {
        let request = parse_request(r#"{"experiment":"mandelbrot","threads":[1,2]}"#).unwrap();
        assert_eq!((request.repeat, request.warmup, request.threads), (DEFAULT_REPEAT, 1, Some(vec![1, 2])));
        assert!(parse_request("{").unwrap_err().starts_with("malformed run request"));
    }
}
