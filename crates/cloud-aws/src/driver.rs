//! [`AwsDriver`]: the neutral [`CloudDriver`] calls carried out over the EC2 Query API, with
//! `NextToken` pagination, id filters (an unknown id is absent, not an error) and the AWS
//! semantics that differ from the other clouds:
//!
//! - **Internet access.** A subnet reaches the internet (and an EIP can be associated) only
//!   through an internet gateway attached to the VPC and a `0.0.0.0/0` route to it. The driver
//!   makes both part of the network: [`AwsDriver::ensure_internet_access`] runs after
//!   CreateVpc (best effort: the VPC exists, so create_vpc succeeds whatever happens next) and
//!   again before every CreateSubnet (where a failure fails the create, so no subnet exists
//!   without them). It finds the gateway attached to the VPC, else one tagged for the VPC
//!   (`multicloud-ecs/vpc-id`: a crash between create and attach), else creates one with the
//!   VPC's tags; then tags the VPC's main route table with the VPC's tags (what IAM scopes
//!   the route change by) and adds the default route to it. delete_vpc
//!   detaches and deletes the gateways before DeleteVpc, and only once the VPC has no subnet
//!   left (else DependencyViolation, touching nothing), so a live instance never loses its
//!   route.
//! - **No ClientToken** on CreateVpc, CreateSubnet, CreateSecurityGroup, CreateInternetGateway
//!   and AllocateAddress: sent once when the outcome is unknown. The profile's
//!   `untokened_create_grace` makes the operator look VPCs, subnets and groups up by tags;
//!   AllocateAddress is made idempotent by the driver, which tags the address with the token
//!   and looks for it first; a duplicate group name is resolved to the group carrying the tags.
//! - **EIP bandwidth** is not an AWS concept: `modify_eip_bandwidth` records the nominal value
//!   in the tag `multicloud-ecs/bandwidth-mbps` (what describe_eips reports), so the operator's
//!   plan converges; it changes nothing on the network.
//! - **Prepaid** and **password logins** do not exist for RunInstances: refused before any call.

use std::collections::BTreeSet;

use async_trait::async_trait;

use mce_cloud::{
    AllocateEip, ChargeMode, CloudDriver, CloudError, CloudResult, CreateSecurityGroup,
    CreateSubnet, CreateVpc, Eip, EipFilter, EipStatus, ErrorClass, Instance, InstanceStatus,
    Login, PortRule, Price, PriceQuery, ResourceKind, RunInstance, SecurityGroup, Subnet, Tags,
    Vpc, ZoneStock,
};

use crate::client::{ApiClient, PROVIDER};
use crate::wire::*;
use crate::xml::Node;
use crate::{AwsConfig, MAX_PAGES, errors, pricing};
use mce_cloud::transport::{ConfigError, TransportStats};

/// `MaxResults` of the paged describes (their maximum; DescribeRouteTables takes 100).
const PAGE_SIZE: u32 = 1000;
const ROUTE_TABLE_PAGE_SIZE: u32 = 100;
/// Values per filter (EC2 accepts up to 200).
const FILTER_VALUES: usize = 200;
/// The destination of the default route.
const ANYWHERE: &str = "0.0.0.0/0";

/// The AWS EC2 driver for one account.
pub struct AwsDriver {
    client: ApiClient,
}

fn local_error(
    class: ErrorClass,
    action: &str,
    code: &str,
    message: impl Into<String>,
) -> CloudError {
    CloudError::new(class, PROVIDER, action, code, message)
}

fn unsupported(action: &str, message: impl Into<String>) -> CloudError {
    local_error(ErrorClass::InvalidParameter, action, "Unsupported", message)
}

fn missing_field(action: &str, field: &str) -> CloudError {
    local_error(
        ErrorClass::Transient,
        action,
        "InvalidResponse",
        format!("the answer has no {field}"),
    )
}

fn required(action: &str, node: &Node, path: &[&str], field: &str) -> CloudResult<String> {
    Some(node.at(path).text_of(field))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| missing_field(action, field))
}

/// GroupName/GroupDescription take `a-zA-Z0-9`, spaces and `._-:/()#,@[]+=&;{}!$*`, up to 255.
fn group_text(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect()
}

impl AwsDriver {
    pub fn new(config: AwsConfig) -> Result<Self, ConfigError> {
        let client = ApiClient::new(
            config.credentials,
            config.endpoint_override.as_deref(),
            config.timeout,
            config.retry,
            config.rate_limit,
        )?;
        Ok(Self { client })
    }

    /// Transport counters (attempts, retries) since the driver was built.
    pub fn stats(&self) -> TransportStats {
        self.client.stats()
    }

    /// A raw signed EC2 call, for actions the trait does not cover; the answer's root.
    pub async fn call(&self, region: &str, action: &str, params: &Params) -> CloudResult<Node> {
        self.client.call(region, action, params).await
    }

    async fn call_ok(&self, region: &str, action: &str, params: &Params) -> CloudResult<()> {
        self.client.call(region, action, params).await.map(|_| ())
    }

    /// Every page of a `NextToken` describe; `page` is the `MaxResults` to send (some
    /// describes refuse it next to ids).
    async fn all_pages(
        &self,
        region: &str,
        action: &str,
        base: &Params,
        page: Option<u32>,
        mut each: impl FnMut(&Node),
    ) -> CloudResult<()> {
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = base.clone();
            if let Some(size) = page {
                params.set("MaxResults", size.to_string());
            }
            if let Some(t) = &token {
                params.set("NextToken", t);
            }
            let root = self.client.call(region, action, &params).await?;
            each(&root);
            token = root.next_token();
            if token.is_none() {
                break;
            }
        }
        Ok(())
    }

    async fn internet_gateways(
        &self,
        region: &str,
        filter: (&str, &str),
    ) -> CloudResult<Vec<Node>> {
        let mut params = Params::new();
        params.filter(filter.0, &[filter.1]);
        let mut out = Vec::new();
        self.all_pages(
            region,
            "DescribeInternetGateways",
            &params,
            Some(PAGE_SIZE),
            |r| out.extend(r.items("internetGatewaySet").cloned()),
        )
        .await?;
        Ok(out)
    }

    /// An internet gateway attached to `vpc_id` and the VPC main route table's default route
    /// to it (see the module documentation). Idempotent.
    pub async fn ensure_internet_access(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<String> {
        let attached = self
            .internet_gateways(region, ("attachment.vpc-id", vpc_id))
            .await?;
        let gateway = match attached.first() {
            Some(g) => g.text_of("internetGatewayId").to_string(),
            None => {
                let tagged = self
                    .internet_gateways(region, (&format!("tag:{IGW_VPC_TAG}"), vpc_id))
                    .await?;
                let id = match tagged.first() {
                    Some(g) => g.text_of("internetGatewayId").to_string(),
                    None => self.create_internet_gateway(region, vpc_id, tags).await?,
                };
                let attach = Params::new()
                    .with("InternetGatewayId", &id)
                    .with("VpcId", vpc_id);
                match self.call_ok(region, "AttachInternetGateway", &attach).await {
                    Err(e) if e.code == "Resource.AlreadyAssociated" => {}
                    other => other?,
                }
                id
            }
        };
        if gateway.is_empty() {
            return Err(missing_field(
                "DescribeInternetGateways",
                "internetGatewayId",
            ));
        }
        self.ensure_default_route(region, vpc_id, &gateway, tags)
            .await?;
        Ok(gateway)
    }

    async fn create_internet_gateway(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<String> {
        let action = "CreateInternetGateway";
        let mut gateway_tags = tags.clone();
        gateway_tags.insert(IGW_VPC_TAG.to_string(), vpc_id.to_string());
        let mut params = Params::new();
        params.tag_specification("internet-gateway", &gateway_tags);
        let root = self.client.call_create(region, action, &params).await?;
        required(action, &root, &["internetGateway"], "internetGatewayId")
    }

    async fn ensure_default_route(
        &self,
        region: &str,
        vpc_id: &str,
        gateway: &str,
        tags: &Tags,
    ) -> CloudResult<()> {
        let action = "DescribeRouteTables";
        let mut params = Params::new();
        params
            .filter("vpc-id", &[vpc_id])
            .filter("association.main", &["true"]);
        let mut tables = Vec::new();
        self.all_pages(region, action, &params, Some(ROUTE_TABLE_PAGE_SIZE), |r| {
            tables.extend(r.items("routeTableSet").cloned())
        })
        .await?;
        let Some(table) = tables.first() else {
            return Err(local_error(
                ErrorClass::WrongState,
                action,
                "MainRouteTableNotFound",
                format!("VPC {vpc_id} has no main route table yet"),
            ));
        };
        let routes: Vec<&Node> = table
            .items("routeSet")
            .filter(|r| r.text_of("destinationCidrBlock") == ANYWHERE)
            .collect();
        if routes.iter().any(|r| r.text_of("gatewayId") == gateway) {
            return Ok(());
        }
        // The main route table comes with the VPC untagged (CreateVpc tags the VPC only): it
        // is claimed with the VPC's tags first, so that IAM can scope the route changes by
        // resource tag (deploy/policies/aws-iam-policy.json).
        let table_tags = table.tags();
        if tags.iter().any(|(k, v)| table_tags.get(k) != Some(v)) {
            let mut claim = Params::new();
            claim
                .list("ResourceId", &[table.text_of("routeTableId")])
                .tags(tags);
            self.call_ok(region, "CreateTags", &claim).await?;
        }
        let route = Params::new()
            .with("RouteTableId", table.text_of("routeTableId"))
            .with("DestinationCidrBlock", ANYWHERE)
            .with("GatewayId", gateway);
        // A default route to something else (a deleted gateway: blackhole) is replaced.
        let action = if routes.is_empty() {
            "CreateRoute"
        } else {
            "ReplaceRoute"
        };
        match self.call_ok(region, action, &route).await {
            Err(e) if e.code == "RouteAlreadyExists" => {
                self.call_ok(region, "ReplaceRoute", &route).await
            }
            other => other,
        }
    }

    async fn security_group(&self, region: &str, group_id: &str) -> CloudResult<Node> {
        let action = "DescribeSecurityGroups";
        let mut params = Params::new();
        params.list("GroupId", &[group_id]);
        let root = self.client.call(region, action, &params).await?;
        root.items("securityGroupInfo")
            .find(|g| g.text_of("groupId") == group_id)
            .cloned()
            .ok_or_else(|| {
                local_error(
                    ErrorClass::NotFound,
                    action,
                    "InvalidGroup.NotFound",
                    format!("security group {group_id} not found"),
                )
            })
    }

    async fn ingress_call(
        &self,
        region: &str,
        action: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        let mut params = Params::new().with("GroupId", group_id);
        ip_permissions(&mut params, rules, action.starts_with("Authorize"));
        self.call_ok(region, action, &params).await
    }

    /// Sends the rules together; if one of them makes the whole call fail with a code
    /// `benign` accepts (a duplicate on authorize, a missing rule on revoke), one by one.
    async fn ingress_change(
        &self,
        region: &str,
        action: &str,
        group_id: &str,
        rules: &[PortRule],
        benign: fn(&str) -> bool,
    ) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        match self.ingress_call(region, action, group_id, rules).await {
            Err(e) if benign(&e.code) => {
                if rules.len() > 1 {
                    for rule in rules {
                        match self
                            .ingress_call(region, action, group_id, std::slice::from_ref(rule))
                            .await
                        {
                            Err(e) if benign(&e.code) => {}
                            other => other?,
                        }
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// CreateTags on a resource carrying `current`, refused before the call when the result
    /// would pass the tag limit (EC2 would refuse it after tagging nothing).
    async fn create_tags(
        &self,
        region: &str,
        what: &str,
        id: &str,
        current: &Tags,
        tags: &Tags,
    ) -> CloudResult<()> {
        let action = "CreateTags";
        let limit = crate::PROFILE.limits.tags_per_resource;
        let after = current
            .keys()
            .chain(tags.keys())
            .collect::<BTreeSet<_>>()
            .len();
        if after > limit {
            return Err(local_error(
                ErrorClass::QuotaExceeded,
                action,
                "TagLimitExceeded",
                format!("{what} would carry {after} tags, more than {limit}"),
            ));
        }
        let mut params = Params::new();
        params.list("ResourceId", &[id]).tags(tags);
        self.call_ok(region, action, &params).await
    }

    /// DeleteTags of `keys` (by key, whatever their values) on one resource.
    async fn delete_tags(
        &self,
        region: &str,
        id: &str,
        keys: &BTreeSet<&String>,
    ) -> CloudResult<()> {
        let mut params = Params::new();
        params.list("ResourceId", &[id]);
        for (i, k) in keys.iter().enumerate() {
            params.set(format!("Tag.{}.Key", i + 1), k.as_str());
        }
        self.call_ok(region, "DeleteTags", &params).await
    }

    async fn root_device(&self, region: &str, image_id: &str) -> CloudResult<String> {
        let action = "DescribeImages";
        let mut params = Params::new();
        params.list("ImageId", &[image_id]);
        let root = self.client.call(region, action, &params).await?;
        root.items("imagesSet")
            .find(|i| i.text_of("imageId") == image_id)
            .map(|i| i.text_of("rootDeviceName").to_string())
            .ok_or_else(|| {
                local_error(
                    ErrorClass::NotFound,
                    action,
                    "InvalidAMIID.NotFound",
                    format!("image {image_id} not found"),
                )
            })
    }

    /// An instance that exists (not terminated), or NotFound.
    async fn live_instance(
        &self,
        action: &str,
        region: &str,
        instance_id: &str,
    ) -> CloudResult<Instance> {
        self.describe_instances(region, &[instance_id.to_string()])
            .await?
            .into_iter()
            .find(|i| i.id == instance_id && i.status != InstanceStatus::Terminated)
            .ok_or_else(|| {
                local_error(
                    ErrorClass::NotFound,
                    action,
                    "InvalidInstanceID.NotFound",
                    format!("instance {instance_id} not found"),
                )
            })
    }

    /// `addressesSet` items matching a filter (DescribeAddresses is not paged).
    async fn addresses(&self, region: &str, filter: &EipFilter) -> CloudResult<Vec<Node>> {
        let batches: Vec<Option<&[String]>> = if filter.allocation_ids.is_empty() {
            vec![None]
        } else {
            filter
                .allocation_ids
                .chunks(FILTER_VALUES)
                .map(Some)
                .collect()
        };
        let mut out = Vec::new();
        for ids in batches {
            let mut params = Params::new();
            params.filter("domain", &["vpc"]);
            if let Some(ids) = ids {
                params.filter("allocation-id", ids);
            }
            if let Some(instance) = filter.instance_id.as_deref().filter(|s| !s.is_empty()) {
                params.filter("instance-id", &[instance]);
            }
            params.tag_filters(&filter.tags);
            let root = self
                .client
                .call(region, "DescribeAddresses", &params)
                .await?;
            out.extend(root.items("addressesSet").cloned());
        }
        Ok(out)
    }

    async fn address(&self, action: &str, region: &str, allocation_id: &str) -> CloudResult<Node> {
        let filter = EipFilter {
            allocation_ids: vec![allocation_id.to_string()],
            ..EipFilter::default()
        };
        self.addresses(region, &filter)
            .await?
            .into_iter()
            .find(|a| a.text_of("allocationId") == allocation_id)
            .ok_or_else(|| {
                local_error(
                    ErrorClass::NotFound,
                    action,
                    "InvalidAllocationID.NotFound",
                    format!("address {allocation_id} not found"),
                )
            })
    }

    async fn vpcs(&self, region: &str, params: &Params) -> CloudResult<Vec<Vpc>> {
        let mut out = Vec::new();
        self.all_pages(region, "DescribeVpcs", params, Some(PAGE_SIZE), |r| {
            out.extend(r.items("vpcSet").map(|v| Vpc {
                id: v.text_of("vpcId").to_string(),
                cidr_block: v.text_of("cidrBlock").to_string(),
                available: v.text_of("state") == "available",
                tags: v.tags(),
            }))
        })
        .await?;
        Ok(out)
    }

    async fn subnets(&self, region: &str, params: &Params) -> CloudResult<Vec<Subnet>> {
        let mut out = Vec::new();
        self.all_pages(region, "DescribeSubnets", params, Some(PAGE_SIZE), |r| {
            out.extend(r.items("subnetSet").map(|s| Subnet {
                id: s.text_of("subnetId").to_string(),
                vpc_id: s.text_of("vpcId").to_string(),
                zone: s.text_of("availabilityZone").to_string(),
                cidr_block: s.text_of("cidrBlock").to_string(),
                available: s.text_of("state") == "available",
                tags: s.tags(),
            }))
        })
        .await?;
        Ok(out)
    }

    async fn security_groups(
        &self,
        region: &str,
        params: &Params,
    ) -> CloudResult<Vec<SecurityGroup>> {
        let mut out = Vec::new();
        self.all_pages(
            region,
            "DescribeSecurityGroups",
            params,
            Some(PAGE_SIZE),
            |r| {
                out.extend(r.items("securityGroupInfo").map(|g| SecurityGroup {
                    id: g.text_of("groupId").to_string(),
                    vpc_id: g.text_of("vpcId").to_string(),
                    tags: g.tags(),
                }))
            },
        )
        .await?;
        Ok(out)
    }

    /// The tags of an existing VPC, subnet or security group (by an id filter: an unknown id
    /// is NotFound here, not a malformed-id error).
    async fn network_resource_tags(
        &self,
        action: &str,
        region: &str,
        kind: ResourceKind,
        id: &str,
    ) -> CloudResult<Tags> {
        let found = match kind {
            ResourceKind::Vpc => self.describe_vpc(region, id).await?.map(|v| v.tags),
            ResourceKind::Subnet => self.describe_subnet(region, id).await?.map(|s| s.tags),
            ResourceKind::SecurityGroup => self
                .describe_security_group(region, id)
                .await?
                .map(|g| g.tags),
        };
        found.ok_or_else(|| {
            local_error(
                ErrorClass::NotFound,
                action,
                "InvalidID.NotFound",
                format!("{kind} {id} not found"),
            )
        })
    }

    async fn on_demand(
        &self,
        body: &serde_json::Value,
        unit: &str,
    ) -> CloudResult<Option<(String, f64)>> {
        let answer = self.client.pricing("GetProducts", body).await?;
        Ok(pricing::lowest_on_demand(&answer, unit))
    }
}

#[async_trait]
impl CloudDriver for AwsDriver {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn probe(&self, region: &str) -> CloudResult<()> {
        self.call_ok(region, "DescribeAvailabilityZones", &Params::new())
            .await
    }

    async fn probe_permissions(&self, region: &str, tags: &Tags) -> CloudResult<Vec<String>> {
        crate::permissions::probe_permissions(self, region, tags).await
    }

    async fn find_vpcs(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Vpc>> {
        let mut params = Params::new();
        params.tag_filters(tags);
        self.vpcs(region, &params).await
    }

    async fn describe_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<Option<Vpc>> {
        let mut params = Params::new();
        params.filter("vpc-id", &[vpc_id]);
        Ok(self
            .vpcs(region, &params)
            .await?
            .into_iter()
            .find(|v| v.id == vpc_id))
    }

    async fn describe_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<Option<Subnet>> {
        let mut params = Params::new();
        params.filter("subnet-id", &[subnet_id]);
        Ok(self
            .subnets(region, &params)
            .await?
            .into_iter()
            .find(|s| s.id == subnet_id))
    }

    async fn describe_security_group(
        &self,
        region: &str,
        group_id: &str,
    ) -> CloudResult<Option<SecurityGroup>> {
        let mut params = Params::new();
        params.filter("group-id", &[group_id]);
        Ok(self
            .security_groups(region, &params)
            .await?
            .into_iter()
            .find(|g| g.id == group_id))
    }

    /// CreateTags on the resource, once it is known to exist (NotFound otherwise) and the
    /// change stays within the tag limit (QuotaExceeded, before any write).
    async fn tag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        tags: &Tags,
    ) -> CloudResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let current = self
            .network_resource_tags("CreateTags", region, kind, id)
            .await?;
        self.create_tags(region, &format!("{kind} {id}"), id, &current, tags)
            .await
    }

    async fn untag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        let keys: BTreeSet<&String> = keys.iter().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.network_resource_tags("DeleteTags", region, kind, id)
            .await?;
        self.delete_tags(region, id, &keys).await
    }

    async fn create_vpc(&self, req: &CreateVpc) -> CloudResult<String> {
        let action = "CreateVpc";
        let mut params = Params::new().with("CidrBlock", &req.cidr_block);
        params.tag_specification("vpc", &req.tags);
        let root = self
            .client
            .call_create(&req.region, action, &params)
            .await?;
        let vpc_id = required(action, &root, &["vpc"], "vpcId")?;
        // The VPC exists: whatever happens next, report it (create_subnet completes the rest).
        if let Err(e) = self
            .ensure_internet_access(&req.region, &vpc_id, &req.tags)
            .await
        {
            tracing::warn!(vpc_id = %vpc_id, error = %e, "internet gateway not set up yet; retried before the first subnet");
        }
        Ok(vpc_id)
    }

    async fn delete_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<()> {
        let action = "DeleteVpc";
        let mut params = Params::new();
        params.filter("vpc-id", &[vpc_id]);
        let mut subnets = 0;
        self.all_pages(region, "DescribeSubnets", &params, Some(PAGE_SIZE), |r| {
            subnets += r.items("subnetSet").count()
        })
        .await?;
        if subnets > 0 {
            return Err(local_error(
                ErrorClass::DependencyViolation,
                action,
                "DependencyViolation",
                format!("VPC {vpc_id} still has {subnets} subnet(s)"),
            ));
        }
        for g in self
            .internet_gateways(region, ("attachment.vpc-id", vpc_id))
            .await?
        {
            let id = g.text_of("internetGatewayId");
            let detach = Params::new()
                .with("InternetGatewayId", id)
                .with("VpcId", vpc_id);
            match self.call_ok(region, "DetachInternetGateway", &detach).await {
                Err(e) if e.code == "Gateway.NotAttached" || e.is(ErrorClass::NotFound) => {}
                other => other?,
            }
        }
        for g in self
            .internet_gateways(region, (&format!("tag:{IGW_VPC_TAG}"), vpc_id))
            .await?
        {
            let delete = Params::new().with("InternetGatewayId", g.text_of("internetGatewayId"));
            match self.call_ok(region, "DeleteInternetGateway", &delete).await {
                Err(e) if e.is(ErrorClass::NotFound) => {}
                other => other?,
            }
        }
        self.call_ok(region, action, &Params::new().with("VpcId", vpc_id))
            .await
    }

    async fn find_subnets(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<Subnet>> {
        let mut params = Params::new();
        if !vpc_id.is_empty() {
            params.filter("vpc-id", &[vpc_id]);
        }
        params.tag_filters(tags);
        self.subnets(region, &params).await
    }

    async fn create_subnet(&self, req: &CreateSubnet) -> CloudResult<String> {
        let action = "CreateSubnet";
        // Before the subnet: no subnet ever exists without the VPC's route to the internet.
        self.ensure_internet_access(&req.region, &req.vpc_id, &req.tags)
            .await?;
        let mut params = Params::new()
            .with("VpcId", &req.vpc_id)
            .with("CidrBlock", &req.cidr_block)
            .with("AvailabilityZone", &req.zone);
        params.tag_specification("subnet", &req.tags);
        let root = self
            .client
            .call_create(&req.region, action, &params)
            .await?;
        required(action, &root, &["subnet"], "subnetId")
    }

    async fn delete_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<()> {
        self.call_ok(
            region,
            "DeleteSubnet",
            &Params::new().with("SubnetId", subnet_id),
        )
        .await
    }

    async fn find_security_groups(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        let mut params = Params::new();
        if !vpc_id.is_empty() {
            params.filter("vpc-id", &[vpc_id]);
        }
        params.tag_filters(tags);
        self.security_groups(region, &params).await
    }

    /// GroupName must be unique in the VPC: a create whose first answer was lost meets
    /// `InvalidGroup.Duplicate`, and the group of that name carrying the request's tags is
    /// the one it created.
    async fn create_security_group(&self, req: &CreateSecurityGroup) -> CloudResult<String> {
        let action = "CreateSecurityGroup";
        let mut name = group_text(&req.name);
        if name.is_empty() || name.to_ascii_lowercase().starts_with("sg-") {
            name = group_text(&format!("mce-{name}"));
        }
        let description = group_text(if req.description.is_empty() {
            &name
        } else {
            &req.description
        });
        let mut params = Params::new()
            .with("GroupName", &name)
            .with("GroupDescription", &description)
            .with("VpcId", &req.vpc_id);
        params.tag_specification("security-group", &req.tags);
        match self.client.call_create(&req.region, action, &params).await {
            Ok(root) => required(action, &root, &[], "groupId"),
            Err(e) if e.code == "InvalidGroup.Duplicate" => {
                let mut lookup = Params::new();
                lookup
                    .filter("vpc-id", &[&req.vpc_id])
                    .filter("group-name", &[&name]);
                let root = self
                    .client
                    .call(&req.region, "DescribeSecurityGroups", &lookup)
                    .await?;
                root.items("securityGroupInfo")
                    .find(|g| {
                        let tags = g.tags();
                        req.tags.iter().all(|(k, v)| tags.get(k) == Some(v))
                    })
                    .map(|g| g.text_of("groupId").to_string())
                    .filter(|id| !id.is_empty())
                    .ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_security_group(&self, region: &str, group_id: &str) -> CloudResult<()> {
        self.call_ok(
            region,
            "DeleteSecurityGroup",
            &Params::new().with("GroupId", group_id),
        )
        .await
    }

    async fn describe_ingress(&self, region: &str, group_id: &str) -> CloudResult<Vec<PortRule>> {
        Ok(ingress_rules(&self.security_group(region, group_id).await?))
    }

    async fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        self.ingress_change(
            region,
            "AuthorizeSecurityGroupIngress",
            group_id,
            rules,
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
        self.ingress_change(
            region,
            "RevokeSecurityGroupIngress",
            group_id,
            rules,
            errors::is_missing_rule,
        )
        .await
    }

    async fn run_instance(&self, req: &RunInstance) -> CloudResult<String> {
        let action = "RunInstances";
        if let ChargeMode::Prepaid { .. } = req.charge {
            return Err(unsupported(
                action,
                "EC2 instances are on-demand only: prepaid (Reserved Instances, Savings Plans) is bought separately",
            ));
        }
        if let Login::Password(_) = req.login {
            return Err(unsupported(
                action,
                "EC2 has no password login: use a key pair (keyPairName)",
            ));
        }
        if req.security_group_ids.iter().all(String::is_empty) {
            return Err(local_error(
                ErrorClass::InvalidParameter,
                action,
                "MissingParameter",
                "at least one security group is required",
            ));
        }
        if req.client_token.len() > 64 || !req.client_token.is_ascii() {
            return Err(local_error(
                ErrorClass::InvalidParameter,
                action,
                "InvalidParameterValue",
                "the ClientToken must be at most 64 ASCII characters",
            ));
        }
        let root_device = self.root_device(&req.region, &req.image_id).await?;
        let params = run_instances_params(req, &root_device);
        let root = if req.client_token.is_empty() {
            self.client
                .call_create(&req.region, action, &params)
                .await?
        } else {
            self.client.call(&req.region, action, &params).await?
        };
        required(action, &root, &["instancesSet", "item"], "instanceId")
    }

    /// By an `instance-id` filter: unlike `InstanceId.N`, an unknown id is simply absent.
    /// Terminated instances (EC2 keeps listing them for about an hour) are absent, as deleted
    /// ones are on the other clouds: "released" means gone, and a gone instance is lost. One
    /// shutting down shows as Terminated until then.
    async fn describe_instances(&self, region: &str, ids: &[String]) -> CloudResult<Vec<Instance>> {
        let mut out = Vec::new();
        for batch in ids.chunks(FILTER_VALUES) {
            let mut params = Params::new();
            params.filter("instance-id", batch);
            params.filter("instance-state-name", &LIVE_STATES);
            self.all_pages(region, "DescribeInstances", &params, Some(PAGE_SIZE), |r| {
                out.extend(instances_of(r))
            })
            .await?;
        }
        Ok(out)
    }

    /// Instances that still exist (terminated ones are left out) carrying every tag.
    async fn find_instances(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Instance>> {
        let mut params = Params::new();
        params.tag_filters(tags);
        params.filter("instance-state-name", &LIVE_STATES);
        let mut out = Vec::new();
        self.all_pages(region, "DescribeInstances", &params, Some(PAGE_SIZE), |r| {
            out.extend(instances_of(r))
        })
        .await?;
        Ok(out)
    }

    /// TerminateInstances is idempotent (a terminated instance answers success); the root
    /// volume goes with the instance (`DeleteOnTermination`), EIPs are released by their own
    /// calls.
    async fn delete_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        let mut params = Params::new();
        params.list("InstanceId", &[instance_id]);
        self.call_ok(region, "TerminateInstances", &params).await
    }

    async fn start_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        let mut params = Params::new();
        params.list("InstanceId", &[instance_id]);
        self.call_ok(region, "StartInstances", &params).await
    }

    /// `ModifyInstanceAttribute` with `GroupId.N` replaces the instance's groups: the current
    /// ones are read first (DescribeInstances `groupSet`) and the union is sent; a member
    /// makes no call. EC2 takes the groups of an instance with one network interface only
    /// (the operator's instances have one). Past the groups-per-interface quota (5 by default)
    /// the cloud answers `SecurityGroupsPerInterfaceLimitExceeded`, a quota here (on a launch
    /// the same code is a wrong request).
    async fn join_security_group(
        &self,
        region: &str,
        instance_id: &str,
        group_id: &str,
    ) -> CloudResult<()> {
        let action = "ModifyInstanceAttribute";
        let mut params = Params::new();
        params.filter("instance-id", &[instance_id]);
        params.filter("instance-state-name", &LIVE_STATES);
        let mut found: Option<Vec<String>> = None;
        self.all_pages(region, "DescribeInstances", &params, Some(PAGE_SIZE), |r| {
            for item in r
                .items("reservationSet")
                .flat_map(|r| r.items("instancesSet"))
                .filter(|i| i.text_of("instanceId") == instance_id)
            {
                found = Some(
                    item.items("groupSet")
                        .map(|g| g.text_of("groupId").to_string())
                        .collect(),
                );
            }
        })
        .await?;
        let Some(mut groups) = found else {
            return Err(local_error(
                ErrorClass::NotFound,
                action,
                "InvalidInstanceID.NotFound",
                format!("instance {instance_id} not found"),
            ));
        };
        if groups.iter().any(|g| g == group_id) {
            return Ok(());
        }
        groups.push(group_id.to_string());
        let mut params = Params::new();
        params.set("InstanceId", instance_id);
        params.list("GroupId", &groups);
        match self.call_ok(region, action, &params).await {
            Err(mut e) if e.code == "SecurityGroupsPerInterfaceLimitExceeded" => {
                e.class = ErrorClass::QuotaExceeded;
                Err(e)
            }
            other => other,
        }
    }

    async fn tag_instance(&self, region: &str, instance_id: &str, tags: &Tags) -> CloudResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let current = self
            .live_instance("CreateTags", region, instance_id)
            .await?
            .tags;
        let what = format!("instance {instance_id}");
        self.create_tags(region, &what, instance_id, &current, tags)
            .await
    }

    async fn untag_instance(
        &self,
        region: &str,
        instance_id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        let keys: BTreeSet<&String> = keys.iter().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.live_instance("DeleteTags", region, instance_id)
            .await?;
        self.delete_tags(region, instance_id, &keys).await
    }

    /// AllocateAddress takes no ClientToken: the driver tags the address with the token and
    /// looks for that tag first, so a retry returns the first allocation.
    async fn allocate_eip(&self, req: &AllocateEip) -> CloudResult<Eip> {
        let action = "AllocateAddress";
        if !req.client_token.is_empty() {
            let by_token = EipFilter {
                tags: [(EIP_TOKEN_TAG.to_string(), req.client_token.clone())].into(),
                ..EipFilter::default()
            };
            if let Some(found) = self.addresses(&req.region, &by_token).await?.first() {
                return Ok(to_eip(found));
            }
        }
        let mut tags = req.tags.clone();
        tags.insert(
            EIP_BANDWIDTH_TAG.to_string(),
            req.bandwidth_mbps.to_string(),
        );
        if !req.client_token.is_empty() {
            tags.insert(EIP_TOKEN_TAG.to_string(), req.client_token.clone());
        }
        let mut params = Params::new().with("Domain", "vpc");
        params.tag_specification("elastic-ip", &tags);
        let root = self
            .client
            .call_create(&req.region, action, &params)
            .await?;
        Ok(Eip {
            allocation_id: required(action, &root, &[], "allocationId")?,
            ip_address: root.text_of("publicIp").to_string(),
            status: EipStatus::Available,
            instance_id: None,
            bandwidth_mbps: req.bandwidth_mbps,
            tags: user_tags(tags),
        })
    }

    async fn associate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()> {
        let action = "AssociateAddress";
        let params = Params::new()
            .with("AllocationId", allocation_id)
            .with("InstanceId", instance_id);
        match self.call_ok(region, action, &params).await {
            // Already on this very instance (a retry after a lost answer): done.
            Err(e) if e.is(ErrorClass::WrongState) && e.code == "Resource.AlreadyAssociated" => {
                let address = self.address(action, region, allocation_id).await?;
                if address.text_of("instanceId") == instance_id {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    async fn describe_eips(&self, region: &str, filter: &EipFilter) -> CloudResult<Vec<Eip>> {
        Ok(self
            .addresses(region, filter)
            .await?
            .iter()
            .map(to_eip)
            .collect())
    }

    /// AWS has no bandwidth cap on an address (traffic is billed per GB): the nominal value
    /// is recorded in a tag, which describe_eips reports, so the operator's plan converges.
    async fn modify_eip_bandwidth(
        &self,
        region: &str,
        allocation_id: &str,
        bandwidth_mbps: u32,
    ) -> CloudResult<()> {
        let action = "CreateTags";
        self.address(action, region, allocation_id).await?;
        let mut params = Params::new();
        params
            .list("ResourceId", &[allocation_id])
            .tags(&[(EIP_BANDWIDTH_TAG.to_string(), bandwidth_mbps.to_string())].into());
        self.call_ok(region, action, &params).await
    }

    /// By the association id read from DescribeAddresses; nothing to do when the address is
    /// not associated (or, for a non-empty `instance_id`, associated with another instance).
    async fn disassociate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()> {
        let action = "DisassociateAddress";
        let address = self.address(action, region, allocation_id).await?;
        let association = address.text_of("associationId");
        let attached_to = address.text_of("instanceId");
        if association.is_empty() || (!instance_id.is_empty() && attached_to != instance_id) {
            return Ok(());
        }
        let params = Params::new().with("AssociationId", association);
        match self.call_ok(region, action, &params).await {
            Err(e) if e.code == "InvalidAssociationID.NotFound" => Ok(()),
            other => other,
        }
    }

    /// Refused while associated (`InvalidIPAddress.InUse`, as AWS does), checked by the driver
    /// too so every endpoint behaves alike.
    async fn release_eip(&self, region: &str, allocation_id: &str) -> CloudResult<()> {
        let action = "ReleaseAddress";
        let address = self.address(action, region, allocation_id).await?;
        if !address.text_of("associationId").is_empty() {
            return Err(local_error(
                ErrorClass::WrongState,
                action,
                "InvalidIPAddress.InUse",
                format!("address {allocation_id} is associated: disassociate it first"),
            ));
        }
        self.call_ok(
            region,
            action,
            &Params::new().with("AllocationId", allocation_id),
        )
        .await
    }

    /// The public on-demand price per hour from the Price List Query API (see [`pricing`]):
    /// the instance plus its root volume. Prepaid has no RunInstances equivalent: refused.
    async fn describe_price(&self, query: &PriceQuery) -> CloudResult<Price> {
        let action = "GetProducts";
        if let ChargeMode::Prepaid { .. } = query.charge {
            return Err(unsupported(
                action,
                "EC2 instances are on-demand only: no prepaid price",
            ));
        }
        let (currency, mut hourly) = self
            .on_demand(
                &pricing::instance_products(&query.region, &query.instance_type),
                "Hrs",
            )
            .await?
            .ok_or_else(|| {
                local_error(
                    ErrorClass::InvalidParameter,
                    action,
                    "PriceNotFound",
                    format!(
                        "no on-demand price for {} in {}",
                        query.instance_type, query.region
                    ),
                )
            })?;
        if let Some(disk) = query.system_disk.as_ref().filter(|d| d.size_gib > 0) {
            let volume = self
                .on_demand(
                    &pricing::volume_products(&query.region, &disk.category),
                    "GB-Mo",
                )
                .await?;
            if let Some((_, per_gib_month)) = volume {
                hourly += per_gib_month * f64::from(disk.size_gib) / pricing::HOURS_PER_MONTH;
            }
        }
        Ok(Price {
            currency,
            original_price: hourly,
            discount_price: hourly,
            trade_price: hourly,
            unit: "Hour".to_string(),
        })
    }

    /// DescribeInstanceTypeOfferings by availability zone: the zones that offer the type.
    async fn describe_stock(
        &self,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
        charge: ChargeMode,
    ) -> CloudResult<Vec<ZoneStock>> {
        let action = "DescribeInstanceTypeOfferings";
        if let ChargeMode::Prepaid { .. } = charge {
            return Err(unsupported(action, "EC2 instances are on-demand only"));
        }
        let mut params = Params::new().with("LocationType", "availability-zone");
        params.filter("instance-type", &[instance_type]);
        if let Some(zone) = zone.filter(|z| !z.is_empty()) {
            params.filter("location", &[zone]);
        }
        let mut out: Vec<ZoneStock> = Vec::new();
        self.all_pages(region, action, &params, Some(PAGE_SIZE), |r| {
            for z in zone_offerings(r, zone, instance_type) {
                if !out.iter().any(|s| s.zone == z.zone) {
                    out.push(z);
                }
            }
        })
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use serde_json::{Value, json};

    use super::*;
    use crate::RateLimit;
    use mce_cloud::{Credentials, Secret, SystemDisk};

    type Log = Arc<Mutex<Vec<Value>>>;

    fn product(unit: &str, usd: &str) -> String {
        json!({"terms": {"OnDemand": {"T": {"priceDimensions": {"D": {
            "unit": unit, "pricePerUnit": {"USD": usd}
        }}}}}})
        .to_string()
    }

    /// A Price List API answering instance and volume products, logging the bodies.
    async fn fake_pricing(log: Log) -> AwsDriver {
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let log = Arc::clone(&log);
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap();
                let storage = body["Filters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["Field"] == "volumeApiName");
                log.lock().push(body);
                let list = if storage {
                    vec![product("GB-Mo", "0.0800000000")]
                } else {
                    vec![product("Hrs", "0.5260000000")]
                };
                json!({"FormatVersion": "aws_v1", "PriceList": list}).to_string()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut config = AwsConfig::new(Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
        })
        .with_endpoint(format!("http://{addr}"));
        config.rate_limit = RateLimit::unlimited();
        AwsDriver::new(config).unwrap()
    }

    #[tokio::test]
    async fn hourly_price_of_the_instance_and_its_root_volume() {
        let log: Log = Arc::default();
        let d = fake_pricing(Arc::clone(&log)).await;
        let query = PriceQuery {
            region: "eu-west-1".into(),
            zone: None,
            instance_type: "g4dn.xlarge".into(),
            image_id: None,
            system_disk: Some(SystemDisk {
                category: "gp3".into(),
                size_gib: 40,
            }),
            charge: ChargeMode::OnDemand,
            bandwidth: Some((5, mce_cloud::BandwidthMode::Traffic)),
        };
        let price = d.describe_price(&query).await.unwrap();
        let expected = 0.526 + 0.08 * 40.0 / 730.0;
        assert!((price.trade_price - expected).abs() < 1e-9, "{price:?}");
        assert_eq!(
            (price.currency.as_str(), price.unit.as_str()),
            ("USD", "Hour")
        );
        let log = log.lock().clone();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0]["ServiceCode"], "AmazonEC2");
        let err = d
            .describe_price(&PriceQuery {
                charge: ChargeMode::Prepaid { months: 12 },
                ..query
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.class, err.code.as_str()),
            (ErrorClass::InvalidParameter, "Unsupported")
        );
        assert_eq!(d.stats().attempts, 2, "prepaid is refused before any call");
    }

    /// DescribeVpcs answered in two pages: the driver follows `nextToken` with `MaxResults`.
    #[tokio::test]
    async fn describes_follow_next_token() {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&log);
        let app = axum::Router::new().fallback(move |body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let page2 = body.contains("NextToken=t2");
                seen.lock().push(body);
                let (vpc, next) = if page2 {
                    ("vpc-2", "")
                } else {
                    ("vpc-1", "<nextToken>t2</nextToken>")
                };
                format!(
                    "<DescribeVpcsResponse><requestId>r</requestId><vpcSet><item><vpcId>{vpc}</vpcId><state>available</state></item></vpcSet>{next}</DescribeVpcsResponse>"
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut config = AwsConfig::new(Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
        })
        .with_endpoint(format!("http://{addr}"));
        config.rate_limit = RateLimit::unlimited();
        let d = AwsDriver::new(config).unwrap();
        let owner: Tags = [("o".to_string(), "u".to_string())].into();
        let vpcs = d.find_vpcs("us-east-1", &owner).await.unwrap();
        let ids: Vec<&str> = vpcs.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["vpc-1", "vpc-2"]);
        assert!(vpcs.iter().all(|v| v.available));
        let log = log.lock();
        assert_eq!(
            log[0],
            "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=tag%3Ao&Filter.1.Value.1=u&MaxResults=1000"
        );
        assert!(
            log[1].ends_with("&MaxResults=1000&NextToken=t2"),
            "{}",
            log[1]
        );
    }
}
