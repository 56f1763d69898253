//! The status idiom every reconciler follows: decide conditions as steps ([`Progress`]), settle
//! them into the status (keeping `lastTransitionTime` and the conditions not decided this time),
//! write it only when it differs from what the API server holds ([`StatusSink`]), and publish
//! one Warning per new failure ([`EventSink`]).
//!
//! The sinks are traits so the step executors run without an API server: production uses
//! [`ObjectSink`] (server-side apply + the event recorder), tests record in memory.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::error::Result;
use super::plan;
use crate::api::conditions::{self, Desired};
use crate::api::{CloudProviderStatus, EcsInstanceStatus, Reason, UserNetworkStatus};

/// Where a status goes.
#[async_trait]
pub trait StatusSink<S>: Send + Sync {
    /// Writes `status` unless the API server already holds it (as far as this sink knows).
    async fn save(&self, status: &S) -> Result<()>;

    /// What the API server holds, as far as this sink knows (`None`: unknown).
    fn known(&self) -> Option<S> {
        None
    }

    /// Records whether the object converged at this generation, so wake-ups caused by the
    /// operator's own writes skip the cloud until the next resync.
    fn mark_verified(&self, _converged: bool) {}

    /// How long ago this process last wrote the object (None: not known to this sink).
    fn since_write(&self) -> Option<Duration> {
        None
    }

    /// Keeps `status` for the object's next pass instead of writing it; false: this sink
    /// cannot, and the caller writes.
    fn defer(&self, _status: &S) -> bool {
        false
    }
}

/// Statuses decided but left unwritten (see `plan::defer_progress`), by object UID, with the
/// resourceVersion of the object they were decided on: the next pass of that same version
/// resumes from one; any other version (a spec change, another writer) or another process
/// starts from what the API server holds, and finds its ids again by token and UID tag.
pub struct DeferredStatuses<S>(Mutex<HashMap<String, (u64, S)>>);

impl<S> Default for DeferredStatuses<S> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<S> DeferredStatuses<S> {
    /// Forgotten wholesale past this size (objects deleted meanwhile leave entries behind).
    const MAX: usize = 100_000;

    pub fn put(&self, uid: &str, resource_version: u64, status: S) {
        let mut kept = self.0.lock();
        if kept.len() >= Self::MAX {
            kept.clear();
        }
        kept.insert(uid.to_string(), (resource_version, status));
    }

    /// The status kept for this version of the object (it is taken: a pass resumes once).
    pub fn take(&self, uid: &str, resource_version: Option<&str>) -> Option<S> {
        let (kept_version, status) = self.0.lock().remove(uid)?;
        let version = resource_version.and_then(|v| v.parse::<u64>().ok())?;
        (version == kept_version).then_some(status)
    }
}

/// Where events about one object go. Best effort: a lost event never fails a reconcile.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, warning: bool, reason: Reason, note: String, action: &str);
}

/// A status with a condition list.
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

macro_rules! has_conditions {
    ($($status:ty),+) => {$(
        impl HasConditions for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
        }
    )+};
}
has_conditions!(EcsInstanceStatus, UserNetworkStatus, CloudProviderStatus);

/// The status under construction and the conditions decided so far.
#[derive(Clone, Debug, Default)]
pub struct Progress<S> {
    pub status: S,
    pub steps: Vec<Desired>,
    /// A cloud write happened: what was observed before it is stale, so the object is looked
    /// at again before it counts as verified.
    pub cloud_changed: bool,
}

impl<S> Progress<S> {
    pub fn new(status: S) -> Self {
        Self {
            status,
            steps: Vec::new(),
            cloud_changed: false,
        }
    }

    /// Decides one condition (a later decision of the same type replaces an earlier one).
    pub fn step(
        &mut self,
        type_: &'static str,
        ok: bool,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.steps.retain(|d| d.type_ != type_);
        self.steps.push(Desired::new(type_, ok, reason, message));
    }

    /// Writes the status through the sink (tokens and ids are persisted this way before the
    /// cloud calls that use them).
    pub async fn save(&self, sink: &dyn StatusSink<S>) -> Result<()> {
        sink.save(&self.status).await
    }
}

impl<S: HasConditions> Progress<S> {
    /// Settles the conditions: `summary` (if any) and the steps merged over `previous`, the
    /// conditions not decided this time keeping their previous values, sorted by `order`.
    pub fn settle(
        &mut self,
        previous: &[Condition],
        summary: Option<Desired>,
        generation: Option<i64>,
        order: &[&str],
    ) {
        let mut all: Vec<Desired> = summary.into_iter().collect();
        all.extend(self.steps.iter().cloned());
        let now = Time(Timestamp::now());
        let mut merged = conditions::merge(previous, &all, generation, &now);
        for old in previous {
            if !merged.iter().any(|c| c.type_ == old.type_) {
                merged.push(old.clone());
            }
        }
        merged.sort_by_key(|c| {
            order
                .iter()
                .position(|t| *t == c.type_)
                .unwrap_or(usize::MAX)
        });
        *self.status.conditions_mut() = merged;
    }
}

/// Publishes one Warning per step that turned to a new failure reason (see
/// [`plan::new_failures`]), so a failure retried many times makes one event.
pub async fn warn_new_failures(
    events: &dyn EventSink,
    previous: &[Condition],
    steps: &[Desired],
    action: impl Fn(&Desired) -> &'static str,
) {
    for failure in plan::new_failures(previous, steps) {
        events
            .publish(
                true,
                failure.reason,
                failure.message.clone(),
                action(failure),
            )
            .await;
    }
}

/// The production sinks of one namespaced object: server-side apply of its status subresource
/// and the operator's event recorder.
pub struct ObjectSink<'a, K, S> {
    obj: &'a K,
    ctx: &'a Context,
    /// The status last written through this sink, else the cached object's.
    known: Mutex<Option<S>>,
    /// Where statuses left unwritten are kept (None: every status is written).
    deferred: Option<&'a DeferredStatuses<S>>,
}

impl<'a, K, S> ObjectSink<'a, K, S> {
    /// `current` is the status the API server holds, as far as the cached copy of `obj` tells.
    pub fn new(obj: &'a K, ctx: &'a Context, current: Option<S>) -> Self {
        Self {
            obj,
            ctx,
            known: Mutex::new(current),
            deferred: None,
        }
    }

    /// Lets progress stay unwritten for a while, kept in `store` for the next pass.
    pub fn deferring_to(mut self, store: &'a DeferredStatuses<S>) -> Self {
        self.deferred = Some(store);
        self
    }
}

#[async_trait]
impl<K, S> StatusSink<S> for ObjectSink<'_, K, S>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync,
    S: Serialize + PartialEq + Clone + Send + Sync,
{
    fn known(&self) -> Option<S> {
        self.known.lock().clone()
    }

    async fn save(&self, status: &S) -> Result<()> {
        let known = self.known.lock().clone();
        if self
            .ctx
            .apply_status(self.obj, known.as_ref(), status)
            .await?
        {
            *self.known.lock() = Some(status.clone());
        }
        Ok(())
    }

    fn mark_verified(&self, converged: bool) {
        self.ctx.mark_verified(
            &self.obj.uid().unwrap_or_default(),
            self.obj.meta().generation,
            converged,
        );
    }

    fn since_write(&self) -> Option<Duration> {
        let uid = self.obj.uid()?;
        self.ctx
            .written
            .lock()
            .get(&uid)
            .map(|(_, at)| at.elapsed())
    }

    fn defer(&self, status: &S) -> bool {
        let (Some(store), Some(uid)) = (self.deferred, self.obj.uid()) else {
            return false;
        };
        // The version the next pass will see: the newest of the cached copy's and of this
        // process's own last write to the object.
        let cached = self
            .obj
            .resource_version()
            .and_then(|v| v.parse::<u64>().ok());
        let written = self.ctx.written.lock().get(&uid).map(|(rv, _)| *rv);
        let Some(version) = cached.max(written) else {
            return false;
        };
        store.put(&uid, version, status.clone());
        true
    }
}

#[async_trait]
impl<K, S> EventSink for ObjectSink<'_, K, S>
where
    K: Resource<DynamicType = ()> + Send + Sync,
    S: Send + Sync,
{
    async fn publish(&self, warning: bool, reason: Reason, note: String, action: &str) {
        self.ctx
            .publish(self.obj, warning, reason, note, action)
            .await;
    }
}
