//! VPCs, subnets, security groups and their rules.

use super::*;

impl Model {
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
            if m.count_in_realm(&m.vpcs, |v| v.realm) >= m.quotas.vpcs as usize {
                return Err(ModelError::Quota(Kind::Vpc));
            }
            let id = m.new_id("vpc");
            let router_id = m.new_id("vrt");
            let route_table_id = m.new_id("vtb");
            m.vpcs.insert(
                id.clone(),
                Vpc {
                    id: id.clone(),
                    realm: m.realm.name,
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
                    realm: m.realm.name,
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

    /// Keeps `hosts` more addresses of a subnet from instances (clouds differ in how many they
    /// reserve: the model keeps four, AWS five), before any instance is placed in it.
    pub fn reserve_subnet_hosts(&mut self, region: &str, id: &str, hosts: u32) -> ModelResult<()> {
        self.get_subnet(id, region)?;
        if let Some(s) = self.subnets.get_mut(id) {
            s.next_host += hosts;
        }
        Ok(())
    }

    pub(super) fn allocate_private_ip(&mut self, subnet_id: &str) -> ModelResult<Ipv4Addr> {
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
        // An empty VPC id makes a regional group (usable by instances of any VPC).
        if !req.vpc_id.is_empty() {
            self.vpc(&req.vpc_id, &req.region)?;
        }
        let ids = self.idempotent(idem, |m| {
            if m.count_in_realm(&m.security_groups, |g| g.realm)
                >= m.quotas.security_groups as usize
            {
                return Err(ModelError::Quota(Kind::SecurityGroup));
            }
            let id = m.new_id("sg");
            m.security_groups.insert(
                id.clone(),
                SecurityGroup {
                    id: id.clone(),
                    realm: m.realm.name,
                    region: req.region,
                    vpc_id: req.vpc_id,
                    name: req.name,
                    description: req.description,
                    tags: req.tags,
                    rules: Vec::new(),
                    rules_version: 1,
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
        if added > 0 {
            group.rules_version += 1;
        }
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
        let removed = before - group.rules.len();
        if removed > 0 {
            group.rules_version += 1;
        }
        Ok(removed)
    }
}
