//! `DRY`: a toy provider that runs on an in-process emulator through [`ModelDriver`]. It shows
//! what a cloud has to supply to plug in — a static [`ProviderProfile`] and a [`ProviderPlugin`]
//! — and that registering it is one line:
//!
//! ```
//! # use mce_testkit::dry_provider::DryPlugin;
//! let plugin = DryPlugin::in_memory();
//! let state = plugin.state().clone(); // the test sees the cloud the drivers act on
//! let registry = mce_cloud::ProviderRegistry::new().with(plugin);
//! assert_eq!(registry.types(), ["DRY"]);
//! # drop(state);
//! ```
//!
//! Placement sees DRY's stock and prices as the emulator's model holds them (see
//! [`ModelDriver`]'s `describe_stock`): with the default unlimited stock every type of the
//! price table is available in every zone; `state().set_stock` sells a zone out.

use std::sync::Arc;
use std::time::Duration;

use mce_cloud::{
    BandwidthMode, ChargeMode, CloudDriver, DriverConfig, PasswordPolicy, ProviderLimits,
    ProviderPlugin, ProviderProfile,
};
use mce_emulator::EmulatorState;

use crate::model_driver::{CallLog, ModelDriver, emulator_state};

/// Boot delay of [`DryPlugin::in_memory`]: long enough to observe Pending/Starting, short
/// enough for fast tests.
pub const DRY_BOOT_DELAY: Duration = Duration::from_millis(50);

/// The DRY cloud's facts. Its wire names differ from every real cloud's so a test can tell that
/// the operator took them from the profile.
pub static PROFILE: ProviderProfile = ProviderProfile {
    provider_type: "DRY",
    reserved_tag_prefixes: &["dry:"],
    // Within what the emulator accepts (8 to 30 characters), so a password passing the rule
    // never fails at the cloud.
    password: PasswordPolicy::Rule {
        min_chars: 10,
        max_chars: 30,
        min_classes: 2,
        specials: "!@#%^*-_=+.",
    },
    // The emulator's default tag quota; a test lowering the quota sees the cloud refuse.
    limits: ProviderLimits {
        tags_per_resource: 20,
        name_max_chars: 64,
        client_token_max_chars: 64,
    },
    charge_wire,
    bandwidth_wire,
    forbidden_extensions: &[],
    probe_region: "dry-1",
    untokened_create_grace: None,
    default_disk_category: "dry_disk",
};

/// DRY's name of a charge mode, as shown in status.
pub fn charge_wire(charge: ChargeMode) -> &'static str {
    match charge {
        ChargeMode::OnDemand => "HOURLY",
        ChargeMode::Prepaid { .. } => "MONTHLY",
    }
}

/// DRY's name of a bandwidth billing mode, as shown in status.
pub fn bandwidth_wire(mode: BandwidthMode) -> &'static str {
    match mode {
        BandwidthMode::Traffic => "BY_TRAFFIC",
        BandwidthMode::Fixed => "BY_BANDWIDTH",
    }
}

/// Registers DRY. Every driver it builds works on the same emulator state and records its
/// calls in the plugin's [`CallLog`]; credentials, endpoint and rate limit are ignored (there is
/// no wire to authenticate or throttle — use the state's faults for that).
#[derive(Clone)]
pub struct DryPlugin {
    state: Arc<EmulatorState>,
    calls: Arc<CallLog>,
}

impl DryPlugin {
    /// A plugin over a state the test owns too.
    pub fn new(state: Arc<EmulatorState>) -> Self {
        Self {
            state,
            calls: Arc::default(),
        }
    }

    /// A plugin over a fresh state with [`DRY_BOOT_DELAY`].
    pub fn in_memory() -> Self {
        Self::new(emulator_state(DRY_BOOT_DELAY))
    }

    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }

    /// Calls of every driver this plugin built (shared with clones of the plugin).
    pub fn calls(&self) -> &Arc<CallLog> {
        &self.calls
    }

    /// A driver like [`ProviderPlugin::build`]'s, with its concrete type.
    pub fn driver(&self) -> ModelDriver {
        ModelDriver::new(self.state.clone())
            .with_provider(PROFILE.provider_type)
            .with_call_log(self.calls.clone())
    }
}

impl Default for DryPlugin {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl std::fmt::Debug for DryPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryPlugin")
            .field("resources", &self.state.resource_count())
            .field("calls", &self.calls.total())
            .finish()
    }
}

impl ProviderPlugin for DryPlugin {
    fn profile(&self) -> &'static ProviderProfile {
        &PROFILE
    }

    fn build(&self, _config: DriverConfig) -> Result<Arc<dyn CloudDriver>, String> {
        Ok(Arc::new(self.driver()))
    }
}

#[cfg(test)]
mod tests {
    use mce_cloud::{Credentials, ProviderRegistry, Secret, Tags};

    use super::*;

    #[test]
    fn profile_is_its_own() {
        assert!(PROFILE.is_reserved_tag("dry:zone"));
        assert!(!PROFILE.is_reserved_tag("acs:rm:rgId"));
        assert!(PROFILE.password.check("abcdefgh12").is_ok());
        assert!(PROFILE.password.check("abcdefgh1").is_err());
        assert_eq!((PROFILE.charge_wire)(ChargeMode::OnDemand), "HOURLY");
        assert_eq!(
            (PROFILE.bandwidth_wire)(BandwidthMode::Fixed),
            "BY_BANDWIDTH"
        );
    }

    #[tokio::test]
    async fn registered_drivers_share_the_plugins_state_and_call_log() {
        let plugin = DryPlugin::in_memory();
        let (state, calls) = (plugin.state().clone(), plugin.calls().clone());
        let registry = ProviderRegistry::new().with(plugin);
        assert_eq!(
            registry.profile("DRY").map(|p| p.provider_type),
            Some("DRY")
        );
        let config = DriverConfig {
            credentials: Credentials {
                access_key_id: "id".into(),
                access_key_secret: Secret::new("secret"),
            },
            endpoint: None,
            rate_limit: None,
        };
        let driver = registry.plugin("DRY").unwrap().build(config).unwrap();
        assert_eq!(driver.provider(), "DRY");
        driver.probe("cn-hangzhou").await.unwrap();
        assert!(
            driver
                .find_vpcs("cn-hangzhou", &Tags::new())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(calls.total(), 2);
        assert_eq!(state.calls().total, 2);
    }

    #[tokio::test]
    async fn stock_is_the_models() {
        use mce_emulator::model::StockEntry;
        let plugin = DryPlugin::in_memory();
        let d = plugin.driver();
        let gpu = "ecs.gn7-c12g1.3xlarge";
        let all = d
            .describe_stock("cn-hangzhou", None, gpu, ChargeMode::OnDemand)
            .await
            .unwrap();
        assert!(all.len() > 1 && all.iter().all(|z| z.available), "{all:?}");
        plugin.state().set_stock(&[StockEntry {
            instance_type: gpu.into(),
            zone: "cn-hangzhou-i".into(),
            available: Some(0),
        }]);
        let one = d
            .describe_stock(
                "cn-hangzhou",
                Some("cn-hangzhou-i"),
                gpu,
                ChargeMode::OnDemand,
            )
            .await
            .unwrap();
        assert_eq!(
            one,
            [mce_cloud::ZoneStock {
                zone: "cn-hangzhou-i".into(),
                available: false
            }]
        );
        let none = d
            .describe_stock("cn-hangzhou", None, "dry.unknown", ChargeMode::OnDemand)
            .await
            .unwrap();
        assert!(none.is_empty());
        let err = d
            .describe_stock("nowhere-1", None, gpu, ChargeMode::OnDemand)
            .await
            .unwrap_err();
        assert_eq!(err.class, mce_cloud::ErrorClass::NotFound, "{err}");
        assert_eq!(plugin.calls().count("describe_stock"), 4);
    }
}
