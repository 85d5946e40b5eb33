//! Value types shared by the stage configs: they validate while deserializing, so a bad value is
//! reported with the YAML path of the key that holds it.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;
use std::time::Duration;

/// A duration written as the Collector writes them: `30s`, `250ms`, `1m30s`, `2h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `30s`, `250ms` or `1m30s`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                if v == 0 {
                    Ok(HumanDuration(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "`{v}` has no unit; write e.g. `{v}s` or `{v}ms`"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                if v < 0 {
                    return Err(E::custom("a duration cannot be negative"));
                }
                self.visit_u64(v as u64)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration `{trimmed}` ({e}); write e.g. `30s`, `250ms` or `1m30s`")
    })
}

/// A listen or connect address `host:port` (`localhost:4317`, `0.0.0.0:4318`, `[::1]:4317`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
        }
    }
    /// `host:port` with IPv6 hosts bracketed, as socket APIs expect.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.address())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("invalid endpoint `{text}`: unclosed `[`"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("invalid endpoint `{text}`: expected `[host]:port`"))?;
            (host, port)
        } else {
            text.rsplit_once(':').ok_or_else(|| {
                format!("invalid endpoint `{text}`: expected `host:port`, e.g. `localhost:4317`")
            })?
        };
        if host.is_empty() {
            return Err(format!(
                "invalid endpoint `{text}`: the host is empty (use `0.0.0.0:PORT` to listen on all interfaces)"
            ));
        }
        if host.contains('/') || host.contains(' ') {
            return Err(format!(
                "invalid endpoint `{text}`: expected `host:port` without a scheme or path"
            ));
        }
        let port = port.parse::<u16>().map_err(|_| {
            format!("invalid endpoint `{text}`: port `{port}` is not a number from 0 to 65535")
        })?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.address())
    }
}

/// A value that may be a credential (header values): usable as a string, but `Debug` never shows
/// it, so a config dump or log line cannot leak it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Configured headers as an HTTP header map; values are marked sensitive so they are never
/// printed.
pub fn secret_headers(
    headers: &std::collections::BTreeMap<String, Secret>,
) -> Result<reqwest::header::HeaderMap, String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header `{name}` is not a valid header name"))?;
        let mut value = reqwest::header::HeaderValue::from_str(value.expose())
            .map_err(|_| format!("header `{name}` has an invalid value"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_collector() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("thirty seconds").is_err());
        assert!(parse_duration("30").is_err());
    }

    #[test]
    fn endpoints_parse_and_reject_clearly() {
        assert_eq!(
            "localhost:4317".parse::<Endpoint>().unwrap(),
            Endpoint::new("localhost", 4317)
        );
        assert_eq!(
            "[::1]:4318".parse::<Endpoint>().unwrap().address(),
            "[::1]:4318"
        );
        assert!(
            "localhost"
                .parse::<Endpoint>()
                .unwrap_err()
                .contains("host:port")
        );
        assert!(
            "localhost:99999"
                .parse::<Endpoint>()
                .unwrap_err()
                .contains("port")
        );
        assert!(
            ":4317"
                .parse::<Endpoint>()
                .unwrap_err()
                .contains("host is empty")
        );
        assert!("http://x:1/v1".parse::<Endpoint>().is_err());
    }
}
