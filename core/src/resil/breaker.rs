//! A circuit breaker (Michael Nygard, "Release It!", 2007; the state machine of Hystrix and
//! resilience4j): after enough failures in a row it stops calling the downstream and fails
//! fast, then lets a few probes through to see whether the downstream is back.
//!
//! | state | a call | a success | a failure |
//! |---|---|---|---|
//! | closed | goes through | resets the failure count | counts; the `threshold`-th in a row opens |
//! | open | fails fast; once `cooldown` has passed, the breaker half-opens and this call probes | — | — |
//! | half-open | up to `probes` calls go through, the rest fail fast | the `probes`-th closes | reopens (the cooldown restarts) |
//!
//! Answers to calls that went through in an earlier state (a slow answer arriving after the
//! breaker opened) change nothing. Every transition is kept with its time, for the timeline.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The state as a level on a chart: closed 0, half-open ½, open 1.
    pub fn level(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 0.5,
            Self::Open => 1.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSpec {
    /// Failures in a row that open it (≥ 1).
    pub threshold: u32,
    /// How long it stays open before probing.
    pub cooldown: Duration,
    /// Probes that must all succeed to close it (≥ 1).
    pub probes: u32,
}

#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    spec: BreakerSpec,
    state: BreakerState,
    failures: u32,
    opened_at: Duration,
    probes_sent: u32,
    probes_passed: u32,
    transitions: Vec<(Duration, BreakerState)>,
}

/// Whether a call may go, and in which state it was let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(BreakerState);

impl CircuitBreaker {
    pub fn new(spec: BreakerSpec) -> Self {
        let spec = BreakerSpec { threshold: spec.threshold.max(1), probes: spec.probes.max(1), ..spec };
        Self {
            spec,
            state: BreakerState::Closed,
            failures: 0,
            opened_at: Duration::ZERO,
            probes_sent: 0,
            probes_passed: 0,
            transitions: Vec::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Every change of state with its time, in order.
    pub fn transitions(&self) -> &[(Duration, BreakerState)] {
        &self.transitions
    }

    /// A call at `now`: `Some(ticket)` when it may go, `None` when it fails fast.
    pub fn allow(&mut self, now: Duration) -> Option<Ticket> {
        if self.state == BreakerState::Open && now >= self.opened_at + self.spec.cooldown {
            self.enter(BreakerState::HalfOpen, now);
        }
        match self.state {
            BreakerState::Closed => Some(Ticket(BreakerState::Closed)),
            BreakerState::HalfOpen if self.probes_sent < self.spec.probes => {
                self.probes_sent += 1;
                Some(Ticket(BreakerState::HalfOpen))
            }
            BreakerState::HalfOpen | BreakerState::Open => None,
        }
    }

    /// The answer to a call `ticket` let through.
    pub fn record(&mut self, ticket: Ticket, now: Duration, success: bool) {
        match (ticket.0, self.state) {
            (BreakerState::Closed, BreakerState::Closed) if success => self.failures = 0,
            (BreakerState::Closed, BreakerState::Closed) => {
                self.failures += 1;
                if self.failures >= self.spec.threshold {
                    self.enter(BreakerState::Open, now);
                }
            }
            (BreakerState::HalfOpen, BreakerState::HalfOpen) if success => {
                self.probes_passed += 1;
                if self.probes_passed >= self.spec.probes {
                    self.enter(BreakerState::Closed, now);
                }
            }
            (BreakerState::HalfOpen, BreakerState::HalfOpen) => self.enter(BreakerState::Open, now),
            _ => {}
        }
    }

    fn enter(&mut self, state: BreakerState, now: Duration) {
        self.state = state;
        self.failures = 0;
        self.probes_sent = 0;
        self.probes_passed = 0;
        if state == BreakerState::Open {
            self.opened_at = now;
        }
        self.transitions.push((now, state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BreakerState::{Closed, HalfOpen, Open};

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerSpec { threshold: 3, cooldown: MS(100), probes: 2 })
    }

    fn call(breaker: &mut CircuitBreaker, at: u64, success: bool) -> bool {
        match breaker.allow(MS(at)) {
            Some(ticket) => {
                breaker.record(ticket, MS(at), success);
                true
            }
            None => false,
        }
    }

    #[test]
    fn opens_after_threshold_failures_in_a_row_probes_after_cooldown_and_closes() {
        let mut b = breaker();
        assert!(call(&mut b, 0, false) && call(&mut b, 1, false) && call(&mut b, 2, true), "a success resets");
        assert!(call(&mut b, 3, false) && call(&mut b, 4, false) && call(&mut b, 5, false));
        assert_eq!(b.state(), Open);
        assert!(!call(&mut b, 6, true) && !call(&mut b, 104, true), "fails fast until the cooldown ends");
        // At 105 ms it half-opens: two probes go, a third call fails fast while they are out.
        let (first, second) = (b.allow(MS(105)).unwrap(), b.allow(MS(105)).unwrap());
        assert_eq!(b.allow(MS(105)), None);
        b.record(first, MS(110), true);
        assert_eq!(b.state(), HalfOpen);
        b.record(second, MS(111), true);
        assert_eq!(b.transitions(), &[(MS(5), Open), (MS(105), HalfOpen), (MS(111), Closed)]);
    }

    #[test]
    fn a_failed_probe_reopens_and_restarts_the_cooldown() {
        let mut b = breaker();
        (0..3).for_each(|at| assert!(call(&mut b, at, false)));
        assert!(call(&mut b, 150, false), "the probe goes and fails");
        assert_eq!(b.state(), Open);
        assert!(!call(&mut b, 249, true), "the cooldown counts from the failed probe");
        assert!(call(&mut b, 250, true) && call(&mut b, 251, true));
        assert_eq!(
            b.transitions(),
            &[(MS(2), Open), (MS(150), HalfOpen), (MS(150), Open), (MS(250), HalfOpen), (MS(251), Closed)]
        );
    }

    #[test]
    fn late_answers_from_an_earlier_state_change_nothing() {
        let mut b = breaker();
        let slow = b.allow(MS(0)).unwrap();
        (1..4).for_each(|at| assert!(call(&mut b, at, false)));
        assert_eq!(b.state(), Open);
        b.record(slow, MS(50), true);
        assert_eq!(b.state(), Open, "a success from before it opened does not close it");
        let probe = b.allow(MS(103)).unwrap();
        b.record(slow, MS(104), false);
        assert_eq!(b.state(), HalfOpen, "a failure from before does not reopen it");
        b.record(probe, MS(105), true);
        assert_eq!(b.state(), HalfOpen, "one probe of two");
    }
}
