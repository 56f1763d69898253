//! The clouds this operator drives. Each provider crate exports a plugin (its profile and its
//! driver factory); registering it here is the only operator change a new cloud needs.

use std::sync::LazyLock;

use mce_cloud::ProviderRegistry;

static REGISTRY: LazyLock<ProviderRegistry> = LazyLock::new(|| {
    ProviderRegistry::new()
        // One line per provider.
        .with(mce_cloud_aliyun::AliyunPlugin)
        .with(mce_cloud_tencent::TencentPlugin)
        .with(mce_cloud_aws::AwsPlugin)
});

/// Every registered provider.
pub fn registry() -> &'static ProviderRegistry {
    &REGISTRY
}

/// The CEL rule on user-supplied tags: the operator's own keys and prefix are refused at
/// admission whatever the cloud; keys and values are at most 128 characters. The clouds' own
/// reserved prefixes depend on the provider, so [`provider_tags_rule`] checks them.
pub fn user_tags_rule(what: &str) -> kube::core::Rule {
    use crate::api::tags;
    let keys = [tags::TENANT, tags::OWNER, tags::CREATED_BY];
    let key_list = keys.map(|k| format!("'{k}'")).join(", ");
    // `multicloud-ecs/` is checked without its slash, as a key `multicloud-ecs` is ours too.
    let prefix = tags::PREFIX.trim_end_matches('/');
    kube::core::Rule::new(format!(
        "self.all(k, !(k in [{key_list}]) && !k.startsWith('{prefix}') && size(k) <= 128 && size(self[k]) <= 128)"
    ))
    .message(kube::core::Message::Message(format!(
        "{what}: {} and the {} prefix are reserved; keys and values are at most 128 characters",
        keys.join(", "),
        tags::PREFIX
    )))
}

/// The CEL rule, on a spec with `provider` and `tags`, refusing tag keys the named cloud
/// reserves (Tencent's `project`, Alibaba's `acs:`...). It can only see a provider named by its
/// type (the usual code); a CloudProvider with another code is checked when the spec is
/// resolved ([`crate::controller::mapping::check_tags`]), before any cloud call.
pub fn provider_tags_rule() -> kube::core::Rule {
    let per_provider: Vec<String> = registry()
        .profiles()
        .map(|profile| {
            let checks: Vec<String> = profile
                .reserved_tag_prefixes
                .iter()
                .map(|p| format!("!k.startsWith('{p}')"))
                .collect();
            format!(
                "(self.provider != '{}' || self.tags.all(k, {}))",
                profile.provider_type,
                checks.join(" && ")
            )
        })
        .collect();
    let reserved: Vec<String> = registry()
        .profiles()
        .map(|profile| {
            format!(
                "{}: {}",
                profile.provider_type,
                profile.reserved_tag_prefixes.join(", ")
            )
        })
        .collect();
    kube::core::Rule::new(format!(
        "!has(self.tags) || !has(self.provider) || ({})",
        per_provider.join(" && ")
    ))
    .message(kube::core::Message::Message(format!(
        "tags: keys with the named cloud's reserved prefixes are refused ({})",
        reserved.join("; ")
    )))
}

/// The CEL rule, on a spec with `provider` and `passwordSecretRef`, refusing a password login on
/// a cloud that has none (AWS: key pairs only). Like [`provider_tags_rule`] it sees a provider
/// named by its type; other codes are refused when the login is resolved, before any call.
pub fn provider_login_rule() -> kube::core::Rule {
    let keys_only: Vec<String> = registry()
        .profiles()
        .filter(|p| p.password == mce_cloud::PasswordPolicy::Unsupported)
        .map(|p| format!("'{}'", p.provider_type))
        .collect();
    kube::core::Rule::new(format!(
        "!has(self.passwordSecretRef) || !has(self.provider) || !(self.provider in [{}])",
        keys_only.join(", ")
    ))
    .message(kube::core::Message::Message(format!(
        "passwordSecretRef: {} have no password login; use keyPairName",
        keys_only.join(", ").replace('\'', "")
    )))
}
