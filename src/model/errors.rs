//! Which model-endpoint failures are worth retrying, and how long to wait: one pure place.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The server answered with a non-2xx status.
    #[error("HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No answer: refused, reset, DNS, or the request deadline passed.
    #[error("transport: {message}")]
    Transport { message: String, timeout: bool },
    /// A 2xx answer we cannot use: not JSON, missing fields, wrong vector count or dimension.
    #[error("unusable reply: {0}")]
    Garbage(String),
    /// The circuit breaker is open after repeated failures; not sent.
    #[error("circuit open after repeated failures; retry in {0:?}")]
    CircuitOpen(Duration),
    /// The request itself is wrong (bad configuration, input too large); retrying cannot help.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again; the server asked for this delay if `Some`.
    Retry(Option<Duration>),
    /// Give up on this request.
    Fail,
}

pub fn classify(error: &ModelError) -> Decision {
    match error {
        ModelError::Http {
            status,
            retry_after,
            ..
        } => match status {
            408 | 409 | 425 | 429 | 500 | 502 | 503 | 504 | 520..=529 => {
                Decision::Retry(*retry_after)
            }
            _ => Decision::Fail,
        },
        ModelError::Transport { .. } => Decision::Retry(None),
        // Sampling is not deterministic: the same request may come back well-formed.
        ModelError::Garbage(_) => Decision::Retry(None),
        ModelError::CircuitOpen(_) | ModelError::Invalid(_) => Decision::Fail,
    }
}

/// Whether a failure counts against the endpoint's health (circuit breaker). A 4xx other than
/// 408/429 says the request is wrong, not that the endpoint is down.
pub fn counts_as_outage(error: &ModelError) -> bool {
    match error {
        ModelError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        ModelError::Transport { .. } => true,
        ModelError::Garbage(_) | ModelError::CircuitOpen(_) | ModelError::Invalid(_) => false,
    }
}

/// Exponential back-off with full jitter, capped; a server-requested delay wins (capped at 5
/// minutes so a hostile header cannot park the stage).
pub fn backoff(
    attempt: u32,
    initial: Duration,
    max: Duration,
    server: Option<Duration>,
    jitter: f64,
) -> Duration {
    if let Some(delay) = server {
        return delay.min(Duration::from_secs(300));
    }
    let exp = initial.saturating_mul(1u32 << attempt.min(16)).min(max);
    // Half fixed, half random: never zero, never in lock-step with other clients.
    exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> ModelError {
        ModelError::Http {
            status,
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retryable_statuses_and_failures() {
        for status in [408, 429, 500, 502, 503, 504, 529] {
            assert_eq!(classify(&http(status)), Decision::Retry(None), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert_eq!(classify(&http(status)), Decision::Fail, "{status}");
        }
        let with_delay = ModelError::Http {
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            classify(&with_delay),
            Decision::Retry(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            classify(&ModelError::Garbage("x".into())),
            Decision::Retry(None)
        );
        assert!(counts_as_outage(&http(503)) && !counts_as_outage(&http(400)));
    }

    #[test]
    fn backoff_grows_caps_and_honours_the_server() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(backoff(0, i, m, None, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(3, i, m, None, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(10, i, m, None, 1.0), m);
        assert_eq!(
            backoff(0, i, m, Some(Duration::from_secs(9)), 0.5),
            Duration::from_secs(9)
        );
        assert_eq!(
            backoff(0, i, m, Some(Duration::from_secs(3600)), 0.5),
            Duration::from_secs(300)
        );
    }
}
