//! `ModelDriver` against the emulator's model, and a conformance check: one scenario over
//! `ModelDriver` and over the real `AliyunDriver` (HTTP, ACS3 signatures) against an in-process
//! emulator must observe the same results — ids differ, shapes, states and error classes agree.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mce_cloud::{
    AllocateEip, BandwidthMode, ChargeMode, CloudDriver, CloudResult, CreateSecurityGroup,
    CreateSubnet, CreateVpc, Credentials, EipFilter, ErrorClass, InstanceStatus, Login, PortRule,
    PriceQuery, RateLimit, RetryPolicy, RunInstance, Secret, SystemDisk, Tags,
};
use mce_cloud_aliyun::{AliyunConfig, AliyunDriver};
use mce_emulator::aliyun::ApiError;
use mce_emulator::model::{Faults, Kind, ModelError, Quotas, StockEntry};
use mce_emulator::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorConfig, EmulatorState, start,
};
use mce_testkit::model_driver::{ModelDriver, emulator_state, error_class};

const REGION: &str = "cn-hangzhou";
const ZONE: &str = "cn-hangzhou-i";
const INSTANCE_TYPE: &str = "ecs.g7.large";
const IMAGE: &str = "ubuntu_22_04_x64_20G_alibase_20240130.vhd";
/// Long enough for the first describe to see Pending over HTTP, short for a fast test.
const BOOT_DELAY: Duration = Duration::from_millis(600);

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rule(port: u16, cidr: &str) -> PortRule {
    PortRule {
        port,
        source_cidr: cidr.to_string(),
        description: format!("port {port}"),
    }
}

fn run_request(subnet: &str, groups: &[&str], token: &str) -> RunInstance {
    RunInstance {
        region: REGION.into(),
        zone: ZONE.into(),
        instance_type: INSTANCE_TYPE.into(),
        image_id: IMAGE.into(),
        subnet_id: subnet.into(),
        security_group_ids: groups.iter().map(|g| g.to_string()).collect(),
        name: "vm".into(),
        description: "conformance".into(),
        system_disk: SystemDisk {
            category: "cloud_essd".into(),
            size_gib: 40,
        },
        login: Login::Password(Secret::new("Passw0rd!")),
        charge: ChargeMode::OnDemand,
        tags: tags(&[("owner", "alice"), ("role", "instance")]),
        client_token: token.into(),
        extensions: Default::default(),
    }
}

fn eip_request(token: &str) -> AllocateEip {
    AllocateEip {
        region: REGION.into(),
        bandwidth_mbps: 5,
        bandwidth_mode: BandwidthMode::Traffic,
        tags: tags(&[("owner", "alice")]),
        client_token: token.into(),
    }
}

/// What a driver observed, with cloud ids replaced by names in order of appearance
/// (`vpc#1`, `i#1`), so two clouds' transcripts compare equal.
#[derive(Default)]
struct Transcript {
    names: Vec<(String, String)>,
    per_kind: HashMap<String, usize>,
    lines: Vec<String>,
}

impl Transcript {
    /// Names a new id after its prefix (`vpc-…` → `vpc#N`).
    fn learn(&mut self, id: &str) {
        if id.is_empty() || self.names.iter().any(|(known, _)| known == id) {
            return;
        }
        let kind = id.split('-').next().unwrap_or("id").to_string();
        let n = self.per_kind.entry(kind.clone()).or_default();
        *n += 1;
        self.names.push((id.to_string(), format!("{kind}#{n}")));
    }

    fn normalize(&self, text: String) -> String {
        self.names
            .iter()
            .fold(text, |text, (id, name)| text.replace(id, name))
    }

    /// Records a result: the value, or only the error class (codes are the provider's own).
    fn record<T: Debug>(&mut self, step: &str, result: &CloudResult<T>) {
        let line = match result {
            Ok(v) => format!("{step}: {v:?}"),
            Err(e) => format!("{step}: Err({:?})", e.class),
        };
        let line = self.normalize(line);
        self.lines.push(line);
    }

    /// Records a created id (by name) and returns it.
    fn created(&mut self, step: &str, result: CloudResult<String>) -> String {
        let id = result.unwrap_or_else(|e| panic!("{step}: {e}"));
        self.learn(&id);
        let line = self.normalize(format!("{step}: {id}"));
        self.lines.push(line);
        id
    }
}

/// VPC → subnet → security groups → instance → EIP → rules → tags → delete, with the failures a
/// reconciler meets on the way. Quotas and stock are changed through `state`, the cloud the
/// driver talks to.
async fn scenario(d: &dyn CloudDriver, state: &EmulatorState) -> Vec<String> {
    let mut t = Transcript::default();
    let owner = tags(&[("owner", "alice"), ("role", "network")]);
    t.record("probe", &d.probe(REGION).await);

    // Network, idempotent by ClientToken.
    let vpc_req = CreateVpc {
        region: REGION.into(),
        cidr_block: "172.16.0.0/16".into(),
        name: "net".into(),
        description: "user network".into(),
        tags: owner.clone(),
        client_token: "tok-vpc".into(),
    };
    let vpc = t.created("create_vpc", d.create_vpc(&vpc_req).await);
    t.record("create_vpc replay", &d.create_vpc(&vpc_req).await);
    let changed = CreateVpc {
        cidr_block: "172.17.0.0/16".into(),
        ..vpc_req.clone()
    };
    t.record("create_vpc changed", &d.create_vpc(&changed).await);
    let bad = CreateVpc {
        cidr_block: "172.16.0.1/33".into(),
        client_token: String::new(),
        ..vpc_req.clone()
    };
    t.record("create_vpc bad cidr", &d.create_vpc(&bad).await);
    let unknown_region = CreateVpc {
        region: "xx-nowhere".into(),
        client_token: String::new(),
        ..vpc_req.clone()
    };
    t.record(
        "create_vpc unknown region",
        &d.create_vpc(&unknown_region).await,
    );
    t.record(
        "find_vpcs owner",
        &d.find_vpcs(REGION, &tags(&[("owner", "alice")])).await,
    );
    t.record(
        "find_vpcs any owner",
        &d.find_vpcs(REGION, &tags(&[("owner", "")])).await,
    );
    t.record(
        "find_vpcs other owner",
        &d.find_vpcs(REGION, &tags(&[("owner", "bob")])).await,
    );
    t.record(
        "find_vpcs other region",
        &d.find_vpcs("cn-beijing", &owner).await,
    );

    let subnet_req = CreateSubnet {
        region: REGION.into(),
        vpc_id: vpc.clone(),
        zone: ZONE.into(),
        cidr_block: "172.16.1.0/24".into(),
        name: "net".into(),
        tags: owner.clone(),
        client_token: "tok-vsw".into(),
    };
    let subnet = t.created("create_subnet", d.create_subnet(&subnet_req).await);
    t.record("create_subnet replay", &d.create_subnet(&subnet_req).await);
    let overlap = CreateSubnet {
        cidr_block: "172.16.1.0/25".into(),
        client_token: String::new(),
        ..subnet_req.clone()
    };
    t.record("create_subnet overlap", &d.create_subnet(&overlap).await);
    let no_vpc = CreateSubnet {
        vpc_id: "vpc-missing".into(),
        client_token: String::new(),
        ..subnet_req.clone()
    };
    t.record("create_subnet no vpc", &d.create_subnet(&no_vpc).await);
    t.record("find_subnets", &d.find_subnets(REGION, &vpc, &owner).await);

    let group = |name: &str, token: &str| CreateSecurityGroup {
        region: REGION.into(),
        vpc_id: vpc.clone(),
        name: name.into(),
        description: String::new(),
        tags: owner.clone(),
        client_token: token.into(),
    };
    let net_group = t.created(
        "create_security_group net",
        d.create_security_group(&group("net", "tok-sg-net")).await,
    );
    let vm_group = t.created(
        "create_security_group vm",
        d.create_security_group(&group("vm", "tok-sg-vm")).await,
    );
    t.record(
        "find_security_groups",
        &d.find_security_groups(REGION, &vpc, &tags(&[("role", "network")]))
            .await,
    );
    t.record("delete_vpc in use", &d.delete_vpc(REGION, &vpc).await);

    // Instance: refused requests, stock and quota first.
    let groups = [net_group.as_str(), vm_group.as_str()];
    let no_groups = run_request(&subnet, &[], "");
    t.record("run_instance no group", &d.run_instance(&no_groups).await);
    let mut small_disk = run_request(&subnet, &groups, "");
    small_disk.system_disk.size_gib = 10;
    t.record(
        "run_instance small disk",
        &d.run_instance(&small_disk).await,
    );
    let mut bad_type = run_request(&subnet, &groups, "");
    bad_type.instance_type = String::new();
    t.record("run_instance no type", &d.run_instance(&bad_type).await);
    let request = run_request(&subnet, &groups, "tok-vm");
    state.set_stock(&[StockEntry {
        instance_type: INSTANCE_TYPE.into(),
        zone: ZONE.into(),
        available: Some(0),
    }]);
    t.record("run_instance no stock", &d.run_instance(&request).await);
    state.set_stock(&[StockEntry {
        instance_type: INSTANCE_TYPE.into(),
        zone: ZONE.into(),
        available: None,
    }]);
    state.set_quotas(Quotas {
        instances: 0,
        ..Quotas::default()
    });
    t.record("run_instance no quota", &d.run_instance(&request).await);
    state.set_quotas(Quotas::default());

    // The failures did not consume the token.
    let instance = t.created("run_instance", d.run_instance(&request).await);
    t.record("run_instance replay", &d.run_instance(&request).await);
    let mut other_password = request.clone();
    other_password.login = Login::Password(Secret::new("Other-Passw0rd"));
    t.record(
        "run_instance changed",
        &d.run_instance(&other_password).await,
    );
    let ids = [instance.clone(), "i-missing".to_string()];
    t.record(
        "describe_instances booting",
        &d.describe_instances(REGION, &ids).await,
    );

    let eip = d.allocate_eip(&eip_request("tok-eip")).await;
    let eip_id = t.created(
        "allocate_eip",
        eip.as_ref()
            .map(|e| e.allocation_id.clone())
            .map_err(Clone::clone),
    );
    t.record("allocate_eip result", &eip);
    t.record(
        "allocate_eip replay",
        &d.allocate_eip(&eip_request("tok-eip")).await,
    );
    t.record(
        "associate_eip booting",
        &d.associate_eip(REGION, &eip_id, &instance).await,
    );

    let deadline = Instant::now() + BOOT_DELAY * 10;
    loop {
        let seen = d.describe_instances(REGION, &ids[..1]).await.unwrap();
        if seen.first().map(|i| &i.status) == Some(&InstanceStatus::Running) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance never Running: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.record(
        "describe_instances running",
        &d.describe_instances(REGION, &ids).await,
    );

    // Public IP.
    t.record(
        "associate_eip",
        &d.associate_eip(REGION, &eip_id, &instance).await,
    );
    t.record(
        "associate_eip again",
        &d.associate_eip(REGION, &eip_id, &instance).await,
    );
    t.record(
        "describe_instances with eip",
        &d.describe_instances(REGION, &ids[..1]).await,
    );
    let by_instance = EipFilter {
        instance_id: Some(instance.clone()),
        ..EipFilter::default()
    };
    t.record(
        "describe_eips by instance",
        &d.describe_eips(REGION, &by_instance).await,
    );
    t.record("release_eip in use", &d.release_eip(REGION, &eip_id).await);
    t.record(
        "modify_eip_bandwidth",
        &d.modify_eip_bandwidth(REGION, &eip_id, 20).await,
    );
    t.record(
        "modify_eip_bandwidth zero",
        &d.modify_eip_bandwidth(REGION, &eip_id, 0).await,
    );
    let by_tag = EipFilter {
        tags: tags(&[("owner", "alice")]),
        ..EipFilter::default()
    };
    t.record(
        "describe_eips by tag",
        &d.describe_eips(REGION, &by_tag).await,
    );

    // Ports.
    let ports = [
        rule(22, "0.0.0.0/0"),
        rule(443, "0.0.0.0/0"),
        rule(22, "0.0.0.0/0"),
    ];
    t.record(
        "authorize_ingress",
        &d.authorize_ingress(REGION, &vm_group, &ports).await,
    );
    t.record(
        "authorize_ingress again",
        &d.authorize_ingress(REGION, &vm_group, &ports[..1]).await,
    );
    t.record(
        "authorize_ingress bad source",
        &d.authorize_ingress(REGION, &vm_group, &[rule(80, "not-a-cidr")])
            .await,
    );
    t.record(
        "describe_ingress",
        &d.describe_ingress(REGION, &vm_group).await,
    );
    t.record(
        "revoke_ingress",
        &d.revoke_ingress(
            REGION,
            &vm_group,
            &[rule(443, "0.0.0.0/0"), rule(8080, "0.0.0.0/0")],
        )
        .await,
    );
    t.record(
        "describe_ingress revoked",
        &d.describe_ingress(REGION, &vm_group).await,
    );
    t.record(
        "describe_ingress missing",
        &d.describe_ingress(REGION, "sg-missing").await,
    );

    // Tags.
    t.record(
        "tag_instance",
        &d.tag_instance(REGION, &instance, &tags(&[("env", "dev"), ("team", "ml")]))
            .await,
    );
    t.record(
        "find_instances by tag",
        &d.find_instances(REGION, &tags(&[("env", "dev")])).await,
    );
    t.record(
        "untag_instance",
        &d.untag_instance(REGION, &instance, &["team".into(), "absent".into()])
            .await,
    );
    state.set_quotas(Quotas {
        tags_per_resource: 3,
        ..Quotas::default()
    });
    t.record(
        "tag_instance past limit",
        &d.tag_instance(REGION, &instance, &tags(&[("extra", "1")]))
            .await,
    );
    state.set_quotas(Quotas::default());
    t.record(
        "tag_instance missing",
        &d.tag_instance(REGION, "i-missing", &tags(&[("env", "dev")]))
            .await,
    );
    t.record(
        "find_instances after untag",
        &d.find_instances(REGION, &tags(&[("owner", "alice")])).await,
    );

    // Prices.
    let mut price = PriceQuery {
        region: REGION.into(),
        zone: Some(ZONE.into()),
        instance_type: INSTANCE_TYPE.into(),
        image_id: Some(IMAGE.into()),
        system_disk: Some(SystemDisk {
            category: "cloud_essd".into(),
            size_gib: 100,
        }),
        charge: ChargeMode::OnDemand,
        bandwidth: Some((10, BandwidthMode::Fixed)),
    };
    t.record("describe_price hourly", &d.describe_price(&price).await);
    price.charge = ChargeMode::Prepaid { months: 3 };
    t.record("describe_price monthly", &d.describe_price(&price).await);

    // Teardown, in the order the dependencies demand.
    t.record(
        "delete_subnet in use",
        &d.delete_subnet(REGION, &subnet).await,
    );
    t.record(
        "delete_security_group in use",
        &d.delete_security_group(REGION, &vm_group).await,
    );
    t.record(
        "disassociate_eip",
        &d.disassociate_eip(REGION, &eip_id, &instance).await,
    );
    t.record(
        "disassociate_eip again",
        &d.disassociate_eip(REGION, &eip_id, &instance).await,
    );
    let by_id = EipFilter {
        allocation_ids: vec![eip_id.clone()],
        ..EipFilter::default()
    };
    t.record(
        "describe_eips by id",
        &d.describe_eips(REGION, &by_id).await,
    );
    t.record("release_eip", &d.release_eip(REGION, &eip_id).await);
    t.record("release_eip again", &d.release_eip(REGION, &eip_id).await);
    t.record(
        "delete_instance",
        &d.delete_instance(REGION, &instance).await,
    );
    t.record(
        "delete_instance again",
        &d.delete_instance(REGION, &instance).await,
    );
    t.record(
        "describe_instances gone",
        &d.describe_instances(REGION, &ids).await,
    );
    for g in [&vm_group, &net_group] {
        t.record(
            "delete_security_group",
            &d.delete_security_group(REGION, g).await,
        );
    }
    t.record("delete_subnet", &d.delete_subnet(REGION, &subnet).await);
    t.record("delete_vpc", &d.delete_vpc(REGION, &vpc).await);
    t.record("delete_vpc again", &d.delete_vpc(REGION, &vpc).await);
    assert_eq!(state.resource_count(), 0, "everything was released");
    t.lines
}

fn aliyun(base_url: String) -> AliyunDriver {
    let mut config = AliyunConfig::new(Credentials {
        access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
        access_key_secret: Secret::new(DEFAULT_ACCESS_KEY_SECRET),
    })
    .with_endpoint(base_url);
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
    };
    config.rate_limit = RateLimit::unlimited();
    AliyunDriver::new(config).expect("driver builds")
}

#[tokio::test]
async fn model_driver_observes_what_aliyun_driver_observes_over_http() {
    let started = Instant::now();
    let emulator = start(EmulatorConfig {
        boot_delay: BOOT_DELAY,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let http = aliyun(emulator.base_url());
    let model = ModelDriver::new(emulator_state(BOOT_DELAY));
    let (over_http, in_process) = tokio::join!(
        scenario(&http, emulator.state()),
        scenario(&model, model.state())
    );
    // Shown when the test fails.
    eprintln!("ModelDriver transcript:\n{}", in_process.join("\n"));
    for (n, (a, b)) in over_http.iter().zip(&in_process).enumerate() {
        assert_eq!(
            a, b,
            "step {n} differs (left: AliyunDriver, right: ModelDriver)"
        );
    }
    assert_eq!(over_http.len(), in_process.len());
    // The scenario means something: it saw each class a reconciler handles.
    let text = in_process.join("\n");
    for class in [
        ErrorClass::NotFound,
        ErrorClass::DependencyViolation,
        ErrorClass::OutOfStock,
        ErrorClass::QuotaExceeded,
        ErrorClass::WrongState,
        ErrorClass::InvalidParameter,
        ErrorClass::IdempotencyMismatch,
    ] {
        assert!(
            text.contains(&format!("Err({class:?})")),
            "{class:?} not seen"
        );
    }
    assert!(text.contains("describe_instances booting: [Instance { id: \"i#1\", status: Pending"));
    assert_eq!(model.provider(), "DRY");
    emulator.shutdown().await;
    eprintln!("conformance scenario took {:?}", started.elapsed());
}

/// Every model error gets the class the Alibaba driver gives the code the front end answers.
#[test]
fn model_errors_are_classified_as_over_alibaba() {
    let kinds = [
        Kind::Vpc,
        Kind::Subnet,
        Kind::SecurityGroup,
        Kind::SecurityGroupRule,
        Kind::Instance,
        Kind::Eip,
    ];
    let mut errors = vec![
        ModelError::NoStock {
            instance_type: "t".into(),
            zone: "z".into(),
        },
        ModelError::InstanceStatus {
            id: "i".into(),
            status: "Pending",
            message: String::new(),
        },
        ModelError::EipStatus {
            id: "e".into(),
            status: "InUse",
            message: String::new(),
        },
        ModelError::IdempotencyMismatch,
        ModelError::UnknownInstanceType("t".into()),
        ModelError::InvalidCidr("c".into()),
        ModelError::CidrOverlap("c".into()),
        ModelError::TagLimit("r".into()),
        ModelError::UnknownRegion("r".into()),
        ModelError::Invalid("x".into()),
    ];
    for kind in kinds {
        errors.push(ModelError::NotFound {
            kind,
            id: "x".into(),
        });
        errors.push(ModelError::Quota(kind));
        for blocker in kinds {
            errors.push(ModelError::Dependency {
                kind,
                id: "x".into(),
                blocker,
            });
        }
    }
    for e in errors {
        let api = ApiError::from(e.clone());
        assert_eq!(
            error_class(&e),
            mce_cloud_aliyun::errors::classify(&api.code, api.status),
            "{e:?} answered as {}",
            api.code
        );
    }
}

async fn network(d: &ModelDriver) -> (String, String, String) {
    let vpc = d
        .create_vpc(&CreateVpc {
            region: REGION.into(),
            cidr_block: "10.0.0.0/16".into(),
            name: String::new(),
            description: String::new(),
            tags: Tags::new(),
            client_token: String::new(),
        })
        .await
        .unwrap();
    let subnet = d
        .create_subnet(&CreateSubnet {
            region: REGION.into(),
            vpc_id: vpc.clone(),
            zone: ZONE.into(),
            cidr_block: "10.0.1.0/24".into(),
            name: String::new(),
            tags: Tags::new(),
            client_token: String::new(),
        })
        .await
        .unwrap();
    let group = d
        .create_security_group(&CreateSecurityGroup {
            region: REGION.into(),
            vpc_id: vpc.clone(),
            name: String::new(),
            description: String::new(),
            tags: Tags::new(),
            client_token: String::new(),
        })
        .await
        .unwrap();
    (vpc, subnet, group)
}

#[tokio::test]
async fn instances_boot_through_pending_and_starting() {
    let boot = Duration::from_millis(400);
    let d = ModelDriver::new(emulator_state(boot));
    let (_, subnet, group) = network(&d).await;
    let started = Instant::now();
    let id = d
        .run_instance(&run_request(&subnet, &[&group], ""))
        .await
        .unwrap();
    assert_eq!(status(&d, &id).await, InstanceStatus::Pending);
    tokio::time::sleep_until((started + boot * 5 / 8).into()).await;
    assert_eq!(status(&d, &id).await, InstanceStatus::Starting);
    tokio::time::sleep_until((started + boot + Duration::from_millis(20)).into()).await;
    assert_eq!(status(&d, &id).await, InstanceStatus::Running);
}

async fn status(d: &ModelDriver, id: &str) -> InstanceStatus {
    let found = d.describe_instances(REGION, &[id.to_string()]).await;
    found.unwrap()[0].status.clone()
}

#[tokio::test]
async fn calls_are_counted_and_empty_batches_make_none() {
    let d = ModelDriver::new(emulator_state(Duration::ZERO));
    let (_, _, group) = network(&d).await;
    assert_eq!(d.total_calls(), 3);
    d.state().reset();
    let before = d.calls();
    // Nothing to do means no call at all, as with AliyunDriver.
    d.authorize_ingress(REGION, &group, &[]).await.unwrap();
    d.revoke_ingress(REGION, &group, &[]).await.unwrap();
    d.tag_instance(REGION, "i-x", &Tags::new()).await.unwrap();
    d.untag_instance(REGION, "i-x", &[String::new()])
        .await
        .unwrap();
    assert!(d.describe_instances(REGION, &[]).await.unwrap().is_empty());
    let refused = d.run_instance(&run_request("vsw-x", &[], "")).await;
    assert_eq!(refused.unwrap_err().class, ErrorClass::InvalidParameter);
    assert_eq!(d.calls(), before);
    assert_eq!(d.state().calls().total, 0);
    // Failed calls count, in the driver and in the emulator's statistics.
    let missing = d.delete_vpc(REGION, "vpc-missing").await.unwrap_err();
    assert_eq!(missing.class, ErrorClass::NotFound);
    assert_eq!(missing.provider, "DRY");
    assert_eq!(d.call_log().count("delete_vpc"), 1);
    assert_eq!(d.state().calls().by_action["delete_vpc"], 1);
    assert_eq!(d.state().calls().errors["NotFound.Vpc"], 1);
}

#[tokio::test]
async fn faults_of_the_state_apply() {
    let state = emulator_state(Duration::ZERO);
    let d = ModelDriver::new(state.clone()).with_provider("TEST");
    state.set_faults(Faults {
        throttle_rate: 1.0,
        actions: vec!["probe".into()],
        ..Faults::default()
    });
    assert_eq!(
        d.probe(REGION).await.unwrap_err().class,
        ErrorClass::Throttled
    );
    assert!(d.find_vpcs(REGION, &Tags::new()).await.is_ok());
    state.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let e = d.find_vpcs(REGION, &Tags::new()).await.unwrap_err();
    assert_eq!((e.class, e.provider), (ErrorClass::Transient, "TEST"));
    state.set_faults(Faults::default());
    d.probe(REGION).await.unwrap();
}

#[tokio::test]
async fn a_shared_state_is_the_tests_view_of_the_cloud() {
    let state = emulator_state(Duration::ZERO);
    let d: Arc<dyn CloudDriver> = Arc::new(ModelDriver::new(state.clone()));
    let vpc = d
        .create_vpc(&CreateVpc {
            region: REGION.into(),
            cidr_block: "10.0.0.0/16".into(),
            name: "seen".into(),
            description: String::new(),
            tags: tags(&[("k", "v")]),
            client_token: "t".into(),
        })
        .await
        .unwrap();
    let name = state.with_model(|m| m.vpcs[&vpc].name.clone());
    assert_eq!(name, "seen");
    // A resource removed behind the driver's back is gone for it too.
    state.with_model_mut(|m| m.vpcs.remove(&vpc));
    assert!(d.find_vpcs(REGION, &Tags::new()).await.unwrap().is_empty());
}

fn vpc_request(token: &str) -> CreateVpc {
    CreateVpc {
        region: REGION.into(),
        cidr_block: "172.16.0.0/16".into(),
        name: "net".into(),
        description: String::new(),
        tags: tags(&[("owner", "alice")]),
        client_token: token.into(),
    }
}

#[tokio::test]
async fn read_lag_hides_new_resources_and_tags_from_reads() {
    let state = emulator_state(Duration::ZERO);
    let d = ModelDriver::new(state.clone());
    state.set_faults(Faults {
        read_lag_ms: 300,
        ..Faults::default()
    });
    let vpc = d.create_vpc(&vpc_request("")).await.unwrap();
    let owner = tags(&[("owner", "alice")]);
    assert!(d.find_vpcs(REGION, &owner).await.unwrap().is_empty());
    let sg = d
        .create_security_group(&CreateSecurityGroup {
            region: REGION.into(),
            vpc_id: vpc.clone(),
            name: "sg".into(),
            description: String::new(),
            tags: owner.clone(),
            client_token: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        d.describe_ingress(REGION, &sg).await.unwrap_err().class,
        ErrorClass::NotFound
    );
    // Changes by id find the resource at once.
    d.authorize_ingress(REGION, &sg, &[rule(22, "")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(d.find_vpcs(REGION, &owner).await.unwrap().len(), 1);
    assert_eq!(d.describe_ingress(REGION, &sg).await.unwrap().len(), 1);
    state.set_faults(Faults::default());
}

#[tokio::test]
async fn lost_responses_are_transient_after_the_change() {
    let state = emulator_state(Duration::ZERO);
    let d = ModelDriver::new(state.clone());
    state.set_faults(Faults {
        lost_response_rate: 1.0,
        lost_response_actions: vec!["create_vpc".into()],
        ..Faults::default()
    });
    let e = d.create_vpc(&vpc_request("tok-1")).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(state.resource_count(), 1, "carried out");
    let created = state.with_model(|m| m.vpcs.keys().next().cloned()).unwrap();
    // Reads are not lost.
    assert_eq!(d.find_vpcs(REGION, &Tags::new()).await.unwrap().len(), 1);
    state.set_faults(Faults::default());
    assert_eq!(d.create_vpc(&vpc_request("tok-1")).await.unwrap(), created);
    assert_eq!(state.resource_count(), 1);
}
