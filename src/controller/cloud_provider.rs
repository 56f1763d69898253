//! CloudProvider reconciler: builds the account's driver and probes it (the design's
//! `isAvailable()`), reporting the `Available` condition.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::instrument;

use super::context::{Context, FIELD_MANAGER};
use super::error::{Error, Result};
use super::jittered;
use crate::api::conditions::{self, Desired};
use crate::api::{CloudProvider, CloudProviderStatus};

/// Region probed when the provider names no default region.
const FALLBACK_PROBE_REGION: &str = "cn-hangzhou";

#[instrument(skip_all, fields(provider = %provider.name_any()))]
pub async fn reconcile(provider: Arc<CloudProvider>, ctx: Arc<Context>) -> Result<Action> {
    let available = probe(&provider, &ctx).await;
    let previous = provider.status.clone().unwrap_or_default();
    let desired = match &available {
        Ok(()) => Desired::new(
            conditions::AVAILABLE,
            true,
            "ProbeSucceeded",
            "the provider answered an authenticated call",
        ),
        Err((reason, message)) => {
            Desired::new(conditions::AVAILABLE, false, *reason, message.clone())
        }
    };
    let now = Time(Timestamp::now());
    let status = CloudProviderStatus {
        observed_generation: provider.metadata.generation,
        conditions: conditions::merge(
            &previous.conditions,
            &[desired],
            provider.metadata.generation,
            &now,
        ),
    };
    if provider.status.as_ref() != Some(&status) {
        let flipped = conditions::is_true(&previous.conditions, conditions::AVAILABLE)
            != available.is_ok()
            || previous.conditions.is_empty();
        let api: Api<CloudProvider> = Api::all(ctx.client.clone());
        let patch = serde_json::json!({
            "apiVersion": "ecs.multicloud.io/v1alpha1", "kind": "CloudProvider", "status": status,
        });
        api.patch_status(
            &provider.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        if flipped {
            match &available {
                Ok(()) => {
                    ctx.publish(
                        provider.as_ref(),
                        false,
                        "Available",
                        "probe succeeded".into(),
                        "Probe",
                    )
                    .await
                }
                Err((reason, message)) => {
                    ctx.publish(provider.as_ref(), true, reason, message.clone(), "Probe")
                        .await
                }
            }
        }
    }
    Ok(Action::requeue(jittered(ctx.config.probe_interval)))
}

async fn probe(provider: &CloudProvider, ctx: &Context) -> Result<(), (&'static str, String)> {
    if provider.spec.disabled {
        return Err(("Disabled", "spec.disabled is true".into()));
    }
    let driver = ctx
        .drivers
        .refresh(provider)
        .await
        .map_err(|e| (e.reason(), e.to_string()))?;
    let region = provider
        .spec
        .defaults
        .region
        .as_deref()
        .unwrap_or(FALLBACK_PROBE_REGION);
    driver
        .probe(region)
        .await
        .map_err(|e| (probe_reason(&Error::Cloud(e.clone())), e.to_string()))
}

fn probe_reason(e: &Error) -> &'static str {
    match e {
        Error::Cloud(c) if c.class == mce_cloud::ErrorClass::Authentication => {
            "AuthenticationFailed"
        }
        Error::Cloud(_) => "ProbeFailed",
        other => other.reason(),
    }
}
