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
