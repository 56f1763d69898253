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
    if let Some(action) = in_use::guard(&provider, &ctx).await? {
        return Ok(action);
    }
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
            "the provider answered an authenticated call and granted the probed permissions",
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
    let authenticated = driver.probe(region).await;
    // Issue 15: beyond authentication, the permissions the operator needs. A RAM/CAM denial of
    // the probe call itself also shows here, named, rather than as bad credentials.
    let tags = mce_cloud::Tags::from([(
        crate::api::tags::CREATED_BY.to_string(),
        crate::api::tags::CREATED_BY_VALUE.to_string(),
    )]);
    let missing = match (
        &authenticated,
        driver.probe_permissions(region, &tags).await,
    ) {
        (_, Ok(missing)) if !missing.is_empty() => missing,
        (Err(e), _) => return Err((probe_reason(&Error::Cloud(e.clone())), e.to_string())),
        (Ok(()), Ok(_)) => return Ok(()),
        (Ok(()), Err(e)) => return Err((probe_reason(&Error::Cloud(e.clone())), e.to_string())),
    };
    Err((Reason::PermissionsMissing, permissions_message(&missing)))
}

/// The `Available` message naming the missing permissions (the condition message is bounded,
/// so a long list is cut with a count).
fn permissions_message(missing: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut names = missing
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > SHOWN {
        names.push_str(&format!(" and {} more", missing.len() - SHOWN));
    }
    format!(
        "the credentials lack {} cloud permission(s) the operator needs: {names} (deploy/policies/ grants them)",
        missing.len()
    )
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

/// Issue 12: a CloudProvider is not deleted while EcsInstances or UserNetworks still use it.
/// Releasing their cloud resources needs its driver (endpoint, credentials), so without this
/// guard deleting it first would strand them. It carries the finalizer [`IN_USE_FINALIZER`];
/// once deleted it keeps working (probe, drivers) until its last user is gone.
mod in_use {
    use kube::api::{Api, Patch, PatchParams};
    use kube::runtime::controller::Action;
    use kube::{Resource, ResourceExt};
    use tracing::info;

    use super::super::context::Context;
    use super::super::error::Result;
    use crate::api::{CloudProvider, Reason};

    pub const IN_USE_FINALIZER: &str = "ecs.multicloud.io/in-use";

    /// Objects (`kind/namespace/name`) that still use the provider with `code`, from the caches.
    pub fn users(ctx: &Context, code: &str) -> Vec<String> {
        let mut users: Vec<String> = ctx
            .instances
            .state()
            .iter()
            .filter(|i| {
                i.spec.provider.as_deref() == Some(code)
                    || i.status.as_ref().and_then(|s| s.provider.as_deref()) == Some(code)
            })
            .map(|i| {
                format!(
                    "EcsInstance {}/{}",
                    i.namespace().unwrap_or_default(),
                    i.name_any()
                )
            })
            .collect();
        users.extend(
            ctx.networks
                .state()
                .iter()
                .filter(|n| n.spec.provider == code)
                .map(|n| {
                    format!(
                        "UserNetwork {}/{}",
                        n.namespace().unwrap_or_default(),
                        n.name_any()
                    )
                }),
        );
        users.sort();
        users
    }

    /// Adds the finalizer, or — once the provider is deleted — removes it when nothing uses
    /// the provider any more. `Some`: the reconcile ends here.
    pub async fn guard(provider: &CloudProvider, ctx: &Context) -> Result<Option<Action>> {
        let api: Api<CloudProvider> = Api::all(ctx.client.clone());
        let finalizers = provider.finalizers();
        let has = finalizers.iter().any(|f| f == IN_USE_FINALIZER);
        if provider.meta().deletion_timestamp.is_none() {
            if !has {
                let mut wanted = finalizers.to_vec();
                wanted.push(IN_USE_FINALIZER.into());
                patch(&api, provider, &wanted).await?;
            }
            return Ok(None);
        }
        if !has {
            return Ok(Some(Action::await_change()));
        }
        let users = users(ctx, &provider.spec.code);
        if users.is_empty() {
            info!("no EcsInstance or UserNetwork uses the deleted provider any more");
            let wanted: Vec<String> = finalizers
                .iter()
                .filter(|f| *f != IN_USE_FINALIZER)
                .cloned()
                .collect();
            patch(&api, provider, &wanted).await?;
            return Ok(Some(Action::await_change()));
        }
        // Still in use: the provider keeps serving its users' releases; say why it stays.
        let message = format!(
            "deletion waits for {} object(s) using this provider: {}",
            users.len(),
            users.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
        // One Warning per probe period (the recorder folds repeats into a series); the probe
        // goes on, so the provider's users can still be released.
        ctx.publish(provider, true, Reason::ProviderInUse, message, "Delete")
            .await;
        Ok(None)
    }

    async fn patch(
        api: &Api<CloudProvider>,
        provider: &CloudProvider,
        finalizers: &[String],
    ) -> Result<()> {
        let patch = serde_json::json!({
            "metadata": {"finalizers": finalizers, "resourceVersion": provider.resource_version()}
        });
        match api
            .patch(
                &provider.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // A stale copy or a provider already gone: the next event brings the current one.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
