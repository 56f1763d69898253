//! AWS as the operator sees it: its profile and the factory of its driver.

use std::sync::Arc;

use mce_cloud::{
    CloudDriver, DriverConfig, PasswordPolicy, ProviderLimits, ProviderPlugin, ProviderProfile,
};

use crate::wire::{FORBIDDEN_RUN_EXTENSIONS, bandwidth_wire, charge_wire};
use crate::{AwsConfig, AwsDriver};

/// AWS's facts. Tag keys starting with `aws:` are reserved (users cannot set or remove them);
/// 50 tags per resource; keys 128, values 256 characters. No password login on EC2: key pairs
/// only. A resource's "name" is its `Name` tag (up to 255 characters) or, for a security
/// group, `GroupName` (255); the driver sets no `Name` tag itself (the operator's tags identify
/// what it created, and a tag it did not ask for would be removed by its tag sync).
/// ClientToken up to 64 ASCII characters.
pub static PROFILE: ProviderProfile = ProviderProfile {
    provider_type: "AWS",
    reserved_tag_prefixes: &["aws:"],
    password: PasswordPolicy::Unsupported,
    limits: ProviderLimits {
        tags_per_resource: 50,
        name_max_chars: 255,
        client_token_max_chars: 64,
    },
    charge_wire,
    bandwidth_wire,
    forbidden_extensions: FORBIDDEN_RUN_EXTENSIONS,
    probe_region: "us-east-1",
    // CreateVpc, CreateSubnet and CreateSecurityGroup take no ClientToken. Tags given in a
    // TagSpecification are applied with the create, but describes are eventually consistent
    // (AWS documents seconds).
    untokened_create_grace: Some(std::time::Duration::from_secs(15)),
    // General-purpose SSD, offered by every current family in every region.
    default_disk_category: "gp3",
};

/// Registers AWS with the operator.
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsPlugin;

impl ProviderPlugin for AwsPlugin {
    fn profile(&self) -> &'static ProviderProfile {
        &PROFILE
    }

    fn build(&self, config: DriverConfig) -> Result<Arc<dyn CloudDriver>, String> {
        let mut aws = AwsConfig::new(config.credentials);
        if let Some(endpoint) = config.endpoint {
            aws = aws.with_endpoint(endpoint);
        }
        if let Some(limit) = config.rate_limit {
            aws.rate_limit = limit;
        }
        let driver = AwsDriver::new(aws).map_err(|e| e.to_string())?;
        Ok(Arc::new(driver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mce_cloud::{BandwidthMode, ChargeMode, Credentials, Secret};

    #[test]
    fn facts_of_aws() {
        assert_eq!(PROFILE.provider_type, "AWS");
        assert!(PROFILE.is_reserved_tag("aws:cloudformation:stack-name"));
        assert!(!PROFILE.is_reserved_tag("project"));
        assert!(PROFILE.password.check("Passw0rd!").is_err());
        assert_eq!(PROFILE.limits.tags_per_resource, 50);
        assert_eq!(PROFILE.limits.client_token_max_chars, 64);
        assert_eq!((PROFILE.charge_wire)(ChargeMode::OnDemand), "on-demand");
        assert_eq!(
            (PROFILE.bandwidth_wire)(BandwidthMode::Traffic),
            "data-transfer-out"
        );
        assert_eq!(PROFILE.default_disk_category, "gp3");
        assert_eq!(PROFILE.probe_region, "us-east-1");
        assert!(PROFILE.untokened_create_grace.is_some());
        assert!(PROFILE.is_forbidden_extension("IamInstanceProfile.Arn"));
    }

    #[test]
    fn plugin_builds_a_driver_or_says_why_not() {
        let credentials = Credentials {
            access_key_id: "AKID".into(),
            access_key_secret: Secret::new("k"),
        };
        let driver = AwsPlugin
            .build(DriverConfig {
                credentials: credentials.clone(),
                endpoint: Some("http://127.0.0.1:9".into()),
                rate_limit: None,
            })
            .unwrap();
        assert_eq!(driver.provider(), "AWS");
        let err = AwsPlugin
            .build(DriverConfig {
                credentials,
                endpoint: Some("ftp://x".into()),
                rate_limit: None,
            })
            .err()
            .unwrap();
        assert!(err.contains("invalid endpoint"), "{err}");
    }
}
