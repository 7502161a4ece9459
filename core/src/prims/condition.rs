//! `threading.Condition`: a lock and the threads waiting for something it guards to change.
//! `wait` releases the lock, sleeps until notified (or the timeout), and takes the lock back;
//! `wait_for(predicate)` loops until the predicate holds — the `while`, not `if`, that makes a
//! spurious or stolen wake-up harmless. Here the lock guards a value of type `T`.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::wait_until;
use crate::sync::{lock, Condvar, Mutex, MutexGuard};

pub struct Condition<T> {
    state: Mutex<T>,
    changed: Condvar,
}

/// The held lock of a [`Condition`], with the value it guards.
pub struct ConditionGuard<'a, T> {
    condition: &'a Condition<T>,
    guard: Option<MutexGuard<'a, T>>,
}

impl<T> Condition<T> {
    pub fn new(value: T) -> Self {
        Self { state: Mutex::new(value), changed: Condvar::new() }
    }

    /// Takes the lock.
    pub fn lock(&self) -> ConditionGuard<'_, T> {
        ConditionGuard { condition: self, guard: Some(lock(&self.state)) }
    }

    /// Wakes one waiter (if any).
    pub fn notify(&self) {
        self.changed.notify_one();
    }

    pub fn notify_all(&self) {
        self.changed.notify_all();
    }
}

impl<'a, T> ConditionGuard<'a, T> {
    fn take(&mut self) -> MutexGuard<'a, T> {
        self.guard.take().expect("a condition guard holds its lock between calls")
    }

    /// One wait: releases the lock until notified or `timeout`; `false` on timeout. The
    /// condition may not hold on return (another thread may have run first): check it.
    pub fn wait(&mut self, timeout: Option<Duration>) -> bool {
        let guard = self.take();
        let condvar = &self.condition.changed;
        let (guard, notified) = match timeout {
            None => (condvar.wait(guard).unwrap_or_else(|p| p.into_inner()), true),
            Some(timeout) => match condvar.wait_timeout(guard, timeout) {
                Ok((guard, result)) => (guard, !result.timed_out()),
                Err(poisoned) => {
                    let (guard, result) = poisoned.into_inner();
                    (guard, !result.timed_out())
                }
            },
        };
        self.guard = Some(guard);
        notified
    }

    /// Waits until `predicate` holds (re-checked after every wake-up); `false` on timeout.
    pub fn wait_for(&mut self, timeout: Option<Duration>, mut predicate: impl FnMut(&mut T) -> bool) -> bool {
        let guard = self.take();
        let (guard, held) = wait_until(&self.condition.changed, guard, timeout, |value| predicate(value));
        self.guard = Some(guard);
        held
    }
}

impl<T> Deref for ConditionGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held")
    }
}

impl<T> DerefMut for ConditionGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held")
    }
}
