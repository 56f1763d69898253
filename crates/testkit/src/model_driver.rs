//! [`ModelDriver`]: a [`CloudDriver`] calling the emulator's model directly — no HTTP, no
//! signing — over a shared [`EmulatorState`], so a test can inspect and alter the very state the
//! driver works on (stock, quotas, faults, resources) and count its calls.
//!
//! It answers as the Alibaba front end does over HTTP, as seen through `AliyunDriver`: the same
//! request checks, ClientToken idempotency, computed instance states (Pending → Starting →
//! Running over the boot delay), tag filters (an empty value matches any), whole result lists,
//! batching (no call at all for empty id, tag and rule lists) and, through [`error_class`], the
//! same [`ErrorClass`] for every [`ModelError`]. Its own error codes and action names are neutral
//! (the trait's method names): it is no Alibaba wire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::Rng;
use sha2::{Digest, Sha256};

use mce_cloud::{
    AllocateEip, BandwidthMode, ChargeMode, CloudDriver, CloudError, CloudResult,
    CreateSecurityGroup, CreateSubnet, CreateVpc, Eip, EipFilter, EipStatus, ErrorClass, Instance,
    InstanceStatus, Login, PortRule, Price, PriceQuery, RunInstance, SecurityGroup, Subnet, Tags,
    Vpc, ZoneStock,
};
use mce_emulator::model::{self, Idem, Kind, Model, ModelError, RuleSpec};
use mce_emulator::{EmulatorConfig, EmulatorState};

/// Provider code of a driver built with [`ModelDriver::new`].
pub const DEFAULT_PROVIDER: &str = "DRY";

/// Limits the Alibaba front end checks before the model sees a request; mirrored so both paths
/// refuse the same requests.
const MAX_TAGS_PER_REQUEST: usize = 20;
const MAX_CLIENT_TOKEN: usize = 64;
const INSTANCE_BATCH: usize = 100;
const EIP_ID_BATCH: usize = 50;
const TAG_BATCH: usize = 20;
const DISK_CATEGORIES: &[&str] = &[
    "cloud_essd",
    "cloud_ssd",
    "cloud_efficiency",
    "cloud_auto",
    "cloud",
];
/// Hours priced for one month of a prepaid quote (the front end's `PriceUnit=Month`).
const HOURS_PER_MONTH: f64 = 720.0;

/// An emulator state for in-process tests: default settings with the given boot delay.
pub fn emulator_state(boot_delay: Duration) -> Arc<EmulatorState> {
    Arc::new(EmulatorState::new(&EmulatorConfig {
        boot_delay,
        ..EmulatorConfig::default()
    }))
}

/// Calls per action, shareable by several drivers (e.g. every driver a plugin built).
#[derive(Debug, Default)]
pub struct CallLog(Mutex<BTreeMap<String, u64>>);

impl CallLog {
    fn record(&self, action: &str) {
        *self.0.lock().entry(action.to_string()).or_default() += 1;
    }

    /// Calls per action so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().clone()
    }

    pub fn count(&self, action: &str) -> u64 {
        self.0.lock().get(action).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.lock().values().sum()
    }

    pub fn clear(&self) {
        self.0.lock().clear();
    }
}

/// The [`ErrorClass`] of a model error: the class `mce_cloud_aliyun::errors::classify` gives the
/// Alibaba code the emulator's front end answers with (checked by the test kit's tests).
pub fn error_class(e: &ModelError) -> ErrorClass {
    match e {
        // The front end answers `InvalidRegionId.NotFound`, an `Invalid*Id.NotFound` code.
        ModelError::NotFound { .. } | ModelError::UnknownRegion(_) => ErrorClass::NotFound,
        ModelError::Dependency { .. } => ErrorClass::DependencyViolation,
        ModelError::Quota(_) | ModelError::TagLimit(_) => ErrorClass::QuotaExceeded,
        ModelError::NoStock { .. } => ErrorClass::OutOfStock,
        ModelError::SubnetFull(_) => ErrorClass::SubnetFull,
        ModelError::InstanceStatus { .. } | ModelError::EipStatus { .. } => ErrorClass::WrongState,
        ModelError::IdempotencyMismatch => ErrorClass::IdempotencyMismatch,
        ModelError::UnknownInstanceType(_)
        | ModelError::InvalidCidr(_)
        | ModelError::CidrOverlap(_)
        | ModelError::Invalid(_) => ErrorClass::InvalidParameter,
    }
}

/// A neutral, stable error code of a model error, e.g. `NotFound.Instance`.
pub fn error_code(e: &ModelError) -> String {
    match e {
        ModelError::NotFound { kind, .. } => format!("NotFound.{kind:?}"),
        ModelError::Dependency { blocker, .. } => format!("DependencyViolation.{blocker:?}"),
        ModelError::Quota(kind) => format!("QuotaExceeded.{kind:?}"),
        ModelError::NoStock { .. } => "OutOfStock".into(),
        ModelError::SubnetFull(_) => "SubnetFull".into(),
        ModelError::InstanceStatus { .. } => "IncorrectStatus.Instance".into(),
        ModelError::EipStatus { .. } => "IncorrectStatus.Eip".into(),
        ModelError::IdempotencyMismatch => "IdempotencyMismatch".into(),
        ModelError::UnknownInstanceType(_) => "InvalidInstanceType".into(),
        ModelError::InvalidCidr(_) => "InvalidCidrBlock".into(),
        ModelError::CidrOverlap(_) => "CidrBlockOverlap".into(),
        ModelError::TagLimit(_) => "QuotaExceeded.Tags".into(),
        ModelError::UnknownRegion(_) => "NotFound.Region".into(),
        ModelError::Invalid(_) => "InvalidParameter".into(),
    }
}

/// A cloud driver over the emulator's model, in process.
pub struct ModelDriver {
    state: Arc<EmulatorState>,
    provider: &'static str,
    calls: Arc<CallLog>,
}

impl ModelDriver {
    /// A driver of provider [`DEFAULT_PROVIDER`] over `state`, with its own call log.
    pub fn new(state: Arc<EmulatorState>) -> Self {
        Self {
            state,
            provider: DEFAULT_PROVIDER,
            calls: Arc::default(),
        }
    }

    /// The provider code [`CloudDriver::provider`] and errors report.
    pub fn with_provider(mut self, provider: &'static str) -> Self {
        self.provider = provider;
        self
    }

    /// Records calls in a shared log (e.g. the one of the plugin that built the driver).
    pub fn with_call_log(mut self, calls: Arc<CallLog>) -> Self {
        self.calls = calls;
        self
    }

    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }

    pub fn call_log(&self) -> &Arc<CallLog> {
        &self.calls
    }

    /// Calls per action (the [`CloudDriver`] method names), including failed ones.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.total()
    }

    /// One cloud call: counted here and in the emulator's call statistics, then subjected to
    /// the emulator's faults (latency, throttling, server errors) as the HTTP front end does.
    async fn call(&self, action: &str) -> CloudResult<()> {
        self.calls.record(action);
        self.state.count_call(action);
        let faults = self.state.faults();
        if !faults.applies_to(action) {
            return Ok(());
        }
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if faults.throttle_rate > 0.0 || faults.error_rate > 0.0 {
            let roll: f64 = rand::rng().random();
            if roll < faults.throttle_rate {
                return Err(self.error(
                    action,
                    ErrorClass::Throttled,
                    "Throttled",
                    "request was denied by flow control",
                ));
            }
            if roll < faults.throttle_rate + faults.error_rate {
                return Err(self.error(
                    action,
                    ErrorClass::Transient,
                    "InternalError",
                    "the request failed for an unknown reason",
                ));
            }
        }
        Ok(())
    }

    fn error(&self, action: &str, class: ErrorClass, code: &str, message: &str) -> CloudError {
        self.state.count_error(code);
        CloudError::new(class, self.provider, action, code, message)
    }

    fn invalid(&self, action: &str, message: impl AsRef<str>) -> CloudError {
        self.error(
            action,
            ErrorClass::InvalidParameter,
            "InvalidParameter",
            message.as_ref(),
        )
    }

    /// A parameter the front end requires (an empty value counts as absent there).
    fn require(&self, action: &str, name: &str, value: &str) -> CloudResult<()> {
        if value.is_empty() {
            return Err(self.error(
                action,
                ErrorClass::InvalidParameter,
                "MissingParameter",
                &format!("{name} is required"),
            ));
        }
        Ok(())
    }

    fn model_error(&self, action: &str, e: ModelError) -> CloudError {
        self.error(action, error_class(&e), &error_code(&e), &e.to_string())
    }

    /// Runs `f` on the model; a model error becomes a classified cloud error. Every change goes
    /// through here, so this is where a lost response ([`model::Faults::lose_response`]) turns
    /// a change carried out into a transient failure, as a dropped connection would.
    fn model<T>(
        &self,
        action: &str,
        f: impl FnOnce(&mut Model) -> model::ModelResult<T>,
    ) -> CloudResult<T> {
        let value = self
            .state
            .with_model_mut(f)
            .map_err(|e| self.model_error(action, e))?;
        if self.state.faults().lose_response(action) {
            return Err(self.error(
                action,
                ErrorClass::Transient,
                "LostResponse",
                "the request was carried out but its response was lost",
            ));
        }
        Ok(value)
    }

    /// Reads the model; a model error becomes a classified cloud error.
    fn read<T>(
        &self,
        action: &str,
        f: impl FnOnce(&Model) -> model::ModelResult<T>,
    ) -> CloudResult<T> {
        self.state
            .with_model(f)
            .map_err(|e| self.model_error(action, e))
    }

    /// The idempotency key of a create: the token plus a hash of every business field, so a
    /// replay returns the first ids and a changed request fails (secrets are only hashed).
    fn idem(
        &self,
        action: &str,
        token: &str,
        fields: &[(&str, String)],
    ) -> CloudResult<Option<Idem>> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.len() > MAX_CLIENT_TOKEN || !token.is_ascii() {
            return Err(self.invalid(action, "ClientToken is malformed"));
        }
        let mut hash = Sha256::new();
        for (name, value) in fields {
            hash.update(name.as_bytes());
            hash.update(b"=");
            hash.update(value.as_bytes());
            hash.update(b"\n");
        }
        Ok(Some(Idem {
            scope: action.to_string(),
            token: token.to_string(),
            fingerprint: hex::encode(hash.finalize()),
        }))
    }

    /// Tags of a create or TagResources: empty keys dropped, at most 20 per request.
    fn request_tags(&self, action: &str, tags: &Tags) -> CloudResult<Tags> {
        let tags: Tags = tags
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if tags.len() > MAX_TAGS_PER_REQUEST {
            return Err(self.invalid(action, "at most 20 tags are allowed"));
        }
        Ok(tags)
    }
}

/// Tags as filters: a tag with an empty value matches any value of its key.
fn tag_filters(tags: &Tags) -> Vec<(String, Option<String>)> {
    tags.iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.clone(), Some(v.clone()).filter(|v| !v.is_empty())))
        .collect()
}

fn tags_text(tags: &Tags) -> String {
    tags.iter().map(|(k, v)| format!("{k}:{v};")).collect()
}

fn instance_status(status: model::InstanceStatus) -> InstanceStatus {
    match status {
        model::InstanceStatus::Pending => InstanceStatus::Pending,
        model::InstanceStatus::Starting => InstanceStatus::Starting,
        model::InstanceStatus::Running => InstanceStatus::Running,
        model::InstanceStatus::Stopped => InstanceStatus::Stopped,
    }
}

fn to_instance(m: &Model, i: &model::Instance, now: Instant) -> Instance {
    let eip = i.eip_id.as_ref().and_then(|id| m.eips.get(id));
    Instance {
        id: i.id.clone(),
        status: instance_status(m.instance_status(i, now)),
        instance_type: i.instance_type.clone(),
        zone: i.zone.clone(),
        private_ip: Some(i.private_ip.to_string()),
        // The EIP wins over an address assigned at creation, as on Alibaba.
        public_ip: eip.map(|e| e.ip).or(i.public_ip).map(|ip| ip.to_string()),
        eip_allocation_id: eip.map(|e| e.id.clone()),
        tags: i.tags.clone(),
    }
}

fn to_eip(e: &model::Eip) -> Eip {
    Eip {
        allocation_id: e.id.clone(),
        ip_address: e.ip.to_string(),
        status: match e.status() {
            model::EipStatus::Available => EipStatus::Available,
            model::EipStatus::InUse => EipStatus::InUse,
        },
        instance_id: e.instance_id.clone(),
        bandwidth_mbps: e.bandwidth,
        tags: e.tags.clone(),
    }
}

/// The model's charge vocabulary (the one its price table and snapshots use).
fn charge_type(charge: ChargeMode) -> &'static str {
    match charge {
        ChargeMode::OnDemand => "PostPaid",
        ChargeMode::Prepaid { .. } => "PrePaid",
    }
}

fn internet_charge_type(mode: BandwidthMode) -> &'static str {
    match mode {
        BandwidthMode::Traffic => "PayByTraffic",
        BandwidthMode::Fixed => "PayByBandwidth",
    }
}

/// A `p/p` range as one port.
fn single_port(range: &str) -> Option<u16> {
    let (from, to) = range.split_once('/')?;
    let from: u16 = from.parse().ok()?;
    (to.parse::<u16>().ok()? == from).then_some(from)
}

impl ModelDriver {
    /// Rules as the front end reads `Permissions.N.*`: TCP, accept, priority 1, a missing source
    /// meaning anywhere.
    fn rule_specs(&self, action: &str, rules: &[PortRule]) -> CloudResult<Vec<RuleSpec>> {
        rules
            .iter()
            .map(|r| {
                if r.port == 0 {
                    return Err(self.invalid(action, "invalid port range 0/0"));
                }
                let source_cidr = if r.source_cidr.is_empty() {
                    "0.0.0.0/0".to_string()
                } else {
                    r.source_cidr.clone()
                };
                if source_cidr.parse::<ipnet::IpNet>().is_err()
                    && source_cidr.parse::<std::net::IpAddr>().is_err()
                {
                    return Err(self.invalid(action, format!("invalid source {source_cidr}")));
                }
                Ok(RuleSpec {
                    protocol: "tcp".into(),
                    port_range: format!("{0}/{0}", r.port),
                    source_cidr,
                    policy: "accept".into(),
                    priority: 1,
                    description: r.description.clone(),
                })
            })
            .collect()
    }
}

#[async_trait]
impl CloudDriver for ModelDriver {
    fn provider(&self) -> &'static str {
        self.provider
    }

    async fn probe(&self, _region: &str) -> CloudResult<()> {
        // Like DescribeRegions: any region answers.
        self.call("probe").await
    }

    async fn find_vpcs(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Vpc>> {
        const A: &str = "find_vpcs";
        self.call(A).await?;
        self.require(A, "region", region)?;
        let filters = tag_filters(tags);
        let now = Instant::now();
        Ok(self.state.with_model(|m| {
            m.list_vpcs(region)
                .filter(|v| m.visible_match(&v.id, &v.tags, &filters, now))
                .map(|v| Vpc {
                    id: v.id.clone(),
                    cidr_block: v.cidr_block.clone(),
                    available: true,
                    tags: v.tags.clone(),
                })
                .collect()
        }))
    }

    async fn create_vpc(&self, req: &CreateVpc) -> CloudResult<String> {
        const A: &str = "create_vpc";
        self.call(A).await?;
        let tags = self.request_tags(A, &req.tags)?;
        let cidr_block = if req.cidr_block.is_empty() {
            "172.16.0.0/12".to_string()
        } else {
            req.cidr_block.clone()
        };
        let idem = self.idem(
            A,
            &req.client_token,
            &[
                ("region", req.region.clone()),
                ("cidr", cidr_block.clone()),
                ("name", req.name.clone()),
                ("description", req.description.clone()),
                ("tags", tags_text(&tags)),
            ],
        )?;
        let create = model::CreateVpc {
            region: req.region.clone(),
            cidr_block,
            name: req.name.clone(),
            description: req.description.clone(),
            tags,
        };
        self.model(A, |m| m.create_vpc(create, idem.as_ref()))
    }

    async fn delete_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<()> {
        const A: &str = "delete_vpc";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "vpc id", vpc_id)?;
        self.model(A, |m| m.delete_vpc(region, vpc_id))
    }

    async fn find_subnets(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<Subnet>> {
        const A: &str = "find_subnets";
        self.call(A).await?;
        self.require(A, "region", region)?;
        let filters = tag_filters(tags);
        let now = Instant::now();
        Ok(self.state.with_model(|m| {
            m.subnets
                .values()
                .filter(|s| s.region == region)
                .filter(|s| vpc_id.is_empty() || s.vpc_id == vpc_id)
                .filter(|s| m.visible_match(&s.id, &s.tags, &filters, now))
                .map(|s| Subnet {
                    id: s.id.clone(),
                    vpc_id: s.vpc_id.clone(),
                    zone: s.zone.clone(),
                    cidr_block: s.cidr_block.clone(),
                    available: true,
                    tags: s.tags.clone(),
                })
                .collect()
        }))
    }

    async fn create_subnet(&self, req: &CreateSubnet) -> CloudResult<String> {
        const A: &str = "create_subnet";
        self.call(A).await?;
        self.require(A, "vpc id", &req.vpc_id)?;
        self.require(A, "zone", &req.zone)?;
        self.require(A, "CIDR block", &req.cidr_block)?;
        let tags = self.request_tags(A, &req.tags)?;
        let idem = self.idem(
            A,
            &req.client_token,
            &[
                ("region", req.region.clone()),
                ("vpc", req.vpc_id.clone()),
                ("zone", req.zone.clone()),
                ("cidr", req.cidr_block.clone()),
                ("name", req.name.clone()),
                ("tags", tags_text(&tags)),
            ],
        )?;
        let create = model::CreateSubnet {
            region: req.region.clone(),
            vpc_id: req.vpc_id.clone(),
            zone: req.zone.clone(),
            cidr_block: req.cidr_block.clone(),
            name: req.name.clone(),
            description: String::new(),
            tags,
        };
        self.model(A, |m| m.create_subnet(create, idem.as_ref()))
    }

    async fn delete_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<()> {
        const A: &str = "delete_subnet";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "subnet id", subnet_id)?;
        self.model(A, |m| m.delete_subnet(region, subnet_id))
    }

    async fn find_security_groups(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        const A: &str = "find_security_groups";
        self.call(A).await?;
        self.require(A, "region", region)?;
        let filters = tag_filters(tags);
        let now = Instant::now();
        Ok(self.state.with_model(|m| {
            m.security_groups
                .values()
                .filter(|g| g.region == region)
                .filter(|g| vpc_id.is_empty() || g.vpc_id == vpc_id)
                .filter(|g| m.visible_match(&g.id, &g.tags, &filters, now))
                .map(|g| SecurityGroup {
                    id: g.id.clone(),
                    vpc_id: g.vpc_id.clone(),
                    tags: g.tags.clone(),
                })
                .collect()
        }))
    }

    async fn create_security_group(&self, req: &CreateSecurityGroup) -> CloudResult<String> {
        const A: &str = "create_security_group";
        self.call(A).await?;
        self.require(A, "vpc id", &req.vpc_id)?;
        let tags = self.request_tags(A, &req.tags)?;
        let idem = self.idem(
            A,
            &req.client_token,
            &[
                ("region", req.region.clone()),
                ("vpc", req.vpc_id.clone()),
                ("name", req.name.clone()),
                ("description", req.description.clone()),
                ("tags", tags_text(&tags)),
            ],
        )?;
        let create = model::CreateSecurityGroup {
            region: req.region.clone(),
            vpc_id: req.vpc_id.clone(),
            name: req.name.clone(),
            description: req.description.clone(),
            tags,
        };
        self.model(A, |m| m.create_security_group(create, idem.as_ref()))
    }

    async fn delete_security_group(&self, region: &str, group_id: &str) -> CloudResult<()> {
        const A: &str = "delete_security_group";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "security group id", group_id)?;
        self.model(A, |m| m.delete_security_group(region, group_id))
    }

    async fn describe_ingress(&self, region: &str, group_id: &str) -> CloudResult<Vec<PortRule>> {
        const A: &str = "describe_ingress";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "security group id", group_id)?;
        let now = Instant::now();
        self.read(A, |m| {
            m.read_security_group(group_id, region, now).map(|g| {
                g.rules
                    .iter()
                    .filter(|r| r.protocol == "tcp" && r.policy == "accept")
                    .filter_map(|r| {
                        Some(PortRule {
                            port: single_port(&r.port_range)?,
                            source_cidr: r.source_cidr.clone(),
                            description: r.description.clone(),
                        })
                    })
                    .collect()
            })
        })
    }

    async fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        const A: &str = "authorize_ingress";
        if rules.is_empty() {
            return Ok(());
        }
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "security group id", group_id)?;
        let specs = self.rule_specs(A, rules)?;
        self.model(A, |m| m.authorize(region, group_id, specs))
            .map(|_| ())
    }

    async fn revoke_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        const A: &str = "revoke_ingress";
        if rules.is_empty() {
            return Ok(());
        }
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "security group id", group_id)?;
        let specs = self.rule_specs(A, rules)?;
        self.model(A, |m| m.revoke(region, group_id, &specs, &[]))
            .map(|_| ())
    }

    async fn run_instance(&self, req: &RunInstance) -> CloudResult<String> {
        const A: &str = "run_instance";
        // Refused before any call, as AliyunDriver does.
        if req.security_group_ids.iter().all(String::is_empty) {
            return Err(self.error(
                A,
                ErrorClass::InvalidParameter,
                "MissingParameter",
                "at least one security group is required",
            ));
        }
        self.call(A).await?;
        let disk = &req.system_disk;
        if !DISK_CATEGORIES.contains(&disk.category.as_str()) {
            return Err(self.invalid(A, format!("unsupported disk category {}", disk.category)));
        }
        if !(20..=2048).contains(&disk.size_gib) {
            return Err(self.invalid(
                A,
                format!("system disk size {} is out of range", disk.size_gib),
            ));
        }
        let (password, key_pair) = match &req.login {
            Login::None => ("", ""),
            Login::Password(secret) => (secret.expose(), ""),
            Login::KeyPair(name) => ("", name.as_str()),
        };
        if !password.is_empty() && !(8..=30).contains(&password.len()) {
            // The value is never echoed.
            return Err(self.invalid(A, "the password must be 8 to 30 characters long"));
        }
        self.require(A, "instance type", &req.instance_type)?;
        self.require(A, "image id", &req.image_id)?;
        self.require(A, "subnet id", &req.subnet_id)?;
        let tags = self.request_tags(A, &req.tags)?;
        let mut groups: Vec<String> = Vec::new();
        for id in &req.security_group_ids {
            if !id.is_empty() && !groups.contains(id) {
                groups.push(id.clone());
            }
        }
        let period = match req.charge {
            ChargeMode::OnDemand => String::new(),
            ChargeMode::Prepaid { months } => months.to_string(),
        };
        let extensions: String = req
            .extensions
            .iter()
            .map(|(k, v)| format!("{k}={v};"))
            .collect();
        let idem = self.idem(
            A,
            &req.client_token,
            &[
                ("region", req.region.clone()),
                ("zone", req.zone.clone()),
                ("type", req.instance_type.clone()),
                ("image", req.image_id.clone()),
                ("subnet", req.subnet_id.clone()),
                ("groups", groups.join(",")),
                ("name", req.name.clone()),
                ("description", req.description.clone()),
                ("disk", format!("{}:{}", disk.category, disk.size_gib)),
                ("password", password.to_string()),
                ("key pair", key_pair.to_string()),
                ("charge", format!("{}:{period}", charge_type(req.charge))),
                ("tags", tags_text(&tags)),
                ("extensions", extensions),
            ],
        )?;
        let run = model::RunInstances {
            region: req.region.clone(),
            zone: Some(req.zone.clone()).filter(|z| !z.is_empty()),
            instance_type: req.instance_type.clone(),
            image_id: req.image_id.clone(),
            subnet_id: req.subnet_id.clone(),
            security_group_ids: groups,
            name: req.name.clone(),
            description: req.description.clone(),
            charge_type: charge_type(req.charge).into(),
            internet_charge_type: internet_charge_type(BandwidthMode::Traffic).into(),
            // Public addresses come as EIPs only (see `RunInstance`).
            bandwidth_out: 0,
            disk_category: disk.category.clone(),
            disk_gib: disk.size_gib,
            password_set: !password.is_empty(),
            key_pair_name: Some(key_pair.to_string()).filter(|k| !k.is_empty()),
            tags,
            amount: 1,
            min_amount: 0,
            dry_run: false,
        };
        let now = Instant::now();
        let ids = self.model(A, |m| m.run_instances(run, idem.as_ref(), now))?;
        ids.into_iter().next().ok_or_else(|| {
            self.error(
                A,
                ErrorClass::Transient,
                "InvalidResponse",
                "no instance was created",
            )
        })
    }

    async fn describe_instances(&self, region: &str, ids: &[String]) -> CloudResult<Vec<Instance>> {
        const A: &str = "describe_instances";
        let mut out = Vec::new();
        for batch in ids.chunks(INSTANCE_BATCH) {
            self.call(A).await?;
            self.require(A, "region", region)?;
            let now = Instant::now();
            out.extend(self.state.with_model(|m| {
                m.instances
                    .values()
                    .filter(|i| i.region == region && batch.contains(&i.id))
                    .filter(|i| m.visible(&i.id, now))
                    .map(|i| to_instance(m, i, now))
                    .collect::<Vec<_>>()
            }));
        }
        Ok(out)
    }

    async fn find_instances(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Instance>> {
        const A: &str = "find_instances";
        self.call(A).await?;
        self.require(A, "region", region)?;
        let filters = tag_filters(tags);
        let now = Instant::now();
        Ok(self.state.with_model(|m| {
            m.instances
                .values()
                .filter(|i| i.region == region && m.visible_match(&i.id, &i.tags, &filters, now))
                .map(|i| to_instance(m, i, now))
                .collect()
        }))
    }

    async fn delete_instance(&self, _region: &str, instance_id: &str) -> CloudResult<()> {
        const A: &str = "delete_instance";
        self.call(A).await?;
        self.require(A, "instance id", instance_id)?;
        let now = Instant::now();
        // Like ECS DeleteInstance: the instance's own region counts, not the request's.
        self.model(A, |m| {
            let region = m
                .instances
                .get(instance_id)
                .map(|i| i.region.clone())
                .unwrap_or_default();
            m.delete_instances(&region, &[instance_id.to_string()], true, now)
        })
    }

    async fn start_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        const A: &str = "start_instance";
        self.call(A).await?;
        self.require(A, "instance id", instance_id)?;
        let now = Instant::now();
        self.model(A, |m| m.start_instance(region, instance_id, now))
    }

    async fn tag_instance(&self, region: &str, instance_id: &str, tags: &Tags) -> CloudResult<()> {
        const A: &str = "tag_instance";
        let pairs: Vec<(&String, &String)> = tags.iter().collect();
        for chunk in pairs.chunks(TAG_BATCH) {
            self.call(A).await?;
            self.require(A, "region", region)?;
            self.require(A, "instance id", instance_id)?;
            let batch: Tags = chunk
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| ((*k).clone(), (*v).clone()))
                .collect();
            if batch.is_empty() {
                return Err(self.error(
                    A,
                    ErrorClass::InvalidParameter,
                    "MissingParameter",
                    "tags are required",
                ));
            }
            let ids = [instance_id.to_string()];
            self.model(A, |m| m.tag_resources(Kind::Instance, region, &ids, &batch))?;
        }
        Ok(())
    }

    async fn untag_instance(
        &self,
        region: &str,
        instance_id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        const A: &str = "untag_instance";
        let mut unique: Vec<String> = Vec::with_capacity(keys.len());
        for k in keys {
            if !k.is_empty() && !unique.contains(k) {
                unique.push(k.clone());
            }
        }
        for chunk in unique.chunks(TAG_BATCH) {
            self.call(A).await?;
            self.require(A, "region", region)?;
            self.require(A, "instance id", instance_id)?;
            let ids = [instance_id.to_string()];
            self.model(A, |m| {
                m.untag_resources(Kind::Instance, region, &ids, chunk, false)
            })?;
        }
        Ok(())
    }

    async fn allocate_eip(&self, req: &AllocateEip) -> CloudResult<Eip> {
        const A: &str = "allocate_eip";
        self.call(A).await?;
        let tags = self.request_tags(A, &req.tags)?;
        let charge = internet_charge_type(req.bandwidth_mode);
        let idem = self.idem(
            A,
            &req.client_token,
            &[
                ("region", req.region.clone()),
                ("bandwidth", req.bandwidth_mbps.to_string()),
                ("charge", charge.to_string()),
                ("tags", tags_text(&tags)),
            ],
        )?;
        let allocate = model::AllocateEip {
            region: req.region.clone(),
            bandwidth: req.bandwidth_mbps,
            internet_charge_type: charge.into(),
            name: String::new(),
            description: String::new(),
            tags,
        };
        let (id, ip) = self.model(A, |m| {
            let id = m.allocate_eip(allocate, idem.as_ref())?;
            let ip = m
                .eips
                .get(&id)
                .map(|e| e.ip.to_string())
                .unwrap_or_default();
            Ok((id, ip))
        })?;
        // What AliyunDriver reports: the request's view, not a describe.
        Ok(Eip {
            allocation_id: id,
            ip_address: ip,
            status: EipStatus::Available,
            instance_id: None,
            bandwidth_mbps: req.bandwidth_mbps,
            tags: req.tags.clone(),
        })
    }

    async fn associate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()> {
        const A: &str = "associate_eip";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "allocation id", allocation_id)?;
        self.require(A, "instance id", instance_id)?;
        let now = Instant::now();
        self.model(A, |m| {
            m.associate_eip(region, allocation_id, instance_id, now)
        })
    }

    async fn describe_eips(&self, region: &str, filter: &EipFilter) -> CloudResult<Vec<Eip>> {
        const A: &str = "describe_eips";
        // One query per batch of ids (a single one without ids), like AliyunDriver.
        let batches: Vec<Vec<String>> = if filter.allocation_ids.is_empty() {
            vec![Vec::new()]
        } else {
            filter
                .allocation_ids
                .chunks(EIP_ID_BATCH)
                .map(|c| {
                    c.iter()
                        .map(|id| id.trim().to_string())
                        .filter(|id| !id.is_empty())
                        .collect()
                })
                .collect()
        };
        let instance = filter.instance_id.as_deref().filter(|i| !i.is_empty());
        let filters = tag_filters(&filter.tags);
        let now = Instant::now();
        let mut out = Vec::new();
        for ids in batches {
            self.call(A).await?;
            self.require(A, "region", region)?;
            out.extend(self.state.with_model(|m| {
                m.eips
                    .values()
                    .filter(|e| e.region == region)
                    .filter(|e| ids.is_empty() || ids.contains(&e.id))
                    .filter(|e| instance.is_none_or(|i| e.instance_id.as_deref() == Some(i)))
                    .filter(|e| m.visible_match(&e.id, &e.tags, &filters, now))
                    .map(to_eip)
                    .collect::<Vec<_>>()
            }));
        }
        Ok(out)
    }

    async fn modify_eip_bandwidth(
        &self,
        region: &str,
        allocation_id: &str,
        bandwidth_mbps: u32,
    ) -> CloudResult<()> {
        const A: &str = "modify_eip_bandwidth";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "allocation id", allocation_id)?;
        self.model(A, |m| {
            m.modify_eip(region, allocation_id, Some(bandwidth_mbps), None, None)
        })
    }

    async fn disassociate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()> {
        const A: &str = "disassociate_eip";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "allocation id", allocation_id)?;
        let instance = Some(instance_id).filter(|i| !i.is_empty());
        self.model(A, |m| m.unassociate_eip(region, allocation_id, instance))
    }

    async fn release_eip(&self, region: &str, allocation_id: &str) -> CloudResult<()> {
        const A: &str = "release_eip";
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "allocation id", allocation_id)?;
        self.model(A, |m| m.release_eip(region, allocation_id))
    }

    async fn describe_price(&self, query: &PriceQuery) -> CloudResult<Price> {
        const A: &str = "describe_price";
        self.call(A).await?;
        self.require(A, "region", &query.region)?;
        self.require(A, "instance type", &query.instance_type)?;
        let disk_gib = query.system_disk.as_ref().map_or(40, |d| d.size_gib);
        let bandwidth = query.bandwidth.map_or(0, |(mbps, _)| mbps);
        // A prepaid quote covers the whole period; it is reported per month.
        let (unit, hours, months) = match query.charge {
            ChargeMode::OnDemand => ("Hour", 1.0, 1),
            ChargeMode::Prepaid { months } => {
                let months = months.max(1);
                ("Month", HOURS_PER_MONTH * f64::from(months), months)
            }
        };
        let (currency, total) = self.read(A, |m| {
            let prices = &m.prices;
            let total = prices.quote(&query.instance_type, disk_gib, bandwidth, hours, 1)?;
            Ok((prices.currency.clone(), total))
        })?;
        let per_unit = total / f64::from(months);
        Ok(Price {
            currency,
            original_price: per_unit,
            discount_price: 0.0,
            trade_price: per_unit,
            unit: unit.to_string(),
        })
    }

    /// The model's answer ([`Model::zone_stock`]) in the default realm: the zones where the
    /// price table lists the type (or a stock entry names it), sold out at stock 0. Stock does
    /// not depend on the charge mode.
    async fn describe_stock(
        &self,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
        charge: ChargeMode,
    ) -> CloudResult<Vec<ZoneStock>> {
        const A: &str = "describe_stock";
        let _ = charge;
        self.call(A).await?;
        self.require(A, "region", region)?;
        self.require(A, "instance type", instance_type)?;
        let zone = zone.filter(|z| !z.is_empty());
        let stock = self.read(A, |m| {
            m.zone_stock(model::DEFAULT_REALM, region, zone, instance_type)
        })?;
        Ok(stock
            .into_iter()
            .map(|s| ZoneStock {
                available: !s.sold_out(),
                zone: s.zone,
            })
            .collect())
    }
}
