//! The resources the model holds and the requests that create them.

use super::*;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vpc {
    pub id: String,
    /// The realm (front end) the resource belongs to.
    pub realm: &'static str,
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
    /// The realm (front end) the resource belongs to.
    pub realm: &'static str,
    pub region: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
    pub created: Timestamp,
    #[serde(skip)]
    pub(super) next_host: u32,
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
    pub(super) fn same_as(&self, spec: &RuleSpec) -> bool {
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
    /// The realm (front end) the resource belongs to.
    pub realm: &'static str,
    pub region: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub tags: Tags,
    pub rules: Vec<Rule>,
    /// Bumped by every change of the rules (clouds that version rule sets expose it).
    pub rules_version: u64,
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
    /// The realm (front end) the resource belongs to.
    pub realm: &'static str,
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
    pub(super) boot_started: Instant,
    #[serde(skip)]
    pub(super) first_boot: bool,
    #[serde(skip)]
    pub(super) stopped: bool,
}

impl Instance {
    /// Whether the instance was never started again since its creation (its first boot).
    pub fn is_first_boot(&self) -> bool {
        self.first_boot
    }

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
    /// The realm (front end) the resource belongs to.
    pub realm: &'static str,
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
