//! TLS on the receivers: OTLP/gRPC and OTLP/HTTP served with the test CA's certificate
//! (`tests/fixtures/tls/`), real TLS clients on loopback, spans delivered downstream.

mod common;

use common::tls::fixture;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::config::tls::{ClientTlsConfig, ServerTlsConfig};

const WAIT: Duration = Duration::from_secs(20);

fn server_tls() -> Option<ServerTlsConfig> {
    Some(ServerTlsConfig {
        cert_file: fixture("server.pem"),
        key_file: fixture("server.key"),
    })
}

async fn tls_sidecar(dir: &std::path::Path, sink: &Sink) -> tracetopics::app::RunningSidecar {
    let mut config = config(dir, sink.addr);
    let protocols = &mut config.receivers.otlp.protocols;
    protocols.grpc.as_mut().unwrap().tls = server_tls();
    protocols.http.as_mut().unwrap().tls = server_tls();
    Sidecar::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_receivers_serve_tls() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let sidecar = tls_sidecar(dir.path(), &sink).await;
    let (grpc, http) = (
        sidecar.addresses.grpc.unwrap(),
        sidecar.addresses.http.unwrap(),
    );

    // gRPC over TLS, the client trusting the test CA.
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(fixture("ca.pem")).unwrap()),
    );
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", grpc.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
    TraceServiceClient::new(channel)
        .export(request("svc", "s", vec![rich_span(1, 0), rich_span(1, 1)]))
        .await
        .unwrap();

    // OTLP/HTTP over TLS.
    let client = ClientTlsConfig {
        ca_file: Some(fixture("ca.pem")),
        ..Default::default()
    }
    .client_builder()
    .unwrap()
    .build()
    .unwrap();
    let body = request("svc", "s", vec![rich_span(2, 0)]).encode_to_vec();
    let response = client
        .post(format!("https://localhost:{}/v1/traces", http.port()))
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A plaintext client on the TLS port gets no OTLP answer.
    let plain = tracetopics::config::tls::http_client()
        .post(format!("http://localhost:{}/v1/traces", http.port()))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    assert_eq!(sink.wait_for_spans(3, WAIT).await, 3);
    assert_eq!(sidecar.shutdown().await.spans_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_mismatched_certificate_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    config.receivers.otlp.protocols.http.as_mut().unwrap().tls = Some(ServerTlsConfig {
        cert_file: dir.path().join("missing.pem"),
        key_file: fixture("server.key"),
    });
    let err = Sidecar::start(config.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("OTLP/HTTP receiver") && err.contains("missing.pem"),
        "{err}"
    );

    // The CA certificate does not belong to the server's key.
    config.receivers.otlp.protocols.http.as_mut().unwrap().tls = None;
    config.receivers.otlp.protocols.grpc.as_mut().unwrap().tls = Some(ServerTlsConfig {
        cert_file: fixture("ca.pem"),
        key_file: fixture("server.key"),
    });
    let err = Sidecar::start(config).await.err().unwrap().to_string();
    assert!(err.contains("OTLP/gRPC receiver"), "{err}");
}
