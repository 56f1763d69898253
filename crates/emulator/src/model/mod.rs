//! Provider-neutral resource model of the emulator: VPCs, subnets, security groups and their
//! rules, instances, elastic IPs, tags, idempotency tokens, quotas, stock, prices and faults.
//!
//! Front ends (the Alibaba Cloud RPC one today, others later) translate wire parameters into the
//! typed calls below and map [`ModelError`] to their own error codes. Nothing here knows HTTP.
//! Time is passed in explicitly (`now`), so instance states are computed, not driven by timers.

mod compute;
mod network;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use compute::ZoneStock;
pub use types::*;

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

/// The API front end a resource belongs to. Each front end creates in its own realm, which
/// decides the style of new ids and the regions accepted, and lists only that realm's
/// resources, so a client of one cloud never sees another cloud's VPC. Quotas count per realm,
/// as each cloud is a separate account. Operations by id never cross realms in practice: the
/// realms' regions are disjoint, and every lookup is by (id, region).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Realm {
    pub name: &'static str,
    /// Ids as `<prefix>-<8 lower-case letters or digits>` instead of the default
    /// `<prefix>-bp1<sequence><8 random>`.
    pub short_ids: bool,
    /// Id prefixes replacing the model's own (`("i", "ins")`).
    pub prefixes: &'static [(&'static str, &'static str)],
    /// Regions accepted; `None` takes [`ModelSettings::regions`].
    pub regions: Option<&'static [&'static str]>,
    /// Zones of every region as `<region>-<suffix>`; `None` takes [`ModelSettings::zones`].
    /// They are where the realm's instance types are offered (see [`Model::zone_stock`]).
    pub zone_suffixes: Option<&'static [&'static str]>,
}

/// The realm of the first front end (Alibaba Cloud) and of in-process drivers.
pub const DEFAULT_REALM: Realm = Realm {
    name: "default",
    short_ids: false,
    prefixes: &[],
    regions: None,
    zone_suffixes: None,
};

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
    #[error("not enough free IP addresses in {0}")]
    SubnetFull(String),
    #[error("{0}")]
    Invalid(String),
}

pub type ModelResult<T> = Result<T, ModelError>;

/// Why an instance cannot join a security group ([`Model::join_security_group`]): a model
/// error, or a refusal of that call alone, which each front end words as its cloud does.
#[derive(Debug, thiserror::Error)]
pub enum JoinGroupError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("instance {instance} is already in security group {group}")]
    AlreadyMember { instance: String, group: String },
    #[error("the security group {group} and the instance {instance} are not in the same VPC")]
    VpcMismatch {
        instance: String,
        group: String,
        subnet: String,
    },
    #[error("instance {instance} is already in {limit} security groups, the most allowed")]
    GroupLimit { instance: String, limit: u32 },
}

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
    /// Security groups one instance can be in (5 by default on Alibaba, Tencent and AWS).
    pub security_groups_per_instance: u32,
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
            security_groups_per_instance: 5,
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
    /// Actions the faults above apply to; empty means all.
    pub actions: Vec<String>,
    /// Time during which a new resource (or a newly set tag) is invisible to reads: listings,
    /// tag filters and describes by id. Calls that change a resource by id still find it.
    pub read_lag_ms: u64,
    /// Fraction (0..=1) of successful calls whose answer is lost after the cloud has acted.
    pub lost_response_rate: f64,
    /// Actions whose answers may be lost; empty means all.
    pub lost_response_actions: Vec<String>,
}

impl Faults {
    pub fn applies_to(&self, action: &str) -> bool {
        self.actions.is_empty() || self.actions.iter().any(|a| a == action)
    }

    pub fn read_lag(&self) -> Duration {
        Duration::from_millis(self.read_lag_ms)
    }

    /// Rolls whether the answer of a successful `action` is lost.
    pub fn lose_response(&self, action: &str) -> bool {
        use rand::Rng;
        self.lost_response_rate > 0.0
            && (self.lost_response_actions.is_empty()
                || self.lost_response_actions.iter().any(|a| a == action))
            && rand::rng().random::<f64>() < self.lost_response_rate
    }
}

/// Prices, per hour, in one currency. One table serves every realm: instance type names of
/// different clouds do not collide. Its explicit entries are also the catalogue of instance
/// types the clouds offer ([`Model::zone_stock`]).
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
    /// The currency of an instance type's price where it is not [`Self::currency`]: AWS lists
    /// its (on-demand, Linux, shared tenancy) prices in USD.
    pub instance_currency: BTreeMap<String, String>,
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
            // Tencent Cloud (CVM). Per GPU model the clouds differ on purpose, so placement by
            // price has a winner: A100 is cheaper on Tencent (GT4 28.9 < gn7 34.7), T4 on
            // Alibaba (gn6i 8.43 < GN7 9.86), A10 on Alibaba, V100 on Tencent.
            ("S5.MEDIUM2", 0.1),
            ("S5.MEDIUM4", 0.19),
            ("S5.MEDIUM8", 0.36),
            ("S5.LARGE8", 0.38),
            ("S5.LARGE16", 0.72),
            ("GN7.2XLARGE32", 9.86),
            ("PNV4.7XLARGE116", 14.5),
            ("GN10Xp.2XLARGE40", 23.6),
            ("GT4.4XLARGE96", 28.9),
        ]
        .into_iter()
        .chain(AWS_HOURLY_USD.iter().copied())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let instance_currency = AWS_HOURLY_USD
            .iter()
            .map(|(k, _)| (k.to_string(), "USD".to_string()))
            .collect();
        Self {
            currency: "CNY".into(),
            instance_hourly,
            instance_currency,
            default_instance_hourly: Some(1.0),
            disk_gib_hourly: 0.001,
            bandwidth_mbps_hourly: 0.063,
        }
    }
}

/// AWS EC2 on-demand prices (us-east-1, Linux, shared tenancy), USD per hour, as the Price List
/// API listed them.
pub const AWS_HOURLY_USD: &[(&str, f64)] = &[
    ("t3.micro", 0.0104),
    ("t3.medium", 0.0416),
    ("m5.large", 0.096),
    ("m5.xlarge", 0.192),
    ("c5.large", 0.085),
    ("g4dn.xlarge", 0.526),
    ("g5.xlarge", 1.006),
    ("p3.2xlarge", 3.06),
    ("p4d.24xlarge", 32.7726),
    ("p5.48xlarge", 98.32),
];

impl PriceTable {
    /// The currency of an instance type's price.
    pub fn currency_of(&self, instance_type: &str) -> &str {
        self.instance_currency
            .get(instance_type)
            .map_or(self.currency.as_str(), String::as_str)
    }

    /// Whether the type is in the catalogue (listed, not priced by the default).
    pub fn lists(&self, instance_type: &str) -> bool {
        self.instance_hourly.contains_key(instance_type)
    }

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
    /// Zones per region of realms without their own ([`Realm::zone_suffixes`]).
    pub zones: BTreeMap<String, Vec<String>>,
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
            zones: default_zones(),
        }
    }
}

/// Zones of the default regions, as Alibaba Cloud names them.
pub fn default_zones() -> BTreeMap<String, Vec<String>> {
    let zones: [(&str, &[&str]); 4] = [
        ("cn-hangzhou", &["b", "g", "h", "i", "j", "k"]),
        ("cn-shanghai", &["b", "e", "f", "g", "l", "m", "n"]),
        (
            "cn-beijing",
            &["a", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"],
        ),
        ("cn-shenzhen", &["a", "c", "d", "e", "f"]),
    ];
    zones
        .into_iter()
        .map(|(region, suffixes)| {
            let list = suffixes.iter().map(|s| format!("{region}-{s}")).collect();
            (region.to_string(), list)
        })
        .collect()
}

/// An idempotency token: the scope (the operation), the client's token and a fingerprint of
/// every other parameter of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idem {
    pub scope: String,
    pub token: String,
    pub fingerprint: String,
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
    /// Current prices (settable at run time; a reset restores the settings').
    pub prices: PriceTable,
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub instances: BTreeMap<String, Instance>,
    pub eips: BTreeMap<String, Eip>,
    /// Reads do not see what is younger than this (see [`Faults::read_lag_ms`]).
    pub read_lag: Duration,
    tokens: HashMap<(String, String), (String, Vec<String>)>,
    /// When each id was issued, and when each tag key of a resource was last set: the read lag
    /// runs from there.
    born: HashMap<String, Instant>,
    tag_born: HashMap<String, HashMap<String, Instant>>,
    seq: u64,
    ip_seq: u32,
    /// The realm new resources go to (see [`Model::in_realm`]).
    realm: Realm,
}

const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const HEX_ALPHABET: &[u8] = b"0123456789abcdef";
/// Realms whose ids are `<prefix>-0` and 16 lower-case hex digits (17 in all), as AWS issues
/// them (`vpc-0a1b2c3d4e5f60718`).
const HEX17_REALMS: &[&str] = &["aws"];

impl Model {
    pub fn new(settings: ModelSettings) -> Self {
        Self {
            quotas: settings.quotas.clone(),
            stock: settings.stock.clone(),
            prices: settings.prices.clone(),
            settings,
            vpcs: BTreeMap::new(),
            subnets: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            instances: BTreeMap::new(),
            eips: BTreeMap::new(),
            read_lag: Duration::ZERO,
            tokens: HashMap::new(),
            born: HashMap::new(),
            tag_born: HashMap::new(),
            seq: 0,
            ip_seq: 0,
            realm: DEFAULT_REALM,
        }
    }

    /// Drops every resource and token, restoring quotas and stock from the settings.
    pub fn reset(&mut self) {
        let read_lag = self.read_lag;
        *self = Self::new(self.settings.clone());
        self.read_lag = read_lag;
    }

    /// Runs `f` with `realm` as the realm of new resources, then restores the previous one.
    pub fn in_realm<T>(&mut self, realm: Realm, f: impl FnOnce(&mut Self) -> T) -> T {
        let previous = std::mem::replace(&mut self.realm, realm);
        let out = f(self);
        self.realm = previous;
        out
    }

    /// The realm new resources go to.
    pub fn realm(&self) -> Realm {
        self.realm
    }

    /// How many of `resources` belong to the current realm (quotas count per realm).
    fn count_in_realm<T>(
        &self,
        resources: &BTreeMap<String, T>,
        realm_of: impl Fn(&T) -> &str,
    ) -> usize {
        resources
            .values()
            .filter(|r| realm_of(r) == self.realm.name)
            .count()
    }

    /// Whether reads see the resource at `now` (it was created at least the read lag ago).
    pub fn visible(&self, id: &str, now: Instant) -> bool {
        self.read_lag.is_zero() || self.born.get(id).is_none_or(|t| self.aged(*t, now))
    }

    /// Whether reads see the resource and its tags match `filters`, a tag set less than the read
    /// lag ago not counting yet.
    pub fn visible_match(
        &self,
        id: &str,
        tags: &Tags,
        filters: &[(String, Option<String>)],
        now: Instant,
    ) -> bool {
        if !self.visible(id, now) || !tags_match(tags, filters) {
            return false;
        }
        let Some(born) = self.tag_born.get(id) else {
            return true;
        };
        filters
            .iter()
            .all(|(k, _)| born.get(k).is_none_or(|t| self.aged(*t, now)))
    }

    fn aged(&self, born: Instant, now: Instant) -> bool {
        now.saturating_duration_since(born) >= self.read_lag
    }

    /// Notes that tags were set on a resource now, for the read lag.
    fn tags_set(&mut self, id: &str, keys: impl Iterator<Item = String>) {
        let now = Instant::now();
        let born = self.tag_born.entry(id.to_string()).or_default();
        for k in keys {
            born.insert(k, now);
        }
    }

    /// Forgets issue times older than the read lag (they no longer hide anything), so the maps
    /// stay bounded by what was created within the lag.
    fn forget_aged(&mut self) {
        const PRUNE_ABOVE: usize = 10_000;
        if self.born.len() + self.tag_born.len() < PRUNE_ABOVE {
            return;
        }
        let (now, lag) = (Instant::now(), self.read_lag);
        self.born
            .retain(|_, t| now.saturating_duration_since(*t) < lag);
        self.tag_born.retain(|_, keys| {
            keys.retain(|_, t| now.saturating_duration_since(*t) < lag);
            !keys.is_empty()
        });
    }

    /// The region of a resource, for calls that name only its id (the administration ones).
    pub fn region_of(&self, kind: Kind, id: &str) -> ModelResult<String> {
        let region = match kind {
            Kind::Vpc => self.vpcs.get(id).map(|r| &r.region),
            Kind::Subnet => self.subnets.get(id).map(|r| &r.region),
            Kind::SecurityGroup => self.security_groups.get(id).map(|r| &r.region),
            Kind::Instance => self.instances.get(id).map(|r| &r.region),
            Kind::Eip => self.eips.get(id).map(|r| &r.region),
            Kind::SecurityGroupRule => None,
        };
        region.cloned().ok_or_else(|| ModelError::NotFound {
            kind,
            id: id.to_string(),
        })
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

    /// A new id in the realm's style: by default the prefix, a creation sequence (so ids sort in
    /// creation order) and random letters; short ids are the prefix and 8 random letters.
    fn new_id(&mut self, prefix: &str) -> String {
        use rand::Rng;
        self.forget_aged();
        self.seq += 1;
        let prefix = self
            .realm
            .prefixes
            .iter()
            .find(|(from, _)| *from == prefix)
            .map_or(prefix, |(_, to)| *to);
        let mut rng = rand::rng();
        let mut random = |id: &mut String| {
            for _ in 0..8 {
                id.push(char::from(
                    ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())],
                ));
            }
        };
        let id = if HEX17_REALMS.contains(&self.realm.name) {
            loop {
                let mut id = format!("{prefix}-0");
                for _ in 0..16 {
                    id.push(char::from(HEX_ALPHABET[rng.random_range(0..16)]));
                }
                if !self.id_taken(&id) {
                    break id;
                }
            }
        } else if self.realm.short_ids {
            loop {
                let mut id = format!("{prefix}-");
                random(&mut id);
                if !self.id_taken(&id) {
                    break id;
                }
            }
        } else {
            let mut id = format!("{prefix}-bp1{:08}", self.seq);
            random(&mut id);
            id
        };
        self.born.insert(id.clone(), Instant::now());
        id
    }

    fn id_taken(&self, id: &str) -> bool {
        self.born.contains_key(id)
            || self.vpcs.contains_key(id)
            || self.subnets.contains_key(id)
            || self.security_groups.contains_key(id)
            || self.instances.contains_key(id)
            || self.eips.contains_key(id)
    }

    fn new_public_ip(&mut self, first: u8) -> Ipv4Addr {
        self.ip_seq += 1;
        let [_, b, c, d] = self.ip_seq.to_be_bytes();
        Ipv4Addr::new(first, b.wrapping_add(96), c, d)
    }

    fn check_region(&self, region: &str) -> ModelResult<()> {
        self.check_region_of(self.realm, region)
    }

    fn check_region_of(&self, realm: Realm, region: &str) -> ModelResult<()> {
        if region.is_empty() {
            return Err(ModelError::Invalid("RegionId is required".into()));
        }
        let known = match realm.regions {
            Some(regions) => regions.contains(&region),
            None => {
                self.settings.regions.is_empty()
                    || self.settings.regions.iter().any(|r| r == region)
            }
        };
        if !known {
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

    /// A security group as a describe by id sees it: not yet, within the read lag.
    pub fn read_security_group(
        &self,
        id: &str,
        region: &str,
        now: Instant,
    ) -> ModelResult<&SecurityGroup> {
        self.get_security_group(id, region)
            .ok()
            .filter(|g| self.visible(&g.id, now))
            .ok_or_else(|| ModelError::NotFound {
                kind: Kind::SecurityGroup,
                id: id.to_string(),
            })
    }

    pub fn get_instance(&self, id: &str, region: &str) -> ModelResult<&Instance> {
        in_region(&self.instances, Kind::Instance, id, region, |v| &v.region)
    }

    pub fn get_eip(&self, id: &str, region: &str) -> ModelResult<&Eip> {
        in_region(&self.eips, Kind::Eip, id, region, |v| &v.region)
    }

    // ---- Inspection ----

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
