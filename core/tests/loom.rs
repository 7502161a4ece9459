//! Model checks of every hand-written lock with loom: all interleavings up to a preemption
//! bound. Mutual exclusion is checked by loom itself (the protected data sits in loom's
//! `UnsafeCell`, so two holders at once are a reported race); a lost wake-up leaves a thread
//! asleep forever in the futex emulation, which loom reports as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release -p conlab-core --test loom`
//! (`cargo xtask test` does).
#![cfg(loom)]

use conlab_core::locks::mcs::McsLock;
use conlab_core::locks::parking::ParkingMutex;
use conlab_core::locks::rwlock::RwLock;
use conlab_core::locks::seqlock::SeqLock;
use conlab_core::locks::tas::TasLock;
use conlab_core::locks::ticket::TicketLock;
use conlab_core::locks::ttas::TtasLock;
use conlab_core::locks::{Lock, Mutex};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

fn model(preemptions: usize, test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(test);
}

/// `threads` threads (the main one included) each add 1 under the lock.
fn counts_exactly<L: Lock + 'static>(threads: usize, preemptions: usize) {
    model(preemptions, move || {
        let counter = Arc::new(Mutex::<L, usize>::new(0));
        let others: Vec<_> = (1..threads)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || counter.with(|n| *n += 1))
            })
            .collect();
        counter.with(|n| *n += 1);
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(counter.with(|n| *n), threads);
    });
}

// The pure spinlocks are checked with two threads. With three, two yielded spinners can keep
// handing the processor to each other, and loom's paths outgrow its branch budget (raising the
// budget ran past ten minutes). MCS waiters spin on their own node and parking waiters sleep:
// those two are checked with three threads.

#[test]
fn tas_excludes() {
    counts_exactly::<TasLock>(2, 3);
}

#[test]
fn ttas_excludes() {
    counts_exactly::<TtasLock>(2, 3);
}

#[test]
fn ticket_excludes() {
    counts_exactly::<TicketLock>(2, 3);
}

#[test]
fn mcs_excludes_and_hands_over() {
    counts_exactly::<McsLock>(3, 2);
}

#[test]
fn parking_mutex_excludes_and_never_loses_a_wake_up() {
    // Three threads: two can sleep at once, the case where a woken thread must keep the
    // word "contended" so the next unlock wakes the other.
    counts_exactly::<ParkingMutex>(3, 3);
}

struct Guarded {
    lock: RwLock,
    pair: UnsafeCell<[u64; 2]>,
}

// SAFETY: `pair` is written only under the write lock and read only under a read lock.
unsafe impl Sync for Guarded {}

#[test]
fn rwlock_readers_and_a_writer_never_overlap_and_all_finish() {
    model(2, || {
        let guarded = Arc::new(Guarded { lock: RwLock::default(), pair: UnsafeCell::new([0; 2]) });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let guarded = Arc::clone(&guarded);
                thread::spawn(move || {
                    guarded.lock.read(|| {
                        // SAFETY: a read lock is held.
                        let [a, b] = guarded.pair.with(|pair| unsafe { *pair });
                        assert_eq!(a, b);
                    })
                })
            })
            .collect();
        guarded.lock.write(|| {
            // SAFETY: the write lock is held.
            guarded.pair.with_mut(|pair| unsafe { *pair = [1, 1] })
        });
        for reader in readers {
            reader.join().unwrap();
        }
    });
}

#[test]
fn rwlock_two_writers_exclude() {
    model(3, || {
        let guarded = Arc::new(Guarded { lock: RwLock::default(), pair: UnsafeCell::new([0; 2]) });
        let other = {
            let guarded = Arc::clone(&guarded);
            // SAFETY: the write lock is held.
            thread::spawn(move || guarded.lock.write(|| guarded.pair.with_mut(|pair| unsafe { (*pair)[0] += 1 })))
        };
        // SAFETY: the write lock is held.
        guarded.lock.write(|| guarded.pair.with_mut(|pair| unsafe { (*pair)[0] += 1 }));
        other.join().unwrap();
        // SAFETY: both writers have finished (joined).
        assert_eq!(guarded.pair.with(|pair| unsafe { (*pair)[0] }), 2);
    });
}

#[test]
fn seqlock_readers_see_whole_writes_only() {
    model(2, || {
        let lock = Arc::new(SeqLock::<2>::default());
        let writer = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || lock.write(|words| *words = [7, 7]))
        };
        let [a, b] = lock.read();
        assert!([a, b] == [0, 0] || [a, b] == [7, 7], "torn read {a} {b}");
        writer.join().unwrap();
        assert_eq!(lock.read(), [7, 7]);
    });
}
