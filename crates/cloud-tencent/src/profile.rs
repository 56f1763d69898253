//! Tencent Cloud as the operator sees it: its profile and the factory of its driver.

use std::sync::Arc;

use mce_cloud::{
    CloudDriver, DriverConfig, PasswordPolicy, ProviderLimits, ProviderPlugin, ProviderProfile,
};

use crate::{TencentConfig, TencentDriver, bandwidth_mode_wire, charge_type_wire};

/// Tencent Cloud's facts. Tag keys starting with `qcs:` or `project` are reserved by the
/// cloud (Tag "Use Limits"); some products also reserve `qcloud` and `tencent`, so all four
/// are kept off limits. Up to 50 tags per resource. Instance passwords (RunInstances
/// `LoginSettings.Password`, SDK `cvm/v20170312/models.py` LoginSettings): Linux 8-30
/// characters from two of lower case, upper case, digits and ``()`~!@#$%^&*-+=|{}[]:;',.?/``,
/// Windows 12-30 from three; the rule asks three so a password fits either (no `<`/`>`: the
/// cloud refuses them; it also refuses a leading `/`, which this rule does not express). Instance names up to 128 characters (CVM caps
/// VPC/subnet/security-group names lower, at 60). ClientToken up to 64 ASCII characters.
pub static PROFILE: ProviderProfile = ProviderProfile {
    provider_type: "TENCENT",
    reserved_tag_prefixes: &["qcs:", "project", "qcloud", "tencent"],
    password: PasswordPolicy::Rule {
        min_chars: 8,
        max_chars: 30,
        min_classes: 3,
        specials: "()`~!@#$%^&*-+=|{}[]:;',.?/",
    },
    limits: ProviderLimits {
        tags_per_resource: 50,
        name_max_chars: 60,
        client_token_max_chars: 64,
    },
    charge_wire: charge_type_wire,
    bandwidth_wire: bandwidth_mode_wire,
    forbidden_extensions: crate::wire::FORBIDDEN_RUN_EXTENSIONS,
    probe_region: "ap-guangzhou",
    // CreateVpc, CreateSubnet and CreateSecurityGroup take no ClientToken; a new resource's
    // tags reach the tag filters of the describes within seconds.
    untokened_create_grace: Some(std::time::Duration::from_secs(15)),
    // Premium cloud disk: offered by every CVM family (CLOUD_BSSD/SSD/HSSD are not).
    default_disk_category: "CLOUD_PREMIUM",
};

/// Registers Tencent Cloud with the operator.
#[derive(Clone, Copy, Debug, Default)]
pub struct TencentPlugin;

impl ProviderPlugin for TencentPlugin {
    fn profile(&self) -> &'static ProviderProfile {
        &PROFILE
    }

    fn build(&self, config: DriverConfig) -> Result<Arc<dyn CloudDriver>, String> {
        let mut tencent = TencentConfig::new(config.credentials);
        if let Some(endpoint) = config.endpoint {
            tencent = tencent.with_endpoint(endpoint);
        }
        if let Some(limit) = config.rate_limit {
            tencent.rate_limit = limit;
        }
        let driver = TencentDriver::new(tencent).map_err(|e| e.to_string())?;
        Ok(Arc::new(driver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mce_cloud::{BandwidthMode, ChargeMode, Credentials, Secret};

    #[test]
    fn password_rule_of_cvm() {
        let rule = PROFILE.password;
        assert!(rule.check("Passw0rd!").is_ok());
        assert!(rule.check("passw0rd!").is_ok());
        assert!(rule.check("Sh0rt!a").is_err());
        assert!(rule.check("alllowercase1").is_err());
        assert!(rule.check("Has space 1").is_err());
        assert!(
            rule.check("Passw0rd_x").is_err(),
            "underscore is not in CVM's set"
        );
        assert!(rule.check(&format!("Aa1!{}", "x".repeat(27))).is_err());
        assert!(
            rule.check("Passw0rd<>").is_err(),
            "< and > are not in CVM's set"
        );
    }

    #[test]
    fn cloud_owned_tags_and_wire_names() {
        assert!(PROFILE.is_reserved_tag("qcs:project"));
        assert!(PROFILE.is_reserved_tag("project:id"));
        assert!(PROFILE.is_reserved_tag("tencent-x"));
        assert!(!PROFILE.is_reserved_tag("team"));
        assert_eq!(
            (PROFILE.charge_wire)(ChargeMode::OnDemand),
            "POSTPAID_BY_HOUR"
        );
        assert_eq!(
            (PROFILE.charge_wire)(ChargeMode::Prepaid { months: 1 }),
            "PREPAID"
        );
        assert_eq!(
            (PROFILE.bandwidth_wire)(BandwidthMode::Fixed),
            "BANDWIDTH_POSTPAID_BY_HOUR"
        );
        assert_eq!(PROFILE.limits.client_token_max_chars, 64);
    }

    #[test]
    fn plugin_builds_a_driver_or_says_why_not() {
        let credentials = Credentials {
            access_key_id: "AKID".into(),
            access_key_secret: Secret::new("k"),
        };
        let driver = TencentPlugin
            .build(DriverConfig {
                credentials: credentials.clone(),
                endpoint: Some("http://127.0.0.1:9".into()),
                rate_limit: None,
            })
            .unwrap();
        assert_eq!(driver.provider(), "TENCENT");
        let err = TencentPlugin
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
