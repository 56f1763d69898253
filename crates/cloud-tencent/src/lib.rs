//! Tencent Cloud driver: CVM (2017-03-12), VPC (2017-03-12) and Tag (2018-08-13) over API 3.0
//! with TC3-HMAC-SHA256 signing.
//!
//! - [`TencentDriver`] implements [`mce_cloud::CloudDriver`]; build it from a [`TencentConfig`].
//! - Transport ([`client`]): signed `POST /` with a JSON body and `X-TC-*` headers, retries with
//!   backoff + full jitter on throttling and transient errors only, a token bucket per region.
//! - Errors ([`errors::classify`]) map Tencent codes onto [`mce_cloud::ErrorClass`].

pub mod client;
mod driver;
pub mod errors;
pub mod model;
pub mod permissions;
mod profile;
pub mod sign;
mod wire;

use std::time::Duration;

pub use client::Service;
pub use driver::TencentDriver;
pub use mce_cloud::transport::{ConfigError, Endpoint, TransportStats};
pub use mce_cloud::{RateLimit, RetryPolicy};
pub use profile::{PROFILE, TencentPlugin};
pub use wire::*;

use mce_cloud::Credentials;

/// Offset/Limit page size (the APIs' maximum; also the most ids per describe).
pub(crate) const PAGE_SIZE: u64 = 100;
/// Safety bound on pages of one describe.
pub(crate) const MAX_PAGES: u64 = 1000;

/// Configuration of one Tencent Cloud account's driver.
#[derive(Clone, Debug)]
pub struct TencentConfig {
    /// SecretId and SecretKey.
    pub credentials: Credentials,
    /// Send every call (CVM, VPC, Tag, STS) here instead of `<service>.tencentcloudapi.com`:
    /// `host:port` (https) or `http://host:port` / `https://host:port`.
    pub endpoint_override: Option<String>,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Client-side limit, per region, shared by all calls of one driver.
    pub rate_limit: RateLimit,
}

impl TencentConfig {
    /// Defaults: public endpoints, 30 s timeout, 5 attempts, 20 req/s burst 40.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            endpoint_override: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            rate_limit: RateLimit::default(),
        }
    }

    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint_override = Some(endpoint.into());
        self
    }
}
