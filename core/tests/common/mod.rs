//! Shared by the native and wasm suites: requests with parameters small enough for tests.

use conlab_core::experiment::{run, CancelFlag, RunError, RunRequest, RunResult, Session};
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
    match id {
        "mandelbrot" => request(id, &[("width", json!(96)), ("height", json!(64)), ("max_iter", json!(200))], &[1, 2, 3]),
        "io-fanout" => request(id, &[("tasks", json!(6)), ("latency", json!(2.0))], &[1, 2, 3]),
        "parallel-sum" => request(id, &[("elements", json!(300_001))], &[1, 2, 3]),
        "lost-update" => request(id, &[("increments", json!(20_000))], &[1, 2, 3]),
        "lock-contention" => request(id, &[("duration_ms", json!(5))], &[1, 2, 3]),
        "contention-ladder" => request(id, &[("increments", json!(30_001))], &[1, 2, 3]),
        "false-sharing" => request(id, &[("increments", json!(20_000))], &[1, 2, 3]),
        "rwlock-mix" => request(id, &[("operations", json!(1_000))], &[1, 2, 3]),
        "granularity" => request(id, &[("work_ms", json!(2)), ("task_us", json!("sweep"))], &[1, 2, 3]),
        "imbalance" => request(id, &[("work_ms", json!(4)), ("sizes", json!("heavy-tailed")), ("tasks", json!(16))], &[1, 2, 3]),
        "fork-join" => request(id, &[("fib_n", json!(20)), ("fib_cutoff", json!(12)), ("wait_ms", json!(20))], &[1, 2, 3]),
        "executor-patterns" => request(id, &[("tasks", json!(5)), ("step_ms", json!(1))], &[1, 2, 3]),
        "spawn-overhead" => request(id, &[("tasks", json!(200))], &[1, 2, 3]),
        "gil-cpu" => request(id, &[("iterations", json!(20_000)), ("switch_ms", json!(0.2))], &[1, 2, 3]),
        "gil-race" => request(id, &[("increments", json!(20_000))], &[1, 2, 3]),
        "gil-convoy" => request(id, &[("requests", json!(10)), ("io_us", json!(100)), ("switch_ms", json!(1.0))], &[1, 2, 3]),
        "switch-interval" => request(id, &[("iterations", json!(5_000)), ("switch_ms", json!("sweep"))], &[1, 2, 3]),
        "models-matrix" => {
            request(id, &[("workload", json!("mixed")), ("tasks", json!(4)), ("iterations", json!(2_000)), ("io_ms", json!(2))], &[1, 2, 3])
        }
        "ipc-cost" => request(id, &[("messages", json!(3)), ("size", json!("sweep"))], &[1, 2, 3]),
        "process-overhead" => request(id, &[("tasks", json!(50)), ("iterations", json!(10)), ("round_trips", json!(10))], &[1, 2, 3]),
        "gather-timeline" => request(id, &[("clock", json!("real")), ("scale", json!(0.005))], &[1, 2, 3]),
        "semaphore-waves" => request(id, &[("clock", json!("virtual")), ("tasks", json!(7))], &[1, 2, 3]),
        "queue-backpressure" => request(id, &[("clock", json!("virtual")), ("items", json!(6))], &[1, 2, 3]),
        "loop-starvation" => request(id, &[("cpu_ms", json!(20)), ("heartbeat_ms", json!(2))], &[1, 2, 3]),
        "cancellation" => request(id, &[("clock", json!("real")), ("scale", json!(0.005))], &[1, 2, 3]),
        "async-pipeline" => request(id, &[("clock", json!("virtual")), ("items", json!(5))], &[1, 2, 3]),
        "event-loop-throughput" => request(id, &[("tasks", json!(2000))], &[1, 2, 3]),
        "queue-shootout" => request(id, &[("items", json!(5_000)), ("capacity", json!(64))], &[1, 2, 3]),
        "aba" => request(id, &[("cycles", json!(5_000))], &[1, 2, 3]),
        "scaling" => request(id, &[("kernel", json!("mergesort")), ("size", json!(50_000))], &[1, 2, 3]),
        "map-reduce" => request(id, &[("words", json!(20_000)), ("partitions", json!(4))], &[1, 2, 3]),
        "producer-consumer" => request(id, &[("items", json!(2_000)), ("capacity", json!(8))], &[1, 2, 3]),
        "pipeline" => request(id, &[("cost_ms", json!(0.2)), ("items", json!(10))], &[1, 2, 3]),
        other => panic!("add small parameters for {other}"),
    }
}
