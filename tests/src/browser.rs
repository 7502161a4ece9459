//! A minimal W3C WebDriver client for chromedriver and geckodriver (sessions, navigation,
//! scripts, screenshots, Chromium's console) and helpers to drive the lab page.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{free_port, root, Guard};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const FIREFOX: &str = "/usr/bin/firefox-esr";
/// On PATH: `cargo xtask setup` installs it with `cargo install` (Debian does not package it).
const GECKODRIVER: &str = "geckodriver";

/// A WebDriver session (W3C protocol over HTTP), deleted on drop.
pub struct Browser {
    base: String,
    session: String,
    _driver: Guard,
}

/// Starts a WebDriver server and opens a session with `capabilities`.
fn session(driver: &str, port_arg: impl Fn(u16) -> String, capabilities: Value) -> Browser {
    let port = free_port();
    let process = Guard(
        std::process::Command::new(driver)
            .arg(port_arg(port))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{driver} starts (cargo xtask setup installs it): {e}")),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "the WebDriver server to listen", || {
        ureq::get(&format!("{base}/status")).call().is_ok()
    });
    let created: Value =
        ureq::post(&format!("{base}/session")).send_json(capabilities).expect("a session").into_json().unwrap();
    let session = created["value"]["sessionId"].as_str().expect("session id").to_string();
    Browser { base, session, _driver: process }
}

impl Browser {
    /// Headless Firefox ESR through geckodriver, in a fresh profile of geckodriver's.
    pub fn start_firefox() -> Self {
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "firefox",
            "moz:firefoxOptions": { "binary": FIREFOX, "args": ["-headless", "--width=1280", "--height=1600"] },
        }}});
        session(GECKODRIVER, |port| format!("--port={port}"), capabilities)
    }

    pub fn start(profile: &Path) -> Self {
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
        session(CHROMEDRIVER, |port| format!("--port={port}"), capabilities)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    pub fn navigate(&self, url: &str) {
        ureq::post(&self.url("/url")).send_json(json!({ "url": url })).expect("navigation");
    }

    /// Runs `body` as a function in the page and returns its value.
    pub fn eval(&self, body: &str) -> Value {
        let response = ureq::post(&self.url("/execute/sync")).send_json(json!({ "script": body, "args": [] }));
        match response {
            Ok(response) => response.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(_, response)) => {
                panic!("script failed: {}\n{body}", response.into_string().unwrap_or_default())
            }
            Err(error) => panic!("webdriver: {error}"),
        }
    }

    pub fn screenshot(&self, path: &Path) {
        let value: Value = ureq::get(&self.url("/screenshot")).call().unwrap().into_json().unwrap();
        let png = base64::engine::general_purpose::STANDARD.decode(value["value"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The browser console (chromedriver's log endpoint; empty under geckodriver, which has none).
    pub fn console(&self) -> Vec<Value> {
        let Ok(response) = ureq::post(&self.url("/se/log")).send_json(json!({ "type": "browser" })) else {
            return Vec::new();
        };
        let value: Value = response.into_json().unwrap_or_default();
        value["value"].as_array().cloned().unwrap_or_default()
    }

    pub fn status(&self) -> (String, String) {
        let value = self.eval("const s = document.getElementById('status'); return [s.dataset.state, s.textContent];");
        (value[0].as_str().unwrap_or("").into(), value[1].as_str().unwrap_or("").into())
    }

    /// Waits for the status to reach one of `states`, failing with the page's last status.
    pub fn wait_for_status(&self, states: &[&str], timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let (state, text) = self.status();
            if states.contains(&state.as_str()) {
                return state;
            }
            assert!(
                start.elapsed() < timeout,
                "status still {state:?} ({text}) after {timeout:?}; console: {:#?}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
    }
}

pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the page has started its process workers (the Web Workers that process pools
/// run on), which load after the thread pool.
pub fn wait_for_process_workers(browser: &Browser) {
    wait_until(Duration::from_secs(60), "the process workers", || {
        browser.eval("return Number(document.body.dataset.processWorkers || 0);").as_u64().unwrap_or(0) >= 2
    });
}

pub fn artifacts() -> PathBuf {
    root().join("target/browser-e2e")
}

/// Fills the lab's form for `experiment` (params by name) and submits it.
pub fn submit(browser: &Browser, experiment: &str, params: &[(&str, &str)], threads: &str, repeat: u32) {
    submit_variants(browser, experiment, params, &[], threads, repeat)
}

/// [`submit`] with only `variants` ticked (all when empty).
pub fn submit_variants(
    browser: &Browser,
    experiment: &str,
    params: &[(&str, &str)],
    variants: &[&str],
    threads: &str,
    repeat: u32,
) {
    let params: serde_json::Map<String, Value> = params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    browser.eval(&format!(
        r#"const select = document.getElementById('experiment-select');
           select.value = {experiment}; select.dispatchEvent(new Event('change'));
           for (const [name, value] of Object.entries({params})) document.querySelector(`[data-param="${{name}}"]`).value = value;
           const only = {variants};
           if (only.length) document.querySelectorAll('[name=variant]').forEach((box) => {{ box.checked = only.includes(box.value); }});
           document.getElementById('threads').value = {threads};
           document.getElementById('repeat').value = {repeat};
           document.getElementById('run-button').click();"#,
        experiment = json!(experiment),
        params = Value::Object(params),
        variants = json!(variants),
        threads = json!(threads),
    ));
}

/// A fresh directory under target/browser-e2e.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = artifacts().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A plain static host on 127.0.0.1:`port` serving `dir`: Python's `http.server`, which sends
/// no COOP/COEP (or any other special) headers. Waits until it answers.
pub fn plain_server(dir: &Path, port: u16) -> Guard {
    let server = Guard(
        std::process::Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs"),
    );
    wait_until(Duration::from_secs(10), "the plain server", || {
        ureq::get(&format!("http://127.0.0.1:{port}/")).call().is_ok()
    });
    server
}
