//! The finalizer protocol, plus a guard against reconciling a stale cached copy.
//!
//! Under load the watch cache lags the operator's own writes; a reconcile of the older copy
//! redoes work and writes again. Every write records the resourceVersion it produced, and a
//! cached copy older than that is not reconciled (it is looked at again once the cache caught
//! up). The finalizer is added with an optimistic-concurrency merge patch whose result is
//! reconciled at once, so a new object needs no second pass to get going.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::context::Context;
use super::error::{Error, Result};
use crate::api::FINALIZER;

/// How soon a stale or conflicting copy is looked at again.
const CACHE_CATCH_UP: Duration = Duration::from_millis(250);

/// What the reconciler should do with the object.
pub enum Phase<K> {
    /// Converge: the object carries the finalizer (this copy is current).
    Apply(Arc<K>),
    /// Release cloud resources; the finalizer is removed when this returns Ok.
    Cleanup(Arc<K>),
}

/// Runs `apply` or `cleanup` for the object, maintaining the finalizer.
pub async fn reconcile<K, F, Fut>(obj: Arc<K>, ctx: &Context, run: F) -> Result<Action>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync,
    F: FnOnce(Phase<K>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let uid = obj.uid().unwrap_or_default();
    if ctx.is_stale(&uid, obj.resource_version().as_deref()) {
        return Ok(Action::requeue(CACHE_CATCH_UP));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let finalizers = obj.finalizers().to_vec();
    let has_finalizer = finalizers.iter().any(|f| f == FINALIZER);

    if obj.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        run(Phase::Cleanup(obj.clone())).await?;
        let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
        return match patch_finalizers(&api, obj.as_ref(), &remaining).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Action::requeue(CACHE_CATCH_UP)),
            Err(e) => Err(e.into()),
        };
    }

    let current = if has_finalizer {
        obj
    } else {
        let mut wanted: Vec<&String> = finalizers.iter().collect();
        let ours = FINALIZER.to_string();
        wanted.push(&ours);
        match patch_finalizers(&api, obj.as_ref(), &wanted).await {
            Ok(patched) => {
                ctx.record_write(&uid, patched.resource_version().as_deref());
                Arc::new(patched)
            }
            // The copy was stale: another writer (or our own earlier write) got there first.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(CACHE_CATCH_UP));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(Error::Kube(e)),
        }
    };
    run(Phase::Apply(current)).await
}

/// Sets the finalizer list, conditional on the copy's resourceVersion.
async fn patch_finalizers<K>(api: &Api<K>, obj: &K, finalizers: &[&String]) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.resource_version(),
        }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}
