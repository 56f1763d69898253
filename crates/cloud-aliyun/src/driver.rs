//! [`AliyunDriver`]: the neutral [`CloudDriver`] calls carried out over Alibaba Cloud's ECS and
//! VPC RPC APIs, with pagination, batching and the duplicate-rule fallbacks.

use async_trait::async_trait;
use mce_cloud::{
    AllocateEip, ChargeMode, CloudDriver, CloudError, CloudResult, CreateSecurityGroup,
    CreateSubnet, CreateVpc, Eip, EipFilter, EipStatus, ErrorClass, Instance, PortRule, Price,
    PriceQuery, ResourceKind, RunInstance, SecurityGroup, Subnet, Tags, Vpc, ZoneStock,
};

use crate::client::{PROVIDER, RpcClient};
use crate::wire::*;
use crate::*;
use mce_cloud::transport::{ConfigError, TransportStats};

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

    async fn probe_permissions(&self, region: &str, tags: &Tags) -> CloudResult<Vec<String>> {
        crate::permissions::probe_permissions(self, region, tags).await
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

    async fn start_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        let p = Params::new().with("InstanceId", instance_id);
        self.call_ok(Service::Ecs, region, "StartInstance", p).await
    }

    async fn join_security_group(
        &self,
        region: &str,
        instance_id: &str,
        group_id: &str,
    ) -> CloudResult<()> {
        let p = Params::new()
            .with("InstanceId", instance_id)
            .with("SecurityGroupId", group_id);
        match self
            .call_ok(Service::Ecs, region, "JoinSecurityGroup", p)
            .await
        {
            Err(e) if errors::is_already_in_group(&e.code) => Ok(()),
            other => other,
        }
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

    async fn describe_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<Option<Vpc>> {
        let p = Params::new().with("VpcId", vpc_id).with("PageSize", 1);
        let r: model::DescribeVpcs = match self
            .client
            .call(Service::Vpc, region, "DescribeVpcs", p)
            .await
        {
            Err(e) if e.is(ErrorClass::NotFound) => return Ok(None),
            other => other?,
        };
        Ok(r.vpcs
            .vpc
            .into_iter()
            .find(|v| v.vpc_id == vpc_id)
            .map(|v| Vpc {
                available: v.status == "Available",
                tags: v.tags.to_tags(),
                id: v.vpc_id,
                cidr_block: v.cidr_block,
            }))
    }

    async fn describe_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<Option<Subnet>> {
        let p = Params::new()
            .with("VSwitchId", subnet_id)
            .with("PageSize", 1);
        let r: model::DescribeVSwitches = match self
            .client
            .call(Service::Vpc, region, "DescribeVSwitches", p)
            .await
        {
            Err(e) if e.is(ErrorClass::NotFound) => return Ok(None),
            other => other?,
        };
        Ok(r.vswitches
            .vswitch
            .into_iter()
            .find(|v| v.vswitch_id == subnet_id)
            .map(|v| Subnet {
                available: v.status == "Available",
                tags: v.tags.to_tags(),
                id: v.vswitch_id,
                vpc_id: v.vpc_id,
                zone: v.zone_id,
                cidr_block: v.cidr_block,
            }))
    }

    async fn describe_security_group(
        &self,
        region: &str,
        group_id: &str,
    ) -> CloudResult<Option<SecurityGroup>> {
        let mut p = Params::new();
        p.json_array("SecurityGroupIds", &[group_id]);
        let r: model::DescribeSecurityGroups = match self
            .client
            .call(Service::Ecs, region, "DescribeSecurityGroups", p)
            .await
        {
            Err(e) if e.is(ErrorClass::NotFound) => return Ok(None),
            other => other?,
        };
        Ok(r.security_groups
            .security_group
            .into_iter()
            .find(|g| g.security_group_id == group_id)
            .map(|g| SecurityGroup {
                tags: g.tags.to_tags(),
                id: g.security_group_id,
                vpc_id: g.vpc_id,
            }))
    }

    async fn tag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        tags: &Tags,
    ) -> CloudResult<()> {
        let (service, resource_type, action, _) = tag_api(kind);
        for p in tag_resource_params(resource_type, id, tags) {
            self.call_ok(service, region, action, p).await?;
        }
        Ok(())
    }

    async fn untag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        let (service, resource_type, _, action) = tag_api(kind);
        for p in untag_resource_params(resource_type, id, keys) {
            self.call_ok(service, region, action, p).await?;
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

    async fn describe_stock(
        &self,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
        charge: ChargeMode,
    ) -> CloudResult<Vec<ZoneStock>> {
        let r: model::DescribeAvailableResource = self
            .client
            .call(
                Service::Ecs,
                region,
                "DescribeAvailableResource",
                stock_params(region, zone, instance_type, charge),
            )
            .await?;
        Ok(zone_stock(r, zone, instance_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mce_cloud::Secret;

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
