//! Instances, elastic IPs and tags.

use super::*;

/// Stock of an instance type in one zone, as a describe before any create reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStock {
    pub zone: String,
    /// Instances that can be launched now; `None` is unlimited, `Some(0)` sold out.
    pub available: Option<u32>,
}

impl ZoneStock {
    pub fn sold_out(&self) -> bool {
        self.available == Some(0)
    }
}

impl Model {
    // ---- Stock ----

    /// The zones of `region` (in `realm`) that offer `instance_type`, each with its stock;
    /// `zone` narrows the answer to one. A type is offered in every known zone of the region
    /// when the price table lists it, and in any zone of the region where it has a stock entry
    /// (so a test can limit or add a zone through the stock alone). Unknown types are offered
    /// nowhere: an empty answer, as the clouds give.
    pub fn zone_stock(
        &self,
        realm: Realm,
        region: &str,
        zone: Option<&str>,
        instance_type: &str,
    ) -> ModelResult<Vec<ZoneStock>> {
        self.check_region_of(realm, region)?;
        let mut zones: BTreeSet<String> = BTreeSet::new();
        if self.prices.lists(instance_type) {
            zones.extend(self.zones_of(realm, region));
        }
        let prefix = format!("{region}-");
        zones.extend(
            self.stock
                .keys()
                .filter(|(t, z)| t == instance_type && z.starts_with(&prefix))
                .map(|(_, z)| z.clone()),
        );
        Ok(zones
            .into_iter()
            .filter(|z| zone.is_none_or(|want| want == z))
            .map(|z| ZoneStock {
                available: self
                    .stock
                    .get(&(instance_type.to_string(), z.clone()))
                    .copied(),
                zone: z,
            })
            .collect())
    }

    /// The known zones of a region of `realm`.
    pub fn zones_of(&self, realm: Realm, region: &str) -> Vec<String> {
        match realm.zone_suffixes {
            Some(suffixes) => suffixes.iter().map(|s| format!("{region}-{s}")).collect(),
            None => self.settings.zones.get(region).cloned().unwrap_or_default(),
        }
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
            let group_vpc = &self.get_security_group(sg, &req.region)?.vpc_id;
            // A regional group (no VPC) serves every VPC of its region.
            if !group_vpc.is_empty() && *group_vpc != vpc_id {
                return Err(ModelError::Invalid(format!(
                    "the security group {sg} and the VSwitch are not in the same VPC"
                )));
            }
        }
        let hourly =
            self.prices
                .quote(&req.instance_type, req.disk_gib, req.bandwidth_out, 1.0, 1)?;
        if req.dry_run {
            return Ok(Vec::new());
        }
        self.idempotent(idem, |m| {
            let room = (m.quotas.instances as usize)
                .saturating_sub(m.count_in_realm(&m.instances, |i| i.realm));
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
                return Err(ModelError::SubnetFull(req.subnet_id.clone()));
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
                        realm: m.realm.name,
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

    /// Adds the instance to a security group of its VPC (a regional group, with no VPC, serves
    /// every VPC of its region), after its other groups. The instance must be Running or
    /// Stopped; it can be in at most [`Quotas::security_groups_per_instance`] groups. A member
    /// is refused with [`JoinGroupError::AlreadyMember`] and left unchanged: the front ends
    /// whose cloud answers success ignore it.
    pub fn join_security_group(
        &mut self,
        region: &str,
        instance_id: &str,
        group_id: &str,
        now: Instant,
    ) -> Result<(), JoinGroupError> {
        let instance = self.get_instance(instance_id, region)?;
        let group_vpc = &self.get_security_group(group_id, region)?.vpc_id;
        if !group_vpc.is_empty() && *group_vpc != instance.vpc_id {
            return Err(JoinGroupError::VpcMismatch {
                instance: instance_id.into(),
                group: group_id.into(),
                subnet: instance.subnet_id.clone(),
            });
        }
        if instance.security_group_ids.iter().any(|g| g == group_id) {
            return Err(JoinGroupError::AlreadyMember {
                instance: instance_id.into(),
                group: group_id.into(),
            });
        }
        let status = self.instance_status(instance, now);
        if !matches!(status, InstanceStatus::Running | InstanceStatus::Stopped) {
            return Err(ModelError::InstanceStatus {
                id: instance_id.into(),
                status: status.as_str(),
                message: "only a Running or Stopped instance can join a security group".into(),
            }
            .into());
        }
        let limit = self.quotas.security_groups_per_instance;
        if instance.security_group_ids.len() >= limit as usize {
            return Err(JoinGroupError::GroupLimit {
                instance: instance_id.into(),
                limit,
            });
        }
        if let Some(i) = self.instances.get_mut(instance_id) {
            i.security_group_ids.push(group_id.to_string());
        }
        Ok(())
    }

    /// Replaces the instance's security groups with `groups` (in order, duplicates dropped),
    /// as EC2's ModifyInstanceAttribute `GroupId.N` does: at least one, each in the
    /// instance's VPC, at most [`Quotas::security_groups_per_instance`]. Any state but gone.
    pub fn set_security_groups(
        &mut self,
        region: &str,
        instance_id: &str,
        groups: &[String],
    ) -> Result<(), JoinGroupError> {
        let instance = self.get_instance(instance_id, region)?;
        if groups.is_empty() {
            return Err(ModelError::Invalid("a security group is required".into()).into());
        }
        let mut set: Vec<String> = Vec::with_capacity(groups.len());
        for g in groups {
            if !set.contains(g) {
                set.push(g.clone());
            }
        }
        for g in &set {
            let group_vpc = &self.get_security_group(g, region)?.vpc_id;
            if !group_vpc.is_empty() && *group_vpc != instance.vpc_id {
                return Err(JoinGroupError::VpcMismatch {
                    instance: instance_id.into(),
                    group: g.clone(),
                    subnet: instance.subnet_id.clone(),
                });
            }
        }
        let limit = self.quotas.security_groups_per_instance;
        if set.len() > limit as usize {
            return Err(JoinGroupError::GroupLimit {
                instance: instance_id.into(),
                limit,
            });
        }
        if let Some(i) = self.instances.get_mut(instance_id) {
            i.security_group_ids = set;
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
            if m.count_in_realm(&m.eips, |e| e.realm) >= m.quotas.eips as usize {
                return Err(ModelError::Quota(Kind::Eip));
            }
            let id = m.new_id("eip");
            let ip = m.new_public_ip(39);
            m.eips.insert(
                id.clone(),
                Eip {
                    id: id.clone(),
                    realm: m.realm.name,
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

    pub(super) fn tags_mut(&mut self, kind: Kind, region: &str, id: &str) -> Option<&mut Tags> {
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
            let mut changed = Vec::new();
            if let Some(current) = self.tags_mut(kind, region, id) {
                for (k, v) in tags {
                    if current.insert(k.clone(), v.clone()).as_ref() != Some(v) {
                        changed.push(k.clone());
                    }
                }
            }
            self.tags_set(id, changed.into_iter());
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
}
