//! `conlab` from the outside: list, describe, run in every format, files, errors, and `serve`'s
//! headers — what a user of the terminal sees.

use std::process::{Command, Output};

use conlab_tests::{conlab, serve};
use serde_json::Value;

/// Tests that load both cores for seconds run one at a time, so a speedup law is not measured
/// against the other.
/// Tests that assert timing laws hold this alone; tests that merely run experiments hold it
/// beside each other (the 2 cores are shared, and a law must not see another test's load).
static CORES: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub(crate) fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    CORES.write().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn beside() -> std::sync::RwLockReadGuard<'static, ()> {
    CORES.read().unwrap_or_else(|p| p.into_inner())
}

fn conlab_run(args: &[&str]) -> Output {
    Command::new(conlab()).args(args).output().expect("conlab runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "conlab failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Small enough to finish in well under a second in a debug build.
const SMALL_MANDELBROT: &[&str] = &[
    "run",
    "mandelbrot",
    "--set",
    "width=64",
    "--set",
    "height=48",
    "--set",
    "max_iter=100",
    "--threads",
    "1,2",
    "--repeat",
    "2",
    "--warmup",
    "0",
];

#[test]
fn list_names_every_experiment() {
    let text = stdout(&conlab_run(&["list"]));
    for experiment in conlab_lab::experiment::registry() {
        assert!(text.contains(experiment.info().id), "{text}");
    }
}

#[test]
fn describe_shows_parameters_with_defaults_and_ranges() {
    let text = stdout(&conlab_run(&["describe", "mandelbrot"]));
    assert!(text.contains("  width     default 640 px"), "{text}");
    assert!(text.contains("range 16..=4096"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("default ") && l.contains("range ")).collect();
    assert_eq!(rows.len(), 4, "width, height, max_iter, axis: {text}");
    let column = |needle: &str| rows.iter().map(|r| r.find(needle).unwrap()).collect::<Vec<_>>();
    assert!(
        column("default ").windows(2).all(|w| w[0] == w[1]) && column("range ").windows(2).all(|w| w[0] == w[1]),
        "{text}"
    );
    assert!(text.contains("rayon"), "{text}");
    assert!(text.contains("quick preset (--quick): width=96 height=64 max_iter=200"), "{text}");
}

#[test]
fn run_json_parses_back_with_every_cell_checked() {
    let _beside = beside();
    let json: Value =
        serde_json::from_str(&stdout(&conlab_run(&[SMALL_MANDELBROT, &["--format", "json"]].concat()))).unwrap();
    assert_eq!(json["experiment"], "mandelbrot");
    assert_eq!(json["all_checks_passed"], true);
    let cells: Vec<(String, u64)> = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["variant"].as_str().unwrap().to_string(), c["threads"].as_u64().unwrap()))
        .collect();
    let expected = [("seq", 1), ("team", 1), ("team", 2), ("rayon", 1), ("rayon", 2), ("steal", 1), ("steal", 2)];
    assert_eq!(cells, expected.map(|(v, t)| (v.to_string(), t)));
    assert!(json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["samples"].as_array().unwrap().len() == 2 && c["check"]["passed"] == true));
    assert_eq!(json["params"]["width"], 64);
    let result: conlab_lab::experiment::RunResult = serde_json::from_value(json).unwrap();
    assert!(result.cell("rayon", 2).unwrap().speedup_vs_one_thread.is_some());
}

#[test]
fn run_table_is_aligned_and_says_check_ok() {
    let _beside = beside();
    let text = stdout(&conlab_run(SMALL_MANDELBROT));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("mandelbrot — axis=0.25 height=48 max_iter=100 width=64"), "{text}");
    assert!(lines[1].starts_with("variant  threads"), "{text}");
    assert_eq!(lines.iter().filter(|l| l.trim_end().ends_with("ok")).count(), 7, "{text}");
}

/// The lessons, checked by the run, under the table and in the JSON (semaphore-waves on the
/// virtual clock: exact, so every lesson shows).
#[test]
fn a_run_says_which_lessons_it_showed() {
    let _beside = beside();
    let args = ["run", "semaphore-waves", "--set", "clock=virtual", "--repeat", "1", "--warmup", "0"];
    let text = stdout(&conlab_run(&args));
    let lessons: Vec<&str> = text.lines().filter(|line| line.starts_with("lesson ")).collect();
    assert_eq!(lessons.len(), 3, "{text}");
    assert!(lessons[0].starts_with("lesson shown: under Semaphore(k), T tasks of d seconds take ⌈T/k⌉·d"), "{text}");
    assert!(lessons[0].ends_with("— 4.50 s for ⌈5/2⌉ × 1.5 s = 4.50 s"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&conlab_run(&[&args[..], &["--format", "json"]].concat()))).unwrap();
    let verdicts: Vec<_> = json["lessons"].as_array().unwrap().iter().map(|l| l["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["shown"; 3]);
}

#[test]
fn run_writes_csv_trace_and_svg_files() {
    let _beside = beside();
    let dir = std::env::temp_dir().join(format!("conlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, trace, svg) = (dir.join("r.csv"), dir.join("t.json"), dir.join("c.svg"));
    let args = [
        SMALL_MANDELBROT,
        &[
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
    ]
    .concat();
    assert_eq!(stdout(&conlab_run(&args)), "", "--out sends the result to the file");
    let csv = std::fs::read_to_string(csv).unwrap();
    assert!(csv.starts_with("experiment,variant,threads,runs,median_s"));
    assert_eq!(csv.lines().count(), 1 + 7);
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(trace).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "X" && e["name"] == "row 0"), "rayon spans per row");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.ends_with("</svg>"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_draws_timelines_of_the_scheduler_pools() {
    let _beside = beside();
    let dir = std::env::temp_dir().join(format!("conlab-cli-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let timeline = dir.join("timeline.svg");
    let args = [
        "run",
        "imbalance",
        "--set",
        "work_ms=20",
        "--threads",
        "2",
        "--repeat",
        "1",
        "--timeline",
        timeline.to_str().unwrap(),
    ];
    assert!(conlab_run(&args).status.success());
    let svg = std::fs::read_to_string(&timeline).unwrap();
    for expected in ["steal · 2 threads", "fifo · 2 threads", r#"class="run""#, r#"class="steal""#, r#"class="mark""#]
    {
        assert!(svg.contains(expected), "{expected} missing from the timeline");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_quick_preset_runs_and_queues_draw_latency_and_depth() {
    let _beside = beside();
    let dir = std::env::temp_dir().join(format!("conlab-cli-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (latency, depth) = (dir.join("latency.svg"), dir.join("depth.svg"));
    let args = [
        "run",
        "producer-consumer",
        "--quick",
        "--set",
        "items=3000",
        "--threads",
        "1",
        "--repeat",
        "1",
        "--format",
        "json",
    ];
    let output = conlab_run(
        &[&args[..], &["--latency", latency.to_str().unwrap(), "--depth", depth.to_str().unwrap()]].concat(),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["params"]["capacity"], 8, "the preset's capacity");
    assert_eq!(result["params"]["items"], 3000, "--set overrides the preset");
    let latency = std::fs::read_to_string(latency).unwrap();
    assert_eq!(latency.matches(r#"<polyline class="latency""#).count(), 4, "a line per queue");
    let depth = std::fs::read_to_string(depth).unwrap();
    assert_eq!(depth.matches(r#"<polyline class="depth""#).count(), 4, "a line per queue");

    let output =
        conlab_run(&["run", "mandelbrot", "--quick", "--threads", "1", "--repeat", "1", "--latency", "unused.svg"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "error: --latency: `mandelbrot` measures no latency distribution to draw\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn assert_fails_with(args: &[&str], message: &str) {
    let output = conlab_run(args);
    assert_eq!(output.status.code(), Some(2), "{args:?} must fail");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr, format!("error: {message}\n"), "one line naming the problem");
    assert!(output.stdout.is_empty());
}

/// An output file that cannot be written fails the command before the work: mandelbrot at its
/// defaults with 100 runs per cell takes a minute here; each refusal takes milliseconds.
#[test]
fn output_files_are_checked_before_the_run() {
    for option in ["--out", "--trace", "--svg", "--timeline", "--depth", "--latency"] {
        let started = conlab_core::platform::Instant::now();
        assert_fails_with(
            &["run", "mandelbrot", "--repeat", "100", option, "/nonexistent/dir/x"],
            &format!("{option}: cannot write /nonexistent/dir/x: No such file or directory (os error 2)"),
        );
        assert!(started.elapsed().as_secs() < 10, "{option} was checked after the run");
    }
}

#[test]
fn bad_input_fails_with_one_line_naming_the_parameter() {
    assert_fails_with(
        &["run", "mandelbrot", "--set", "width=99999"],
        "parameter `width`: expected an integer from 16 to 4096, got `99999`",
    );
    assert_fails_with(
        &["run", "mandelbrot", "--set", "colour=red"],
        "parameter `colour`: unknown parameter; known parameters are width, height, max_iter, axis",
    );
    assert_fails_with(&["run", "mandelbrot", "--set", "width"], "parameter `width`: expected name=value");
    assert_fails_with(
        &["run", "mandelbrot", "--threads", "0"],
        "parameter `threads`: expected an integer from 1 to 10000, got `0`",
    );
    // Huge numbers are refused before anything is allocated for them.
    assert_fails_with(
        &["run", "mandelbrot", "--threads", "1000000000"],
        "parameter `threads`: expected an integer from 1 to 10000, got `1000000000`",
    );
    assert_fails_with(
        &["run", "mandelbrot", "--repeat", "1000000000000"],
        "parameter `repeat`: expected an integer from 1 to 1000, got `1000000000000`",
    );
    assert_fails_with(
        &["run", "mandelbrot", "--set", "max_iter=1e12"],
        "parameter `max_iter`: expected an integer from 1 to 100000, got `1e12`",
    );
    assert_fails_with(
        &["run", "io-fanout", "--variant", "fibers"],
        "parameter `variant`: unknown variant `fibers`; io-fanout has seq, thread-per-task, pool",
    );
    assert_fails_with(
        &["run", "nope"],
        "unknown experiment `nope`; known experiments are mandelbrot, parallel-sum, scaling, map-reduce, pipeline, io-fanout, lost-update, lock-contention, contention-ladder, false-sharing, rwlock-mix, batched-updates, granularity, imbalance, fork-join, executor-patterns, spawn-overhead, gil-cpu, gil-race, gil-convoy, switch-interval, models-matrix, ipc-cost, process-overhead, manager-vs-shared, broken-pool, gather-timeline, semaphore-waves, queue-backpressure, loop-starvation, cancellation, async-pipeline, event-loop-throughput, async-race, async-primitives, server-load, coordinated-omission, connections, gil-server, framing, retry-storm, circuit-breaker, hedging, load-shedding, micro-batching, gather-errors, queue-shootout, aba, producer-consumer, lock-striping, deadlock-watchdog, priority-inversion, hot-path, profiler-overhead, main-thread-only, wall-vs-cpu, prim-rlock, prim-semaphore, prim-event, prim-condition, prim-barrier, prim-queue, prim-thread-local, cluster-scaling, shuffle-skew, join-strategies, iterative",
    );
    assert_fails_with(
        &["describe", "nope"],
        "unknown experiment `nope`; known experiments are mandelbrot, parallel-sum, scaling, map-reduce, pipeline, io-fanout, lost-update, lock-contention, contention-ladder, false-sharing, rwlock-mix, batched-updates, granularity, imbalance, fork-join, executor-patterns, spawn-overhead, gil-cpu, gil-race, gil-convoy, switch-interval, models-matrix, ipc-cost, process-overhead, manager-vs-shared, broken-pool, gather-timeline, semaphore-waves, queue-backpressure, loop-starvation, cancellation, async-pipeline, event-loop-throughput, async-race, async-primitives, server-load, coordinated-omission, connections, gil-server, framing, retry-storm, circuit-breaker, hedging, load-shedding, micro-batching, gather-errors, queue-shootout, aba, producer-consumer, lock-striping, deadlock-watchdog, priority-inversion, hot-path, profiler-overhead, main-thread-only, wall-vs-cpu, prim-rlock, prim-semaphore, prim-event, prim-condition, prim-barrier, prim-queue, prim-thread-local, cluster-scaling, shuffle-skew, join-strategies, iterative",
    );
}

#[test]
fn serve_sends_isolation_headers_and_refuses_to_leave_its_directory() {
    let dir = std::env::temp_dir().join(format!("conlab-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<p>lab</p>").unwrap();
    std::fs::write(dir.join("app.wasm"), [0u8, 97, 115, 109]).unwrap();
    let (_server, url) = serve(&dir);
    let index = ureq::get(&url).call().unwrap();
    assert_eq!(index.header("Cross-Origin-Opener-Policy"), Some("same-origin"));
    assert_eq!(index.header("Cross-Origin-Embedder-Policy"), Some("require-corp"));
    assert_eq!(index.content_type(), "text/html");
    assert_eq!(index.into_string().unwrap(), "<p>lab</p>");
    assert_eq!(ureq::get(&format!("{url}app.wasm")).call().unwrap().content_type(), "application/wasm");
    for path in ["missing.js", "../Cargo.toml", "%2e%2e/Cargo.toml"] {
        match ureq::get(&format!("{url}{path}")).call() {
            Err(ureq::Error::Status(404, _)) => {}
            other => panic!("{path}: expected 404, got {other:?}"),
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A browser holds idle connections open (preconnects) and loads a page's modules over several
/// at once: every request is answered however many connections sit idle beside it.
#[test]
fn serve_answers_every_connection_while_others_sit_idle() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("conlab-serve-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<p>lab</p>").unwrap();
    let (_server, url) = serve(&dir);
    let address = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let connect = || {
        let stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        stream
    };
    let idle: Vec<_> = (0..8).map(|_| connect()).collect();
    for mut stream in (0..8).map(|_| connect()).chain(idle) {
        stream.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("an answer within 5 s, and the connection closed");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.ends_with("<p>lab</p>"), "{reply}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_thread_per_connection_server_past_the_systems_thread_limit_is_refused_naming_the_limit() {
    let _beside = beside();
    // 2 GiB of address space holds about 1 000 threads' 2 MiB stacks (here the 1 009th was
    // refused): the team for 3 000 idle connections (and 4 active ones, the acceptor and the
    // load) is refused where the system refuses a thread, and nothing hangs. One malloc arena,
    // so that the limit falls on a thread's stack and not on an allocation.
    let command = format!(
        "ulimit -v 2097152 && exec {} run connections --variant thread-per-connection --set idle=3000 \
         --set duration_ms=50 --repeat 1 --warmup 0",
        conlab().display()
    );
    let output = Command::new("bash").args(["-c", &command]).env("MALLOC_ARENA_MAX", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "3 000 threads in 2 GiB ran: {}", String::from_utf8_lossy(&output.stdout));
    assert!(
        stderr.contains("the system refused thread") && stderr.contains("of a team of 3006"),
        "the error names the limit: {stderr}"
    );
}

#[test]
fn serve_without_a_built_lab_says_how_to_build_it() {
    let empty = std::env::temp_dir().join(format!("conlab-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let output = conlab_run(&["serve", "--port", "0", "--dir", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("build it with `cargo xtask lab`"));
}

#[test]
fn calibrate_python_fits_the_pace_and_lands_on_cpythons_lost_fractions() {
    let _alone = alone();
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        // On a developer's machine without Python the comparison cannot run; in CI it must.
        assert!(std::env::var("CI").is_err(), "CI needs python3 on PATH (cargo xtask setup installs it)");
        eprintln!("python3 is not on PATH: calibrate-python cannot run here");
        return;
    }
    // Both sides are measured on a shared 2-core machine, CPython's lost fractions included
    // (medians of 10 runs; over sessions they moved by up to ±0.05; three runs in a row here
    // read 0.29–0.33 at 2 threads and 0.48–0.54 at 4, the model's 0.26–0.29 and 0.46–0.52): a
    // busy stretch can push a calibration past the bounds, so up to three are made and
    // everything must land in one.
    let mut misses = Vec::new();
    for _ in 0..3 {
        match calibration_lands() {
            Ok(()) => return,
            Err(miss) => misses.push(miss),
        }
    }
    panic!("in none of three calibrations did the model land on CPython: {misses:#?}");
}

/// One `conlab calibrate-python`: its table's form is asserted; whether the model's pace and
/// lost fractions land on CPython's is returned.
fn calibration_lands() -> Result<(), String> {
    let output = conlab_run(&["calibrate-python"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = stdout(&output);
    assert!(text.starts_with("quantity") && text.contains("CPython 3."), "{text}");
    assert!(text.contains("--set op_ns="), "{text}");
    // Each row: the quantity, then CPython's figure, the model's, and how they compare.
    let row = |start: &str| -> Vec<String> {
        let line = text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no `{start}` row: {text}"));
        line.split("  ").map(str::trim).filter(|f| !f.is_empty()).map(String::from).collect()
    };
    // cProfile: a few hundred ns a call on both sides (306 and 287–291 here), and its cost
    // landing in the caller's tottime (28% and 34%) — far above the caller's own instructions.
    let nanos = |field: &str| -> f64 { field.trim_end_matches(" ns").parse().unwrap() };
    let percent = |field: &str| -> f64 { field.trim_end_matches('%').parse().unwrap() };
    let per_call = row("profiler-overhead: cProfile's cost per call");
    let (cpython_call, model_call) = (nanos(&per_call[1]), nanos(&per_call[2]));
    if !(0.5..=2.0).contains(&(model_call / cpython_call)) {
        return Err(format!("cProfile per call: model {model_call} ns, CPython {cpython_call} ns: {text}"));
    }
    let caller = row("profiler-overhead: the caller's share of tottime");
    assert!(percent(&caller[1]) >= 15.0 && percent(&caller[2]) >= 15.0, "the caller absorbs the hooks: {text}");
    // The fit is measured, not assumed: the model runs at CPython's pace.
    let pace = row("gil-cpu: ns per loop iteration");
    let (cpython, model): (f64, f64) = (pace[1].parse().unwrap(), pace[2].parse().unwrap());
    if (model / cpython - 1.0).abs() > 0.1 {
        return Err(format!("model {model} ns vs CPython {cpython} ns per iteration: {text}"));
    }
    for threads in [2, 4] {
        let plain = row(&format!("gil-race: lost fraction, counter += 1, {threads} threads"));
        assert_eq!(
            (plain[1].as_str(), plain[2].as_str()),
            ("0.00", "0.00"),
            "no switch between load and store: {text}"
        );
        let call = row(&format!("gil-race: lost fraction, x = counter; f(); counter = x + 1, {threads} threads"));
        let (cpython, model): (f64, f64) = (call[1].parse().unwrap(), call[2].parse().unwrap());
        assert!(cpython > 0.1, "CPython 3.11 loses a share of the increments when a call sits in the window: {text}");
        if (model - cpython).abs() > 0.10 {
            return Err(format!("{threads} threads: model loses {model}, CPython {cpython}: {text}"));
        }
    }
    // gil-server: on both sides the slow endpoint holds up the fast one under one GIL. One 3 s
    // run a side swings widely — in five calibrations here CPython's fast p99 went from
    // 0.8–1.0 ms alone to 33–172 ms beside the slow load, the model's (two) from 1.6–5.2 ms to
    // 46–67 ms — so, as for sha256 per element, only the form is asserted.
    let ms = |start: &str| -> (f64, f64) {
        let figures = row(start);
        (figures[1].parse().unwrap(), figures[2].parse().unwrap())
    };
    let (alone, loaded) = (ms("gil-server: the fast endpoint's p99"), ms("gil-server: its p99 beside"));
    assert!(loaded.0 >= 3.0 * alone.0 && loaded.1 >= 3.0 * alone.1, "alone {alone:?}, loaded {loaded:?}: {text}");
    // Both sides hand the GIL over less often as the switch interval grows, and the model's
    // rate is within 3× of CPython's at each (measured: 1.99× at 0.1 ms, 0.87× at 1 ms).
    let rates: Vec<(f64, f64)> = ["0.1", "1", "5"]
        .iter()
        .map(|ms| {
            let rate = row(&format!("switch-interval: GIL handovers per second at {ms} ms, 2 threads"));
            (rate[1].parse().unwrap(), rate[2].parse().unwrap())
        })
        .collect();
    assert!(rates.windows(2).all(|pair| pair[1].0 < pair[0].0 && pair[1].1 < pair[0].1), "{rates:?}: {text}");
    // sha256 releasing the GIL: one call per thread scales on both sides alike (1.90× and
    // 1.91× here); one call per 2 KB block sometimes falls into step and sometimes queues on
    // both sides (CPython 1.02–1.48×, the model 0.82–1.89×), so only its form is asserted.
    let speedup = |field: &str| -> f64 { field.split('×').next().unwrap().parse().unwrap() };
    let whole = row("gil-cpu nogil-ext: sha256, one call per thread, 2 threads");
    let (cpython, model) = (speedup(&whole[1]), speedup(&whole[2]));
    let each = row("gil-cpu per-element: sha256, one call per 2 KB, 2 threads");
    assert!(each[1].contains("× (") && each[2].contains("× ("), "a median and a range a side: {text}");
    assert!(text.contains("a call's work with the GIL held"), "{text}");
    if !(0.75..=1.33).contains(&(model / cpython)) {
        return Err(format!("sha256 in one call per thread: model {model}×, CPython {cpython}×: {text}"));
    }
    if let Some((cpython, model)) = rates.iter().find(|(cpython, model)| model / cpython > 3.0 || cpython / model > 3.0)
    {
        return Err(format!("handovers per second: model {model}, CPython {cpython}: {text}"));
    }
    Ok(())
}

#[test]
fn fork_start_up_grows_with_the_parents_memory_and_spawn_and_forkserver_do_not() {
    let _alone = alone();
    // Python's three start methods for real: fork copies the page tables of every page this
    // process touched (0.7 ms for a 10 MiB parent, 20 ms for 1000 MiB here), spawn re-executes
    // the binary (1.5 ms either way) and the fork server forks a small process (0.5 ms).
    let start_up = |parent_mb: u32| -> Vec<(String, f64)> {
        let parent = format!("parent_mb={parent_mb}");
        let output = conlab_run(&[
            "run",
            "process-overhead",
            "--variant",
            "processes,fork,forkserver",
            "--threads",
            "1",
            "--repeat",
            "3",
            "--set",
            "tasks=10",
            "--set",
            "round_trips=5",
            "--set",
            &parent,
            "--format",
            "json",
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let result: conlab_lab::experiment::RunResult = serde_json::from_str(&stdout(&output)).unwrap();
        assert!(result.all_checks_passed, "every start method's workers count their tasks");
        result.cells.iter().map(|cell| (cell.variant.clone(), cell.metrics["start-up"].min)).collect()
    };
    let (small, big) = (start_up(10), start_up(1000));
    let ms = |sizes: &[(String, f64)], variant: &str| sizes.iter().find(|(v, _)| v == variant).unwrap().1;
    assert!(ms(&big, "fork") >= 5.0 * ms(&small, "fork"), "fork's start-up, ms: 10 MiB {small:?}, 1000 MiB {big:?}");
    for flat in ["processes", "forkserver"] {
        assert!(
            ms(&big, flat) <= 2.0 * ms(&small, flat) + 1.0,
            "{flat}'s start-up does not grow with the parent, ms: 10 MiB {small:?}, 1000 MiB {big:?}"
        );
    }
    assert!(ms(&big, "fork") >= 3.0 * ms(&big, "forkserver"), "a big parent: {big:?}");
}

#[test]
fn a_process_pool_and_free_threading_run_cpu_bound_python_in_parallel_where_gil_threads_cannot() {
    let _alone = alone();
    // The law the books state: under the GIL threads do not speed up CPU-bound Python, worker
    // processes (each with its own GIL) do — here real OS processes re-executing conlab — and so
    // do free-threaded threads, whose loops share nothing. Each side's fastest run (load
    // elsewhere slows runs down, never speeds them up); a noisy stretch on this shared machine
    // can hold a whole run back (a process pool once read 1.20×), so up to three runs are made
    // and each side's law must show in one (not necessarily the same: one full-suite run read
    // (free-threaded, process) 1.78×/1.36×, 1.28×/1.88×, 1.85×/1.48×).
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let output = conlab_run(&[
            "run",
            "gil-cpu",
            "--variant",
            "gil,free-threaded,process",
            "--threads",
            "1,2",
            "--repeat",
            "6",
            "--format",
            "json",
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let result: conlab_lab::experiment::RunResult = serde_json::from_str(&stdout(&output)).unwrap();
        assert!(result.all_checks_passed, "every process counted its share");
        assert!(result.cell("process", 2).unwrap().metrics.contains_key("process start"));
        let fastest = |variant: &str, threads| result.cell(variant, threads).unwrap().summary.as_ref().unwrap().min;
        let speedup = |variant: &str| fastest(variant, 1) / fastest(variant, 2);
        rounds.push((speedup("gil"), speedup("free-threaded"), speedup("process")));
        if rounds.iter().any(|&(_, free, _)| free >= 1.6) && rounds.iter().any(|&(.., process)| process >= 1.6) {
            break;
        }
    }
    // Each side in a run of its own: a noisy stretch holds back one cell of a run, not a model.
    assert!(
        rounds.iter().any(|&(_, free, _)| free >= 1.6) && rounds.iter().any(|&(.., process)| process >= 1.6),
        "free-threaded and process pool speedups at 2 workers (gil, free-threaded, process): {rounds:?}"
    );
    assert!(rounds.iter().all(|&(gil, ..)| gil < 1.3), "GIL speedups at 2 threads: {rounds:?}");
}

#[test]
fn an_event_loop_awaiting_a_worker_process_stays_on_time() {
    let _alone = alone();
    // The work in a real OS process: the loop holds its own GIL, uncontended, and wakes on time
    // (beside it, to_thread under the GIL waits a switch interval at every wake-up). A run whose
    // worker thread lost its core now and then finds the GIL free (a full-suite run once read
    // 0.10 ms): up to three runs, and each lesson must show in one, as in lab's own test.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let output = conlab_run(&[
            "run",
            "loop-starvation",
            "--variant",
            "to-thread,to-process",
            "--set",
            "cpu_ms=100",
            "--repeat",
            "3",
            "--format",
            "json",
        ]);
        let result: conlab_lab::experiment::RunResult = serde_json::from_str(&stdout(&output)).unwrap();
        assert!(result.all_checks_passed, "the worker process counted all the work");
        let p50 = |variant: &str| result.cell(variant, 1).unwrap().metrics["lag p50"].median;
        rounds.push((p50("to-thread"), p50("to-process")));
        if rounds.iter().any(|&(thread, _)| thread >= 2.5) && rounds.iter().any(|&(_, process)| process < 2.5) {
            return;
        }
    }
    panic!("lag p50 in ms (to a thread under the GIL ≥ 2.5, to a process < 2.5) in none of three runs: {rounds:?}");
}

#[test]
fn worker_processes_get_data_by_copy_or_shared_memory_and_report_their_overheads() {
    let _alone = alone();
    let run = |args: &[&str]| -> conlab_lab::experiment::RunResult {
        let output = conlab_run(args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    // Every message's bytes summed right by a real worker process: through the pipe, and read
    // in place from /dev/shm; a pipe cannot transfer, so that variant is skipped with the reason.
    let ipc = run(&["run", "ipc-cost", "--set", "messages=3", "--repeat", "2", "--format", "json"]);
    assert!(ipc.all_checks_passed);
    for variant in ["thread", "copy", "shared"] {
        let metrics = &ipc.cell(variant, 1).unwrap().metrics;
        assert!(
            metrics["8192 KiB: per message"].median > metrics["1 KiB: per message"].median,
            "{variant}: {metrics:?}"
        );
    }
    assert!(ipc.cell("transfer", 1).unwrap().skipped.as_deref().is_some_and(|why| why.contains("copies")));

    let overhead = run(&[
        "run",
        "process-overhead",
        "--threads",
        "1,2",
        "--set",
        "tasks=100",
        "--set",
        "round_trips=20",
        "--repeat",
        "2",
        "--format",
        "json",
    ]);
    assert!(overhead.all_checks_passed, "every map counted every task");
    for variant in ["threads", "processes"] {
        let metrics = &overhead.cell(variant, 2).unwrap().metrics;
        for name in ["start-up", "round trip", "map, chunksize 1", "map, chunksize auto"] {
            assert!(metrics[name].median > 0.0, "{variant} {name}: {metrics:?}");
        }
    }
}

/// The chunksize lessons need the spawned pool, which only the `conlab` binary can start (the lab's
/// test binary does not register itself as a worker), so they are checked here: at the defaults a
/// message per task must show against chunks and against the thread pool. Each claim must show in
/// one of up to three runs (here, 50 iterations a task: chunksize 1 took 2.4× the auto chunks at 1
/// worker and 1.9× the thread pool; at 100 iterations the tasks hid the messages, 1.42×).
#[test]
fn at_the_defaults_a_process_pool_pays_a_message_per_task_at_chunksize_1() {
    let _alone = alone();
    let claims = ["chunksize 1 is the trap", "a message per task costs"];
    let mut unshown: Vec<&str> = claims.to_vec();
    let mut readings = Vec::new();
    for _ in 0..3 {
        let output = conlab_run(&[
            "run",
            "process-overhead",
            "--variant",
            "threads,processes",
            "--threads",
            "1,2",
            "--format",
            "json",
        ]);
        let result: conlab_lab::experiment::RunResult = serde_json::from_str(&stdout(&output)).unwrap();
        for claim in claims {
            let lesson = result.lessons.iter().find(|lesson| lesson.claim.starts_with(claim));
            let lesson = lesson.unwrap_or_else(|| panic!("`{claim}` is stated: {:?}", result.lessons));
            if matches!(lesson.verdict, conlab_lab::experiment::Verdict::Shown { .. }) {
                unshown.retain(|c| c != &claim);
            } else {
                readings.push(format!("{claim}: {:?}", lesson.verdict));
            }
        }
        if unshown.is_empty() {
            return;
        }
    }
    panic!("{unshown:?} not shown in three runs: {readings:#?}");
}

/// `--profile` on an experiment that records spans (sampled from its trace) and on one whose
/// workers run the Python model under a sampler (their own frames): the collapsed stacks and the
/// speedscope file hold the same samples, and the flame graph names the hot function.
#[test]
fn profile_writes_a_flame_graph_collapsed_stacks_and_a_speedscope_file_with_the_same_totals() {
    let _beside = beside();
    let dir = std::env::temp_dir().join(format!("conlab-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let output = conlab_run(&[
        "run",
        "lock-contention",
        "--quick",
        "--threads",
        "2",
        "--variant",
        "parking",
        "--flame",
        &file("lock.svg"),
        "--collapsed",
        &file("lock.txt"),
        "--speedscope",
        &file("lock.json"),
    ]);
    let text = stdout(&output);
    assert!(text.contains("profile of the spans each worker was in"), "{text}");
    let stacks = conlab_core::profile::export::parse_collapsed(&std::fs::read_to_string(file("lock.txt")).unwrap())
        .expect("collapsed stacks parse");
    assert!(
        stacks.iter().any(|(path, _)| path.last().is_some_and(|frame| frame == "waiting for the lock")),
        "{stacks:?}"
    );
    let speedscope: Value = serde_json::from_str(&std::fs::read_to_string(file("lock.json")).unwrap()).unwrap();
    let (weight, _) = conlab_core::profile::export::speedscope_totals(&speedscope).unwrap();
    let samples: u64 = stacks.iter().map(|(_, count)| count).sum();
    let period = weight / samples as f64;
    assert!(samples > 0 && (1_000.0..=100_000.0).contains(&period), "{samples} samples, {weight} ns");
    assert!(std::fs::read_to_string(file("lock.svg")).unwrap().contains("holding the lock"));

    let output = conlab_run(&[
        "run",
        "hot-path",
        "--quick",
        "--variant",
        "sampling",
        "--threads",
        "1",
        "--profile",
        "cpu",
        "--flame",
        &file("hot.svg"),
    ]);
    let text = stdout(&output);
    assert!(text.contains("profile of the workers' own frames"), "{text}");
    assert!(text.contains("most self time, on-CPU: transform"), "{text}");
    let svg = std::fs::read_to_string(file("hot.svg")).unwrap();
    assert!(svg.contains("<title>transform — ") && !svg.contains("waiting for the GIL"), "on-CPU only");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn models_matrix_reports_cpu_use_from_the_os() {
    let _alone = alone();
    let output = conlab_run(&[
        "run",
        "models-matrix",
        "--threads",
        "2",
        "--variant",
        "threads,process",
        "--set",
        "tasks=4",
        "--repeat",
        "3",
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: conlab_lab::experiment::RunResult = serde_json::from_str(&stdout(&output)).unwrap();
    let cores = |variant: &str| result.cell(variant, 2).unwrap().metrics["CPU use"].median;
    // The GIL lets one thread compute at a time; two processes compute at once (their CPU time
    // is counted once they have exited).
    assert!(cores("threads") < 1.3, "threads under the GIL use {:.2} cores", cores("threads"));
    assert!(cores("process") > 1.3, "two worker processes use {:.2} cores", cores("process"));
}

#[test]
fn explore_finds_a_failing_schedule_and_replay_runs_it_again() {
    let found = stdout(&conlab_run(&["explore", "abba-deadlock", "--strategy", "random", "--seed", "7"]));
    assert!(
        found.contains(
            "deadlock: A (line 2) waits for lock b, held by B; B (line 2) waits for lock a, held by A — wait-for cycle A → B → A"
        ),
        "{found}"
    );
    let replay_line = found.lines().find(|l| l.starts_with("replay:")).expect("a replay command");
    let schedule = replay_line.split_whitespace().last().unwrap();
    let replayed = stdout(&conlab_run(&["replay", "abba-deadlock", schedule]));
    let steps =
        |text: &str| text.lines().skip_while(|l| !l.starts_with("step")).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(steps(&replayed), steps(&found), "the same steps");
    assert!(replayed.contains("wait-for cycle A → B → A"));

    let proof = stdout(&conlab_run(&["explore", "abba-deadlock-fixed", "--strategy", "dfs", "--bound", "3"]));
    assert!(
        proof.contains("DFS (at most 3 preemptions; carrying on past a yield counts as one): every one of the")
            && proof.contains("schedules within the bound ran to its end and passes — correct within that bound"),
        "{proof}"
    );
    let listed = stdout(&conlab_run(&["scenarios"]));
    assert!(listed.lines().any(|l| l.starts_with("polite-livelock ") && l.contains(" bug ")), "{listed}");

    assert_fails_with(
        &["explore", "abba-deadlock", "--runs", "0"],
        "parameter `runs`: expected an integer from 1 to 1000000, got `0`",
    );
    assert_fails_with(&["replay", "abba-deadlock", "ABC"], "schedule: step 3 is `C`; this scenario's threads are A, B");
    assert_fails_with(
        &["replay", "abba-deadlock", "ABA"],
        "schedule: step 3 is `A`, but A cannot run there (blocked on b)",
    );
    let unknown = conlab_run(&["explore", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8(unknown.stderr)
        .unwrap()
        .starts_with("error: unknown scenario `nope`; known scenarios are lost-update, lost-update-fixed,"));
}

#[test]
fn step_loop_walks_the_event_loop_one_task_step_at_a_time() {
    let listed = stdout(&conlab_run(&["step-loop"]));
    assert_eq!(listed.lines().count(), 6, "{listed}");
    let gather = stdout(&conlab_run(&["step-loop", "gather-sleeps"]));
    assert!(
        gather.contains("timers: 1.000 s wakes nap(1) · 2.000 s wakes nap(2) · 3.000 s wakes nap(3)"),
        "the heap, soonest first: {gather}"
    );
    assert!(gather.contains("nothing is ready: the loop waits for its next timer, at 2.000 s"), "{gather}");
    assert!(gather.contains("asyncio.run returned [1, 2, 3]"), "{gather}");
    let later = stdout(&conlab_run(&["step-loop", "call-later"]));
    assert!(later.contains("finding: call_later's print('too late'), due at 0.500 s, never ran"), "{later}");
    let at = stdout(&conlab_run(&["step-loop", "cancel-cleanup", "--step", "5"]));
    assert!(at.contains("task.cancel()") && at.contains("return_exceptions=True)  ← main"), "{at}");
    assert!(at.contains("worker ready (cancel requested) (line 3)"), "{at}");
    assert_fails_with(
        &["step-loop", "create-task", "--step", "0"],
        "parameter `step`: expected an integer from 1 to 3, got `0`",
    );
    assert_fails_with(
        &["step-loop", "nope"],
        "unknown loop scenario `nope`; known loop scenarios are create-task, gather-sleeps, never-awaited, call-later, \
         cancel-cleanup, round-robin",
    );
}

/// One round line of `--rounds`: what the process held, by name (`threads 5 · open files 4 …`).
fn held(line: &str) -> std::collections::BTreeMap<String, f64> {
    line.split(" · ")
        .filter_map(|part| {
            let (name, value) = part.trim_end_matches(" MB").rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The CLI soak: `conlab run --all --quick` round after round in one process
/// (`CONLAB_SOAK_ROUNDS`: 6 here, ~4 s a round; 20 in `cargo xtask soak`). Every run passes its
/// checks, and the last round ends holding the threads, open files and child processes the
/// first did. Memory: with one malloc arena (glibc otherwise keeps one per thread that
/// allocated, up to 8 per core, each at its own high-water mark: 8 rounds read 17.3 → 34.9 MB,
/// still climbing by 0.1–1.4 MB a round) the resident set levels off after the second round
/// (11.5, 19.9, 21.7, 21.7, 21.7, 21.7 MB): over the later half of the rounds it may grow by at
/// most 1 MB a round.
#[test]
fn run_all_goes_round_every_experiment_holding_nothing_more() {
    let _alone = alone();
    let rounds = conlab_tests::soak_rounds(6);
    let output = Command::new(conlab())
        .env("MALLOC_ARENA_MAX", "1")
        .args([
            "run",
            "--all",
            "--quick",
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--format",
            "json",
            "--rounds",
            &rounds.to_string(),
        ])
        .output()
        .expect("conlab runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let results: Vec<conlab_lab::experiment::RunResult> =
        stdout(&output).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let experiments = conlab_lab::experiment::registry().len();
    assert_eq!(results.len(), experiments * rounds, "{stderr}");
    assert!(results.iter().all(|result| result.all_checks_passed));
    let rounds_held: Vec<_> = stderr.lines().filter(|line| line.starts_with("round ")).map(held).collect();
    println!("{stderr}");
    assert_eq!(rounds_held.len(), rounds, "{stderr}");
    let (first, last) = (&rounds_held[0], &rounds_held[rounds - 1]);
    for gauge in ["threads", "open files", "child processes"] {
        assert!(first.contains_key(gauge), "{gauge}: {stderr}");
        assert_eq!(first[gauge], last[gauge], "{gauge} after round 1 and round {rounds}: {stderr}");
    }
    let half = rounds / 2;
    let growth = (last["resident memory"] - rounds_held[half]["resident memory"]) / (rounds - 1 - half).max(1) as f64;
    println!("CLI soak: resident memory grew {growth:.2} MB a round over rounds {}–{rounds}", half + 1);
    assert!(growth <= 1.0, "{growth:.2} MB a round: {stderr}");
    assert!(
        stderr.ends_with(&format!(
            "{} runs passed their checks; their lessons: {} shown, {} not shown, {} not testable here\n",
            experiments * rounds,
            results
                .iter()
                .flat_map(|r| &r.lessons)
                .filter(|l| matches!(l.verdict, conlab_lab::experiment::Verdict::Shown { .. }))
                .count(),
            results.iter().flat_map(|r| &r.lessons).filter(|l| l.not_shown()).count(),
            results
                .iter()
                .flat_map(|r| &r.lessons)
                .filter(|l| matches!(l.verdict, conlab_lab::experiment::Verdict::NotTestable { .. }))
                .count(),
        )),
        "{stderr}"
    );
}

#[test]
fn run_all_refuses_what_does_not_apply_to_every_experiment() {
    let _beside = beside();
    assert_fails_with(
        &["run", "--all", "--format", "csv"],
        "--format csv: each experiment has columns of its own; with --all use table or json",
    );
    for args in [
        &["run", "--all", "mandelbrot"][..],
        &["run", "--all", "--set", "width=64"],
        &["run", "mandelbrot", "--rounds", "2"],
    ] {
        let output = conlab_run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}
