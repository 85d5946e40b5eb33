//! Slow and surplus OTLP/HTTP connections, over real sockets: a client that stalls in its header
//! or its body is cut off after the configured timeout, and a connection beyond
//! `max_connections` is closed at once while the earlier ones keep working.

mod common;

use common::*;
use prost::Message;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracetopics::Sidecar;
use tracetopics::config::types::HumanDuration;

/// Only a bound on a hung test; every wait below ends on the server's own action.
const WAIT: Duration = Duration::from_secs(20);

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                // A reset is a close too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("reading from the receiver: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("the receiver never closed the connection");
    received
}

/// The response header of one request on an open connection.
async fn read_response_head(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before answering: {received:?}");
        received.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn export_request(body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn closed_connections(text: &str, reason: &str) -> f64 {
    metric(
        text,
        &format!(
            "tracetopics_receiver_closed_connections_total{{transport=\"http\",reason=\"{reason}\"}}"
        ),
    )
}

async fn start(
    dir: &std::path::Path,
    sink: SocketAddr,
    timeouts: Duration,
    max_connections: u32,
) -> tracetopics::RunningSidecar {
    let mut config = config(dir, sink);
    let http = config.receivers.otlp.protocols.http.as_mut().unwrap();
    http.read_header_timeout = HumanDuration(timeouts);
    http.read_timeout = HumanDuration(timeouts);
    http.max_connections = max_connections;
    Sidecar::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_and_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let sidecar = start(dir.path(), sink.addr, Duration::from_millis(300), 64).await;
    let http = sidecar.addresses.http.unwrap();

    // Half a header, then nothing: closed without an answer.
    let mut partial_header = TcpStream::connect(http).await.unwrap();
    partial_header
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
        .await
        .unwrap();
    let answer = read_until_closed(&mut partial_header).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    // A whole header promising 1000 bytes, then 10: 408, then closed.
    let mut partial_body = TcpStream::connect(http).await.unwrap();
    let mut request = export_request(&[0u8; 1000]);
    request.truncate(request.len() - 990);
    partial_body.write_all(&request).await.unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut partial_body).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("read_timeout"), "{answer}");

    let text = metrics_text(sidecar.addresses.metrics).await;
    assert_eq!(
        closed_connections(&text, "read_header_timeout"),
        1.0,
        "{text}"
    );
    assert_eq!(closed_connections(&text, "read_timeout"), 1.0, "{text}");
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_cap_is_closed_and_the_others_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let sidecar = start(dir.path(), sink.addr, Duration::from_secs(60), 2).await;
    let http = sidecar.addresses.http.unwrap();

    // Connected in order, so the receiver accepts them in order.
    let mut first = TcpStream::connect(http).await.unwrap();
    let mut second = TcpStream::connect(http).await.unwrap();
    let mut third = TcpStream::connect(http).await.unwrap();
    assert!(read_until_closed(&mut third).await.is_empty());

    for (trace, connection) in [(1, &mut first), (2, &mut second)] {
        let body = request("svc", "s", vec![rich_span(trace, 0)]).encode_to_vec();
        connection.write_all(&export_request(&body)).await.unwrap();
        let head = read_response_head(connection).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    assert_eq!(sink.wait_for_spans(2, WAIT).await, 2);

    let text = metrics_text(sidecar.addresses.metrics).await;
    assert_eq!(closed_connections(&text, "max_connections"), 1.0, "{text}");
    drop((first, second));
    sidecar.shutdown().await;
}
