//! `tls:` of the clients (model endpoints, the OTLP exporter over HTTP or gRPC): which servers
//! to trust.
//! An `https://` URL turns TLS on; this block only adjusts verification.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Once;

/// `tls:` — server verification for `https://` endpoints. The system's root certificates are
/// always trusted (as the Collector does); add a private CA with `ca_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM file of CA certificates to trust besides the system's, e.g. a company CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Testing only: anyone on the path can read and change the
    /// traffic, API keys included. Default false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `tls:` of a receiver: serve TLS with this certificate (the Collector's `cert_file` and
/// `key_file`). Without the block the receiver is plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl ServerTlsConfig {
    /// The certificate chain and key PEM files' contents.
    pub fn read(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("tls.{what} {}: {e}", path.display()))
        };
        Ok((
            read("cert_file", &self.cert_file)?,
            read("key_file", &self.key_file)?,
        ))
    }
}

/// rustls needs one process-wide crypto provider; ring is the one compiled in.
pub(crate) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only means another part of the process installed one first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the process's TLS provider installed: reqwest (built without
/// its own provider) panics without one, even for a plain `http://` client. Build every
/// reqwest client from this.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A shared client with default settings. Building one loads the system's root certificates
/// (tens of milliseconds), so it is built once; clones share its connection pool.
pub fn http_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            http_client_builder()
                .build()
                .expect("a default reqwest client builds")
        })
        .clone()
}

impl ClientTlsConfig {
    /// A client builder with this verification applied; fails on an unreadable or empty
    /// `ca_file`.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, String> {
        let mut builder = http_client_builder();
        if let Some(path) = &self.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "tls.ca_file {}: no PEM certificate in the file",
                    path.display()
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if self.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }
}

impl ClientTlsConfig {
    /// The same verification for a tonic (gRPC) channel.
    pub fn grpc(&self) -> Result<tonic::transport::ClientTlsConfig, String> {
        if self.insecure_skip_verify {
            return Err(
                "tls.insecure_skip_verify is not supported by the gRPC exporter; trust the server's CA with tls.ca_file".into(),
            );
        }
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(path) = &self.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("tls.ca_file {}: {e}", path.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        Ok(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let missing = ClientTlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = missing.client_builder().unwrap_err();
        assert!(err.contains("tls.ca_file /nonexistent/ca.pem"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let config = ClientTlsConfig {
            ca_file: Some(empty),
            ..Default::default()
        };
        let err = config.client_builder().unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
