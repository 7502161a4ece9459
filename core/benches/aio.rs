//! Event-loop benchmark: our loop against tokio's current-thread runtime and against CPython's
//! asyncio, per task, on three workloads all three can run: `spawn` (create a task that returns
//! at once, collect its result), `yield` (a task that awaits a zero sleep / `yield_now` 10
//! times) and `timer` (a task that sleeps 1 ms on the loop's real clock — the 1 ms is 10 ns of
//! each task's share).
//!
//! Against tokio both sides spawn every task first, then await the handles one by one.
//!
//! Ours and tokio alternate in short pairs (the order flips each repetition) so the machine's
//! drift lands on both; each pair gives a ratio, and the table shows the median ratio and its
//! range. Ratios < 1: ours is faster. CPython (when `python3` is on PATH) runs the shipped
//! `native/python/asyncio_tasks.py` with the same task count, which collects results with
//! `gather`, so ours does too for that comparison; the two alternate as well (one Python run,
//! then ours), and the ratio is CPython / ours.
//!
//! `cargo bench -p conlab-core --bench aio` (or `cargo xtask bench`).

// tokio and python3 are native-only; on wasm32 (linted there) the benchmark is empty.
#[cfg(not(target_arch = "wasm32"))]
mod native {
    use conlab_core::platform::Instant;
    use std::process::Command;

    use conlab_core::aio::{gather, sleep, spawn, yield_now, AioResult, EventLoop, RealClock, VirtualClock};
    use conlab_core::stats::Summary;
    use conlab_core::trace::Recorder;
    use std::time::Duration;

    const TASKS: usize = 100_000;
    const PAIRS: usize = 21;
    /// CPython takes ~6 s a run of the three workloads: fewer pairs than against tokio.
    const CPYTHON_PAIRS: usize = 9;
    const YIELDS: usize = 10;
    const NAP: Duration = Duration::from_millis(1);

    /// What each task does before it returns.
    #[derive(Clone, Copy, PartialEq)]
    enum Work {
        Spawn,
        Yield,
        Timer,
    }

    const WORKS: [(&str, Work); 3] = [("spawn", Work::Spawn), ("yield x10", Work::Yield), ("timer 1 ms", Work::Timer)];

    fn ours(work: Work, gathered: bool) -> f64 {
        let start = Instant::now();
        let main = async move {
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    spawn(async move {
                        match work {
                            Work::Spawn => {}
                            Work::Yield => {
                                for _ in 0..YIELDS {
                                    yield_now().await?;
                                }
                            }
                            Work::Timer => sleep(NAP).await?,
                        }
                        AioResult::Ok(1u64)
                    })
                })
                .collect();
            if gathered {
                return Ok(gather(handles).await?.iter().sum());
            }
            // Awaited one by one, exactly as the tokio side does.
            let mut done = 0;
            for handle in handles {
                done += handle.await?;
            }
            Ok(done)
        };
        let event_loop = match work {
            Work::Timer => EventLoop::new(RealClock::new(), false),
            _ => EventLoop::new(VirtualClock::new(), false),
        };
        let done = event_loop.run(main, &Recorder::new(false), &|| true).expect("the loop runs");
        assert_eq!(done, TASKS as u64);
        start.elapsed().as_nanos() as f64 / TASKS as f64
    }

    fn tokio(work: Work) -> f64 {
        let start = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
        let done = runtime.block_on(async move {
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    tokio::spawn(async move {
                        match work {
                            Work::Spawn => {}
                            Work::Yield => {
                                for _ in 0..YIELDS {
                                    tokio::task::yield_now().await;
                                }
                            }
                            Work::Timer => tokio::time::sleep(NAP).await,
                        }
                        1u64
                    })
                })
                .collect();
            let mut done = 0;
            for handle in handles {
                done += handle.await.expect("a tokio task");
            }
            done
        });
        assert_eq!(done, TASKS as u64);
        start.elapsed().as_nanos() as f64 / TASKS as f64
    }

    fn spread(values: &[f64]) -> (f64, f64, f64) {
        let summary = Summary::of(values).expect("measured values");
        (summary.median, summary.min, summary.max)
    }

    /// CPython's ns per task for (spawn, yield, timer), one run of the shipped script.
    fn cpython() -> Option<[f64; 3]> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../native/python/asyncio_tasks.py");
        let output = Command::new("python3").arg(script).arg(TASKS.to_string()).arg("1").output().ok()?;
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8(output.stdout).ok()?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        Some([fields.get(1)?.parse().ok()?, fields.get(3)?.parse().ok()?, fields.get(5)?.parse().ok()?])
    }

    /// CPython / ours per task, alternating one CPython run with one of ours.
    fn against_cpython() {
        let mut ratios = [Vec::new(), Vec::new(), Vec::new()];
        let mut python = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..CPYTHON_PAIRS {
            let Some(theirs) = cpython() else {
                println!("  CPython: python3 not found, skipped");
                return;
            };
            for (index, (_, work)) in WORKS.iter().enumerate() {
                ratios[index].push(theirs[index] / ours(*work, true));
                python[index].push(theirs[index]);
            }
        }
        for (index, (kind, _)) in WORKS.iter().enumerate() {
            let (median, low, high) = spread(&ratios[index]);
            println!(
                "  {kind:<10} CPython asyncio / ours (gather): {median:.1}× [{low:.1} – {high:.1}]   (CPython {:.0} ns)",
                spread(&python[index]).0
            );
        }
    }

    pub fn main() {
        println!("event loop: ns per task, {TASKS} tasks, {PAIRS} alternating pairs (median [range])");
        for (kind, work) in WORKS {
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            for pair in 0..PAIRS {
                if pair % 2 == 0 {
                    mine.push(ours(work, false));
                    theirs.push(tokio(work));
                } else {
                    theirs.push(tokio(work));
                    mine.push(ours(work, false));
                }
            }
            let ratios: Vec<f64> = mine.iter().zip(&theirs).map(|(a, b)| a / b).collect();
            let (ratio, low, high) = spread(&ratios);
            println!(
                "  {kind:<10} ours / tokio current_thread: {ratio:.2} [{low:.2} – {high:.2}]   (ours {:.0} ns, tokio {:.0} ns)",
                spread(&mine).0,
                spread(&theirs).0
            );
        }
        against_cpython();
    }
}

fn main() {
    #[cfg(not(target_arch = "wasm32"))]
    native::main();
}
