//! Parameter mapping: business keys → provider parameters, from the
//! CloudProvider's catalog and defaults. Pure functions; an unknown key is refused rather than
//! silently replaced by a default (ordering an A100 and getting the default type is a lie).

use mce_cloud::{self as cloud, PasswordPolicy, ProviderProfile, SystemDisk};

use crate::api::Reason;
use crate::api::cloud_provider::CloudProviderSpec;
use crate::api::ecs_instance::{self, EcsInstanceSpec};

/// Why the spec cannot be mapped onto the provider. `reason()` is the stable condition reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("no region: set spec.region or the CloudProvider's defaults.region")]
    RegionRequired,
    #[error("no zone for region {0:?}: set spec.zone or the CloudProvider's defaults.zones")]
    ZoneRequired(String),
    #[error("image key {key:?} is not in the CloudProvider's catalog for region {region:?}")]
    UnknownImageKey { key: String, region: String },
    #[error("GPU model {model:?} is not in the CloudProvider's catalog for region {region:?}")]
    UnknownGpuModel { model: String, region: String },
    #[error("no catalog size has at least {cpu} vCPU and {memory_gib} GiB")]
    NoMatchingSize { cpu: u32, memory_gib: u32 },
    #[error(
        "no instance type: set gpuModel, instanceType, cpu/memoryGiB or the CloudProvider's defaults.instanceType"
    )]
    InstanceTypeRequired,
    #[error("the provider has no password login: use keyPairName")]
    PasswordUnsupported,
    #[error(
        "spec.extensions sets {key:?}, which the CloudProvider does not allow (spec.allowedExtensions)"
    )]
    ExtensionNotAllowed { key: String },
    #[error(
        "spec.extensions sets {key:?}, which this provider never takes from an EcsInstance: it reaches beyond the instance or is set by the operator"
    )]
    ExtensionForbidden { key: String },
    #[error("tag key {key:?} is reserved by the {provider} cloud")]
    ReservedTag { key: String, provider: &'static str },
}

impl MappingError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::RegionRequired => Reason::RegionRequired,
            Self::ZoneRequired(_) => Reason::ZoneRequired,
            Self::UnknownImageKey { .. } => Reason::UnknownImageKey,
            Self::UnknownGpuModel { .. } => Reason::UnknownGpuModel,
            Self::NoMatchingSize { .. } => Reason::NoMatchingSize,
            Self::InstanceTypeRequired => Reason::InstanceTypeRequired,
            Self::PasswordUnsupported => Reason::PasswordUnsupported,
            Self::ExtensionNotAllowed { .. } | Self::ExtensionForbidden { .. } => {
                Reason::ExtensionNotAllowed
            }
            Self::ReservedTag { .. } => Reason::ReservedTag,
        }
    }
}

/// Where an instance or network lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub region: String,
    pub zone: String,
}

/// Region and zone from the spec, else the provider's defaults.
pub fn placement(
    provider: &CloudProviderSpec,
    region: Option<&str>,
    zone: Option<&str>,
) -> Result<Placement, MappingError> {
    let region = region
        .or(provider.defaults.region.as_deref())
        .ok_or(MappingError::RegionRequired)?
        .to_string();
    let zone = zone
        .or_else(|| provider.defaults.zones.get(&region).map(String::as_str))
        .ok_or_else(|| MappingError::ZoneRequired(region.clone()))?
        .to_string();
    Ok(Placement { region, zone })
}

/// What an instance keeps once it exists on the cloud, whatever the CloudProvider's defaults and
/// catalog say later: moving it (or refusing it) would lose track of a live VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    pub placement: Placement,
    pub instance_type: String,
    pub image_id: String,
}

impl Pinned {
    /// The pinned values in an EcsInstance's status: only once the instance id is known, and
    /// only when status holds all of them.
    pub fn from_status(status: Option<&ecs_instance::EcsInstanceStatus>) -> Option<Self> {
        let s = status?;
        s.instance_id.as_ref()?;
        Some(Self {
            placement: Placement {
                region: s.region.clone()?,
                zone: s.zone.clone()?,
            },
            instance_type: s.instance_type.clone()?,
            image_id: s.image_id.clone()?,
        })
    }
}

/// Refuses an extension the CloudProvider does not list in `allowedExtensions`, or one the
/// provider's profile forbids whatever the list says.
pub fn check_extensions<'a>(
    allowed: &[String],
    profile: &ProviderProfile,
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), MappingError> {
    for key in keys {
        if profile.is_forbidden_extension(key) {
            return Err(MappingError::ExtensionForbidden { key: key.clone() });
        }
        if !allowed.iter().any(|p| cloud::wire_name_matches(p, key)) {
            return Err(MappingError::ExtensionNotAllowed { key: key.clone() });
        }
    }
    Ok(())
}

/// Refuses a user tag key that the provider's cloud reserves (it would refuse the create).
pub fn check_tags<'a>(
    profile: &ProviderProfile,
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), MappingError> {
    match keys.into_iter().find(|k| profile.is_reserved_tag(k)) {
        Some(key) => Err(MappingError::ReservedTag {
            key: key.clone(),
            provider: profile.provider_type,
        }),
        None => Ok(()),
    }
}

/// Everything needed to run (or price) the instance on this provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceParams {
    pub placement: Placement,
    pub image_id: String,
    pub instance_type: String,
    pub system_disk: SystemDisk,
    pub charge: cloud::ChargeMode,
    /// Provider wire names, for status (e.g. `PostPaid`, `PayByTraffic`).
    pub instance_charge_type: String,
    pub internet_charge_type: Option<String>,
}

const DEFAULT_DISK_GIB: u32 = 40;

/// Maps an EcsInstance spec onto the provider: image id, instance type, charge mode and
/// bandwidth mode.
pub fn instance_params(
    provider: &CloudProviderSpec,
    profile: &ProviderProfile,
    spec: &EcsInstanceSpec,
) -> Result<InstanceParams, MappingError> {
    instance_params_pinned(provider, profile, spec, None)
}

/// [`instance_params`], keeping what is pinned: a created instance's placement, type and image
/// come from its status, never from the provider's current defaults and catalog.
pub fn instance_params_pinned(
    provider: &CloudProviderSpec,
    profile: &ProviderProfile,
    spec: &EcsInstanceSpec,
    pinned: Option<&Pinned>,
) -> Result<InstanceParams, MappingError> {
    let (placement, instance_type, image_id) = match pinned {
        Some(p) => (
            p.placement.clone(),
            p.instance_type.clone(),
            p.image_id.clone(),
        ),
        None => {
            let placement = placement(provider, spec.region.as_deref(), spec.zone.as_deref())?;
            let (image_id, instance_type) = catalog_lookup(provider, spec, &placement.region)?;
            (placement, instance_type, image_id)
        }
    };
    let system_disk = SystemDisk {
        category: spec
            .system_disk
            .as_ref()
            .and_then(|d| d.category.clone())
            .or_else(|| provider.defaults.system_disk_category.clone())
            .unwrap_or_else(|| profile.default_disk_category.to_string()),
        size_gib: spec
            .system_disk
            .as_ref()
            .map(|d| d.size_gib)
            .or(provider.defaults.system_disk_size_gib)
            .unwrap_or(DEFAULT_DISK_GIB),
    };

    if spec.password_secret_ref.is_some() && profile.password == PasswordPolicy::Unsupported {
        return Err(MappingError::PasswordUnsupported);
    }

    let charge = charge_mode(spec);
    let bandwidth_mode = spec
        .public_ip
        .as_ref()
        .filter(|p| p.allocate)
        .map(|p| bandwidth_mode(p.bandwidth_mode));
    Ok(InstanceParams {
        placement,
        image_id,
        instance_type,
        system_disk,
        charge,
        instance_charge_type: (profile.charge_wire)(charge).to_string(),
        internet_charge_type: bandwidth_mode.map(|m| (profile.bandwidth_wire)(m).to_string()),
    })
}

/// The image id and the instance type of the spec in the provider's catalog (and defaults).
fn catalog_lookup(
    provider: &CloudProviderSpec,
    spec: &EcsInstanceSpec,
    region: &str,
) -> Result<(String, String), MappingError> {
    let catalog = &provider.catalog;
    let regional = catalog.regions.get(region);

    let image_id = regional
        .and_then(|r| r.images.get(&spec.image_key))
        .or_else(|| catalog.images.get(&spec.image_key))
        .ok_or_else(|| MappingError::UnknownImageKey {
            key: spec.image_key.clone(),
            region: region.to_string(),
        })?
        .clone();

    let instance_type = if let Some(t) = &spec.instance_type {
        t.clone()
    } else if let Some(model) = &spec.gpu_model {
        let lookup = |m: &std::collections::BTreeMap<String, String>| {
            m.get(model)
                .or_else(|| m.get(&model.to_uppercase()))
                .cloned()
        };
        regional
            .and_then(|r| lookup(&r.gpu_models))
            .or_else(|| lookup(&catalog.gpu_models))
            .ok_or_else(|| MappingError::UnknownGpuModel {
                model: model.clone(),
                region: region.to_string(),
            })?
    } else if spec.cpu.is_some() || spec.memory_gib.is_some() {
        let cpu = spec.cpu.unwrap_or(1);
        let memory_gib = spec.memory_gib.unwrap_or(1);
        catalog
            .sizes
            .iter()
            .filter(|s| s.cpu >= cpu && s.memory_gib >= memory_gib)
            .min_by_key(|s| (s.cpu, s.memory_gib))
            .map(|s| s.instance_type.clone())
            .ok_or(MappingError::NoMatchingSize { cpu, memory_gib })?
    } else {
        provider
            .defaults
            .instance_type
            .clone()
            .ok_or(MappingError::InstanceTypeRequired)?
    };

    Ok((image_id, instance_type))
}

pub fn charge_mode(spec: &EcsInstanceSpec) -> cloud::ChargeMode {
    match spec.charge_mode {
        ecs_instance::ChargeMode::OnDemand => cloud::ChargeMode::OnDemand,
        ecs_instance::ChargeMode::Prepaid => cloud::ChargeMode::Prepaid {
            months: spec.period_months.unwrap_or(1),
        },
    }
}

pub fn bandwidth_mode(mode: ecs_instance::BandwidthMode) -> cloud::BandwidthMode {
    match mode {
        ecs_instance::BandwidthMode::Traffic => cloud::BandwidthMode::Traffic,
        ecs_instance::BandwidthMode::Fixed => cloud::BandwidthMode::Fixed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cloud_provider::*;
    use crate::api::ecs_instance::*;

    fn provider() -> CloudProviderSpec {
        serde_json::from_value(serde_json::json!({
            "type": "ALIYUN", "code": "ALIYUN",
            "credentialsSecretRef": {"name": "c", "namespace": "ops"},
            "defaults": {"region": "cn-hangzhou", "zones": {"cn-hangzhou": "cn-hangzhou-i", "cn-beijing": "cn-beijing-a"},
                         "instanceType": "ecs.g7.large", "systemDiskCategory": "cloud_essd", "systemDiskSizeGiB": 40},
            "catalog": {
                "images": {"pytorch-1.12": "pytorch_1_12_cuda11_3_ubuntu20_04"},
                "gpuModels": {"A100": "ecs.gn7-c12g1.3xlarge", "A10": "ecs.gn7i-c8g1.2xlarge"},
                "sizes": [{"cpu": 4, "memoryGiB": 16, "instanceType": "ecs.g7.xlarge"},
                          {"cpu": 2, "memoryGiB": 8, "instanceType": "ecs.g7.large"}],
                "regions": {"cn-beijing": {"gpuModels": {"A100": "ecs.gn7e-c16g1.4xlarge"}}}
            }
        }))
        .unwrap()
    }

    fn spec(extra: serde_json::Value) -> EcsInstanceSpec {
        let mut base = serde_json::json!({"userId": "u1", "imageKey": "pytorch-1.12"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn design_order_is_mapped() {
        let p = instance_params(
            &provider(),
            &mce_cloud_aliyun::PROFILE,
            &spec(
                serde_json::json!({"gpuModel": "a100", "systemDisk": {"sizeGiB": 100},
                "publicIp": {"allocate": true, "bandwidthMbps": 10}, "chargeMode": "ON_DEMAND"}),
            ),
        )
        .unwrap();
        assert_eq!(
            p.placement,
            Placement {
                region: "cn-hangzhou".into(),
                zone: "cn-hangzhou-i".into()
            }
        );
        assert_eq!(p.image_id, "pytorch_1_12_cuda11_3_ubuntu20_04");
        assert_eq!(p.instance_type, "ecs.gn7-c12g1.3xlarge");
        assert_eq!(
            p.system_disk,
            SystemDisk {
                category: "cloud_essd".into(),
                size_gib: 100
            }
        );
        assert_eq!(p.instance_charge_type, "PostPaid");
        assert_eq!(p.internet_charge_type.as_deref(), Some("PayByTraffic"));
    }

    #[test]
    fn regional_catalog_wins() {
        let p = instance_params(
            &provider(),
            &mce_cloud_aliyun::PROFILE,
            &spec(serde_json::json!({"gpuModel": "A100", "region": "cn-beijing"})),
        )
        .unwrap();
        assert_eq!(p.instance_type, "ecs.gn7e-c16g1.4xlarge");
        assert_eq!(p.placement.zone, "cn-beijing-a");
    }

    #[test]
    fn instance_type_size_and_default() {
        let p = instance_params(
            &provider(),
            &mce_cloud_aliyun::PROFILE,
            &spec(serde_json::json!({"instanceType": "ecs.x"})),
        )
        .unwrap();
        assert_eq!(p.instance_type, "ecs.x");
        let p = instance_params(
            &provider(),
            &mce_cloud_aliyun::PROFILE,
            &spec(serde_json::json!({"cpu": 3})),
        )
        .unwrap();
        assert_eq!(p.instance_type, "ecs.g7.xlarge");
        let p = instance_params(
            &provider(),
            &mce_cloud_aliyun::PROFILE,
            &spec(serde_json::json!({})),
        )
        .unwrap();
        assert_eq!(p.instance_type, "ecs.g7.large");
        let p = instance_params(&provider(), &mce_cloud_aliyun::PROFILE,
            &spec(serde_json::json!({"chargeMode": "PREPAID", "periodMonths": 3, "publicIp": {"allocate": true, "bandwidthMode": "FIXED"}})),
        )
        .unwrap();
        assert_eq!(p.charge, cloud::ChargeMode::Prepaid { months: 3 });
        assert_eq!(p.instance_charge_type, "PrePaid");
        assert_eq!(p.internet_charge_type.as_deref(), Some("PayByBandwidth"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let reason = |extra| {
            instance_params(&provider(), &mce_cloud_aliyun::PROFILE, &spec(extra))
                .unwrap_err()
                .reason()
        };
        assert_eq!(
            reason(serde_json::json!({"imageKey": "windows-95"})),
            "UnknownImageKey"
        );
        assert_eq!(
            reason(serde_json::json!({"gpuModel": "H100"})),
            "UnknownGpuModel"
        );
        assert_eq!(reason(serde_json::json!({"cpu": 64})), "NoMatchingSize");
        assert_eq!(
            reason(serde_json::json!({"region": "us-east-1"})),
            "ZoneRequired"
        );
        let mut p = provider();
        p.defaults.region = None;
        assert_eq!(
            instance_params(&p, &mce_cloud_aliyun::PROFILE, &spec(serde_json::json!({})))
                .unwrap_err()
                .reason(),
            "RegionRequired"
        );
        p.defaults.region = Some("cn-hangzhou".into());
        p.defaults.instance_type = None;
        assert_eq!(
            instance_params(&p, &mce_cloud_aliyun::PROFILE, &spec(serde_json::json!({})))
                .unwrap_err()
                .reason(),
            "InstanceTypeRequired"
        );
    }

    #[test]
    fn pinned_values_win_over_defaults_and_catalog() {
        let mut p = provider();
        p.defaults.region = Some("cn-beijing".into());
        p.catalog.images.clear();
        let pinned = Pinned {
            placement: Placement {
                region: "cn-hangzhou".into(),
                zone: "cn-hangzhou-i".into(),
            },
            instance_type: "ecs.g7.large".into(),
            image_id: "img-old".into(),
        };
        let s = spec(serde_json::json!({}));
        assert_eq!(
            instance_params(&p, &mce_cloud_aliyun::PROFILE, &s)
                .unwrap_err()
                .reason(),
            "UnknownImageKey"
        );
        let params =
            instance_params_pinned(&p, &mce_cloud_aliyun::PROFILE, &s, Some(&pinned)).unwrap();
        assert_eq!(params.placement, pinned.placement);
        assert_eq!(params.image_id, "img-old");
        assert_eq!(params.instance_type, "ecs.g7.large");

        let mut status = crate::api::EcsInstanceStatus {
            region: Some("r".into()),
            zone: Some("z".into()),
            instance_type: Some("t".into()),
            image_id: Some("i".into()),
            ..Default::default()
        };
        assert_eq!(Pinned::from_status(Some(&status)), None, "not created yet");
        status.instance_id = Some("i-1".into());
        assert_eq!(
            Pinned::from_status(Some(&status)).map(|p| p.placement.region),
            Some("r".to_string())
        );
    }

    #[test]
    fn extensions_are_an_allowlist_within_what_the_profile_permits() {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let profile = &mce_cloud_aliyun::PROFILE;
        let check = |allowed: &[&str], k: &[&str]| {
            check_extensions(&keys(allowed), profile, keys(k).iter()).map_err(|e| e.reason())
        };
        assert_eq!(check(&[], &[]), Ok(()));
        assert_eq!(check(&[], &["HostName"]), Err(Reason::ExtensionNotAllowed));
        assert_eq!(check(&["HostName", "UserData"], &["HostName"]), Ok(()));
        assert_eq!(check(&["DataDisk.N.Size"], &["DataDisk.2.Size"]), Ok(()));
        // Listed by the admin, still refused: they reach beyond the instance or are ours.
        for key in [
            "RamRoleName",
            "NetworkInterface.1.VSwitchId",
            "DataDisk.1.SnapshotId",
            "DataDisk.1.DeleteWithInstance",
            "DeletionProtection",
            "LaunchTemplateId",
            "InstanceType",
            "SecurityGroupIds.3",
        ] {
            assert_eq!(
                check(&[key, "*"], &[key]),
                Err(Reason::ExtensionNotAllowed),
                "{key}"
            );
        }
    }
}
