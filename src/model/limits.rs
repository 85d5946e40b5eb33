//! Per-endpoint limits: requests- and tokens-per-minute buckets and a circuit breaker. Both take
//! the current time as an argument, so their rules are tested without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets for requests and prompt tokens per minute. A caller reserves its cost and is
/// told how long to wait; reservations may go into debt, which queues later callers fairly.
pub struct RateLimiter {
    requests_per_minute: f64,
    tokens_per_minute: f64,
    state: Mutex<Buckets>,
}

struct Buckets {
    requests: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// 0 means unlimited.
    pub fn new(requests_per_minute: u32, tokens_per_minute: u32, now: Instant) -> Self {
        Self {
            requests_per_minute: f64::from(requests_per_minute),
            tokens_per_minute: f64::from(tokens_per_minute),
            state: Mutex::new(Buckets {
                requests: f64::from(requests_per_minute),
                tokens: f64::from(tokens_per_minute),
                last: now,
            }),
        }
    }

    /// Reserves one request of `tokens` prompt tokens; returns how long to wait before sending.
    pub fn reserve(&self, tokens: u64, now: Instant) -> Duration {
        let mut state = self.state.lock().expect("limiter lock");
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.last = state.last.max(now);
        let mut wait: f64 = 0.0;
        if self.requests_per_minute > 0.0 {
            let rate = self.requests_per_minute / 60.0;
            state.requests = (state.requests + elapsed * rate).min(self.requests_per_minute) - 1.0;
            if state.requests < 0.0 {
                wait = wait.max(-state.requests / rate);
            }
        }
        if self.tokens_per_minute > 0.0 {
            let rate = self.tokens_per_minute / 60.0;
            // A request larger than a whole minute's budget waits for a full bucket, not forever.
            let cost = (tokens as f64).min(self.tokens_per_minute);
            state.tokens = (state.tokens + elapsed * rate).min(self.tokens_per_minute) - cost;
            if state.tokens < 0.0 {
                wait = wait.max(-state.tokens / rate);
            }
        }
        Duration::from_secs_f64(wait)
    }
}

/// Opens after `threshold` consecutive outages, fails fast while open, then lets one probe
/// through; the probe's outcome closes or re-opens it.
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<Circuit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(Circuit::Closed { failures: 0 }),
        }
    }

    /// `Ok` to send; `Err(remaining)` while open. The first call after the open period is the
    /// probe; others keep failing fast until it reports back.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("breaker lock");
        match *state {
            Circuit::Closed { .. } => Ok(()),
            Circuit::Open { until } if now >= until => {
                *state = Circuit::HalfOpen;
                Ok(())
            }
            Circuit::Open { until } => Err(until - now),
            Circuit::HalfOpen => Err(Duration::from_millis(100)),
        }
    }

    pub fn record(&self, outage: bool, now: Instant) {
        let mut state = self.state.lock().expect("breaker lock");
        *state = match (*state, outage) {
            (_, false) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, true) if failures + 1 < self.threshold => {
                Circuit::Closed {
                    failures: failures + 1,
                }
            }
            _ => Circuit::Open {
                until: now + self.open_for,
            },
        };
    }

    pub fn is_open(&self) -> bool {
        !matches!(
            *self.state.lock().expect("breaker lock"),
            Circuit::Closed { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_minute_spreads_a_burst() {
        let t0 = Instant::now();
        let limiter = RateLimiter::new(60, 0, t0);
        for _ in 0..60 {
            assert_eq!(limiter.reserve(10, t0), Duration::ZERO);
        }
        assert_eq!(limiter.reserve(10, t0), Duration::from_secs(1));
        assert_eq!(limiter.reserve(10, t0), Duration::from_secs(2));
        // Time passing refills the bucket.
        assert_eq!(
            limiter.reserve(10, t0 + Duration::from_secs(10)),
            Duration::ZERO
        );
    }

    #[test]
    fn tokens_per_minute_counts_prompt_size() {
        let t0 = Instant::now();
        let limiter = RateLimiter::new(0, 6000, t0);
        assert_eq!(limiter.reserve(5000, t0), Duration::ZERO);
        assert_eq!(limiter.reserve(2000, t0), Duration::from_secs(10));
        // Bigger than a minute's budget: waits for a full bucket instead of forever.
        let limiter = RateLimiter::new(0, 600, t0);
        assert_eq!(limiter.reserve(10_000, t0), Duration::ZERO);
        assert_eq!(limiter.reserve(10_000, t0), Duration::from_secs(60));
        let unlimited = RateLimiter::new(0, 0, t0);
        assert_eq!(unlimited.reserve(u64::MAX, t0), Duration::ZERO);
    }

    #[test]
    fn the_breaker_opens_fails_fast_and_probes() {
        let t0 = Instant::now();
        let breaker = CircuitBreaker::new(3, Duration::from_secs(30));
        breaker.record(true, t0);
        breaker.record(true, t0);
        assert!(breaker.check(t0).is_ok());
        breaker.record(true, t0);
        assert_eq!(breaker.check(t0), Err(Duration::from_secs(30)));
        let later = t0 + Duration::from_secs(31);
        assert!(breaker.check(later).is_ok(), "the probe goes through");
        assert!(breaker.check(later).is_err(), "others wait for the probe");
        breaker.record(true, later);
        assert!(breaker.check(later).is_err(), "a failed probe re-opens");
        let much_later = later + Duration::from_secs(31);
        assert!(breaker.check(much_later).is_ok());
        breaker.record(false, much_later);
        assert!(breaker.check(much_later).is_ok() && !breaker.is_open());
    }
}
