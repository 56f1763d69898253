//! What only the Tencent Cloud driver does, against the emulator's Tencent front end over real
//! HTTP with real TC3 signatures: the recycle bin of PREPAID instances, subnet exhaustion, and
//! the wire names of actions and error codes. The provider-neutral behaviour is in the
//! conformance suite (`tests/conformance.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mce_cloud::{
    ChargeMode, CloudDriver, CreateSecurityGroup, CreateSubnet, CreateVpc, Credentials, ErrorClass,
    InstanceStatus, Login, RunInstance, Secret, SystemDisk, Tags,
};
use mce_cloud_tencent::{RateLimit, RetryPolicy, TencentConfig, TencentDriver};
use mce_emulator::model::Faults;
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorHandle};
use mce_testkit::conformance::{count, tags};

const REGION: &str = "ap-guangzhou";
const ZONE: &str = "ap-guangzhou-3";

async fn emulator() -> EmulatorHandle {
    mce_testkit::emulator::start_in_process(Duration::from_millis(300)).await
}

fn driver(emu: &EmulatorHandle) -> TencentDriver {
    let mut config = TencentConfig::new(Credentials {
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
    TencentDriver::new(config).expect("driver builds")
}

/// A VPC, a subnet of `cidr` and a regional security group; returns (subnet, group).
async fn network(d: &TencentDriver, owner: &Tags, cidr: &str) -> (String, String) {
    let vpc = d
        .create_vpc(&CreateVpc {
            region: REGION.into(),
            cidr_block: "172.16.0.0/12".into(),
            name: "net".into(),
            description: String::new(),
            tags: owner.clone(),
            client_token: String::new(),
        })
        .await
        .expect("create vpc");
    let subnet = d
        .create_subnet(&CreateSubnet {
            region: REGION.into(),
            vpc_id: vpc.clone(),
            zone: ZONE.into(),
            cidr_block: cidr.into(),
            name: "subnet".into(),
            tags: owner.clone(),
            client_token: String::new(),
        })
        .await
        .expect("create subnet");
    let group = d
        .create_security_group(&CreateSecurityGroup {
            region: REGION.into(),
            vpc_id: vpc,
            name: "sg".into(),
            description: String::new(),
            tags: owner.clone(),
            client_token: String::new(),
        })
        .await
        .expect("create security group");
    (subnet, group)
}

fn run_request(subnet: &str, group: &str, charge: ChargeMode, token: &str) -> RunInstance {
    RunInstance {
        region: REGION.into(),
        zone: ZONE.into(),
        instance_type: "S5.MEDIUM4".into(),
        image_id: "img-487zeit5".into(),
        subnet_id: subnet.into(),
        security_group_ids: vec![group.into()],
        name: "vm".into(),
        description: String::new(),
        system_disk: SystemDisk {
            category: "CLOUD_PREMIUM".into(),
            size_gib: 50,
        },
        login: Login::Password(Secret::new("Passw0rd!x")),
        charge,
        tags: tags(&[("mce/owner", "tencent")]),
        client_token: token.into(),
        extensions: BTreeMap::new(),
    }
}

async fn until_running(d: &TencentDriver, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = d
            .describe_instances(REGION, &[id.to_string()])
            .await
            .expect("describe");
        if found.first().map(|i| &i.status) == Some(&InstanceStatus::Running) {
            return;
        }
        assert!(Instant::now() < deadline, "never running: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn server_calls(emu: &EmulatorHandle, action: &str) -> u64 {
    emu.state()
        .calls()
        .by_action
        .get(action)
        .copied()
        .unwrap_or(0)
}

/// A PREPAID instance goes to the recycle bin on the first TerminateInstances: the driver
/// terminates it a second time, so one delete_instance leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepaid_instance_is_destroyed_out_of_the_recycle_bin() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "prepaid")]);
    let (subnet, group) = network(&d, &owner, "172.16.1.0/24").await;
    let id = d
        .run_instance(&run_request(
            &subnet,
            &group,
            ChargeMode::Prepaid { months: 1 },
            "prepaid-1",
        ))
        .await
        .expect("run");
    until_running(&d, &id).await;
    d.delete_instance(REGION, &id).await.expect("delete");
    assert_eq!(server_calls(&emu, "TerminateInstances"), 2);
    let left = d
        .describe_instances(REGION, std::slice::from_ref(&id))
        .await
        .expect("describe");
    assert!(
        left.iter().all(|i| i.status == InstanceStatus::Terminated),
        "{left:?}"
    );
}

/// A full subnet answers `FailedOperation.NoAvailableIpAddressCountInSubnet`: SubnetFull, a
/// capacity problem of the network, the class the Alibaba driver gives
/// `InvalidVSwitchId.IpNotEnough`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_subnet_is_a_capacity_error() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "full")]);
    // A /29: 8 addresses, a few of them reserved.
    let (subnet, group) = network(&d, &owner, "172.16.1.0/29").await;
    let mut err = None;
    for n in 0..16 {
        match d
            .run_instance(&run_request(
                &subnet,
                &group,
                ChargeMode::OnDemand,
                &format!("full-{n}"),
            ))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the subnet fills up");
    assert_eq!(
        err.code, "FailedOperation.NoAvailableIpAddressCountInSubnet",
        "{err}"
    );
    assert_eq!(err.class, ErrorClass::SubnetFull, "{err}");
    assert!(count(&emu, "instances") < 16);
}

/// Tencent's names on the wire: `RequestLimitExceeded` is retried; tags change through the Tag
/// API (TagResources/UnTagResources) after one STS GetCallerIdentity for the account's uin.
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
    let throttled = server
        .errors
        .get("RequestLimitExceeded")
        .copied()
        .unwrap_or(0);
    assert_eq!(d.stats().retries, throttled, "{server:?}");
    emu.state().set_faults(Faults::default());

    let owner = tags(&[("mce/owner", "wire")]);
    let (subnet, group) = network(&d, &owner, "172.16.1.0/24").await;
    let id = d
        .run_instance(&run_request(&subnet, &group, ChargeMode::OnDemand, "wire"))
        .await
        .expect("run");
    for _ in 0..2 {
        d.tag_instance(REGION, &id, &tags(&[("k", "v")]))
            .await
            .expect("tag");
        d.untag_instance(REGION, &id, &["k".to_string()])
            .await
            .expect("untag");
    }
    assert_eq!(server_calls(&emu, "TagResources"), 2);
    assert_eq!(server_calls(&emu, "UnTagResources"), 2);
    assert_eq!(server_calls(&emu, "GetCallerIdentity"), 1);
}

/// AssociateAddress carried out but its answer lost: the driver's retry is refused
/// (`InvalidInstanceId.AlreadyBindEip` or the EIP BINDING), finds the EIP on this very
/// instance and reports success, so the operator never sees a refusal for its own work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_associate_answer_is_not_a_refusal() {
    let emu = emulator().await;
    let d = driver(&emu);
    let owner = tags(&[("mce/owner", "lost-associate")]);
    let (subnet, group) = network(&d, &owner, "172.16.2.0/24").await;
    let id = d
        .run_instance(&run_request(
            &subnet,
            &group,
            ChargeMode::OnDemand,
            "lost-associate-1",
        ))
        .await
        .expect("run");
    until_running(&d, &id).await;
    let eip = d
        .allocate_eip(&mce_cloud::AllocateEip {
            region: REGION.into(),
            bandwidth_mbps: 5,
            bandwidth_mode: mce_cloud::BandwidthMode::Traffic,
            tags: owner.clone(),
            client_token: "lost-associate-eip".into(),
        })
        .await
        .expect("allocate");
    let by_id = mce_cloud::EipFilter {
        allocation_ids: vec![eip.allocation_id.clone()],
        ..mce_cloud::EipFilter::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = d.describe_eips(REGION, &by_id).await.expect("describe");
        if found.first().map(|e| &e.status) == Some(&mce_cloud::EipStatus::Available) {
            break;
        }
        assert!(Instant::now() < deadline, "never available: {found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    emu.state().set_faults(Faults {
        lost_response_rate: 1.0,
        lost_response_actions: vec!["AssociateAddress".into()],
        ..Faults::default()
    });
    d.associate_eip(REGION, &eip.allocation_id, &id)
        .await
        .expect("the retry finds the EIP bound here");
    assert!(server_calls(&emu, "AssociateAddress") >= 2);
    let found = d.describe_eips(REGION, &by_id).await.expect("describe");
    assert_eq!(found[0].instance_id.as_deref(), Some(id.as_str()));
}
