//! The static site of `cargo xtask dist` (`target/site`, which `cargo xtask test` builds) on a
//! host that sends no headers — Python's `http.server` — and on one that does, in Chromium and
//! in Firefox: its service worker makes the page cross-origin isolated with one reload, steps
//! aside when the headers are there, keeps the lab for offline use and swaps in a new build; and
//! where isolation is refused it reloads at most once and runs single-threaded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use conlab_tests::browser::{artifacts, plain_server, submit, tempdir, wait_until, Browser};
use conlab_tests::{free_port, root, serve};
use serde_json::{json, Value};

/// The site `cargo xtask test` built, copied so a test can deploy a "new build" over it.
fn site_copy(name: &str) -> PathBuf {
    let site = root().join("target/site");
    assert!(site.join("sw.js").is_file(), "build the static site first (cargo xtask test does: cargo xtask dist)");
    let copy = tempdir(name).join("site");
    copy_dir(&site, &copy);
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn environment(browser: &Browser) -> Value {
    browser.eval(
        "return Object.fromEntries([...document.querySelectorAll('#env-list dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent]));",
    )
}

/// Opens `url` and waits until the page is isolated and ready to run; the seconds from the
/// navigation on (reloads included).
fn open_isolated(browser: &Browser, url: &str, what: &str) -> f64 {
    let start = Instant::now();
    browser.navigate(url);
    ready_isolated(browser, what);
    start.elapsed().as_secs_f64()
}

/// Waits until the page is isolated and ready to run.
fn ready_isolated(browser: &Browser, what: &str) {
    wait_until(Duration::from_secs(90), what, || {
        browser.eval(
            "return self.crossOriginIsolated === true && document.getElementById('status')?.dataset.state === 'ready';",
        ) == json!(true)
    });
}

/// A small Mandelbrot on 1 and 2 threads; every cell must pass its check.
fn runs_on_two_threads(browser: &Browser) {
    submit(browser, "mandelbrot", &[("width", "256")], "1,2", 2);
    let state = browser.wait_for_status(&["done", "error"], Duration::from_secs(120));
    assert_eq!(state, "done", "{:?}", browser.status());
    let rows = browser.eval(
        "return [...document.querySelectorAll('#table tbody tr')].map(r => [r.dataset.threads, r.dataset.check]);",
    );
    let rows = rows.as_array().unwrap();
    assert!(rows.iter().any(|row| row == &json!(["2", "ok"])), "no passing 2-thread cell: {rows:?}");
    assert!(rows.iter().all(|row| row[1] == json!("ok")), "{rows:?}");
}

/// The page's own start-up figures (since its navigation): page ready, threads ready.
fn startup_times(browser: &Browser) -> String {
    let times = browser.eval(
        "const value = (term) => [...document.querySelectorAll('#env-list dt')].find(dt => dt.textContent === term).nextElementSibling.textContent; \
         return [value('page ready in'), value('threads ready in')].map(text => text.split(' (')[0]);",
    );
    format!("page ready in {}, threads in {}", times[0].as_str().unwrap_or("?"), times[1].as_str().unwrap_or("?"))
}

fn navigation_kinds(browser: &Browser) -> Value {
    browser.eval("return performance.getEntriesByType('navigation').map(n => n.type);")
}

fn build_of(browser: &Browser) -> String {
    browser.eval("return document.querySelector('meta[name=conlab-build]').content;").as_str().unwrap().to_string()
}

/// "Deploys" a new build over `site`: a changed file, hence a new version in the page and the
/// service worker (what `cargo xtask dist` writes for any change).
fn deploy_new_build(site: &Path) -> String {
    let old = std::fs::read_to_string(site.join("index.html")).unwrap();
    let version = old.split("name=\"conlab-build\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let new = format!("{version}-next");
    std::fs::write(site.join("index.html"), old.replace(&version, &new)).unwrap();
    let worker = std::fs::read_to_string(site.join("sw.js")).unwrap();
    std::fs::write(site.join("sw.js"), worker.replace(&version, &new)).unwrap();
    let mut style = std::fs::read_to_string(site.join("style.css")).unwrap();
    style.push_str("\n/* the next build */\n");
    std::fs::write(site.join("style.css"), style).unwrap();
    new
}

/// The whole story on a host without headers: first visit, offline, a new build.
fn on_a_plain_host(browser: &Browser, name: &str) {
    let site = site_copy(&format!("site-{name}"));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let server = plain_server(&site, port);

    // First visit: registered, one reload, isolated, the pool runs an experiment on 2 threads.
    let first = open_isolated(browser, &url, "the first visit to end isolated and ready");
    assert_eq!(navigation_kinds(browser), json!(["reload"]), "exactly one reload, by isolate.js");
    let env = environment(browser);
    assert_eq!(env["isolation by"], json!("the lab's service worker (the host sends no headers)"), "{env}");
    assert!(env["wasm threads"].as_str().unwrap().starts_with("on — pool of"), "{env}");
    assert_eq!(browser.eval("return document.getElementById('isolation-banner').hidden;"), json!(true));
    let first_page = startup_times(browser);
    runs_on_two_threads(browser);
    let version = build_of(browser);
    browser.screenshot(&artifacts().join(format!("site-{name}-first-visit.png")));

    // Offline: the server is gone; the page reloads from the cache and still runs.
    drop(server);
    let offline = open_isolated(browser, &url, "the offline visit to be ready");
    assert_eq!(build_of(browser), version);
    let offline_page = startup_times(browser);
    runs_on_two_threads(browser);

    // A new build deployed: the page says so, and its button swaps the build in.
    let next = deploy_new_build(&site);
    let _server = plain_server(&site, port);
    open_isolated(browser, &url, "the page (old build) to be ready");
    browser.eval("navigator.serviceWorker.getRegistration().then((r) => r.update());");
    wait_until(Duration::from_secs(60), "the new version notice", || {
        browser.eval("return document.getElementById('update-notice') !== null;") == json!(true)
    });
    assert_eq!(build_of(browser), version, "the old build runs until the user reloads");
    browser.eval("document.querySelector('#update-notice button').click();");
    wait_until(Duration::from_secs(60), "the new build", || {
        browser.eval("return document.querySelector('meta[name=conlab-build]')?.content ?? '';") == json!(next)
    });
    ready_isolated(browser, "the new build to be ready");
    browser.eval("caches.keys().then((keys) => { document.body.dataset.caches = keys.join(' '); });");
    wait_until(Duration::from_secs(10), "the cache list", || {
        browser.eval("return document.body.dataset.caches ?? null;") != Value::Null
    });
    assert_eq!(
        browser.eval("return document.body.dataset.caches;"),
        json!(format!("conlab-{next}")),
        "the old cache is gone"
    );
    println!(
        "{name}: static site on a plain host: first visit isolated and ready {first:.2} s after the navigation began \
         (one reload; after it, {first_page}); offline: {offline:.2} s ({offline_page}); after the new build's reload: {}",
        startup_times(browser)
    );
}

/// A host that sends the headers: the worker registers (for offline use) but never reloads.
fn on_a_host_with_headers(browser: &Browser, name: &str) {
    let site = site_copy(&format!("site-headers-{name}"));
    let (_server, url) = serve(&site);
    open_isolated(browser, &url, "the page to be ready");
    wait_until(Duration::from_secs(30), "the service worker to take control", || {
        browser.eval("return navigator.serviceWorker.controller !== null;") == json!(true)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(navigation_kinds(browser), json!(["navigate"]), "no reload when the headers are there");
    let env = environment(browser);
    assert_eq!(env["isolation by"], json!("headers from the server"), "{env}");
    runs_on_two_threads(browser);
}

/// Where the browser will not isolate the page — no service worker at all (register fails), or
/// one whose headers the browser does not honour (here: a worker that adds none) — the page
/// reloads at most once, then says so in its banner and runs on one thread.
fn when_isolation_is_refused(browser: &Browser, name: &str) {
    let single_threaded = |what: &str| {
        wait_until(Duration::from_secs(60), what, || {
            browser.eval("return document.getElementById('status')?.dataset.state === 'ready';") == json!(true)
        });
        let env = environment(browser);
        assert_eq!(env["wasm threads"], json!("off"), "{env}");
        assert_eq!(env["isolation by"], json!("none: no COOP/COEP headers reached this page"), "{env}");
        assert_eq!(browser.eval("return document.getElementById('isolation-banner').hidden;"), json!(false));
        let origin = browser.eval("return performance.timeOrigin;");
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(browser.eval("return performance.timeOrigin;"), origin, "{what}: the page reloaded again");
    };

    let unregistrable = site_copy(&format!("site-no-worker-{name}"));
    std::fs::remove_file(unregistrable.join("sw.js")).unwrap();
    let port = free_port();
    let _server = plain_server(&unregistrable, port);
    browser.navigate(&format!("http://127.0.0.1:{port}/"));
    single_threaded("no service worker");
    assert_eq!(navigation_kinds(browser), json!(["navigate"]), "nothing to reload for");

    let unheeded = site_copy(&format!("site-unheeded-{name}"));
    let worker = std::fs::read_to_string(unheeded.join("sw.js")).unwrap();
    let passing = "  if (has || response.type === 'opaque' || response.status === 0) return response;";
    assert!(worker.contains(passing), "sw.js changed: update this test");
    std::fs::write(unheeded.join("sw.js"), worker.replace(passing, "  return response;")).unwrap();
    let port = free_port();
    let _server = plain_server(&unheeded, port);
    browser.navigate(&format!("http://127.0.0.1:{port}/"));
    wait_until(Duration::from_secs(60), "the one reload", || navigation_kinds(browser) == json!(["reload"]));
    single_threaded("headers not honoured");
}

#[test]
#[ignore = "needs the static site and Chromium: run by `cargo xtask test`"]
fn chromium_runs_the_static_site_isolated_by_its_service_worker_offline_and_across_a_new_build() {
    let browser = Browser::start(&tempdir("profile-site"));
    on_a_plain_host(&browser, "chromium");
    let browser = Browser::start(&tempdir("profile-site-headers"));
    on_a_host_with_headers(&browser, "chromium");
    let browser = Browser::start(&tempdir("profile-site-refused"));
    when_isolation_is_refused(&browser, "chromium");
}

#[test]
#[ignore = "needs the static site, Firefox ESR and geckodriver: run by `cargo xtask test`"]
fn firefox_runs_the_static_site_isolated_by_its_service_worker_offline_and_across_a_new_build() {
    on_a_plain_host(&Browser::start_firefox(), "firefox");
    on_a_host_with_headers(&Browser::start_firefox(), "firefox");
    when_isolation_is_refused(&Browser::start_firefox(), "firefox");
}
