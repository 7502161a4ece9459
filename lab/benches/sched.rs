//! Scheduler benchmark: our StealPool against rayon on fib with a cutoff, quicksort and
//! mandelbrot; our FifoPool against our StealPool on many tiny tasks; and what an idle pool
//! costs in CPU.
//!
//! The timed comparisons run the registry's experiments, whose runner interleaves the variants
//! repetition by repetition and rotates their order, so the machine's drift (±20% within 100 ms
//! on a shared 2-core box) lands on both sides alike. For each repetition one side's time is
//! divided by the other's from the same repetition; the table gives the median of those ratios
//! and their range. Ratios < 1: ours is faster. Our pools are scoped, so their times include
//! starting the workers (~30–60 µs per thread natively); rayon's pool is built beforehand.
//!
//! `cargo bench -p conlab-core --bench sched` (or `cargo xtask bench`).

use std::time::Duration;

use conlab_core::platform::{hardware_threads, sleep, RayonPool};
use conlab_core::sched::steal::StealPool;
use conlab_core::trace::Recorder;
use serde_json::json;

mod support;

use support::{measure, metric, ratio_line, times, REPEAT};

fn idle_cpu(window: Duration, idle: impl FnOnce(Duration)) -> Option<f64> {
    let before = conlab_core::platform::cpu_time()?;
    idle(window);
    Some((conlab_core::platform::cpu_time()? - before).as_secs_f64() / window.as_secs_f64())
}

fn main() {
    let threads = hardware_threads().max(2);
    println!(
        "scheduler benchmark: {REPEAT} interleaved repetitions per comparison; {} hardware threads",
        hardware_threads()
    );

    println!("\nStealPool vs rayon (time ratio, < 1: ours faster):");
    let fib = measure("fork-join", &[("problem", json!("fib"))], &["steal", "rayon"], threads);
    ratio_line("fib(36), cutoff 20, join", &fib, "steal", "rayon", times(&fib));
    let sort = measure("fork-join", &[("problem", json!("quicksort"))], &["steal", "rayon"], threads);
    ratio_line("quicksort 1M u32, cutoff 10k, join", &sort, "steal", "rayon", times(&sort));
    let mandelbrot = measure("mandelbrot", &[], &["steal", "rayon"], threads);
    ratio_line("mandelbrot 640×400, rows", &mandelbrot, "steal", "rayon", times(&mandelbrot));

    println!("\nFifoPool vs StealPool on tiny tasks (ratio of ns per task, > 1: the FIFO queue costs more):");
    let spawn =
        measure("spawn-overhead", &[("tasks", json!(100_000))], &["fifo-submit", "steal-spawn", "steal-join"], threads);
    ratio_line(
        "100k empty tasks: submit vs spawn",
        &spawn,
        "fifo-submit",
        "steal-spawn",
        metric(&spawn, "ns per task", "ns/task"),
    );
    ratio_line(
        "100k empty tasks: submit vs join",
        &spawn,
        "fifo-submit",
        "steal-join",
        metric(&spawn, "ns per task", "ns/task"),
    );
    let grain = measure("granularity", &[("task_us", json!("1")), ("work_ms", json!(50))], &["fifo", "steal"], threads);
    ratio_line("50k tasks of 1 µs", &grain, "fifo", "steal", times(&grain));

    println!("\nIdle pools (CPU used while the pool has nothing to do, share of one core, over 500 ms):");
    let window = Duration::from_millis(500);
    let workers = 2 * threads;
    let ours = idle_cpu(window, |window| {
        StealPool::run(workers, &Recorder::new(false), |_| sleep(window)).expect("the pool starts");
    });
    let theirs = {
        // The pool lives (its workers idle) for the whole window.
        let rayon_pool = RayonPool::new(workers).expect("rayon starts");
        rayon_pool.install(|| ());
        idle_cpu(window, sleep)
    };
    match (ours, theirs) {
        (Some(ours), Some(theirs)) => {
            println!(
                "  StealPool, {workers} workers: {:.1}% of a core;  rayon, {workers} workers: {:.1}%",
                ours * 100.0,
                theirs * 100.0
            )
        }
        _ => println!("  (needs /proc/self/stat: Linux only)"),
    }
}
