//! Everything static a reconcile needs, resolved without any cloud call: the tenant, the
//! provider (scheduled once, then kept), its profile and the mapped instance parameters.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use super::super::context::{Context, profile_of};
use super::super::error::Result;
use super::super::mapping::{self, InstanceParams};
use super::super::tenancy;
use crate::api::conditions;
use crate::api::{CloudProvider, EcsInstance, EcsInstanceStatus, Reason};
use crate::scheduler::{Scheduler, SchedulingRequest};
use mce_cloud::{ProviderProfile, ProviderRegistry};

/// A refusal: the input cannot be acted on. Becomes a condition and one Warning event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub condition: &'static str,
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    fn new(condition: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            condition,
            reason,
            message: message.into(),
        }
    }
}

/// The resolved inputs of the steps.
#[derive(Clone)]
pub struct Resolved {
    pub tenant: String,
    pub provider: Arc<CloudProvider>,
    pub profile: &'static ProviderProfile,
    pub params: InstanceParams,
    /// The UserNetwork the instance uses.
    pub network_name: String,
}

impl Resolved {
    /// Shows what was resolved in status (provider, placement, wire names).
    pub fn record(&self, status: &mut EcsInstanceStatus) {
        let params = &self.params;
        status.provider = Some(self.provider.spec.code.clone());
        status.region = Some(params.placement.region.clone());
        status.zone = Some(params.placement.zone.clone());
        status.instance_type = Some(params.instance_type.clone());
        status.image_id = Some(params.image_id.clone());
        status.instance_charge_type = Some(params.instance_charge_type.clone());
        status.internet_charge_type = params.internet_charge_type.clone();
    }
}

/// What resolving reads: the namespace's labels, the known providers, the scheduling policy and
/// the registered provider plugins.
pub struct ResolveInputs<'a> {
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    pub providers: &'a [Arc<CloudProvider>],
    pub scheduler: &'a dyn Scheduler,
    pub plugins: &'a ProviderRegistry,
}

pub fn resolve(
    inst: &EcsInstance,
    inputs: &ResolveInputs<'_>,
) -> std::result::Result<Resolved, Refusal> {
    let namespace = inst.namespace().unwrap_or_default();
    let spec = &inst.spec;
    let tenant = tenancy::resolve_tenant(
        &namespace,
        inputs.namespace_labels,
        spec.tenant_id.as_deref(),
    )
    .map_err(|e| Refusal::new(conditions::NETWORK_READY, e.reason(), e.to_string()))?;
    let by_code = |code: &str| inputs.providers.iter().find(|p| p.spec.code == code);
    // An instance already placed keeps its provider even if it stops taking new work.
    let scheduled = inst
        .status
        .as_ref()
        .and_then(|s| s.instance_id.as_ref())
        .and(spec.provider.as_deref());
    let provider = match scheduled.and_then(by_code) {
        Some(p) => p.clone(),
        None => {
            let request = SchedulingRequest {
                provider: spec.provider.as_deref(),
                region: spec.region.as_deref(),
            };
            let chosen = inputs
                .scheduler
                .select(&request, inputs.providers)
                .map_err(|e| Refusal::new(conditions::INSTANCE_READY, e.reason(), e.to_string()))?;
            by_code(&chosen.spec.code).cloned().ok_or_else(|| {
                Refusal::new(
                    conditions::INSTANCE_READY,
                    Reason::ProviderNotFound,
                    "provider vanished",
                )
            })?
        }
    };
    let profile = profile_of(inputs.plugins, &provider)
        .map_err(|e| Refusal::new(conditions::INSTANCE_READY, e.reason(), e.to_string()))?;
    let refuse = |e: mapping::MappingError| {
        Refusal::new(conditions::INSTANCE_READY, e.reason(), e.to_string())
    };
    // A created instance keeps its placement, type and image: a later defaults or catalog edit
    // must neither move it (cleanup would search the wrong region) nor fail it.
    let pinned = mapping::Pinned::from_status(inst.status.as_ref());
    let params = mapping::instance_params_pinned(&provider.spec, profile, spec, pinned.as_ref())
        .map_err(refuse)?;
    // Extensions only matter to the creation, so a live instance is not judged again.
    let created = inst
        .status
        .as_ref()
        .is_some_and(|s| s.instance_id.is_some());
    if !created {
        mapping::check_extensions(
            &provider.spec.allowed_extensions,
            profile,
            spec.extensions.keys(),
        )
        .map_err(refuse)?;
        mapping::check_tags(profile, spec.tags.keys()).map_err(refuse)?;
    }
    // From the resolved region, so an instance relying on the provider's default region gets
    // a name too (never an empty one).
    let network_name = spec.network_ref.clone().unwrap_or_else(|| {
        tenancy::silent_network_name(&spec.user_id, &provider.spec.code, &params.placement.region)
    });
    Ok(Resolved {
        tenant,
        provider,
        profile,
        params,
        network_name,
    })
}

/// Resolves from the caches of the operator.
pub(super) fn resolve_cached(
    inst: &EcsInstance,
    ctx: &Context,
) -> std::result::Result<Resolved, Refusal> {
    let labels = ctx.namespace_labels(&inst.namespace().unwrap_or_default());
    let providers = ctx.providers.state();
    resolve(
        inst,
        &ResolveInputs {
            namespace_labels: labels.as_ref(),
            providers: &providers,
            scheduler: ctx.scheduler.as_ref(),
            plugins: ctx.drivers.plugins(),
        },
    )
}

/// Whether the CloudProvider the instance names exists, asked of the API server.
pub(super) async fn provider_exists(inst: &EcsInstance, ctx: &Context) -> Result<bool> {
    let Some(code) = inst.target_provider() else {
        return Ok(false);
    };
    let api: kube::Api<CloudProvider> = kube::Api::all(ctx.client.clone());
    Ok(api
        .list(&kube::api::ListParams::default())
        .await?
        .items
        .iter()
        .any(|p| p.spec.code == code))
}
