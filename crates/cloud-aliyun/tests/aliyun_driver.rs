//! What only the Alibaba Cloud driver does, against the in-process emulator over real HTTP with
//! real ACS3 signatures: ClientTokens on every create, synchronous EIPs named on the instance,
//! and the wire names of actions and error codes. The provider-neutral behaviour is in the
//! conformance suite (`tests/conformance.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use mce_cloud::{
    AllocateEip, BandwidthMode, ChargeMode, CloudDriver, CreateSecurityGroup, CreateSubnet,
    CreateVpc, Credentials, EipStatus, ErrorClass, Login, RunInstance, Secret, SystemDisk, Tags,
};
use mce_cloud_aliyun::{AliyunConfig, AliyunDriver, RateLimit, RetryPolicy};
use mce_emulator::model::Faults;
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorHandle};
use mce_testkit::conformance::{count, tags};

const REGION: &str = "cn-hangzhou";
const ZONE: &str = "cn-hangzhou-i";
const INSTANCE_TYPE: &str = "ecs.g7.large";
const IMAGE: &str = "ubuntu_22_04_x64_20G_alibase_20240130.vhd";

async fn emulator() -> EmulatorHandle {
    mce_testkit::emulator::start_in_process(Duration::from_millis(300)).await
}

fn config(emu: &EmulatorHandle) -> AliyunConfig {
    let mut config = AliyunConfig::new(Credentials {
        access_key_id: DEFAULT_ACCESS_KEY_ID.to_string(),
        access_key_secret: Secret::new(DEFAULT_ACCESS_KEY_SECRET),
    })
    .with_endpoint(emu.base_url());
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    config.rate_limit = RateLimit::unlimited();
    config
}

fn driver(emu: &EmulatorHandle) -> AliyunDriver {
    AliyunDriver::new(config(emu)).expect("driver builds")
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

/// Server-side calls of one action so far.
fn server_calls(emu: &EmulatorHandle, action: &str) -> u64 {
    emu.state()
        .calls()
        .by_action
        .get(action)
        .copied()
        .unwrap_or(0)
}

/// CreateVpc, CreateVSwitch and CreateSecurityGroup take a ClientToken on Alibaba: a replay
/// returns the same resources. RunInstances refuses a token reused with other parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_is_idempotent_by_client_token() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "ns/vm-1")]);
    let net = network(&d, &owner, "net-1").await;
    let again = network(&d, &owner, "net-1").await;
    assert_eq!(again.vpc, net.vpc);
    assert_eq!(again.subnet, net.subnet);
    assert_eq!(again.group, net.group);
    assert_eq!(count(&emu, "vpcs"), 1);
    assert_eq!(
        count(&emu, "securityGroups"),
        1,
        "{}",
        emu.state().resources()
    );

    let req = run_request(&net, &owner, "run-token-1");
    let id = d.run_instance(&req).await.expect("run instance");
    let mut changed = req.clone();
    changed.instance_type = "ecs.g7.xlarge".into();
    let err = d
        .run_instance(&changed)
        .await
        .expect_err("token reuse with other parameters");
    assert_eq!(err.class, ErrorClass::IdempotencyMismatch, "{err}");
    assert_eq!(err.code, "IdempotentParameterMismatch");
    assert!(!err.to_string().contains("Sup3r-Secret!pw"));
    assert_eq!(count(&emu, "instances"), 1);
    assert_eq!(d.run_instance(&req).await.expect("replay"), id);
}

/// AllocateEipAddress answers with the address at once, and DescribeInstances names the EIP
/// bound to an instance (`EipAddress.AllocationId`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eips_are_synchronous_and_named_on_the_instance() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "ns/eip")]);
    let net = network(&d, &owner, "eip").await;
    let id = d
        .run_instance(&run_request(&net, &owner, "eip-run"))
        .await
        .expect("run instance");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d
        .describe_instances(REGION, std::slice::from_ref(&id))
        .await
        .expect("describe")[0]
        .status
        != mce_cloud::InstanceStatus::Running
    {
        assert!(std::time::Instant::now() < deadline, "never running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let eip = d
        .allocate_eip(&AllocateEip {
            region: REGION.into(),
            bandwidth_mbps: 5,
            bandwidth_mode: BandwidthMode::Traffic,
            tags: owner.clone(),
            client_token: "eip-token-1".into(),
        })
        .await
        .expect("allocate eip");
    assert!(!eip.ip_address.is_empty(), "{eip:?}");
    assert_eq!(eip.status, EipStatus::Available);
    d.associate_eip(REGION, &eip.allocation_id, &id)
        .await
        .expect("associate");
    let described = d
        .describe_instances(REGION, std::slice::from_ref(&id))
        .await
        .expect("describe");
    assert_eq!(
        described[0].eip_allocation_id.as_deref(),
        Some(eip.allocation_id.as_str())
    );
    let err = d
        .release_eip(REGION, &eip.allocation_id)
        .await
        .expect_err("release while associated");
    assert_eq!(err.code, "IncorrectEipStatus");
}

/// Alibaba's names on the wire: `Throttling.User` is retried, a refused RunInstances never
/// reaches the server, tags change through TagResources/UntagResources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_names_of_actions_and_codes() {
    let emu = emulator().await;
    let d = driver(&emu);
    emu.state().set_faults(Faults {
        throttle_rate: 0.5,
        actions: vec!["DescribeVpcs".into()],
        ..Faults::default()
    });
    for _ in 0..10 {
        d.find_vpcs(REGION, &Tags::new())
            .await
            .expect("retried until it succeeds");
    }
    let server = emu.state().calls();
    let throttled = server.errors.get("Throttling.User").copied().unwrap_or(0);
    assert_eq!(d.stats().retries, throttled, "{server:?}");
    assert_eq!(
        server.by_action.get("DescribeVpcs").copied(),
        Some(d.stats().attempts)
    );
    emu.state().set_faults(Faults::default());

    let owner = tags(&[("mce/owner", "ns/wire")]);
    let net = network(&d, &owner, "wire").await;
    let mut bare = run_request(&net, &owner, "bare");
    bare.security_group_ids = Vec::new();
    d.run_instance(&bare).await.expect_err("no group");
    assert_eq!(server_calls(&emu, "RunInstances"), 0);
    let id = d
        .run_instance(&run_request(&net, &owner, "wire-run"))
        .await
        .expect("run");
    d.tag_instance(REGION, &id, &tags(&[("k", "v")]))
        .await
        .expect("tag");
    d.untag_instance(REGION, &id, &["k".to_string()])
        .await
        .expect("untag");
    assert_eq!(server_calls(&emu, "TagResources"), 1);
    assert_eq!(server_calls(&emu, "UntagResources"), 1);
}
