//! Which downstream failures are worth retrying, and how long to wait — the OTLP rules in one
//! pure place (as opentelemetry-otlp keeps them).

use std::time::Duration;

/// A failed export attempt, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The gRPC server answered with a status; `retry_info` is its RetryInfo delay, if sent.
    Grpc {
        code: tonic::Code,
        message: String,
        retry_info: Option<Duration>,
    },
    /// The HTTP server answered with a non-2xx status; `retry_after` from its header.
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, timeout, DNS failure.
    Transport(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Grpc { code, message, .. } => write!(f, "gRPC {code:?}: {message}"),
            SendError::Http {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            SendError::Transport(message) => write!(f, "transport: {message}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again; the server asked for this delay if `Some`.
    Retry(Option<Duration>),
    /// Never succeeds as sent: count the spans as failed and move on.
    Drop,
}

pub fn classify(error: &SendError) -> Decision {
    use tonic::Code;
    match error {
        SendError::Grpc {
            code, retry_info, ..
        } => match code {
            Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss => Decision::Retry(*retry_info),
            // Only retryable when the server says when to come back (OTLP spec).
            Code::ResourceExhausted if retry_info.is_some() => Decision::Retry(*retry_info),
            _ => Decision::Drop,
        },
        SendError::Http {
            status,
            retry_after,
            ..
        } => match status {
            429 | 502 | 503 | 504 => Decision::Retry(*retry_after),
            _ => Decision::Drop,
        },
        SendError::Transport(_) => Decision::Retry(None),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential back-off with jitter; `jitter` in [0, 1) is the random draw.
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

    /// The wait before the next attempt: the server's delay if it gave one, else the jittered
    /// exponential step.
    pub fn delay(&mut self, server_delay: Option<Duration>, jitter: f64) -> Duration {
        let base = self.next;
        self.next = base.mul_f64(self.multiplier).min(self.max);
        if let Some(delay) = server_delay {
            return delay;
        }
        let spread = self.randomization * (2.0 * jitter - 1.0);
        base.mul_f64((1.0 + spread).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn grpc(code: Code, retry_info: Option<Duration>) -> SendError {
        SendError::Grpc {
            code,
            message: String::new(),
            retry_info,
        }
    }

    fn http(status: u16) -> SendError {
        SendError::Http {
            status,
            message: String::new(),
            retry_after: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn grpc_codes_follow_the_otlp_spec() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert_eq!(
                classify(&grpc(code, None)),
                Decision::Retry(None),
                "{code:?}"
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
            Code::Internal,
            Code::NotFound,
        ] {
            assert_eq!(classify(&grpc(code, None)), Decision::Drop, "{code:?}");
        }
        assert_eq!(
            classify(&grpc(Code::ResourceExhausted, None)),
            Decision::Drop
        );
        let delay = Some(Duration::from_secs(3));
        assert_eq!(
            classify(&grpc(Code::ResourceExhausted, delay)),
            Decision::Retry(delay)
        );
        assert_eq!(
            classify(&grpc(Code::Unavailable, delay)),
            Decision::Retry(delay)
        );
    }

    #[test]
    fn http_statuses_follow_the_otlp_spec() {
        for status in [429, 502, 503, 504] {
            assert_eq!(
                classify(&http(status)),
                Decision::Retry(Some(Duration::from_secs(2)))
            );
        }
        for status in [400, 401, 403, 404, 413, 415, 500] {
            assert_eq!(classify(&http(status)), Decision::Drop, "{status}");
        }
        assert_eq!(
            classify(&SendError::Transport("refused".into())),
            Decision::Retry(None)
        );
    }

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
}
