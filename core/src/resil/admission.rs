//! Admission: what a service does with a request that finds every worker busy.
//!
//! | policy | on arrival | next served |
//! |---|---|---|
//! | unbounded | waits | the oldest |
//! | bounded(n) | rejected at once when n already wait | the oldest |
//! | LIFO | waits | the newest: under overload its client is the likeliest still to be waiting (Facebook's "adaptive LIFO", Maurer, "Fail at Scale", ACM Queue 2015) |
//! | CoDel | waits | the oldest, but while the standing delay stays above `target` requests are dropped at the head |
//! | adaptive CoDel | waits | the oldest; once the queue has not been empty for `interval`, any request that has waited more than `target` is dropped (Maurer, "Fail at Scale") |
//!
//! CoDel is Nichols & Jacobson's "Controlling Queue Delay" (ACM Queue 2012; RFC 8289), with the
//! RFC's state machine: a request's sojourn time is measured when it leaves the queue; once
//! sojourns have stayed ≥ `target` for a whole `interval` the queue starts dropping — one
//! drop, then the next after interval/√count, faster while the delay persists — and stops the
//! moment a sojourn falls below `target`. A burst passes; a standing queue is drained — for
//! senders that slow down when one of their packets is dropped (TCP). Requests from clients
//! that do not back off keep coming, and one drop per interval/√count is far too few: the RPC
//! world's adaptation (Facebook's, in "Fail at Scale") keeps CoDel's signal — a queue that
//! has not been empty for an interval — and then drops every request that has waited more
//! than `target`, and otherwise those that have waited more than `interval`.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Unbounded,
    Bounded(usize),
    Lifo,
    CoDel { target: Duration, interval: Duration },
    AdaptiveCoDel { target: Duration, interval: Duration },
}

/// A waiting item and when it arrived.
#[derive(Debug)]
struct Waiting<T> {
    item: T,
    since: Duration,
}

/// The admission queue of one service.
#[derive(Debug)]
pub struct AdmissionQueue<T> {
    policy: Admission,
    queue: VecDeque<Waiting<T>>,
    codel: CoDel,
    /// When the queue was last seen empty (adaptive CoDel).
    last_empty: Duration,
}

/// RFC 8289's per-queue state.
#[derive(Debug, Default)]
struct CoDel {
    /// When the sojourn time will have stayed above target for an interval (`None`: below).
    first_above: Option<Duration>,
    dropping: bool,
    drop_next: Duration,
    count: u32,
    last_count: u32,
}

impl<T> AdmissionQueue<T> {
    pub fn new(policy: Admission) -> Self {
        Self { policy, queue: VecDeque::new(), codel: CoDel::default(), last_empty: Duration::ZERO }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// A request arrives at `now` to find every worker busy: `Err(item)` when it is rejected.
    pub fn offer(&mut self, item: T, now: Duration) -> Result<(), T> {
        match self.policy {
            Admission::Bounded(limit) if self.queue.len() >= limit => Err(item),
            _ => {
                if self.queue.is_empty() {
                    self.last_empty = now;
                }
                self.queue.push_back(Waiting { item, since: now });
                Ok(())
            }
        }
    }

    /// Takes out the first waiting item `matches` accepts (a cancelled request).
    pub fn remove(&mut self, matches: impl Fn(&T) -> bool) -> Option<T> {
        let index = self.queue.iter().position(|waiting| matches(&waiting.item))?;
        self.queue.remove(index).map(|waiting| waiting.item)
    }

    /// A worker is free at `now`: the item it serves next, with the items dropped on the way
    /// pushed onto `dropped`.
    pub fn next(&mut self, now: Duration, dropped: &mut Vec<T>) -> Option<T> {
        match self.policy {
            Admission::Unbounded | Admission::Bounded(_) => self.queue.pop_front().map(|waiting| waiting.item),
            Admission::Lifo => self.queue.pop_back().map(|waiting| waiting.item),
            Admission::CoDel { target, interval } => self.codel_dequeue(now, target, interval, dropped),
            Admission::AdaptiveCoDel { target, interval } => {
                let overloaded = now.saturating_sub(self.last_empty) >= interval;
                let limit = if overloaded { target } else { interval };
                while let Some(head) = self.queue.pop_front() {
                    if now.saturating_sub(head.since) <= limit {
                        if self.queue.is_empty() {
                            self.last_empty = now;
                        }
                        return Some(head.item);
                    }
                    dropped.push(head.item);
                }
                self.last_empty = now;
                None
            }
        }
    }

    /// RFC 8289 §5.5's `dequeue()`.
    fn codel_dequeue(
        &mut self,
        now: Duration,
        target: Duration,
        interval: Duration,
        dropped: &mut Vec<T>,
    ) -> Option<T> {
        let (mut item, mut ok_to_drop) = self.codel_pop(now, target, interval);
        let control_law = |t: Duration, count: u32| t + interval.div_f64(f64::from(count.max(1)).sqrt());
        if self.codel.dropping {
            if !ok_to_drop {
                self.codel.dropping = false;
            }
            while self.codel.dropping && now >= self.codel.drop_next {
                dropped.extend(item.take());
                self.codel.count += 1;
                (item, ok_to_drop) = self.codel_pop(now, target, interval);
                if ok_to_drop {
                    self.codel.drop_next = control_law(self.codel.drop_next, self.codel.count);
                } else {
                    self.codel.dropping = false;
                }
            }
        } else if ok_to_drop {
            dropped.extend(item.take());
            (item, _) = self.codel_pop(now, target, interval);
            self.codel.dropping = true;
            // Dropping resumed soon after it last stopped: start from the rate it had reached.
            let delta = self.codel.count.saturating_sub(self.codel.last_count);
            self.codel.count = if delta > 1 && now < self.codel.drop_next + interval * 16 { delta } else { 1 };
            self.codel.drop_next = control_law(now, self.codel.count);
            self.codel.last_count = self.codel.count;
        }
        item
    }

    /// RFC 8289's `dodequeue()`: the head and whether its sojourn says "drop".
    fn codel_pop(&mut self, now: Duration, target: Duration, interval: Duration) -> (Option<T>, bool) {
        let Some(head) = self.queue.pop_front() else {
            self.codel.first_above = None;
            return (None, false);
        };
        let ok_to_drop = if now.saturating_sub(head.since) < target {
            self.codel.first_above = None;
            false
        } else {
            match self.codel.first_above {
                None => {
                    self.codel.first_above = Some(now + interval);
                    false
                }
                Some(first_above) => now >= first_above,
            }
        };
        (Some(head.item), ok_to_drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn serve(queue: &mut AdmissionQueue<u32>, at: u64) -> (Option<u32>, Vec<u32>) {
        let mut dropped = Vec::new();
        (queue.next(MS(at), &mut dropped), dropped)
    }

    #[test]
    fn fifo_lifo_and_bounded_take_and_serve_in_their_order() {
        let mut fifo = AdmissionQueue::new(Admission::Unbounded);
        let mut lifo = AdmissionQueue::new(Admission::Lifo);
        let mut bounded = AdmissionQueue::new(Admission::Bounded(2));
        for i in 0..3 {
            fifo.offer(i, MS(0)).unwrap();
            lifo.offer(i, MS(0)).unwrap();
        }
        assert_eq!(
            (bounded.offer(0, MS(0)), bounded.offer(1, MS(0)), bounded.offer(2, MS(0))),
            (Ok(()), Ok(()), Err(2))
        );
        assert_eq!((0..3).map(|_| serve(&mut fifo, 1).0.unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!((0..3).map(|_| serve(&mut lifo, 1).0.unwrap()).collect::<Vec<_>>(), [2, 1, 0]);
        assert_eq!(bounded.remove(|&i| i == 1), Some(1));
        assert_eq!(serve(&mut bounded, 1), (Some(0), vec![]));
        assert_eq!(serve(&mut bounded, 1), (None, vec![]));
    }

    /// CoDel with target 5 ms, interval 100 ms, and requests arriving every millisecond to a
    /// queue that keeps 20 ms of them standing: the drops RFC 8289's state machine makes.
    #[test]
    fn codel_drops_once_the_delay_has_stood_for_an_interval_then_at_interval_over_root_count() {
        let mut queue = AdmissionQueue::new(Admission::CoDel { target: MS(5), interval: MS(100) });
        let mut arrivals = 0..;
        let mut drops = Vec::new();
        for now in 0..=400u64 {
            // One arrival per ms; the worker serves one per ms once 20 are waiting.
            queue.offer(arrivals.next().unwrap(), MS(now)).unwrap();
            if queue.len() > 20 {
                let (served, dropped) = serve(&mut queue, now);
                assert!(served.is_some());
                drops.extend(dropped.iter().map(|_| now));
            }
        }
        // Sojourns reach 20 ms at t = 20 (≥ target): first_above = 120, the first drop then
        // (count 1, next at 120 + 100/√1). Each later drop: count + 1, next += 100/√count:
        // 220 (→ 290.7), 291 (→ 348.5), 349 (→ 398.5), 399. A drop pulls the next head too,
        // so the ms after a drop serves nothing and every drop falls on a serving ms.
        assert_eq!(drops, [120, 220, 291, 349, 399]);
    }

    #[test]
    fn adaptive_codel_drops_past_target_once_the_queue_has_stood_for_an_interval() {
        let mut queue = AdmissionQueue::new(Admission::AdaptiveCoDel { target: MS(5), interval: MS(100) });
        // Empty at 0 when the first arrives; the queue then never empties.
        (0..4).for_each(|i| queue.offer(i, MS(0)).unwrap());
        assert_eq!(serve(&mut queue, 50), (Some(0), vec![]), "not yet overloaded: waits up to 100 ms are served");
        queue.offer(10, MS(96)).unwrap();
        assert_eq!(serve(&mut queue, 99), (Some(1), vec![]), "99 ms: still under the interval");
        assert_eq!(serve(&mut queue, 100), (Some(10), vec![2, 3]), "overloaded: 100 ms waits are dropped, 4 ms served");
        assert_eq!(serve(&mut queue, 101), (None, vec![]), "empty again");
        queue.offer(20, MS(110)).unwrap();
        assert_eq!(serve(&mut queue, 150), (Some(20), vec![]), "empty at 110: a 40 ms wait is served again");
    }

    #[test]
    fn codel_stops_dropping_when_a_sojourn_falls_below_target_and_waits_a_new_interval() {
        let mut queue = AdmissionQueue::new(Admission::CoDel { target: MS(5), interval: MS(100) });
        (0..4).for_each(|i| queue.offer(i, MS(0)).unwrap());
        (10..12).for_each(|i| queue.offer(i, MS(199)).unwrap());
        assert_eq!(serve(&mut queue, 10), (Some(0), vec![]), "above target: the interval starts");
        assert_eq!(serve(&mut queue, 110), (Some(2), vec![1]), "a whole interval above: one drop, next at 210");
        assert_eq!(serve(&mut queue, 200), (Some(3), vec![]), "still dropping, but not before 210");
        assert_eq!(serve(&mut queue, 201), (Some(10), vec![]), "a 2 ms sojourn ends the dropping state");
        assert_eq!(serve(&mut queue, 300), (Some(11), vec![]), "101 ms is above target again: a new interval");
    }
}
