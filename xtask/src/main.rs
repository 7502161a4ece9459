//! `cargo xtask setup | lab | test | bench | soak | check-deep` — conlab's orchestration (the
//! cargo xtask convention).
//!
//! - `setup`: installs what is missing, each step skipped when the right version is present:
//!   the wasm nightly (with rust-src, clippy and the wasm32 target), wasm-bindgen-cli at Cargo.lock's
//!   exact version, trunk, wasm-opt (npm `binaryen`), python3 and Chromium with chromedriver
//!   (apt, as root);
//!   for `test` also TypeScript (npm), Firefox ESR (apt) and geckodriver (`cargo install`).
//! - `lab [--port P]`: setup, build the web lab with trunk, serve it with `conlab serve`.
//! - `dist [--out DIR]`: setup, build the web lab, and make it a static site any host can serve
//!   (`target/site` unless told; see `site`): a service worker supplies the isolation headers
//!   where the host cannot, and keeps the lab for offline use.
//! - `test`: setup, native tests, the web build, tidy (rustfmt, clippy native and wasm, tsc over
//!   the page and the workers), loom model checks, Miri and ThreadSanitizer on the core, wasm
//!   tests in headless Chromium, and the browser end-to-end suite.
//! - `bench`: the side-by-side benchmarks: locks vs std and parking_lot, our event loop vs tokio
//!   and CPython asyncio, our MPMC ring vs crossbeam's ArrayQueue, our schedulers vs rayon
//!   (natively and in Chromium), wasm in Chromium vs native (each alternated within one run),
//!   and the runner's own overhead per run (natively and in a Chromium worker).
//! - `soak`: the long sessions whose short forms `test` runs: `conlab run --all --quick` 20
//!   rounds in one process, and one page session running every quick preset 5 times.
//! - `check-deep`: ThreadSanitizer over every experiment (`test` runs it over the core).
//!
//! Native builds use the default (stable) toolchain. wasm builds need nightly and
//! `-Z build-std`; there is deliberately no rust-toolchain.toml (see ARCHITECTURE.md), so the
//! nightly is selected per command through `rustup run` and build-std through
//! `CARGO_UNSTABLE_BUILD_STD` — never for native builds.
#![allow(
    clippy::disallowed_methods,
    reason = "tooling, native only: the lab's platform rules are for the code that also runs in browsers"
)]

mod site;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The nightly proven to build the threaded wasm (toolchain notes in ARCHITECTURE.md).
const WASM_NIGHTLY: &str = "nightly-2026-05-20";
const TRUNK_VERSION: &str = "0.22.1";
const BINARYEN_VERSION: &str = "132.0.0";
/// The last TypeScript written in JavaScript (7 is a native port); it checks our JSDoc types.
const TYPESCRIPT_VERSION: &str = "6.0.3";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const FIREFOX: &str = "/usr/bin/firefox-esr";
const GECKODRIVER_VERSION: &str = "0.37.1";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome =
        match args.first().map(String::as_str) {
            Some("setup") => setup().and_then(|()| setup_test_tools()),
            Some("lab") => lab(&args[1..]),
            Some("dist") => dist(&args[1..]),
            Some("test") => test(),
            Some("bench") => bench(),
            Some("soak") => soak(),
            Some("check-deep") => check_deep(),
            _ => Err("usage: cargo xtask setup | lab [--port P] | dist [--out DIR] | test | bench | soak | check-deep"
                .into()),
        };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a command in the workspace root, echoing it; fails with its name if it fails.
fn run(command: &mut Command) -> Result {
    eprintln!("xtask: $ {}", describe(command));
    let status =
        command.current_dir(root()).status().map_err(|e| format!("cannot start `{}`: {e}", describe(command)))?;
    status.success().then_some(()).ok_or_else(|| format!("`{}` failed ({status})", describe(command)))
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first line a command prints, or None if it cannot run.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A step that is skipped when `present` says so, timed when it runs.
fn step(name: &str, present: bool, install: impl FnOnce() -> Result) -> Result {
    if present {
        eprintln!("xtask: setup: {name}: present");
        return Ok(());
    }
    eprintln!("xtask: setup: {name}: installing…");
    let start = Instant::now();
    install()?;
    eprintln!("xtask: setup: {name}: installed in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn lockfile_version(package: &str) -> Result<String> {
    let lock =
        std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(version.trim_end_matches('"').to_string());
            }
        }
    }
    Err(format!("{package} is not in Cargo.lock"))
}

fn is_root() -> bool {
    output_of("id", &["-u"]).as_deref() == Some("0")
}

fn setup() -> Result {
    let nightly_ready = {
        // Both lists are empty (the command fails) when the toolchain is not installed.
        let targets =
            output_of("rustup", &["target", "list", "--installed", "--toolchain", WASM_NIGHTLY]).unwrap_or_default();
        let components =
            output_of("rustup", &["component", "list", "--installed", "--toolchain", WASM_NIGHTLY]).unwrap_or_default();
        targets.contains("wasm32-unknown-unknown") && components.contains("rust-src") && components.contains("clippy")
    };
    step(&format!("{WASM_NIGHTLY} with rust-src, clippy and wasm32"), nightly_ready, || {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            WASM_NIGHTLY,
            "--profile",
            "minimal",
            "--no-self-update",
        ]))?;
        // Explicit and idempotent: `toolchain install` need not add these to an existing toolchain.
        run(Command::new("rustup").args(["component", "add", "--toolchain", WASM_NIGHTLY, "rust-src", "clippy"]))?;
        run(Command::new("rustup").args(["target", "add", "--toolchain", WASM_NIGHTLY, "wasm32-unknown-unknown"]))
    })?;

    let bindgen = lockfile_version("wasm-bindgen")?;
    let bindgen_ready = output_of("wasm-bindgen", &["--version"])
        .is_some_and(|v| v == format!("wasm-bindgen {bindgen}"))
        && output_of("wasm-bindgen-test-runner", &["--version"]).is_some();
    // A debug build, as for trunk and geckodriver below: it installs in 56 s instead of 117 s
    // here and binds the lab's 28 MB module in 2.8 s instead of 0.7 s, once a build.
    step(&format!("wasm-bindgen-cli {bindgen} (~1 min on 2 cores)"), bindgen_ready, || {
        run(Command::new(cargo()).args(["install", "--locked", "--debug", "wasm-bindgen-cli", "--version", &bindgen]))
    })?;

    let trunk_ready = output_of("trunk", &["--version"]).is_some_and(|v| v == format!("trunk {TRUNK_VERSION}"));
    // A debug build: trunk only orchestrates (cargo, wasm-bindgen and wasm-opt do the heavy
    // work), and unoptimised it installs in ~5.5 min instead of 12–16 while a lab build takes
    // ~5 s longer (56 s against 51 s of post-processing here).
    step(&format!("trunk {TRUNK_VERSION} (~6 min on 2 cores)"), trunk_ready, || {
        run(Command::new(cargo()).env("RUSTUP_TOOLCHAIN", WASM_NIGHTLY).args([
            "install",
            "--locked",
            "--debug",
            "trunk",
            "--version",
            TRUNK_VERSION,
        ]))
    })?;

    let major = BINARYEN_VERSION.split('.').next().unwrap_or_default();
    let wasm_opt_ready = output_of("wasm-opt", &["--version"]).is_some_and(|v| v.contains(&format!("version {major}")));
    step(&format!("wasm-opt (npm binaryen@{BINARYEN_VERSION})"), wasm_opt_ready, || {
        run(Command::new("npm").args(["install", "-g", &format!("binaryen@{BINARYEN_VERSION}")]))
    })?;
    if output_of("wasm-opt", &["--version"]).is_some_and(|v| !v.contains(&format!("version {major}"))) {
        return Err(format!("another wasm-opt comes first on PATH (Debian's binaryen corrupts threaded modules); put npm's binaryen@{BINARYEN_VERSION} first"));
    }

    // `conlab calibrate-python` and its test compare the model with the real interpreter.
    step("python3", output_of("python3", &["--version"]).is_some(), || {
        if !is_root() {
            return Err("run as root, or yourself: sudo apt-get update && sudo apt-get install -y python3".into());
        }
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get").args(["install", "-y", "-qq", "python3"]).env("DEBIAN_FRONTEND", "noninteractive"))
    })?;

    let browser_ready =
        output_of(CHROMIUM, &["--version"]).is_some() && output_of(CHROMEDRIVER, &["--version"]).is_some();
    step("chromium and chromedriver", browser_ready, || {
        if !is_root() {
            return Err(
                "run as root, or yourself: sudo apt-get update && sudo apt-get install -y chromium chromium-driver"
                    .into(),
            );
        }
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    })
}

/// What the test suite needs beyond the lab: TypeScript (tidy type-checks the page's
/// JavaScript), Firefox ESR and geckodriver (the browser suite runs the lab in Firefox too).
fn setup_test_tools() -> Result {
    let miri_ready = output_of("rustup", &["component", "list", "--installed", "--toolchain", WASM_NIGHTLY])
        .is_some_and(|installed| installed.lines().any(|line| line.starts_with("miri")));
    step(&format!("miri on {WASM_NIGHTLY}"), miri_ready, || {
        run(Command::new("rustup").args(["component", "add", "--toolchain", WASM_NIGHTLY, "miri"]))
    })?;
    let tsc_ready = output_of("tsc", &["--version"]).is_some_and(|v| v == format!("Version {TYPESCRIPT_VERSION}"));
    step(&format!("tsc (npm typescript@{TYPESCRIPT_VERSION})"), tsc_ready, || {
        run(Command::new("npm").args(["install", "-g", &format!("typescript@{TYPESCRIPT_VERSION}")]))
    })?;
    step("firefox-esr", output_of(FIREFOX, &["--version"]).is_some(), || {
        if !is_root() {
            return Err("run as root, or yourself: sudo apt-get update && sudo apt-get install -y firefox-esr".into());
        }
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "firefox-esr"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    })?;
    // Debian does not package geckodriver; it is a Rust program on crates.io. A debug build: it
    // only relays WebDriver commands to Firefox, and installs in 48 s instead of 87 s here.
    let geckodriver_ready = output_of("geckodriver", &["--version"]).is_some_and(|v| v.contains(GECKODRIVER_VERSION));
    step(&format!("geckodriver {GECKODRIVER_VERSION} (~1 min on 2 cores)"), geckodriver_ready, || {
        run(Command::new(cargo()).args([
            "install",
            "--locked",
            "--debug",
            "geckodriver",
            "--version",
            GECKODRIVER_VERSION,
        ]))
    })
}

/// `program` on the wasm toolchain: `rustup run <nightly>` (which also puts the nightly first
/// on PATH, for the cargo that trunk starts), build-std, and no environment RUSTFLAGS (they
/// would replace the atomics and shared-memory flags of .cargo/config.toml). Not `$CARGO`: under
/// `cargo xtask` it names stable's cargo binary itself, which ignores RUSTUP_TOOLCHAIN.
fn wasm_command(program: &str) -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", WASM_NIGHTLY, program])
        .env("CARGO_UNSTABLE_BUILD_STD", "panic_abort,std")
        .env("TRUNK_SKIP_VERSION_CHECK", "true")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    command
}

/// Miri's runs: (MIRIFLAGS, test target, test filters).
const MIRI_RUNS: &[(&str, &str, &[&str])] = &[
    // Miri fails weak compare-exchanges now and then, as some CPUs may: every retry path runs.
    (
        "",
        "--lib",
        &["ds::ring", "ds::channel", "ds::treiber::tests::pops", "sched::", "locks::", "aio::wake", "aio::blocks"],
    ),
    // The ABA test plays one interleaving out by hand; a spurious CAS failure (never on x86)
    // would make the untagged pop retry and dodge the bug it shows.
    ("-Zmiri-compare-exchange-weak-failure-rate=0.0", "--lib", &["ds::treiber::tests::the_aba"]),
    // crossbeam-epoch 0.9 (the Michael–Scott queue's reclamation) is clean under Tree Borrows,
    // not Stacked Borrows, and its global collector keeps deferred garbage at exit: crossbeam's
    // own Miri runs use the same two flags for it.
    ("-Zmiri-tree-borrows -Zmiri-ignore-leaks", "--lib", &["ds::msqueue"]),
    // The threading prims (on the futex parker) and the event loop with its thread bridge.
    ("", "--test=primitives", &["prims::", "aio::"]),
];

/// `cargo miri test` of conlab-core on the pinned nightly (whose miri component
/// `setup_test_tools` installs); the test target and filters follow.
fn miri_command() -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", WASM_NIGHTLY, "cargo", "miri", "test", "--locked", "--package", "conlab-core"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    command
}

/// The tests ThreadSanitizer skips: the busy spins, which time themselves against a clock that
/// TSan slows several-fold. The races on purpose need no exclusion: the lab's lost update and
/// untagged ABA stack race through atomics (a lost update, a corrupted stack — no data race in
/// the memory model's sense), so TSan runs them with the rest and reports nothing.
const TSAN_SKIPS: &[&str] = &["kernels::spin"];

/// ThreadSanitizer over the tests that `target` selects, built with std instrumented
/// (`-Zbuild-std`) on the pinned nightly, in a target dir of its own. crossbeam-epoch's
/// `crossbeam_sanitize_thread` swaps its fences, which TSan does not model, for the orders TSan
/// checks (crossbeam's own CI does the same).
fn tsan_command(target: &[&str]) -> Result<Command> {
    let host = output_of("rustc", &["-vV"])
        .and_then(|info| info.lines().find_map(|line| line.strip_prefix("host: ").map(String::from)))
        .ok_or("cannot read the host triple from `rustc -vV`")?;
    let mut command = Command::new("rustup");
    command
        .args(["run", WASM_NIGHTLY, "cargo", "test", "--release", "--locked"])
        .args(target)
        .args(["--target", &host, "--target-dir"])
        .arg(root().join("target/tsan"))
        .env("RUSTFLAGS", "-Zsanitizer=thread --cfg crossbeam_sanitize --cfg crossbeam_sanitize_thread")
        .env("CARGO_UNSTABLE_BUILD_STD", "std")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .arg("--");
    for skip in TSAN_SKIPS {
        command.args(["--skip", skip]);
    }
    Ok(command)
}

/// conlab-core's unit tests and primitives suite under TSan: every lock, queue, pool, prim and
/// the event loop's thread bridge on real threads.
const TSAN_CORE: &[&str] = &["--package", "conlab-core", "--lib", "--test", "primitives"];

/// Every experiment on every variant under TSan (the lab's small-settings check): another
/// instrumented build and ~50 s of runs, beyond CI's budget, so `check-deep` runs it.
const TSAN_EXPERIMENTS: &[&str] =
    &["--package", "conlab-lab", "--test", "lab", "every_experiment_passes_its_correctness_check_on_every_variant"];

/// The checks too slow for CI's budget (see `TSAN_EXPERIMENTS`).
fn check_deep() -> Result {
    setup()?;
    setup_test_tools()?;
    run(&mut tsan_command(TSAN_EXPERIMENTS)?)
}

/// `tsc` over the page's modules and over the workers (the latter against the wasm module's
/// bindings, `dist/conlab-web.d.ts`, which the web build writes).
fn type_check_javascript() -> Result {
    for project in ["web/tsconfig.json", "web/tsconfig.worker.json"] {
        run(Command::new("tsc").arg("--project").arg(root().join(project)))?;
    }
    Ok(())
}

fn build_web() -> Result {
    run(wasm_command("trunk").args(["build", "--release"]))?;
    report_wasm_size()
}

/// Prints the release wasm's size (after wasm-opt, which trunk runs when it is on PATH).
fn report_wasm_size() -> Result {
    let dist = root().join("dist");
    let entries = std::fs::read_dir(&dist).map_err(|e| format!("reading {}: {e}", dist.display()))?;
    for path in entries.filter_map(|entry| entry.ok()).map(|entry| entry.path()) {
        if path.extension().is_some_and(|ext| ext == "wasm") {
            let bytes = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?.len();
            println!(
                "xtask: web lab: {} is {:.2} MiB",
                path.file_name().unwrap_or_default().to_string_lossy(),
                bytes as f64 / (1 << 20) as f64
            );
        }
    }
    Ok(())
}

fn lab(args: &[String]) -> Result {
    let port = match args {
        [] => "8080".to_string(),
        [flag, port] if flag == "--port" => port.clone(),
        _ => return Err("usage: cargo xtask lab [--port P]".into()),
    };
    setup()?;
    build_web()?;
    run(Command::new(cargo()).args(["build", "--release", "--package", "conlab"]))?;
    eprintln!("xtask: the lab is built; open the URL below (tested in Chromium)");
    run(Command::new(root().join("target/release/conlab"))
        .args(["serve", "--port", &port, "--dir"])
        .arg(root().join("dist")))
}

fn dist(args: &[String]) -> Result {
    let out = match args {
        [] => root().join("target/site"),
        [flag, out] if flag == "--out" => PathBuf::from(out),
        _ => return Err("usage: cargo xtask dist [--out DIR]".into()),
    };
    setup()?;
    build_web()?;
    make_site(&out)?;
    eprintln!("xtask: upload the whole folder {} to the host; README's \"Publish the lab\" says how", out.display());
    Ok(())
}

/// The static site of the lab just built (`dist/`) in `out`.
fn make_site(out: &Path) -> Result {
    let site = site::assemble(&root().join("dist"), &root().join("web/www/site"), out)?;
    eprintln!(
        "xtask: static site in {}: build {}, {} files, {:.2} MiB (the service worker caches them all)",
        out.display(),
        site.version,
        site.files.len(),
        site.bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}

fn test() -> Result {
    let total = Instant::now();
    let mut timings = Vec::new();
    let mut timed = |name: &str, work: &mut dyn FnMut() -> Result| -> Result {
        let start = Instant::now();
        eprintln!("\nxtask: ==== {name} ====");
        let outcome = work();
        timings.push(format!(
            "{name}: {:.0} s{}",
            start.elapsed().as_secs_f64(),
            if outcome.is_ok() { "" } else { " (FAILED)" }
        ));
        outcome
    };
    let outcome = (|| {
        timed("setup", &mut || setup().and_then(|()| setup_test_tools()))?;
        timed("native tests", &mut || run(Command::new(cargo()).args(["test", "--workspace", "--locked"])))?;
        // Before tidy: the workers' type check reads the bindings this build writes.
        timed("web lab build (trunk) and its static site", &mut || {
            build_web()?;
            make_site(&root().join("target/site"))
        })?;
        timed("tidy (rustfmt, clippy, tsc)", &mut || {
            run(Command::new(cargo()).args(["fmt", "--all", "--check"]))?;
            run(Command::new(cargo()).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]))?;
            // The wasm-only code (platform/wasm.rs, the web crate's exports) is linted on its target.
            run(wasm_command("cargo")
                .args(["clippy", "--locked", "--target", "wasm32-unknown-unknown", "--package", "conlab-core"])
                .args([
                    "--package",
                    "conlab-lab",
                    "--package",
                    "conlab-web",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))?;
            type_check_javascript()
        })?;
        timed("loom model checks", &mut || {
            // Its own target dir: `--cfg loom` changes every crate's build; `crossbeam_loom` puts
            // crossbeam-epoch (the Michael–Scott queue's reclamation) on loom's atomics too.
            run(Command::new(cargo())
                .args(["test", "--release", "--locked", "--package", "conlab-core", "--test", "loom", "--target-dir"])
                .arg(root().join("target/loom"))
                .env("RUSTFLAGS", "--cfg loom --cfg crossbeam_loom"))
        })?;
        timed("Miri on the unsafe core", &mut || {
            // The lock-free structures, the locks, both pools, the prims and the event loop,
            // their stress tests shrunk under cfg(miri) and the tests that time against the
            // clock skipped there (Miri's clock is virtual). Not under Miri: the process pools
            // (Miri cannot start a process) and the experiments (minutes each).
            for (flags, target, filters) in MIRI_RUNS {
                run(miri_command().env("MIRIFLAGS", flags).arg(target).arg("--").args(*filters))?;
            }
            Ok(())
        })?;
        timed("ThreadSanitizer on the core's stress tests", &mut || run(&mut tsan_command(TSAN_CORE)?))?;
        timed("wasm tests in headless Chromium", &mut || run(&mut wasm_test_command()))?;
        timed("browser end-to-end", &mut || run_browser_suite("browser"))
    })();
    eprintln!("\nxtask: test steps: {}; total {:.0} s", timings.join(", "), total.elapsed().as_secs_f64());
    outcome
}

/// The wasm suite (`lab/tests/wasm.rs`) in headless Chromium; release, as the lab runs: timing
/// laws (spins, speedups) hold for optimised wasm.
fn wasm_test_command() -> Command {
    let mut command = wasm_command("cargo");
    command
        .args(["test", "--release", "--locked", "--package", "conlab-lab", "--test", "wasm"])
        .args(["--target", "wasm32-unknown-unknown"])
        .env("CHROMEDRIVER", CHROMEDRIVER)
        .env("WASM_BINDGEN_USE_BROWSER", "1")
        .env("WASM_BINDGEN_TEST_TIMEOUT", "300")
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", root().join("webdriver.json"));
    command
}

fn bench() -> Result {
    // The event loop against tokio (core); the others time the lab's experiments (lab).
    for (package, bench) in [
        ("conlab-lab", "locks"),
        ("conlab-lab", "sched"),
        ("conlab-core", "aio"),
        ("conlab-core", "echo"),
        ("conlab-lab", "ds"),
        ("conlab-lab", "kernels"),
        ("conlab-lab", "harness"),
    ] {
        run(Command::new(cargo()).args(["bench", "--locked", "--package", package, "--bench", bench]))?;
    }
    setup()?;
    // The harness benchmark's browser twin: an ignored test of the wasm suite, in a Chromium worker.
    run(wasm_test_command().args(["--", "--include-ignored", "--nocapture", "harness_overhead_in_a_browser_worker"]))?;
    build_web()?;
    run_browser_suite("wasm_vs_native")?;
    run_browser_suite("steal_vs_rayon")
}

/// The soaks at full length (`test` runs 6 rounds of the CLI's, 3 of the page's): threads,
/// files, processes, workers and memory after every round, printed.
fn soak() -> Result {
    setup()?;
    setup_test_tools()?;
    build_web()?;
    run(Command::new(cargo())
        .args(["test", "--locked", "--package", "conlab-tests", "--test", "end_to_end", "--"])
        .args(["--nocapture", "cli::run_all_goes_round_every_experiment_holding_nothing_more"])
        .env("CONLAB_SOAK_ROUNDS", "20"))?;
    run(Command::new(cargo())
        .args(["test", "--locked", "--package", "conlab-tests", "--test", "end_to_end", "--"])
        .args(["--ignored", "--nocapture", "--test-threads=1", "browser::a_long_session"])
        .env("CONLAB_SOAK_ROUNDS", "5"))
}

/// A suite of `tests/` that drives Chromium: `#[ignore]`d in plain `cargo test`, run here with
/// the built lab present. One Chromium at a time: on 2 cores, parallel browsers distort timings.
/// Runs the `#[ignore]`d tests of one module of the end-to-end binary (`browser`, a benchmark).
fn run_browser_suite(suite: &str) -> Result {
    run(Command::new(cargo())
        .args(["test", "--locked", "--package", "conlab-tests", "--test", "end_to_end", "--"])
        .args(["--ignored", "--nocapture", "--test-threads=1", &format!("{suite}::")]))
}
