//! A retry budget: retries may be at most a fixed share of requests (Finagle's `RetryBudget`;
//! gRPC's retry throttling is the same token bucket).
//!
//! Every request deposits `ratio` tokens, a retry takes one whole token, and the bucket holds
//! at most `burst` (it starts full, so a client that has sent nothing may still retry a few
//! times). Over any stretch of a run, retries ≤ burst + ratio · requests: when every attempt
//! fails, the load a client sends is at most (1 + ratio) times its requests, not `attempts`
//! times — the bound that keeps retries from turning an outage into a storm.

#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    ratio: f64,
    burst: f64,
    tokens: f64,
}

impl RetryBudget {
    /// `ratio` in [0, 1]; `burst` ≥ 0 (both clamped).
    pub fn new(ratio: f64, burst: f64) -> Self {
        let burst = burst.max(0.0);
        Self { ratio: ratio.clamp(0.0, 1.0), burst, tokens: burst }
    }

    /// A request was sent: its share of a retry goes in.
    pub fn deposit(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(self.burst.max(1.0));
    }

    /// Whether a retry may go: takes a token when it may.
    pub fn withdraw(&mut self) -> bool {
        // A hair of tolerance: ten deposits of 0.1 make one token.
        let may = self.tokens >= 1.0 - 1e-9;
        if may {
            self.tokens = (self.tokens - 1.0).max(0.0);
        }
        may
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_never_exceed_burst_plus_ratio_times_requests() {
        let mut budget = RetryBudget::new(0.1, 5.0);
        let mut retries = 0;
        for request in 1..=1000u32 {
            budget.deposit();
            // Every attempt fails and the client wants three retries.
            retries += (0..3).filter(|_| budget.withdraw()).count();
            assert!(retries as f64 <= 5.0 + 0.1 * f64::from(request) + 1e-9, "{retries} after {request}");
        }
        // The burst goes on the first two requests (the first one's deposit finds the bucket
        // full), then a retry every ten requests from the 11th: 5 + 99.
        assert_eq!(retries, 5 + 99);
    }

    #[test]
    fn an_empty_bucket_refuses_until_ten_requests_refill_a_token() {
        let mut budget = RetryBudget::new(0.1, 0.0);
        for _ in 0..9 {
            budget.deposit();
            assert!(!budget.withdraw());
        }
        budget.deposit();
        assert!(budget.withdraw() && !budget.withdraw());
    }
}
