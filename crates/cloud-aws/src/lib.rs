//! AWS driver: EC2 (Query API 2016-11-15) with Signature Version 4 signed by hand, and the
//! Price List Query API for prices.
//!
//! - [`AwsDriver`] implements [`mce_cloud::CloudDriver`]; build it from an [`AwsConfig`].
//! - Transport ([`client`]): signed `POST /` with a form body, XML answers, retries with
//!   backoff + full jitter on throttling and transient errors only, a token bucket per region;
//!   creates without a ClientToken are never replayed after an unknown outcome.
//! - Errors ([`errors::classify`]) map AWS codes onto [`mce_cloud::ErrorClass`].
//! - [`AwsPlugin`] registers the provider (type `AWS`) with the operator.

pub mod client;
mod driver;
pub mod errors;
pub mod permissions;
pub mod pricing;
mod profile;
pub mod sign;
pub mod wire;
pub mod xml;

use std::time::Duration;

pub use driver::AwsDriver;
pub use mce_cloud::transport::{ConfigError, Endpoint, TransportStats};
pub use mce_cloud::{RateLimit, RetryPolicy};
pub use profile::{AwsPlugin, PROFILE};
pub use wire::Params;

use mce_cloud::Credentials;

/// Safety bound on pages of one describe.
pub(crate) const MAX_PAGES: usize = 1000;

/// Configuration of one AWS account's driver.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// Access key id and secret access key.
    pub credentials: Credentials,
    /// Send every call (EC2 and Price List) here instead of `ec2.<region>.amazonaws.com` and
    /// `api.pricing.us-east-1.amazonaws.com`: `host:port` (https) or `http://host:port`. The
    /// region still goes in the credential scope (`<date>/<region>/ec2/aws4_request`).
    pub endpoint_override: Option<String>,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Client-side limit, per region, shared by all calls of one driver.
    pub rate_limit: RateLimit,
}

impl AwsConfig {
    /// Defaults: public endpoints, 30 s timeout, 5 attempts, the shared default rate limit.
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
