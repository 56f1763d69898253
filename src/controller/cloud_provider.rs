//! CloudProvider reconciler: builds the account's driver and probes it, reporting the
//! `Available` condition.

use std::sync::Arc;

use async_trait::async_trait;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::instrument;

use super::context::{Context, FIELD_MANAGER};
use super::error::{Error, Result};
use super::jittered;
use super::status::{EventSink, Progress, StatusSink};
use crate::api::conditions;
use crate::api::{CloudProvider, CloudProviderStatus, Reason};

#[instrument(skip_all, fields(provider = %provider.name_any()))]
pub async fn reconcile(provider: Arc<CloudProvider>, ctx: Arc<Context>) -> Result<Action> {
    let available = probe(&provider, &ctx).await;
    let previous = provider.status.clone().unwrap_or_default();
    let mut progress = Progress::new(CloudProviderStatus {
        observed_generation: provider.metadata.generation,
        conditions: Vec::new(),
    });
    match &available {
        Ok(()) => progress.step(
            conditions::AVAILABLE,
            true,
            Reason::ProbeSucceeded,
            "the provider answered an authenticated call",
        ),
        Err((reason, message)) => {
            progress.step(conditions::AVAILABLE, false, *reason, message.clone())
        }
    }
    progress.settle(
        &previous.conditions,
        None,
        provider.metadata.generation,
        &[conditions::AVAILABLE],
    );
    let sink = ProviderSink {
        provider: &provider,
        ctx: &ctx,
    };
    if provider.status.as_ref() != Some(&progress.status) {
        // Events only when availability flips (or is first known), not on every changed message.
        let flipped = conditions::is_true(&previous.conditions, conditions::AVAILABLE)
            != available.is_ok()
            || previous.conditions.is_empty();
        progress.save(&sink).await?;
        if flipped {
            match &available {
                Ok(()) => {
                    sink.publish(false, Reason::Available, "probe succeeded".into(), "Probe")
                        .await
                }
                Err((reason, message)) => {
                    sink.publish(true, *reason, message.clone(), "Probe").await
                }
            }
        }
    }
    Ok(Action::requeue(jittered(ctx.config.probe_interval)))
}

async fn probe(provider: &CloudProvider, ctx: &Context) -> Result<(), (Reason, String)> {
    if provider.spec.disabled {
        return Err((Reason::Disabled, "spec.disabled is true".into()));
    }
    let driver = ctx
        .drivers
        .refresh(provider)
        .await
        .map_err(|e| (e.reason(), e.to_string()))?;
    let profile = ctx
        .drivers
        .profile(provider)
        .map_err(|e| (e.reason(), e.to_string()))?;
    let region = provider
        .spec
        .defaults
        .region
        .as_deref()
        .unwrap_or(profile.probe_region);
    driver
        .probe(region)
        .await
        .map_err(|e| (probe_reason(&Error::Cloud(e.clone())), e.to_string()))
}

fn probe_reason(e: &Error) -> Reason {
    match e {
        Error::Cloud(c) if c.class == mce_cloud::ErrorClass::Authentication => {
            Reason::AuthenticationFailed
        }
        Error::Cloud(_) => Reason::ProbeFailed,
        other => other.reason(),
    }
}

/// A CloudProvider's status and events: the object is cluster-scoped, and its status is
/// written whenever the reconcile found it different from the cached one.
struct ProviderSink<'a> {
    provider: &'a CloudProvider,
    ctx: &'a Context,
}

#[async_trait]
impl StatusSink<CloudProviderStatus> for ProviderSink<'_> {
    async fn save(&self, status: &CloudProviderStatus) -> Result<()> {
        let api: Api<CloudProvider> = Api::all(self.ctx.client.clone());
        let patch = serde_json::json!({
            "apiVersion": "ecs.multicloud.io/v1alpha1", "kind": "CloudProvider", "status": status,
        });
        api.patch_status(
            &self.provider.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl EventSink for ProviderSink<'_> {
    async fn publish(&self, warning: bool, reason: Reason, note: String, action: &str) {
        self.ctx
            .publish(self.provider, warning, reason, note, action)
            .await;
    }
}
