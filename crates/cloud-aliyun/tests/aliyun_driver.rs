//! The Alibaba Cloud driver against the in-process emulator, over real HTTP with real
//! ACS3 signatures: every `CloudDriver` operation, idempotency, error classes and retries.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mce_cloud::{
    AllocateEip, BandwidthMode, ChargeMode, CloudDriver, CreateSecurityGroup, CreateSubnet,
    CreateVpc, Credentials, EipFilter, EipStatus, ErrorClass, InstanceStatus, Login, PortRule,
    PriceQuery, RunInstance, Secret, SystemDisk, Tags,
};
use mce_cloud_aliyun::{AliyunConfig, AliyunDriver, RateLimit, RetryPolicy};
use mce_emulator::model::{Faults, Quotas, StockEntry};
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorHandle};

const REGION: &str = "cn-hangzhou";
const ZONE: &str = "cn-hangzhou-i";
const INSTANCE_TYPE: &str = "ecs.g7.large";
const IMAGE: &str = "ubuntu_22_04_x64_20G_alibase_20240130.vhd";

async fn emulator() -> EmulatorHandle {
    mce_testkit::emulator::start_in_process(Duration::from_millis(300)).await
}

fn config(emu: &EmulatorHandle, secret: &str) -> AliyunConfig {
    let mut config = AliyunConfig::new(Credentials {
        access_key_id: DEFAULT_ACCESS_KEY_ID.to_string(),
        access_key_secret: Secret::new(secret),
    })
    .with_endpoint(emu.base_url());
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    };
    config.rate_limit = RateLimit::unlimited();
    config
}

fn driver(emu: &EmulatorHandle) -> AliyunDriver {
    AliyunDriver::new(config(emu, DEFAULT_ACCESS_KEY_SECRET)).expect("driver builds")
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn count(emu: &EmulatorHandle, kind: &str) -> u64 {
    emu.state().resources()["counts"][kind]
        .as_u64()
        .unwrap_or(u64::MAX)
}

fn rule(port: u16, cidr: &str, description: &str) -> PortRule {
    PortRule {
        port,
        source_cidr: cidr.to_string(),
        description: description.to_string(),
    }
}

struct Network {
    vpc: String,
    subnet: String,
    group: String,
}

async fn network(d: &AliyunDriver, owner: &Tags, token: &str) -> Network {
    let vpc = d
        .create_vpc(&CreateVpc {
            region: REGION.into(),
            cidr_block: "172.16.0.0/12".into(),
            name: "net".into(),
            description: "test network".into(),
            tags: owner.clone(),
            client_token: format!("{token}-vpc"),
        })
        .await
        .expect("create vpc");
    let subnet = d
        .create_subnet(&CreateSubnet {
            region: REGION.into(),
            vpc_id: vpc.clone(),
            zone: ZONE.into(),
            cidr_block: "172.16.1.0/24".into(),
            name: "subnet".into(),
            tags: owner.clone(),
            client_token: format!("{token}-vsw"),
        })
        .await
        .expect("create subnet");
    let group = d
        .create_security_group(&CreateSecurityGroup {
            region: REGION.into(),
            vpc_id: vpc.clone(),
            name: "sg".into(),
            description: "test group".into(),
            tags: owner.clone(),
            client_token: format!("{token}-sg"),
        })
        .await
        .expect("create security group");
    Network { vpc, subnet, group }
}

fn run_request(net: &Network, owner: &Tags, token: &str) -> RunInstance {
    RunInstance {
        region: REGION.into(),
        zone: ZONE.into(),
        instance_type: INSTANCE_TYPE.into(),
        image_id: IMAGE.into(),
        subnet_id: net.subnet.clone(),
        security_group_ids: vec![net.group.clone()],
        name: "vm-1".into(),
        description: "test vm".into(),
        system_disk: SystemDisk {
            category: "cloud_essd".into(),
            size_gib: 40,
        },
        login: Login::Password(Secret::new("Sup3r-Secret!pw")),
        charge: ChargeMode::OnDemand,
        tags: owner.clone(),
        client_token: token.into(),
        extensions: BTreeMap::new(),
    }
}

/// Retries `f` while it fails with `class`, up to `within`.
async fn until_not<T, F, Fut>(
    class: ErrorClass,
    within: Duration,
    mut f: F,
) -> mce_cloud::CloudResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = mce_cloud::CloudResult<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Err(e) if e.is(class) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_round_trip() {
    let emu = emulator().await;
    let d = driver(&emu);
    assert_eq!(d.provider(), "ALIYUN");
    d.probe(REGION).await.expect("probe");

    // Network, found by tags.
    let owner = tags(&[("mce/owner", "ns/vm-1"), ("mce/managed", "true")]);
    let net = network(&d, &owner, "net-1").await;
    let vpcs = d.find_vpcs(REGION, &owner).await.expect("find vpcs");
    assert_eq!(vpcs.len(), 1);
    assert_eq!(vpcs[0].id, net.vpc);
    assert_eq!(vpcs[0].cidr_block, "172.16.0.0/12");
    assert_eq!(vpcs[0].tags, owner);
    assert!(
        d.find_vpcs(REGION, &tags(&[("mce/owner", "other")]))
            .await
            .expect("find")
            .is_empty()
    );
    // CreateVpc replay with the same token: same VPC.
    let again = network(&d, &owner, "net-1").await;
    assert_eq!(again.vpc, net.vpc);
    assert_eq!(again.subnet, net.subnet);
    assert_eq!(again.group, net.group);
    assert_eq!(count(&emu, "vpcs"), 1);

    let subnets = d
        .find_subnets(REGION, &net.vpc, &owner)
        .await
        .expect("find subnets");
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].id, net.subnet);
    assert_eq!(subnets[0].zone, ZONE);
    assert_eq!(subnets[0].vpc_id, net.vpc);
    assert_eq!(subnets[0].cidr_block, "172.16.1.0/24");
    let groups = d
        .find_security_groups(REGION, &net.vpc, &owner)
        .await
        .expect("find groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].id, net.group);
    assert_eq!(groups[0].vpc_id, net.vpc);
    assert_eq!(groups[0].tags, owner);

    // Ingress: authorize, duplicates, describe, revoke.
    d.authorize_ingress(
        REGION,
        &net.group,
        &[rule(22, "0.0.0.0/0", "ssh"), rule(80, "10.0.0.0/8", "web")],
    )
    .await
    .expect("authorize");
    d.authorize_ingress(REGION, &net.group, &[rule(22, "0.0.0.0/0", "ssh")])
        .await
        .expect("duplicate authorize counts as success");
    d.authorize_ingress(
        REGION,
        &net.group,
        &[rule(22, "0.0.0.0/0", "ssh"), rule(443, "0.0.0.0/0", "tls")],
    )
    .await
    .expect("partly duplicate authorize");
    let mut ingress = d
        .describe_ingress(REGION, &net.group)
        .await
        .expect("describe ingress");
    ingress.sort();
    assert_eq!(
        ingress
            .iter()
            .map(|r| (r.port, r.source_cidr.as_str()))
            .collect::<Vec<_>>(),
        vec![(22, "0.0.0.0/0"), (80, "10.0.0.0/8"), (443, "0.0.0.0/0")]
    );
    assert_eq!(ingress[0].description, "ssh");
    d.revoke_ingress(REGION, &net.group, &[rule(80, "10.0.0.0/8", "")])
        .await
        .expect("revoke");
    d.revoke_ingress(REGION, &net.group, &[rule(80, "10.0.0.0/8", "")])
        .await
        .expect("revoking a missing rule counts as success");
    let ports: Vec<u16> = d
        .describe_ingress(REGION, &net.group)
        .await
        .expect("describe")
        .iter()
        .map(|r| r.port)
        .collect();
    assert!(
        ports.contains(&22) && ports.contains(&443) && !ports.contains(&80),
        "{ports:?}"
    );

    // A VPC with dependents cannot be deleted.
    let err = d
        .delete_vpc(REGION, &net.vpc)
        .await
        .expect_err("vpc in use");
    assert_eq!(err.class, ErrorClass::DependencyViolation, "{err}");

    // Instances: run, replay, mismatch.
    let req = run_request(&net, &owner, "run-token-1");
    let id = d.run_instance(&req).await.expect("run instance");
    assert_eq!(d.run_instance(&req).await.expect("replay"), id);
    assert_eq!(count(&emu, "instances"), 1);
    let mut changed = req.clone();
    changed.instance_type = "ecs.g7.xlarge".into();
    let err = d
        .run_instance(&changed)
        .await
        .expect_err("token reuse with other parameters");
    assert_eq!(err.class, ErrorClass::IdempotencyMismatch, "{err}");
    assert!(!err.to_string().contains("Sup3r-Secret!pw"));
    assert_eq!(count(&emu, "instances"), 1);

    let deadline = Instant::now() + Duration::from_secs(15);
    let instance = loop {
        let found = d
            .describe_instances(REGION, std::slice::from_ref(&id))
            .await
            .expect("describe instances");
        assert_eq!(found.len(), 1);
        if found[0].status == InstanceStatus::Running {
            break found.into_iter().next().expect("one instance");
        }
        assert!(
            matches!(
                found[0].status,
                InstanceStatus::Pending | InstanceStatus::Starting
            ),
            "{:?}",
            found[0].status
        );
        assert!(Instant::now() < deadline, "instance never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(instance.instance_type, INSTANCE_TYPE);
    assert_eq!(instance.zone, ZONE);
    assert!(instance.private_ip.is_some());
    assert_eq!(instance.public_ip, None);
    assert_eq!(instance.tags, owner);
    let unknown = d
        .describe_instances(REGION, &[id.clone(), "i-doesnotexist".to_string()])
        .await
        .expect("describe with an unknown id");
    assert_eq!(unknown.len(), 1);
    assert!(
        d.describe_instances(REGION, &[])
            .await
            .expect("no ids")
            .is_empty()
    );
    let by_tag = d
        .find_instances(REGION, &owner)
        .await
        .expect("find instances");
    assert_eq!(
        by_tag.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()]
    );
    assert!(
        d.find_instances(REGION, &tags(&[("mce/owner", "nobody")]))
            .await
            .expect("find")
            .is_empty()
    );

    // EIPs.
    let eip_tags = tags(&[("mce/owner", "ns/vm-1")]);
    let eip = d
        .allocate_eip(&AllocateEip {
            region: REGION.into(),
            bandwidth_mbps: 5,
            bandwidth_mode: BandwidthMode::Traffic,
            tags: eip_tags.clone(),
            client_token: "eip-token-1".into(),
        })
        .await
        .expect("allocate eip");
    assert!(!eip.allocation_id.is_empty() && !eip.ip_address.is_empty());
    d.associate_eip(REGION, &eip.allocation_id, &id)
        .await
        .expect("associate");
    let eips = until_in(&d, &eip.allocation_id, EipStatus::InUse).await;
    assert_eq!(eips.instance_id.as_deref(), Some(id.as_str()));
    assert_eq!(eips.bandwidth_mbps, 5);
    assert_eq!(eips.ip_address, eip.ip_address);
    let by_instance = d
        .describe_eips(
            REGION,
            &EipFilter {
                instance_id: Some(id.clone()),
                ..EipFilter::default()
            },
        )
        .await
        .expect("eips by instance");
    assert_eq!(by_instance.len(), 1);
    let by_tags = d
        .describe_eips(
            REGION,
            &EipFilter {
                tags: eip_tags.clone(),
                ..EipFilter::default()
            },
        )
        .await
        .expect("eips by tags");
    assert_eq!(by_tags.len(), 1);
    assert_eq!(by_tags[0].tags, eip_tags);
    let described = d
        .describe_instances(REGION, std::slice::from_ref(&id))
        .await
        .expect("describe");
    assert_eq!(
        described[0].public_ip.as_deref(),
        Some(eip.ip_address.as_str())
    );
    assert_eq!(
        described[0].eip_allocation_id.as_deref(),
        Some(eip.allocation_id.as_str())
    );

    d.modify_eip_bandwidth(REGION, &eip.allocation_id, 10)
        .await
        .expect("modify bandwidth");
    assert_eq!(
        until_in(&d, &eip.allocation_id, EipStatus::InUse)
            .await
            .bandwidth_mbps,
        10
    );
    let err = d
        .release_eip(REGION, &eip.allocation_id)
        .await
        .expect_err("release while associated");
    assert_eq!(err.class, ErrorClass::WrongState, "{err}");
    d.disassociate_eip(REGION, &eip.allocation_id, &id)
        .await
        .expect("disassociate");
    let freed = until_in(&d, &eip.allocation_id, EipStatus::Available).await;
    assert_eq!(freed.instance_id, None);
    until_not(ErrorClass::WrongState, Duration::from_secs(5), || {
        d.release_eip(REGION, &eip.allocation_id)
    })
    .await
    .expect("release");
    let err = d
        .release_eip(REGION, &eip.allocation_id)
        .await
        .expect_err("already released");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");

    // Prices.
    let query = PriceQuery {
        region: REGION.into(),
        zone: Some(ZONE.into()),
        instance_type: INSTANCE_TYPE.into(),
        image_id: Some(IMAGE.into()),
        system_disk: Some(SystemDisk {
            category: "cloud_essd".into(),
            size_gib: 40,
        }),
        charge: ChargeMode::OnDemand,
        bandwidth: Some((5, BandwidthMode::Fixed)),
    };
    let hourly = d.describe_price(&query).await.expect("on-demand price");
    assert_eq!(hourly.unit, "Hour");
    assert!(hourly.trade_price > 0.0, "{hourly:?}");
    assert!(!hourly.currency.is_empty());
    let monthly = d
        .describe_price(&PriceQuery {
            charge: ChargeMode::Prepaid { months: 3 },
            ..query.clone()
        })
        .await
        .expect("prepaid price");
    assert_eq!(monthly.unit, "Month");
    assert!(
        monthly.trade_price > hourly.trade_price,
        "{monthly:?} vs {hourly:?}"
    );
    // A prepaid quote is reported per month, whatever the period.
    let one_month = d
        .describe_price(&PriceQuery {
            charge: ChargeMode::Prepaid { months: 1 },
            ..query.clone()
        })
        .await
        .expect("one-month price");
    assert!(
        (one_month.trade_price - monthly.trade_price).abs() < 0.01,
        "{one_month:?} vs {monthly:?}"
    );

    // Tear everything down: the emulator holds nothing.
    d.delete_instance(REGION, &id)
        .await
        .expect("delete instance");
    until_not(
        ErrorClass::DependencyViolation,
        Duration::from_secs(10),
        || d.delete_security_group(REGION, &net.group),
    )
    .await
    .expect("delete security group");
    until_not(
        ErrorClass::DependencyViolation,
        Duration::from_secs(10),
        || d.delete_subnet(REGION, &net.subnet),
    )
    .await
    .expect("delete subnet");
    until_not(
        ErrorClass::DependencyViolation,
        Duration::from_secs(10),
        || d.delete_vpc(REGION, &net.vpc),
    )
    .await
    .expect("delete vpc");
    let err = d
        .delete_vpc(REGION, &net.vpc)
        .await
        .expect_err("already deleted");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    assert_eq!(
        emu.state().resource_count(),
        0,
        "{}",
        emu.state().resources()
    );
    assert!(d.find_vpcs(REGION, &owner).await.expect("find").is_empty());
}

/// Describes one EIP until it reaches `status`.
async fn until_in(d: &AliyunDriver, allocation_id: &str, status: EipStatus) -> mce_cloud::Eip {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = d
            .describe_eips(
                REGION,
                &EipFilter {
                    allocation_ids: vec![allocation_id.to_string()],
                    ..EipFilter::default()
                },
            )
            .await
            .expect("describe eips");
        assert_eq!(found.len(), 1, "{found:?}");
        if found[0].status == status {
            return found.into_iter().next().expect("one eip");
        }
        assert!(
            Instant::now() < deadline,
            "EIP stuck in {:?}",
            found[0].status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Server-side calls of one action so far.
fn server_calls(emu: &EmulatorHandle, action: &str) -> u64 {
    emu.state()
        .calls()
        .by_action
        .get(action)
        .copied()
        .unwrap_or(0)
}

/// Tags of one instance as the driver describes it.
async fn described_tags(d: &AliyunDriver, id: &str) -> Tags {
    let found = d
        .describe_instances(REGION, &[id.to_string()])
        .await
        .expect("describe instance");
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().expect("one instance").tags
}

/// Ids of the instances carrying every tag of `filter`.
async fn found_ids(d: &AliyunDriver, filter: &Tags) -> Vec<String> {
    d.find_instances(REGION, filter)
        .await
        .expect("find instances")
        .into_iter()
        .map(|i| i.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_in_two_groups_with_live_tag_changes() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "ns/vm-2")]);
    let net = network(&d, &owner, "live").await;
    let own = d
        .create_security_group(&CreateSecurityGroup {
            region: REGION.into(),
            vpc_id: net.vpc.clone(),
            name: "vm-2".into(),
            description: "per-instance group".into(),
            tags: owner.clone(),
            client_token: "live-own-sg".into(),
        })
        .await
        .expect("create the per-instance group");

    // The instance joins the network's group and its own (SecurityGroupIds.N).
    let mut req = run_request(&net, &owner, "live-run");
    req.security_group_ids = vec![net.group.clone(), own.clone()];
    let id = d.run_instance(&req).await.expect("run instance");
    let snapshot = emu.state().resources();
    let joined: Vec<&str> = snapshot["instances"][0]["securityGroupIds"]
        .as_array()
        .expect("securityGroupIds")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(joined, vec![net.group.as_str(), own.as_str()]);
    for group in [&net.group, &own] {
        let err = d
            .delete_security_group(REGION, group)
            .await
            .expect_err("a group with an instance in it");
        assert_eq!(err.class, ErrorClass::DependencyViolation, "{err}");
    }
    // Ports opened on the instance's own group stay off the network's group.
    d.authorize_ingress(REGION, &own, &[rule(8080, "0.0.0.0/0", "vm-2")])
        .await
        .expect("authorize on the own group");
    let shared = d
        .describe_ingress(REGION, &net.group)
        .await
        .expect("describe the network group");
    assert!(shared.iter().all(|r| r.port != 8080), "{shared:?}");

    // No security group at all is refused before any call.
    let runs = server_calls(&emu, "RunInstances");
    let mut bare = run_request(&net, &owner, "live-bare");
    bare.security_group_ids = Vec::new();
    let err = d.run_instance(&bare).await.expect_err("no group");
    assert_eq!(err.class, ErrorClass::InvalidParameter, "{err}");
    assert_eq!(server_calls(&emu, "RunInstances"), runs);

    // Add a tag: describe shows it, find_instances finds the instance by it.
    let role = tags(&[("mce/role", "gpu")]);
    d.tag_instance(REGION, &id, &role).await.expect("tag");
    let mut expected = owner.clone();
    expected.extend(role.clone());
    assert_eq!(described_tags(&d, &id).await, expected);
    assert_eq!(found_ids(&d, &role).await, vec![id.clone()]);
    assert_eq!(found_ids(&d, &expected).await, vec![id.clone()]);
    // Tagging again is idempotent; a new value overwrites.
    d.tag_instance(REGION, &id, &role).await.expect("tag again");
    assert_eq!(described_tags(&d, &id).await, expected);
    let cpu = tags(&[("mce/role", "cpu")]);
    d.tag_instance(REGION, &id, &cpu).await.expect("overwrite");
    assert_eq!(described_tags(&d, &id).await["mce/role"], "cpu");
    assert!(found_ids(&d, &role).await.is_empty());
    assert_eq!(found_ids(&d, &cpu).await, vec![id.clone()]);

    // Remove it (an absent key is ignored): back to the creation tags.
    d.untag_instance(
        REGION,
        &id,
        &["mce/role".to_string(), "mce/absent".to_string()],
    )
    .await
    .expect("untag");
    assert_eq!(described_tags(&d, &id).await, owner);
    assert!(found_ids(&d, &cpu).await.is_empty());
    assert_eq!(found_ids(&d, &owner).await, vec![id.clone()]);
    d.untag_instance(REGION, &id, &["mce/role".to_string()])
        .await
        .expect("untag again");

    // Empty changes make no call.
    let (tag_calls, untag_calls) = (
        server_calls(&emu, "TagResources"),
        server_calls(&emu, "UntagResources"),
    );
    d.tag_instance(REGION, &id, &Tags::new())
        .await
        .expect("no tags");
    d.untag_instance(REGION, &id, &[]).await.expect("no keys");
    assert_eq!(server_calls(&emu, "TagResources"), tag_calls);
    assert_eq!(server_calls(&emu, "UntagResources"), untag_calls);

    // Unknown instance: NotFound.
    let err = d
        .tag_instance(REGION, "i-doesnotexist", &role)
        .await
        .expect_err("tag an unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .untag_instance(REGION, "i-doesnotexist", &["mce/role".to_string()])
        .await
        .expect_err("untag an unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");

    // 20 tags per resource: the 21st is refused and nothing is applied.
    let many: Tags = (0..20)
        .map(|i| (format!("extra/{i:02}"), i.to_string()))
        .collect();
    let err = d
        .tag_instance(REGION, &id, &many)
        .await
        .expect_err("past the tag limit");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");
    assert_eq!(d.stats().retries, 0, "{err}");
    assert_eq!(described_tags(&d, &id).await, owner);

    // Teardown: the groups can go once the instance is gone.
    d.delete_instance(REGION, &id)
        .await
        .expect("delete instance");
    for group in [&own, &net.group] {
        until_not(
            ErrorClass::DependencyViolation,
            Duration::from_secs(10),
            || d.delete_security_group(REGION, group),
        )
        .await
        .expect("delete group");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_resources_are_paged() {
    let emu = emulator().await;
    emu.state().set_quotas(Quotas {
        security_groups: 500,
        ..Quotas::default()
    });
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "pages")]);
    let net = network(&d, &owner, "pages").await;
    for i in 0..120 {
        d.create_security_group(&CreateSecurityGroup {
            region: REGION.into(),
            vpc_id: net.vpc.clone(),
            name: format!("sg-{i}"),
            description: String::new(),
            tags: owner.clone(),
            client_token: format!("page-sg-{i}"),
        })
        .await
        .expect("create group");
    }
    let groups = d
        .find_security_groups(REGION, &net.vpc, &owner)
        .await
        .expect("find groups");
    assert_eq!(groups.len(), 121);
    let mut ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 121, "pages overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_until_it_succeeds() {
    let emu = emulator().await;
    let mut cfg = config(&emu, DEFAULT_ACCESS_KEY_SECRET);
    cfg.retry = RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let d = AliyunDriver::new(cfg).expect("driver");
    emu.state().set_faults(Faults {
        throttle_rate: 0.5,
        actions: vec!["DescribeVpcs".into()],
        ..Faults::default()
    });
    let calls = 20;
    for _ in 0..calls {
        d.find_vpcs(REGION, &Tags::new())
            .await
            .expect("retried until it succeeds");
    }
    let stats = d.stats();
    let server = emu.state().calls();
    let throttled = server.errors.get("Throttling.User").copied().unwrap_or(0);
    assert_eq!(
        server.by_action.get("DescribeVpcs").copied(),
        Some(stats.attempts),
        "{server:?}"
    );
    assert_eq!(stats.attempts, calls + stats.retries);
    assert_eq!(stats.retries, throttled, "{server:?}");
    assert!(throttled > 0, "the fault never fired: {server:?}");

    // Always throttled: gives up after max_attempts with a Throttled error.
    emu.state().set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    let mut cfg = config(&emu, DEFAULT_ACCESS_KEY_SECRET);
    cfg.retry.max_attempts = 3;
    let d = AliyunDriver::new(cfg).expect("driver");
    let err = d.probe(REGION).await.expect_err("always throttled");
    assert_eq!(err.class, ErrorClass::Throttled, "{err}");
    assert_eq!(d.stats().attempts, 3);

    // Server errors are transient and retried the same way.
    emu.state().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let mut cfg = config(&emu, DEFAULT_ACCESS_KEY_SECRET);
    cfg.retry.max_attempts = 2;
    let d = AliyunDriver::new(cfg).expect("driver");
    let err = d.probe(REGION).await.expect_err("always failing");
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert_eq!(d.stats().attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rate_limit_is_shared_per_region() {
    let emu = emulator().await;
    let mut cfg = config(&emu, DEFAULT_ACCESS_KEY_SECRET);
    cfg.rate_limit = RateLimit {
        per_second: 20.0,
        burst: 2,
    };
    let d = std::sync::Arc::new(AliyunDriver::new(cfg).expect("driver"));
    let start = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { d.probe(REGION).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("probe");
    }
    // 2 from the burst, 4 more at 20/s: at least ~200 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(180),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_authentication_error_without_the_secret() {
    let emu = emulator().await;
    let secret = "wrong-secret-0123456789";
    let d = AliyunDriver::new(config(&emu, secret)).expect("driver");
    let err = d.probe(REGION).await.expect_err("bad secret");
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
    assert!(err.class.is_terminal());
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(!format!("{err:?}").contains(secret), "{err:?}");
    assert!(
        !err.to_string().contains(DEFAULT_ACCESS_KEY_SECRET),
        "{err}"
    );
    assert_eq!(
        d.stats().attempts,
        1,
        "authentication errors are not retried"
    );

    let mut cfg = config(&emu, DEFAULT_ACCESS_KEY_SECRET);
    cfg.credentials.access_key_id = "unknown-key-id".into();
    let err = AliyunDriver::new(cfg)
        .expect("driver")
        .probe(REGION)
        .await
        .expect_err("bad key id");
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_and_quotas() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "limits")]);
    let net = network(&d, &owner, "limits").await;

    emu.state().set_stock(&[StockEntry {
        instance_type: INSTANCE_TYPE.into(),
        zone: ZONE.into(),
        available: Some(0),
    }]);
    let err = d
        .run_instance(&run_request(&net, &owner, "stock-1"))
        .await
        .expect_err("no stock");
    assert_eq!(err.class, ErrorClass::OutOfStock, "{err}");
    assert!(!err.to_string().contains("Sup3r-Secret!pw"));
    assert_eq!(
        d.stats().retries,
        0,
        "out of stock is not retried by the transport"
    );
    assert_eq!(count(&emu, "instances"), 0);

    emu.state().set_quotas(Quotas {
        vpcs: 1,
        eips: 0,
        ..Quotas::default()
    });
    let err = d
        .create_vpc(&CreateVpc {
            region: REGION.into(),
            cidr_block: "10.0.0.0/16".into(),
            name: "second".into(),
            description: String::new(),
            tags: owner.clone(),
            client_token: "quota-vpc-2".into(),
        })
        .await
        .expect_err("vpc quota");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");
    let err = d
        .allocate_eip(&AllocateEip {
            region: REGION.into(),
            bandwidth_mbps: 1,
            bandwidth_mode: BandwidthMode::Fixed,
            tags: owner.clone(),
            client_token: "quota-eip".into(),
        })
        .await
        .expect_err("eip quota");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");

    emu.state().set_quotas(Quotas {
        instances: 0,
        ..Quotas::default()
    });
    emu.state().set_stock(&[StockEntry {
        instance_type: INSTANCE_TYPE.into(),
        zone: ZONE.into(),
        available: None,
    }]);
    let err = d
        .run_instance(&run_request(&net, &owner, "quota-run"))
        .await
        .expect_err("instance quota");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");

    // Not-found classes.
    let err = d
        .delete_subnet(REGION, "vsw-doesnotexist")
        .await
        .expect_err("unknown vswitch");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .delete_security_group(REGION, "sg-doesnotexist")
        .await
        .expect_err("unknown group");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .delete_instance(REGION, "i-doesnotexist")
        .await
        .expect_err("unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
}

/// StartInstance (issue 9): a stopped instance is started again; starting a running one is
/// refused as the wrong state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_is_started() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("owner", "start")]);
    let net = network(&d, &owner, "start").await;
    let id = d
        .run_instance(&run_request(&net, &owner, "start-vm"))
        .await
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(10);
    while instance_status(&d, &id).await != InstanceStatus::Running {
        assert!(Instant::now() < deadline, "never running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = d.start_instance(REGION, &id).await.expect_err("running");
    assert_eq!(refused.class, ErrorClass::WrongState, "{refused:?}");
    emu.state()
        .with_model_mut(|m| m.stop_instance(REGION, &id, Instant::now()))
        .expect("stopped outside");
    assert_eq!(instance_status(&d, &id).await, InstanceStatus::Stopped);
    d.start_instance(REGION, &id).await.expect("started");
    assert_ne!(instance_status(&d, &id).await, InstanceStatus::Stopped);
}

async fn instance_status(d: &AliyunDriver, id: &str) -> InstanceStatus {
    d.describe_instances(REGION, &[id.to_string()])
        .await
        .expect("describe")[0]
        .status
        .clone()
}
