//! `prim-rlock`: `threading.RLock` lets the thread that holds it take it again; a plain `Lock`
//! makes the same nested call wait for itself — a self-deadlock, caught here by a timeout.

use std::time::Duration;

use super::prim_gallery::{blocking, millis, team, timeout, timeout_param, work};
use crate::experiment::{
    run_members, verdict, Cell, Claim, Digest, Experiment, ExperimentInfo, Facts, ParamSpec, Params, RunContext,
    RunError, VariantSpec, Verdict, Workload,
};
use conlab_core::platform::Instant;
use conlab_core::prims::{Lock, RLock};
use conlab_core::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use conlab_core::trace::Lane;

pub struct PrimRlock;

impl Experiment for PrimRlock {
    fn info(&self) -> ExperimentInfo {
        ExperimentInfo {
            id: "prim-rlock",
            title: "RLock: a lock its holder may take again — and the self-deadlock of a plain Lock",
            topic: super::NAME,
            concept: "threading.RLock vs threading.Lock (re-entrancy)",
            teaches: "The books' bank account: `transfer()` takes the account lock and calls `withdraw()` and \
                      `deposit()`, which take it too. With an `RLock` the nested acquires just count up (depth 2) \
                      and the last release frees it. With a plain `Lock` the nested acquire waits for the lock its \
                      own thread holds — forever, in Python; here its timeout turns the self-deadlock into a \
                      report, and the other workers, queued behind the stuck one, do the same. The fix without \
                      re-entrancy (`split`): public methods lock, private `_withdraw`/`_deposit` assume the lock \
                      is held. The timeline shows every wait for the lock, every wake-up and every hold.",
            params: vec![
                ParamSpec::int("workers", 2, 1, 16, "threads", "threads making transfers"),
                ParamSpec::int("transfers", 20, 1, 100_000, "per worker", "transfers each worker makes"),
                ParamSpec::float("hold_ms", 0.5, 0.0, 1_000.0, "ms", "time inside a transfer, lock held (I/O, say)"),
                timeout_param(),
            ],
            variants: vec![
                VariantSpec::fixed("rlock", "transfer() and the methods it calls all take one RLock"),
                VariantSpec::fixed("split", "a plain Lock taken once; the nested methods assume it is held"),
                VariantSpec::fixed(
                    "lock",
                    "the same code as rlock with a plain Lock: the nested acquire waits for itself",
                )
                .unchecked("self-deadlocks on purpose: every worker's nested acquire times out and is reported"),
            ],
            baseline: "rlock",
            work_unit: Some("transfers"),
            shows_timeline: true,
            quick: &["transfers=5", "hold_ms=0.2", "timeout_ms=50"],
            ..ExperimentInfo::default()
        }
    }

    fn prepare(&self, params: &Params) -> Result<Box<dyn Workload>, RunError> {
        Ok(Box::new(Bank {
            workers: params.count("workers"),
            transfers: params.count("transfers"),
            hold: millis(params.float("hold_ms")),
            timeout: timeout(params),
        }))
    }

    fn claims(&self) -> Vec<Claim> {
        vec![
            Claim::new(
                "an RLock lets its owner re-enter: every transfer is done, the lock held 2 deep, no self-deadlock",
                |facts| owner_outcome(facts, "rlock", 2.0),
            ),
            Claim::new(
                "a plain Lock deadlocks its own thread: every worker's nested acquire times out and no transfer is \
                 done",
                |facts| {
                    let workers = facts.param("workers")?;
                    let stuck = facts.fixed_metric("lock", "self-deadlocks")?;
                    let done = facts.fixed_metric("lock", "transfers done")?;
                    verdict(
                        stuck.min == workers && done.max == 0.0,
                        format!(
                            "self-deadlocks {:.0} of {workers} workers (fewest run), transfers done {:.0}",
                            stuck.min, done.max
                        ),
                        "a bug in the Lock model",
                    )
                },
            ),
            Claim::new(
                "split methods need no re-entrancy: every transfer is done with the lock held 1 deep",
                |facts| owner_outcome(facts, "split", 1.0),
            ),
        ]
    }
}

/// Every transfer done, at most `depth` nested holds, and no self-deadlock, in every run.
fn owner_outcome(facts: &Facts<'_>, variant: &str, depth: f64) -> Result<Verdict, Verdict> {
    let all = facts.param("workers")? * facts.param("transfers")?;
    let done = facts.fixed_metric(variant, "transfers done")?.min;
    let deepest = facts.fixed_metric(variant, "deepest hold")?.max;
    let stuck = facts.fixed_metric(variant, "self-deadlocks")?.max;
    verdict(
        done == all && deepest == depth && stuck == 0.0,
        format!("{variant}: {done:.0} of {all} transfers (fewest run), deepest hold {deepest:.0}, self-deadlocks {stuck:.0}"),
        "a bug in the lock model",
    )
}

struct Bank {
    workers: usize,
    transfers: usize,
    hold: Duration,
    timeout: Duration,
}

impl Workload for Bank {
    fn work_units(&self) -> Option<f64> {
        Some((self.workers * self.transfers) as f64)
    }

    /// Every transfer made, and no money made or lost.
    fn expected(&self) -> Digest {
        (self.workers * self.transfers) as u64
    }

    fn cell(&self, variant: &str, _threads: usize) -> Result<Box<dyn Cell + '_>, RunError> {
        let locking = match variant {
            "rlock" => Locking::Reentrant(RLock::new()),
            "split" => Locking::Split(Lock::new()),
            _ => Locking::Nested(Lock::new()),
        };
        Ok(Box::new(BankCell { bank: self, threads: team(self.workers)?, locking }))
    }
}

/// How the account is locked.
enum Locking {
    /// One RLock, taken by `transfer` and again by `withdraw` and `deposit`.
    Reentrant(RLock),
    /// A plain Lock taken once by `transfer`.
    Split(Lock),
    /// A plain Lock taken by `transfer` and again by `withdraw` — the bug.
    Nested(Lock),
}

struct BankCell<'a> {
    bank: &'a Bank,
    threads: usize,
    locking: Locking,
}

/// The two balances; the lock makes each read-then-write whole (they are not atomic updates).
struct Accounts {
    from: AtomicI64,
    to: AtomicI64,
    deepest: AtomicUsize,
}

impl Accounts {
    fn withdraw(&self) {
        self.from.store(self.from.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }

    fn deposit(&self) {
        self.to.store(self.to.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Why a worker stopped early.
/// How long the holder's second acquire waited for itself before its timeout.
struct SelfDeadlock(Duration);

impl BankCell<'_> {
    /// One `transfer()`: the outer acquire, the nested ones the variant makes, the held time.
    fn transfer(
        &self,
        accounts: &Accounts,
        lane: &mut Lane<'_>,
        context: &RunContext,
    ) -> Result<Result<(), SelfDeadlock>, RunError> {
        let timeout = Some(self.bank.timeout);
        match &self.locking {
            Locking::Reentrant(rlock) => {
                if !blocking(lane, "rlock.acquire()", || rlock.acquire(timeout), |got| got.to_string()) {
                    return Err(RunError::Failed("an RLock wait timed out: raise timeout_ms".into()));
                }
                for step in [Accounts::withdraw, Accounts::deposit] {
                    rlock.acquire(None); // its owner: never waits
                    accounts.deepest.fetch_max(rlock.depth(), Ordering::Relaxed);
                    step(accounts);
                    rlock.release().expect("the owner releases");
                }
                let held =
                    work(context, lane, || format!("holding the RLock (depth {})", rlock.depth()), self.bank.hold);
                rlock.release().expect("the owner releases");
                held.map(Ok)
            }
            Locking::Split(lock) => {
                if !blocking(lane, "lock.acquire()", || lock.acquire(timeout), |got| got.to_string()) {
                    return Err(RunError::Failed("a Lock wait timed out: raise timeout_ms".into()));
                }
                accounts.deepest.fetch_max(1, Ordering::Relaxed);
                accounts.withdraw();
                accounts.deposit();
                let held = work(context, lane, || "holding the Lock", self.bank.hold);
                lock.release().expect("held");
                held.map(Ok)
            }
            Locking::Nested(lock) => {
                // Queued behind workers that are stuck in turn: wait out every one's timeout.
                let behind = Some(self.bank.timeout * (self.threads as u32 + 1));
                if !blocking(lane, "lock.acquire() in transfer()", || lock.acquire(behind), |got| got.to_string()) {
                    return Err(RunError::Failed("a Lock wait outlasted every worker's timeout".into()));
                }
                let asked = Instant::now();
                let nested =
                    blocking(lane, "lock.acquire() in withdraw()", || lock.acquire(timeout), |got| got.to_string());
                let waited = asked.elapsed();
                lock.release().expect("held");
                if nested {
                    return Err(RunError::Failed("a plain Lock was acquired twice by its holder".into()));
                }
                Ok(Err(SelfDeadlock(waited)))
            }
        }
    }
}

impl Cell for BankCell<'_> {
    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, context: &RunContext) -> Result<Digest, RunError> {
        let accounts = Accounts { from: AtomicI64::new(0), to: AtomicI64::new(0), deepest: AtomicUsize::new(0) };
        let (done, stuck) = (AtomicUsize::new(0), AtomicUsize::new(0));
        run_members(self.threads, |member| {
            let mut lane = context.trace().lane(member.index);
            for _ in 0..self.bank.transfers {
                match self.transfer(&accounts, &mut lane, context)? {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(SelfDeadlock(waited)) => {
                        stuck.fetch_add(1, Ordering::Relaxed);
                        context.report(format!(
                            "worker {}: withdraw() called lock.acquire() on the Lock its own transfer() held and \
                             waited {:.0} ms for itself, until its timeout — a self-deadlock (forever without a \
                             timeout). An RLock counts its owner's acquisitions instead.",
                            member.index,
                            waited.as_secs_f64() * 1e3
                        ));
                        return Ok(());
                    }
                };
            }
            Ok(())
        })?;
        let (from, to) = (accounts.from.load(Ordering::Relaxed), accounts.to.load(Ordering::Relaxed));
        let transfers = done.load(Ordering::Relaxed);
        context.record("transfers done", "", transfers as f64);
        context.record("self-deadlocks", "", stuck.load(Ordering::Relaxed) as f64);
        context.record("deepest hold", "acquisitions", accounts.deepest.load(Ordering::Relaxed) as f64);
        // Money conserved: every unit withdrawn was deposited.
        Ok(if from + to == 0 && to as usize == transfers { transfers as u64 } else { u64::MAX })
    }
}
