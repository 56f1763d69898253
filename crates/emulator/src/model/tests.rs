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

#[test]
fn stock_per_zone_of_listed_types() {
    let mut m = Model::new(settings());
    let gpu = "ecs.gn7-c12g1.3xlarge";
    let all = m
        .zone_stock(DEFAULT_REALM, "cn-hangzhou", None, gpu)
        .unwrap();
    let zones: Vec<&str> = all.iter().map(|z| z.zone.as_str()).collect();
    assert_eq!(zones, m.zones_of(DEFAULT_REALM, "cn-hangzhou"));
    assert!(zones.contains(&"cn-hangzhou-i"));
    assert!(all.iter().all(|z| z.available.is_none() && !z.sold_out()));

    m.stock.insert((gpu.into(), "cn-hangzhou-i".into()), 0);
    m.stock.insert((gpu.into(), "cn-hangzhou-j".into()), 2);
    let one = m
        .zone_stock(DEFAULT_REALM, "cn-hangzhou", Some("cn-hangzhou-i"), gpu)
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(one[0].sold_out());
    let j = m
        .zone_stock(DEFAULT_REALM, "cn-hangzhou", Some("cn-hangzhou-j"), gpu)
        .unwrap();
    assert_eq!(j[0].available, Some(2));

    // Unknown types are offered nowhere, unless a stock entry names a zone of the region.
    assert!(
        m.zone_stock(DEFAULT_REALM, "cn-hangzhou", None, "ecs.nope")
            .unwrap()
            .is_empty()
    );
    m.stock
        .insert(("ecs.nope".into(), "cn-hangzhou-z".into()), 1);
    m.stock
        .insert(("ecs.nope".into(), "cn-beijing-a".into()), 1);
    let added = m
        .zone_stock(DEFAULT_REALM, "cn-hangzhou", None, "ecs.nope")
        .unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].zone, "cn-hangzhou-z");

    assert!(matches!(
        m.zone_stock(DEFAULT_REALM, "ap-guangzhou", None, gpu),
        Err(ModelError::UnknownRegion(_))
    ));
    let tencent = crate::tencent::REALM;
    let zones: Vec<String> = m
        .zone_stock(tencent, "ap-guangzhou", None, "GT4.4XLARGE96")
        .unwrap()
        .into_iter()
        .map(|z| z.zone)
        .collect();
    assert_eq!(zones.len(), crate::tencent::ZONES_PER_REGION as usize);
    assert_eq!(zones[2], "ap-guangzhou-3");

    // Prices set at run time; a reset restores the configured table.
    m.prices.instance_hourly.insert(gpu.into(), 1.0);
    assert_eq!(m.prices.instance_hourly(gpu).unwrap(), 1.0);
    m.reset();
    assert_eq!(m.prices.instance_hourly(gpu).unwrap(), 34.7);
    assert!(m.stock.is_empty());
}

#[test]
fn gpu_models_have_a_cheaper_cloud() {
    let p = PriceTable::default();
    let hourly = |t: &str| p.instance_hourly(t).unwrap();
    // A100: Tencent cheaper; T4 and A10: Alibaba cheaper.
    assert!(hourly("GT4.4XLARGE96") < hourly("ecs.gn7-c12g1.3xlarge"));
    assert!(hourly("ecs.gn6i-c4g1.xlarge") < hourly("GN7.2XLARGE32"));
    assert!(hourly("ecs.gn7i-c8g1.2xlarge") < hourly("PNV4.7XLARGE116"));
    for t in [
        "S5.MEDIUM8",
        "S5.LARGE16",
        "GT4.4XLARGE96",
        "PNV4.7XLARGE116",
        "GN7.2XLARGE32",
        "GN10Xp.2XLARGE40",
    ] {
        assert!(p.lists(t), "{t}");
    }
}

#[test]
fn instances_join_groups_of_their_vpc_up_to_the_limit() {
    let mut m = Model::new(settings());
    let (vpc, subnet, sg) = network(&mut m);
    let t0 = Instant::now();
    let id = m.run_instances(run_req(&subnet, &sg, 1), None, t0).unwrap()[0].clone();
    let group = |m: &mut Model, vpc: &str| {
        m.create_security_group(
            CreateSecurityGroup {
                region: "cn-hangzhou".into(),
                vpc_id: vpc.into(),
                name: String::new(),
                description: String::new(),
                tags: Tags::new(),
            },
            None,
        )
        .unwrap()
    };
    let own = group(&mut m, &vpc);
    // Pending: refused.
    let err = m
        .join_security_group("cn-hangzhou", &id, &own, t0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            JoinGroupError::Model(ModelError::InstanceStatus { .. })
        ),
        "{err}"
    );
    let running = t0 + Duration::from_secs(10);
    m.join_security_group("cn-hangzhou", &id, &own, running)
        .unwrap();
    assert_eq!(
        m.instances[&id].security_group_ids,
        vec![sg.clone(), own.clone()]
    );
    let err = m
        .join_security_group("cn-hangzhou", &id, &own, running)
        .unwrap_err();
    assert!(matches!(err, JoinGroupError::AlreadyMember { .. }), "{err}");
    let err = m
        .join_security_group("cn-hangzhou", &id, "sg-none", running)
        .unwrap_err();
    assert!(
        matches!(
            err,
            JoinGroupError::Model(ModelError::NotFound {
                kind: Kind::SecurityGroup,
                ..
            })
        ),
        "{err}"
    );
    let other_vpc = m.create_vpc(vpc_req("10.1.0.0/16"), None).unwrap();
    let foreign = group(&mut m, &other_vpc);
    let err = m
        .join_security_group("cn-hangzhou", &id, &foreign, running)
        .unwrap_err();
    assert!(matches!(err, JoinGroupError::VpcMismatch { .. }), "{err}");
    // Up to the limit (5), then refused; nothing changes.
    for _ in 0..3 {
        let g = group(&mut m, &vpc);
        m.join_security_group("cn-hangzhou", &id, &g, running)
            .unwrap();
    }
    let sixth = group(&mut m, &vpc);
    let err = m
        .join_security_group("cn-hangzhou", &id, &sixth, running)
        .unwrap_err();
    assert!(
        matches!(err, JoinGroupError::GroupLimit { limit: 5, .. }),
        "{err}"
    );
    assert_eq!(m.instances[&id].security_group_ids.len(), 5);
    // EC2's replacement: the set given, duplicates dropped, same checks.
    m.set_security_groups("cn-hangzhou", &id, &[own.clone(), sg.clone(), own.clone()])
        .unwrap();
    assert_eq!(
        m.instances[&id].security_group_ids,
        vec![own.clone(), sg.clone()]
    );
    let err = m
        .set_security_groups("cn-hangzhou", &id, &[sg.clone(), foreign])
        .unwrap_err();
    assert!(matches!(err, JoinGroupError::VpcMismatch { .. }), "{err}");
    assert!(m.set_security_groups("cn-hangzhou", &id, &[]).is_err());
    assert_eq!(m.instances[&id].security_group_ids, vec![own, sg]);
}
