//! The functions `worker.js` calls (wasm32 only). Each runs in the dedicated worker, never on
//! the page's main thread, because runs block (`Atomics.wait`) while the pool works.

use std::sync::OnceLock;

use conlab_core::platform;
use conlab_lab::experiment::{self, CancelFlag, Environment, Progress, Session};
use wasm_bindgen::prelude::*;

pub use wasm_bindgen_rayon::init_thread_pool;

fn cancel_flag() -> &'static CancelFlag {
    static FLAG: OnceLock<CancelFlag> = OnceLock::new();
    FLAG.get_or_init(CancelFlag::new)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()))
}

/// Tells conlab-core that `initThreadPool(threads)` has resolved.
#[wasm_bindgen(js_name = poolStarted)]
pub fn pool_started(threads: usize) {
    platform::register_worker_pool(threads);
}

/// [`crate::messages::Catalogue`] for a pool of `pool_threads` workers, as JSON.
#[wasm_bindgen]
pub fn catalogue(pool_threads: usize) -> Result<String, JsError> {
    to_json(&crate::messages::catalogue(pool_threads))
}

/// The environment block of a result, as JSON.
#[wasm_bindgen]
pub fn environment() -> Result<String, JsError> {
    to_json(&Environment::current())
}

/// Address of the cancel flag's byte in the shared memory.
#[wasm_bindgen(js_name = cancelFlagAddress)]
pub fn cancel_flag_address() -> usize {
    cancel_flag().address()
}

/// Runs the form's settings (JSON object of text, a permalink's names), calling
/// `on_progress(progressJson)` before each run; returns [`crate::messages::Finished`] as JSON or
/// throws an Error whose message names the setting that does not fit, as the CLI would.
#[wasm_bindgen(js_name = runExperiment)]
pub fn run_experiment(form_json: &str, on_progress: &js_sys::Function) -> Result<String, JsError> {
    let request = crate::messages::request(form_json).map_err(|e| JsError::new(&e))?;
    let cancel = cancel_flag();
    cancel.reset();
    let mut report = |progress: &Progress| {
        if let Ok(json) = serde_json::to_string(progress) {
            let _ = on_progress.call1(&JsValue::NULL, &JsValue::from_str(&json));
        }
    };
    let result = experiment::run(&request, Session { progress: &mut report, cancel })
        .map_err(|e| JsError::new(&e.to_string()))?;
    to_json(&crate::messages::finished(&result))
}

/// The form's settings checked as a run checks them: the first problem, or "" ([`crate::messages::form_problem`]).
#[wasm_bindgen(js_name = formProblem)]
pub fn form_problem(form_json: &str) -> Result<String, JsError> {
    crate::messages::form_problem(form_json).map_err(|e| JsError::new(&e))
}

/// A permalink's settings checked for a form with up to `form_threads` threads ([`crate::messages::link`]).
#[wasm_bindgen(js_name = checkLink)]
pub fn check_link(query_json: &str, form_threads: usize) -> Result<String, JsError> {
    crate::messages::link(query_json, form_threads).map_err(|e| JsError::new(&e))
}

/// A stored result rendered like a finished run, its settings checked for the form
/// ([`crate::messages::render`]).
#[wasm_bindgen(js_name = renderResult)]
pub fn render_result(result_json: &str, form_threads: usize) -> Result<String, JsError> {
    crate::messages::render(result_json, form_threads).map_err(|e| JsError::new(&e))
}

/// An imported result checked: its settings for the form and its platform, or an Error saying
/// what is wrong ([`crate::messages::imported`]).
#[wasm_bindgen(js_name = importResult)]
pub fn import_result(result_json: &str, form_threads: usize) -> Result<String, JsError> {
    crate::messages::imported(result_json, form_threads).map_err(|e| JsError::new(&e))
}

/// This page's result beside an imported one ([`crate::messages::compare`]).
#[wasm_bindgen(js_name = compareResults)]
pub fn compare_results(here_json: &str, there_json: &str) -> Result<String, JsError> {
    crate::messages::compare(here_json, there_json).map_err(|e| JsError::new(&e))
}

/// A window of a trace's timeline ([`crate::messages::timeline`]).
#[wasm_bindgen(js_name = timelineSvg)]
pub fn timeline_svg(trace_json: &str, from: f64, to: f64) -> Result<String, JsError> {
    crate::messages::timeline(trace_json, from, to).map_err(|e| JsError::new(&e))
}

/// The debugging lab's scenarios with their listings ([`crate::debugger::scenarios`]).
#[wasm_bindgen(js_name = simScenarios)]
pub fn sim_scenarios() -> Result<String, JsError> {
    crate::debugger::scenarios().map_err(|e| JsError::new(&e))
}

/// The event loop's step-mode scenarios ([`crate::debugger::loop_scenarios`]).
#[wasm_bindgen(js_name = loopScenarios)]
pub fn loop_scenarios() -> Result<String, JsError> {
    crate::debugger::loop_scenarios().map_err(|e| JsError::new(&e))
}

/// A loop scenario's every step ([`crate::debugger::loop_trace`]).
#[wasm_bindgen(js_name = loopTrace)]
pub fn loop_trace(scenario: &str) -> Result<String, JsError> {
    crate::debugger::loop_trace(scenario).map_err(|e| JsError::new(&e))
}

/// The state after a schedule ([`crate::debugger::state`]).
#[wasm_bindgen(js_name = simState)]
pub fn sim_state(scenario: &str, schedule: &str) -> Result<String, JsError> {
    crate::debugger::state(scenario, schedule).map_err(|e| JsError::new(&e))
}

/// A search for a failing schedule ([`crate::debugger::search`]).
#[wasm_bindgen(js_name = simSearch)]
pub fn sim_search(
    scenario: &str,
    strategy: &str,
    seed: u32,
    runs: usize,
    depth: usize,
    bound: usize,
) -> Result<String, JsError> {
    crate::debugger::search(scenario, strategy, u64::from(seed), runs, depth, bound).map_err(|e| JsError::new(&e))
}

/// The compiled wasm module, for `worker.js` to load into each process worker.
#[wasm_bindgen(js_name = compiledModule)]
pub fn wasm_module() -> JsValue {
    wasm_bindgen::module()
}

/// Hands the process workers `worker.js` started to conlab-core.
#[wasm_bindgen(js_name = registerProcessWorkers)]
pub fn register_process_workers(workers: js_sys::Array) {
    platform::register_process_workers(workers);
}

/// Hands conlab-core the spawner (`spawner.js`), which starts process workers during a run, and
/// the module they load.
#[wasm_bindgen(js_name = registerSpawner)]
pub fn register_spawner(spawner: JsValue, module: JsValue) {
    platform::register_spawner(spawner, module);
}

/// How many process workers pools have killed on purpose (broken-pool), for the health report.
#[wasm_bindgen(js_name = processWorkersKilled)]
pub fn process_workers_killed() -> u32 {
    platform::killed_process_workers()
}

/// In a process worker: the answer to a pool's message.
#[wasm_bindgen(js_name = processAnswer)]
pub fn process_answer(message: &[u8], payload: &[u8]) -> Vec<u8> {
    platform::answer_as_worker(message, payload, conlab_core::pymodel::process::answer)
}

/// In a process worker: keeps a copy of `bytes` where its answers read them in place.
#[wasm_bindgen(js_name = processShare)]
pub fn process_share(bytes: &[u8]) {
    platform::share_as_worker(bytes)
}
