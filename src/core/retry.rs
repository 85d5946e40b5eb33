//! The retry policy, one place for every sender: exponential back-off with jitter, a server's
//! delay (`Retry-After`, gRPC `RetryInfo`) honoured up to the policy's largest interval, and a
//! time budget. Which failures are retryable is each protocol's business (`export::retry`,
//! `model::errors`); how long to wait is decided here. Modelled on opentelemetry-otlp's
//! `retry.rs`, which caps server delays for the same reason.

use std::time::Duration;

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential back-off with jitter; `jitter` in [0, 1) is the random draw. A server's delay wins
/// over the computed one but never exceeds `max`: a `Retry-After: 3600` means waiting the
/// longest this policy waits anyway and trying again, not parking the sender for an hour or —
/// with a time budget — giving the request up at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    multiplier: f64,
    randomization: f64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, multiplier: f64, randomization: f64) -> Self {
        Self {
            next: initial,
            max,
            multiplier,
            randomization,
        }
    }

    /// The wait before the next attempt: the server's delay if it gave one (at most `max`), else
    /// the jittered exponential step.
    pub fn delay(&mut self, server_delay: Option<Duration>, jitter: f64) -> Duration {
        let base = self.next;
        self.next = base.mul_f64(self.multiplier).min(self.max);
        if let Some(delay) = server_delay {
            return delay.min(self.max);
        }
        let spread = self.randomization * (2.0 * jitter - 1.0);
        base.mul_f64((1.0 + spread).max(0.0))
    }
}

/// Whether an attempt after waiting `delay` still starts within the budget `max_elapsed`
/// (zero: no budget) of a request that has been retried for `elapsed`.
pub fn within_budget(elapsed: Duration, delay: Duration, max_elapsed: Duration) -> bool {
    max_elapsed.is_zero() || elapsed + delay <= max_elapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_prefers_the_server_delay() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4), 2.0, 0.5);
        assert_eq!(b.delay(None, 0.5), Duration::from_secs(1));
        assert_eq!(b.delay(None, 0.5), Duration::from_secs(2));
        assert_eq!(b.delay(None, 0.5), Duration::from_secs(4));
        assert_eq!(b.delay(None, 0.5), Duration::from_secs(4));
        assert_eq!(
            b.delay(Some(Duration::from_millis(10)), 0.9),
            Duration::from_millis(10)
        );
        let jittered =
            Backoff::new(Duration::from_secs(2), Duration::from_secs(4), 2.0, 0.5).delay(None, 0.0);
        assert_eq!(jittered, Duration::from_secs(1));
    }

    #[test]
    fn a_long_server_delay_is_capped_so_retries_go_on_within_the_budget() {
        let hour = Duration::from_secs(3600);
        let budget = Duration::from_secs(300);
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(30), 1.5, 0.5);
        let delay = b.delay(Some(hour), 0.5);
        assert_eq!(delay, Duration::from_secs(30));
        assert!(within_budget(Duration::ZERO, delay, budget));
        assert!(
            !within_budget(Duration::ZERO, hour, budget),
            "uncapped, the first refusal would have ended the request"
        );
        assert!(!within_budget(Duration::from_secs(290), delay, budget));
        assert!(within_budget(
            Duration::from_secs(290),
            delay,
            Duration::ZERO
        ));
    }
}
