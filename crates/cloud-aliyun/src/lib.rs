//! Alibaba Cloud driver: ECS (2014-05-26) and VPC (2016-04-28) over RPC with ACS3 signing.
//!
//! - [`AliyunDriver`] implements [`CloudDriver`]; build it from an [`AliyunConfig`].
//! - Transport ([`client`]): signed `POST /?<params>`, retries with backoff + full jitter on
//!   throttling and transient errors only, a token bucket per region.
//! - Errors ([`errors::classify`]) map Alibaba codes onto [`ErrorClass`].

pub mod client;
mod driver;
pub mod errors;
pub mod model;
pub mod params;
pub mod permissions;
mod profile;
pub mod sign;
mod wire;

use std::time::Duration;

pub use client::Service;
pub use driver::AliyunDriver;
pub use mce_cloud::transport::{ConfigError, Endpoint, TransportStats};
pub use mce_cloud::{RateLimit, RetryPolicy};
pub use params::Params;
pub use profile::{AliyunPlugin, PROFILE};
pub use wire::*;

use mce_cloud::Credentials;

/// Page size of the page-numbered describes (DescribeVpcs/VSwitches/SecurityGroups allow 50).
pub(crate) const PAGE_SIZE: u32 = 50;
/// Page size of DescribeEipAddresses (max 100).
pub(crate) const EIP_PAGE_SIZE: u32 = 100;
/// Ids per DescribeInstances call and its MaxResults.
pub(crate) const INSTANCE_BATCH: usize = 100;
/// Allocation ids per DescribeEipAddresses call (comma list).
pub(crate) const EIP_ID_BATCH: usize = 50;
/// Safety bound on pages of one describe.
pub(crate) const MAX_PAGES: u32 = 1000;
/// Tags (TagResources `Tag.N`) or keys (UntagResources `TagKey.N`) per call.
pub(crate) const TAG_BATCH: usize = 20;

/// Configuration of one Alibaba Cloud account's driver.
#[derive(Clone, Debug)]
pub struct AliyunConfig {
    pub credentials: Credentials,
    /// Send every call (ECS and VPC) here instead of the regional endpoints:
    /// `host:port` (https) or `http://host:port` / `https://host:port`.
    pub endpoint_override: Option<String>,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Client-side limit, per region, shared by all calls of one driver.
    pub rate_limit: RateLimit,
}

impl AliyunConfig {
    /// Defaults: regional endpoints, 30 s timeout, 5 attempts, 20 req/s burst 40.
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
