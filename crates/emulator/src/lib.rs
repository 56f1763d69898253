//! Local emulator of the cloud APIs, for tests, benchmarks and the demo.
//!
//! It serves, on one loopback port, the Alibaba Cloud ECS (2014-05-26) and VPC (2016-04-28) RPC
//! APIs (ACS3-HMAC-SHA256 and V2 HMAC-SHA1 signatures, [`aliyun`]) and the Tencent Cloud API 3.0
//! CVM, VPC (2017-03-12), Tag and STS (2018-08-13) APIs (TC3-HMAC-SHA256, [`tencent`]) and the
//! AWS EC2 Query API (2016-11-15) with the Price List Query API's `GetProducts` (AWS Signature
//! Version 4, [`aws`]), routed by signature scheme, and keeps every resource in memory
//! ([`model`]). The model is
//! provider-neutral; each front end works in its own realm of it, so one cloud's clients never
//! see the other's resources.
//!
//! Inspection and administration endpoints live under `/_emulator/` (a path the clouds never
//! use): `GET /_emulator/resources`, `GET|PUT /_emulator/faults`, `GET|PUT /_emulator/stock`,
//! `GET|PUT /_emulator/quotas`, `GET|PUT /_emulator/prices`, `GET /_emulator/calls` (with `?log=1` the last calls' redacted
//! parameters), `POST /_emulator/reset`, access policies (`GET /_emulator/policies`,
//! `PUT|DELETE /_emulator/policies/<access-key-id>`, see [`policy`]) and access keys
//! (`PUT|DELETE /_emulator/credentials/<access-key-id>` with `{"secret": ...}`), and out-of-band changes as another console user would
//! make them: `POST /_emulator/oob/stop-instance?id=`, `/oob/start-instance?id=`,
//! `/oob/delete?kind=instance|eip|security-group|subnet|vpc&id=`, `/oob/detach-eip?id=`,
//! `/oob/revoke-rule?group=&port=`. The same operations are available in Rust through
//! [`EmulatorHandle::state`]. Faults ([`model::Faults`]) include read lag and lost responses.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mce_emulator::{start, EmulatorConfig};
//! let emulator = start(EmulatorConfig::default()).await?;
//! println!("endpoint {}", emulator.endpoint());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

pub mod aliyun;
pub mod aws;
pub mod model;
pub mod policy;
pub mod tencent;
mod verify;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use serde::Serialize;

use model::{Faults, Model, ModelSettings, PriceTable, Quotas, StockEntry};

/// Default credentials of [`EmulatorConfig::default`].
pub const DEFAULT_ACCESS_KEY_ID: &str = "emulator-access-key-id";
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "emulator-access-key-secret";

/// Command-line arguments of `multicloud-ecs-emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Access key id accepted by the emulator.
    #[arg(long, env = "MCE_EMULATOR_ACCESS_KEY_ID", default_value = DEFAULT_ACCESS_KEY_ID)]
    pub access_key_id: String,
    /// Access key secret accepted by the emulator.
    #[arg(long, env = "MCE_EMULATOR_ACCESS_KEY_SECRET", default_value = DEFAULT_ACCESS_KEY_SECRET, hide_env_values = true)]
    pub access_key_secret: String,
    /// Time from RunInstances to Running, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub boot_delay_ms: u64,
    /// Quotas as JSON, e.g. `{"vpcs":2,"instances":10,"eips":5}` (missing fields keep defaults).
    #[arg(long)]
    pub quotas: Option<String>,
    /// Limited stock, repeatable: `INSTANCE_TYPE@ZONE=COUNT` (default: unlimited).
    #[arg(long = "stock")]
    pub stock: Vec<String>,
    /// Price changes as JSON, applied as `PUT /_emulator/prices` applies them, e.g.
    /// `{"instanceHourly":{"GT4.4XLARGE96":20.5}}`.
    #[arg(long)]
    pub prices: Option<String>,
    /// Fraction of calls answered with `Throttling.User`.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Fraction of calls answered with HTTP 500 `InternalError`.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Latency added to every call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Time during which new resources and tags are invisible to reads, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub read_lag_ms: u64,
    /// Fraction of successful calls carried out whose answer is lost (HTTP 504).
    #[arg(long, default_value_t = 0.0)]
    pub lost_response_rate: f64,
    /// Actions whose answers may be lost, comma separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub lost_response_actions: Vec<String>,
    /// Time an asynchronous task (Tencent EIP calls) takes, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub task_delay_ms: u64,
    /// A RAM, CAM or IAM policy document attached to an access key, repeatable: `KEY=PATH` (as
    /// `PUT /_emulator/policies/KEY` does; a key without a policy may call everything).
    #[arg(long = "policy-file")]
    pub policy_files: Vec<String>,
    /// Another accepted access key pair, repeatable: `ID:SECRET`.
    #[arg(long = "extra-access-key", hide_env_values = true)]
    pub extra_access_keys: Vec<String>,
}

/// Configuration of an in-process emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Accepted (access key id, secret) pairs.
    pub credentials: Vec<(String, String)>,
    /// Time from creation to `Running` (half `Pending`, half `Starting`).
    pub boot_delay: Duration,
    pub quotas: Quotas,
    /// Limited stock per instance type and zone; anything not listed is unlimited.
    pub stock: Vec<StockEntry>,
    pub faults: Faults,
    pub prices: PriceTable,
    /// Known regions; empty accepts any.
    pub regions: Vec<String>,
    /// Zones per region of the realms without zones of their own (the Alibaba front end's):
    /// where listed instance types are offered.
    pub zones: BTreeMap<String, Vec<String>>,
    /// Accepted clock skew of signed requests.
    pub max_clock_skew: Duration,
    /// Most signature nonces remembered (oldest forgotten first).
    pub nonce_capacity: usize,
    /// Time an asynchronous task takes (Tencent EIP calls: RUNNING, and the address in a
    /// transitional state, until then).
    pub task_delay: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let settings = ModelSettings::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: vec![(
                DEFAULT_ACCESS_KEY_ID.into(),
                DEFAULT_ACCESS_KEY_SECRET.into(),
            )],
            boot_delay: settings.boot_delay,
            quotas: settings.quotas,
            stock: Vec::new(),
            faults: Faults::default(),
            prices: settings.prices,
            regions: settings.regions,
            zones: settings.zones,
            max_clock_skew: Duration::from_secs(15 * 60),
            nonce_capacity: 1_000_000,
            task_delay: Duration::from_millis(300),
        }
    }
}

impl EmulatorConfig {
    fn model_settings(&self) -> ModelSettings {
        ModelSettings {
            boot_delay: self.boot_delay,
            quotas: self.quotas.clone(),
            stock: stock_map(&self.stock, HashMap::new()),
            prices: self.prices.clone(),
            regions: self.regions.clone(),
            zones: self.zones.clone(),
        }
    }
}

fn stock_map(
    entries: &[StockEntry],
    mut map: HashMap<(String, String), u32>,
) -> HashMap<(String, String), u32> {
    for e in entries {
        let key = (e.instance_type.clone(), e.zone.clone());
        match e.available {
            Some(n) => {
                map.insert(key, n);
            }
            None => {
                map.remove(&key);
            }
        }
    }
    map
}

/// Remembers signature nonces for the accepted clock-skew window, bounded in size.
struct NonceCache {
    seen: HashSet<String>,
    order: VecDeque<(Instant, String)>,
    ttl: Duration,
    capacity: usize,
}

impl NonceCache {
    /// False when the nonce was already used.
    fn insert(&mut self, nonce: &str, now: Instant) -> bool {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= self.ttl && self.order.len() < self.capacity {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(nonce) {
            return false;
        }
        self.seen.insert(nonce.to_string());
        self.order.push_back((now, nonce.to_string()));
        true
    }
}

/// Counts of cloud calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallStats {
    /// Authenticated calls per action (including those answered with an error).
    pub by_action: BTreeMap<String, u64>,
    /// Errors per code (including authentication failures).
    pub errors: BTreeMap<String, u64>,
    pub total: u64,
}

/// Most calls [`EmulatorState::call_log`] remembers (oldest forgotten first).
pub const CALL_LOG_CAPACITY: usize = 10_000;

/// One authenticated call as received, secrets redacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// Position among all calls since start (or reset), from 1.
    pub seq: u64,
    pub action: String,
    pub params: BTreeMap<String, String>,
    /// Error code answered, if any.
    pub error: Option<String>,
    /// Carried out, but answered as failed (see [`Faults::lost_response_rate`]).
    pub lost: bool,
}

/// What a secret parameter's value is replaced with in the call log.
pub const REDACTED: &str = "***";

/// Whether a parameter holds a secret (passwords, secret keys, signatures, session tokens).
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "signature",
        "securitytoken",
        "privatekey",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// An error of an administration operation.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unknown resource kind {0:?} (instance, eip, security-group, subnet, vpc)")]
    UnknownKind(String),
    #[error("the parameter {0} is required")]
    Missing(String),
    #[error("invalid {0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] model::ModelError),
}

/// A resource kind by its administration name.
pub fn parse_kind(name: &str) -> Result<model::Kind, AdminError> {
    match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "instance" => Ok(model::Kind::Instance),
        "eip" => Ok(model::Kind::Eip),
        "securitygroup" => Ok(model::Kind::SecurityGroup),
        "subnet" | "vswitch" => Ok(model::Kind::Subnet),
        "vpc" => Ok(model::Kind::Vpc),
        _ => Err(AdminError::UnknownKind(name.to_string())),
    }
}

/// The emulator's shared state: the model, faults, credentials, nonces and call counts.
pub struct EmulatorState {
    model: RwLock<Model>,
    faults: RwLock<Faults>,
    initial_faults: Faults,
    /// Accepted key pairs; changed at run time by `PUT /_emulator/credentials/<id>`.
    credentials: RwLock<HashMap<String, String>>,
    /// Policies attached to access keys (see [`policy`]).
    policies: RwLock<policy::Policies>,
    nonces: Mutex<NonceCache>,
    calls: Mutex<CallStats>,
    log: Mutex<VecDeque<CallRecord>>,
    max_clock_skew: Duration,
    /// The Tencent front end's own state (always locked after the model).
    tencent: Mutex<tencent::FrontState>,
    /// The AWS front end's own state (always locked after the model).
    aws: Mutex<aws::FrontState>,
    task_delay: Duration,
}

impl EmulatorState {
    pub fn new(config: &EmulatorConfig) -> Self {
        let mut model = Model::new(config.model_settings());
        model.read_lag = config.faults.read_lag();
        Self {
            model: RwLock::new(model),
            faults: RwLock::new(config.faults.clone()),
            initial_faults: config.faults.clone(),
            credentials: RwLock::new(config.credentials.iter().cloned().collect()),
            policies: RwLock::new(policy::Policies::default()),
            nonces: Mutex::new(NonceCache {
                seen: HashSet::new(),
                order: VecDeque::new(),
                ttl: config.max_clock_skew * 2,
                capacity: config.nonce_capacity.max(1),
            }),
            calls: Mutex::new(CallStats::default()),
            log: Mutex::new(VecDeque::new()),
            max_clock_skew: config.max_clock_skew,
            tencent: Mutex::new(tencent::FrontState::default()),
            aws: Mutex::new(aws::FrontState::default()),
            task_delay: config.task_delay,
        }
    }

    /// The AWS front end's state; lock the model first when holding both.
    pub(crate) fn aws(&self) -> MutexGuard<'_, aws::FrontState> {
        self.aws.lock()
    }

    /// The Tencent front end's state; lock the model first when holding both.
    pub(crate) fn tencent(&self) -> MutexGuard<'_, tencent::FrontState> {
        self.tencent.lock()
    }

    pub(crate) fn task_delay(&self) -> Duration {
        self.task_delay
    }

    /// A read guard of the model, for reads that also need a front end's state.
    pub(crate) fn model_read(&self) -> RwLockReadGuard<'_, Model> {
        self.model.read()
    }

    pub(crate) fn secret_of(&self, access_key_id: &str) -> Option<String> {
        self.credentials.read().get(access_key_id).cloned()
    }

    /// Accepts (or replaces the secret of) an access key pair from now on, as a console user
    /// creating a key would.
    pub fn add_access_key(&self, access_key_id: &str, secret: &str) {
        self.credentials
            .write()
            .insert(access_key_id.to_string(), secret.to_string());
    }

    /// Stops accepting an access key (disabled or deleted in the console).
    pub fn remove_access_key(&self, access_key_id: &str) {
        self.credentials.write().remove(access_key_id);
    }

    pub(crate) fn max_clock_skew(&self) -> Duration {
        self.max_clock_skew
    }

    /// False when the nonce was already used within the skew window.
    pub(crate) fn use_nonce(&self, nonce: &str) -> bool {
        self.nonces.lock().insert(nonce, Instant::now())
    }

    /// Counts one authenticated call (public so in-process drivers over the model count too).
    pub fn count_call(&self, action: &str) {
        let mut calls = self.calls.lock();
        calls.total += 1;
        if let Some(n) = calls.by_action.get_mut(action) {
            *n += 1;
        } else {
            calls.by_action.insert(action.to_string(), 1);
        }
    }

    /// Counts one error answer by code (public for in-process drivers, as [`Self::count_call`]).
    pub fn count_error(&self, code: &str) {
        let mut calls = self.calls.lock();
        if let Some(n) = calls.errors.get_mut(code) {
            *n += 1;
        } else {
            calls.errors.insert(code.to_string(), 1);
        }
    }

    /// Appends a call to the log (public for in-process drivers, as [`Self::count_call`]).
    /// Secret parameters are redacted here, so nothing secret is ever held.
    pub fn log_call<'a>(
        &self,
        action: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        error: Option<&str>,
        lost: bool,
    ) {
        let params = params
            .into_iter()
            .map(|(k, v)| {
                let v = if is_secret(k) { REDACTED } else { v };
                (k.to_string(), v.to_string())
            })
            .collect();
        let mut log = self.log.lock();
        let seq = log.back().map_or(1, |r| r.seq + 1);
        if log.len() >= CALL_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(CallRecord {
            seq,
            action: action.to_string(),
            params,
            error: error.map(String::from),
            lost,
        });
    }

    /// The last [`CALL_LOG_CAPACITY`] calls, oldest first.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.log.lock().iter().cloned().collect()
    }

    // ---- Out-of-band changes, as another console user would make them ----

    /// Stops a Running instance.
    pub fn oob_stop_instance(&self, id: &str) -> Result<(), AdminError> {
        let mut m = self.model.write();
        let region = m.region_of(model::Kind::Instance, id)?;
        Ok(m.stop_instance(&region, id, Instant::now())?)
    }

    /// Starts a Stopped instance.
    pub fn oob_start_instance(&self, id: &str) -> Result<(), AdminError> {
        let mut m = self.model.write();
        let region = m.region_of(model::Kind::Instance, id)?;
        Ok(m.start_instance(&region, id, Instant::now())?)
    }

    /// Deletes a resource under the cloud's dependency rules; an instance goes whatever its
    /// state (a forced delete).
    pub fn oob_delete(&self, kind: model::Kind, id: &str) -> Result<(), AdminError> {
        let mut m = self.model.write();
        let region = m.region_of(kind, id)?;
        match kind {
            model::Kind::Instance => {
                m.delete_instances(&region, &[id.to_string()], true, Instant::now())?;
                self.tencent.lock().forget_instance(id);
                self.aws.lock().forget_instance(id);
            }
            model::Kind::Eip => m.release_eip(&region, id)?,
            model::Kind::SecurityGroup => m.delete_security_group(&region, id)?,
            model::Kind::Subnet => m.delete_subnet(&region, id)?,
            model::Kind::Vpc => m.delete_vpc(&region, id)?,
            model::Kind::SecurityGroupRule => {
                return Err(AdminError::UnknownKind("SecurityGroupRule".into()));
            }
        }
        Ok(())
    }

    /// Detaches an EIP from its instance.
    pub fn oob_detach_eip(&self, id: &str) -> Result<(), AdminError> {
        let mut m = self.model.write();
        let region = m.region_of(model::Kind::Eip, id)?;
        Ok(m.unassociate_eip(&region, id, None)?)
    }

    /// Revokes every ingress rule of a security group that opens exactly `port`; returns how
    /// many went.
    pub fn oob_revoke_rule(&self, group: &str, port: u16) -> Result<usize, AdminError> {
        let mut m = self.model.write();
        let region = m.region_of(model::Kind::SecurityGroup, group)?;
        let range = format!("{port}/{port}");
        let rule_ids: Vec<String> = m
            .get_security_group(group, &region)?
            .rules
            .iter()
            .filter(|r| r.port_range == range)
            .map(|r| r.id.clone())
            .collect();
        Ok(m.revoke(&region, group, &[], &rule_ids)?)
    }

    /// Reads the model.
    pub fn with_model<T>(&self, f: impl FnOnce(&Model) -> T) -> T {
        f(&self.model.read())
    }

    /// Changes the model.
    pub fn with_model_mut<T>(&self, f: impl FnOnce(&mut Model) -> T) -> T {
        f(&mut self.model.write())
    }

    pub fn faults(&self) -> Faults {
        self.faults.read().clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.model.write().read_lag = faults.read_lag();
        *self.faults.write() = faults;
    }

    pub fn quotas(&self) -> Quotas {
        self.model.read().quotas.clone()
    }

    pub fn set_quotas(&self, quotas: Quotas) {
        self.model.write().quotas = quotas;
    }

    pub fn stock(&self) -> Vec<StockEntry> {
        model::stock_list(&self.model.read().stock)
    }

    /// Sets (or, with `available: None`, removes) stock entries.
    pub fn set_stock(&self, entries: &[StockEntry]) {
        let mut m = self.model.write();
        let current = std::mem::take(&mut m.stock);
        m.stock = stock_map(entries, current);
    }

    pub fn prices(&self) -> PriceTable {
        self.model.read().prices.clone()
    }

    /// Replaces the price table (a reset restores the configured one).
    pub fn set_prices(&self, prices: PriceTable) {
        self.model.write().prices = prices;
    }

    /// Every resource held, with counts; `aws` lists the AWS front end's own resources
    /// (internet gateways, key pairs).
    pub fn resources(&self) -> serde_json::Value {
        let model = self.model.read();
        let mut snapshot = model.snapshot(Instant::now());
        if let Some(obj) = snapshot.as_object_mut() {
            obj.insert("aws".into(), self.aws.lock().snapshot());
        }
        snapshot
    }

    /// Number of resources held (VPCs, subnets, security groups, instances, EIPs).
    pub fn resource_count(&self) -> usize {
        self.model.read().resource_count()
    }

    pub fn calls(&self) -> CallStats {
        self.calls.lock().clone()
    }

    /// Drops every resource, token and count; restores quotas, stock, prices and faults of the
    /// config.
    pub fn reset(&self) {
        let mut model = self.model.write();
        model.reset();
        *self.tencent.lock() = tencent::FrontState::default();
        *self.aws.lock() = aws::FrontState::default();
        drop(model);
        self.set_faults(self.initial_faults.clone());
        *self.calls.lock() = CallStats::default();
        self.log.lock().clear();
    }
}

/// A running emulator. Dropping it stops the server.
pub struct EmulatorHandle {
    addr: SocketAddr,
    state: Arc<EmulatorState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as the SDKs take it.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The HTTP application: cloud calls on `/`, administration under `/_emulator/`.
pub fn router(state: Arc<EmulatorState>) -> Router {
    Router::new()
        .route("/_emulator/resources", get(admin_resources))
        .route("/_emulator/faults", get(admin_faults).put(admin_set_faults))
        .route("/_emulator/quotas", get(admin_quotas).put(admin_set_quotas))
        .route("/_emulator/stock", get(admin_stock).put(admin_set_stock))
        .route("/_emulator/prices", get(admin_prices).put(admin_set_prices))
        .route("/_emulator/calls", get(admin_calls))
        .route("/_emulator/oob/stop-instance", post(oob_stop_instance))
        .route("/_emulator/oob/start-instance", post(oob_start_instance))
        .route("/_emulator/oob/delete", post(oob_delete))
        .route("/_emulator/oob/detach-eip", post(oob_detach_eip))
        .route("/_emulator/oob/revoke-rule", post(oob_revoke_rule))
        .route("/_emulator/reset", post(admin_reset))
        .route("/_emulator/policies", get(admin_policies))
        .route(
            "/_emulator/policies/{key}",
            axum::routing::put(admin_attach_policy).delete(admin_detach_policies),
        )
        .route(
            "/_emulator/credentials/{key}",
            axum::routing::put(admin_add_key).delete(admin_remove_key),
        )
        .fallback(cloud_call)
        .with_state(state)
}

/// Routes a cloud call by its signature scheme: TC3 (Tencent Cloud), AWS4-HMAC-SHA256 (AWS) or
/// else Alibaba Cloud.
async fn cloud_call(
    state: State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if tencent::is_tencent_request(&headers) {
        tencent::handle(state, method, uri, headers, body).await
    } else if aws::is_aws_request(&headers) {
        aws::handle(state, method, uri, headers, body).await
    } else {
        aliyun::handle(state, method, uri, headers, body).await
    }
}

/// Starts an emulator on `config.listen` in the current tokio runtime.
pub async fn start(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(EmulatorState::new(&config));
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "emulator server failed");
        }
    });
    Ok(EmulatorHandle {
        addr,
        state,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// `KEY=PATH` of `--policy-file`: the key and the parsed document (checked when attached).
fn parse_policy_arg(arg: &str) -> Result<(String, serde_json::Value), String> {
    let (key, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("--policy-file {arg}: expected KEY=PATH"))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("--policy-file {path}: {e}"))?;
    let document = serde_json::from_str(&text).map_err(|e| format!("--policy-file {path}: {e}"))?;
    Ok((key.to_string(), document))
}

fn parse_stock_arg(arg: &str) -> Result<StockEntry, String> {
    let (what, count) = arg
        .split_once('=')
        .ok_or_else(|| format!("--stock {arg}: expected TYPE@ZONE=COUNT"))?;
    let (instance_type, zone) = what
        .split_once('@')
        .ok_or_else(|| format!("--stock {arg}: expected TYPE@ZONE=COUNT"))?;
    let available = count
        .parse::<u32>()
        .map_err(|e| format!("--stock {arg}: {e}"))?;
    Ok(StockEntry {
        instance_type: instance_type.into(),
        zone: zone.into(),
        available: Some(available),
    })
}

/// Serves the emulator until interrupted.
pub async fn run(args: EmulatorArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = EmulatorConfig {
        listen: args.listen,
        credentials: vec![(args.access_key_id.clone(), args.access_key_secret)],
        boot_delay: Duration::from_millis(args.boot_delay_ms),
        faults: Faults {
            throttle_rate: args.throttle_rate,
            error_rate: args.error_rate,
            latency_ms: args.latency_ms,
            actions: Vec::new(),
            read_lag_ms: args.read_lag_ms,
            lost_response_rate: args.lost_response_rate,
            lost_response_actions: args.lost_response_actions.clone(),
        },
        task_delay: Duration::from_millis(args.task_delay_ms),
        ..EmulatorConfig::default()
    };
    if let Some(q) = &args.quotas {
        config.quotas = serde_json::from_str(q).map_err(|e| format!("--quotas: {e}"))?;
    }
    for s in &args.stock {
        config.stock.push(parse_stock_arg(s)?);
    }
    if let Some(p) = &args.prices {
        let patch = serde_json::from_str(p).map_err(|e| format!("--prices: {e}"))?;
        config.prices =
            patch_prices(&config.prices, patch).map_err(|e| format!("--prices: {e}"))?;
    }
    for key in &args.extra_access_keys {
        let (id, secret) = key
            .split_once(':')
            .ok_or("--extra-access-key: expected ID:SECRET")?;
        config.credentials.push((id.into(), secret.into()));
    }
    let mut policies = Vec::new();
    for arg in &args.policy_files {
        policies.push(parse_policy_arg(arg)?);
    }
    let handle = start(config).await?;
    for (key, document) in policies {
        handle
            .state()
            .attach_policy(&key, document)
            .map_err(|e| format!("--policy-file {key}: {e}"))?;
    }
    // Printed (never the secret) so scripts can wait for it.
    println!(
        "emulator listening on http://{} (access key id {})",
        handle.addr(),
        args.access_key_id
    );
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

// ---- Administration endpoints ----

type Shared = State<Arc<EmulatorState>>;

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Applies a partial JSON object onto a serializable value.
fn merge<T: Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: serde_json::Value,
) -> Result<T, String> {
    let mut value = serde_json::to_value(current).map_err(|e| e.to_string())?;
    match (value.as_object_mut(), patch) {
        (Some(obj), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                obj.insert(k, v);
            }
        }
        _ => return Err("expected a JSON object".into()),
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

async fn admin_resources(State(s): Shared) -> Response {
    Json(s.resources()).into_response()
}

async fn admin_faults(State(s): Shared) -> Response {
    Json(s.faults()).into_response()
}

async fn admin_set_faults(State(s): Shared, Json(patch): Json<serde_json::Value>) -> Response {
    match merge(&s.faults(), patch) {
        Ok(f) => {
            s.set_faults(f.clone());
            Json(f).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn admin_quotas(State(s): Shared) -> Response {
    Json(s.quotas()).into_response()
}

async fn admin_set_quotas(State(s): Shared, Json(patch): Json<serde_json::Value>) -> Response {
    match merge(&s.quotas(), patch) {
        Ok(q) => {
            s.set_quotas(q.clone());
            Json(q).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn admin_stock(State(s): Shared) -> Response {
    Json(s.stock()).into_response()
}

/// Body: a list of `{"instanceType","zone","available"}`; `available: null` means unlimited.
async fn admin_set_stock(State(s): Shared, Json(entries): Json<Vec<StockEntry>>) -> Response {
    s.set_stock(&entries);
    Json(s.stock()).into_response()
}

async fn admin_prices(State(s): Shared) -> Response {
    Json(s.prices()).into_response()
}

/// Body: a partial [`PriceTable`] (see [`patch_prices`]); answers the whole new table.
async fn admin_set_prices(State(s): Shared, Json(patch): Json<serde_json::Value>) -> Response {
    match patch_prices(&s.prices(), patch) {
        Ok(p) => {
            s.set_prices(p.clone());
            Json(p).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// Applies a partial price table: absent fields keep their value; `instanceHourly` entries are
/// merged type by type (`null` removes a type), so a test changes one price without restating
/// the catalogue. Negative or non-finite prices are refused.
pub fn patch_prices(current: &PriceTable, patch: serde_json::Value) -> Result<PriceTable, String> {
    let serde_json::Value::Object(mut patch) = patch else {
        return Err("expected a JSON object".into());
    };
    let mut hourly = current.instance_hourly.clone();
    match patch.remove("instanceHourly") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(entries)) => {
            for (instance_type, price) in entries {
                match price {
                    serde_json::Value::Null => {
                        hourly.remove(&instance_type);
                    }
                    v => {
                        let price = v.as_f64().ok_or_else(|| {
                            format!("instanceHourly.{instance_type}: not a number")
                        })?;
                        hourly.insert(instance_type, price);
                    }
                }
            }
        }
        Some(_) => return Err("instanceHourly: expected an object".into()),
    }
    let mut table: PriceTable = merge(current, serde_json::Value::Object(patch))?;
    table.instance_hourly = hourly;
    let prices = table
        .instance_hourly
        .values()
        .copied()
        .chain(table.default_instance_hourly)
        .chain([table.disk_gib_hourly, table.bandwidth_mbps_hourly]);
    for p in prices {
        if !p.is_finite() || p < 0.0 {
            return Err(format!("invalid price {p}"));
        }
    }
    Ok(table)
}

/// The counts; with `?log=1` also `log`, the last calls with their parameters.
async fn admin_calls(State(s): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut body = serde_json::to_value(s.calls()).unwrap_or_default();
    let with_log = q.get("log").is_some_and(|v| v != "0" && v != "false");
    if let (true, Some(obj)) = (with_log, body.as_object_mut()) {
        obj.insert(
            "log".into(),
            serde_json::to_value(s.call_log()).unwrap_or_default(),
        );
    }
    Json(body).into_response()
}

type Q = Query<HashMap<String, String>>;

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, AdminError> {
    q.get(name)
        .map(String::as_str)
        .ok_or_else(|| AdminError::Missing(name.to_string()))
}

/// `{"done": true, ...}`, or the error with 404 (no such resource) or 400.
fn oob_answer(result: Result<serde_json::Value, AdminError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(AdminError::Model(e @ model::ModelError::NotFound { .. })) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

fn done() -> serde_json::Value {
    serde_json::json!({ "done": true })
}

async fn oob_stop_instance(State(s): Shared, Query(q): Q) -> Response {
    oob_answer(
        param(&q, "id")
            .and_then(|id| s.oob_stop_instance(id))
            .map(|()| done()),
    )
}

async fn oob_start_instance(State(s): Shared, Query(q): Q) -> Response {
    oob_answer(
        param(&q, "id")
            .and_then(|id| s.oob_start_instance(id))
            .map(|()| done()),
    )
}

async fn oob_delete(State(s): Shared, Query(q): Q) -> Response {
    oob_answer((|| {
        let kind = parse_kind(param(&q, "kind")?)?;
        s.oob_delete(kind, param(&q, "id")?)?;
        Ok(done())
    })())
}

async fn oob_detach_eip(State(s): Shared, Query(q): Q) -> Response {
    oob_answer(
        param(&q, "id")
            .and_then(|id| s.oob_detach_eip(id))
            .map(|()| done()),
    )
}

async fn oob_revoke_rule(State(s): Shared, Query(q): Q) -> Response {
    oob_answer((|| {
        let port = param(&q, "port")?;
        let port: u16 = port
            .parse()
            .map_err(|_| AdminError::Invalid(format!("port {port:?}")))?;
        let revoked = s.oob_revoke_rule(param(&q, "group")?, port)?;
        Ok(serde_json::json!({ "done": true, "revoked": revoked }))
    })())
}

async fn admin_policies(State(s): Shared) -> Response {
    Json(s.policy_documents()).into_response()
}

/// Body: a RAM or CAM policy document; it replaces the key's policy of the same cloud.
async fn admin_attach_policy(
    State(s): Shared,
    axum::extract::Path(key): axum::extract::Path<String>,
    Json(document): Json<serde_json::Value>,
) -> Response {
    match s.attach_policy(&key, document) {
        Ok(p) => Json(serde_json::json!({
            "accessKeyId": key, "grammar": p.grammar, "statements": p.len(),
        }))
        .into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn admin_detach_policies(
    State(s): Shared,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> Response {
    s.detach_policies(&key);
    Json(serde_json::json!({ "accessKeyId": key, "detached": true })).into_response()
}

/// Body: `{"secret": "..."}`.
async fn admin_add_key(
    State(s): Shared,
    axum::extract::Path(key): axum::extract::Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    match body.get("secret").and_then(serde_json::Value::as_str) {
        Some(secret) if !secret.is_empty() => {
            s.add_access_key(&key, secret);
            Json(serde_json::json!({ "accessKeyId": key })).into_response()
        }
        _ => bad_request("expected {\"secret\": \"...\"}".into()),
    }
}

async fn admin_remove_key(
    State(s): Shared,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> Response {
    s.remove_access_key(&key);
    Json(serde_json::json!({ "accessKeyId": key, "removed": true })).into_response()
}

async fn admin_reset(State(s): Shared) -> Response {
    s.reset();
    Json(serde_json::json!({ "reset": true })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_cache_rejects_replays_and_stays_bounded() {
        let mut cache = NonceCache {
            seen: HashSet::new(),
            order: VecDeque::new(),
            ttl: Duration::from_secs(60),
            capacity: 3,
        };
        let t0 = Instant::now();
        assert!(cache.insert("a", t0));
        assert!(!cache.insert("a", t0));
        assert!(cache.insert("b", t0));
        assert!(cache.insert("c", t0));
        assert!(cache.insert("d", t0));
        assert!(cache.seen.len() <= 3);
        // Expired nonces are forgotten.
        assert!(cache.insert("b", t0 + Duration::from_secs(120)));
    }

    #[test]
    fn stock_arguments_parse() {
        let e = parse_stock_arg("ecs.g7.large@cn-hangzhou-i=3").unwrap();
        assert_eq!(e.available, Some(3));
        assert_eq!(e.zone, "cn-hangzhou-i");
        assert!(parse_stock_arg("ecs.g7.large=3").is_err());
    }

    #[test]
    fn fault_flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: EmulatorArgs,
        }
        let cli = Cli::parse_from([
            "emulator",
            "--read-lag-ms",
            "1500",
            "--lost-response-rate",
            "0.2",
            "--lost-response-actions",
            "RunInstances,AllocateEipAddress",
        ]);
        assert_eq!(cli.args.read_lag_ms, 1500);
        assert_eq!(cli.args.lost_response_rate, 0.2);
        assert_eq!(
            cli.args.lost_response_actions,
            ["RunInstances", "AllocateEipAddress"]
        );
    }

    #[test]
    fn policy_and_key_flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: EmulatorArgs,
        }
        let path = format!(
            "{}/../../deploy/policies/aliyun-ram-policy.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let cli = Cli::parse_from([
            "emulator".to_string(),
            "--policy-file".into(),
            format!("ops-key={path}"),
            "--extra-access-key".into(),
            "ops-key:ops-secret".into(),
        ]);
        let (key, document) = parse_policy_arg(&cli.args.policy_files[0]).unwrap();
        assert_eq!(key, "ops-key");
        assert!(policy::Policy::parse(document).is_ok());
        assert_eq!(cli.args.extra_access_keys, ["ops-key:ops-secret"]);
        assert!(parse_policy_arg("no-equals-sign").is_err());
        assert!(parse_policy_arg("k=/nonexistent.json").is_err());
    }

    #[test]
    fn secrets_are_recognised() {
        for name in ["Password", "AccessKeySecret", "Signature", "SecurityToken"] {
            assert!(is_secret(name), "{name}");
        }
        assert!(!is_secret("ClientToken"));
        assert!(!is_secret("InstanceName"));
    }

    #[test]
    fn prices_patch_by_type() {
        let table = patch_prices(
            &PriceTable::default(),
            serde_json::json!({"instanceHourly": {"GT4.4XLARGE96": 20.0, "ecs.g7.large": null}, "currency": "CNY"}),
        )
        .unwrap();
        assert_eq!(table.instance_hourly["GT4.4XLARGE96"], 20.0);
        assert!(!table.lists("ecs.g7.large"));
        assert!(table.lists("ecs.gn7-c12g1.3xlarge"));
        let strict =
            patch_prices(&table, serde_json::json!({"defaultInstanceHourly": null})).unwrap();
        assert_eq!(strict.default_instance_hourly, None);
        for bad in [
            serde_json::json!({"instanceHourly": {"x": -1.0}}),
            serde_json::json!({"instanceHourly": {"x": "cheap"}}),
            serde_json::json!({"instanceHourly": [1]}),
            serde_json::json!([]),
        ] {
            assert!(patch_prices(&table, bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn partial_json_merges() {
        let q: Quotas = merge(&Quotas::default(), serde_json::json!({"vpcs": 1})).unwrap();
        assert_eq!(q.vpcs, 1);
        assert_eq!(q.eips, Quotas::default().eips);
        assert!(merge(&Quotas::default(), serde_json::json!([1])).is_err());
    }
}
