//! [`TencentDriver`]: the neutral [`CloudDriver`] calls carried out over Tencent Cloud's CVM,
//! VPC and Tag APIs, with Offset/Limit pagination, batching and the Tencent semantics that
//! differ from Alibaba (regional security groups, index-based rule deletion, asynchronous
//! EIP calls, tags of live resources through the Tag API).

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use mce_cloud::{
    AllocateEip, CloudDriver, CloudError, CloudResult, CreateSecurityGroup, CreateSubnet,
    CreateVpc, Eip, EipFilter, EipStatus, ErrorClass, Instance, PortRule, Price, PriceQuery,
    ResourceKind, RunInstance, SecurityGroup, Subnet, Tags, Vpc, ZoneStock,
};

use crate::client::{ApiClient, PROVIDER, Service};
use crate::wire::*;
use crate::{MAX_PAGES, PAGE_SIZE, TencentConfig, errors, model};
use mce_cloud::transport::{ConfigError, TransportStats};

/// The Tencent Cloud driver for one account.
pub struct TencentDriver {
    client: ApiClient,
    /// The main account's uin, learned once (the Tag API names resources by it).
    account_uin: OnceCell<String>,
}

/// TagResources/UnTagResources report per-resource failures in a 200 answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TagAnswer {
    failed_resources: Option<Vec<FailedResource>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct FailedResource {
    code: String,
    message: String,
}

fn invalid(action: &str, message: impl Into<String>) -> CloudError {
    CloudError::new(
        ErrorClass::InvalidParameter,
        PROVIDER,
        action,
        "InvalidParameter",
        message,
    )
}

impl TencentDriver {
    pub fn new(config: TencentConfig) -> Result<Self, ConfigError> {
        let client = ApiClient::new(
            config.credentials,
            config.endpoint_override.as_deref(),
            config.timeout,
            config.retry,
            config.rate_limit,
        )?;
        Ok(Self {
            client,
            account_uin: OnceCell::new(),
        })
    }

    /// Transport counters (attempts, retries) since the driver was built.
    pub fn stats(&self) -> TransportStats {
        self.client.stats()
    }

    /// A raw signed call, for actions the trait does not cover.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        body: &Value,
    ) -> CloudResult<T> {
        self.client.call(service, region, action, body).await
    }

    async fn call_ok(
        &self,
        service: Service,
        region: &str,
        action: &str,
        body: &Value,
    ) -> CloudResult<()> {
        self.client
            .call::<model::Empty>(service, region, action, body)
            .await
            .map(|_| ())
    }

    /// Every page of an Offset/Limit describe: `items` takes an answer apart into its items
    /// and `TotalCount` (which counts all matches, not the page).
    async fn all_pages<R, T>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        base: &Value,
        limits_as_strings: bool,
        items: impl Fn(R) -> (Vec<T>, u64),
    ) -> CloudResult<Vec<T>>
    where
        R: serde::de::DeserializeOwned,
    {
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let mut body = base.clone();
            set_page(&mut body, page * PAGE_SIZE, PAGE_SIZE, limits_as_strings);
            let (got, total) = items(self.client.call(service, region, action, &body).await?);
            let empty = got.is_empty();
            out.extend(got);
            if empty || out.len() as u64 >= total {
                break;
            }
        }
        Ok(out)
    }

    async fn subnet_vpc(&self, region: &str, subnet_id: &str) -> CloudResult<String> {
        let r: model::DescribeSubnets = self
            .client
            .call(
                Service::Vpc,
                region,
                "DescribeSubnets",
                &json!({"SubnetIds": [subnet_id]}),
            )
            .await?;
        r.subnet_set
            .into_iter()
            .find(|s| s.subnet_id == subnet_id && !s.vpc_id.is_empty())
            .map(|s| s.vpc_id)
            .ok_or_else(|| {
                CloudError::new(
                    ErrorClass::NotFound,
                    PROVIDER,
                    "DescribeSubnets",
                    "InvalidSubnetId.NotFound",
                    format!("subnet {subnet_id} not found"),
                )
            })
    }

    async fn uin(&self, region: &str) -> CloudResult<&str> {
        self.account_uin
            .get_or_try_init(|| async {
                let r: model::CallerIdentity = self
                    .client
                    .call(Service::Sts, region, "GetCallerIdentity", &json!({}))
                    .await?;
                Some(r.account_id)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| missing_field("GetCallerIdentity", "AccountId"))
            })
            .await
            .map(String::as_str)
    }

    /// The Tag API does not say whether an instance exists: ask CVM, so an unknown instance
    /// is NotFound as the trait promises. Returns the Tag API's name of the instance and the
    /// tags it carries now.
    async fn instance_resource_name(
        &self,
        action: &str,
        region: &str,
        instance_id: &str,
    ) -> CloudResult<(String, Tags)> {
        let found = self
            .describe_instances(region, &[instance_id.to_string()])
            .await?;
        let Some(instance) = found.into_iter().find(|i| i.id == instance_id) else {
            return Err(CloudError::new(
                ErrorClass::NotFound,
                PROVIDER,
                action,
                "InvalidInstanceId.NotFound",
                format!("instance {instance_id} not found"),
            ));
        };
        let uin = self.uin(region).await?;
        Ok((instance_resource(region, uin, instance_id), instance.tags))
    }

    /// As [`Self::instance_resource_name`] for a network resource: the Tag API does not say
    /// whether it exists, so the VPC API is asked first (NotFound as the trait promises).
    async fn network_resource_name(
        &self,
        action: &str,
        region: &str,
        kind: ResourceKind,
        id: &str,
    ) -> CloudResult<(String, Tags)> {
        let tags = match kind {
            ResourceKind::Vpc => self.describe_vpc(region, id).await?.map(|v| v.tags),
            ResourceKind::Subnet => self.describe_subnet(region, id).await?.map(|s| s.tags),
            ResourceKind::SecurityGroup => self
                .describe_security_group(region, id)
                .await?
                .map(|g| g.tags),
        };
        let Some(tags) = tags else {
            let code = match kind {
                ResourceKind::Vpc => "InvalidVpcId.NotFound",
                ResourceKind::Subnet => "InvalidSubnetId.NotFound",
                ResourceKind::SecurityGroup => "InvalidSecurityGroupID.NotFound",
            };
            return Err(CloudError::new(
                ErrorClass::NotFound,
                PROVIDER,
                action,
                code,
                format!("{kind} {id} not found"),
            ));
        };
        let uin = self.uin(region).await?;
        Ok((network_resource(kind, region, uin, id), tags))
    }

    /// One page of a describe by id; a `ResourceNotFound`-class answer is an empty one.
    async fn describe_by_id<R: serde::de::DeserializeOwned>(
        &self,
        region: &str,
        action: &str,
        body: &Value,
    ) -> CloudResult<Option<R>> {
        match self.client.call(Service::Vpc, region, action, body).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn tag_calls(&self, region: &str, action: &str, bodies: Vec<Value>) -> CloudResult<()> {
        for body in bodies {
            let r: TagAnswer = self
                .client
                .call(Service::Tag, region, action, &body)
                .await?;
            if let Some(failed) = r.failed_resources.unwrap_or_default().into_iter().next() {
                let class = errors::classify(&failed.code, 200);
                return Err(CloudError::new(
                    class,
                    PROVIDER,
                    action,
                    failed.code,
                    failed.message,
                ));
            }
        }
        Ok(())
    }

    async fn terminate(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Cvm,
            region,
            "TerminateInstances",
            &json!({"InstanceIds": [instance_id], "ReleaseAddress": false}),
        )
        .await
    }

    /// One instance as CVM describes it (with the fields the neutral view drops).
    async fn describe_one(
        &self,
        region: &str,
        instance_id: &str,
    ) -> CloudResult<Option<model::InstanceItem>> {
        let body = json!({"InstanceIds": [instance_id], "Offset": 0, "Limit": 1});
        let r: model::DescribeInstances = self
            .client
            .call(Service::Cvm, region, "DescribeInstances", &body)
            .await?;
        Ok(r.instance_set
            .into_iter()
            .find(|i| i.instance_id == instance_id))
    }

    /// Deletes the rules matching `rules` by index, pinned to the version they were read at.
    async fn delete_matching_rules(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        let r: model::DescribeSecurityGroupPolicies = self
            .client
            .call(
                Service::Vpc,
                region,
                "DescribeSecurityGroupPolicies",
                &json!({"SecurityGroupId": group_id}),
            )
            .await?;
        let set = r.security_group_policy_set;
        let indexes = matching_policy_indexes(&set, rules);
        if indexes.is_empty() {
            return Ok(());
        }
        self.call_ok(
            Service::Vpc,
            region,
            "DeleteSecurityGroupPolicies",
            &delete_policies_body(group_id, &set.version, &indexes),
        )
        .await
    }

    async fn create_rules(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        let action = "CreateSecurityGroupPolicies";
        self.call_ok(
            Service::Vpc,
            region,
            action,
            &create_policies_body(group_id, rules),
        )
        .await
    }
}

#[async_trait]
impl CloudDriver for TencentDriver {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn probe(&self, region: &str) -> CloudResult<()> {
        self.call_ok(Service::Cvm, region, "DescribeRegions", &json!({}))
            .await
    }

    async fn probe_permissions(&self, region: &str, tags: &Tags) -> CloudResult<Vec<String>> {
        crate::permissions::probe_permissions(self, region, tags).await
    }

    async fn find_vpcs(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Vpc>> {
        let base = filtered(tag_filters(tags));
        self.all_pages(
            Service::Vpc,
            region,
            "DescribeVpcs",
            &base,
            true,
            |r: model::DescribeVpcs| {
                let vpcs = r.vpc_set.into_iter().map(|v| Vpc {
                    // A Tencent VPC takes subnets as soon as it exists.
                    available: true,
                    tags: model::to_tags(v.tag_set),
                    id: v.vpc_id,
                    cidr_block: v.cidr_block,
                });
                (vpcs.collect(), r.total_count)
            },
        )
        .await
    }

    async fn create_vpc(&self, req: &CreateVpc) -> CloudResult<String> {
        // CreateVpc takes no ClientToken: the reconciler finds a VPC by its tags first.
        let mut body = json!({"VpcName": req.name, "CidrBlock": req.cidr_block});
        if !req.tags.is_empty() {
            body["Tags"] = tags_json(&req.tags);
        }
        let r: model::CreateVpc = self
            .client
            .call_create(Service::Vpc, &req.region, "CreateVpc", &body)
            .await?;
        Some(r.vpc.vpc_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_field("CreateVpc", "Vpc.VpcId"))
    }

    async fn delete_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<()> {
        self.call_ok(Service::Vpc, region, "DeleteVpc", &json!({"VpcId": vpc_id}))
            .await
    }

    async fn find_subnets(
        &self,
        region: &str,
        vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<Subnet>> {
        let mut filters = Vec::new();
        if !vpc_id.is_empty() {
            filters.push(json!({"Name": "vpc-id", "Values": [vpc_id]}));
        }
        filters.extend(tag_filters(tags));
        self.all_pages(
            Service::Vpc,
            region,
            "DescribeSubnets",
            &filtered(filters),
            true,
            |r: model::DescribeSubnets| {
                let subnets = r.subnet_set.into_iter().map(|s| Subnet {
                    available: true,
                    tags: model::to_tags(s.tag_set),
                    id: s.subnet_id,
                    vpc_id: s.vpc_id,
                    zone: s.zone,
                    cidr_block: s.cidr_block,
                });
                (subnets.collect(), r.total_count)
            },
        )
        .await
    }

    async fn create_subnet(&self, req: &CreateSubnet) -> CloudResult<String> {
        let mut body = json!({
            "VpcId": req.vpc_id,
            "SubnetName": req.name,
            "CidrBlock": req.cidr_block,
            "Zone": req.zone,
        });
        if !req.tags.is_empty() {
            body["Tags"] = tags_json(&req.tags);
        }
        let r: model::CreateSubnet = self
            .client
            .call_create(Service::Vpc, &req.region, "CreateSubnet", &body)
            .await?;
        Some(r.subnet.subnet_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_field("CreateSubnet", "Subnet.SubnetId"))
    }

    async fn delete_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Vpc,
            region,
            "DeleteSubnet",
            &json!({"SubnetId": subnet_id}),
        )
        .await
    }

    /// Security groups are regional on Tencent Cloud: `vpc_id` does not filter, and the
    /// groups found carry an empty `vpc_id`.
    async fn find_security_groups(
        &self,
        region: &str,
        _vpc_id: &str,
        tags: &Tags,
    ) -> CloudResult<Vec<SecurityGroup>> {
        self.all_pages(
            Service::Vpc,
            region,
            "DescribeSecurityGroups",
            &filtered(tag_filters(tags)),
            true,
            |r: model::DescribeSecurityGroups| {
                let groups = r.security_group_set.into_iter().map(|g| SecurityGroup {
                    tags: model::to_tags(g.tag_set),
                    id: g.security_group_id,
                    vpc_id: String::new(),
                });
                (groups.collect(), r.total_count)
            },
        )
        .await
    }

    async fn create_security_group(&self, req: &CreateSecurityGroup) -> CloudResult<String> {
        // Regional: no VpcId. GroupDescription is required, at most 100 characters.
        let description = if req.description.is_empty() {
            &req.name
        } else {
            &req.description
        };
        let description: String = description.chars().take(100).collect();
        let mut body = json!({"GroupName": req.name, "GroupDescription": description});
        if !req.tags.is_empty() {
            body["Tags"] = tags_json(&req.tags);
        }
        let r: model::CreateSecurityGroup = self
            .client
            .call_create(Service::Vpc, &req.region, "CreateSecurityGroup", &body)
            .await?;
        Some(r.security_group.security_group_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_field("CreateSecurityGroup", "SecurityGroup.SecurityGroupId"))
    }

    async fn delete_security_group(&self, region: &str, group_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Vpc,
            region,
            "DeleteSecurityGroup",
            &json!({"SecurityGroupId": group_id}),
        )
        .await
    }

    async fn describe_ingress(&self, region: &str, group_id: &str) -> CloudResult<Vec<PortRule>> {
        let r: model::DescribeSecurityGroupPolicies = self
            .client
            .call(
                Service::Vpc,
                region,
                "DescribeSecurityGroupPolicies",
                &json!({"SecurityGroupId": group_id}),
            )
            .await?;
        Ok(ingress_rules(&r.security_group_policy_set))
    }

    async fn authorize_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        // A duplicate fails the whole call: then add the rules one by one so the new ones are
        // not lost, counting the duplicates as done.
        match self.create_rules(region, group_id, rules).await {
            Err(e) if errors::is_duplicate_rule(&e.code) => {
                if rules.len() > 1 {
                    for rule in rules {
                        match self
                            .create_rules(region, group_id, std::slice::from_ref(rule))
                            .await
                        {
                            Err(e) if errors::is_duplicate_rule(&e.code) => {}
                            other => other?,
                        }
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    async fn revoke_ingress(
        &self,
        region: &str,
        group_id: &str,
        rules: &[PortRule],
    ) -> CloudResult<()> {
        if rules.is_empty() {
            return Ok(());
        }
        // Delete by index, read with the set's version: deleting by content would have to
        // match every field the cloud stored (description included). If the set changed
        // between the read and the delete (`UnsupportedOperation.VersionMismatch`), read again.
        match self.delete_matching_rules(region, group_id, rules).await {
            Err(e) if e.code == "UnsupportedOperation.VersionMismatch" => {
                self.delete_matching_rules(region, group_id, rules).await
            }
            other => other,
        }
    }

    async fn run_instance(&self, req: &RunInstance) -> CloudResult<String> {
        let action = "RunInstances";
        if req.security_group_ids.iter().all(String::is_empty) {
            return Err(invalid(action, "at least one security group is required"));
        }
        if req.client_token.len() > 64 || !req.client_token.is_ascii() {
            return Err(invalid(
                action,
                "the ClientToken must be at most 64 ASCII characters",
            ));
        }
        let vpc_id = self.subnet_vpc(&req.region, &req.subnet_id).await?;
        let r: model::RunInstances = self
            .client
            .call(
                Service::Cvm,
                &req.region,
                action,
                &run_instances_body(req, &vpc_id),
            )
            .await?;
        r.instance_id_set
            .into_iter()
            .find(|s| !s.is_empty())
            .ok_or_else(|| missing_field(action, "InstanceIdSet"))
    }

    async fn describe_instances(&self, region: &str, ids: &[String]) -> CloudResult<Vec<Instance>> {
        let mut out = Vec::new();
        // `InstanceIds` takes at most 100, the same as one page.
        for batch in ids.chunks(PAGE_SIZE as usize) {
            let body = json!({"InstanceIds": batch, "Offset": 0, "Limit": PAGE_SIZE});
            let r: model::DescribeInstances = self
                .client
                .call(Service::Cvm, region, "DescribeInstances", &body)
                .await?;
            out.extend(r.instance_set.into_iter().map(to_instance));
        }
        Ok(out)
    }

    async fn find_instances(&self, region: &str, tags: &Tags) -> CloudResult<Vec<Instance>> {
        self.all_pages(
            Service::Cvm,
            region,
            "DescribeInstances",
            &filtered(tag_filters(tags)),
            false,
            |r: model::DescribeInstances| {
                (
                    r.instance_set.into_iter().map(to_instance).collect(),
                    r.total_count,
                )
            },
        )
        .await
    }

    /// POSTPAID instances terminate directly. A PREPAID one goes to the recycle bin (SHUTDOWN,
    /// `IsolatedSource` MANMADE) on the first TerminateInstances and is destroyed by a second
    /// (SDK `cvm_client.py` TerminateInstances): the driver sends the second as soon as the
    /// instance shows in the bin; until then a later delete (the caller retries while the
    /// instance is still found) sends it. EIPs are released by their own calls, never with the
    /// instance.
    async fn delete_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        match self.terminate(region, instance_id).await {
            Ok(()) => {}
            // Already TERMINATING, in the recycle bin or gone meanwhile: done, not refused.
            Err(e) if e.is(ErrorClass::WrongState) => {
                let found = self.describe_one(region, instance_id).await?;
                return match found.map(to_instance) {
                    Some(i) if i.status != mce_cloud::InstanceStatus::Terminated => Err(e),
                    _ => Ok(()),
                };
            }
            Err(e) => return Err(e),
        }
        match self.describe_one(region, instance_id).await? {
            Some(i) if recycled(&i.instance_state, &i.isolated_source) => {
                match self.terminate(region, instance_id).await {
                    // Still settling into the bin: the next delete destroys it.
                    Err(e) if e.is(ErrorClass::WrongState) || e.is(ErrorClass::NotFound) => Ok(()),
                    other => other,
                }
            }
            _ => Ok(()),
        }
    }

    async fn start_instance(&self, region: &str, instance_id: &str) -> CloudResult<()> {
        self.call_ok(
            Service::Cvm,
            region,
            "StartInstances",
            &json!({"InstanceIds": [instance_id]}),
        )
        .await
    }

    /// `AssociateSecurityGroups` (CVM) is additive, and takes one group per call. Its answer
    /// for a group the instance already has is not documented: the instance is described
    /// first (`SecurityGroupIds`), and a member makes no call.
    async fn join_security_group(
        &self,
        region: &str,
        instance_id: &str,
        group_id: &str,
    ) -> CloudResult<()> {
        let action = "AssociateSecurityGroups";
        let Some(instance) = self.describe_one(region, instance_id).await? else {
            return Err(CloudError::new(
                ErrorClass::NotFound,
                PROVIDER,
                action,
                "InvalidInstanceId.NotFound",
                format!("instance {instance_id} does not exist"),
            ));
        };
        if instance.security_group_ids.iter().any(|g| g == group_id) {
            return Ok(());
        }
        self.call_ok(
            Service::Cvm,
            region,
            action,
            &json!({"SecurityGroupIds": [group_id], "InstanceIds": [instance_id]}),
        )
        .await
    }

    async fn tag_instance(&self, region: &str, instance_id: &str, tags: &Tags) -> CloudResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let action = "TagResources";
        let (resource, current) = self
            .instance_resource_name(action, region, instance_id)
            .await?;
        // TagResources takes 10 tags per call: past the per-resource limit the first calls
        // would apply and a later one fail. Refuse the whole change before any call instead.
        let limit = crate::PROFILE.limits.tags_per_resource;
        let after = current
            .keys()
            .chain(tags.keys())
            .collect::<BTreeSet<_>>()
            .len();
        if after > limit {
            return Err(CloudError::new(
                ErrorClass::QuotaExceeded,
                PROVIDER,
                action,
                "LimitExceeded.ResourceAttachedTags",
                format!("instance {instance_id} would carry {after} tags, more than {limit}"),
            ));
        }
        self.tag_calls(region, action, tag_resources_bodies(&resource, tags))
            .await
    }

    async fn untag_instance(
        &self,
        region: &str,
        instance_id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        if keys.iter().all(String::is_empty) {
            return Ok(());
        }
        let action = "UnTagResources";
        let (resource, _) = self
            .instance_resource_name(action, region, instance_id)
            .await?;
        self.tag_calls(region, action, untag_resources_bodies(&resource, keys))
            .await
    }

    async fn describe_vpc(&self, region: &str, vpc_id: &str) -> CloudResult<Option<Vpc>> {
        let body = json!({"VpcIds": [vpc_id]});
        let r: Option<model::DescribeVpcs> =
            self.describe_by_id(region, "DescribeVpcs", &body).await?;
        Ok(r.into_iter()
            .flat_map(|r| r.vpc_set)
            .find(|v| v.vpc_id == vpc_id)
            .map(|v| Vpc {
                available: true,
                tags: model::to_tags(v.tag_set),
                id: v.vpc_id,
                cidr_block: v.cidr_block,
            }))
    }

    async fn describe_subnet(&self, region: &str, subnet_id: &str) -> CloudResult<Option<Subnet>> {
        let body = json!({"SubnetIds": [subnet_id]});
        let r: Option<model::DescribeSubnets> = self
            .describe_by_id(region, "DescribeSubnets", &body)
            .await?;
        Ok(r.into_iter()
            .flat_map(|r| r.subnet_set)
            .find(|s| s.subnet_id == subnet_id)
            .map(|s| Subnet {
                available: true,
                tags: model::to_tags(s.tag_set),
                id: s.subnet_id,
                vpc_id: s.vpc_id,
                zone: s.zone,
                cidr_block: s.cidr_block,
            }))
    }

    /// Regional on Tencent Cloud: the group found carries an empty `vpc_id`.
    async fn describe_security_group(
        &self,
        region: &str,
        group_id: &str,
    ) -> CloudResult<Option<SecurityGroup>> {
        let body = json!({"SecurityGroupIds": [group_id]});
        let r: Option<model::DescribeSecurityGroups> = self
            .describe_by_id(region, "DescribeSecurityGroups", &body)
            .await?;
        Ok(r.into_iter()
            .flat_map(|r| r.security_group_set)
            .find(|g| g.security_group_id == group_id)
            .map(|g| SecurityGroup {
                tags: model::to_tags(g.tag_set),
                id: g.security_group_id,
                vpc_id: String::new(),
            }))
    }

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
        let action = "TagResources";
        let (resource, current) = self.network_resource_name(action, region, kind, id).await?;
        // As for instances: refuse a change past the per-resource limit before any call.
        let limit = crate::PROFILE.limits.tags_per_resource;
        let after = current
            .keys()
            .chain(tags.keys())
            .collect::<BTreeSet<_>>()
            .len();
        if after > limit {
            return Err(CloudError::new(
                ErrorClass::QuotaExceeded,
                PROVIDER,
                action,
                "LimitExceeded.ResourceAttachedTags",
                format!("{kind} {id} would carry {after} tags, more than {limit}"),
            ));
        }
        self.tag_calls(region, action, tag_resources_bodies(&resource, tags))
            .await
    }

    async fn untag_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
        keys: &[String],
    ) -> CloudResult<()> {
        if keys.iter().all(String::is_empty) {
            return Ok(());
        }
        let action = "UnTagResources";
        let (resource, _) = self.network_resource_name(action, region, kind, id).await?;
        self.tag_calls(region, action, untag_resources_bodies(&resource, keys))
            .await
    }

    /// Asynchronous on Tencent: the address is read back once; while it is still being
    /// created its status is `Creating` and its IP may be empty.
    async fn allocate_eip(&self, req: &AllocateEip) -> CloudResult<Eip> {
        let action = "AllocateAddresses";
        let mut body = json!({
            "AddressCount": 1,
            "InternetChargeType": bandwidth_mode_wire(req.bandwidth_mode),
            "InternetMaxBandwidthOut": req.bandwidth_mbps,
        });
        if !req.tags.is_empty() {
            body["Tags"] = tags_json(&req.tags);
        }
        if !req.client_token.is_empty() {
            body["ClientToken"] = json!(req.client_token);
        }
        let r: model::AllocateAddresses = self
            .client
            .call(Service::Vpc, &req.region, action, &body)
            .await?;
        let id = r
            .address_set
            .into_iter()
            .find(|s| !s.is_empty())
            .ok_or_else(|| missing_field(action, "AddressSet"))?;
        let filter = EipFilter {
            allocation_ids: vec![id.clone()],
            ..EipFilter::default()
        };
        let found = self.describe_eips(&req.region, &filter).await?;
        Ok(found
            .into_iter()
            .find(|e| e.allocation_id == id)
            .unwrap_or(Eip {
                allocation_id: id,
                ip_address: String::new(),
                status: EipStatus::Creating,
                instance_id: None,
                bandwidth_mbps: req.bandwidth_mbps,
                tags: req.tags.clone(),
            }))
    }

    /// Returns once the task is accepted; the association shows in DescribeAddresses later.
    async fn associate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        instance_id: &str,
    ) -> CloudResult<()> {
        let sent: CloudResult<model::Task> = self
            .client
            .call(
                Service::Vpc,
                region,
                "AssociateAddress",
                &json!({"AddressId": allocation_id, "InstanceId": instance_id}),
            )
            .await;
        match sent {
            Ok(_) => Ok(()),
            // A retry after a lost answer finds the first call's work (BINDING or BIND to this
            // very instance): that is success, not a refusal.
            Err(e)
                if e.code == "InvalidInstanceId.AlreadyBindEip" || e.is(ErrorClass::WrongState) =>
            {
                let by_id = EipFilter {
                    allocation_ids: vec![allocation_id.to_string()],
                    ..EipFilter::default()
                };
                let bound_here = self
                    .describe_eips(region, &by_id)
                    .await?
                    .iter()
                    .any(|eip| eip.instance_id.as_deref() == Some(instance_id));
                if bound_here { Ok(()) } else { Err(e) }
            }
            Err(e) => Err(e),
        }
    }

    async fn describe_eips(&self, region: &str, filter: &EipFilter) -> CloudResult<Vec<Eip>> {
        // `AddressIds` cannot be combined with `Filters`: ids travel as an `address-id` filter,
        // one page loop per batch of ids.
        let id_batches: Vec<Option<&[String]>> = if filter.allocation_ids.is_empty() {
            vec![None]
        } else {
            filter
                .allocation_ids
                .chunks(PAGE_SIZE as usize)
                .map(Some)
                .collect()
        };
        let mut out = Vec::new();
        for ids in id_batches {
            let mut filters = Vec::new();
            if let Some(ids) = ids {
                filters.push(json!({"Name": "address-id", "Values": ids}));
            }
            if let Some(instance) = filter.instance_id.as_deref().filter(|s| !s.is_empty()) {
                filters.push(json!({"Name": "instance-id", "Values": [instance]}));
            }
            filters.extend(tag_filters(&filter.tags));
            out.extend(
                self.all_pages(
                    Service::Vpc,
                    region,
                    "DescribeAddresses",
                    &filtered(filters),
                    false,
                    |r: model::DescribeAddresses| {
                        (
                            r.address_set.into_iter().map(to_eip).collect(),
                            r.total_count,
                        )
                    },
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
        let _: model::Task = self
            .client
            .call(
                Service::Vpc,
                region,
                "ModifyAddressesBandwidth",
                &json!({"AddressIds": [allocation_id], "InternetMaxBandwidthOut": bandwidth_mbps}),
            )
            .await?;
        Ok(())
    }

    async fn disassociate_eip(
        &self,
        region: &str,
        allocation_id: &str,
        _instance_id: &str,
    ) -> CloudResult<()> {
        let _: model::Task = self
            .client
            .call(
                Service::Vpc,
                region,
                "DisassociateAddress",
                &json!({"AddressId": allocation_id}),
            )
            .await?;
        Ok(())
    }

    async fn release_eip(&self, region: &str, allocation_id: &str) -> CloudResult<()> {
        let _: model::Task = self
            .client
            .call(
                Service::Vpc,
                region,
                "ReleaseAddresses",
                &json!({"AddressIds": [allocation_id]}),
            )
            .await?;
        Ok(())
    }

    async fn describe_price(&self, query: &PriceQuery) -> CloudResult<Price> {
        let r: model::InquiryPrice = self
            .client
            .call(
                Service::Cvm,
                &query.region,
                "InquiryPriceRunInstances",
                &price_body(query),
            )
            .await?;
        Ok(to_price(&r.price, query.charge))
    }

    async fn describe_stock(
        &self,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
        charge: mce_cloud::ChargeMode,
    ) -> CloudResult<Vec<ZoneStock>> {
        let r: model::DescribeZoneInstanceConfigInfos = self
            .client
            .call(
                Service::Cvm,
                region,
                "DescribeZoneInstanceConfigInfos",
                &stock_body(zone, instance_type, charge),
            )
            .await?;
        Ok(zone_stock(r, zone, instance_type, charge))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::RateLimit;
    use mce_cloud::{ChargeMode, Credentials, Login, Secret, SystemDisk};

    type Log = Arc<Mutex<Vec<(String, String, Value)>>>;

    /// Answers by `X-TC-Action` like Tencent would, logging (service, action, body).
    async fn fake_cloud(log: Log) -> TencentDriver {
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let log = Arc::clone(&log);
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let action = header("x-tc-action");
                    let auth = header("authorization");
                    let service = auth.split('/').nth(2).unwrap_or_default().to_string();
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    log.lock().push((service, action.clone(), body.clone()));
                    let ingress = &body["SecurityGroupPolicySet"]["Ingress"];
                    let answer = match action.as_str() {
                        "DescribeSubnets" => {
                            json!({"SubnetSet": [{"SubnetId": "subnet-1", "VpcId": "vpc-1"}], "TotalCount": 1})
                        }
                        "RunInstances" => json!({"InstanceIdSet": ["ins-1"]}),
                        "CreateSecurityGroupPolicies"
                            if ingress.as_array().is_some_and(|a| a.len() > 1)
                                || ingress[0]["Port"] == "22" =>
                        {
                            json!({"Error": {"Code": "UnsupportedOperation.DuplicatePolicy", "Message": "dup"}})
                        }
                        "DescribeSecurityGroupPolicies" => json!({"SecurityGroupPolicySet": {
                            "Version": "3",
                            "Ingress": [
                                {"PolicyIndex": 0, "Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"},
                                {"PolicyIndex": 1, "Protocol": "TCP", "Port": "80", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}
                            ]}}),
                        "DescribeAddresses" => {
                            let offset = body["Offset"].as_u64().unwrap();
                            let n = if offset == 0 { 100 } else { 50 };
                            let set: Vec<Value> = (0..n)
                                .map(|i| json!({"AddressId": format!("eip-{}", offset + i), "AddressStatus": "UNBIND"}))
                                .collect();
                            json!({"AddressSet": set, "TotalCount": 150})
                        }
                        "GetCallerIdentity" => json!({"AccountId": "1001"}),
                        "DescribeInstances" => {
                            let id = body["InstanceIds"][0].as_str().unwrap_or("ins-1").to_string();
                            match id.as_str() {
                                "ins-2" => json!({"InstanceSet": [{"InstanceId": id, "InstanceState": "TERMINATING"}], "TotalCount": 1}),
                                // A PREPAID instance the first TerminateInstances put in the bin.
                                "ins-p" => json!({"InstanceSet": [{
                                    "InstanceId": id, "InstanceState": "SHUTDOWN",
                                    "InstanceChargeType": "PREPAID", "IsolatedSource": "MANMADE"
                                }], "TotalCount": 1}),
                                _ => json!({"InstanceSet": [{"InstanceId": id, "InstanceState": "RUNNING"}], "TotalCount": 1}),
                            }
                        }
                        "TerminateInstances" if body["InstanceIds"][0] == "ins-p" => json!({}),
                        "TerminateInstances" => {
                            json!({"Error": {"Code": "UnsupportedOperation.InstanceStateTerminating", "Message": "busy"}})
                        }
                        "TagResources" => json!({"FailedResources": []}),
                        _ => json!({}),
                    };
                    let mut answer = answer;
                    answer["RequestId"] = json!("rid");
                    (
                        [("content-type", "application/json")],
                        json!({"Response": answer}).to_string(),
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut config = TencentConfig::new(Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("s"),
        })
        .with_endpoint(format!("http://{addr}"));
        config.rate_limit = RateLimit::unlimited();
        TencentDriver::new(config).unwrap()
    }

    fn rule(port: u16) -> PortRule {
        PortRule {
            port,
            source_cidr: "0.0.0.0/0".into(),
            description: String::new(),
        }
    }

    #[tokio::test]
    async fn tencent_semantics_over_http() {
        let log: Log = Arc::default();
        let d = fake_cloud(Arc::clone(&log)).await;

        let id = d
            .run_instance(&RunInstance {
                region: "ap-guangzhou".into(),
                zone: "ap-guangzhou-3".into(),
                instance_type: "S5.MEDIUM2".into(),
                image_id: "img-1".into(),
                subnet_id: "subnet-1".into(),
                security_group_ids: vec!["sg-1".into()],
                name: "vm".into(),
                description: String::new(),
                system_disk: SystemDisk {
                    category: "CLOUD_BSSD".into(),
                    size_gib: 50,
                },
                login: Login::Password(Secret::new("Passw0rd!")),
                charge: ChargeMode::OnDemand,
                tags: Tags::new(),
                client_token: "tok".into(),
                extensions: Default::default(),
            })
            .await
            .unwrap();
        assert_eq!(id, "ins-1");

        d.authorize_ingress("ap-guangzhou", "sg-1", &[rule(22), rule(443)])
            .await
            .unwrap();
        d.revoke_ingress("ap-guangzhou", "sg-1", &[rule(80), rule(8080)])
            .await
            .unwrap();
        let eips = d
            .describe_eips("ap-guangzhou", &EipFilter::default())
            .await
            .unwrap();
        assert_eq!(eips.len(), 150);
        assert_eq!(eips[149].status, EipStatus::Available);
        d.tag_instance(
            "ap-guangzhou",
            "ins-1",
            &[("k".to_string(), "v".to_string())].into(),
        )
        .await
        .unwrap();

        let log = log.lock().clone();
        let calls: Vec<(&str, &str)> = log
            .iter()
            .map(|(s, a, _)| (s.as_str(), a.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("vpc", "DescribeSubnets"),
                ("cvm", "RunInstances"),
                ("vpc", "CreateSecurityGroupPolicies"),
                ("vpc", "CreateSecurityGroupPolicies"),
                ("vpc", "CreateSecurityGroupPolicies"),
                ("vpc", "DescribeSecurityGroupPolicies"),
                ("vpc", "DeleteSecurityGroupPolicies"),
                ("vpc", "DescribeAddresses"),
                ("vpc", "DescribeAddresses"),
                ("cvm", "DescribeInstances"),
                ("sts", "GetCallerIdentity"),
                ("tag", "TagResources"),
            ]
        );
        assert_eq!(log[1].2["VirtualPrivateCloud"]["VpcId"], "vpc-1");
        assert_eq!(log[1].2["ClientToken"], "tok");
        assert_eq!(
            log[6].2,
            json!({"SecurityGroupId": "sg-1", "SecurityGroupPolicySet": {"Version": "3", "Ingress": [{"PolicyIndex": 1}]}})
        );
        assert_eq!(
            (log[8].2["Offset"].clone(), log[8].2["Limit"].clone()),
            (json!(100), json!(100))
        );
        assert_eq!(
            log[11].2["ResourceList"],
            json!(["qcs::cvm:ap-guangzhou:uin/1001:instance/ins-1"])
        );
        assert_eq!(d.stats().retries, 0);
    }

    #[tokio::test]
    async fn terminating_counts_as_deleted_but_a_refused_delete_does_not() {
        let log: Log = Arc::default();
        let d = fake_cloud(Arc::clone(&log)).await;
        d.delete_instance("ap-guangzhou", "ins-2").await.unwrap();
        let err = d
            .delete_instance("ap-guangzhou", "ins-1")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::WrongState);
        let log = log.lock();
        assert_eq!(
            log[0].2,
            json!({"InstanceIds": ["ins-2"], "ReleaseAddress": false})
        );
        assert_eq!(log.len(), 4);
    }

    #[tokio::test]
    async fn a_prepaid_instance_is_terminated_again_out_of_the_recycle_bin() {
        let log: Log = Arc::default();
        let d = fake_cloud(Arc::clone(&log)).await;
        d.delete_instance("ap-guangzhou", "ins-p").await.unwrap();
        let found = d
            .describe_instances("ap-guangzhou", &["ins-p".to_string()])
            .await
            .unwrap();
        assert_eq!(found[0].status, mce_cloud::InstanceStatus::Terminated);
        let log = log.lock();
        let calls: Vec<&str> = log.iter().map(|(_, a, _)| a.as_str()).collect();
        assert_eq!(
            calls,
            [
                "TerminateInstances",
                "DescribeInstances",
                "TerminateInstances",
                "DescribeInstances"
            ]
        );
    }
}
