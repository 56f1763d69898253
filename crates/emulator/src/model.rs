//! Provider-neutral resource model of the emulator: VPCs, subnets, security groups and their
//! rules, instances, elastic IPs, tags, idempotency tokens, quotas, stock, prices and faults.
//!
//! Front ends (the Alibaba Cloud RPC one today, others later) translate wire parameters into the
//! typed calls below and map [`ModelError`] to their own error codes. Nothing here knows HTTP.
//! Time is passed in explicitly (`now`), so instance states are computed, not driven by timers.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Resource tags, ordered so listings are deterministic.
pub type Tags = BTreeMap<String, String>;

/// Resource kinds, for errors and inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Vpc,
    Subnet,
    SecurityGroup,
    SecurityGroupRule,
    Instance,
    Eip,
}

/// Why a model operation failed. Front ends map these to provider codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("the specified {kind:?} {id} does not exist")]
    NotFound { kind: Kind, id: String },
    #[error("{kind:?} {id} still has a dependent {blocker:?}")]
    Dependency {
        kind: Kind,
        id: String,
        blocker: Kind,
    },
    #[error("the {0:?} quota is exhausted")]
    Quota(Kind),
    #[error("no stock of {instance_type} in zone {zone}")]
    NoStock { instance_type: String, zone: String },
    #[error("instance {id} is {status}: {message}")]
    InstanceStatus {
        id: String,
        status: &'static str,
        message: String,
    },
    #[error("EIP {id} is {status}: {message}")]
    EipStatus {
        id: String,
        status: &'static str,
        message: String,
    },
    #[error("the client token was used with different parameters")]
    IdempotencyMismatch,
    #[error("unknown instance type {0}")]
    UnknownInstanceType(String),
    #[error("invalid CIDR block: {0}")]
    InvalidCidr(String),
    #[error("CIDR block {0} overlaps an existing subnet")]
    CidrOverlap(String),
    #[error("resource {0} would carry more tags than allowed")]
    TagLimit(String),
    #[error("the region {0} does not exist")]
    UnknownRegion(String),
    #[error("{0}")]
    Invalid(String),
}

pub type ModelResult<T> = Result<T, ModelError>;

/// Account quotas. Counts are per region-less account, as the emulator holds one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Quotas {
    pub vpcs: u32,
    pub subnets_per_vpc: u32,
    pub security_groups: u32,
    pub rules_per_security_group: u32,
    pub instances: u32,
    pub eips: u32,
    pub tags_per_resource: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            vpcs: 10,
            subnets_per_vpc: 150,
            security_groups: 100,
            rules_per_security_group: 200,
            instances: 100,
            eips: 20,
            tags_per_resource: 20,
        }
    }
}

/// Injected faults, applied to cloud calls after authentication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Fraction (0..=1) of calls answered with a throttling error.
    pub throttle_rate: f64,
    /// Fraction (0..=1) of calls answered with an internal server error.
    pub error_rate: f64,
    /// Latency added to every call.
    pub latency_ms: u64,
    /// Actions the faults apply to; empty means all.
    pub actions: Vec<String>,
}

impl Faults {
    pub fn applies_to(&self, action: &str) -> bool {
        self.actions.is_empty() || self.actions.iter().any(|a| a == action)
    }
}

/// Prices, per hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PriceTable {
    pub currency: String,
    /// Hourly price per instance type.
    pub instance_hourly: BTreeMap<String, f64>,
    /// Price of types not in the table; `None` rejects unknown types.
    pub default_instance_hourly: Option<f64>,
    /// Hourly price of one GiB of system disk.
    pub disk_gib_hourly: f64,
    /// Hourly price of one Mbit/s of outbound bandwidth.
    pub bandwidth_mbps_hourly: f64,
}

impl Default for PriceTable {
    fn default() -> Self {
        let instance_hourly = [
            ("ecs.t6-c1m1.large", 0.09),
            ("ecs.g7.large", 0.71),
            ("ecs.g7.xlarge", 1.42),
            ("ecs.c7.large", 0.62),
            ("ecs.gn6i-c4g1.xlarge", 8.43),
            ("ecs.gn7i-c8g1.2xlarge", 12.8),
            ("ecs.gn6v-c8g1.2xlarge", 26.4),
            ("ecs.gn7-c12g1.3xlarge", 34.7),
            ("ecs.gn7e-c16g1.4xlarge", 41.2),
            ("ecs.gn8is.2xlarge", 19.5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            currency: "CNY".into(),
            instance_hourly,
            default_instance_hourly: Some(1.0),
            disk_gib_hourly: 0.001,
            bandwidth_mbps_hourly: 0.063,
        }
    }
}

impl PriceTable {
    pub fn instance_hourly(&self, instance_type: &str) -> ModelResult<f64> {
        self.instance_hourly
            .get(instance_type)
            .copied()
            .or(self.default_instance_hourly)
            .ok_or_else(|| ModelError::UnknownInstanceType(instance_type.to_string()))
    }

    /// Price of `amount` instances for `hours`, rounded to cents.
    pub fn quote(
        &self,
        instance_type: &str,
        disk_gib: u32,
        bandwidth_mbps: u32,
        hours: f64,
        amount: u32,
    ) -> ModelResult<f64> {
        let hourly = self.instance_hourly(instance_type)?
            + self.disk_gib_hourly * f64::from(disk_gib)
            + self.bandwidth_mbps_hourly * f64::from(bandwidth_mbps);
        Ok(round_cents(hourly * hours * f64::from(amount)))
    }
}

pub fn round_cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Settings fixed at start (the model keeps a copy to restore on reset).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSettings {
    /// Time from creation to `Running`: the first half `Pending`, the second `Starting`.
    pub boot_delay: Duration,
    pub quotas: Quotas,
    /// Available count per (instance type, zone); absent means unlimited.
    pub stock: HashMap<(String, String), u32>,
    pub prices: PriceTable,
    /// Known regions; empty accepts any.
    pub regions: Vec<String>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            boot_delay: Duration::from_secs(2),
            quotas: Quotas::default(),
            stock: HashMap::new(),
            prices: PriceTable::default(),
            regions: vec![
                "cn-hangzhou".into(),
                "cn-shanghai".into(),
                "cn-beijing".into(),
                "cn-shenzhen".into(),
            ],
        }
    }
}

/// An idempotency token: the scope (the operation), the client's token and a fingerprint of
/// every other parameter of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idem {
    pub scope: String,
    pub token: String,
    pub fingerprint: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vpc {
    pub id: String,
    pub region: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub router_id: String,
    pub route_table_id: String,
    pub tags: Tags,
    pub created: Timestamp,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
    pub created: Timestamp,
    #[serde(skip)]
    next_host: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    /// Lower case: `tcp`, `udp`, `icmp`, `gre`, `all`.
    pub protocol: String,
    /// `from/to`, e.g. `22/22`; `-1/-1` for all ports.
    pub port_range: String,
    pub source_cidr: String,
    /// Lower case: `accept` or `drop`.
    pub policy: String,
    pub priority: u32,
    pub description: String,
    pub created: Timestamp,
}

impl Rule {
    fn same_as(&self, spec: &RuleSpec) -> bool {
        self.protocol == spec.protocol
            && self.port_range == spec.port_range
            && self.source_cidr == spec.source_cidr
            && self.policy == spec.policy
            && self.priority == spec.priority
    }
}

/// The content of an ingress rule, as requested.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    pub protocol: String,
    pub port_range: String,
    pub source_cidr: String,
    pub policy: String,
    pub priority: u32,
    pub description: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
    pub rules: Vec<Rule>,
    pub created: Timestamp,
}

/// Computed instance state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum InstanceStatus {
    Pending,
    Starting,
    Running,
    Stopped,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Stopped => "Stopped",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub image_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub name: String,
    pub description: String,
    pub private_ip: Ipv4Addr,
    /// Public IP assigned at creation (bandwidth > 0), not an EIP.
    pub public_ip: Option<Ipv4Addr>,
    /// Allocation id of the associated EIP.
    pub eip_id: Option<String>,
    pub charge_type: String,
    pub internet_charge_type: String,
    pub bandwidth_out: u32,
    pub disk_category: String,
    pub disk_gib: u32,
    /// Whether a login password was given. The password itself is never stored.
    pub password_set: bool,
    pub key_pair_name: Option<String>,
    pub hourly_price: f64,
    pub tags: Tags,
    pub created: Timestamp,
    #[serde(skip)]
    boot_started: Instant,
    #[serde(skip)]
    first_boot: bool,
    #[serde(skip)]
    stopped: bool,
}

impl Instance {
    /// The state at `now`, given the boot delay.
    pub fn status_at(&self, now: Instant, boot_delay: Duration) -> InstanceStatus {
        if self.stopped {
            return InstanceStatus::Stopped;
        }
        let elapsed = now.saturating_duration_since(self.boot_started);
        if elapsed >= boot_delay {
            InstanceStatus::Running
        } else if self.first_boot && elapsed < boot_delay / 2 {
            InstanceStatus::Pending
        } else {
            InstanceStatus::Starting
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EipStatus {
    Available,
    InUse,
}

impl EipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "Available",
            Self::InUse => "InUse",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eip {
    pub id: String,
    pub region: String,
    pub ip: Ipv4Addr,
    pub bandwidth: u32,
    pub internet_charge_type: String,
    pub name: String,
    pub description: String,
    pub instance_id: Option<String>,
    pub tags: Tags,
    pub created: Timestamp,
}

impl Eip {
    pub fn status(&self) -> EipStatus {
        if self.instance_id.is_some() {
            EipStatus::InUse
        } else {
            EipStatus::Available
        }
    }
}

pub struct CreateVpc {
    pub region: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
}

pub struct CreateSubnet {
    pub region: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
}

pub struct CreateSecurityGroup {
    pub region: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
}

pub struct RunInstances {
    pub region: String,
    /// Defaults to the subnet's zone.
    pub zone: Option<String>,
    pub instance_type: String,
    pub image_id: String,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub name: String,
    pub description: String,
    pub charge_type: String,
    pub internet_charge_type: String,
    pub bandwidth_out: u32,
    pub disk_category: String,
    pub disk_gib: u32,
    pub password_set: bool,
    pub key_pair_name: Option<String>,
    pub tags: Tags,
    pub amount: u32,
    pub min_amount: u32,
    pub dry_run: bool,
}

pub struct AllocateEip {
    pub region: String,
    pub bandwidth: u32,
    pub internet_charge_type: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
}

/// Whether `tags` holds every filter; a filter with an empty value only needs the key.
pub fn tags_match(tags: &Tags, filters: &[(String, Option<String>)]) -> bool {
    filters.iter().all(|(k, v)| match (tags.get(k), v) {
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
        (None, _) => false,
    })
}

/// The in-memory cloud.
pub struct Model {
    pub settings: ModelSettings,
    pub quotas: Quotas,
    pub stock: HashMap<(String, String), u32>,
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub instances: BTreeMap<String, Instance>,
    pub eips: BTreeMap<String, Eip>,
    tokens: HashMap<(String, String), (String, Vec<String>)>,
    seq: u64,
    ip_seq: u32,
}

const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl Model {
    pub fn new(settings: ModelSettings) -> Self {
        Self {
            quotas: settings.quotas.clone(),
            stock: settings.stock.clone(),
            settings,
            vpcs: BTreeMap::new(),
            subnets: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            instances: BTreeMap::new(),
            eips: BTreeMap::new(),
            tokens: HashMap::new(),
            seq: 0,
            ip_seq: 0,
        }
    }

    /// Drops every resource and token, restoring quotas and stock from the settings.
    pub fn reset(&mut self) {
        *self = Self::new(self.settings.clone());
    }

    pub fn boot_delay(&self) -> Duration {
        self.settings.boot_delay
    }

    pub fn resource_count(&self) -> usize {
        self.vpcs.len()
            + self.subnets.len()
            + self.security_groups.len()
            + self.instances.len()
            + self.eips.len()
    }

    /// A new id: prefix, a creation sequence (so ids sort in creation order) and random letters.
    fn new_id(&mut self, prefix: &str) -> String {
        use rand::Rng;
        self.seq += 1;
        let mut id = format!("{prefix}-bp1{:08}", self.seq);
        let mut rng = rand::rng();
        for _ in 0..8 {
            id.push(char::from(
                ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())],
            ));
        }
        id
    }

    fn new_public_ip(&mut self, first: u8) -> Ipv4Addr {
        self.ip_seq += 1;
        let [_, b, c, d] = self.ip_seq.to_be_bytes();
        Ipv4Addr::new(first, b.wrapping_add(96), c, d)
    }

    fn check_region(&self, region: &str) -> ModelResult<()> {
        if region.is_empty() {
            return Err(ModelError::Invalid("RegionId is required".into()));
        }
        if !self.settings.regions.is_empty() && !self.settings.regions.iter().any(|r| r == region) {
            return Err(ModelError::UnknownRegion(region.to_string()));
        }
        Ok(())
    }

    /// Runs `create` once per token: a replay with the same fingerprint returns the first ids,
    /// a different fingerprint fails. Failed creations do not consume the token.
    fn idempotent(
        &mut self,
        idem: Option<&Idem>,
        create: impl FnOnce(&mut Self) -> ModelResult<Vec<String>>,
    ) -> ModelResult<Vec<String>> {
        if let Some(idem) = idem {
            let key = (idem.scope.clone(), idem.token.clone());
            if let Some((fingerprint, ids)) = self.tokens.get(&key) {
                return if *fingerprint == idem.fingerprint {
                    Ok(ids.clone())
                } else {
                    Err(ModelError::IdempotencyMismatch)
                };
            }
            let ids = create(self)?;
            self.tokens
                .insert(key, (idem.fingerprint.clone(), ids.clone()));
            Ok(ids)
        } else {
            create(self)
        }
    }

    fn vpc(&self, id: &str, region: &str) -> ModelResult<&Vpc> {
        in_region(&self.vpcs, Kind::Vpc, id, region, |v| &v.region)
    }

    pub fn get_subnet(&self, id: &str, region: &str) -> ModelResult<&Subnet> {
        in_region(&self.subnets, Kind::Subnet, id, region, |v| &v.region)
    }

    pub fn get_security_group(&self, id: &str, region: &str) -> ModelResult<&SecurityGroup> {
        in_region(
            &self.security_groups,
            Kind::SecurityGroup,
            id,
            region,
            |v| &v.region,
        )
    }

    pub fn get_instance(&self, id: &str, region: &str) -> ModelResult<&Instance> {
        in_region(&self.instances, Kind::Instance, id, region, |v| &v.region)
    }

    pub fn get_eip(&self, id: &str, region: &str) -> ModelResult<&Eip> {
        in_region(&self.eips, Kind::Eip, id, region, |v| &v.region)
    }

    // ---- VPC ----

    pub fn create_vpc(&mut self, req: CreateVpc, idem: Option<&Idem>) -> ModelResult<String> {
        self.check_region(&req.region)?;
        let cidr: Ipv4Net = req
            .cidr_block
            .parse()
            .map_err(|_| ModelError::InvalidCidr(req.cidr_block.clone()))?;
        if !(8..=28).contains(&cidr.prefix_len()) || cidr.network() != cidr.addr() {
            return Err(ModelError::InvalidCidr(req.cidr_block));
        }
        let ids = self.idempotent(idem, |m| {
            if m.vpcs.len() >= m.quotas.vpcs as usize {
                return Err(ModelError::Quota(Kind::Vpc));
            }
            let id = m.new_id("vpc");
            let router_id = m.new_id("vrt");
            let route_table_id = m.new_id("vtb");
            m.vpcs.insert(
                id.clone(),
                Vpc {
                    id: id.clone(),
                    region: req.region,
                    cidr_block: cidr.to_string(),
                    name: req.name,
                    description: req.description,
                    router_id,
                    route_table_id,
                    tags: req.tags,
                    created: Timestamp::now(),
                },
            );
            Ok(vec![id])
        })?;
        first(ids)
    }

    pub fn delete_vpc(&mut self, region: &str, id: &str) -> ModelResult<()> {
        self.vpc(id, region)?;
        if self.subnets.values().any(|s| s.vpc_id == id) {
            return Err(ModelError::Dependency {
                kind: Kind::Vpc,
                id: id.into(),
                blocker: Kind::Subnet,
            });
        }
        if self.security_groups.values().any(|s| s.vpc_id == id) {
            return Err(ModelError::Dependency {
                kind: Kind::Vpc,
                id: id.into(),
                blocker: Kind::SecurityGroup,
            });
        }
        self.vpcs.remove(id);
        Ok(())
    }

    pub fn list_vpcs<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a Vpc> + 'a {
        self.vpcs.values().filter(move |v| v.region == region)
    }

    // ---- Subnets ----

    pub fn create_subnet(&mut self, req: CreateSubnet, idem: Option<&Idem>) -> ModelResult<String> {
        self.check_region(&req.region)?;
        let vpc_cidr: Ipv4Net = self
            .vpc(&req.vpc_id, &req.region)?
            .cidr_block
            .parse()
            .map_err(|_| ModelError::InvalidCidr(req.vpc_id.clone()))?;
        let cidr: Ipv4Net = req
            .cidr_block
            .parse()
            .map_err(|_| ModelError::InvalidCidr(req.cidr_block.clone()))?;
        if !(16..=29).contains(&cidr.prefix_len())
            || cidr.network() != cidr.addr()
            || !vpc_cidr.contains(&cidr)
        {
            return Err(ModelError::InvalidCidr(req.cidr_block));
        }
        if req.zone.is_empty() {
            return Err(ModelError::Invalid("ZoneId is required".into()));
        }
        let ids = self.idempotent(idem, |m| {
            let overlaps = m
                .subnets
                .values()
                .filter(|s| s.vpc_id == req.vpc_id)
                .any(|s| {
                    s.cidr_block
                        .parse::<Ipv4Net>()
                        .is_ok_and(|other| other.contains(&cidr) || cidr.contains(&other))
                });
            if overlaps {
                return Err(ModelError::CidrOverlap(req.cidr_block.clone()));
            }
            if m.subnets
                .values()
                .filter(|s| s.vpc_id == req.vpc_id)
                .count()
                >= m.quotas.subnets_per_vpc as usize
            {
                return Err(ModelError::Quota(Kind::Subnet));
            }
            let id = m.new_id("vsw");
            m.subnets.insert(
                id.clone(),
                Subnet {
                    id: id.clone(),
                    region: req.region,
                    vpc_id: req.vpc_id,
                    zone: req.zone,
                    cidr_block: cidr.to_string(),
                    name: req.name,
                    description: req.description,
                    tags: req.tags,
                    created: Timestamp::now(),
                    next_host: 0,
                },
            );
            Ok(vec![id])
        })?;
        first(ids)
    }

    pub fn delete_subnet(&mut self, region: &str, id: &str) -> ModelResult<()> {
        self.get_subnet(id, region)?;
        if self.instances.values().any(|i| i.subnet_id == id) {
            return Err(ModelError::Dependency {
                kind: Kind::Subnet,
                id: id.into(),
                blocker: Kind::Instance,
            });
        }
        self.subnets.remove(id);
        Ok(())
    }

    /// Free addresses left in a subnet (the first three and the last one are reserved).
    pub fn subnet_free_ips(&self, subnet: &Subnet) -> u64 {
        let size = subnet
            .cidr_block
            .parse::<Ipv4Net>()
            .map(|n| 1u64 << (32 - n.prefix_len()))
            .unwrap_or(0);
        size.saturating_sub(4)
            .saturating_sub(u64::from(subnet.next_host))
    }

    fn allocate_private_ip(&mut self, subnet_id: &str) -> ModelResult<Ipv4Addr> {
        let subnet = self
            .subnets
            .get_mut(subnet_id)
            .ok_or_else(|| ModelError::NotFound {
                kind: Kind::Subnet,
                id: subnet_id.into(),
            })?;
        let net: Ipv4Net = subnet
            .cidr_block
            .parse()
            .map_err(|_| ModelError::InvalidCidr(subnet.cidr_block.clone()))?;
        let size = 1u64 << (32 - net.prefix_len());
        let offset = u64::from(subnet.next_host) + 3;
        if offset + 1 >= size {
            return Err(ModelError::Invalid(format!(
                "no free IP address left in {subnet_id}"
            )));
        }
        subnet.next_host += 1;
        let base = u32::from(net.network());
        Ok(Ipv4Addr::from(
            base + u32::try_from(offset).unwrap_or(u32::MAX),
        ))
    }

    // ---- Security groups ----

    pub fn create_security_group(
        &mut self,
        req: CreateSecurityGroup,
        idem: Option<&Idem>,
    ) -> ModelResult<String> {
        self.check_region(&req.region)?;
        self.vpc(&req.vpc_id, &req.region)?;
        let ids = self.idempotent(idem, |m| {
            if m.security_groups.len() >= m.quotas.security_groups as usize {
                return Err(ModelError::Quota(Kind::SecurityGroup));
            }
            let id = m.new_id("sg");
            m.security_groups.insert(
                id.clone(),
                SecurityGroup {
                    id: id.clone(),
                    region: req.region,
                    vpc_id: req.vpc_id,
                    name: req.name,
                    description: req.description,
                    tags: req.tags,
                    rules: Vec::new(),
                    created: Timestamp::now(),
                },
            );
            Ok(vec![id])
        })?;
        first(ids)
    }

    pub fn delete_security_group(&mut self, region: &str, id: &str) -> ModelResult<()> {
        self.get_security_group(id, region)?;
        if self
            .instances
            .values()
            .any(|i| i.security_group_ids.iter().any(|s| s == id))
        {
            return Err(ModelError::Dependency {
                kind: Kind::SecurityGroup,
                id: id.into(),
                blocker: Kind::Instance,
            });
        }
        self.security_groups.remove(id);
        Ok(())
    }

    /// Adds the rules not already present; identical rules are skipped. Returns how many were added.
    pub fn authorize(
        &mut self,
        region: &str,
        id: &str,
        specs: Vec<RuleSpec>,
    ) -> ModelResult<usize> {
        self.get_security_group(id, region)?;
        let limit = self.quotas.rules_per_security_group as usize;
        let mut new_ids = Vec::new();
        for _ in &specs {
            new_ids.push(self.new_id("sgr"));
        }
        let group = self
            .security_groups
            .get_mut(id)
            .ok_or_else(|| ModelError::NotFound {
                kind: Kind::SecurityGroup,
                id: id.into(),
            })?;
        let mut fresh: Vec<RuleSpec> = Vec::new();
        for spec in specs {
            if !group.rules.iter().any(|r| r.same_as(&spec)) && !fresh.contains(&spec) {
                fresh.push(spec);
            }
        }
        if group.rules.len() + fresh.len() > limit {
            return Err(ModelError::Quota(Kind::SecurityGroupRule));
        }
        let added = fresh.len();
        let now = Timestamp::now();
        for (spec, rule_id) in fresh.into_iter().zip(new_ids) {
            group.rules.push(Rule {
                id: rule_id,
                protocol: spec.protocol,
                port_range: spec.port_range,
                source_cidr: spec.source_cidr,
                policy: spec.policy,
                priority: spec.priority,
                description: spec.description,
                created: now,
            });
        }
        Ok(added)
    }

    /// Removes matching rules (by content or by rule id); absent rules are ignored.
    pub fn revoke(
        &mut self,
        region: &str,
        id: &str,
        specs: &[RuleSpec],
        rule_ids: &[String],
    ) -> ModelResult<usize> {
        self.get_security_group(id, region)?;
        let group = self
            .security_groups
            .get_mut(id)
            .ok_or_else(|| ModelError::NotFound {
                kind: Kind::SecurityGroup,
                id: id.into(),
            })?;
        let before = group.rules.len();
        group
            .rules
            .retain(|r| !specs.iter().any(|s| r.same_as(s)) && !rule_ids.contains(&r.id));
        Ok(before - group.rules.len())
    }

    // ---- Instances ----

    /// Creates instances; returns their ids and the total hourly price.
    pub fn run_instances(
        &mut self,
        req: RunInstances,
        idem: Option<&Idem>,
        now: Instant,
    ) -> ModelResult<Vec<String>> {
        self.check_region(&req.region)?;
        if req.amount == 0 || req.amount > 100 || req.min_amount > req.amount {
            return Err(ModelError::Invalid(
                "Amount must be within 1..100 and not below MinAmount".into(),
            ));
        }
        let subnet = self.get_subnet(&req.subnet_id, &req.region)?;
        let (vpc_id, subnet_zone) = (subnet.vpc_id.clone(), subnet.zone.clone());
        let zone = req
            .zone
            .clone()
            .filter(|z| !z.is_empty())
            .unwrap_or_else(|| subnet_zone.clone());
        if zone != subnet_zone {
            return Err(ModelError::Invalid(format!(
                "the VSwitch {} is not in zone {zone}",
                req.subnet_id
            )));
        }
        if req.security_group_ids.is_empty() {
            return Err(ModelError::Invalid("a security group is required".into()));
        }
        for sg in &req.security_group_ids {
            if self.get_security_group(sg, &req.region)?.vpc_id != vpc_id {
                return Err(ModelError::Invalid(format!(
                    "the security group {sg} and the VSwitch are not in the same VPC"
                )));
            }
        }
        let hourly = self.settings.prices.quote(
            &req.instance_type,
            req.disk_gib,
            req.bandwidth_out,
            1.0,
            1,
        )?;
        if req.dry_run {
            return Ok(Vec::new());
        }
        self.idempotent(idem, |m| {
            let room = (m.quotas.instances as usize).saturating_sub(m.instances.len());
            let stock_key = (req.instance_type.clone(), zone.clone());
            let stock = m.stock.get(&stock_key).map_or(usize::MAX, |s| *s as usize);
            let min = if req.min_amount == 0 {
                req.amount
            } else {
                req.min_amount
            } as usize;
            if stock < min {
                return Err(ModelError::NoStock {
                    instance_type: req.instance_type.clone(),
                    zone: zone.clone(),
                });
            }
            if room < min {
                return Err(ModelError::Quota(Kind::Instance));
            }
            let count = (req.amount as usize).min(room).min(stock);
            let free = m
                .subnets
                .get(&req.subnet_id)
                .map_or(0, |s| m.subnet_free_ips(s));
            if (count as u64) > free {
                return Err(ModelError::Invalid(format!(
                    "not enough free IP addresses in {}",
                    req.subnet_id
                )));
            }
            if let Some(s) = m.stock.get_mut(&stock_key) {
                *s -= count as u32;
            }
            let created = Timestamp::now();
            let mut ids = Vec::with_capacity(count);
            for n in 0..count {
                let id = m.new_id("i");
                let private_ip = m.allocate_private_ip(&req.subnet_id)?;
                let public_ip = (req.bandwidth_out > 0).then(|| m.new_public_ip(47));
                let name = if req.name.is_empty() {
                    id.clone()
                } else if count > 1 {
                    format!("{}-{}", req.name, n + 1)
                } else {
                    req.name.clone()
                };
                m.instances.insert(
                    id.clone(),
                    Instance {
                        id: id.clone(),
                        region: req.region.clone(),
                        zone: zone.clone(),
                        instance_type: req.instance_type.clone(),
                        image_id: req.image_id.clone(),
                        vpc_id: vpc_id.clone(),
                        subnet_id: req.subnet_id.clone(),
                        security_group_ids: req.security_group_ids.clone(),
                        name,
                        description: req.description.clone(),
                        private_ip,
                        public_ip,
                        eip_id: None,
                        charge_type: req.charge_type.clone(),
                        internet_charge_type: req.internet_charge_type.clone(),
                        bandwidth_out: req.bandwidth_out,
                        disk_category: req.disk_category.clone(),
                        disk_gib: req.disk_gib,
                        password_set: req.password_set,
                        key_pair_name: req.key_pair_name.clone(),
                        hourly_price: hourly,
                        tags: req.tags.clone(),
                        created,
                        boot_started: now,
                        first_boot: true,
                        stopped: false,
                    },
                );
                ids.push(id);
            }
            Ok(ids)
        })
    }

    pub fn instance_status(&self, instance: &Instance, now: Instant) -> InstanceStatus {
        instance.status_at(now, self.settings.boot_delay)
    }

    pub fn stop_instance(&mut self, region: &str, id: &str, now: Instant) -> ModelResult<()> {
        let status = self.instance_status(self.get_instance(id, region)?, now);
        match status {
            InstanceStatus::Running | InstanceStatus::Stopped => {}
            other => {
                return Err(ModelError::InstanceStatus {
                    id: id.into(),
                    status: other.as_str(),
                    message: "only a Running instance can be stopped".into(),
                });
            }
        }
        if let Some(i) = self.instances.get_mut(id) {
            i.stopped = true;
        }
        Ok(())
    }

    pub fn start_instance(&mut self, region: &str, id: &str, now: Instant) -> ModelResult<()> {
        let status = self.instance_status(self.get_instance(id, region)?, now);
        if status != InstanceStatus::Stopped {
            return Err(ModelError::InstanceStatus {
                id: id.into(),
                status: status.as_str(),
                message: "only a Stopped instance can be started".into(),
            });
        }
        if let Some(i) = self.instances.get_mut(id) {
            i.stopped = false;
            i.first_boot = false;
            i.boot_started = now;
        }
        Ok(())
    }

    /// Deletes instances (all or none). Without `force` each must be Stopped. Associated EIPs
    /// are disassociated; the stock is given back.
    pub fn delete_instances(
        &mut self,
        region: &str,
        ids: &[String],
        force: bool,
        now: Instant,
    ) -> ModelResult<()> {
        for id in ids {
            let instance = self.get_instance(id, region)?;
            let status = self.instance_status(instance, now);
            if !force && status != InstanceStatus::Stopped {
                return Err(ModelError::InstanceStatus {
                    id: id.clone(),
                    status: status.as_str(),
                    message: "the instance must be Stopped, or deleted with Force".into(),
                });
            }
        }
        for id in ids {
            if let Some(instance) = self.instances.remove(id) {
                if let Some(eip) = instance.eip_id.as_ref().and_then(|e| self.eips.get_mut(e)) {
                    eip.instance_id = None;
                }
                if let Some(s) = self
                    .stock
                    .get_mut(&(instance.instance_type.clone(), instance.zone.clone()))
                {
                    *s += 1;
                }
            }
        }
        Ok(())
    }

    // ---- EIPs ----

    pub fn allocate_eip(&mut self, req: AllocateEip, idem: Option<&Idem>) -> ModelResult<String> {
        self.check_region(&req.region)?;
        if req.bandwidth == 0 || req.bandwidth > 500 {
            return Err(ModelError::Invalid(
                "Bandwidth must be within 1..500".into(),
            ));
        }
        let ids = self.idempotent(idem, |m| {
            if m.eips.len() >= m.quotas.eips as usize {
                return Err(ModelError::Quota(Kind::Eip));
            }
            let id = m.new_id("eip");
            let ip = m.new_public_ip(39);
            m.eips.insert(
                id.clone(),
                Eip {
                    id: id.clone(),
                    region: req.region,
                    ip,
                    bandwidth: req.bandwidth,
                    internet_charge_type: req.internet_charge_type,
                    name: req.name,
                    description: req.description,
                    instance_id: None,
                    tags: req.tags,
                    created: Timestamp::now(),
                },
            );
            Ok(vec![id])
        })?;
        first(ids)
    }

    pub fn associate_eip(
        &mut self,
        region: &str,
        eip_id: &str,
        instance_id: &str,
        now: Instant,
    ) -> ModelResult<()> {
        let eip = self.get_eip(eip_id, region)?;
        if let Some(current) = &eip.instance_id {
            if current == instance_id {
                return Ok(());
            }
            return Err(ModelError::EipStatus {
                id: eip_id.into(),
                status: "InUse",
                message: format!("already associated with {current}"),
            });
        }
        let instance = self.get_instance(instance_id, region)?;
        let status = self.instance_status(instance, now);
        if !matches!(status, InstanceStatus::Running | InstanceStatus::Stopped) {
            return Err(ModelError::InstanceStatus {
                id: instance_id.into(),
                status: status.as_str(),
                message: "an EIP can be associated only with a Running or Stopped instance".into(),
            });
        }
        if instance.eip_id.is_some() || instance.public_ip.is_some() {
            return Err(ModelError::InstanceStatus {
                id: instance_id.into(),
                status: status.as_str(),
                message: "the instance already has a public IP address".into(),
            });
        }
        if let Some(i) = self.instances.get_mut(instance_id) {
            i.eip_id = Some(eip_id.into());
        }
        if let Some(e) = self.eips.get_mut(eip_id) {
            e.instance_id = Some(instance_id.into());
        }
        Ok(())
    }

    pub fn unassociate_eip(
        &mut self,
        region: &str,
        eip_id: &str,
        instance_id: Option<&str>,
    ) -> ModelResult<()> {
        let eip = self.get_eip(eip_id, region)?;
        let Some(current) = eip.instance_id.clone() else {
            return Err(ModelError::EipStatus {
                id: eip_id.into(),
                status: "Available",
                message: "not associated".into(),
            });
        };
        if instance_id.is_some_and(|i| i != current) {
            return Err(ModelError::EipStatus {
                id: eip_id.into(),
                status: "InUse",
                message: format!(
                    "associated with {current}, not {}",
                    instance_id.unwrap_or_default()
                ),
            });
        }
        if let Some(i) = self.instances.get_mut(&current) {
            i.eip_id = None;
        }
        if let Some(e) = self.eips.get_mut(eip_id) {
            e.instance_id = None;
        }
        Ok(())
    }

    pub fn modify_eip(
        &mut self,
        region: &str,
        eip_id: &str,
        bandwidth: Option<u32>,
        name: Option<String>,
        description: Option<String>,
    ) -> ModelResult<()> {
        self.get_eip(eip_id, region)?;
        if bandwidth.is_some_and(|b| b == 0 || b > 500) {
            return Err(ModelError::Invalid(
                "Bandwidth must be within 1..500".into(),
            ));
        }
        if let Some(e) = self.eips.get_mut(eip_id) {
            if let Some(b) = bandwidth {
                e.bandwidth = b;
            }
            if let Some(n) = name {
                e.name = n;
            }
            if let Some(d) = description {
                e.description = d;
            }
        }
        Ok(())
    }

    pub fn release_eip(&mut self, region: &str, eip_id: &str) -> ModelResult<()> {
        let eip = self.get_eip(eip_id, region)?;
        if let Some(instance) = &eip.instance_id {
            return Err(ModelError::EipStatus {
                id: eip_id.into(),
                status: "InUse",
                message: format!("associated with {instance}: unassociate it first"),
            });
        }
        self.eips.remove(eip_id);
        Ok(())
    }

    fn tags_mut(&mut self, kind: Kind, region: &str, id: &str) -> Option<&mut Tags> {
        match kind {
            Kind::Vpc => tags_in_region(&mut self.vpcs, id, region, |r| (&r.region, &mut r.tags)),
            Kind::Subnet => {
                tags_in_region(&mut self.subnets, id, region, |r| (&r.region, &mut r.tags))
            }
            Kind::SecurityGroup => tags_in_region(&mut self.security_groups, id, region, |r| {
                (&r.region, &mut r.tags)
            }),
            Kind::Instance => tags_in_region(&mut self.instances, id, region, |r| {
                (&r.region, &mut r.tags)
            }),
            Kind::Eip => tags_in_region(&mut self.eips, id, region, |r| (&r.region, &mut r.tags)),
            Kind::SecurityGroupRule => None,
        }
    }

    /// Adds or overwrites tags on resources (all or none).
    pub fn tag_resources(
        &mut self,
        kind: Kind,
        region: &str,
        ids: &[String],
        tags: &Tags,
    ) -> ModelResult<()> {
        let limit = self.quotas.tags_per_resource as usize;
        for id in ids {
            let current = self
                .tags_mut(kind, region, id)
                .ok_or_else(|| ModelError::NotFound {
                    kind,
                    id: id.clone(),
                })?;
            let added = tags.keys().filter(|k| !current.contains_key(*k)).count();
            if current.len() + added > limit {
                return Err(ModelError::TagLimit(id.clone()));
            }
        }
        for id in ids {
            if let Some(current) = self.tags_mut(kind, region, id) {
                current.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(())
    }

    /// Removes tags by key (or all of them); absent keys are ignored.
    pub fn untag_resources(
        &mut self,
        kind: Kind,
        region: &str,
        ids: &[String],
        keys: &[String],
        all: bool,
    ) -> ModelResult<()> {
        for id in ids {
            self.tags_mut(kind, region, id)
                .ok_or_else(|| ModelError::NotFound {
                    kind,
                    id: id.clone(),
                })?;
        }
        for id in ids {
            if let Some(current) = self.tags_mut(kind, region, id) {
                if all {
                    current.clear();
                } else {
                    current.retain(|k, _| !keys.contains(k));
                }
            }
        }
        Ok(())
    }

    /// Every resource, for the inspection endpoint. Passwords are never held; only `passwordSet`.
    pub fn snapshot(&self, now: Instant) -> serde_json::Value {
        let instances: Vec<serde_json::Value> = self
            .instances
            .values()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        "status".into(),
                        self.instance_status(i, now).as_str().into(),
                    );
                }
                v
            })
            .collect();
        let eips: Vec<serde_json::Value> = self
            .eips
            .values()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("status".into(), e.status().as_str().into());
                }
                v
            })
            .collect();
        serde_json::json!({
            "counts": {
                "vpcs": self.vpcs.len(),
                "subnets": self.subnets.len(),
                "securityGroups": self.security_groups.len(),
                "securityGroupRules": self.security_groups.values().map(|g| g.rules.len()).sum::<usize>(),
                "instances": self.instances.len(),
                "eips": self.eips.len(),
                "total": self.resource_count(),
            },
            "vpcs": self.vpcs.values().collect::<Vec<_>>(),
            "subnets": self.subnets.values().collect::<Vec<_>>(),
            "securityGroups": self.security_groups.values().collect::<Vec<_>>(),
            "instances": instances,
            "eips": eips,
            "quotas": self.quotas,
            "stock": stock_list(&self.stock),
        })
    }
}

/// Stock as a JSON-friendly list.
pub fn stock_list(stock: &HashMap<(String, String), u32>) -> Vec<StockEntry> {
    let mut list: Vec<StockEntry> = stock
        .iter()
        .map(|((t, z), n)| StockEntry {
            instance_type: t.clone(),
            zone: z.clone(),
            available: Some(*n),
        })
        .collect();
    list.sort_by(|a, b| (&a.instance_type, &a.zone).cmp(&(&b.instance_type, &b.zone)));
    list
}

/// One stock entry; `available: null` means unlimited (removes the entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockEntry {
    pub instance_type: String,
    pub zone: String,
    pub available: Option<u32>,
}

fn first(ids: Vec<String>) -> ModelResult<String> {
    ids.into_iter()
        .next()
        .ok_or_else(|| ModelError::Invalid("no resource was created".into()))
}

/// A resource by id, if it exists in the region (resources of other regions are invisible).
fn in_region<'a, T>(
    resources: &'a BTreeMap<String, T>,
    kind: Kind,
    id: &str,
    region: &str,
    region_of: impl Fn(&T) -> &String,
) -> ModelResult<&'a T> {
    resources
        .get(id)
        .filter(|r| region_of(r) == region)
        .ok_or_else(|| ModelError::NotFound {
            kind,
            id: id.to_string(),
        })
}

/// The tags of a resource by id, if it exists in the region.
fn tags_in_region<'a, T>(
    resources: &'a mut BTreeMap<String, T>,
    id: &str,
    region: &str,
    fields: impl FnOnce(&'a mut T) -> (&'a String, &'a mut Tags),
) -> Option<&'a mut Tags> {
    let (resource_region, tags) = fields(resources.get_mut(id)?);
    (resource_region == region).then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ModelSettings {
        ModelSettings {
            boot_delay: Duration::from_secs(10),
            ..ModelSettings::default()
        }
    }

    fn vpc_req(cidr: &str) -> CreateVpc {
        CreateVpc {
            region: "cn-hangzhou".into(),
            cidr_block: cidr.into(),
            name: "v".into(),
            description: String::new(),
            tags: Tags::from([("owner".to_string(), "me".to_string())]),
        }
    }

    fn idem(token: &str, fp: &str) -> Idem {
        Idem {
            scope: "CreateVpc".into(),
            token: token.into(),
            fingerprint: fp.into(),
        }
    }

    /// A VPC, a subnet and a security group; returns (vpc, subnet, sg).
    fn network(m: &mut Model) -> (String, String, String) {
        let vpc = m.create_vpc(vpc_req("10.0.0.0/16"), None).unwrap();
        let subnet = m
            .create_subnet(
                CreateSubnet {
                    region: "cn-hangzhou".into(),
                    vpc_id: vpc.clone(),
                    zone: "cn-hangzhou-i".into(),
                    cidr_block: "10.0.1.0/24".into(),
                    name: String::new(),
                    description: String::new(),
                    tags: Tags::new(),
                },
                None,
            )
            .unwrap();
        let sg = m
            .create_security_group(
                CreateSecurityGroup {
                    region: "cn-hangzhou".into(),
                    vpc_id: vpc.clone(),
                    name: String::new(),
                    description: String::new(),
                    tags: Tags::new(),
                },
                None,
            )
            .unwrap();
        (vpc, subnet, sg)
    }

    fn run_req(subnet: &str, sg: &str, amount: u32) -> RunInstances {
        RunInstances {
            region: "cn-hangzhou".into(),
            zone: None,
            instance_type: "ecs.g7.large".into(),
            image_id: "ubuntu".into(),
            subnet_id: subnet.into(),
            security_group_ids: vec![sg.into()],
            name: "n".into(),
            description: String::new(),
            charge_type: "PostPaid".into(),
            internet_charge_type: "PayByTraffic".into(),
            bandwidth_out: 0,
            disk_category: "cloud_essd".into(),
            disk_gib: 40,
            password_set: true,
            key_pair_name: None,
            tags: Tags::new(),
            amount,
            min_amount: 0,
            dry_run: false,
        }
    }

    #[test]
    fn client_token_makes_creates_idempotent() {
        let mut m = Model::new(settings());
        let a = m
            .create_vpc(vpc_req("10.0.0.0/16"), Some(&idem("t1", "fp")))
            .unwrap();
        let b = m
            .create_vpc(vpc_req("10.0.0.0/16"), Some(&idem("t1", "fp")))
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(m.vpcs.len(), 1);
        let err = m
            .create_vpc(vpc_req("10.1.0.0/16"), Some(&idem("t1", "other")))
            .unwrap_err();
        assert_eq!(err, ModelError::IdempotencyMismatch);
        let c = m
            .create_vpc(vpc_req("10.0.0.0/16"), Some(&idem("t2", "fp")))
            .unwrap();
        assert_ne!(a, c);
        assert_eq!(m.vpcs.len(), 2);
    }

    #[test]
    fn failed_create_does_not_consume_token() {
        let mut m = Model::new(settings());
        m.quotas.vpcs = 0;
        assert_eq!(
            m.create_vpc(vpc_req("10.0.0.0/16"), Some(&idem("t", "fp")))
                .unwrap_err(),
            ModelError::Quota(Kind::Vpc)
        );
        m.quotas.vpcs = 1;
        m.create_vpc(vpc_req("10.0.0.0/16"), Some(&idem("t", "fp")))
            .unwrap();
        assert_eq!(
            m.create_vpc(vpc_req("10.0.0.0/16"), None).unwrap_err(),
            ModelError::Quota(Kind::Vpc)
        );
    }

    #[test]
    fn dependencies_block_deletes() {
        let mut m = Model::new(settings());
        let (vpc, subnet, sg) = network(&mut m);
        let now = Instant::now();
        let ids = m
            .run_instances(run_req(&subnet, &sg, 1), None, now)
            .unwrap();
        assert!(matches!(
            m.delete_vpc("cn-hangzhou", &vpc),
            Err(ModelError::Dependency {
                blocker: Kind::Subnet,
                ..
            })
        ));
        assert!(matches!(
            m.delete_subnet("cn-hangzhou", &subnet),
            Err(ModelError::Dependency {
                blocker: Kind::Instance,
                ..
            })
        ));
        assert!(matches!(
            m.delete_security_group("cn-hangzhou", &sg),
            Err(ModelError::Dependency {
                blocker: Kind::Instance,
                ..
            })
        ));
        m.delete_instances("cn-hangzhou", &ids, true, now).unwrap();
        m.delete_subnet("cn-hangzhou", &subnet).unwrap();
        assert!(matches!(
            m.delete_vpc("cn-hangzhou", &vpc),
            Err(ModelError::Dependency {
                blocker: Kind::SecurityGroup,
                ..
            })
        ));
        m.delete_security_group("cn-hangzhou", &sg).unwrap();
        m.delete_vpc("cn-hangzhou", &vpc).unwrap();
        assert_eq!(m.resource_count(), 0);
        assert!(matches!(
            m.delete_vpc("cn-hangzhou", &vpc),
            Err(ModelError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
    }

    #[test]
    fn instances_boot_then_stop_and_delete() {
        let mut m = Model::new(settings());
        let (_, subnet, sg) = network(&mut m);
        let t0 = Instant::now();
        let ids = m.run_instances(run_req(&subnet, &sg, 2), None, t0).unwrap();
        assert_eq!(ids.len(), 2);
        let i = &m.instances[&ids[0]];
        assert_eq!(m.instance_status(i, t0), InstanceStatus::Pending);
        assert_eq!(
            m.instance_status(i, t0 + Duration::from_secs(6)),
            InstanceStatus::Starting
        );
        assert_eq!(
            m.instance_status(i, t0 + Duration::from_secs(10)),
            InstanceStatus::Running
        );
        assert_ne!(
            m.instances[&ids[0]].private_ip,
            m.instances[&ids[1]].private_ip
        );
        let err = m
            .delete_instances("cn-hangzhou", &ids[..1], false, t0)
            .unwrap_err();
        assert!(matches!(
            err,
            ModelError::InstanceStatus {
                status: "Pending",
                ..
            }
        ));
        let later = t0 + Duration::from_secs(11);
        m.stop_instance("cn-hangzhou", &ids[0], later).unwrap();
        m.delete_instances("cn-hangzhou", &ids[..1], false, later)
            .unwrap();
        m.delete_instances("cn-hangzhou", &ids[1..], true, t0)
            .unwrap();
        assert!(m.instances.is_empty());
    }

    #[test]
    fn instance_quota_and_stock() {
        let mut m = Model::new(settings());
        let (_, subnet, sg) = network(&mut m);
        let now = Instant::now();
        m.stock
            .insert(("ecs.g7.large".into(), "cn-hangzhou-i".into()), 1);
        let token = Idem {
            scope: "RunInstances".into(),
            token: "tok".into(),
            fingerprint: "fp".into(),
        };
        let err = m
            .run_instances(run_req(&subnet, &sg, 2), Some(&token), now)
            .unwrap_err();
        assert!(matches!(err, ModelError::NoStock { .. }));
        // MinAmount lets a partial creation through.
        let mut req = run_req(&subnet, &sg, 2);
        req.min_amount = 1;
        let ids = m.run_instances(req, None, now).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            m.stock[&("ecs.g7.large".to_string(), "cn-hangzhou-i".to_string())],
            0
        );
        m.delete_instances("cn-hangzhou", &ids, true, now).unwrap();
        assert_eq!(
            m.stock[&("ecs.g7.large".to_string(), "cn-hangzhou-i".to_string())],
            1
        );
        m.stock.clear();
        m.quotas.instances = 1;
        let err = m
            .run_instances(run_req(&subnet, &sg, 2), None, now)
            .unwrap_err();
        assert_eq!(err, ModelError::Quota(Kind::Instance));
        // The token was not consumed by the stock failure.
        assert_eq!(
            m.run_instances(run_req(&subnet, &sg, 1), Some(&token), now)
                .unwrap()
                .len(),
            1
        );
        let again = m
            .run_instances(run_req(&subnet, &sg, 1), Some(&token), now)
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(m.instances.len(), 1);
    }

    #[test]
    fn eips_follow_their_instance() {
        let mut m = Model::new(settings());
        let (_, subnet, sg) = network(&mut m);
        let t0 = Instant::now();
        let ids = m.run_instances(run_req(&subnet, &sg, 1), None, t0).unwrap();
        let eip = m
            .allocate_eip(
                AllocateEip {
                    region: "cn-hangzhou".into(),
                    bandwidth: 5,
                    internet_charge_type: "PayByTraffic".into(),
                    name: String::new(),
                    description: String::new(),
                    tags: Tags::new(),
                },
                None,
            )
            .unwrap();
        assert!(matches!(
            m.associate_eip("cn-hangzhou", &eip, &ids[0], t0),
            Err(ModelError::InstanceStatus {
                status: "Pending",
                ..
            })
        ));
        let later = t0 + Duration::from_secs(20);
        m.associate_eip("cn-hangzhou", &eip, &ids[0], later)
            .unwrap();
        assert_eq!(m.eips[&eip].status(), EipStatus::InUse);
        assert!(matches!(
            m.release_eip("cn-hangzhou", &eip),
            Err(ModelError::EipStatus {
                status: "InUse",
                ..
            })
        ));
        m.delete_instances("cn-hangzhou", &ids, true, later)
            .unwrap();
        assert_eq!(m.eips[&eip].status(), EipStatus::Available);
        m.release_eip("cn-hangzhou", &eip).unwrap();
        assert!(m.eips.is_empty());
    }

    #[test]
    fn identical_rules_are_added_once_and_limited() {
        let mut m = Model::new(settings());
        let (_, _, sg) = network(&mut m);
        let rule = RuleSpec {
            protocol: "tcp".into(),
            port_range: "22/22".into(),
            source_cidr: "0.0.0.0/0".into(),
            policy: "accept".into(),
            priority: 1,
            description: String::new(),
        };
        assert_eq!(
            m.authorize("cn-hangzhou", &sg, vec![rule.clone(), rule.clone()])
                .unwrap(),
            1
        );
        assert_eq!(
            m.authorize("cn-hangzhou", &sg, vec![rule.clone()]).unwrap(),
            0
        );
        m.quotas.rules_per_security_group = 1;
        let other = RuleSpec {
            port_range: "80/80".into(),
            ..rule.clone()
        };
        assert_eq!(
            m.authorize("cn-hangzhou", &sg, vec![other]).unwrap_err(),
            ModelError::Quota(Kind::SecurityGroupRule)
        );
        assert_eq!(m.revoke("cn-hangzhou", &sg, &[rule], &[]).unwrap(), 1);
        assert!(m.security_groups[&sg].rules.is_empty());
    }

    #[test]
    fn tags_are_added_overwritten_removed_and_limited() {
        let mut m = Model::new(settings());
        let (vpc, _, _) = network(&mut m);
        let ids = vec![vpc.clone()];
        let tags = Tags::from([
            ("owner".to_string(), "you".to_string()),
            ("env".to_string(), "dev".to_string()),
        ]);
        m.tag_resources(Kind::Vpc, "cn-hangzhou", &ids, &tags)
            .unwrap();
        assert_eq!(m.vpcs[&vpc].tags["owner"], "you");
        m.untag_resources(
            Kind::Vpc,
            "cn-hangzhou",
            &ids,
            &["env".to_string(), "nope".to_string()],
            false,
        )
        .unwrap();
        assert_eq!(m.vpcs[&vpc].tags.len(), 1);
        m.quotas.tags_per_resource = 1;
        let more = Tags::from([("x".to_string(), "1".to_string())]);
        assert!(matches!(
            m.tag_resources(Kind::Vpc, "cn-hangzhou", &ids, &more),
            Err(ModelError::TagLimit(_))
        ));
        assert!(matches!(
            m.tag_resources(Kind::Instance, "cn-hangzhou", &["i-x".to_string()], &more),
            Err(ModelError::NotFound {
                kind: Kind::Instance,
                ..
            })
        ));
        m.untag_resources(Kind::Vpc, "cn-hangzhou", &ids, &[], true)
            .unwrap();
        assert!(m.vpcs[&vpc].tags.is_empty());
    }

    #[test]
    fn prices_and_tag_filters() {
        let prices = PriceTable::default();
        assert_eq!(prices.quote("ecs.g7.large", 40, 0, 1.0, 1).unwrap(), 0.75);
        let strict = PriceTable {
            default_instance_hourly: None,
            ..PriceTable::default()
        };
        assert!(matches!(
            strict.quote("ecs.nope", 40, 0, 1.0, 1),
            Err(ModelError::UnknownInstanceType(_))
        ));
        let tags = Tags::from([("a".to_string(), "1".to_string())]);
        assert!(tags_match(&tags, &[("a".into(), Some("1".into()))]));
        assert!(tags_match(&tags, &[("a".into(), None)]));
        assert!(!tags_match(&tags, &[("a".into(), Some("2".into()))]));
        assert!(!tags_match(&tags, &[("b".into(), None)]));
    }
}
