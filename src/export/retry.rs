//! Which downstream failures are worth retrying — the OTLP rules in one pure place (as
//! opentelemetry-otlp's `retry_classification.rs` keeps them). How long to wait is the shared
//! policy in `core::retry`.

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
}
