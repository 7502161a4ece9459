//! Locks, hand-written and borrowed, behind one interface so experiments can sweep
//! "which lock".
//!
//! - [`RawLock`] is the contract of a hand-written mutual-exclusion lock, in the spirit of
//!   lock_api's `RawMutex`: `lock` returns a token the holder passes back to `unlock` (the MCS
//!   queue node; `()` for the others).
//! - [`Mutex<L, T>`] puts data behind any `RawLock`; access is a closure, so under loom the data
//!   sits in a model-checked cell and a broken lock shows up as a data race.
//! - [`Lock`] is what experiments use: run a closure holding the lock. Every `RawLock` is a
//!   `Lock`, and so are the baselines [`StdMutex`] and [`ParkingLotMutex`].
//! - [`RawRwLock`] is the contract of a hand-written reader-writer lock; `read` and `write` run a
//!   closure holding it.
//! - [`LockKind`] names them all and dispatches a generic [`WithLock`] job to the right type.
//!
//! | module | algorithm | waits by |
//! |---|---|---|
//! | [`tas`] | test-and-set | spinning on `swap` |
//! | [`ttas`] | test-and-test-and-set, exponential backoff | spinning on loads |
//! | [`ticket`] | ticket lock (FIFO) | spinning on `now_serving` |
//! | [`mcs`] | Mellor-Crummey & Scott queue lock (1991) | spinning on its own queue node |
//! | [`parking`] | futex mutex counting its sleepers (Go's `sync.Mutex` on Drepper's futex, 2004) | sleeping in the OS / `memory.atomic.wait32` |
//! | [`process_lock`] | the same protocol on a word several processes map (`multiprocessing.Value`'s lock) | a shared futex / `Atomics.wait` |
//! | [`rwlock`] | writer-preferring reader-writer lock on two futex words | sleeping |
//! | [`reader_rwlock`] | reader-preferring reader-writer lock (the books' listing) on one futex word | sleeping |
//! | [`seqlock`] | sequence lock (Lameter 2005; Boehm 2012 on its memory model) | readers retry, never block writers |

pub mod mcs;
pub mod parking;
pub mod process_lock;
pub mod reader_rwlock;
pub mod rwlock;
pub mod seqlock;
pub mod tas;
pub mod ticket;
pub mod ttas;

use std::fmt;

use crate::platform::{run_team, PlatformError};
use crate::sync::cell::UnsafeCell;

/// A hand-written mutual-exclusion lock.
///
/// # Safety
/// Implementations must provide mutual exclusion: between a `lock` (or successful `try_lock`)
/// returning and the matching `unlock`, no other `lock` returns; and `unlock` must make the
/// holder's writes visible to the next holder (release → acquire).
pub unsafe trait RawLock: Default + Send + Sync {
    /// What the holder keeps until it unlocks.
    type Token;
    /// Short name used by experiments and tables.
    const NAME: &'static str;

    fn lock(&self) -> Self::Token;
    fn try_lock(&self) -> Option<Self::Token>;
    /// # Safety
    /// Called once per acquisition, by the thread holding the lock, with that acquisition's token.
    unsafe fn unlock(&self, token: Self::Token);
}

/// Anything that can run a closure under mutual exclusion.
pub trait Lock: Default + Send + Sync {
    const NAME: &'static str;
    fn with<R>(&self, critical: impl FnOnce() -> R) -> R;
}

impl<L: RawLock> Lock for L {
    const NAME: &'static str = L::NAME;

    fn with<R>(&self, critical: impl FnOnce() -> R) -> R {
        struct Unlock<'a, L: RawLock>(&'a L, Option<L::Token>);
        impl<L: RawLock> Drop for Unlock<'_, L> {
            fn drop(&mut self) {
                if let Some(token) = self.1.take() {
                    // SAFETY: this guard holds the only token of the acquisition made below, on
                    // this thread; it unlocks exactly once, even if `critical` panics.
                    unsafe { self.0.unlock(token) }
                }
            }
        }
        let _held = Unlock(self, Some(self.lock()));
        critical()
    }
}

/// A hand-written reader-writer lock.
///
/// # Safety
/// Implementations must exclude: while a `write_lock` holder has not called `write_unlock`, no
/// other `read_lock` or `write_lock` returns; and each unlock must make the holder's writes
/// visible to the next holder (release → acquire).
pub unsafe trait RawRwLock: Default + Send + Sync {
    fn read_lock(&self);
    /// # Safety
    /// The caller holds a read lock taken with [`RawRwLock::read_lock`].
    unsafe fn read_unlock(&self);
    fn write_lock(&self);
    /// # Safety
    /// The caller holds the write lock taken with [`RawRwLock::write_lock`].
    unsafe fn write_unlock(&self);

    /// Runs `f` holding a read lock.
    fn read<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unlock<'a, L: RawRwLock>(&'a L);
        impl<L: RawRwLock> Drop for Unlock<'_, L> {
            fn drop(&mut self) {
                // SAFETY: created right after `read_lock` below, dropped once.
                unsafe { self.0.read_unlock() }
            }
        }
        self.read_lock();
        let _held = Unlock(self);
        f()
    }

    /// Runs `f` holding the write lock.
    fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unlock<'a, L: RawRwLock>(&'a L);
        impl<L: RawRwLock> Drop for Unlock<'_, L> {
            fn drop(&mut self) {
                // SAFETY: created right after `write_lock` below, dropped once.
                unsafe { self.0.write_unlock() }
            }
        }
        self.write_lock();
        let _held = Unlock(self);
        f()
    }
}

/// Data behind a lock of type `L`.
#[derive(Default)]
pub struct Mutex<L: Lock, T> {
    lock: L,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `data`, so sharing the Mutex only ever hands `&mut T`
// to one thread at a time, which needs `T: Send` (as for std's Mutex).
unsafe impl<L: Lock, T: Send> Sync for Mutex<L, T> {}

impl<L: Lock, T> Mutex<L, T> {
    pub fn new(data: T) -> Self {
        Self { lock: L::default(), data: UnsafeCell::new(data) }
    }

    /// Runs `f` with exclusive access to the data.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.with(|| {
            // SAFETY: the lock is held for the whole closure, so this is the only reference.
            self.data.with_mut(|data| f(unsafe { &mut *data }))
        })
    }

    #[cfg(not(loom))]
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<L: Lock, T> fmt::Debug for Mutex<L, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mutex<{}>", L::NAME)
    }
}

/// `std::sync::Mutex` as a baseline (a futex mutex on Linux, like [`parking`]).
#[derive(Default)]
pub struct StdMutex(std::sync::Mutex<()>);

impl Lock for StdMutex {
    const NAME: &'static str = "std";
    fn with<R>(&self, critical: impl FnOnce() -> R) -> R {
        let _guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        critical()
    }
}

/// `parking_lot::Mutex` as a baseline (adaptive spinning, then a global parking table).
#[derive(Default)]
pub struct ParkingLotMutex(parking_lot::Mutex<()>);

impl Lock for ParkingLotMutex {
    const NAME: &'static str = "parking_lot";
    fn with<R>(&self, critical: impl FnOnce() -> R) -> R {
        let _guard = self.0.lock();
        critical()
    }
}

/// A contention regime: how long a lock is held, how much work happens between acquisitions,
/// and whether all threads share one lock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regime {
    pub name: &'static str,
    pub critical_ns: f64,
    pub between_ns: f64,
    pub shared: bool,
}

/// The four named regimes, from nothing-but-the-lock to a lock per thread.
pub const REGIMES: [Regime; 4] = [
    Regime { name: "extreme", critical_ns: 0.0, between_ns: 0.0, shared: true },
    Regime { name: "heavy", critical_ns: 50.0, between_ns: 200.0, shared: true },
    Regime { name: "light", critical_ns: 50.0, between_ns: 5_000.0, shared: true },
    Regime { name: "none", critical_ns: 50.0, between_ns: 200.0, shared: false },
];

/// Every mutual-exclusion lock conlab can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Tas,
    Ttas,
    Ticket,
    Mcs,
    Parking,
    Std,
    ParkingLot,
}

/// A job generic over the lock type, run by [`LockKind::run`] with the chosen type.
pub trait WithLock {
    type Output;
    fn run<L: Lock + 'static>(self) -> Self::Output;
}

impl LockKind {
    pub const ALL: [LockKind; 7] =
        [Self::Tas, Self::Ttas, Self::Ticket, Self::Mcs, Self::Parking, Self::Std, Self::ParkingLot];

    pub fn name(self) -> &'static str {
        struct Name;
        impl WithLock for Name {
            type Output = &'static str;
            fn run<L: Lock + 'static>(self) -> &'static str {
                L::NAME
            }
        }
        self.run(Name)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Runs `job` monomorphised for this kind's lock type.
    pub fn run<J: WithLock>(self, job: J) -> J::Output {
        match self {
            Self::Tas => job.run::<tas::TasLock>(),
            Self::Ttas => job.run::<ttas::TtasLock>(),
            Self::Ticket => job.run::<ticket::TicketLock>(),
            Self::Mcs => job.run::<mcs::McsLock>(),
            Self::Parking => job.run::<parking::ParkingMutex>(),
            Self::Std => job.run::<StdMutex>(),
            Self::ParkingLot => job.run::<ParkingLotMutex>(),
        }
    }
}

/// The stress kernel: `threads` threads each add 1 to a two-field counter `increments` times
/// under a lock of `kind`, updating the fields non-atomically. Returns the fields; both equal
/// `threads × increments` only if the lock excluded (a torn critical section breaks the pair).
pub fn count_under_lock(kind: LockKind, threads: usize, increments: usize) -> Result<(usize, usize), PlatformError> {
    struct Count {
        threads: usize,
        increments: usize,
    }
    impl WithLock for Count {
        type Output = Result<(usize, usize), PlatformError>;
        fn run<L: Lock + 'static>(self) -> Self::Output {
            let counter: Mutex<L, (usize, usize)> = Mutex::new((0, 0));
            run_team(self.threads, |_| {
                for _ in 0..self.increments {
                    counter.with(|(a, b)| {
                        *a += 1;
                        *b = *a;
                    });
                }
            })?;
            Ok(counter.with(|pair| *pair))
        }
    }
    kind.run(Count { threads, increments })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    // Small under Miri, which interprets every access (minutes for a few thousand).
    const INCREMENTS: usize = if cfg!(miri) {
        20
    } else if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };

    #[test]
    fn every_lock_excludes_under_stress() {
        let threads = crate::platform::hardware_threads().clamp(2, 8);
        for kind in LockKind::ALL {
            let (a, b) = count_under_lock(kind, threads, INCREMENTS).unwrap();
            assert_eq!((a, b), (threads * INCREMENTS, threads * INCREMENTS), "{}", kind.name());
        }
    }

    #[test]
    fn non_fifo_locks_exclude_with_more_threads_than_cores() {
        // Holders get preempted mid-section. The FIFO spinlocks (ticket, MCS) are left out: they
        // stay correct but hand the lock to descheduled waiters and take ~a time slice per
        // acquisition — the pathology the lock experiments measure, too slow for a test.
        let threads = 3 * crate::platform::hardware_threads().clamp(2, 8);
        for kind in [LockKind::Tas, LockKind::Ttas, LockKind::Parking, LockKind::Std, LockKind::ParkingLot] {
            let (a, b) = count_under_lock(kind, threads, INCREMENTS / 4).unwrap();
            assert_eq!((a, b), (threads * INCREMENTS / 4, threads * INCREMENTS / 4), "{}", kind.name());
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in LockKind::ALL {
            assert_eq!(LockKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(LockKind::from_name("bakery"), None);
    }

    #[test]
    fn try_lock_fails_while_held_and_succeeds_after() {
        fn check<L: RawLock>() {
            let lock = L::default();
            let token = lock.try_lock().expect("free lock");
            assert!(lock.try_lock().is_none(), "{} let a second holder in", L::NAME);
            // SAFETY: this thread holds the lock with `token`.
            unsafe { lock.unlock(token) };
            let token = lock.try_lock().expect("free again");
            // SAFETY: as above.
            unsafe { lock.unlock(token) };
        }
        check::<tas::TasLock>();
        check::<ttas::TtasLock>();
        check::<ticket::TicketLock>();
        check::<mcs::McsLock>();
        check::<parking::ParkingMutex>();
    }

    #[test]
    fn a_panicking_critical_section_releases_the_lock() {
        let lock = parking::ParkingMutex::default();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lock.with(|| panic!("inside"))));
        assert!(outcome.is_err());
        assert!(lock.try_lock().is_some(), "released by the guard");
    }

    /// Two words a writer keeps equal; a reader seeing them differ saw a torn write.
    struct Guarded<L> {
        lock: L,
        pair: UnsafeCell<[u64; 2]>,
    }

    // SAFETY: `pair` is written only under the write lock and read only under a read lock.
    unsafe impl<L: RawRwLock> Sync for Guarded<L> {}

    /// Four readers and two writers on `L`: nobody overlaps a writer and no write is lost.
    fn readers_share_writers_exclude<L: RawRwLock>() {
        use crate::sync::atomic::{AtomicUsize, Ordering};
        // Small under Miri, which interprets every access.
        const ROUNDS: u64 = if cfg!(miri) { 20 } else { 2_000 };
        let guarded = Guarded { lock: L::default(), pair: UnsafeCell::new([0; 2]) };
        let (readers_inside, writers_inside) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let shared = &guarded;
        run_team(6, |member| {
            let guarded = shared;
            for _ in 0..ROUNDS {
                if member.index % 3 == 0 {
                    guarded.lock.write(|| {
                        assert_eq!(writers_inside.fetch_add(1, Ordering::SeqCst), 0, "two writers inside");
                        assert_eq!(readers_inside.load(Ordering::SeqCst), 0, "a reader inside with a writer");
                        // SAFETY: the write lock is held.
                        guarded.pair.with_mut(|pair| unsafe {
                            (*pair)[0] += 1;
                            (*pair)[1] = (*pair)[0];
                        });
                        writers_inside.fetch_sub(1, Ordering::SeqCst);
                    });
                } else {
                    guarded.lock.read(|| {
                        readers_inside.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(writers_inside.load(Ordering::SeqCst), 0, "a writer inside with a reader");
                        // SAFETY: a read lock is held, so no writer is inside.
                        let [a, b] = guarded.pair.with(|pair| unsafe { *pair });
                        assert_eq!(a, b, "torn read");
                        readers_inside.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        })
        .unwrap();
        // Two of the six members write.
        assert_eq!(guarded.pair.into_inner(), [2 * ROUNDS; 2]);
    }

    #[test]
    fn the_writer_preferring_rwlock_lets_readers_share_and_writers_exclude() {
        readers_share_writers_exclude::<rwlock::RwLock>();
    }

    #[test]
    fn the_reader_preferring_rwlock_lets_readers_share_and_writers_exclude() {
        readers_share_writers_exclude::<reader_rwlock::ReaderPreferringRwLock>();
    }
}
