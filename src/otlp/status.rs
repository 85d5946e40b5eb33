//! `google.rpc.Status` and `google.rpc.RetryInfo` (see `proto/google/rpc/`): the error body of
//! OTLP/HTTP and the detail that carries a server's requested back-off in gRPC. Hand-written prost
//! messages, so no protoc is needed at build time.

use prost::Message;
use std::time::Duration;

pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Encoded `RetryInfo` asking the client to wait `delay`.
pub fn retry_info(delay: Duration) -> Any {
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    Any {
        type_url: RETRY_INFO_TYPE_URL.into(),
        value: info.encode_to_vec(),
    }
}

/// The delay of the first `RetryInfo` among a status's details, if any.
pub fn find_retry_delay(details: &[Any]) -> Option<Duration> {
    details
        .iter()
        .filter(|d| d.type_url == RETRY_INFO_TYPE_URL)
        .find_map(|d| {
            let delay = RetryInfo::decode(d.value.as_slice()).ok()?.retry_delay?;
            (delay.seconds >= 0 && delay.nanos >= 0)
                .then(|| Duration::new(delay.seconds as u64, delay.nanos as u32))
        })
}

/// A gRPC status carrying `RetryInfo` in `grpc-status-details-bin`, as the OTLP spec asks for
/// back-pressure.
pub fn grpc_status_with_retry(code: tonic::Code, message: &str, delay: Duration) -> tonic::Status {
    let status = Status {
        code: code as i32,
        message: message.to_string(),
        details: vec![retry_info(delay)],
    };
    tonic::Status::with_details(code, message.to_string(), status.encode_to_vec().into())
}

/// The `RetryInfo` delay inside a gRPC status, if the server sent one.
pub fn grpc_retry_delay(status: &tonic::Status) -> Option<Duration> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    let decoded = Status::decode(details).ok()?;
    find_retry_delay(&decoded.details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_through_a_grpc_status() {
        let status = grpc_status_with_retry(
            tonic::Code::Unavailable,
            "full",
            Duration::from_millis(1500),
        );
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(grpc_retry_delay(&status), Some(Duration::from_millis(1500)));
        assert_eq!(
            grpc_retry_delay(&tonic::Status::unavailable("no details")),
            None
        );
    }
}
