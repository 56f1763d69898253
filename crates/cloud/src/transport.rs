//! What every driver's HTTP transport needs besides its provider's wire format: the retry
//! loop (rate limit, call observer, jittered backoff), endpoint overrides, transport counters,
//! transport errors, scrubbing secrets from error text, and constant-time signature comparison.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use url::Url;

use crate::ratelimit::{RateLimit, RegionLimiter};
use crate::retry::RetryPolicy;
use crate::{CloudError, CloudResult, ErrorClass};

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

/// The part of a driver's transport every provider shares: the HTTP client, the endpoint
/// override, one token bucket per region, the retry policy, and the counters. The provider's
/// own client adds its wire format and signature.
pub struct Transport {
    provider: &'static str,
    http: reqwest::Client,
    endpoint_override: Option<Endpoint>,
    retry: RetryPolicy,
    limiter: RegionLimiter,
    attempts: AtomicU64,
    retries: AtomicU64,
}

impl Transport {
    /// `endpoint_override` sends every call there instead of the provider's endpoints (see
    /// [`Endpoint::parse`]); `timeout` bounds one attempt.
    pub fn new(
        provider: &'static str,
        endpoint_override: Option<&str>,
        timeout: std::time::Duration,
        retry: RetryPolicy,
        rate_limit: RateLimit,
    ) -> Result<Self, ConfigError> {
        let endpoint_override = endpoint_override.map(Endpoint::parse).transpose()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("multicloud-ecs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.without_url().to_string()))?;
        Ok(Self {
            provider,
            http,
            endpoint_override,
            retry,
            limiter: RegionLimiter::new(rate_limit),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The override, else the provider's own endpoint.
    pub fn endpoint_or(&self, public: impl FnOnce() -> Endpoint) -> Endpoint {
        self.endpoint_override.clone().unwrap_or_else(public)
    }

    pub fn stats(&self) -> TransportStats {
        TransportStats {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    /// Runs one API call: waits for the region's rate limiter, sends an attempt (`send` signs
    /// each afresh: new date and nonce), reports it to the call observer, and retries what the
    /// policy retries (throttling, transient errors) after a jittered backoff. Returns the
    /// first success — the answer and its request id — or the last error.
    pub async fn call<B, F, Fut>(
        &self,
        region: &str,
        action: &str,
        send: F,
    ) -> CloudResult<(B, String)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = CloudResult<(B, String)>>,
    {
        self.run(region, action, true, send).await
    }

    /// [`Self::call`] for a create that carries no ClientToken: an attempt whose outcome is
    /// unknown ([`CloudError::outcome_unknown`]) is not sent again, since a replay could create
    /// a second resource; the caller finds out by looking the resource up.
    pub async fn call_once_created<B, F, Fut>(
        &self,
        region: &str,
        action: &str,
        send: F,
    ) -> CloudResult<(B, String)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = CloudResult<(B, String)>>,
    {
        self.run(region, action, false, send).await
    }

    async fn run<B, F, Fut>(
        &self,
        region: &str,
        action: &str,
        replay_unknown: bool,
        send: F,
    ) -> CloudResult<(B, String)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = CloudResult<(B, String)>>,
    {
        // One span per call, with the fields the attempts fill in.
        let span = tracing::info_span!(
            "cloud_call",
            provider = self.provider,
            action,
            region,
            attempt = tracing::field::Empty,
            request_id = tracing::field::Empty
        );
        tracing::Instrument::instrument(self.attempts(region, action, replay_unknown, send), span)
            .await
    }

    async fn attempts<B, F, Fut>(
        &self,
        region: &str,
        action: &str,
        replay_unknown: bool,
        mut send: F,
    ) -> CloudResult<(B, String)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = CloudResult<(B, String)>>,
    {
        let provider = self.provider;
        let mut attempt: u32 = 1;
        loop {
            self.limiter.acquire(region).await;
            self.attempts.fetch_add(1, Ordering::Relaxed);
            tracing::Span::current().record("attempt", attempt);
            let started = std::time::Instant::now();
            let result = send().await;
            let outcome = match &result {
                Ok(_) => "success",
                Err(e) => e.class.reason(),
            };
            crate::observe::record_call(provider, action, outcome, started.elapsed());
            let err = match result {
                Ok((body, request_id)) => {
                    tracing::Span::current().record("request_id", request_id.as_str());
                    tracing::debug!(provider, attempt, request_id = %request_id, "cloud call succeeded");
                    return Ok((body, request_id));
                }
                Err(err) => err,
            };
            let request_id = err.request_id.as_deref().unwrap_or("");
            if !self.retry.should_retry(err.class, attempt)
                || (!replay_unknown && err.outcome_unknown())
            {
                tracing::info!(provider, attempt, request_id, code = %err.code, class = %err.class, "cloud call failed");
                return Err(err);
            }
            let delay = self.retry.backoff(attempt);
            tracing::warn!(
                provider,
                attempt,
                request_id,
                code = %err.code,
                class = %err.class,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "cloud call failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A failure on the way to the cloud (no answer): transient, with its whole cause chain in the
/// message and secrets scrubbed. `code` tells timeouts and refused connections apart.
pub fn transport_error(
    provider: &'static str,
    action: &str,
    code: &'static str,
    err: &(dyn std::error::Error + 'static),
    secrets: &[&str],
) -> CloudError {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    CloudError::new(
        ErrorClass::Transient,
        provider,
        action,
        code,
        scrub(&message, secrets),
    )
}

/// An answer that does not parse: transient (a proxy's error page, a truncated body).
pub fn invalid_response(
    provider: &'static str,
    action: &str,
    request_id: String,
    problem: &dyn std::fmt::Display,
    secrets: &[&str],
) -> CloudError {
    let mut err = CloudError::new(
        ErrorClass::Transient,
        provider,
        action,
        "InvalidResponse",
        scrub(&format!("cannot parse the response: {problem}"), secrets),
    );
    err.request_id = (!request_id.is_empty()).then_some(request_id);
    err
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
