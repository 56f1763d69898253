//! Admission of EcsInstances by the operator, in-process and without any cloud call: what the
//! resolve step refuses (extensions the platform admin did not allow), what it pins once the
//! instance exists (placement, type, image), the names it derives (always valid), and which
//! refusals are progress rather than warnings.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use parking_lot::Mutex;

use mce_cloud::ProviderRegistry;
use mce_testkit::dry_provider::DryPlugin;
use mce_testkit::fixtures::{self, cloud_provider, ecs_instance};
use multicloud_ecs::api::{CloudProvider, EcsInstance, EcsInstanceStatus, Reason, TENANT_LABEL};
use multicloud_ecs::api::{USER_LABEL, conditions};
use multicloud_ecs::controller::ecs_instance::{
    self, Refusal, ResolveInputs, Resolved, SecretSource, Sinks,
};
use multicloud_ecs::controller::error::Result;
use multicloud_ecs::controller::status::{EventSink, Progress, StatusSink};
use multicloud_ecs::scheduler::FixedPolicy;

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(TENANT_LABEL.to_string(), fixtures::TENANT.to_string())])
}

fn aliyun() -> CloudProvider {
    cloud_provider(fixtures::PROVIDER, fixtures::PROVIDER)
        .available(true)
        .build()
}

fn resolve_with(
    inst: &EcsInstance,
    provider: CloudProvider,
    plugins: &ProviderRegistry,
) -> std::result::Result<Resolved, Refusal> {
    let providers = [Arc::new(provider)];
    let labels = labels();
    ecs_instance::resolve(
        inst,
        &ResolveInputs {
            namespace_labels: Some(&labels),
            providers: &providers,
            scheduler: &FixedPolicy,
            plugins,
        },
    )
}

fn resolve(inst: &EcsInstance, provider: CloudProvider) -> std::result::Result<Resolved, Refusal> {
    resolve_with(inst, provider, multicloud_ecs::providers::registry())
}

fn refusal(inst: &EcsInstance, provider: CloudProvider) -> Refusal {
    match resolve(inst, provider) {
        Ok(_) => panic!("expected a refusal"),
        Err(r) => r,
    }
}

fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_label_value(value: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge(value.chars().next())
        && edge(value.chars().last())
}

// ---- #2: spec.extensions is an allowlist owned by the platform admin ----

#[test]
fn extensions_the_admin_did_not_allow_are_refused() {
    // Isolation breakers: credentials on the VM, a NIC in another network, any snapshot of the
    // account, an undeletable VM, a launch template overriding everything.
    for key in [
        "RamRoleName",
        "NetworkInterface.1.VSwitchId",
        "DataDisk.1.SnapshotId",
        "DeletionProtection",
        "LaunchTemplateId",
        "HostName",
    ] {
        let inst = ecs_instance("vm").extension(key, "x").build();
        let r = refusal(&inst, aliyun());
        assert_eq!(r.reason.as_str(), "ExtensionNotAllowed", "{key}: {r:?}");
        assert_eq!(r.condition, conditions::INSTANCE_READY);
        assert!(r.message.contains(key), "{}", r.message);
        assert!(r.reason.is_terminal());
    }
    // No extensions: nothing to allow.
    assert!(resolve(&ecs_instance("vm").build(), aliyun()).is_ok());
}

#[test]
fn the_admin_allows_extensions_within_what_the_provider_permits() {
    let provider = || {
        cloud_provider(fixtures::PROVIDER, fixtures::PROVIDER)
            .available(true)
            .spec(|s| {
                s.allowed_extensions = ["HostName", "DataDisk.N.Size", "RamRoleName"]
                    .map(String::from)
                    .to_vec();
            })
            .build()
    };
    let inst = ecs_instance("vm")
        .extension("HostName", "box")
        .extension("DataDisk.1.Size", "100")
        .build();
    assert!(resolve(&inst, provider()).is_ok());
    let r = refusal(
        &ecs_instance("vm").extension("UserData", "x").build(),
        provider(),
    );
    assert_eq!(r.reason, Reason::ExtensionNotAllowed);
    // Listed, but the provider's profile never lets a tenant hand cloud credentials to a VM.
    let r = refusal(
        &ecs_instance("vm").extension("RamRoleName", "admin").build(),
        provider(),
    );
    assert_eq!(r.reason, Reason::ExtensionNotAllowed);
    // A live instance is not judged again when the admin narrows the list later.
    let live = ecs_instance("vm")
        .extension("HostName", "box")
        .provisioned("i-1", "sg-1")
        .build();
    assert!(resolve(&live, aliyun()).is_ok());
}

// ---- #4: placement, type and image are pinned once the instance exists ----

/// The provider after a platform admin moved its defaults to another region and dropped the
/// image key and the default type from its catalog.
fn edited_provider() -> CloudProvider {
    cloud_provider(fixtures::PROVIDER, fixtures::PROVIDER)
        .available(true)
        .spec(|s| {
            s.defaults.region = Some("cn-beijing".into());
            s.defaults.zones = BTreeMap::from([("cn-beijing".into(), "cn-beijing-a".into())]);
            s.defaults.instance_type = Some("ecs.other".into());
            s.catalog.images.clear();
        })
        .build()
}

fn defaults_only(name: &str) -> fixtures::EcsBuilder {
    ecs_instance(name).spec(|s| {
        s.region = None;
        s.zone = None;
    })
}

#[test]
fn a_live_instance_keeps_its_placement_type_and_image() {
    // Created in the provider's default region of the time.
    let inst = defaults_only("vm")
        .provisioned("i-1", "sg-1")
        .status(|s| {
            s.region = Some(fixtures::REGION.into());
            s.zone = Some(fixtures::ZONE.into());
        })
        .build();
    let resolved = resolve(&inst, edited_provider()).expect("a live instance is never refused");
    let p = &resolved.params;
    assert_eq!(p.placement.region, fixtures::REGION);
    assert_eq!(p.placement.zone, fixtures::ZONE);
    assert_eq!(p.instance_type, fixtures::INSTANCE_TYPE);
    assert_eq!(p.image_id, fixtures::IMAGE_ID);
    let mut status = inst.status.clone().unwrap_or_default();
    resolved.record(&mut status);
    assert_eq!(status.region.as_deref(), Some(fixtures::REGION));
    assert_eq!(status.zone.as_deref(), Some(fixtures::ZONE));
    assert!(
        resolved.network_name.contains(fixtures::REGION),
        "{}",
        resolved.network_name
    );
}

#[test]
fn an_instance_not_yet_created_follows_the_provider() {
    let inst = defaults_only("vm").build();
    let r = refusal(&inst, edited_provider());
    assert_eq!(r.reason, Reason::UnknownImageKey);
    let edited = cloud_provider(fixtures::PROVIDER, fixtures::PROVIDER)
        .available(true)
        .default_region("cn-beijing", "cn-beijing-a")
        .build();
    let resolved = resolve(&inst, edited).expect("resolves");
    assert_eq!(resolved.params.placement.region, "cn-beijing");
}

// ---- #7: derived names and labels are always valid ----

#[test]
fn the_silent_network_name_comes_from_the_resolved_region() {
    let inst = defaults_only("vm").build();
    let resolved = resolve(&inst, aliyun()).expect("resolves");
    assert!(
        is_dns1123_label(&resolved.network_name),
        "{:?}",
        resolved.network_name
    );
    assert!(resolved.network_name.contains(fixtures::REGION));
}

#[test]
fn user_labels_are_valid_whatever_the_user_id() {
    for user in ["alice-", "alice_", "alice.", "a-.", "x".repeat(63).as_str()] {
        let inst = ecs_instance("vm").user(user).build();
        let resolved = resolve(&inst, aliyun()).expect("resolves");
        assert!(
            is_dns1123_label(&resolved.network_name),
            "{user}: {}",
            resolved.network_name
        );
        let net = ecs_instance::silent_network(&inst, &resolved);
        let label = &net.metadata.labels.unwrap_or_default()[USER_LABEL];
        assert!(is_label_value(label), "{user}: {label:?}");
    }
}

// ---- #12: a provider not yet probed is progress, not a warning ----

#[derive(Default)]
struct Recorder {
    writes: Mutex<Vec<EcsInstanceStatus>>,
    events: Mutex<Vec<(bool, Reason)>>,
}

#[async_trait]
impl StatusSink<EcsInstanceStatus> for Recorder {
    async fn save(&self, status: &EcsInstanceStatus) -> Result<()> {
        self.writes.lock().push(status.clone());
        Ok(())
    }
}

#[async_trait]
impl EventSink for Recorder {
    async fn publish(&self, warning: bool, reason: Reason, _note: String, _action: &str) {
        self.events.lock().push((warning, reason));
    }
}

#[async_trait]
impl SecretSource for Recorder {
    async fn secret(&self, _namespace: &str, _name: &str) -> Result<Option<KubeSecret>> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_provider_not_yet_probed_is_no_warning() {
    let plugin = DryPlugin::in_memory();
    let registry = ProviderRegistry::new().with(plugin.clone());
    // Just created: no Available condition yet.
    let provider = cloud_provider("DRY", "DRY").build();
    let inst = ecs_instance("vm").provider(Some("DRY")).build();
    let r = match resolve_with(&inst, provider, &registry) {
        Ok(_) => panic!("an unprobed provider takes no work"),
        Err(r) => r,
    };
    assert_eq!(r.reason, Reason::ProviderPending);
    // What apply does with a refusal.
    let recorder = Recorder::default();
    let sinks = Sinks {
        status: &recorder,
        events: &recorder,
        secrets: &recorder,
    };
    let mut progress = Progress::new(EcsInstanceStatus::default());
    progress.step(r.condition, false, r.reason, r.message);
    ecs_instance::finish(&inst, &sinks, progress, None)
        .await
        .expect("finished");
    let events = recorder.events.lock().clone();
    assert!(events.iter().all(|(warning, _)| !warning), "{events:?}");
    let written = recorder
        .writes
        .lock()
        .last()
        .cloned()
        .expect("status written");
    assert_ne!(
        written.phase,
        Some(multicloud_ecs::api::ecs_instance::Phase::Failed)
    );
    assert_eq!(plugin.calls().total(), 0);
}

// ---- Tag keys a cloud reserves: per provider, caught before any call ----

#[test]
fn tag_keys_reserved_by_the_chosen_cloud_are_refused_before_any_call() {
    // Tencent reserves `project`; a CloudProvider with a custom code hides the type from the
    // CRD's CEL rule, so resolving must catch it.
    let tencent = || cloud_provider("TENCENT", "TC-PROD").available(true).build();
    let inst = ecs_instance("vm")
        .provider(Some("TC-PROD"))
        .tag("project", "llm")
        .build();
    let r = refusal(&inst, tencent());
    assert_eq!(r.reason, Reason::ReservedTag, "{r:?}");
    assert!(r.reason.is_terminal());
    assert!(r.message.contains("project"), "{}", r.message);
    // The same key is an ordinary tag on Alibaba Cloud, and Alibaba's own prefix is refused.
    let on_aliyun = ecs_instance("vm").tag("project", "llm").build();
    assert!(resolve(&on_aliyun, aliyun()).is_ok());
    let acs = ecs_instance("vm").tag("acs:owner", "x").build();
    assert_eq!(refusal(&acs, aliyun()).reason, Reason::ReservedTag);
}
