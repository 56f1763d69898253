//! Sharding of namespaces across operator replicas (`--shards N`, N > 1).
//!
//! A namespace belongs to shard `fnv1a64(namespace) % N`; cluster-scoped objects (CloudProviders)
//! to shard 0. Each shard is owned by at most one replica at a time through a
//! `coordination.k8s.io` Lease `<lease-name>-shard-<i>`. Every replica watches every object (the
//! caches are whole); a reconcile of an object whose shard this replica does not hold returns at
//! once, so sharding splits reconcile work and cloud calls, not the watch cache.
//!
//! The lease loop ([`run_leases`]) renews the shards held, takes free or expired ones, and
//! balances through a handover protocol, since Deployment pods have random names and no ordinal
//! to pick "their" shard by: a replica below its fair share writes
//! `multicloud-ecs.io/handover-to: <identity>` on a lease of the most-loaded holder, which hands
//! that shard over when it holds more than the requester + 1. What to do each tick is decided by
//! the pure [`plan`]; the rest of this file performs it.
//!
//! Fencing: a replica acts on a shard only until 2/3 of the lease duration after its last
//! successful renewal, while another replica may take an unrenewed lease only after the full
//! duration, so two replicas never act on one shard at once (given clocks that agree within the
//! remaining third). A handover stops the local owner first and waits (boundedly) for its
//! in-flight reconciles of that shard before the lease names the new holder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::api::{CloudProvider, EcsInstance, UserNetwork};

/// Label of every shard Lease: who manages it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "multicloud-ecs";
/// Label naming the set a shard Lease belongs to (the `--lease-name`), to list them.
pub const SHARD_SET_LABEL: &str = "multicloud-ecs.io/shard-set";
/// Annotation: the shard count its holder runs with (replicas disagreeing on it would hash
/// namespaces differently; see [`plan`]).
pub const SHARDS_ANNOTATION: &str = "multicloud-ecs.io/shards";
/// Annotation: the identity asking the holder for this shard.
pub const HANDOVER_TO_ANNOTATION: &str = "multicloud-ecs.io/handover-to";
/// Annotation: when the handover was asked for (RFC 3339); a request older than the lease
/// duration is stale (its requester may be gone) and ignored.
pub const HANDOVER_AT_ANNOTATION: &str = "multicloud-ecs.io/handover-requested-at";

/// The shard of a namespace: FNV-1a (64 bit) of its name, modulo `shards`. Stable across
/// processes and releases: replicas must agree on it.
pub fn shard_of(namespace: &str, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below `shards`, a u32.
    (hash % u64::from(shards)) as u32
}

/// The name of a shard's Lease.
pub fn lease_name(set: &str, shard: u32) -> String {
    format!("{set}-shard-{shard}")
}

/// The shard a Lease name of the set is for.
fn shard_of_lease(set: &str, name: &str) -> Option<u32> {
    name.strip_prefix(set)?
        .strip_prefix("-shard-")?
        .parse()
        .ok()
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Until when this replica may act on the shard (None: not held).
    valid_until: Option<Instant>,
    /// Reconciles of the shard's objects running now.
    in_flight: usize,
}

/// Which shards this replica holds right now; shared by every reconcile (cheap to query).
pub struct Shards {
    count: u32,
    /// How long one renewal lets this replica act: 2/3 of the lease duration.
    fence: Duration,
    slots: Mutex<Vec<Slot>>,
    /// Bumped whenever a shard is gained; the controllers then reconcile everything.
    gains: watch::Sender<u64>,
    /// Whether the caches are filled (a sharded replica takes shards and reports ready then).
    synced: watch::Sender<bool>,
}

impl Default for Shards {
    /// Not sharded: owns everything, always.
    fn default() -> Self {
        Self::new(1, Duration::from_secs(15))
    }
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("count", &self.count)
            .field("held", &self.held())
            .finish()
    }
}

impl Shards {
    /// `count` shards (1: not sharded) with leases of `lease` duration.
    pub fn new(count: u32, lease: Duration) -> Self {
        let count = count.max(1);
        Self {
            count,
            fence: lease.mul_f64(2.0 / 3.0),
            slots: Mutex::new(vec![Slot::default(); count as usize]),
            gains: watch::channel(0).0,
            synced: watch::channel(false).0,
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// The shard of an object's namespace (None: cluster-scoped, shard 0).
    pub fn shard_for(&self, namespace: Option<&str>) -> u32 {
        namespace.map_or(0, |ns| shard_of(ns, self.count))
    }

    /// Whether this replica may act on objects of `namespace` now.
    pub fn owns(&self, namespace: Option<&str>) -> bool {
        !self.is_sharded() || self.owns_shard(self.shard_for(namespace), Instant::now())
    }

    /// Whether the shard is held and its last renewal is recent enough at `now`.
    pub fn owns_shard(&self, shard: u32, now: Instant) -> bool {
        self.slots
            .lock()
            .get(shard as usize)
            .is_some_and(|s| s.valid_until.is_some_and(|t| now < t))
    }

    /// Shards held now.
    pub fn held(&self) -> Vec<u32> {
        let now = Instant::now();
        (0..self.count)
            .filter(|s| !self.is_sharded() || self.owns_shard(*s, now))
            .collect()
    }

    /// Starts a reconcile of an object of `namespace`: None if this replica does not hold its
    /// shard. The guard counts the reconcile as in flight until dropped, so a handover waits for
    /// it.
    pub fn enter(self: &Arc<Self>, namespace: Option<&str>) -> Option<Work> {
        if !self.is_sharded() {
            return Some(Work(None));
        }
        let shard = self.shard_for(namespace);
        let now = Instant::now();
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(shard as usize)?;
        if slot.valid_until.is_none_or(|t| now >= t) {
            return None;
        }
        slot.in_flight += 1;
        Some(Work(Some((self.clone(), shard))))
    }

    /// A stream that yields whenever this replica gains a shard (one per controller).
    pub fn gains(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.gains.subscribe(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }

    /// Marks the caches filled.
    pub fn set_synced(&self) {
        self.synced.send_replace(true);
    }

    /// Resolves once the caches are filled.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`: this only ends with the flag set.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// Records a successful renewal (or acquisition) made at `renewed_at`; returns whether the
    /// shard was gained (not held a moment before), which is signalled to the controllers.
    pub fn grant(&self, shard: u32, renewed_at: Instant) -> bool {
        let until = renewed_at + self.fence;
        let now = Instant::now();
        let gained = {
            let mut slots = self.slots.lock();
            let Some(slot) = slots.get_mut(shard as usize) else {
                return false;
            };
            let was = slot.valid_until.is_some_and(|t| now < t);
            slot.valid_until = Some(slot.valid_until.map_or(until, |t| t.max(until)));
            !was && now < until
        };
        if gained {
            self.gains.send_modify(|n| *n = n.wrapping_add(1));
        }
        gained
    }

    /// Stops acting on a shard; returns whether it was held.
    pub fn revoke(&self, shard: u32) -> bool {
        let now = Instant::now();
        let mut slots = self.slots.lock();
        slots
            .get_mut(shard as usize)
            .is_some_and(|slot| slot.valid_until.take().is_some_and(|t| now < t))
    }

    /// Waits until no reconcile of the shard runs, at most `timeout`; returns whether it drained.
    pub async fn drained(&self, shard: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let busy = self
                .slots
                .lock()
                .get(shard as usize)
                .map_or(0, |s| s.in_flight);
            if busy == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn leave(&self, shard: u32) {
        if let Some(slot) = self.slots.lock().get_mut(shard as usize) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
        }
    }
}

/// A reconcile in flight on a held shard (see [`Shards::enter`]).
pub struct Work(Option<(Arc<Shards>, u32)>);

impl Drop for Work {
    fn drop(&mut self) {
        if let Some((shards, shard)) = &self.0 {
            shards.leave(*shard);
        }
    }
}

/// Runs `reconcile` only with a [`Work`] guard (the object's shard is held); otherwise touches
/// nothing and waits for a change (a gained shard reconciles everything again).
pub async fn gated<E>(
    work: Option<Work>,
    reconcile: impl std::future::Future<Output = Result<Action, E>>,
) -> Result<Action, E> {
    let Some(_work) = work else {
        return Ok(Action::await_change());
    };
    reconcile.await
}

/// Marks the caches filled once the CloudProvider, EcsInstance and UserNetwork caches hold
/// their first complete list. Must run in the task that runs the controllers: a kube `Store`
/// (its readiness is a oneshot) wakes only the last task that waited on it, so waiting from
/// another task could leave the controllers' own wait asleep.
pub async fn announce_synced(
    shards: Arc<Shards>,
    providers: Store<CloudProvider>,
    instances: Store<EcsInstance>,
    networks: Store<UserNetwork>,
) {
    let filled = providers.wait_until_ready().await.is_ok()
        && instances.wait_until_ready().await.is_ok()
        && networks.wait_until_ready().await.is_ok();
    if filled {
        shards.set_synced();
    } else {
        warn!("cache writer gone before it was filled; not taking shards");
    }
}

// ---------------------------------------------------------------------------------------------
// The decision: pure, tested without a server.

/// A shard Lease as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    pub renewed: Option<Timestamp>,
    pub duration: Duration,
    /// The shard count its holder runs with.
    pub shards: Option<u32>,
    /// A handover request: who asks, since when.
    pub request: Option<(String, Timestamp)>,
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Observed {
    /// The holder, if its lease has not expired at `now` (renewTime + duration ≥ now).
    pub fn live_holder(&self, now: Timestamp) -> Option<&str> {
        let holder = self.holder.as_deref().filter(|h| !h.is_empty())?;
        let renewed = self.renewed?;
        (renewed
            .as_millisecond()
            .saturating_add(millis(self.duration))
            >= now.as_millisecond())
        .then_some(holder)
    }

    /// The requester of a handover asked for less than `ttl` ago.
    fn requester(&self, now: Timestamp, ttl: Duration) -> Option<&str> {
        let (who, at) = self.request.as_ref()?;
        (at.as_millisecond().saturating_add(millis(ttl)) >= now.as_millisecond())
            .then_some(who.as_str())
    }
}

/// One write of a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Renew a lease this replica holds.
    Renew(u32),
    /// Take a free, expired or missing lease.
    Acquire(u32),
    /// Ask the holder of this lease to hand it over.
    Request(u32),
    /// Hand a held lease over to a requester.
    HandOver { shard: u32, to: String },
}

/// What this replica (`me`, running with `shards` shards and leases of `lease`) writes this
/// tick, given the shard leases as read (by shard index; missing ones are absent) at `now`:
/// 1. hand a held shard over to a live request while holding more than the requester + 1;
/// 2. renew the other held shards;
/// 3. take every free or expired shard — unless a live lease is held by a replica running with
///    another shard count (a rollout changing `--shards`): namespaces hash differently there, so
///    this replica waits until those replicas are gone;
/// 4. if it took none and holds fewer than floor(shards / live replicas) (live: distinct holders
///    of unexpired leases, plus itself), with no request of its own pending, ask the most-loaded
///    holder for one shard (a lease of it without a pending request).
pub fn plan(
    leases: &BTreeMap<u32, Observed>,
    me: &str,
    shards: u32,
    lease: Duration,
    now: Timestamp,
) -> Vec<Step> {
    let holder_of = |s: u32| leases.get(&s).and_then(|o| o.live_holder(now));
    let requester_of = |s: u32| leases.get(&s).and_then(|o| o.requester(now, lease));
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    counts.insert(me, 0);
    for s in 0..shards {
        if let Some(holder) = holder_of(s) {
            *counts.entry(holder).or_default() += 1;
        }
    }
    let live_replicas = counts.len() as u32;
    let mut mine = counts.get(me).copied().unwrap_or(0);
    let mut steps = Vec::new();

    // 1 + 2: honour requests on held shards while over the requester + 1, renew the rest.
    for s in 0..shards {
        if holder_of(s) != Some(me) {
            continue;
        }
        if let Some(to) = requester_of(s).filter(|to| *to != me) {
            let theirs = counts.get(to).copied().unwrap_or(0);
            if mine > theirs + 1 {
                mine -= 1;
                *counts.entry(to).or_default() += 1;
                steps.push(Step::HandOver {
                    shard: s,
                    to: to.to_string(),
                });
                continue;
            }
        }
        steps.push(Step::Renew(s));
    }

    let other_count = leases.values().any(|o| {
        o.live_holder(now).is_some_and(|h| h != me) && o.shards.is_some_and(|c| c != shards)
    });
    if other_count {
        return steps;
    }

    // 3: free or expired shards.
    let free: Vec<u32> = (0..shards).filter(|s| holder_of(*s).is_none()).collect();
    if !free.is_empty() {
        steps.extend(free.into_iter().map(Step::Acquire));
        return steps;
    }

    // 4: balance.
    let fair = shards / live_replicas;
    if mine >= fair || (0..shards).any(|s| requester_of(s) == Some(me)) {
        return steps;
    }
    let Some((target, load)) = counts
        .iter()
        .filter(|(holder, _)| **holder != me)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
    else {
        return steps;
    };
    if *load <= mine + 1 {
        return steps;
    }
    if let Some(s) =
        (0..shards).find(|s| holder_of(*s) == Some(*target) && requester_of(*s).is_none())
    {
        steps.push(Step::Request(s));
    }
    steps
}

// ---------------------------------------------------------------------------------------------
// The lease loop: reads the leases, plans, writes.

/// Settings of the lease loop.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the shard Leases.
    pub namespace: String,
    /// The set's name: Leases are `<lease_name>-shard-<i>`.
    pub lease_name: String,
    /// This replica's identity (holderIdentity).
    pub identity: String,
    /// Lease duration.
    pub lease: Duration,
}

#[derive(thiserror::Error, Debug)]
pub enum ShardError {
    #[error("shard lease {name}: {source}")]
    Kube {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("shard lease {0}: no answer in time")]
    Timeout(String),
}

impl ShardError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}

/// An API call on a lease, bounded so a hung call cannot stall the renewals of other shards.
async fn call<T>(
    name: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, ShardError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ShardError::Kube {
            name: name.to_string(),
            source,
        }),
        Err(_) => Err(ShardError::Timeout(name.to_string())),
    }
}

fn observe(lease: &Lease) -> Observed {
    let spec = lease.spec.clone().unwrap_or_default();
    let annotations = lease.annotations();
    let request = annotations.get(HANDOVER_TO_ANNOTATION).and_then(|who| {
        let at = annotations.get(HANDOVER_AT_ANNOTATION)?.parse().ok()?;
        Some((who.clone(), at))
    });
    Observed {
        holder: spec.holder_identity,
        renewed: spec.renew_time.map(|t| t.0),
        duration: Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        ),
        shards: annotations
            .get(SHARDS_ANNOTATION)
            .and_then(|v| v.parse().ok()),
        request,
    }
}

struct LeaseLoop {
    api: Api<Lease>,
    config: LeaseConfig,
    shards: Arc<Shards>,
    /// Bound of each API call.
    call_limit: Duration,
}

impl LeaseLoop {
    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.lease.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// The lease with this replica's view of the set: labels, shard count, no handover request.
    fn stamp(&self, lease: &mut Lease) {
        let labels = lease.labels_mut();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert(SHARD_SET_LABEL.into(), self.config.lease_name.clone());
        let annotations = lease.annotations_mut();
        annotations.insert(SHARDS_ANNOTATION.into(), self.shards.count().to_string());
        annotations.remove(HANDOVER_TO_ANNOTATION);
        annotations.remove(HANDOVER_AT_ANNOTATION);
    }

    async fn read(&self) -> Result<BTreeMap<u32, Lease>, ShardError> {
        let selector = format!("{SHARD_SET_LABEL}={}", self.config.lease_name);
        let list = call(
            &self.config.lease_name,
            self.call_limit,
            self.api.list(&ListParams::default().labels(&selector)),
        )
        .await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|l| Some((shard_of_lease(&self.config.lease_name, &l.name_any())?, l)))
            .collect())
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, ShardError> {
        let name = lease.name_any();
        call(
            &name,
            self.call_limit,
            self.api.replace(&name, &PostParams::default(), lease),
        )
        .await
    }

    /// One write of a tick.
    async fn perform(&self, step: &Step, current: &BTreeMap<u32, Lease>) -> Result<(), ShardError> {
        let me = self.config.identity.as_str();
        let now = Timestamp::now();
        let at = Instant::now();
        match step {
            Step::Renew(shard) => {
                let Some(mut lease) = current.get(shard).cloned() else {
                    return Ok(());
                };
                self.stamp(&mut lease);
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(me.to_string());
                spec.lease_duration_seconds = Some(self.duration_seconds());
                spec.renew_time = Some(MicroTime(now));
                self.replace(&lease).await?;
                self.granted(*shard, at);
                Ok(())
            }
            Step::Acquire(shard) => {
                let name = lease_name(&self.config.lease_name, *shard);
                let existing = current.get(shard);
                let mut lease = existing.cloned().unwrap_or_else(|| Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                });
                self.stamp(&mut lease);
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let previous = spec.holder_identity.clone().filter(|h| !h.is_empty());
                if previous.as_deref().is_some_and(|p| p != me) {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.holder_identity = Some(me.to_string());
                spec.lease_duration_seconds = Some(self.duration_seconds());
                spec.acquire_time = Some(MicroTime(now));
                spec.renew_time = Some(MicroTime(now));
                if existing.is_some() {
                    self.replace(&lease).await?;
                } else {
                    call(
                        &name,
                        self.call_limit,
                        self.api.create(&PostParams::default(), &lease),
                    )
                    .await?;
                }
                info!(
                    shard,
                    previous = previous.as_deref().unwrap_or(""),
                    "shard lease acquired"
                );
                self.granted(*shard, at);
                Ok(())
            }
            Step::Request(shard) => {
                let Some(mut lease) = current.get(shard).cloned() else {
                    return Ok(());
                };
                let annotations = lease.annotations_mut();
                annotations.insert(HANDOVER_TO_ANNOTATION.into(), me.to_string());
                annotations.insert(HANDOVER_AT_ANNOTATION.into(), now.to_string());
                self.replace(&lease).await?;
                info!(shard, holder = ?lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()), "asked for a shard handover");
                Ok(())
            }
            Step::HandOver { shard, to } => {
                let Some(mut lease) = current.get(shard).cloned() else {
                    return Ok(());
                };
                // Stop acting first, and let running reconciles of the shard finish (bounded, so
                // the other shards' renewals stay within their fence).
                self.shards.revoke(*shard);
                if !self.shards.drained(*shard, self.config.lease / 6).await {
                    warn!(
                        shard,
                        "reconciles of the shard still running at its handover"
                    );
                }
                self.stamp(&mut lease);
                let now = Timestamp::now();
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(to.clone());
                spec.lease_duration_seconds = Some(self.duration_seconds());
                spec.acquire_time = Some(MicroTime(now));
                spec.renew_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                self.replace(&lease).await?;
                info!(shard, to = %to, "shard handed over");
                Ok(())
            }
        }
    }

    fn granted(&self, shard: u32, at: Instant) {
        if self.shards.grant(shard, at) {
            info!(shard, "shard held; reconciling its objects");
        }
    }

    /// One round; returns whether every call succeeded.
    async fn tick(&self) -> bool {
        let current = match self.read().await {
            Ok(current) => current,
            Err(e) => {
                warn!(error = %e, "cannot read the shard leases");
                return false;
            }
        };
        let observed: BTreeMap<u32, Observed> =
            current.iter().map(|(s, l)| (*s, observe(l))).collect();
        let me = self.config.identity.as_str();
        let now = Timestamp::now();
        // Held locally but another replica holds it now: stop at once.
        for shard in self.shards.held() {
            let holder = observed.get(&shard).and_then(|o| o.live_holder(now));
            if holder.is_some_and(|h| h != me) && self.shards.revoke(shard) {
                warn!(shard, holder = ?holder, "shard lease held by another replica; stopped");
            }
        }
        let steps = plan(&observed, me, self.shards.count(), self.config.lease, now);
        // Handovers last: each waits for the shard's running reconciles, which must not delay
        // the renewals of the shards kept.
        let (handovers, writes): (Vec<&Step>, Vec<&Step>) = steps
            .iter()
            .partition(|step| matches!(step, Step::HandOver { .. }));
        let mut ok = true;
        for step in writes.into_iter().chain(handovers) {
            if let Err(e) = self.perform(step, &current).await {
                ok = false;
                if e.is_conflict() {
                    debug!(?step, "shard lease changed meanwhile; reading again");
                } else {
                    warn!(?step, error = %e, "shard lease write failed");
                }
            }
        }
        crate::metrics::metrics()
            .shards_held
            .set(i64::try_from(self.shards.held().len()).unwrap_or(i64::MAX));
        ok
    }

    /// Clears holderIdentity of every shard lease this replica holds (graceful stop).
    async fn release(&self) {
        for shard in 0..self.shards.count() {
            self.shards.revoke(shard);
        }
        crate::metrics::metrics().shards_held.set(0);
        let current = match self.read().await {
            Ok(current) => current,
            Err(e) => {
                warn!(error = %e, "cannot read the shard leases to release them");
                return;
            }
        };
        for (shard, mut lease) in current {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                continue;
            }
            spec.holder_identity = None;
            match self.replace(&lease).await {
                Ok(_) => info!(shard, "shard lease released"),
                Err(e) => warn!(shard, error = %e, "could not release the shard lease"),
            }
        }
    }
}

/// Holds shard leases until `stop` turns true, then releases them. Takes shards only once the
/// caches are filled ([`Shards::wait_synced`]): a replica that cannot reconcile yet must not
/// keep shards from one that can.
pub async fn run_leases(
    client: Client,
    config: LeaseConfig,
    shards: Arc<Shards>,
    mut stop: watch::Receiver<bool>,
) {
    let tick = (config.lease / 3).max(Duration::from_millis(200));
    let looper = LeaseLoop {
        api: Api::namespaced(client, &config.namespace),
        call_limit: tick,
        config,
        shards,
    };
    tokio::select! {
        () = looper.shards.wait_synced() => {},
        _ = stop.wait_for(|stop| *stop) => return,
    }
    info!(
        identity = %looper.config.identity,
        shards = looper.shards.count(),
        leases = %looper.config.lease_name,
        "caches synced; taking shard leases"
    );
    loop {
        // After a failure (e.g. a conflict with a handover request) try again soon, so one
        // lost renewal does not run into the fence.
        let wait = if looper.tick().await {
            tick
        } else {
            tick.min(Duration::from_secs(1))
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    looper.release().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(6);

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("timestamp")
    }

    fn secs(t: Timestamp, s: i64) -> Timestamp {
        Timestamp::from_millisecond(t.as_millisecond() + s * 1000).expect("in range")
    }

    fn held(holder: &str, renewed: Timestamp) -> Observed {
        Observed {
            holder: Some(holder.into()),
            renewed: Some(renewed),
            duration: LEASE,
            shards: None,
            request: None,
        }
    }

    /// Lease writes of several replicas against one table, with optimistic concurrency: a step
    /// planned on a version that changed meanwhile fails, as a 409 would.
    #[derive(Default)]
    struct Cluster {
        leases: BTreeMap<u32, (u64, Observed)>,
        now: Timestamp,
    }

    impl Cluster {
        fn new() -> Self {
            Self {
                leases: BTreeMap::new(),
                now: t0(),
            }
        }

        fn view(&self) -> BTreeMap<u32, Observed> {
            self.leases
                .iter()
                .map(|(s, (_, o))| (*s, o.clone()))
                .collect()
        }

        fn versions(&self) -> BTreeMap<u32, u64> {
            self.leases.iter().map(|(s, (v, _))| (*s, *v)).collect()
        }

        /// Applies a replica's steps planned on `versions`.
        fn apply(&mut self, me: &str, shards: u32, steps: &[Step], versions: &BTreeMap<u32, u64>) {
            for step in steps {
                let shard = match step {
                    Step::Renew(s) | Step::Acquire(s) | Step::Request(s) => *s,
                    Step::HandOver { shard, .. } => *shard,
                };
                let current = self.leases.get(&shard).map(|(v, _)| *v);
                if current != versions.get(&shard).copied() {
                    continue; // conflict
                }
                let mut lease = self
                    .leases
                    .get(&shard)
                    .map(|(_, o)| o.clone())
                    .unwrap_or_default();
                match step {
                    Step::Renew(_) | Step::Acquire(_) => {
                        lease.holder = Some(me.into());
                        lease.renewed = Some(self.now);
                        lease.duration = LEASE;
                        lease.shards = Some(shards);
                        lease.request = None;
                    }
                    Step::Request(_) => lease.request = Some((me.into(), self.now)),
                    Step::HandOver { to, .. } => {
                        lease.holder = Some(to.clone());
                        lease.renewed = Some(self.now);
                        lease.request = None;
                    }
                }
                self.leases.insert(shard, (current.unwrap_or(0) + 1, lease));
            }
        }

        /// One tick of each replica, in order, each on a fresh read; then time moves on.
        fn round(&mut self, replicas: &[&str], shards: u32) {
            for me in replicas {
                let versions = self.versions();
                let steps = plan(&self.view(), me, shards, LEASE, self.now);
                self.apply(me, shards, &steps, &versions);
            }
            self.now = secs(self.now, 2);
        }

        /// Every replica plans on the same read, then they write: a simultaneous tick. Who
        /// writes first alternates (a holder's renewal and a request on the same lease
        /// conflict; which one loses varies with timing).
        fn simultaneous_round(&mut self, replicas: &[&str], shards: u32, round: usize) {
            let (view, versions) = (self.view(), self.versions());
            let mut planned: Vec<(&str, Vec<Step>)> = replicas
                .iter()
                .map(|me| (*me, plan(&view, me, shards, LEASE, self.now)))
                .collect();
            if round % 2 == 1 {
                planned.reverse();
            }
            for (me, steps) in planned {
                self.apply(me, shards, &steps, &versions);
            }
            self.now = secs(self.now, 2);
        }

        fn count(&self, me: &str) -> usize {
            self.leases
                .values()
                .filter(|(_, o)| o.live_holder(self.now) == Some(me))
                .count()
        }
    }

    #[test]
    fn shard_of_is_stable_fnv1a_and_in_range() {
        // FNV-1a 64 of "" is the offset basis; of "a" a known value.
        assert_eq!(shard_of("", 1), 0);
        assert_eq!(
            shard_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8c_u64 % u64::from(u32::MAX)) as u32
        );
        for ns in ["default", "ml-team", "optest-1234abcd"] {
            assert_eq!(shard_of(ns, 7), shard_of(ns, 7));
            assert!(shard_of(ns, 7) < 7);
        }
        let spread: std::collections::BTreeSet<u32> =
            (0..64).map(|i| shard_of(&format!("ns-{i}"), 4)).collect();
        assert_eq!(spread.len(), 4, "64 namespaces reach every one of 4 shards");
        assert_eq!(shard_of_lease("mce", "mce-shard-3"), Some(3));
        assert_eq!(shard_of_lease("mce", "mce-leader"), None);
        assert_eq!(lease_name("mce", 2), "mce-shard-2");
    }

    #[test]
    fn a_fresh_start_takes_every_free_shard() {
        let steps = plan(&BTreeMap::new(), "a", 3, LEASE, t0());
        assert_eq!(
            steps,
            vec![Step::Acquire(0), Step::Acquire(1), Step::Acquire(2)]
        );
        // Released leases (no holder) are free too.
        let released = BTreeMap::from([(
            0,
            Observed {
                holder: None,
                ..held("x", t0())
            },
        )]);
        assert_eq!(plan(&released, "a", 1, LEASE, t0()), vec![Step::Acquire(0)]);
    }

    #[test]
    fn two_replicas_converge_to_an_even_split() {
        for (shards, each) in [(2, 1), (4, 2)] {
            // One starts first and takes everything; the other arrives.
            let mut cluster = Cluster::new();
            cluster.round(&["a"], shards);
            assert_eq!(cluster.count("a"), shards as usize);
            for _ in 0..8 {
                cluster.round(&["a", "b"], shards);
            }
            assert_eq!((cluster.count("a"), cluster.count("b")), (each, each));
            // And stays so.
            for _ in 0..5 {
                cluster.round(&["b", "a"], shards);
                assert_eq!((cluster.count("a"), cluster.count("b")), (each, each));
            }

            // Both start at once and race for every lease.
            let mut cluster = Cluster::new();
            for round in 0..8 {
                cluster.simultaneous_round(&["a", "b"], shards, round);
            }
            assert_eq!((cluster.count("a"), cluster.count("b")), (each, each));
        }
        // Three replicas, four shards: 2+1+1 in some order.
        let mut cluster = Cluster::new();
        cluster.round(&["a"], 4);
        for _ in 0..10 {
            cluster.round(&["a", "b", "c"], 4);
        }
        let mut counts = [cluster.count("a"), cluster.count("b"), cluster.count("c")];
        counts.sort_unstable();
        assert_eq!(counts, [1, 1, 2]);
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        let now = t0();
        let leases = BTreeMap::from([(0, held("a", secs(now, -7))), (1, held("b", now))]);
        assert_eq!(
            plan(&leases, "b", 2, LEASE, now),
            vec![Step::Renew(1), Step::Acquire(0)]
        );
        // Not before it expires.
        let leases = BTreeMap::from([(0, held("a", secs(now, -5))), (1, held("b", now))]);
        assert_eq!(plan(&leases, "b", 2, LEASE, now), vec![Step::Renew(1)]);
        // A dead replica's shards go to the survivor in the simulation too.
        let mut cluster = Cluster::new();
        cluster.round(&["a"], 2);
        for _ in 0..6 {
            cluster.round(&["a", "b"], 2);
        }
        assert_eq!(cluster.count("b"), 1);
        for _ in 0..6 {
            cluster.round(&["b"], 2);
        }
        assert_eq!((cluster.count("a"), cluster.count("b")), (0, 2));
    }

    #[test]
    fn a_handover_is_honoured_only_above_the_requester_plus_one() {
        let now = t0();
        let asked = |holder: &str| Observed {
            request: Some(("b".into(), now)),
            ..held(holder, now)
        };
        // a holds 2, b holds 0: 2 > 0 + 1.
        let leases = BTreeMap::from([(0, asked("a")), (1, held("a", now))]);
        assert_eq!(
            plan(&leases, "a", 2, LEASE, now),
            vec![
                Step::HandOver {
                    shard: 0,
                    to: "b".into()
                },
                Step::Renew(1)
            ]
        );
        // a holds 1, b holds 1: declined (renewed, which clears the request).
        let leases = BTreeMap::from([(0, asked("a")), (1, held("b", now))]);
        assert_eq!(plan(&leases, "a", 2, LEASE, now), vec![Step::Renew(0)]);
        // a holds 2, b holds 1 of 3: 2 > 2 is false.
        let leases = BTreeMap::from([(0, asked("a")), (1, held("a", now)), (2, held("b", now))]);
        assert_eq!(
            plan(&leases, "a", 3, LEASE, now),
            vec![Step::Renew(0), Step::Renew(1)]
        );
        // A stale request (older than the lease) is ignored: its requester may be gone.
        let stale = Observed {
            request: Some(("b".into(), secs(now, -7))),
            ..held("a", now)
        };
        let leases = BTreeMap::from([(0, stale), (1, held("a", now))]);
        assert_eq!(
            plan(&leases, "a", 2, LEASE, now),
            vec![Step::Renew(0), Step::Renew(1)]
        );
    }

    #[test]
    fn a_replica_below_its_share_asks_the_most_loaded_holder_once() {
        let now = t0();
        let leases = BTreeMap::from([
            (0, held("a", now)),
            (1, held("a", now)),
            (2, held("a", now)),
            (3, held("c", now)),
        ]);
        // b: 0 < floor(4 / 3) = 1; a holds 3 > 0 + 1.
        assert_eq!(plan(&leases, "b", 4, LEASE, now), vec![Step::Request(0)]);
        // With its request pending it waits.
        let mut pending = leases.clone();
        pending.insert(
            0,
            Observed {
                request: Some(("b".into(), now)),
                ..held("a", now)
            },
        );
        assert_eq!(plan(&pending, "b", 4, LEASE, now), vec![]);
        // Another replica's pending request makes it pick another lease of that holder.
        let mut other = leases.clone();
        other.insert(
            0,
            Observed {
                request: Some(("d".into(), now)),
                ..held("a", now)
            },
        );
        assert_eq!(plan(&other, "b", 4, LEASE, now), vec![Step::Request(1)]);
        // More replicas than shards: the extra one stands by.
        let two = BTreeMap::from([(0, held("a", now)), (1, held("c", now))]);
        assert_eq!(plan(&two, "b", 2, LEASE, now), vec![]);
    }

    #[test]
    fn replicas_with_another_shard_count_block_taking_shards() {
        let now = t0();
        let old = Observed {
            shards: Some(2),
            ..held("old", now)
        };
        let leases = BTreeMap::from([(0, old), (2, held("a", secs(now, -60)))]);
        // Shard 1 and 2 are free, but a live lease of a 2-shard replica is there.
        assert_eq!(plan(&leases, "new", 3, LEASE, now), vec![]);
    }

    #[test]
    fn fencing_drops_a_shard_not_renewed_for_two_thirds_of_the_lease() {
        let shards = Arc::new(Shards::new(2, LEASE));
        let ns0 = (0..100)
            .map(|i| format!("ns-{i}"))
            .find(|ns| shard_of(ns, 2) == 0)
            .expect("a namespace of shard 0");
        assert!(!shards.owns(Some(&ns0)), "nothing held before a renewal");
        // Renewed 3 s ago (< 4 s): held; its objects and cluster-scoped ones are reconciled.
        assert!(shards.grant(0, Instant::now() - Duration::from_secs(3)));
        assert!(shards.owns(Some(&ns0)));
        assert!(shards.owns(None));
        assert!(shards.enter(Some(&ns0)).is_some());
        // Renewed 5 s ago (> 4 s): dropped locally although the lease (6 s) has not expired.
        let shards = Arc::new(Shards::new(2, LEASE));
        assert!(!shards.grant(0, Instant::now() - Duration::from_secs(5)));
        assert!(!shards.owns(Some(&ns0)));
        assert!(shards.enter(Some(&ns0)).is_none());
        assert_eq!(shards.held(), Vec::<u32>::new());
        // Not sharded: everything, always.
        let all = Arc::new(Shards::default());
        assert!(all.owns(Some("any")) && all.owns(None));
        assert!(all.enter(Some("any")).is_some());
    }

    #[tokio::test]
    async fn a_gain_is_signalled_and_a_handover_waits_for_running_reconciles() {
        use futures::StreamExt;
        let shards = Arc::new(Shards::new(2, LEASE));
        let mut gains = Box::pin(shards.gains());
        assert!(shards.grant(1, Instant::now()));
        tokio::time::timeout(Duration::from_secs(1), gains.next())
            .await
            .expect("a gain is signalled")
            .expect("stream open");
        // A renewal of a held shard is no gain.
        assert!(!shards.grant(1, Instant::now()));

        let ns1 = (0..100)
            .map(|i| format!("ns-{i}"))
            .find(|ns| shard_of(ns, 2) == 1)
            .expect("a namespace of shard 1");
        let work = shards.enter(Some(&ns1)).expect("held");
        assert!(shards.revoke(1));
        assert!(shards.enter(Some(&ns1)).is_none(), "no new reconcile");
        assert!(!shards.drained(1, Duration::from_millis(50)).await);
        drop(work);
        assert!(shards.drained(1, Duration::from_millis(50)).await);
        // The gate: not held, nothing runs.
        let ran = std::sync::atomic::AtomicBool::new(false);
        let result: Result<Action, ()> = gated(shards.enter(Some(&ns1)), async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(Action::requeue(Duration::from_secs(1)))
        })
        .await;
        assert_eq!(result, Ok(Action::await_change()));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}
