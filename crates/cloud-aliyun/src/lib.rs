//! Alibaba Cloud driver: ECS (2014-05-26) and VPC (2016-04-28) over RPC with ACS3 signing.
//!
//! - [`AliyunDriver`] implements [`CloudDriver`]; build it from an [`AliyunConfig`].
//! - Transport ([`client`]): signed `POST /?<params>`, retries with backoff + full jitter on
//!   throttling and transient errors only, a token bucket per region.
//! - Errors ([`errors::classify`]) map Alibaba codes onto [`ErrorClass`].

pub mod client;
pub mod errors;
pub mod model;
pub mod params;
mod profile;
pub mod sign;

use std::time::Duration;

use async_trait::async_trait;

pub use client::{ConfigError, Endpoint, Service, TransportStats};
use client::{PROVIDER, RpcClient};
pub use mce_cloud::{RateLimit, RetryPolicy};
pub use params::Params;
pub use profile::{AliyunPlugin, PROFILE};

use mce_cloud::{
    AllocateEip, BandwidthMode, ChargeMode, CloudDriver, CloudError, CloudResult,
    CreateSecurityGroup, CreateSubnet, CreateVpc, Credentials, Eip, EipFilter, EipStatus,
    ErrorClass, Instance, InstanceStatus, Login, PortRule, Price, PriceQuery, RunInstance,
    SecurityGroup, Subnet, Tags, Vpc,
};

/// Page size of the page-numbered describes (DescribeVpcs/VSwitches/SecurityGroups allow 50).
const PAGE_SIZE: u32 = 50;
/// Page size of DescribeEipAddresses (max 100).
const EIP_PAGE_SIZE: u32 = 100;
/// Ids per DescribeInstances call and its MaxResults.
const INSTANCE_BATCH: usize = 100;
/// Allocation ids per DescribeEipAddresses call (comma list).
const EIP_ID_BATCH: usize = 50;
/// Safety bound on pages of one describe.
const MAX_PAGES: u32 = 1000;
/// Tags (TagResources `Tag.N`) or keys (UntagResources `TagKey.N`) per call.
const TAG_BATCH: usize = 20;

/// Configuration of one Alibaba Cloud account's driver.
#[derive(Clone, Debug)]
pub struct AliyunConfig {
    pub credentials: Credentials,
    /// Send every call (ECS and VPC) here instead of the regional endpoints:
    /// `host:port` (https) or `http://host:port` / `https://host:port`.
    pub endpoint_override: Option<String>,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Client-side limit, per region, shared by all calls of one driver.
    pub rate_limit: RateLimit,
}

impl AliyunConfig {
    /// Defaults: regional endpoints, 30 s timeout, 5 attempts, 20 req/s burst 40.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            endpoint_override: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            rate_limit: RateLimit::default(),
        }
    }

    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint_override = Some(endpoint.into());
        self
    }
}

/// Alibaba Cloud wire name of a charge mode (`InstanceChargeType`).
pub fn charge_type_wire(charge: ChargeMode) -> &'static str {
    match charge {
        ChargeMode::OnDemand => "PostPaid",
        ChargeMode::Prepaid { .. } => "PrePaid",
    }
}

/// Alibaba Cloud wire name of a bandwidth mode (`InternetChargeType`).
pub fn bandwidth_mode_wire(mode: BandwidthMode) -> &'static str {
    match mode {
        BandwidthMode::Traffic => "PayByTraffic",
        BandwidthMode::Fixed => "PayByBandwidth",
    }
}

/// ECS instance status → provider-neutral status.
pub fn instance_status(status: &str) -> InstanceStatus {
    match status {
        "Pending" => InstanceStatus::Pending,
        "Starting" => InstanceStatus::Starting,
        "Running" => InstanceStatus::Running,
        "Stopping" => InstanceStatus::Stopping,
        "Stopped" => InstanceStatus::Stopped,
        "Deleted" | "Released" | "Deleting" => InstanceStatus::Terminated,
        other => InstanceStatus::Other(other.to_string()),
    }
}

/// EIP status → provider-neutral status.
pub fn eip_status(status: &str) -> EipStatus {
    match status {
        "Available" => EipStatus::Available,
        "Associating" => EipStatus::Associating,
        "InUse" => EipStatus::InUse,
        "Unassociating" => EipStatus::Unassociating,
        other => EipStatus::Other(other.to_string()),
    }
}

/// Parameters RunInstances extensions may never set: those the driver owns.
pub fn is_reserved_run_param(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "RegionId",
        "ZoneId",
        "InstanceType",
        "ImageId",
        "VSwitchId",
        "SecurityGroupId",
        "SecurityGroupIds",
        "InstanceName",
        "Description",
        "Password",
        "PasswordInherit",
        "KeyPairName",
        "InstanceChargeType",
        "Period",
        "PeriodUnit",
        "InternetMaxBandwidthOut",
        "Amount",
        "MinAmount",
        "ClientToken",
        "DryRun",
    ];
    const PREFIXES: &[&str] = &["Tag.", "SystemDisk.", "SecurityGroupIds.", "Signature"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The RunInstances parameters of a request (extensions included, never overriding ours).
pub fn run_instance_params(req: &RunInstance) -> Params {
    let mut p = Params::new();
    p.set("RegionId", &req.region)
        .set("ZoneId", &req.zone)
        .set("InstanceType", &req.instance_type)
        .set("ImageId", &req.image_id)
        .set("VSwitchId", &req.subnet_id);
    // `SecurityGroupIds.N`, N from 1, in order, without repeats.
    let mut groups: Vec<&str> = Vec::with_capacity(req.security_group_ids.len());
    for id in &req.security_group_ids {
        if !id.is_empty() && !groups.contains(&id.as_str()) {
            groups.push(id);
        }
    }
    for (i, id) in groups.iter().enumerate() {
        p.set(format!("SecurityGroupIds.{}", i + 1), id);
    }
    p.set_opt("InstanceName", Some(&req.name))
        .set_opt("Description", Some(&req.description))
        .nested("SystemDisk", "Category", &req.system_disk.category)
        .nested("SystemDisk", "Size", req.system_disk.size_gib)
        .set("Amount", 1)
        .set("InternetMaxBandwidthOut", 0)
        .set("InstanceChargeType", charge_type_wire(req.charge));
    if let ChargeMode::Prepaid { months } = req.charge {
        p.set("Period", months).set("PeriodUnit", "Month");
    }
    match &req.login {
        Login::None => {}
        Login::Password(secret) => {
            p.set("Password", secret.expose());
        }
        Login::KeyPair(name) => {
            p.set("KeyPairName", name);
        }
    }
    p.tags(&req.tags);
    p.set_opt("ClientToken", Some(&req.client_token));
    for (name, value) in &req.extensions {
        if is_reserved_run_param(name) || !p.set_if_absent(name, value) {
            tracing::warn!(parameter = %name, "ignoring a RunInstances extension that would override a driver parameter");
        }
    }
    p
}

/// TagResources parameters for one instance, in batches of at most [`TAG_BATCH`] tags.
pub fn tag_instance_params(instance_id: &str, tags: &Tags) -> Vec<Params> {
    let pairs: Vec<(&String, &String)> = tags.iter().collect();
    pairs
        .chunks(TAG_BATCH)
        .map(|chunk| {
            let batch: Tags = chunk
                .iter()
                .map(|(k, v)| ((*k).clone(), (*v).clone()))
                .collect();
            let mut p = Params::new()
                .with("ResourceType", "instance")
                .with("ResourceId.1", instance_id);
            p.tags(&batch);
            p
        })
        .collect()
}

/// UntagResources parameters for one instance, in batches of at most [`TAG_BATCH`] keys.
/// Never sets `All`: an empty key list yields no call at all.
pub fn untag_instance_params(instance_id: &str, keys: &[String]) -> Vec<Params> {
    let mut unique: Vec<&str> = Vec::with_capacity(keys.len());
    for k in keys {
        if !k.is_empty() && !unique.contains(&k.as_str()) {
            unique.push(k);
        }
    }
    unique
        .chunks(TAG_BATCH)
        .map(|chunk| {
            let mut p = Params::new()
                .with("ResourceType", "instance")
                .with("ResourceId.1", instance_id);
            for (i, k) in chunk.iter().enumerate() {
                p.set(format!("TagKey.{}", i + 1), k);
            }
            p
        })
        .collect()
}

/// The DescribePrice parameters of a price query.
pub fn price_params(q: &PriceQuery) -> Params {
    let mut p = Params::new();
    p.set("RegionId", &q.region)
        .set("ResourceType", "instance")
        .set("InstanceType", &q.instance_type)
        .set("Amount", 1)
        .set_opt("ZoneId", q.zone.as_deref())
        .set_opt("ImageId", q.image_id.as_deref());
    if let Some(disk) = &q.system_disk {
        p.nested("SystemDisk", "Category", &disk.category).nested(
            "SystemDisk",
            "Size",
            disk.size_gib,
        );
    }
    match q.bandwidth {
        Some((mbps, mode)) => {
            p.set("InternetChargeType", bandwidth_mode_wire(mode))
                .set("InternetMaxBandwidthOut", mbps);
        }
        None => {
            p.set("InternetMaxBandwidthOut", 0);
        }
    }
    match q.charge {
        ChargeMode::OnDemand => {
            p.set("PriceUnit", "Hour");
        }
        ChargeMode::Prepaid { months } => {
            p.set("PriceUnit", "Month").set("Period", months.max(1));
        }
    }
    p
}

/// A `p/p` port range as one port; ranges and protocols without ports are not single ports.
pub fn single_port(range: &str) -> Option<u16> {
    let (from, to) = range.split_once('/')?;
    let from: u16 = from.trim().parse().ok()?;
    let to: u16 = to.trim().parse().ok()?;
    (from == to).then_some(from)
}

/// Inbound TCP accept rules on single ports.
pub fn ingress_rules(permissions: &[model::PermissionItem]) -> Vec<PortRule> {
    permissions
        .iter()
        .filter(|p| p.direction.is_empty() || p.direction.eq_ignore_ascii_case("ingress"))
        .filter(|p| p.ip_protocol.eq_ignore_ascii_case("tcp"))
        .filter(|p| p.policy.is_empty() || p.policy.eq_ignore_ascii_case("accept"))
        .filter_map(|p| {
            Some(PortRule {
                port: single_port(&p.port_range)?,
                source_cidr: p.source_cidr_ip.clone(),
                description: p.description.clone(),
            })
        })
        .collect()
}

fn permission_params(group_id: &str, rules: &[PortRule]) -> Params {
    let mut p = Params::new().with("SecurityGroupId", group_id);
    p.repeated(
        "Permissions",
        rules.iter().map(|r| {
            let mut fields = vec![
                ("IpProtocol", "tcp".to_string()),
                ("PortRange", format!("{0}/{0}", r.port)),
                ("SourceCidrIp", r.source_cidr.clone()),
                ("Policy", "accept".to_string()),
            ];
            if !r.description.is_empty() {
                fields.push(("Description", r.description.clone()));
            }
            fields
        }),
    );
    p
}

fn to_instance(i: model::InstanceItem) -> Instance {
    let eip_ip = Some(i.eip_address.ip_address).filter(|s| !s.is_empty());
    let public_ip = eip_ip.or_else(|| {
        i.public_ip_address
            .ip_address
            .into_iter()
            .find(|s| !s.is_empty())
    });
    Instance {
        status: instance_status(&i.status),
        instance_type: i.instance_type,
        zone: i.zone_id,
        private_ip: i
            .vpc_attributes
            .private_ip_address
            .ip_address
            .into_iter()
            .find(|s| !s.is_empty()),
        public_ip,
        eip_allocation_id: Some(i.eip_address.allocation_id).filter(|s| !s.is_empty()),
        tags: i.tags.to_tags(),
        id: i.instance_id,
    }
}

fn to_eip(e: model::EipItem) -> Eip {
    Eip {
        status: eip_status(&e.status),
        instance_id: Some(e.instance_id).filter(|s| !s.is_empty()),
        bandwidth_mbps: u32::try_from(e.bandwidth).unwrap_or(u32::MAX),
        tags: e.tags.to_tags(),
        allocation_id: e.allocation_id,
        ip_address: e.ip_address,
    }
}

fn missing_field(action: &str, field: &str) -> CloudError {
    CloudError::new(
        ErrorClass::Transient,
        PROVIDER,
        action,
        "InvalidResponse",
        format!("the response has no {field}"),
    )
}

/// The Alibaba Cloud driver for one account.
pub struct AliyunDriver {
    client: RpcClient,
}

impl AliyunDriver {
    /// Every page of a page-numbered Describe call: `filter` sets the query, `items` takes a
    /// response apart into its items and the total count.
    async fn all_pages<R, T>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        page_size: u32,
        filter: impl Fn(&mut Params),
        items: impl Fn(R) -> (Vec<T>, u64),
    ) -> CloudResult<Vec<T>>
    where
        R: serde::de::DeserializeOwned,
    {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut p = Params::new()
                .with("PageNumber", page)
                .with("PageSize", page_size);
            filter(&mut p);
            let (got, total) = items(self.client.call(service, region, action, p).await?);
            let empty = got.is_empty();
            out.extend(got);
            if empty || out.len() as u64 >= total {
                break;
            }
        }
        Ok(out)
    }

    pub fn new(config: AliyunConfig) -> Result<Self, ConfigError> {
        let client = RpcClient::new(
            config.credentials,
            config.endpoint_override.as_deref(),
            config.timeout,
            config.retry,
            config.rate_limit,
        )?;
        Ok(Self { client })
    }

    /// Transport counters (attempts, retries) since the driver was built.
    /// Authorizes or revokes rules in one call. When the cloud answers that one of them
    /// already is (or is not) there — older API behaviour — the rules are sent one by one, so
    /// the others are not lost, and that answer counts as success.
    async fn change_rules(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
        action: &str,
        already_done: fn(&str) -> bool,
    ) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let call = |rules: &[PortRule]| {
            self.call_ok(
                Service::Ecs,
                region,
                action,
                permission_params(group_id, rules),
            )
        };
        match call(rules).await {
            Err(e) if already_done(&e.code) => {
                if rules.len() > 1 {
                    for rule in rules {
                        match call(std::slice::from_ref(rule)).await {
                            Err(e) if already_done(&e.code) => {}
                            other => other?,
                        }
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    pub fn stats(&self) -> TransportStats {
        self.client.stats()
    }

    /// A raw signed call, for actions the trait does not cover.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        params: Params,
    ) -> CloudResult<T> {
        self.client.call(service, region, action, params).await
    }

    async fn call_ok(
        &self,
        service: Service,
        region: &str,
        action: &str,
        params: Params,
    ) -> CloudResult<()> {
        self.client
            .call::<model::Empty>(service, region, action, params)
            .await
            .map(|_| ())
    }

    async fn instances_page_loop(&self, region: &str, base: Params) -> CloudResult<Vec<Instance>> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut p = base.clone();
            p.set("MaxResults", INSTANCE_BATCH);
            if !token.is_empty() {
                p.set("NextToken", &token);
            }
            let r: model::DescribeInstances = self
                .client
                .call(Service::Ecs, region, "DescribeInstances", p)
                .await?;
            let got = r.instances.instance.len();
            out.extend(r.instances.instance.into_iter().map(to_instance));
            token = r.next_token;
            if token.is_empty() || got == 0 {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl CloudDriver for AliyunDriver {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn probe(&self, region: &str) -> CloudResult<()> {
        self.call_ok(Service::Ecs, region, "DescribeRegions", Params::new())
            .await
    }

    async fn find_vpcs(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Vpc>> {
        let filter = |p: &mut Params| {
            p.tags(tags);
        };
        self.all_pages(
            Service::Vpc,
            region,
            "DescribeVpcs",
            PAGE_SIZE,
            filter,
            |r: model::DescribeVpcs| {
                let vpcs = r.vpcs.vpc.into_iter().map(|v| Vpc {
                    available: v.status == "Available",
                    tags: v.tags.to_tags(),
                    id: v.vpc_id,
                    cidr_block: v.cidr_block,
                });
                (vpcs.collect(), r.total_count)
            },
        )
        .await
    }

    async fn create_vpc(&self, req: &CreateVpc) -> CloudResult<String> {
        let mut p = Params::new().with("CidrBlock", &req.cidr_block);
        p.set_opt("VpcName", Some(&req.name))
            .set_opt("Description", Some(&req.description))
            .set_opt("ClientToken", Some(&req.client_token))
            .tags(&req.tags);
        let r: model::CreateVpc = self
            .client
            .call(Service::Vpc, &req.region, "CreateVpc", p)
            .await?;
        Some(r.vpc_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_field("CreateVpc", "VpcId"))
    }

    async fn delete_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Vpc,
            region,
            "DeleteVpc",
            Params::new().with("VpcId", vpc_id),
        )
        .await
    }

    async fn find_subnets(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<Subnet>> {
        let filter = |p: &mut Params| {
            p.set_opt("VpcId", Some(vpc_id)).tags(tags);
        };
        self.all_pages(
            Service::Vpc,
            region,
            "DescribeVSwitches",
            PAGE_SIZE,
            filter,
            |r: model::DescribeVSwitches| {
                let subnets = r.vswitches.vswitch.into_iter().map(|v| Subnet {
                    available: v.status == "Available",
                    tags: v.tags.to_tags(),
                    id: v.vswitch_id,
                    vpc_id: v.vpc_id,
                    zone: v.zone_id,
                    cidr_block: v.cidr_block,
                });
                (subnets.collect(), r.total_count)
            },
        )
        .await
    }

    async fn create_subnet(&self, req: &CreateSubnet) -> CloudResult<String> {
        let mut p = Params::new()
            .with("VpcId", &req.vpc_id)
            .with("ZoneId", &req.zone)
            .with("CidrBlock", &req.cidr_block);
        p.set_opt("VSwitchName", Some(&req.name))
            .set_opt("ClientToken", Some(&req.client_token))
            .tags(&req.tags);
        let r: model::CreateVSwitch = self
            .client
            .call(Service::Vpc, &req.region, "CreateVSwitch", p)
            .await?;
        Some(r.vswitch_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_field("CreateVSwitch", "VSwitchId"))
    }

    async fn delete_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Vpc,
            region,
            "DeleteVSwitch",
            Params::new().with("VSwitchId", subnet_id),
        )
        .await
    }

    async fn find_security_groups(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        let filter = |p: &mut Params| {
            p.set_opt("VpcId", Some(vpc_id)).tags(tags);
        };
        self.all_pages(
            Service::Ecs,
            region,
            "DescribeSecurityGroups",
            PAGE_SIZE,
            filter,
            |r: model::DescribeSecurityGroups| {
                let groups = r
                    .security_groups
                    .security_group
                    .into_iter()
                    .map(|g| SecurityGroup {
                        tags: g.tags.to_tags(),
                        id: g.security_group_id,
                        vpc_id: g.vpc_id,
                    });
                (groups.collect(), r.total_count)
            },
        )
        .await
    }

    async fn create_security_group(&self, req: &CreateSecurityGroup) -> CloudResult<String> {
        let mut p = Params::new()
            .with("VpcId", &req.vpc_id)
            .with("SecurityGroupType", "normal");
        p.set_opt("SecurityGroupName", Some(&req.name))
            .set_opt("Description", Some(&req.description))
            .set_opt("ClientToken", Some(&req.client_token))
            .tags(&req.tags);
        let r: model::CreateSecurityGroup = self
            .client
            .call(Service::Ecs, &req.region, "CreateSecurityGroup", p)
            .await?;
        Some(r.security_group_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_field("CreateSecurityGroup", "SecurityGroupId"))
    }

    async fn delete_security_group(&self, region: &str, group_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Ecs,
            region,
            "DeleteSecurityGroup",
            Params::new().with("SecurityGroupId", group_id),
        )
        .await
    }

    async fn describe_ingress(&self, region: &str, group_id: &str) -> CloudResult<Vec<PortRule>> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut p = Params::new()
                .with("SecurityGroupId", group_id)
                .with("Direction", "ingress");
            p.set_opt("NextToken", Some(&token));
            let r: model::DescribeSecurityGroupAttribute = self
                .client
                .call(Service::Ecs, region, "DescribeSecurityGroupAttribute", p)
                .await?;
            out.extend(ingress_rules(&r.permissions.permission));
            if r.next_token.is_empty() || r.next_token == token {
                break;
            }
            token = r.next_token;
        }
        Ok(out)
    }

    async fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        self.change_rules(
            region,
            group_id,
            rules,
            "AuthorizeSecurityGroup",
            errors::is_duplicate_rule,
        )
        .await
    }

    async fn revoke_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        self.change_rules(
            region,
            group_id,
            rules,
            "RevokeSecurityGroup",
            errors::is_missing_rule,
        )
        .await
    }

    async fn run_instance(&self, req: &RunInstance) -> CloudResult<String> {
        if req.security_group_ids.iter().all(String::is_empty) {
            return Err(CloudError::new(
                ErrorClass::InvalidParameter,
                PROVIDER,
                "RunInstances",
                "MissingParameter",
                "at least one security group is required",
            ));
        }
        let r: model::RunInstances = self
            .client
            .call(
                Service::Ecs,
                &req.region,
                "RunInstances",
                run_instance_params(req),
            )
            .await?;
        r.instance_id_sets
            .instance_id_set
            .into_iter()
            .find(|s| !s.is_empty())
            .ok_or_else(|| missing_field("RunInstances", "InstanceIdSets.InstanceIdSet"))
    }

    async fn describe_instances(&self, region: &str, ids: &[String]) -> CloudResult<Vec<Instance>> {
        let mut out = Vec::new();
        for batch in ids.chunks(INSTANCE_BATCH) {
            let mut p = Params::new();
            p.json_array("InstanceIds", batch);
            out.extend(self.instances_page_loop(region, p).await?);
        }
        Ok(out)
    }

    async fn find_instances(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Instance>> {
        let mut p = Params::new();
        p.tags(tags);
        self.instances_page_loop(region, p).await
    }

    async fn delete_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        let p = Params::new()
            .with("InstanceId", instance_id)
            .with("Force", "true")
            .with("TerminateSubscription", "true");
        self.call_ok(Service::Ecs, region, "DeleteInstance", p)
            .await
    }

    async fn tag_instance(&self, region: &str, instance_id: &str, tags: &Tags) -> CloudResult<()> {
        for p in tag_instance_params(instance_id, tags) {
            self.call_ok(Service::Ecs, region, "TagResources", p)
                .await?;
        }
        Ok(())
    }

    async fn untag_instance(
        &self,
        region: &str,
        instance_id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        for p in untag_instance_params(instance_id, keys) {
            self.call_ok(Service::Ecs, region, "UntagResources", p)
                .await?;
        }
        Ok(())
    }

    async fn allocate_eip(&self, req: &AllocateEip) -> CloudResult<Eip> {
        let mut p = Params::new().with("Bandwidth", req.bandwidth_mbps).with(
            "InternetChargeType",
            bandwidth_mode_wire(req.bandwidth_mode),
        );
        p.set_opt("ClientToken", Some(&req.client_token))
            .tags(&req.tags);
        let r: model::AllocateEipAddress = self
            .client
            .call(Service::Vpc, &req.region, "AllocateEipAddress", p)
            .await?;
        if r.allocation_id.is_empty() {
            return Err(missing_field("AllocateEipAddress", "AllocationId"));
        }
        Ok(Eip {
            allocation_id: r.allocation_id,
            ip_address: r.eip_address,
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
        let p = Params::new()
            .with("AllocationId", allocation_id)
            .with("InstanceId", instance_id)
            .with("InstanceType", "EcsInstance");
        self.call_ok(Service::Vpc, region, "AssociateEipAddress", p)
            .await
    }

    async fn describe_eips(&self, region: &str, filter: &EipFilter) -> CloudResult<Vec<Eip>> {
        // One page loop per batch of ids; a single loop when not filtering by id.
        let id_batches: Vec<Option<String>> = if filter.allocation_ids.is_empty() {
            vec![None]
        } else {
            filter
                .allocation_ids
                .chunks(EIP_ID_BATCH)
                .map(|c| Some(c.join(",")))
                .collect()
        };
        let mut out = Vec::new();
        for ids in id_batches {
            let query = |p: &mut Params| {
                p.set_opt("AllocationId", ids.as_deref());
                if let Some(instance) = filter.instance_id.as_deref().filter(|s| !s.is_empty()) {
                    p.set("AssociatedInstanceId", instance)
                        .set("AssociatedInstanceType", "EcsInstance");
                }
                p.tags(&filter.tags);
            };
            let items = |r: model::DescribeEipAddresses| {
                let eips = r.eip_addresses.eip_address.into_iter().map(to_eip);
                (eips.collect(), r.total_count)
            };
            out.extend(
                self.all_pages(
                    Service::Vpc,
                    region,
                    "DescribeEipAddresses",
                    EIP_PAGE_SIZE,
                    query,
                    items,
                )
                .await?,
            );
        }
        Ok(out)
    }

    async fn modify_eip_bandwidth(
        &self,
        region: &str,
        allocation_id: &str,
        bandwidth_mbps: u32,
    ) -> CloudResult<()> {
        let p = Params::new()
            .with("AllocationId", allocation_id)
            .with("Bandwidth", bandwidth_mbps);
        self.call_ok(Service::Vpc, region, "ModifyEipAddressAttribute", p)
            .await
    }

    async fn disassociate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()> {
        let p = Params::new()
            .with("AllocationId", allocation_id)
            .with("InstanceId", instance_id)
            .with("InstanceType", "EcsInstance");
        self.call_ok(Service::Vpc, region, "UnassociateEipAddress", p)
            .await
    }

    async fn release_eip(&self, region: &str, allocation_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Vpc,
            region,
            "ReleaseEipAddress",
            Params::new().with("AllocationId", allocation_id),
        )
        .await
    }

    async fn describe_price(&self, query: &PriceQuery) -> CloudResult<Price> {
        let r: model::DescribePrice = self
            .client
            .call(
                Service::Ecs,
                &query.region,
                "DescribePrice",
                price_params(query),
            )
            .await?;
        let price = r.price_info.price;
        // A prepaid quote covers the whole period; report it per month.
        let (unit, divisor) = match query.charge {
            ChargeMode::OnDemand => ("Hour", 1.0),
            ChargeMode::Prepaid { months } => ("Month", f64::from(months.max(1))),
        };
        Ok(Price {
            currency: price.currency,
            original_price: price.original_price / divisor,
            discount_price: price.discount_price / divisor,
            trade_price: price.trade_price / divisor,
            unit: unit.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use mce_cloud::{Secret, SystemDisk};

    fn run_request() -> RunInstance {
        RunInstance {
            region: "cn-hangzhou".into(),
            zone: "cn-hangzhou-i".into(),
            instance_type: "ecs.gn7i-c8g1.2xlarge".into(),
            image_id: "img-1".into(),
            subnet_id: "vsw-1".into(),
            security_group_ids: vec!["sg-net".into(), "sg-vm".into()],
            name: "vm".into(),
            description: String::new(),
            system_disk: SystemDisk {
                category: "cloud_essd".into(),
                size_gib: 100,
            },
            login: Login::Password(Secret::new("Pa55word!")),
            charge: ChargeMode::Prepaid { months: 3 },
            tags: [("owner".to_string(), "me".to_string())].into(),
            client_token: "tok-1".into(),
            extensions: BTreeMap::new(),
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!(charge_type_wire(ChargeMode::OnDemand), "PostPaid");
        assert_eq!(
            charge_type_wire(ChargeMode::Prepaid { months: 1 }),
            "PrePaid"
        );
        assert_eq!(bandwidth_mode_wire(BandwidthMode::Traffic), "PayByTraffic");
        assert_eq!(bandwidth_mode_wire(BandwidthMode::Fixed), "PayByBandwidth");
    }

    #[test]
    fn statuses() {
        assert_eq!(instance_status("Pending"), InstanceStatus::Pending);
        assert_eq!(instance_status("Starting"), InstanceStatus::Starting);
        assert_eq!(instance_status("Running"), InstanceStatus::Running);
        assert_eq!(instance_status("Stopping"), InstanceStatus::Stopping);
        assert_eq!(instance_status("Stopped"), InstanceStatus::Stopped);
        assert_eq!(
            instance_status("Weird"),
            InstanceStatus::Other("Weird".into())
        );
        assert_eq!(eip_status("InUse"), EipStatus::InUse);
        assert_eq!(eip_status("Available"), EipStatus::Available);
        assert_eq!(eip_status("Associating"), EipStatus::Associating);
        assert_eq!(eip_status("Unassociating"), EipStatus::Unassociating);
        assert_eq!(eip_status("X"), EipStatus::Other("X".into()));
    }

    #[test]
    fn run_instance_parameters() {
        let p = run_instance_params(&run_request());
        assert_eq!(p.get("Amount"), Some("1"));
        assert_eq!(p.get("InternetMaxBandwidthOut"), Some("0"));
        assert_eq!(p.get("InstanceChargeType"), Some("PrePaid"));
        assert_eq!(p.get("Period"), Some("3"));
        assert_eq!(p.get("PeriodUnit"), Some("Month"));
        assert_eq!(p.get("Password"), Some("Pa55word!"));
        assert_eq!(p.get("KeyPairName"), None);
        assert_eq!(p.get("SystemDisk.Category"), Some("cloud_essd"));
        assert_eq!(p.get("SystemDisk.Size"), Some("100"));
        assert_eq!(p.get("Tag.1.Key"), Some("owner"));
        assert_eq!(p.get("ClientToken"), Some("tok-1"));
        assert_eq!(p.get("VSwitchId"), Some("vsw-1"));
        assert_eq!(p.get("SecurityGroupIds.1"), Some("sg-net"));
        assert_eq!(p.get("SecurityGroupIds.2"), Some("sg-vm"));
        assert_eq!(p.get("SecurityGroupIds.3"), None);
        assert_eq!(p.get("SecurityGroupId"), None);
        assert_eq!(p.get("Description"), None);

        let mut req = run_request();
        req.charge = ChargeMode::OnDemand;
        req.login = Login::KeyPair("kp".into());
        let p = run_instance_params(&req);
        assert_eq!(p.get("InstanceChargeType"), Some("PostPaid"));
        assert_eq!(p.get("Period"), None);
        assert_eq!(p.get("Password"), None);
        assert_eq!(p.get("KeyPairName"), Some("kp"));

        // Repeats and empty ids are dropped; numbering stays dense.
        let mut req = run_request();
        req.security_group_ids = vec!["sg-a".into(), String::new(), "sg-b".into(), "sg-a".into()];
        let p = run_instance_params(&req);
        assert_eq!(p.get("SecurityGroupIds.1"), Some("sg-a"));
        assert_eq!(p.get("SecurityGroupIds.2"), Some("sg-b"));
        assert_eq!(p.get("SecurityGroupIds.3"), None);
    }

    #[test]
    fn extensions_cannot_add_security_groups() {
        let mut req = run_request();
        req.extensions = [
            ("SecurityGroupIds.3", "sg-evil"),
            ("SecurityGroupId", "sg-evil"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = run_instance_params(&req);
        assert_eq!(p.get("SecurityGroupIds.3"), None);
        assert_eq!(p.get("SecurityGroupId"), None);
    }

    #[test]
    fn tag_parameters() {
        let tags: Tags = (0..25)
            .map(|i| (format!("k{i:02}"), format!("v{i}")))
            .collect();
        let batches = tag_instance_params("i-1", &tags);
        assert_eq!(batches.len(), 2);
        let p = &batches[0];
        assert_eq!(p.get("ResourceType"), Some("instance"));
        assert_eq!(p.get("ResourceId.1"), Some("i-1"));
        assert_eq!(p.get("Tag.1.Key"), Some("k00"));
        assert_eq!(p.get("Tag.1.Value"), Some("v0"));
        assert_eq!(p.get("Tag.20.Key"), Some("k19"));
        assert_eq!(p.get("Tag.21.Key"), None);
        assert_eq!(batches[1].get("Tag.1.Key"), Some("k20"));
        assert_eq!(batches[1].get("Tag.5.Key"), Some("k24"));
        assert!(tag_instance_params("i-1", &Tags::new()).is_empty());

        let keys: Vec<String> = ["a", "b", "a", ""].iter().map(|k| k.to_string()).collect();
        let batches = untag_instance_params("i-1", &keys);
        assert_eq!(batches.len(), 1);
        let p = &batches[0];
        assert_eq!(p.get("ResourceType"), Some("instance"));
        assert_eq!(p.get("ResourceId.1"), Some("i-1"));
        assert_eq!(p.get("TagKey.1"), Some("a"));
        assert_eq!(p.get("TagKey.2"), Some("b"));
        assert_eq!(p.get("TagKey.3"), None);
        assert_eq!(p.get("All"), None);
        assert!(untag_instance_params("i-1", &[]).is_empty());
        let many: Vec<String> = (0..41).map(|i| format!("k{i}")).collect();
        let batches = untag_instance_params("i-1", &many);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].get("TagKey.1"), Some("k40"));
    }

    #[test]
    fn extensions_never_override_driver_parameters() {
        let mut req = run_request();
        req.charge = ChargeMode::OnDemand;
        req.login = Login::None;
        req.extensions = [
            ("InstanceType", "ecs.evil"),
            ("InternetMaxBandwidthOut", "100"),
            ("Amount", "10"),
            ("Tag.9.Key", "x"),
            ("Period", "12"),
            ("Password", "x"),
            ("SystemDisk.Size", "1"),
            ("HpcClusterId", "hpc-1"),
            ("DeletionProtection", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = run_instance_params(&req);
        assert_eq!(p.get("InstanceType"), Some("ecs.gn7i-c8g1.2xlarge"));
        assert_eq!(p.get("InternetMaxBandwidthOut"), Some("0"));
        assert_eq!(p.get("Amount"), Some("1"));
        assert_eq!(p.get("Tag.9.Key"), None);
        assert_eq!(p.get("Period"), None);
        assert_eq!(p.get("Password"), None);
        assert_eq!(p.get("SystemDisk.Size"), Some("100"));
        assert_eq!(p.get("HpcClusterId"), Some("hpc-1"));
        assert_eq!(p.get("DeletionProtection"), Some("false"));
    }

    #[test]
    fn price_parameters() {
        let mut q = PriceQuery {
            region: "cn-hangzhou".into(),
            zone: None,
            instance_type: "ecs.g7.large".into(),
            image_id: None,
            system_disk: Some(SystemDisk {
                category: "cloud_essd".into(),
                size_gib: 40,
            }),
            charge: ChargeMode::OnDemand,
            bandwidth: Some((5, BandwidthMode::Fixed)),
        };
        let p = price_params(&q);
        assert_eq!(p.get("ResourceType"), Some("instance"));
        assert_eq!(p.get("PriceUnit"), Some("Hour"));
        assert_eq!(p.get("Period"), None);
        assert_eq!(p.get("InternetChargeType"), Some("PayByBandwidth"));
        assert_eq!(p.get("InternetMaxBandwidthOut"), Some("5"));
        assert_eq!(p.get("ZoneId"), None);
        q.charge = ChargeMode::Prepaid { months: 6 };
        let p = price_params(&q);
        assert_eq!(p.get("PriceUnit"), Some("Month"));
        assert_eq!(p.get("Period"), Some("6"));
    }

    #[test]
    fn ingress_keeps_single_port_tcp_accept_rules() {
        let perm = |proto: &str, range: &str, policy: &str, dir: &str| model::PermissionItem {
            ip_protocol: proto.into(),
            port_range: range.into(),
            source_cidr_ip: "0.0.0.0/0".into(),
            policy: policy.into(),
            description: "d".into(),
            direction: dir.into(),
        };
        let rules = ingress_rules(&[
            perm("TCP", "22/22", "Accept", "ingress"),
            perm("tcp", "80/80", "accept", ""),
            perm("UDP", "53/53", "Accept", "ingress"),
            perm("TCP", "1/1024", "Accept", "ingress"),
            perm("TCP", "443/443", "Drop", "ingress"),
            perm("TCP", "8080/8080", "Accept", "egress"),
            perm("ICMP", "-1/-1", "Accept", "ingress"),
        ]);
        let ports: Vec<u16> = rules.iter().map(|r| r.port).collect();
        assert_eq!(ports, vec![22, 80]);
        assert_eq!(rules[0].description, "d");
        assert_eq!(single_port("22/22"), Some(22));
        assert_eq!(single_port("-1/-1"), None);
    }

    #[test]
    fn permission_flattening() {
        let p = permission_params(
            "sg-1",
            &[
                PortRule {
                    port: 22,
                    source_cidr: "10.0.0.0/8".into(),
                    description: "ssh".into(),
                },
                PortRule {
                    port: 443,
                    source_cidr: "0.0.0.0/0".into(),
                    description: String::new(),
                },
            ],
        );
        assert_eq!(p.get("Permissions.1.IpProtocol"), Some("tcp"));
        assert_eq!(p.get("Permissions.1.PortRange"), Some("22/22"));
        assert_eq!(p.get("Permissions.1.SourceCidrIp"), Some("10.0.0.0/8"));
        assert_eq!(p.get("Permissions.1.Policy"), Some("accept"));
        assert_eq!(p.get("Permissions.1.Description"), Some("ssh"));
        assert_eq!(p.get("Permissions.2.PortRange"), Some("443/443"));
        assert_eq!(p.get("Permissions.2.Description"), None);
    }

    #[test]
    fn instance_mapping_prefers_the_eip() {
        let item: model::InstanceItem = serde_json::from_str(
            r#"{"InstanceId":"i-1","Status":"Running","InstanceType":"t","ZoneId":"z",
            "PublicIpAddress":{"IpAddress":["8.8.8.8"]},"EipAddress":{"IpAddress":"1.1.1.1","AllocationId":"eip-1"},
            "VpcAttributes":{"PrivateIpAddress":{"IpAddress":["10.0.0.2"]}}}"#,
        )
        .unwrap();
        let i = to_instance(item);
        assert_eq!(i.public_ip.as_deref(), Some("1.1.1.1"));
        assert_eq!(i.eip_allocation_id.as_deref(), Some("eip-1"));
        assert_eq!(i.private_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(i.status, InstanceStatus::Running);
        let bare: model::InstanceItem =
            serde_json::from_str(r#"{"InstanceId":"i-2","Status":"Pending"}"#).unwrap();
        let i = to_instance(bare);
        assert_eq!(i.public_ip, None);
        assert_eq!(i.eip_allocation_id, None);
    }

    #[test]
    fn config_rejects_bad_endpoints() {
        let creds = Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
        };
        assert!(
            AliyunDriver::new(AliyunConfig::new(creds.clone()).with_endpoint("ftp://x")).is_err()
        );
        assert!(
            AliyunDriver::new(AliyunConfig::new(creds).with_endpoint("http://127.0.0.1:1")).is_ok()
        );
    }

    /// Older AuthorizeSecurityGroup behaviour: a duplicate fails the whole call. The driver
    /// then adds the rules one by one, so the new ones are not lost.
    #[tokio::test]
    async fn duplicate_and_missing_rule_errors_fall_back_to_single_rules() {
        use std::sync::Arc;

        use parking_lot::Mutex;

        type Log = Arc<Mutex<Vec<(String, Vec<String>)>>>;
        let seen: Log = Arc::default();
        let log = Arc::clone(&seen);
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, uri: axum::http::Uri| {
                let log = Arc::clone(&log);
                async move {
                    let action = headers["x-acs-action"]
                        .to_str()
                        .unwrap_or_default()
                        .to_string();
                    let url = reqwest::Url::parse(&format!("http://x{uri}")).unwrap();
                    let ports: Vec<String> = url
                        .query_pairs()
                        .filter(|(k, _)| k.ends_with(".PortRange"))
                        .map(|(_, v)| v.into_owned())
                        .collect();
                    log.lock().push((action.clone(), ports.clone()));
                    let code = match action.as_str() {
                        "AuthorizeSecurityGroup" => "InvalidPermission.Duplicate",
                        _ => "InvalidSecurityGroupRule.RuleNotExist",
                    };
                    if ports.len() > 1 || ports.iter().any(|p| p == "22/22") {
                        let body = format!(r#"{{"RequestId":"r","Code":"{code}","Message":"m"}}"#);
                        (axum::http::StatusCode::BAD_REQUEST, body)
                    } else {
                        (
                            axum::http::StatusCode::OK,
                            r#"{"RequestId":"r"}"#.to_string(),
                        )
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut config = AliyunConfig::new(Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
        })
        .with_endpoint(format!("http://{addr}"));
        config.rate_limit = RateLimit::unlimited();
        let d = AliyunDriver::new(config).unwrap();
        let rules = [
            PortRule {
                port: 22,
                source_cidr: "0.0.0.0/0".into(),
                description: String::new(),
            },
            PortRule {
                port: 80,
                source_cidr: "0.0.0.0/0".into(),
                description: String::new(),
            },
        ];
        d.authorize_ingress("r", "sg-1", &rules).await.unwrap();
        d.revoke_ingress("r", "sg-1", &rules).await.unwrap();
        d.authorize_ingress("r", "sg-1", &rules[..1]).await.unwrap();
        let seen = seen.lock().clone();
        let calls: Vec<(&str, Vec<&str>)> = seen
            .iter()
            .map(|(a, p)| (a.as_str(), p.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            calls,
            vec![
                ("AuthorizeSecurityGroup", vec!["22/22", "80/80"]),
                ("AuthorizeSecurityGroup", vec!["22/22"]),
                ("AuthorizeSecurityGroup", vec!["80/80"]),
                ("RevokeSecurityGroup", vec!["22/22", "80/80"]),
                ("RevokeSecurityGroup", vec!["22/22"]),
                ("RevokeSecurityGroup", vec!["80/80"]),
                ("AuthorizeSecurityGroup", vec!["22/22"]),
            ]
        );
        assert_eq!(d.stats().retries, 0);
    }
}
