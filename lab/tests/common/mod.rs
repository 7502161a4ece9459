//! Shared by the native and wasm suites: requests with parameters small enough for tests.

use conlab_lab::experiment::{run, CancelFlag, RunError, RunRequest, RunResult, Session};
use serde_json::json;

pub fn request(id: &str, params: &[(&str, serde_json::Value)], threads: &[usize]) -> RunRequest {
    RunRequest {
        experiment: id.into(),
        params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        threads: Some(threads.to_vec()),
        repeat: 3,
        warmup: 1,
        ..RunRequest::default()
    }
}

pub fn run_quietly(request: &RunRequest) -> Result<RunResult, RunError> {
    run(request, Session { progress: &mut |_| {}, cancel: &CancelFlag::new() })
}

/// `scaling` running `kernel` at a size that takes milliseconds.
pub fn small_kernel(kernel: &conlab_core::kernels::KernelSpec, threads: &[usize]) -> RunRequest {
    let size = (kernel.default_size / 200).max(kernel.sizes.0).max(if kernel.work_exponent > 1 { 48 } else { 20_000 });
    request("scaling", &[("kernel", json!(kernel.id)), ("size", json!(size))], threads)
}

/// Every registered experiment, with parameters that run in well under a second.
pub fn small(id: &str) -> RunRequest {
    let info = conlab_lab::experiment::find(id).unwrap_or_else(|e| panic!("{e}")).info();
    RunRequest { params: info.quick_params(), ..request(id, &[], &[1, 2, 3]) }
}

/// Before attempt `attempt` (from 0) of a timing law: the third and later wait half a second,
/// so a noisy stretch of the shared machine can pass between them.
pub fn settle_before(attempt: usize) {
    if attempt >= 2 {
        conlab_core::platform::sleep(std::time::Duration::from_millis(500));
    }
}

/// Runs `request` up to `attempts` times, until every lesson of the experiment has shown (or
/// been untestable) in one of the runs — a busy neighbour can hide a speedup in one run, not in
/// every one. The lessons no run showed, with every run's reading, as the error — unless two
/// busy threads then get fewer than 1.7 cores: the lessons are inconclusive there, said on
/// stdout, and the experiment passes.
pub fn lessons_show(request: &RunRequest, attempts: usize) -> Result<(), String> {
    let not_shown = |run: &RunResult, i: usize| run.lessons[i].not_shown();
    let mut runs: Vec<RunResult> = Vec::new();
    loop {
        settle_before(runs.len());
        runs.push(run_quietly(request).map_err(|e| format!("{}: {e}", request.experiment))?);
        let lessons = runs[0].lessons.len();
        let missing: Vec<usize> = (0..lessons).filter(|&i| runs.iter().all(|run| not_shown(run, i))).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if runs.len() == attempts {
            // A lesson about speed can only be judged when the machine gives two cores; with a
            // neighbour on one of them it is inconclusive, not wrong (CI once read 1.30 here).
            let parallelism = parallelism_now();
            if parallelism < MIN_PARALLELISM {
                println!(
                    "{}: inconclusive — {} lesson(s) not shown while two busy threads got {parallelism:.2} cores",
                    request.experiment,
                    missing.len()
                );
                return Ok(());
            }
            let readings: Vec<String> = missing
                .iter()
                .map(|&i| {
                    let verdicts: Vec<_> = runs.iter().map(|run| format!("{:?}", run.lessons[i].verdict)).collect();
                    format!("{}: {verdicts:?}", runs[0].lessons[i].claim)
                })
                .collect();
            return Err(format!(
                "{}: lessons not shown in {attempts} runs (two busy threads got {parallelism:.2} cores): {readings:#?}",
                request.experiment
            ));
        }
    }
}

/// Below this many cores for two busy threads, a lesson about speed is inconclusive.
const MIN_PARALLELISM: f64 = 1.7;

/// How many cores two busy threads get right now: the same fixed work on one thread and then on
/// each of two, the median of three tries (2.0: both ran at full speed; 1.0: they took turns).
pub fn parallelism_now() -> f64 {
    let work = || {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        x
    };
    let timed = |threads: usize| {
        let started = conlab_core::platform::Instant::now();
        conlab_core::platform::run_team(threads, |_| _ = work()).expect("a team of two");
        started.elapsed().as_secs_f64()
    };
    let mut tries: Vec<f64> = (0..3).map(|_| 2.0 * timed(1) / timed(2)).collect();
    tries.sort_by(f64::total_cmp);
    tries[1]
}
