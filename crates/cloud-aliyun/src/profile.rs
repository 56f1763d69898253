//! Alibaba Cloud as the operator sees it: its profile and the factory of its driver.

use std::sync::Arc;

use mce_cloud::{
    CloudDriver, DriverConfig, PasswordPolicy, ProviderLimits, ProviderPlugin, ProviderProfile,
};

use crate::{AliyunConfig, AliyunDriver, bandwidth_mode_wire, charge_type_wire};

/// Alibaba Cloud's facts: `acs:` and `aliyun` tag keys belong to the cloud; instance passwords
/// are 8-30 characters from three of four classes (ECS RunInstances `Password`); 20 tags per
/// resource; names up to 128 characters; ClientToken up to 64 ASCII characters.
pub static PROFILE: ProviderProfile = ProviderProfile {
    provider_type: "ALIYUN",
    reserved_tag_prefixes: &["acs:", "aliyun"],
    password: PasswordPolicy::Rule {
        min_chars: 8,
        max_chars: 30,
        min_classes: 3,
        specials: "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/",
    },
    limits: ProviderLimits {
        tags_per_resource: 20,
        name_max_chars: 128,
        client_token_max_chars: 64,
    },
    charge_wire: charge_type_wire,
    bandwidth_wire: bandwidth_mode_wire,
    forbidden_extensions: crate::wire::FORBIDDEN_RUN_EXTENSIONS,
    probe_region: "cn-hangzhou",
    // CreateVpc, CreateVSwitch and CreateSecurityGroup take a ClientToken.
    untokened_create_grace: None,
    // ESSD PL1: what the console offers first for current instance families.
    default_disk_category: "cloud_essd",
};

/// Registers Alibaba Cloud with the operator.
#[derive(Clone, Copy, Debug, Default)]
pub struct AliyunPlugin;

impl ProviderPlugin for AliyunPlugin {
    fn profile(&self) -> &'static ProviderProfile {
        &PROFILE
    }

    fn build(&self, config: DriverConfig) -> Result<Arc<dyn CloudDriver>, String> {
        let mut aliyun = AliyunConfig::new(config.credentials);
        if let Some(endpoint) = config.endpoint {
            aliyun = aliyun.with_endpoint(endpoint);
        }
        if let Some(limit) = config.rate_limit {
            aliyun.rate_limit = limit;
        }
        let driver = AliyunDriver::new(aliyun).map_err(|e| e.to_string())?;
        Ok(Arc::new(driver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rule_of_ecs() {
        let rule = PROFILE.password;
        assert!(rule.check("Passw0rd!").is_ok());
        assert!(rule.check("short1A").is_err());
        assert!(rule.check("alllowercase").is_err());
        assert!(rule.check("Has space 1").is_err());
    }

    #[test]
    fn cloud_owned_tags() {
        assert!(PROFILE.is_reserved_tag("acs:rm:rgId"));
        assert!(PROFILE.is_reserved_tag("aliyun-x"));
        assert!(!PROFILE.is_reserved_tag("team"));
    }
}
