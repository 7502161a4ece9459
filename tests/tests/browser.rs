//! The web lab end to end in headless Chromium: build output served by `conlab serve`, driven
//! through chromedriver's W3C WebDriver API. Needs `dist/` (trunk) and Chromium; `cargo xtask
//! test` provides both and runs this suite with `--ignored`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use conlab_tests::{free_port, root, serve, Guard};
use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A WebDriver session (W3C protocol over HTTP), deleted on drop.
struct Browser {
    base: String,
    session: String,
    _driver: Guard,
}

impl Browser {
    fn start(profile: &std::path::Path) -> Self {
        let port = free_port();
        let driver = Guard(
            std::process::Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("chromedriver starts (cargo xtask setup installs it)"),
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_until(Duration::from_secs(20), "chromedriver to listen", || ureq::get(&format!("{base}/status")).call().is_ok());
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1600",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let created: Value = ureq::post(&format!("{base}/session")).send_json(capabilities).expect("a session").into_json().unwrap();
        let session = created["value"]["sessionId"].as_str().expect("session id").to_string();
        Self { base, session, _driver: driver }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn navigate(&self, url: &str) {
        ureq::post(&self.url("/url")).send_json(json!({ "url": url })).expect("navigation");
    }

    /// Runs `body` as a function in the page and returns its value.
    fn eval(&self, body: &str) -> Value {
        let response = ureq::post(&self.url("/execute/sync")).send_json(json!({ "script": body, "args": [] }));
        match response {
            Ok(response) => response.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(_, response)) => panic!("script failed: {}\n{body}", response.into_string().unwrap_or_default()),
            Err(error) => panic!("webdriver: {error}"),
        }
    }

    fn screenshot(&self, path: &std::path::Path) {
        let value: Value = ureq::get(&self.url("/screenshot")).call().unwrap().into_json().unwrap();
        let png = base64::engine::general_purpose::STANDARD.decode(value["value"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn console(&self) -> Vec<Value> {
        let value: Value = ureq::post(&self.url("/se/log")).send_json(json!({ "type": "browser" })).unwrap().into_json().unwrap();
        value["value"].as_array().cloned().unwrap_or_default()
    }

    fn status(&self) -> (String, String) {
        let value = self.eval("const s = document.getElementById('status'); return [s.dataset.state, s.textContent];");
        (value[0].as_str().unwrap_or("").into(), value[1].as_str().unwrap_or("").into())
    }

    /// Waits for the status to reach one of `states`, failing with the page's last status.
    fn wait_for_status(&self, states: &[&str], timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let (state, text) = self.status();
            if states.contains(&state.as_str()) {
                return state;
            }
            assert!(start.elapsed() < timeout, "status still {state:?} ({text}) after {timeout:?}; console: {:#?}", self.console());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
    }
}

fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn artifacts() -> PathBuf {
    root().join("target/browser-e2e")
}

/// Fills the form for `experiment` (params by name) and submits it.
fn submit(browser: &Browser, experiment: &str, params: &[(&str, &str)], threads: &str, repeat: u32) {
    let params: serde_json::Map<String, Value> = params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    browser.eval(&format!(
        r#"const select = document.getElementById('experiment-select');
           select.value = {experiment}; select.dispatchEvent(new Event('change'));
           for (const [name, value] of Object.entries({params})) document.querySelector(`[data-param="${{name}}"]`).value = value;
           document.getElementById('threads').value = {threads};
           document.getElementById('repeat').value = {repeat};
           document.getElementById('run-button').click();"#,
        experiment = json!(experiment),
        params = Value::Object(params),
        threads = json!(threads),
    ));
}

#[test]
#[ignore = "needs dist/ and Chromium: run by `cargo xtask test`"]
fn the_lab_runs_mandelbrot_on_two_threads_and_draws_the_results() {
    let dist = root().join("dist");
    assert!(dist.join("index.html").is_file(), "build the lab first (cargo xtask test does)");
    let (_server, url) = serve(&dist);
    let profile = tempdir("profile");
    let browser = Browser::start(&profile);
    browser.navigate(&url);
    browser.wait_for_status(&["ready"], Duration::from_secs(60));

    let environment =
        browser.eval("return [self.crossOriginIsolated, navigator.hardwareConcurrency, document.getElementById('env-list').innerText];");
    assert_eq!(environment[0], json!(true), "conlab serve must make the page cross-origin isolated");
    let env_text = environment[2].as_str().unwrap();
    assert!(env_text.contains("wasm threads\non — pool of"), "{env_text}");
    assert_eq!(browser.eval("return document.getElementById('isolation-banner').hidden;"), json!(true));

    // Bad input: the same message as the CLI, and nothing runs.
    submit(&browser, "mandelbrot", &[("width", "99999")], "1,2", 3);
    let error = browser.eval("return document.getElementById('form-error').textContent;");
    assert_eq!(error, json!("parameter `width`: expected an integer from 16 to 4096, got `99999`"));
    assert_eq!(browser.status().0, "ready");

    submit(&browser, "mandelbrot", &[], "1,2", 5);
    let state = browser.wait_for_status(&["done", "error"], Duration::from_secs(180));
    assert_eq!(state, "done", "{:?}", browser.status());
    let rows = browser.eval(
        "return [...document.querySelectorAll('#table tbody tr')].map(r => [r.dataset.variant, r.dataset.threads, r.dataset.check, ...[...r.cells].map(c => c.textContent)]);",
    );
    let rows = rows.as_array().unwrap();
    let has = |variant: &str, threads: &str| rows.iter().any(|r| r[0] == json!(variant) && r[1] == json!(threads) && r[2] == json!("ok"));
    for (variant, threads) in [("seq", "1"), ("team", "1"), ("team", "2"), ("rayon", "1"), ("rayon", "2")] {
        assert!(has(variant, threads), "no passing row for {variant} × {threads}: {rows:#?}");
    }
    let chart = browser.eval("return [document.querySelectorAll('#chart svg polyline.measured').length, document.querySelectorAll('#chart svg line.ideal').length];");
    assert_eq!(chart, json!([3, 1]), "a line per variant and the ideal line");
    let exports = browser.eval("return [...document.querySelectorAll('#exports a')].map(a => a.download);");
    assert_eq!(exports, json!(["conlab-mandelbrot.json", "conlab-mandelbrot.csv", "conlab-mandelbrot.svg"]));
    browser.screenshot(&artifacts().join("mandelbrot.png"));
    println!("browser mandelbrot table (median, CI, pixels/s, vs seq, vs 1 thread):");
    for row in rows {
        println!("  {:<6} {} thread(s): {} | {} | {} | {} | {}", row[3].as_str().unwrap(), row[4], row[5], row[6], row[7], row[8], row[9]);
    }

    let severe: Vec<_> = browser.console().into_iter().filter(|entry| entry["level"] == json!("SEVERE")).collect();
    assert!(severe.is_empty(), "console errors: {severe:#?}");
}

#[test]
#[ignore = "needs dist/ and Chromium: run by `cargo xtask test`"]
fn cancel_stops_a_long_run_and_the_lab_stays_usable() {
    let (_server, url) = serve(&root().join("dist"));
    let profile = tempdir("profile-cancel");
    let browser = Browser::start(&profile);
    browser.navigate(&url);
    browser.wait_for_status(&["ready"], Duration::from_secs(60));

    // 8 calls of 1 s each, sequentially, 5 times: ~40 s if cancel did not work.
    submit(&browser, "io-fanout", &[("latency", "1000")], "1", 5);
    browser.wait_for_status(&["running"], Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let clicked = Instant::now();
    browser.eval("document.getElementById('cancel-button').click();");
    assert_eq!(browser.wait_for_status(&["cancelled", "error", "done"], Duration::from_secs(5)), "cancelled");
    println!("cancel took effect after {:?}", clicked.elapsed());

    submit(&browser, "io-fanout", &[("latency", "2")], "1,2", 3);
    assert_eq!(browser.wait_for_status(&["done", "error"], Duration::from_secs(60)), "done", "{:?}", browser.status());
}

#[test]
#[ignore = "needs dist/ and Chromium: run by `cargo xtask test`"]
fn without_isolation_headers_the_page_explains_and_falls_back_to_one_thread() {
    // A server without COOP/COEP: python's http.server stands in for a plain static host.
    let port = free_port();
    let _server = Guard(
        std::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(root().join("dist"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs"),
    );
    wait_until(Duration::from_secs(10), "the plain server", || ureq::get(&format!("http://127.0.0.1:{port}/")).call().is_ok());
    let profile = tempdir("profile-plain");
    let browser = Browser::start(&profile);
    browser.navigate(&format!("http://127.0.0.1:{port}/"));
    browser.wait_for_status(&["ready"], Duration::from_secs(60));
    let banner = browser.eval("const b = document.getElementById('isolation-banner'); return [b.hidden, b.textContent];");
    assert_eq!(banner[0], json!(false));
    assert!(banner[1].as_str().unwrap().contains("Cross-Origin-Embedder-Policy: require-corp"), "{banner}");
    submit(&browser, "mandelbrot", &[("width", "64"), ("height", "48")], "1", 2);
    assert_eq!(browser.wait_for_status(&["done", "error"], Duration::from_secs(60)), "done", "{:?}", browser.status());
    let rows = browser.eval("return [...document.querySelectorAll('#table tbody tr')].map(r => [r.dataset.variant, r.dataset.check]);");
    assert!(rows.as_array().unwrap().contains(&json!(["seq", "ok"])), "{rows}");
    assert!(rows.as_array().unwrap().contains(&json!(["rayon", "skipped"])), "rayon needs the pool: {rows}");
    browser.screenshot(&artifacts().join("no-isolation.png"));
}

fn tempdir(name: &str) -> PathBuf {
    let dir = artifacts().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
