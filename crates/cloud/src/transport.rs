//! What every driver's HTTP transport needs besides its provider's wire format: endpoint
//! overrides, transport counters, scrubbing secrets from error text, and constant-time
//! signature comparison.

use url::Url;

/// Written in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Errors in a driver's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid endpoint override {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Where requests go: scheme and authority (`host[:port]`, also the signed `Host`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    pub authority: String,
}

impl Endpoint {
    /// An https endpoint on a public host name.
    pub fn https(authority: impl Into<String>) -> Self {
        Self {
            scheme: "https".to_string(),
            authority: authority.into(),
        }
    }

    /// Parses an override: `host[:port]` (https) or `http(s)://host[:port][/]`.
    pub fn parse(endpoint: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = endpoint.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("https://{trimmed}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(invalid("only scheme, host and port are allowed"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(Self {
            scheme: url.scheme().to_string(),
            authority,
        })
    }
}

/// Counters of a transport, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// HTTP requests sent (every attempt).
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

/// Replaces every secret value in `text`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// Constant-time comparison of two signatures, so timing does not reveal a partial match.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_overrides_only() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:8080").unwrap(),
            Endpoint::https("127.0.0.1:8080")
        );
        let plain = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (plain.scheme.as_str(), plain.authority.as_str()),
            ("http", "127.0.0.1:8080")
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
        assert!(Endpoint::parse("http://u@x").is_err());
    }

    #[test]
    fn secrets_are_scrubbed_and_signatures_compared() {
        assert_eq!(scrub("bad hunter2!", &["hunter2", ""]), "bad <redacted>!");
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
