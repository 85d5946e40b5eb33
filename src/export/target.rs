//! Resolves `exporters.otlp.endpoint` + `protocol` into the URL a client connects to.

use super::config::{ExportProtocol, OtlpExporterConfig};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    /// `http://host:port` (plaintext) or `https://host:port` (TLS) for a gRPC channel.
    Grpc(String),
    /// Full URL of the traces path, e.g. `http://host:4318/v1/traces`.
    Http(String),
}

impl ExportTarget {
    pub fn from_config(config: &OtlpExporterConfig) -> Result<Self, String> {
        let raw = config.endpoint.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        let (scheme, without_scheme) = match raw.split_once("://") {
            Some(("http", rest)) => ("http", rest),
            Some(("https", rest)) => ("https", rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "`{raw}`: unsupported scheme `{scheme}`; use `http://` or `https://`"
                ));
            }
            None => ("http", raw),
        };
        let (authority, path) = match without_scheme.find('/') {
            Some(i) => (&without_scheme[..i], &without_scheme[i..]),
            None => (without_scheme, ""),
        };
        let endpoint: crate::config::types::Endpoint = authority.parse()?;
        if endpoint.port == 0 {
            return Err(format!("`{raw}`: port 0 cannot be connected to"));
        }
        match config.protocol {
            ExportProtocol::Grpc => {
                if !path.is_empty() && path != "/" {
                    return Err(format!(
                        "`{raw}`: a gRPC endpoint has no path; write `host:port`"
                    ));
                }
                Ok(ExportTarget::Grpc(format!(
                    "{scheme}://{}",
                    endpoint.address()
                )))
            }
            ExportProtocol::Http => {
                let path = path.trim_end_matches('/');
                let path = if path.ends_with("/v1/traces") {
                    path.to_string()
                } else {
                    format!("{path}/v1/traces")
                };
                Ok(ExportTarget::Http(format!(
                    "{scheme}://{}{}",
                    endpoint.address(),
                    path
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: &str, protocol: ExportProtocol) -> Result<ExportTarget, String> {
        let config = OtlpExporterConfig {
            endpoint: endpoint.into(),
            protocol,
            ..Default::default()
        };
        ExportTarget::from_config(&config)
    }

    #[test]
    fn resolves_grpc_and_http_forms() {
        assert_eq!(
            target("localhost:4317", ExportProtocol::Grpc),
            Ok(ExportTarget::Grpc("http://localhost:4317".into()))
        );
        assert_eq!(
            target("http://c:4317", ExportProtocol::Grpc),
            Ok(ExportTarget::Grpc("http://c:4317".into()))
        );
        assert_eq!(
            target("http://c:4318", ExportProtocol::Http),
            Ok(ExportTarget::Http("http://c:4318/v1/traces".into()))
        );
        assert_eq!(
            target("c:4318/otlp/", ExportProtocol::Http),
            Ok(ExportTarget::Http("http://c:4318/otlp/v1/traces".into()))
        );
        assert_eq!(
            target("http://c:4318/v1/traces", ExportProtocol::Http),
            Ok(ExportTarget::Http("http://c:4318/v1/traces".into()))
        );
        assert_eq!(
            target("https://otlp.example.com:443/otlp", ExportProtocol::Http),
            Ok(ExportTarget::Http(
                "https://otlp.example.com:443/otlp/v1/traces".into()
            ))
        );
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(
            target("https://c:4317", ExportProtocol::Grpc),
            Ok(ExportTarget::Grpc("https://c:4317".into()))
        );
        assert!(
            target("ftp://c:1", ExportProtocol::Http)
                .unwrap_err()
                .contains("scheme")
        );
        assert!(target("collector", ExportProtocol::Grpc).is_err());
        assert!(target("c:4317/v1/traces", ExportProtocol::Grpc).is_err());
    }
}
