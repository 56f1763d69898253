//! The clouds this operator drives. Each provider crate exports a plugin (its profile and its
//! driver factory); registering it here is the only operator change a new cloud needs.

use std::sync::LazyLock;

use mce_cloud::ProviderRegistry;

static REGISTRY: LazyLock<ProviderRegistry> = LazyLock::new(|| {
    ProviderRegistry::new()
        // One line per provider.
        .with(mce_cloud_aliyun::AliyunPlugin)
});

/// Every registered provider.
pub fn registry() -> &'static ProviderRegistry {
    &REGISTRY
}

/// The CEL rule on user-supplied tags: the operator's own keys and prefix and every registered
/// cloud's reserved prefixes are refused at admission; keys and values are at most 128 characters.
pub fn user_tags_rule(what: &str) -> kube::core::Rule {
    use crate::api::tags;
    let keys = [tags::TENANT, tags::OWNER, tags::CREATED_BY];
    let mut prefixes = vec![tags::PREFIX];
    prefixes.extend(registry().reserved_tag_prefixes());
    let key_list = keys.map(|k| format!("'{k}'")).join(", ");
    // `multicloud-ecs/` is checked without its slash, as a key `multicloud-ecs` is ours too.
    let prefix_checks: String = prefixes
        .iter()
        .map(|p| format!(" && !k.startsWith('{}')", p.trim_end_matches('/')))
        .collect();
    kube::core::Rule::new(format!(
        "self.all(k, !(k in [{key_list}]){prefix_checks} && size(k) <= 128 && size(self[k]) <= 128)"
    ))
    .message(kube::core::Message::Message(format!(
        "{what}: {} and the {} prefixes are reserved; keys and values are at most 128 characters",
        keys.join(", "),
        prefixes.join(", ")
    )))
}
