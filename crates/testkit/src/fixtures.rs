//! Builders of API objects for in-process tests: `EcsInstance`, `UserNetwork` and
//! `CloudProvider` with metadata as the API server would set it (uid, generation) and the common
//! specs and statuses, chainable:
//!
//! ```
//! use mce_testkit::fixtures::{cloud_provider, ecs_instance, user_network};
//! let vm = ecs_instance("vm")
//!     .public_ip(10)
//!     .ports([22, 443])
//!     .password_secret("login", "pw")
//!     .build();
//! let net = user_network("net").ready("vpc-1", "vsw-1", "sg-1").build();
//! let provider = cloud_provider("ALIYUN", "ALIYUN").gpu("H100", "ecs.gn8is.2xlarge").build();
//! # let _ = (vm, net, provider);
//! ```
//!
//! Specs start from the smallest JSON the schema accepts, so fields added to the API later take
//! their serde defaults here without touching the builders.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use multicloud_ecs::api::conditions::{INSTANCE_READY, NETWORK_READY, READY};
use multicloud_ecs::api::ecs_instance::{
    BandwidthMode, ChargeMode, NetworkStatusRef, Phase, PublicIpSpec, SystemDiskSpec,
};
use multicloud_ecs::api::{
    CloudProvider, CloudProviderSpec, DeletionPolicy, EcsInstance, EcsInstanceSpec,
    EcsInstanceStatus, FINALIZER, SILENT_ANNOTATION, SecretKeyRef, TENANT_LABEL, USER_LABEL,
    UserNetwork, UserNetworkSpec, UserNetworkStatus,
};
use serde_json::json;

pub const NAMESPACE: &str = "default";
/// Code (and type) of the default provider.
pub const PROVIDER: &str = "ALIYUN";
pub const REGION: &str = "cn-hangzhou";
pub const ZONE: &str = "cn-hangzhou-i";
pub const TENANT: &str = "acme";
pub const USER: &str = "alice";
pub const IMAGE_KEY: &str = "ubuntu-22.04";
pub const IMAGE_ID: &str = "ubuntu_22_04_x64_20G_alibase_20240130.vhd";
pub const GPU_MODEL: &str = "A100";
pub const GPU_INSTANCE_TYPE: &str = "ecs.gn7-c12g1.3xlarge";
pub const INSTANCE_TYPE: &str = "ecs.g7.large";
pub const DISK_CATEGORY: &str = "cloud_essd";
/// Namespace of the credentials Secrets of [`cloud_provider`].
pub const SYSTEM_NAMESPACE: &str = "multicloud-ecs-system";

/// A condition as the operator writes it.
pub fn new_condition(
    type_: &str,
    status: bool,
    reason: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message: String::new(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    }
}

/// Metadata as the API server sets it: a uid derived from the name, generation 1.
fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(String::from),
        uid: Some(format!("uid-{}-{name}", namespace.unwrap_or("cluster"))),
        generation: Some(1),
        ..ObjectMeta::default()
    }
}

fn spec<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("fixture spec matches the API")
}

/// Sets the object up as deleted with the operator's finalizer still on it.
fn mark_deleting(meta: &mut ObjectMeta) {
    meta.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    add_finalizer(meta);
}

fn add_finalizer(meta: &mut ObjectMeta) {
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.to_string());
    }
}

fn put(map: &mut Option<BTreeMap<String, String>>, key: &str, value: &str) {
    map.get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

/// An EcsInstance in [`NAMESPACE`] on [`PROVIDER`]/[`REGION`]/[`ZONE`] for [`USER`], image
/// [`IMAGE_KEY`], no public IP, no ports, no login.
pub fn ecs_instance(name: &str) -> EcsBuilder {
    let spec: EcsInstanceSpec = spec(json!({
        "provider": PROVIDER, "region": REGION, "zone": ZONE,
        "userId": USER, "imageKey": IMAGE_KEY,
    }));
    let mut object = EcsInstance::new(name, spec);
    object.metadata = meta(name, Some(NAMESPACE));
    EcsBuilder(object)
}

/// Builds an [`EcsInstance`]; see [`ecs_instance`].
#[derive(Clone, Debug)]
pub struct EcsBuilder(EcsInstance);

impl EcsBuilder {
    pub fn build(self) -> EcsInstance {
        self.0
    }

    /// Any other change to the spec.
    pub fn spec(mut self, f: impl FnOnce(&mut EcsInstanceSpec)) -> Self {
        f(&mut self.0.spec);
        self
    }

    /// Any other change to the metadata.
    pub fn meta(mut self, f: impl FnOnce(&mut ObjectMeta)) -> Self {
        f(&mut self.0.metadata);
        self
    }

    /// Moves the object (its uid follows the namespace).
    pub fn namespace(mut self, namespace: &str) -> Self {
        let name = self.0.metadata.name.clone().unwrap_or_default();
        self.0.metadata.namespace = Some(namespace.to_string());
        self.0.metadata.uid = meta(&name, Some(namespace)).uid;
        self
    }

    pub fn uid(self, uid: &str) -> Self {
        self.meta(|m| m.uid = Some(uid.to_string()))
    }

    pub fn generation(self, generation: i64) -> Self {
        self.meta(|m| m.generation = Some(generation))
    }

    pub fn label(self, key: &str, value: &str) -> Self {
        self.meta(|m| put(&mut m.labels, key, value))
    }

    /// The provider code; `None` leaves the instance unschedulable.
    pub fn provider(self, code: Option<&str>) -> Self {
        self.spec(|s| s.provider = code.map(String::from))
    }

    pub fn region(self, region: &str) -> Self {
        self.spec(|s| s.region = Some(region.to_string()))
    }

    pub fn zone(self, zone: &str) -> Self {
        self.spec(|s| s.zone = Some(zone.to_string()))
    }

    pub fn user(self, user: &str) -> Self {
        self.spec(|s| s.user_id = user.to_string())
    }

    pub fn tenant(self, tenant: &str) -> Self {
        self.spec(|s| s.tenant_id = Some(tenant.to_string()))
    }

    pub fn image_key(self, key: &str) -> Self {
        self.spec(|s| s.image_key = key.to_string())
    }

    pub fn gpu_model(self, model: &str) -> Self {
        self.spec(|s| s.gpu_model = Some(model.to_string()))
    }

    pub fn instance_type(self, instance_type: &str) -> Self {
        self.spec(|s| s.instance_type = Some(instance_type.to_string()))
    }

    pub fn system_disk(self, size_gib: u32, category: Option<&str>) -> Self {
        self.spec(|s| {
            s.system_disk = Some(SystemDiskSpec {
                size_gib,
                category: category.map(String::from),
            });
        })
    }

    /// An EIP of `mbps`, billed by traffic.
    pub fn public_ip(self, mbps: u32) -> Self {
        self.public_ip_billed(mbps, BandwidthMode::Traffic)
    }

    pub fn public_ip_billed(self, mbps: u32, mode: BandwidthMode) -> Self {
        self.spec(|s| {
            s.public_ip = Some(PublicIpSpec {
                allocate: true,
                bandwidth_mbps: mbps,
                bandwidth_mode: mode,
            });
        })
    }

    pub fn ports(self, ports: impl IntoIterator<Item = i32>) -> Self {
        self.spec(|s| s.open_ports = ports.into_iter().collect())
    }

    /// Login password from key `key` of Secret `name` (the Secret itself is the test's).
    pub fn password_secret(self, name: &str, key: &str) -> Self {
        self.spec(|s| {
            s.password_secret_ref = Some(SecretKeyRef {
                name: name.to_string(),
                key: key.to_string(),
            });
        })
    }

    pub fn key_pair(self, name: &str) -> Self {
        self.spec(|s| s.key_pair_name = Some(name.to_string()))
    }

    pub fn prepaid(self, months: u32) -> Self {
        self.spec(|s| {
            s.charge_mode = ChargeMode::Prepaid;
            s.period_months = Some(months);
        })
    }

    pub fn tag(self, key: &str, value: &str) -> Self {
        self.spec(|s| {
            s.tags.insert(key.to_string(), value.to_string());
        })
    }

    pub fn extension(self, key: &str, value: &str) -> Self {
        self.spec(|s| {
            s.extensions.insert(key.to_string(), value.to_string());
        })
    }

    pub fn network_ref(self, name: &str) -> Self {
        self.spec(|s| s.network_ref = Some(name.to_string()))
    }

    pub fn orphan(self) -> Self {
        self.spec(|s| s.deletion_policy = DeletionPolicy::Orphan)
    }

    /// The operator's finalizer, as after the first reconcile.
    pub fn finalizer(self) -> Self {
        self.meta(add_finalizer)
    }

    /// Deleted (deletionTimestamp set) with the finalizer still on.
    pub fn deleting(self) -> Self {
        self.meta(mark_deleting)
    }

    /// Any change to the status (created empty first).
    pub fn status(mut self, f: impl FnOnce(&mut EcsInstanceStatus)) -> Self {
        f(self.0.status.get_or_insert_with(Default::default));
        self
    }

    /// ClientTokens persisted before the cloud calls (instance, own security group, EIP).
    pub fn tokens(self, instance: &str, security_group: Option<&str>, eip: Option<&str>) -> Self {
        self.status(|s| {
            s.client_token = Some(instance.to_string());
            s.security_group_client_token = security_group.map(String::from);
            s.eip_client_token = eip.map(String::from);
        })
    }

    /// The network the instance runs in.
    pub fn network_status(self, name: &str, vpc: &str, v_switch: &str, group: &str) -> Self {
        self.status(|s| {
            s.network = Some(NetworkStatusRef {
                name: name.to_string(),
                vpc_id: Some(vpc.to_string()),
                v_switch_id: Some(v_switch.to_string()),
                security_group_id: Some(group.to_string()),
            });
        })
    }

    /// An EIP bound to the instance.
    pub fn eip_status(self, allocation_id: &str, ip: &str) -> Self {
        self.status(|s| {
            s.eip_allocation_id = Some(allocation_id.to_string());
            s.public_ip = Some(ip.to_string());
        })
    }

    /// As after a successful reconcile: scheduled where the spec says, the instance running
    /// with its own security group, tokens derived from the uid, Ready.
    pub fn provisioned(self, instance_id: &str, security_group_id: &str) -> Self {
        let spec = self.0.spec.clone();
        let uid = self.0.metadata.uid.clone().unwrap_or_default();
        let generation = self.0.metadata.generation;
        self.status(|s| {
            s.phase = Some(Phase::Running);
            s.observed_generation = generation;
            s.provider = spec.provider.clone();
            s.region = spec.region.clone();
            s.zone = spec.zone.clone();
            let catalog_type = spec
                .gpu_model
                .as_ref()
                .map(|_| GPU_INSTANCE_TYPE.to_string());
            s.instance_type = Some(
                spec.instance_type
                    .clone()
                    .or(catalog_type)
                    .unwrap_or_else(|| INSTANCE_TYPE.into()),
            );
            s.image_id = Some(IMAGE_ID.to_string());
            s.instance_id = Some(instance_id.to_string());
            s.private_ip = Some("172.16.0.3".to_string());
            s.security_group_id = Some(security_group_id.to_string());
            s.client_token = Some(format!("{uid}-instance"));
            s.security_group_client_token = Some(format!("{uid}-sg"));
            s.conditions = [READY, NETWORK_READY, INSTANCE_READY]
                .into_iter()
                .map(|t| new_condition(t, true, "Ready", generation))
                .collect();
        })
    }
}

/// A UserNetwork in [`NAMESPACE`] for [`USER`] on [`PROVIDER`]/[`REGION`], labelled with its
/// user, without status.
pub fn user_network(name: &str) -> NetworkBuilder {
    let spec: UserNetworkSpec = spec(json!({
        "provider": PROVIDER, "region": REGION, "userId": USER,
    }));
    let mut object = UserNetwork::new(name, spec);
    object.metadata = meta(name, Some(NAMESPACE));
    put(&mut object.metadata.labels, USER_LABEL, USER);
    NetworkBuilder(object)
}

/// Builds a [`UserNetwork`]; see [`user_network`].
#[derive(Clone, Debug)]
pub struct NetworkBuilder(UserNetwork);

impl NetworkBuilder {
    pub fn build(self) -> UserNetwork {
        self.0
    }

    pub fn spec(mut self, f: impl FnOnce(&mut UserNetworkSpec)) -> Self {
        f(&mut self.0.spec);
        self
    }

    pub fn meta(mut self, f: impl FnOnce(&mut ObjectMeta)) -> Self {
        f(&mut self.0.metadata);
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        let name = self.0.metadata.name.clone().unwrap_or_default();
        self.0.metadata.namespace = Some(namespace.to_string());
        self.0.metadata.uid = meta(&name, Some(namespace)).uid;
        self
    }

    pub fn generation(self, generation: i64) -> Self {
        self.meta(|m| m.generation = Some(generation))
    }

    pub fn provider(self, code: &str) -> Self {
        self.spec(|s| s.provider = code.to_string())
    }

    pub fn region(self, region: &str) -> Self {
        self.spec(|s| s.region = region.to_string())
    }

    pub fn zone(self, zone: &str) -> Self {
        self.spec(|s| s.zone = Some(zone.to_string()))
    }

    /// The user (spec and label).
    pub fn user(self, user: &str) -> Self {
        self.spec(|s| s.user_id = user.to_string())
            .meta(|m| put(&mut m.labels, USER_LABEL, user))
    }

    pub fn tenant(self, tenant: &str) -> Self {
        self.spec(|s| s.tenant_id = Some(tenant.to_string()))
            .meta(|m| put(&mut m.labels, TENANT_LABEL, tenant))
    }

    pub fn cidr(self, cidr: &str) -> Self {
        self.spec(|s| s.cidr_block = Some(cidr.to_string()))
    }

    pub fn tag(self, key: &str, value: &str) -> Self {
        self.spec(|s| {
            s.tags.insert(key.to_string(), value.to_string());
        })
    }

    pub fn orphan(self) -> Self {
        self.spec(|s| s.reclaim_policy = DeletionPolicy::Orphan)
    }

    /// Created by silent addressing: deleted with its last user.
    pub fn silent(self) -> Self {
        self.meta(|m| put(&mut m.annotations, SILENT_ANNOTATION, "true"))
    }

    pub fn finalizer(self) -> Self {
        self.meta(add_finalizer)
    }

    pub fn deleting(self) -> Self {
        self.meta(mark_deleting)
    }

    pub fn status(mut self, f: impl FnOnce(&mut UserNetworkStatus)) -> Self {
        f(self.0.status.get_or_insert_with(Default::default));
        self
    }

    /// As after a successful reconcile: cloud ids, CIDR, zone, a Ready condition, finalizer.
    pub fn ready(self, vpc: &str, v_switch: &str, group: &str) -> Self {
        let generation = self.0.metadata.generation;
        let zone = self.0.spec.zone.clone().unwrap_or_else(|| ZONE.into());
        let cidr = self
            .0
            .spec
            .cidr_block
            .clone()
            .unwrap_or_else(|| "172.16.0.0/16".into());
        let uid = self.0.metadata.uid.clone().unwrap_or_default();
        self.finalizer().status(|s| {
            s.observed_generation = generation;
            s.vpc_id = Some(vpc.to_string());
            s.v_switch_id = Some(v_switch.to_string());
            s.security_group_id = Some(group.to_string());
            s.cidr_block = Some(cidr);
            s.zone = Some(zone);
            s.client_token = Some(format!("{uid}-network"));
            s.conditions = vec![new_condition(READY, true, "Ready", generation)];
        })
    }

    /// EcsInstances using the network.
    pub fn used_by<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        let names: Vec<String> = names.into_iter().map(String::from).collect();
        self.status(|s| s.used_by = names)
    }
}

/// A CloudProvider `code` of `provider_type` (named after the code, lower case) with credentials
/// in Secret `<name>-credentials` of [`SYSTEM_NAMESPACE`], defaults [`REGION`]/[`ZONE`],
/// [`INSTANCE_TYPE`], [`DISK_CATEGORY`] 40 GiB, and a catalog mapping [`IMAGE_KEY`] and
/// [`GPU_MODEL`].
pub fn cloud_provider(provider_type: &str, code: &str) -> ProviderBuilder {
    let name = code.to_ascii_lowercase();
    let credentials = format!("{name}-credentials");
    let spec: CloudProviderSpec = spec(json!({
        "type": provider_type,
        "code": code,
        "credentialsSecretRef": {"name": credentials, "namespace": SYSTEM_NAMESPACE},
        "defaults": {
            "region": REGION,
            "zones": {REGION: ZONE},
            "instanceType": INSTANCE_TYPE,
            "systemDiskCategory": DISK_CATEGORY,
            "systemDiskSizeGiB": 40,
        },
        "catalog": {
            "images": {IMAGE_KEY: IMAGE_ID},
            "gpuModels": {GPU_MODEL: GPU_INSTANCE_TYPE},
        },
    }));
    let mut object = CloudProvider::new(&name, spec);
    object.metadata = meta(&name, None);
    ProviderBuilder(object)
}

/// Builds a [`CloudProvider`]; see [`cloud_provider`].
#[derive(Clone, Debug)]
pub struct ProviderBuilder(CloudProvider);

impl ProviderBuilder {
    pub fn build(self) -> CloudProvider {
        self.0
    }

    pub fn spec(mut self, f: impl FnOnce(&mut CloudProviderSpec)) -> Self {
        f(&mut self.0.spec);
        self
    }

    pub fn meta(mut self, f: impl FnOnce(&mut ObjectMeta)) -> Self {
        f(&mut self.0.metadata);
        self
    }

    pub fn endpoint(self, url: &str) -> Self {
        self.spec(|s| s.endpoint = Some(url.to_string()))
    }

    pub fn credentials(self, name: &str, namespace: &str) -> Self {
        self.spec(|s| {
            s.credentials_secret_ref.name = name.to_string();
            s.credentials_secret_ref.namespace = namespace.to_string();
        })
    }

    pub fn default_region(self, region: &str, zone: &str) -> Self {
        self.spec(|s| {
            s.defaults.region = Some(region.to_string());
            s.defaults
                .zones
                .insert(region.to_string(), zone.to_string());
        })
    }

    pub fn zone(self, region: &str, zone: &str) -> Self {
        self.spec(|s| {
            s.defaults
                .zones
                .insert(region.to_string(), zone.to_string());
        })
    }

    pub fn image(self, key: &str, image_id: &str) -> Self {
        self.spec(|s| {
            s.catalog
                .images
                .insert(key.to_string(), image_id.to_string());
        })
    }

    pub fn gpu(self, model: &str, instance_type: &str) -> Self {
        self.spec(|s| {
            s.catalog
                .gpu_models
                .insert(model.to_string(), instance_type.to_string());
        })
    }

    /// An image of one region only (consulted before the global ones).
    pub fn region_image(self, region: &str, key: &str, image_id: &str) -> Self {
        self.spec(|s| {
            s.catalog
                .regions
                .entry(region.to_string())
                .or_default()
                .images
                .insert(key.to_string(), image_id.to_string());
        })
    }

    pub fn size(self, cpu: u32, memory_gib: u32, instance_type: &str) -> Self {
        self.spec(|s| {
            s.catalog.sizes.push(spec(json!({
                "cpu": cpu, "memoryGiB": memory_gib, "instanceType": instance_type,
            })));
        })
    }

    pub fn disabled(self) -> Self {
        self.spec(|s| s.disabled = true)
    }

    /// The `Available` condition, as the probe sets it.
    pub fn available(mut self, available: bool) -> Self {
        let generation = self.0.metadata.generation;
        let reason = if available {
            "ProbeSucceeded"
        } else {
            "ProbeFailed"
        };
        let status = self.0.status.get_or_insert_with(Default::default);
        status.observed_generation = generation;
        status.conditions = vec![new_condition(
            multicloud_ecs::api::conditions::AVAILABLE,
            available,
            reason,
            generation,
        )];
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_fixtures_carry_metadata_spec_and_status() {
        let vm = ecs_instance("vm")
            .namespace("team")
            .generation(3)
            .public_ip(10)
            .ports([22, 443])
            .password_secret("login", "password")
            .tag("env", "test")
            .provisioned("i-1", "sg-vm")
            .eip_status("eip-1", "39.96.0.1")
            .deleting()
            .build();
        assert_eq!(vm.metadata.uid.as_deref(), Some("uid-team-vm"));
        assert_eq!(vm.metadata.generation, Some(3));
        assert!(vm.metadata.deletion_timestamp.is_some());
        assert_eq!(vm.metadata.finalizers, Some(vec![FINALIZER.to_string()]));
        assert_eq!(vm.spec.open_ports, [22, 443]);
        assert_eq!(
            vm.spec.public_ip.as_ref().map(|p| p.bandwidth_mbps),
            Some(10)
        );
        let status = vm.status.expect("status");
        assert_eq!(status.instance_id.as_deref(), Some("i-1"));
        assert_eq!(status.client_token.as_deref(), Some("uid-team-vm-instance"));
        assert_eq!(status.observed_generation, Some(3));
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        );
    }

    #[test]
    fn network_and_provider_fixtures() {
        let net = user_network("net")
            .tenant(TENANT)
            .ready("vpc-1", "vsw-1", "sg-1")
            .build();
        let status = net.status.expect("status");
        assert_eq!(status.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(status.conditions[0].type_, READY);
        assert_eq!(net.metadata.labels.unwrap()[TENANT_LABEL], TENANT);
        let provider = cloud_provider("DRY", "DRY-1")
            .gpu("H100", "dry.h100")
            .size(2, 8, "dry.small")
            .available(true)
            .build();
        assert_eq!(provider.metadata.name.as_deref(), Some("dry-1"));
        assert_eq!(provider.spec.provider_type.as_str(), "DRY");
        assert_eq!(provider.spec.catalog.gpu_models["H100"], "dry.h100");
        assert_eq!(provider.spec.catalog.images[IMAGE_KEY], IMAGE_ID);
        assert_eq!(provider.spec.defaults.zones[REGION], ZONE);
    }
}
