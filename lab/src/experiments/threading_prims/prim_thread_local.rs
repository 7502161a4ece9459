//! `prim-thread-local`: per-thread state in `threading.local()` versus one shared variable that
//! every thread's request overwrites — and the lock that fixes it by serialising the requests.

use std::cell::Cell as LocalCell;

use super::prim_gallery::team;
use crate::experiment::{
    verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, ParamSpec, Params, RunContext, RunError, VariantSpec,
    Workload,
};
use conlab_core::kernels::spin::Spinner;
use conlab_core::platform::{run_team, Instant};
use conlab_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use conlab_core::sync::{lock, Mutex};
use conlab_core::trace::SpanKind;

pub struct PrimThreadLocal;

/// Requests per worker drawn on the timeline (the rest run untraced).
const TRACED: usize = 64;

std::thread_local! {
    /// `local = threading.local(); local.current_request = …`
    static CURRENT_REQUEST: LocalCell<u64> = const { LocalCell::new(0) };
}

impl Experiment for PrimThreadLocal {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-thread-local",
            title: "threading.local(): per-thread state versus a shared variable",
            topic: super::NAME,
            concept: "thread-local storage (threading.local)",
            teaches: "Each worker handles `requests` requests: it stores the request's id as `current_request`, works \
                      for `work_us`, and reads `current_request` back to answer. In `threading.local()` every \
                      thread has its own `current_request`, and each reads back what it stored. As one shared \
                      (module-level) variable, the workers overwrite each other's, and a worker answers with \
                      another worker's request — counted in `wrong reads`, first case named below the table. \
                      A lock held around the whole request also gives right answers, by letting one request run \
                      at a time: compare the throughput, and the lock waits on the timeline.",
            params: vec![
                ParamSpec::int("workers", 4, 1, 16, "threads", "threads handling requests"),
                ParamSpec::int("requests", 200, 1, 1_000_000, "per worker", "requests each worker handles"),
                ParamSpec::float(
                    "work_us",
                    20.0,
                    0.0,
                    100_000.0,
                    "µs",
                    "work between storing the id and reading it back",
                ),
            ],
            variants: vec![
                VariantSpec::fixed("thread-local", "local = threading.local(): a current_request per thread"),
                VariantSpec::fixed("global", "one module-level current_request for every thread")
                    .unchecked("threads overwrite each other's request on purpose"),
                VariantSpec::fixed("global-locked", "one current_request, a lock held for the whole request"),
            ],
            baseline: "thread-local",
            work_unit: Some("requests"),
            shows_timeline: true,
            quick: &["requests=50", "work_us=10"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Requests {
            workers: params.count("workers"),
            requests: params.count("requests"),
            work_ns: params.float("work_us") * 1e3,
            spinner: Spinner::calibrate(),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "with threading.local() every request reads back its own id: no wrong read in any run",
                |facts| {
                    let threads = facts.fixed_threads("thread-local")?;
                    let most = facts.metric_max("thread-local", threads, "wrong reads")?;
                    verdict(
                        most == 0.0,
                        format!("thread-local: at most {most:.0} wrong reads"),
                        "a bug in the thread-local",
                    )
                },
            ),
            Claim::new(
                "one global current_request is overwritten: some run of it reads another worker's id",
                |facts| {
                    facts.cores(2)?;
                    let threads = facts.fixed_threads("global")?;
                    let most = facts.metric_max("global", threads, "wrong reads")?;
                    verdict(
                        most > 0.0,
                        format!("global: up to {most:.0} wrong reads in a run"),
                        "the workers never overlapped (raise `work_us` or `requests`)",
                    )
                },
            ),
            Claim::new("the global under a lock reads right, serialised: no wrong read in any run", |facts| {
                let threads = facts.fixed_threads("global-locked")?;
                let most = facts.metric_max("global-locked", threads, "wrong reads")?;
                verdict(most == 0.0, format!("global-locked: at most {most:.0} wrong reads"), "a bug in the lock")
            }),
        ]
    }
}

struct Requests {
    workers: usize,
    requests: usize,
    work_ns: f64,
    /// Busy work of a set length (the browser's clock is too coarse to time microseconds).
    spinner: Spinner,
}

#[derive(Clone, Copy, PartialEq)]
enum Storage {
    ThreadLocal,
    Global,
    GlobalLocked,
}

impl Workload for Requests {
    fn work_units(&self) -> Option<f64> {
        Some((self.workers * self.requests) as f64)
    }

    /// Every request answered with its own id.
    fn expected(&self) -> Digest {
        (self.workers * self.requests) as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let storage = match variant {
            "thread-local" => Storage::ThreadLocal,
            "global" => Storage::Global,
            _ => Storage::GlobalLocked,
        };
        Ok(Box::new(RequestsCell { requests: self, threads: team(self.workers)?, storage }))
    }
}

struct RequestsCell<'a> {
    requests: &'a Requests,
    threads: usize,
    storage: Storage,
}

/// A request's id: its worker in the high half, its number in the low.
fn request_id(worker: usize, request: usize) -> u64 {
    ((worker as u64) << 32) | request as u64
}

impl RequestsCell<'_> {
    /// Stores `id`, works, reads back what is there now — and, holding a lock, when it got it.
    fn handle(&self, id: u64, shared: &AtomicU64, locked: &Mutex<u64>) -> (u64, Option<Instant>) {
        let work = || self.requests.spinner.spin(self.requests.work_ns);
        match self.storage {
            Storage::ThreadLocal => {
                CURRENT_REQUEST.with(|current| current.set(id));
                work();
                (CURRENT_REQUEST.with(LocalCell::get), None)
            }
            Storage::Global => {
                shared.store(id, Ordering::Relaxed);
                work();
                (shared.load(Ordering::Relaxed), None)
            }
            Storage::GlobalLocked => {
                let mut current = lock(locked);
                let got = Instant::now();
                *current = id;
                work();
                (*current, Some(got))
            }
        }
    }
}

impl Cell for RequestsCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let (shared, locked) = (AtomicU64::new(0), Mutex::new(0u64));
        let (right, wrong) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let first_wrong = Mutex::new(None);
        run_team(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            let label = match self.storage {
                Storage::GlobalLocked => "request (holding the lock)",
                _ => "request",
            };
            // A cancel ends the requests early; `check_cancel` below reports it.
            context.repeat(self.requests.requests as u64, |request| {
                let id = request_id(member.index, request as usize);
                let traced = lane.is_enabled() && (request as usize) < TRACED;
                let started = Instant::now();
                let (read, got_lock) = self.handle(id, &shared, &locked);
                if traced {
                    let end = Instant::now();
                    if let Some(got) = got_lock {
                        lane.record(SpanKind::Wait, "lock.acquire()", started, got);
                        lane.record(SpanKind::Mark, "woke: lock.acquire() → the lock", got, got);
                    }
                    lane.record(SpanKind::Run, label, got_lock.unwrap_or(started), end);
                }
                if read == id {
                    right.fetch_add(1, Ordering::Relaxed);
                } else {
                    wrong.fetch_add(1, Ordering::Relaxed);
                    lock(&first_wrong).get_or_insert((id, read));
                }
            });
        })?;
        context.check_cancel()?;
        let wrong = wrong.load(Ordering::Relaxed);
        context.record("wrong reads", "requests", wrong as f64);
        if let Some((id, read)) = first_wrong.into_inner().unwrap_or_else(|p| p.into_inner()) {
            let total = self.requests.workers * self.requests.requests;
            context.report(format!(
                "{wrong} of {total} requests read back another worker's id from the shared current_request — the \
                 first: worker {} stored request {} and read back worker {}'s request {} after its work. \
                 threading.local() gives each thread its own.",
                id >> 32,
                id & u64::from(u32::MAX),
                read >> 32,
                read & u64::from(u32::MAX)
            ));
        }
        Ok(right.load(Ordering::Relaxed) as u64)
    }
}
