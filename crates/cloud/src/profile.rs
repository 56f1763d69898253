//! The provider seam: what the operator needs to know about a cloud without knowing its wire
//! protocol. Each driver crate exports one [`ProviderPlugin`] — its static [`ProviderProfile`]
//! (reserved tags, password rule, wire names shown in status, limits) and a factory building a
//! [`CloudDriver`] for one account — and the operator registers every plugin in one place.
//! Controllers ask the profile; they never match on a provider.

use std::fmt;
use std::sync::Arc;

use crate::{BandwidthMode, ChargeMode, CloudDriver, Credentials, RateLimit};

/// Static facts about one provider.
#[derive(Debug)]
pub struct ProviderProfile {
    /// The CloudProvider `type` this plugin serves, e.g. `ALIYUN`.
    pub provider_type: &'static str,
    /// Tag key prefixes the cloud owns (it sets them itself, or refuses them from users): the
    /// operator never removes such a tag from a resource and users may not set one.
    pub reserved_tag_prefixes: &'static [&'static str],
    /// How the cloud lets users log in with a password, if at all.
    pub password: PasswordPolicy,
    pub limits: ProviderLimits,
    /// The provider's name of a charge mode, as shown in status (e.g. `PostPaid`).
    pub charge_wire: fn(ChargeMode) -> &'static str,
    /// The provider's name of a bandwidth billing mode, as shown in status.
    pub bandwidth_wire: fn(BandwidthMode) -> &'static str,
    /// Instance-creation parameters (patterns, see [`wire_name_matches`]) that
    /// `spec.extensions` may never set, whatever the CloudProvider allows: those that reach
    /// beyond the tenant's own instance (another network, cloud credentials, the account's
    /// snapshots, undeletable or leaking resources). The driver also refuses the parameters it
    /// builds itself.
    pub forbidden_extensions: &'static [&'static str],
    /// Region the availability probe asks when the CloudProvider names no default region.
    pub probe_region: &'static str,
    /// `None`: the cloud's VPC, subnet and security-group creates honour a ClientToken, so a
    /// create is simply sent again after a crash or a lost answer. `Some(grace)`: they take
    /// none (Tencent), so after a create whose outcome is unknown the operator looks the
    /// resource up by its tags for `grace` (the cloud's tag-index lag) before creating again.
    pub untokened_create_grace: Option<std::time::Duration>,
    /// System disk category of an instance when neither the EcsInstance nor the
    /// CloudProvider's defaults name one (e.g. `cloud_essd`, `CLOUD_PREMIUM`).
    pub default_disk_category: &'static str,
}

impl ProviderProfile {
    /// Whether the cloud owns this tag key (see [`Self::reserved_tag_prefixes`]).
    pub fn is_reserved_tag(&self, key: &str) -> bool {
        self.reserved_tag_prefixes
            .iter()
            .any(|p| key.starts_with(p))
    }

    /// A resource name the cloud accepts: characters it does not allow become `-`, and the
    /// name is cut to the provider's length limit.
    pub fn resource_name(&self, raw: &str) -> String {
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(self.limits.name_max_chars)
            .collect()
    }

    /// Whether no CloudProvider may allow this extension (see [`Self::forbidden_extensions`]).
    pub fn is_forbidden_extension(&self, name: &str) -> bool {
        self.forbidden_extensions
            .iter()
            .any(|p| wire_name_matches(p, name))
    }
}

/// Whether a wire parameter name matches a pattern: dot-separated segments compared one by one,
/// where a segment `N` matches any decimal index and a final `*` matches one or more trailing
/// segments. `DataDisk.N.Size` matches `DataDisk.2.Size`; `Tag.*` matches `Tag.1.Key`; a
/// pattern without them matches only itself.
pub fn wire_name_matches(pattern: &str, name: &str) -> bool {
    let mut names = name.split('.');
    for segment in pattern.split('.') {
        if segment == "*" {
            return names.next().is_some_and(|n| !n.is_empty());
        }
        let Some(n) = names.next() else {
            return false;
        };
        let index = segment == "N" && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        if !index && segment != n {
            return false;
        }
    }
    names.next().is_none()
}

/// Numeric limits of the provider's API that the operator must respect before calling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderLimits {
    /// Tags one resource can carry (user tags plus the operator's own).
    pub tags_per_resource: usize,
    /// Longest resource name (instance, VPC, subnet, security group).
    pub name_max_chars: usize,
    /// Longest ClientToken the API accepts.
    pub client_token_max_chars: usize,
}

/// A provider's password rule for instance login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// No password login (key pairs only).
    Unsupported,
    /// `min_chars..=max_chars` characters, only letters, digits and `specials`, from at least
    /// `min_classes` of: lower case, upper case, digits, specials.
    Rule {
        min_chars: usize,
        max_chars: usize,
        min_classes: usize,
        specials: &'static str,
    },
}

/// Why a password cannot be used. Never carries the password itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("the provider has no password login: use keyPairName")]
    Unsupported,
    #[error("the password must have {0}")]
    Invalid(String),
}

impl PasswordPolicy {
    /// Checks a password before any cloud call, so a bad one is a condition, not a cloud error.
    pub fn check(&self, password: &str) -> Result<(), PasswordProblem> {
        let Self::Rule {
            min_chars,
            max_chars,
            min_classes,
            specials,
        } = *self
        else {
            return Err(PasswordProblem::Unsupported);
        };
        let len_ok = (min_chars..=max_chars).contains(&password.chars().count());
        let only_allowed = password
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || specials.contains(c));
        let classes = [
            password.chars().any(|c| c.is_ascii_lowercase()),
            password.chars().any(|c| c.is_ascii_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| specials.contains(c)),
        ];
        if len_ok && only_allowed && classes.iter().filter(|c| **c).count() >= min_classes {
            Ok(())
        } else {
            Err(PasswordProblem::Invalid(self.to_string()))
        }
    }
}

impl fmt::Display for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("no password login"),
            Self::Rule {
                min_chars,
                max_chars,
                min_classes,
                ..
            } => write!(
                f,
                "{min_chars}-{max_chars} characters from at least {} of: lower case, upper case, digits, special characters",
                number_word(*min_classes)
            ),
        }
    }
}

fn number_word(n: usize) -> String {
    match n {
        1 => "one".into(),
        2 => "two".into(),
        3 => "three".into(),
        4 => "four".into(),
        other => other.to_string(),
    }
}

/// What a factory needs to build the driver of one account.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub credentials: Credentials,
    /// Send every call here instead of the provider's regional endpoints (e.g. the emulator).
    pub endpoint: Option<String>,
    /// Client-side rate limit per region; `None` keeps the driver's default.
    pub rate_limit: Option<RateLimit>,
}

/// One provider, as the operator registers it.
pub trait ProviderPlugin: Send + Sync {
    fn profile(&self) -> &'static ProviderProfile;
    /// Builds the driver of one account; the error says what in the configuration is wrong.
    fn build(&self, config: DriverConfig) -> Result<Arc<dyn CloudDriver>, String>;
}

/// The registered providers, by type.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    plugins: Vec<Arc<dyn ProviderPlugin>>,
}

impl ProviderRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider; a later plugin of the same type replaces the earlier one.
    pub fn with(mut self, plugin: impl ProviderPlugin + 'static) -> Self {
        let provider_type = plugin.profile().provider_type;
        self.plugins
            .retain(|p| p.profile().provider_type != provider_type);
        self.plugins.push(Arc::new(plugin));
        self
    }

    pub fn plugin(&self, provider_type: &str) -> Option<&Arc<dyn ProviderPlugin>> {
        self.plugins
            .iter()
            .find(|p| p.profile().provider_type == provider_type)
    }

    pub fn profile(&self, provider_type: &str) -> Option<&'static ProviderProfile> {
        self.plugin(provider_type).map(|p| p.profile())
    }

    /// The registered types, in registration order.
    pub fn types(&self) -> Vec<&'static str> {
        self.plugins
            .iter()
            .map(|p| p.profile().provider_type)
            .collect()
    }

    /// The registered providers' profiles, in registration order.
    pub fn profiles(&self) -> impl Iterator<Item = &'static ProviderProfile> + '_ {
        self.plugins.iter().map(|p| p.profile())
    }
}

impl fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.types()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: PasswordPolicy = PasswordPolicy::Rule {
        min_chars: 8,
        max_chars: 30,
        min_classes: 3,
        specials: "()`~!@#$%^&*-_+=|{}[]:;'<>,.?/",
    };

    #[test]
    fn resource_names_fit_the_cloud() {
        let profile = ProviderProfile {
            provider_type: "T",
            reserved_tag_prefixes: &["t:"],
            password: PasswordPolicy::Unsupported,
            limits: ProviderLimits {
                tags_per_resource: 20,
                name_max_chars: 8,
                client_token_max_chars: 64,
            },
            charge_wire: |_| "c",
            bandwidth_wire: |_| "b",
            forbidden_extensions: &["Role", "Nic.N.Net", "Template.*"],
            probe_region: "t-1",
            untokened_create_grace: None,
            default_disk_category: "disk",
        };
        assert_eq!(profile.resource_name("vpc-a@b.c"), "vpc-a-b.");
        assert_eq!(profile.resource_name("sg-x"), "sg-x");
        assert!(profile.is_reserved_tag("t:k"));
        assert!(profile.is_forbidden_extension("Role"));
        assert!(profile.is_forbidden_extension("Nic.12.Net"));
        assert!(profile.is_forbidden_extension("Template.Id"));
        assert!(!profile.is_forbidden_extension("RoleName"));
        assert!(!profile.is_forbidden_extension("Nic.x.Net"));
    }

    #[test]
    fn wire_name_patterns() {
        assert!(wire_name_matches("HostName", "HostName"));
        assert!(!wire_name_matches("HostName", "HostNames"));
        assert!(!wire_name_matches("HostName", "HostName.1"));
        assert!(wire_name_matches("DataDisk.N.Size", "DataDisk.3.Size"));
        assert!(!wire_name_matches(
            "DataDisk.N.Size",
            "DataDisk.3.SnapshotId"
        ));
        assert!(!wire_name_matches("DataDisk.N.Size", "DataDisk..Size"));
        assert!(wire_name_matches("Tag.*", "Tag.1.Key"));
        assert!(!wire_name_matches("Tag.*", "Tag"));
        assert!(!wire_name_matches("Tag.*", "Tags.1"));
    }

    #[test]
    fn password_rule_counts_classes_and_length() {
        assert!(RULE.check("Passw0rd").is_ok());
        assert!(RULE.check("passw0rd!").is_ok());
        assert!(RULE.check("password").is_err());
        assert!(RULE.check("Pw0!").is_err());
        assert!(RULE.check("Passw0rd\u{e9}").is_err());
        let message = RULE.check("weak").unwrap_err().to_string();
        assert!(
            message.contains("8-30 characters from at least three"),
            "{message}"
        );
        assert!(!message.contains("weak"));
        assert_eq!(
            PasswordPolicy::Unsupported.check("Passw0rd!"),
            Err(PasswordProblem::Unsupported)
        );
    }
}
