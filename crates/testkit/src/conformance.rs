//! One driver conformance suite, run once per provider: every [`CloudDriver`] operation over
//! real HTTP against the in-process emulator, through the trait only.
//!
//! A provider's crate instantiates it in `tests/conformance.rs` with a [`Provider`] (a factory
//! of its driver plus the facts of its catalog) and [`conformance_suite!`](crate::conformance_suite):
//!
//! ```ignore
//! static PROVIDER: Provider = Provider { code: "ALIYUN", build, region: "cn-hangzhou", .. };
//! mce_testkit::conformance_suite!(PROVIDER);
//! ```
//!
//! This module knows no driver crate; wire details (action names, codes, parameters) belong in
//! the provider's own tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mce_cloud::transport::TransportStats;
use mce_cloud::{
    AllocateEip, BandwidthMode, ChargeMode, CloudDriver, CloudResult, CreateSecurityGroup,
    CreateSubnet, CreateVpc, Credentials, Eip, EipFilter, EipStatus, ErrorClass, InstanceStatus,
    Login, PortRule, PriceQuery, RateLimit, RetryPolicy, RunInstance, Secret, SystemDisk, Tags,
    ZoneStock,
};
use mce_emulator::model::{Faults, PriceTable, Quotas, StockEntry};
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorHandle};

/// How the suite wants a driver built.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    pub access_key_id: String,
    pub secret: String,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub rate_limit: RateLimit,
}

impl DriverOptions {
    /// The emulator's credentials, fast retries, no client-side rate limit.
    pub fn new() -> Self {
        Self {
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_string(),
            secret: DEFAULT_ACCESS_KEY_SECRET.to_string(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(2),
                max_delay: Duration::from_millis(20),
            },
            rate_limit: RateLimit::unlimited(),
        }
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            access_key_secret: Secret::new(self.secret.clone()),
        }
    }
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A driver built for the suite, with its transport counters (not part of the trait).
#[derive(Clone)]
pub struct DriverUnderTest {
    pub driver: Arc<dyn CloudDriver>,
    stats: Arc<dyn Fn() -> TransportStats + Send + Sync>,
}

impl DriverUnderTest {
    /// `stats` reads the driver's transport counters (`AliyunDriver::stats`, ...).
    pub fn new<D: CloudDriver + 'static>(
        driver: D,
        stats: impl Fn(&D) -> TransportStats + Send + Sync + 'static,
    ) -> Self {
        let driver = Arc::new(driver);
        let for_stats = Arc::clone(&driver);
        Self {
            driver,
            stats: Arc::new(move || stats(&for_stats)),
        }
    }

    pub fn stats(&self) -> TransportStats {
        (self.stats)()
    }
}

impl std::ops::Deref for DriverUnderTest {
    type Target = dyn CloudDriver;
    fn deref(&self) -> &Self::Target {
        self.driver.as_ref()
    }
}

/// Ids of the provider's shape that name nothing (a malformed id may be refused as a bad
/// parameter rather than reported as not found).
#[derive(Clone, Copy, Debug)]
pub struct UnknownIds {
    pub instance: &'static str,
    pub subnet: &'static str,
    pub security_group: &'static str,
}

/// How the suite's instances log in ([`run_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginChoice {
    /// The password [`PASSWORD`] (Alibaba, Tencent).
    Password,
    /// No credential set at creation (AWS, which has no password login; a key pair would have
    /// to exist first, and creating one is no operation of the trait).
    None,
    /// A key pair of that name, which must exist where the suite runs.
    KeyPair(&'static str),
}

impl LoginChoice {
    pub fn login(self) -> Login {
        match self {
            Self::Password => Login::Password(Secret::new(PASSWORD)),
            Self::None => Login::None,
            Self::KeyPair(name) => Login::KeyPair(name.to_string()),
        }
    }
}

/// One provider under test: how to build its driver against an emulator, and the facts of
/// its catalog the emulator serves.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    /// `CloudDriver::provider()`.
    pub code: &'static str,
    /// The driver, sending every call to the base URL given (`http://127.0.0.1:PORT`).
    pub build: fn(&str, &DriverOptions) -> DriverUnderTest,
    pub region: &'static str,
    pub zone: &'static str,
    pub instance_type: &'static str,
    /// A second type of the emulator's catalogue (a GPU type), priced differently.
    pub gpu_instance_type: &'static str,
    pub image: &'static str,
    /// A system disk category of the provider (`cloud_essd`, `CLOUD_PREMIUM`).
    pub disk_category: &'static str,
    /// The provider's tag limit per resource (its profile's).
    pub tags_per_resource: usize,
    pub unknown: UnknownIds,
    /// Security groups belong to a region, not a VPC (Tencent): found groups carry no VPC.
    pub regional_security_groups: bool,
    /// Every VPC comes with a default security group the cloud made (AWS): an unfiltered find
    /// lists it too.
    pub default_security_group: bool,
    /// The block of the suite's VPCs, holding `172.16.1.0/24` (`172.16.0.0/12`; AWS takes
    /// /16 to /28).
    pub vpc_cidr: &'static str,
    /// How the suite's instances log in (AWS has no password login).
    pub login: LoginChoice,
    /// The currency the emulator prices the provider's instance types in (its table's `CNY`;
    /// the AWS Price List API answers in `USD`).
    pub currency: &'static str,
    /// Prepaid (monthly) instances exist: priced per month, stock asked for them. Without them
    /// (AWS: on-demand only) both questions are refused as InvalidParameter.
    pub prepaid: bool,
    /// `describe_stock` lists a sold-out zone as unavailable (Alibaba, Tencent). Otherwise the
    /// zone is absent from the answer (AWS: `DescribeInstanceTypeOfferings` tells what a zone
    /// offers, not its stock; the emulator stops offering a type at stock 0).
    pub lists_sold_out_zones: bool,
    /// Starting a running instance is refused as the wrong state. Otherwise it is a no-op
    /// success (EC2's StartInstances answers the current state).
    pub refuses_starting_a_running_instance: bool,
    /// Where the cases run: `None` for the in-process emulator; otherwise an endpoint of the
    /// provider's (an independent implementation such as moto), started once per case. Only
    /// the cases that need no emulator control run there (see [`Cloud`]); what only the
    /// emulator can show (its resource counts, its call log) is not checked.
    pub external: Option<fn() -> External>,
    /// The endpoint answers price questions (moto has no Price List API).
    pub priced: bool,
    /// Deleting a subnet that holds an instance is refused (moto deletes it).
    pub refuses_deleting_a_used_subnet: bool,
}

/// An endpoint of the provider's own (see [`Provider::external`]).
pub struct External {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// Held while the case runs (a server process stopped when dropped).
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Where one case runs: the in-process emulator, or the provider's external endpoint.
pub struct Cloud {
    emu: Option<EmulatorHandle>,
    base_url: String,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Cloud {
    /// The emulator, or the provider's external endpoint when it has one.
    pub async fn start(p: &Provider) -> Self {
        match p.external {
            None => {
                let emu = emulator().await;
                Self {
                    base_url: emu.base_url(),
                    emu: Some(emu),
                    _guard: None,
                }
            }
            Some(start) => {
                let external = tokio::task::spawn_blocking(start)
                    .await
                    .expect("the external endpoint starts");
                Self {
                    emu: None,
                    base_url: external.base_url,
                    _guard: Some(external.guard),
                }
            }
        }
    }

    /// The emulator, when the case runs against it.
    pub fn emulator(&self) -> Option<&EmulatorHandle> {
        self.emu.as_ref()
    }

    pub fn driver(&self, p: &Provider) -> DriverUnderTest {
        (p.build)(&self.base_url, &DriverOptions::new())
    }

    /// Calls made so far: those the emulator received, else the driver's attempts.
    pub fn calls(&self, d: &DriverUnderTest) -> u64 {
        self.emu
            .as_ref()
            .map_or_else(|| d.stats().attempts, server_calls)
    }
}

impl Provider {
    pub fn driver(&self, emu: &EmulatorHandle) -> DriverUnderTest {
        self.driver_with(emu, &DriverOptions::new())
    }

    pub fn driver_with(&self, emu: &EmulatorHandle, options: &DriverOptions) -> DriverUnderTest {
        (self.build)(&emu.base_url(), options)
    }
}

/// Instantiates every case of the suite as a `#[tokio::test]` of the calling crate:
/// `mce_testkit::conformance_suite!(PROVIDER);` with `PROVIDER` a [`Provider`].
#[macro_export]
macro_rules! conformance_suite {
    ($provider:expr) => {
        $crate::conformance_suite!(@cases $provider;
            every_operation_round_trip,
            eip_lifecycle,
            idempotent_creates_by_client_token,
            instance_in_two_groups_with_live_tag_changes,
            many_resources_are_paged,
            throttling_is_retried_until_it_succeeds,
            client_rate_limit_is_shared_per_region,
            wrong_secret_is_an_authentication_error_without_the_secret,
            out_of_stock_and_quotas,
            a_stopped_instance_is_started,
            stock_and_prices_for_placement,
        );
    };
    (@cases $provider:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case(&$provider).await;
            }
        )*
    };
}

// ---- Helpers ----

pub async fn emulator() -> EmulatorHandle {
    crate::emulator::start_in_process(Duration::from_millis(300)).await
}

/// The emulator of a case that controls it (faults, stock, quotas, out-of-band changes): not
/// for a provider's external endpoint.
pub async fn emulator_only(p: &Provider) -> EmulatorHandle {
    assert!(
        p.external.is_none(),
        "{}: this case needs the emulator's controls; do not register it for an external endpoint",
        p.code
    );
    emulator().await
}

pub fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Resources of one kind the emulator holds (`vpcs`, `instances`, `eips`, ...).
pub fn count(emu: &EmulatorHandle, kind: &str) -> u64 {
    emu.state().resources()["counts"][kind]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// Authenticated calls the emulator received, all actions together.
pub fn server_calls(emu: &EmulatorHandle) -> u64 {
    emu.state().calls().by_action.values().sum()
}

pub fn rule(port: u16, cidr: &str, description: &str) -> PortRule {
    PortRule {
        port,
        source_cidr: cidr.to_string(),
        description: description.to_string(),
    }
}

pub struct Network {
    pub vpc: String,
    pub subnet: String,
    pub group: String,
}

/// A VPC, a subnet in the provider's zone and a security group, tagged `owner`.
pub async fn network(p: &Provider, d: &dyn CloudDriver, owner: &Tags, token: &str) -> Network {
    let vpc = d
        .create_vpc(&CreateVpc {
            region: p.region.into(),
            cidr_block: p.vpc_cidr.into(),
            name: "net".into(),
            description: "test network".into(),
            tags: owner.clone(),
            client_token: format!("{token}-vpc"),
        })
        .await
        .expect("create vpc");
    let subnet = d
        .create_subnet(&CreateSubnet {
            region: p.region.into(),
            vpc_id: vpc.clone(),
            zone: p.zone.into(),
            cidr_block: "172.16.1.0/24".into(),
            name: "subnet".into(),
            tags: owner.clone(),
            client_token: format!("{token}-vsw"),
        })
        .await
        .expect("create subnet");
    let group = d
        .create_security_group(&CreateSecurityGroup {
            region: p.region.into(),
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

/// The password every instance of the suite gets: never to appear in an error.
pub const PASSWORD: &str = "Sup3r-Secret!pw";

pub fn run_request(p: &Provider, net: &Network, owner: &Tags, token: &str) -> RunInstance {
    RunInstance {
        region: p.region.into(),
        zone: p.zone.into(),
        instance_type: p.instance_type.into(),
        image_id: p.image.into(),
        subnet_id: net.subnet.clone(),
        security_group_ids: vec![net.group.clone()],
        name: "vm-1".into(),
        description: "test vm".into(),
        system_disk: SystemDisk {
            category: p.disk_category.into(),
            size_gib: 40,
        },
        login: p.login.login(),
        charge: ChargeMode::OnDemand,
        tags: owner.clone(),
        client_token: token.into(),
        extensions: BTreeMap::new(),
    }
}

pub fn allocate_request(p: &Provider, owner: &Tags, token: &str) -> AllocateEip {
    AllocateEip {
        region: p.region.into(),
        bandwidth_mbps: 5,
        bandwidth_mode: BandwidthMode::Traffic,
        tags: owner.clone(),
        client_token: token.into(),
    }
}

/// Retries `f` while it fails with `class`, up to `within`.
pub async fn until_not<T, F, Fut>(class: ErrorClass, within: Duration, mut f: F) -> CloudResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<T>>,
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

/// Describes one EIP until `done` holds (EIP calls may complete asynchronously).
pub async fn eip_until(
    p: &Provider,
    d: &dyn CloudDriver,
    allocation_id: &str,
    what: &str,
    done: impl Fn(&Eip) -> bool,
) -> Eip {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = d
            .describe_eips(
                p.region,
                &EipFilter {
                    allocation_ids: vec![allocation_id.to_string()],
                    ..EipFilter::default()
                },
            )
            .await
            .expect("describe eips");
        assert_eq!(found.len(), 1, "{found:?}");
        if done(&found[0]) {
            return found.into_iter().next().expect("one eip");
        }
        assert!(
            Instant::now() < deadline,
            "EIP never {what}: {:?}",
            found[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Describes one EIP until it reaches `status`.
pub async fn eip_in(
    p: &Provider,
    d: &dyn CloudDriver,
    allocation_id: &str,
    status: EipStatus,
) -> Eip {
    let what = format!("{status:?}");
    eip_until(p, d, allocation_id, &what, |e| e.status == status).await
}

pub async fn instance_status(p: &Provider, d: &dyn CloudDriver, id: &str) -> InstanceStatus {
    let found = d
        .describe_instances(p.region, &[id.to_string()])
        .await
        .expect("describe");
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].status.clone()
}

/// Describes one instance until it runs (Pending/Starting on the way).
pub async fn until_running(p: &Provider, d: &dyn CloudDriver, id: &str) -> mce_cloud::Instance {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = d
            .describe_instances(p.region, &[id.to_string()])
            .await
            .expect("describe instances");
        assert_eq!(found.len(), 1, "{found:?}");
        if found[0].status == InstanceStatus::Running {
            return found.into_iter().next().expect("one instance");
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
    }
}

/// Tags of one instance as the driver describes it.
pub async fn described_tags(p: &Provider, d: &dyn CloudDriver, id: &str) -> Tags {
    let found = d
        .describe_instances(p.region, &[id.to_string()])
        .await
        .expect("describe instance");
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().expect("one instance").tags
}

/// Ids of the instances carrying every tag of `filter`.
pub async fn found_ids(p: &Provider, d: &dyn CloudDriver, filter: &Tags) -> Vec<String> {
    d.find_instances(p.region, filter)
        .await
        .expect("find instances")
        .into_iter()
        .map(|i| i.id)
        .collect()
}

/// Deletes instances and then the network, waiting out wrong states and dependency
/// violations, and checks the emulator (if that is where the case ran) holds nothing
/// (terminating instances may take a moment to go).
pub async fn teardown(
    p: &Provider,
    emu: Option<&EmulatorHandle>,
    d: &dyn CloudDriver,
    ids: &[String],
    net: &Network,
    extra_groups: &[String],
) {
    let wait = Duration::from_secs(10);
    // An instance still being created may refuse deletion for a moment (WrongState: retry).
    for id in ids {
        until_not(ErrorClass::WrongState, wait, || {
            d.delete_instance(p.region, id)
        })
        .await
        .expect("delete instance");
    }
    for group in extra_groups.iter().chain(std::iter::once(&net.group)) {
        until_not(ErrorClass::DependencyViolation, wait, || {
            d.delete_security_group(p.region, group)
        })
        .await
        .expect("delete security group");
    }
    until_not(ErrorClass::DependencyViolation, wait, || {
        d.delete_subnet(p.region, &net.subnet)
    })
    .await
    .expect("delete subnet");
    until_not(ErrorClass::DependencyViolation, wait, || {
        d.delete_vpc(p.region, &net.vpc)
    })
    .await
    .expect("delete vpc");
    let Some(emu) = emu else {
        return;
    };
    let deadline = Instant::now() + wait;
    while emu.state().resource_count() != 0 {
        assert!(
            Instant::now() < deadline,
            "resources left: {}",
            emu.state().resources()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- The cases ----

/// Every operation once: network found by tags, ingress rules, instances, prices, teardown.
pub async fn every_operation_round_trip(p: &Provider) {
    let cloud = Cloud::start(p).await;
    let d = cloud.driver(p);
    assert_eq!(d.provider(), p.code);
    d.probe(p.region).await.expect("probe");

    // Network, found by tags.
    let owner = tags(&[("mce/owner", "ns/vm-1"), ("mce/managed", "true")]);
    let net = network(p, &*d, &owner, "net-1").await;
    let vpcs = d.find_vpcs(p.region, &owner).await.expect("find vpcs");
    assert_eq!(vpcs.len(), 1, "{vpcs:?}");
    assert_eq!(vpcs[0].id, net.vpc);
    assert_eq!(vpcs[0].cidr_block, p.vpc_cidr);
    assert_eq!(vpcs[0].tags, owner);
    assert!(
        d.find_vpcs(p.region, &tags(&[("mce/owner", "other")]))
            .await
            .expect("find")
            .is_empty()
    );
    let subnets = d
        .find_subnets(p.region, &net.vpc, &owner)
        .await
        .expect("find subnets");
    assert_eq!(subnets.len(), 1, "{subnets:?}");
    assert_eq!(subnets[0].id, net.subnet);
    assert_eq!(subnets[0].zone, p.zone);
    assert_eq!(subnets[0].vpc_id, net.vpc);
    assert_eq!(subnets[0].cidr_block, "172.16.1.0/24");
    assert_eq!(subnets[0].tags, owner);
    let groups = d
        .find_security_groups(p.region, &net.vpc, &owner)
        .await
        .expect("find groups");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].id, net.group);
    let group_vpc = if p.regional_security_groups {
        ""
    } else {
        net.vpc.as_str()
    };
    assert_eq!(groups[0].vpc_id, group_vpc);
    assert_eq!(groups[0].tags, owner);

    // Ingress: authorize, duplicates, describe, revoke.
    d.authorize_ingress(
        p.region,
        &net.group,
        &[rule(22, "0.0.0.0/0", "ssh"), rule(80, "10.0.0.0/8", "web")],
    )
    .await
    .expect("authorize");
    d.authorize_ingress(p.region, &net.group, &[rule(22, "0.0.0.0/0", "ssh")])
        .await
        .expect("duplicate authorize counts as success");
    d.authorize_ingress(
        p.region,
        &net.group,
        &[rule(22, "0.0.0.0/0", "ssh"), rule(443, "0.0.0.0/0", "tls")],
    )
    .await
    .expect("partly duplicate authorize");
    let mut ingress = d
        .describe_ingress(p.region, &net.group)
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
    d.revoke_ingress(p.region, &net.group, &[rule(80, "10.0.0.0/8", "")])
        .await
        .expect("revoke");
    d.revoke_ingress(p.region, &net.group, &[rule(80, "10.0.0.0/8", "")])
        .await
        .expect("revoking a missing rule counts as success");
    let ports: Vec<u16> = d
        .describe_ingress(p.region, &net.group)
        .await
        .expect("describe")
        .iter()
        .map(|r| r.port)
        .collect();
    assert!(
        ports.contains(&22) && ports.contains(&443) && !ports.contains(&80),
        "{ports:?}"
    );

    // Instances: run, describe until running, find by tags.
    let id = d
        .run_instance(&run_request(p, &net, &owner, "run-token-1"))
        .await
        .expect("run instance");
    let instance = until_running(p, &*d, &id).await;
    assert_eq!(instance.instance_type, p.instance_type);
    assert_eq!(instance.zone, p.zone);
    assert!(instance.private_ip.is_some());
    assert_eq!(instance.public_ip, None, "no public IP at launch");
    assert_eq!(instance.tags, owner);
    // A VPC and a subnet with an instance in them cannot be deleted (an empty subnet does not
    // hold a Tencent VPC: deleting the VPC removes it).
    let err = d
        .delete_vpc(p.region, &net.vpc)
        .await
        .expect_err("vpc in use");
    assert_eq!(err.class, ErrorClass::DependencyViolation, "{err}");
    if p.refuses_deleting_a_used_subnet {
        let err = d
            .delete_subnet(p.region, &net.subnet)
            .await
            .expect_err("subnet in use");
        assert_eq!(err.class, ErrorClass::DependencyViolation, "{err}");
    }
    let unknown = d
        .describe_instances(p.region, &[id.clone(), p.unknown.instance.to_string()])
        .await
        .expect("describe with an unknown id");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        d.describe_instances(p.region, &[])
            .await
            .expect("no ids")
            .is_empty()
    );
    assert_eq!(found_ids(p, &*d, &owner).await, vec![id.clone()]);
    assert!(
        found_ids(p, &*d, &tags(&[("mce/owner", "nobody")]))
            .await
            .is_empty()
    );

    // Prices.
    if p.priced {
        prices_of_the_instance(p, &d).await;
    }

    // Tear everything down: the emulator holds nothing.
    teardown(
        p,
        cloud.emulator(),
        &*d,
        std::slice::from_ref(&id),
        &net,
        &[],
    )
    .await;
    let err = d
        .delete_vpc(p.region, &net.vpc)
        .await
        .expect_err("already deleted");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    assert!(
        d.find_vpcs(p.region, &owner)
            .await
            .expect("find")
            .is_empty()
    );
}

/// On-demand and (where they exist) prepaid prices of the suite's instance.
async fn prices_of_the_instance(p: &Provider, d: &DriverUnderTest) {
    let query = PriceQuery {
        region: p.region.into(),
        zone: Some(p.zone.into()),
        instance_type: p.instance_type.into(),
        image_id: Some(p.image.into()),
        system_disk: Some(SystemDisk {
            category: p.disk_category.into(),
            size_gib: 40,
        }),
        charge: ChargeMode::OnDemand,
        bandwidth: Some((5, BandwidthMode::Fixed)),
    };
    let hourly = d.describe_price(&query).await.expect("on-demand price");
    assert_eq!(hourly.unit, "Hour");
    assert!(hourly.trade_price > 0.0, "{hourly:?}");
    assert_eq!(hourly.currency, p.currency);
    let three_months = PriceQuery {
        charge: ChargeMode::Prepaid { months: 3 },
        ..query.clone()
    };
    if p.prepaid {
        let monthly = d
            .describe_price(&three_months)
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
    } else {
        // No prepaid instances on this cloud: no price for one either, and no call made.
        let attempts = d.stats().attempts;
        let err = d
            .describe_price(&three_months)
            .await
            .expect_err("no prepaid instances");
        assert_eq!(err.class, ErrorClass::InvalidParameter, "{err}");
        assert_eq!(d.stats().attempts, attempts);
    }
}

/// An EIP from allocation to release: associate (asynchronously on some clouds), find by id,
/// instance and tags, change its bandwidth, refuse a release while associated, disassociate,
/// release, and NotFound once gone.
pub async fn eip_lifecycle(p: &Provider) {
    let cloud = Cloud::start(p).await;
    let d = cloud.driver(p);
    let owner = tags(&[("mce/owner", "ns/eip")]);
    let net = network(p, &*d, &owner, "eip").await;
    let id = d
        .run_instance(&run_request(p, &net, &owner, "eip-run"))
        .await
        .expect("run instance");
    until_running(p, &*d, &id).await;

    let eip_tags = tags(&[("mce/owner", "ns/vm-1")]);
    let eip = d
        .allocate_eip(&allocate_request(p, &eip_tags, "eip-token-1"))
        .await
        .expect("allocate eip");
    assert!(!eip.allocation_id.is_empty());
    // Creation may be asynchronous: wait until it can be associated.
    let ready = eip_in(p, &*d, &eip.allocation_id, EipStatus::Available).await;
    assert!(!ready.ip_address.is_empty(), "{ready:?}");
    assert_eq!(ready.tags, eip_tags);
    assert_eq!(ready.instance_id, None);
    d.associate_eip(p.region, &eip.allocation_id, &id)
        .await
        .expect("associate");
    let bound = eip_in(p, &*d, &eip.allocation_id, EipStatus::InUse).await;
    assert_eq!(bound.instance_id.as_deref(), Some(id.as_str()));
    assert_eq!(bound.bandwidth_mbps, 5);
    assert_eq!(bound.ip_address, ready.ip_address);
    let by_instance = d
        .describe_eips(
            p.region,
            &EipFilter {
                instance_id: Some(id.clone()),
                ..EipFilter::default()
            },
        )
        .await
        .expect("eips by instance");
    assert_eq!(by_instance.len(), 1, "{by_instance:?}");
    let by_tags = d
        .describe_eips(
            p.region,
            &EipFilter {
                tags: eip_tags.clone(),
                ..EipFilter::default()
            },
        )
        .await
        .expect("eips by tags");
    assert_eq!(by_tags.len(), 1, "{by_tags:?}");
    assert_eq!(by_tags[0].allocation_id, eip.allocation_id);
    let described = d
        .describe_instances(p.region, std::slice::from_ref(&id))
        .await
        .expect("describe");
    assert_eq!(
        described[0].public_ip.as_deref(),
        Some(ready.ip_address.as_str())
    );
    // Some clouds do not say which public address is an EIP; none names another one.
    assert!(
        described[0]
            .eip_allocation_id
            .as_ref()
            .is_none_or(|a| *a == eip.allocation_id),
        "{:?}",
        described[0]
    );

    d.modify_eip_bandwidth(p.region, &eip.allocation_id, 10)
        .await
        .expect("modify bandwidth");
    eip_until(p, &*d, &eip.allocation_id, "at 10 Mbps", |e| {
        e.bandwidth_mbps == 10 && e.status == EipStatus::InUse
    })
    .await;
    let err = d
        .release_eip(p.region, &eip.allocation_id)
        .await
        .expect_err("release while associated");
    assert_eq!(err.class, ErrorClass::WrongState, "{err}");
    d.disassociate_eip(p.region, &eip.allocation_id, &id)
        .await
        .expect("disassociate");
    let freed = eip_in(p, &*d, &eip.allocation_id, EipStatus::Available).await;
    assert_eq!(freed.instance_id, None);
    let described = d
        .describe_instances(p.region, std::slice::from_ref(&id))
        .await
        .expect("describe");
    assert_eq!(described[0].public_ip, None, "{:?}", described[0]);
    until_not(ErrorClass::WrongState, Duration::from_secs(5), || {
        d.release_eip(p.region, &eip.allocation_id)
    })
    .await
    .expect("release");
    // Releasing may finish asynchronously: once gone, the EIP is NotFound.
    let err = until_not(ErrorClass::WrongState, Duration::from_secs(5), || {
        d.release_eip(p.region, &eip.allocation_id)
    })
    .await
    .expect_err("already released");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    if let Some(emu) = cloud.emulator() {
        assert_eq!(count(emu, "eips"), 0);
    }

    teardown(
        p,
        cloud.emulator(),
        &*d,
        std::slice::from_ref(&id),
        &net,
        &[],
    )
    .await;
}

/// RunInstances and AllocateEip replayed with the same ClientToken return the same resource
/// and create nothing more.
pub async fn idempotent_creates_by_client_token(p: &Provider) {
    let emu = emulator_only(p).await;
    let d = p.driver(&emu);
    let owner = tags(&[("mce/owner", "ns/idem")]);
    let net = network(p, &*d, &owner, "idem").await;

    let req = run_request(p, &net, &owner, "idem-run-1");
    let id = d.run_instance(&req).await.expect("run instance");
    assert_eq!(d.run_instance(&req).await.expect("replay"), id);
    assert_eq!(count(&emu, "instances"), 1);
    let other = d
        .run_instance(&run_request(p, &net, &owner, "idem-run-2"))
        .await
        .expect("another token");
    assert_ne!(other, id);
    assert_eq!(count(&emu, "instances"), 2);

    let alloc = allocate_request(p, &owner, "idem-eip-1");
    let eip = d.allocate_eip(&alloc).await.expect("allocate");
    let again = d.allocate_eip(&alloc).await.expect("replay allocate");
    assert_eq!(again.allocation_id, eip.allocation_id);
    assert_eq!(count(&emu, "eips"), 1);

    eip_in(p, &*d, &eip.allocation_id, EipStatus::Available).await;
    until_not(ErrorClass::WrongState, Duration::from_secs(5), || {
        d.release_eip(p.region, &eip.allocation_id)
    })
    .await
    .expect("release");
    teardown(p, Some(&emu), &*d, &[id, other], &net, &[]).await;
}

/// An instance in two security groups, whose tags change while it lives.
pub async fn instance_in_two_groups_with_live_tag_changes(p: &Provider) {
    let cloud = Cloud::start(p).await;
    if let Some(emu) = cloud.emulator() {
        emu.state().set_quotas(Quotas {
            tags_per_resource: u32::try_from(p.tags_per_resource).unwrap_or(u32::MAX),
            ..Quotas::default()
        });
    }
    let d = cloud.driver(p);
    let owner = tags(&[("mce/owner", "ns/vm-2")]);
    let net = network(p, &*d, &owner, "live").await;
    let own = d
        .create_security_group(&CreateSecurityGroup {
            region: p.region.into(),
            vpc_id: net.vpc.clone(),
            name: "vm-2".into(),
            description: "per-instance group".into(),
            tags: owner.clone(),
            client_token: "live-own-sg".into(),
        })
        .await
        .expect("create the per-instance group");

    // The instance joins the network's group and its own.
    let mut req = run_request(p, &net, &owner, "live-run");
    req.security_group_ids = vec![net.group.clone(), own.clone()];
    let id = d.run_instance(&req).await.expect("run instance");
    if let Some(emu) = cloud.emulator() {
        let snapshot = emu.state().resources();
        let joined: Vec<&str> = snapshot["instances"][0]["securityGroupIds"]
            .as_array()
            .expect("securityGroupIds")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(joined, vec![net.group.as_str(), own.as_str()]);
    }
    for group in [&net.group, &own] {
        let err = d
            .delete_security_group(p.region, group)
            .await
            .expect_err("a group with an instance in it");
        assert_eq!(err.class, ErrorClass::DependencyViolation, "{err}");
    }
    // Ports opened on the instance's own group stay off the network's group.
    d.authorize_ingress(p.region, &own, &[rule(8080, "0.0.0.0/0", "vm-2")])
        .await
        .expect("authorize on the own group");
    let shared = d
        .describe_ingress(p.region, &net.group)
        .await
        .expect("describe the network group");
    assert!(shared.iter().all(|r| r.port != 8080), "{shared:?}");

    // No security group at all is refused before any call.
    let calls = cloud.calls(&d);
    let mut bare = run_request(p, &net, &owner, "live-bare");
    bare.security_group_ids = Vec::new();
    let err = d.run_instance(&bare).await.expect_err("no group");
    assert_eq!(err.class, ErrorClass::InvalidParameter, "{err}");
    assert_eq!(cloud.calls(&d), calls);

    // Add a tag: describe shows it, find_instances finds the instance by it.
    let role = tags(&[("mce/role", "gpu")]);
    d.tag_instance(p.region, &id, &role).await.expect("tag");
    let mut expected = owner.clone();
    expected.extend(role.clone());
    assert_eq!(described_tags(p, &*d, &id).await, expected);
    assert_eq!(found_ids(p, &*d, &role).await, vec![id.clone()]);
    assert_eq!(found_ids(p, &*d, &expected).await, vec![id.clone()]);
    // Tagging again is idempotent; a new value overwrites.
    d.tag_instance(p.region, &id, &role)
        .await
        .expect("tag again");
    assert_eq!(described_tags(p, &*d, &id).await, expected);
    let cpu = tags(&[("mce/role", "cpu")]);
    d.tag_instance(p.region, &id, &cpu)
        .await
        .expect("overwrite");
    assert_eq!(described_tags(p, &*d, &id).await["mce/role"], "cpu");
    assert!(found_ids(p, &*d, &role).await.is_empty());
    assert_eq!(found_ids(p, &*d, &cpu).await, vec![id.clone()]);

    // Remove it (an absent key is ignored): back to the creation tags.
    d.untag_instance(
        p.region,
        &id,
        &["mce/role".to_string(), "mce/absent".to_string()],
    )
    .await
    .expect("untag");
    assert_eq!(described_tags(p, &*d, &id).await, owner);
    assert!(found_ids(p, &*d, &cpu).await.is_empty());
    assert_eq!(found_ids(p, &*d, &owner).await, vec![id.clone()]);
    d.untag_instance(p.region, &id, &["mce/role".to_string()])
        .await
        .expect("untag again");

    // Empty changes make no call.
    let calls = cloud.calls(&d);
    d.tag_instance(p.region, &id, &Tags::new())
        .await
        .expect("no tags");
    d.untag_instance(p.region, &id, &[]).await.expect("no keys");
    assert_eq!(cloud.calls(&d), calls);

    // Unknown instance: NotFound.
    let err = d
        .tag_instance(p.region, p.unknown.instance, &role)
        .await
        .expect_err("tag an unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .untag_instance(p.region, p.unknown.instance, &["mce/role".to_string()])
        .await
        .expect_err("untag an unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");

    // Past the provider's tag limit: refused, not retried, and nothing is applied.
    let many: Tags = (0..p.tags_per_resource)
        .map(|i| (format!("extra/{i:02}"), i.to_string()))
        .collect();
    let err = d
        .tag_instance(p.region, &id, &many)
        .await
        .expect_err("past the tag limit");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");
    assert_eq!(d.stats().retries, 0, "{err}");
    assert_eq!(described_tags(p, &*d, &id).await, owner);

    teardown(
        p,
        cloud.emulator(),
        &*d,
        std::slice::from_ref(&id),
        &net,
        &[own],
    )
    .await;
}

/// More resources than one page: every one found once.
pub async fn many_resources_are_paged(p: &Provider) {
    let cloud = Cloud::start(p).await;
    if let Some(emu) = cloud.emulator() {
        emu.state().set_quotas(Quotas {
            security_groups: 500,
            ..Quotas::default()
        });
    }
    let d = cloud.driver(p);
    let owner = tags(&[("mce/owner", "pages")]);
    let net = network(p, &*d, &owner, "pages").await;
    for i in 0..120 {
        d.create_security_group(&CreateSecurityGroup {
            region: p.region.into(),
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
        .find_security_groups(p.region, &net.vpc, &owner)
        .await
        .expect("find groups");
    assert_eq!(groups.len(), 121);
    let mut ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 121, "pages overlap");
    // Unfiltered too (no tag filter): the same groups, and the VPC's default group where the
    // cloud makes one.
    let all = d
        .find_security_groups(p.region, &net.vpc, &Tags::new())
        .await
        .expect("find all groups");
    let defaults = usize::from(p.default_security_group);
    assert_eq!(all.len(), 121 + defaults);
    let untagged: Vec<_> = all.iter().filter(|g| g.tags != owner).collect();
    assert_eq!(untagged.len(), defaults, "{untagged:?}");
}

/// Throttling answers are retried by the transport until the call succeeds; always throttled,
/// it gives up after `max_attempts`; server errors are transient and retried the same way.
pub async fn throttling_is_retried_until_it_succeeds(p: &Provider) {
    let emu = emulator_only(p).await;
    let mut options = DriverOptions::new();
    options.retry = RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let d = p.driver_with(&emu, &options);
    emu.state().set_faults(Faults {
        throttle_rate: 0.5,
        ..Faults::default()
    });
    let calls = 20;
    for _ in 0..calls {
        d.find_vpcs(p.region, &Tags::new())
            .await
            .expect("retried until it succeeds");
    }
    let stats = d.stats();
    let server = emu.state().calls();
    let throttled: u64 = server.errors.values().sum();
    assert_eq!(server_calls(&emu), stats.attempts, "{server:?}");
    assert_eq!(stats.attempts, calls + stats.retries);
    assert_eq!(stats.retries, throttled, "{server:?}");
    assert!(throttled > 0, "the fault never fired: {server:?}");

    // Always throttled: gives up after max_attempts with a Throttled error.
    emu.state().set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    options.retry.max_attempts = 3;
    let d = p.driver_with(&emu, &options);
    let err = d.probe(p.region).await.expect_err("always throttled");
    assert_eq!(err.class, ErrorClass::Throttled, "{err}");
    assert_eq!(d.stats().attempts, 3);

    // Server errors are transient and retried the same way.
    emu.state().set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    options.retry.max_attempts = 2;
    let d = p.driver_with(&emu, &options);
    let err = d.probe(p.region).await.expect_err("always failing");
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert_eq!(d.stats().attempts, 2);
}

/// The client-side token bucket is shared by every call of one driver in one region.
pub async fn client_rate_limit_is_shared_per_region(p: &Provider) {
    let cloud = Cloud::start(p).await;
    let mut options = DriverOptions::new();
    options.rate_limit = RateLimit {
        per_second: 20.0,
        burst: 2,
    };
    let d = (p.build)(&cloud.base_url, &options);
    let start = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let d = d.clone();
            let region = p.region;
            tokio::spawn(async move { d.probe(region).await })
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

/// A wrong secret or key id is an Authentication error, not retried, without any secret in it.
pub async fn wrong_secret_is_an_authentication_error_without_the_secret(p: &Provider) {
    let emu = emulator_only(p).await;
    let secret = "wrong-secret-0123456789";
    let options = DriverOptions {
        secret: secret.to_string(),
        ..DriverOptions::new()
    };
    let d = p.driver_with(&emu, &options);
    let err = d.probe(p.region).await.expect_err("bad secret");
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

    let options = DriverOptions {
        access_key_id: "unknown-key-id".to_string(),
        ..DriverOptions::new()
    };
    let err = p
        .driver_with(&emu, &options)
        .probe(p.region)
        .await
        .expect_err("bad key id");
    assert_eq!(err.class, ErrorClass::Authentication, "{err}");
}

/// No stock is OutOfStock (not retried by the transport), exhausted quotas are QuotaExceeded,
/// unknown resources are NotFound.
pub async fn out_of_stock_and_quotas(p: &Provider) {
    let emu = emulator_only(p).await;
    let d = p.driver(&emu);
    let owner = tags(&[("mce/owner", "limits")]);
    let net = network(p, &*d, &owner, "limits").await;

    emu.state().set_stock(&[StockEntry {
        instance_type: p.instance_type.into(),
        zone: p.zone.into(),
        available: Some(0),
    }]);
    let err = d
        .run_instance(&run_request(p, &net, &owner, "stock-1"))
        .await
        .expect_err("no stock");
    assert_eq!(err.class, ErrorClass::OutOfStock, "{err}");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
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
            region: p.region.into(),
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
            bandwidth_mode: BandwidthMode::Fixed,
            ..allocate_request(p, &owner, "quota-eip")
        })
        .await
        .expect_err("eip quota");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");

    emu.state().set_quotas(Quotas {
        instances: 0,
        ..Quotas::default()
    });
    emu.state().set_stock(&[StockEntry {
        instance_type: p.instance_type.into(),
        zone: p.zone.into(),
        available: None,
    }]);
    let err = d
        .run_instance(&run_request(p, &net, &owner, "quota-run"))
        .await
        .expect_err("instance quota");
    assert_eq!(err.class, ErrorClass::QuotaExceeded, "{err}");
    assert_eq!(count(&emu, "instances"), 0);

    // Not-found classes.
    let err = d
        .delete_subnet(p.region, p.unknown.subnet)
        .await
        .expect_err("unknown subnet");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .delete_security_group(p.region, p.unknown.security_group)
        .await
        .expect_err("unknown group");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .delete_instance(p.region, p.unknown.instance)
        .await
        .expect_err("unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
}

/// A stopped instance is started again; starting a running one is refused as the wrong state.
pub async fn a_stopped_instance_is_started(p: &Provider) {
    let emu = emulator_only(p).await;
    let d = p.driver(&emu);
    let owner = tags(&[("owner", "start")]);
    let net = network(p, &*d, &owner, "start").await;
    let id = d
        .run_instance(&run_request(p, &net, &owner, "start-vm"))
        .await
        .expect("run");
    until_running(p, &*d, &id).await;
    let again = d.start_instance(p.region, &id).await;
    if p.refuses_starting_a_running_instance {
        let refused = again.expect_err("running");
        assert_eq!(refused.class, ErrorClass::WrongState, "{refused:?}");
    } else {
        again.expect("starting a running instance is a no-op");
        assert_eq!(instance_status(p, &*d, &id).await, InstanceStatus::Running);
    }
    let region = p.region;
    emu.state()
        .with_model_mut(|m| m.stop_instance(region, &id, Instant::now()))
        .expect("stopped outside");
    assert_eq!(instance_status(p, &*d, &id).await, InstanceStatus::Stopped);
    d.start_instance(p.region, &id).await.expect("started");
    assert_ne!(instance_status(p, &*d, &id).await, InstanceStatus::Stopped);
}

/// What placement asks before any create: the zones offering a type and whether each can
/// launch it now (sold out at stock 0, nothing for an unknown type), and prices per hour in
/// the provider's currency (the emulator's table: CNY; AWS: USD) that follow the emulator's
/// table (changed at run time), so types and clouds compare.
pub async fn stock_and_prices_for_placement(p: &Provider) {
    let emu = emulator_only(p).await;
    let d = p.driver(&emu);
    let stock = |zone: Option<&'static str>, instance_type: &'static str, charge: ChargeMode| {
        let d = &d;
        async move {
            d.describe_stock(p.region, zone, instance_type, charge)
                .await
                .unwrap_or_else(|e| panic!("stock of {instance_type}: {e}"))
        }
    };
    let on_demand = ChargeMode::OnDemand;

    let all = stock(None, p.gpu_instance_type, on_demand).await;
    assert!(all.len() > 1, "offered in several zones: {all:?}");
    assert!(all.iter().all(|z| z.available), "{all:?}");
    assert!(all.iter().any(|z| z.zone == p.zone), "{all:?}");
    let mut zones: Vec<&str> = all.iter().map(|z| z.zone.as_str()).collect();
    zones.dedup();
    assert_eq!(zones.len(), all.len(), "one entry per zone: {all:?}");
    let prepaid = ChargeMode::Prepaid { months: 1 };
    let one = if p.prepaid {
        stock(Some(p.zone), p.gpu_instance_type, prepaid).await
    } else {
        let err = d
            .describe_stock(p.region, Some(p.zone), p.gpu_instance_type, prepaid)
            .await
            .expect_err("no prepaid instances");
        assert_eq!(err.class, ErrorClass::InvalidParameter, "{err}");
        stock(Some(p.zone), p.gpu_instance_type, on_demand).await
    };
    assert_eq!(
        one,
        [ZoneStock {
            zone: p.zone.into(),
            available: true
        }]
    );

    emu.state().set_stock(&[StockEntry {
        instance_type: p.gpu_instance_type.into(),
        zone: p.zone.into(),
        available: Some(0),
    }]);
    let sold_out = stock(None, p.gpu_instance_type, on_demand).await;
    if p.lists_sold_out_zones {
        assert_eq!(sold_out.len(), all.len(), "still offered: {sold_out:?}");
        for z in &sold_out {
            assert_eq!(z.available, z.zone != p.zone, "{sold_out:?}");
        }
    } else {
        // Left out: the other zones, all available.
        let rest: Vec<ZoneStock> = all.iter().filter(|z| z.zone != p.zone).cloned().collect();
        assert_eq!(sold_out, rest, "{sold_out:?}");
        assert!(
            stock(Some(p.zone), p.gpu_instance_type, on_demand)
                .await
                .is_empty(),
            "the sold-out zone offers nothing"
        );
    }
    assert!(
        stock(None, p.instance_type, on_demand)
            .await
            .iter()
            .all(|z| z.available),
        "another type keeps its stock"
    );
    emu.state().set_stock(&[StockEntry {
        instance_type: p.gpu_instance_type.into(),
        zone: p.zone.into(),
        available: None,
    }]);
    assert!(stock(Some(p.zone), p.gpu_instance_type, on_demand).await[0].available);
    assert!(
        stock(None, "mce.no-such-type", on_demand).await.is_empty(),
        "an unknown type is offered nowhere"
    );

    // One stock question costs one call: time a few (the emulator's own latency).
    let started = Instant::now();
    const ROUNDS: u32 = 20;
    for _ in 0..ROUNDS {
        stock(None, p.gpu_instance_type, on_demand).await;
    }
    eprintln!(
        "{}: describe_stock {:?} per call",
        p.code,
        started.elapsed() / ROUNDS
    );

    // Prices follow the table: the default one prices the GPU type above the small one, and a
    // table set at run time is what the driver reports, per hour in CNY.
    let hourly = |instance_type: &'static str| {
        let d = &d;
        async move {
            d.describe_price(&PriceQuery {
                region: p.region.into(),
                zone: Some(p.zone.into()),
                instance_type: instance_type.into(),
                image_id: None,
                system_disk: None,
                charge: ChargeMode::OnDemand,
                bandwidth: None,
            })
            .await
            .unwrap_or_else(|e| panic!("price of {instance_type}: {e}"))
        }
    };
    let (small, gpu) = (
        hourly(p.instance_type).await,
        hourly(p.gpu_instance_type).await,
    );
    for price in [&small, &gpu] {
        assert_eq!(
            (price.unit.as_str(), price.currency.as_str()),
            ("Hour", p.currency)
        );
    }
    assert!(gpu.trade_price > small.trade_price, "{gpu:?} vs {small:?}");
    let table = PriceTable {
        instance_hourly: [(p.instance_type, 1.25), (p.gpu_instance_type, 3.5)]
            .into_iter()
            .map(|(t, v)| (t.to_string(), v))
            .collect(),
        default_instance_hourly: None,
        disk_gib_hourly: 0.0,
        bandwidth_mbps_hourly: 0.0,
        ..PriceTable::default()
    };
    emu.state().set_prices(table);
    let (small, gpu) = (
        hourly(p.instance_type).await,
        hourly(p.gpu_instance_type).await,
    );
    assert!((small.trade_price - 1.25).abs() < 1e-9, "{small:?}");
    assert!((gpu.trade_price - 3.5).abs() < 1e-9, "{gpu:?}");
    let err = d
        .describe_price(&PriceQuery {
            region: p.region.into(),
            zone: None,
            instance_type: "mce.no-such-type".into(),
            image_id: None,
            system_disk: None,
            charge: ChargeMode::OnDemand,
            bandwidth: None,
        })
        .await
        .expect_err("an unpriced type without a default price");
    assert_eq!(err.class, ErrorClass::InvalidParameter, "{err}");
}

/// Network resources by id (what UserNetwork adoption reads and writes): a VPC, subnet and
/// group are described by id with their tags, zone and VPC (none for regional groups), tagged
/// and untagged one kind at a time, and an unknown id is absent (describe) or NotFound (tag).
/// Registered by each provider's `tests/conformance.rs`.
pub async fn network_resources_by_id_are_described_and_tagged(p: &Provider) {
    use mce_cloud::ResourceKind;
    let cloud = Cloud::start(p).await;
    let d = cloud.driver(p);
    let owner = tags(&[("tenantId", "acme")]);
    let net = network(p, &*d, &owner, "adopt-by-id").await;
    let vpc = d
        .describe_vpc(p.region, &net.vpc)
        .await
        .expect("describe vpc")
        .expect("the VPC");
    assert_eq!((vpc.id.as_str(), &vpc.tags), (net.vpc.as_str(), &owner));
    assert_eq!(vpc.cidr_block, p.vpc_cidr);
    let subnet = d
        .describe_subnet(p.region, &net.subnet)
        .await
        .expect("describe subnet")
        .expect("the subnet");
    assert_eq!(
        (subnet.vpc_id.as_str(), subnet.zone.as_str(), &subnet.tags),
        (net.vpc.as_str(), p.zone, &owner)
    );
    let group = d
        .describe_security_group(p.region, &net.group)
        .await
        .expect("describe group")
        .expect("the group");
    let group_vpc = if p.regional_security_groups {
        ""
    } else {
        net.vpc.as_str()
    };
    assert_eq!((group.vpc_id.as_str(), &group.tags), (group_vpc, &owner));

    // Unknown ids (of the provider's shape) are absent, not errors.
    let unknown_vpc = format!("{}-00000000", net.vpc.split('-').next().unwrap_or("vpc"));
    assert_eq!(
        d.describe_vpc(p.region, &unknown_vpc).await.expect("vpc"),
        None
    );
    assert_eq!(
        d.describe_subnet(p.region, p.unknown.subnet)
            .await
            .expect("subnet"),
        None
    );
    assert_eq!(
        d.describe_security_group(p.region, p.unknown.security_group)
            .await
            .expect("group"),
        None
    );

    // Tag and untag each kind; only that resource changes.
    let added = tags(&[("multicloud-ecs/uid", "u-1"), ("stage", "adopted")]);
    let kinds = [
        (ResourceKind::Vpc, net.vpc.clone()),
        (ResourceKind::Subnet, net.subnet.clone()),
        (ResourceKind::SecurityGroup, net.group.clone()),
    ];
    for (kind, id) in &kinds {
        d.tag_resource(p.region, *kind, id, &added)
            .await
            .unwrap_or_else(|e| panic!("tag {kind} {id}: {e}"));
    }
    let mut both = owner.clone();
    both.extend(added.clone());
    let now = (
        d.describe_vpc(p.region, &net.vpc).await.expect("vpc"),
        d.describe_subnet(p.region, &net.subnet)
            .await
            .expect("subnet"),
        d.describe_security_group(p.region, &net.group)
            .await
            .expect("group"),
    );
    assert_eq!(now.0.map(|v| v.tags).as_ref(), Some(&both));
    assert_eq!(now.1.map(|s| s.tags).as_ref(), Some(&both));
    assert_eq!(now.2.map(|g| g.tags).as_ref(), Some(&both));
    // Found by the new tag too (what the reconciler does after adopting).
    let by_tag = d
        .find_vpcs(p.region, &tags(&[("stage", "adopted")]))
        .await
        .expect("find vpcs");
    assert_eq!(
        by_tag.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        [net.vpc.as_str()]
    );
    let keys = vec!["stage".to_string(), "absent".to_string()];
    d.untag_resource(p.region, ResourceKind::Subnet, &net.subnet, &keys)
        .await
        .expect("untag subnet");
    let subnet = d
        .describe_subnet(p.region, &net.subnet)
        .await
        .expect("subnet")
        .expect("the subnet");
    assert!(!subnet.tags.contains_key("stage"), "{:?}", subnet.tags);
    assert_eq!(
        subnet.tags.get("multicloud-ecs/uid").map(String::as_str),
        Some("u-1")
    );
    let group = d
        .describe_security_group(p.region, &net.group)
        .await
        .expect("group")
        .expect("the group");
    assert_eq!(
        group.tags, both,
        "untagging the subnet left the group alone"
    );
    for (kind, id) in &kinds {
        d.untag_resource(p.region, *kind, id, &[])
            .await
            .unwrap_or_else(|e| panic!("an empty untag of {kind} {id} is a no-op: {e}"));
    }

    // Unknown resources: NotFound, nothing tagged.
    let err = d
        .tag_resource(p.region, ResourceKind::Vpc, &unknown_vpc, &added)
        .await
        .expect_err("unknown VPC");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .tag_resource(
            p.region,
            ResourceKind::SecurityGroup,
            p.unknown.security_group,
            &added,
        )
        .await
        .expect_err("unknown group");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    teardown(p, cloud.emulator(), &*d, &[], &net, &[]).await;
}

/// An instance joins a second security group of its VPC (what adopting a VM needs: it joins
/// the instance's own group): the join is additive and idempotent, an unknown group or
/// instance is NotFound, and a group of another VPC is refused (clouds whose groups belong to
/// a VPC). Registered by each provider's `tests/conformance.rs`.
pub async fn an_instance_joins_a_security_group(p: &Provider) {
    let cloud = Cloud::start(p).await;
    let d = cloud.driver(p);
    let owner = tags(&[("mce/owner", "ns/vm-join")]);
    let net = network(p, &*d, &owner, "join").await;
    let id = d
        .run_instance(&run_request(p, &net, &owner, "join-run"))
        .await
        .expect("run instance");
    until_running(p, &*d, &id).await;
    let own = d
        .create_security_group(&CreateSecurityGroup {
            region: p.region.into(),
            vpc_id: net.vpc.clone(),
            name: "vm-join".into(),
            description: "per-instance group".into(),
            tags: owner.clone(),
            client_token: "join-own-sg".into(),
        })
        .await
        .expect("create the per-instance group");
    let groups_of = |emu: &EmulatorHandle| -> Vec<String> {
        let snapshot = emu.state().resources();
        let instance = snapshot["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .find(|i| i["id"] == id.as_str())
            .cloned()
            .expect("the instance");
        instance["securityGroupIds"]
            .as_array()
            .expect("securityGroupIds")
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };

    d.join_security_group(p.region, &id, &own)
        .await
        .expect("join the own group");
    d.join_security_group(p.region, &id, &own)
        .await
        .expect("joining again is a success");
    // In both groups: the new one cannot be deleted while the instance is in it, the first
    // one was kept.
    if let Some(emu) = cloud.emulator() {
        assert_eq!(groups_of(emu), vec![net.group.clone(), own.clone()]);
    }
    for group in [&net.group, &own] {
        let err = d
            .delete_security_group(p.region, group)
            .await
            .expect_err("a group with an instance in it");
        assert_eq!(err.class, ErrorClass::DependencyViolation, "{err}");
    }

    // Unknown group or instance: NotFound, nothing changed.
    let err = d
        .join_security_group(p.region, &id, p.unknown.security_group)
        .await
        .expect_err("an unknown group");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    let err = d
        .join_security_group(p.region, p.unknown.instance, &own)
        .await
        .expect_err("an unknown instance");
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");

    // A group of another VPC is refused (regional groups serve every VPC of their region).
    if !p.regional_security_groups {
        let other_vpc = d
            .create_vpc(&CreateVpc {
                region: p.region.into(),
                cidr_block: p.vpc_cidr.into(),
                name: "other".into(),
                description: "another network".into(),
                tags: owner.clone(),
                client_token: "join-other-vpc".into(),
            })
            .await
            .expect("create another vpc");
        let foreign = d
            .create_security_group(&CreateSecurityGroup {
                region: p.region.into(),
                vpc_id: other_vpc.clone(),
                name: "foreign".into(),
                description: "a group of another VPC".into(),
                tags: owner.clone(),
                client_token: "join-foreign-sg".into(),
            })
            .await
            .expect("create a group in the other vpc");
        let err = d
            .join_security_group(p.region, &id, &foreign)
            .await
            .expect_err("a group of another VPC");
        assert_eq!(err.class, ErrorClass::InvalidParameter, "{err}");
        if let Some(emu) = cloud.emulator() {
            assert_eq!(groups_of(emu), vec![net.group.clone(), own.clone()]);
        }
        d.delete_security_group(p.region, &foreign)
            .await
            .expect("delete the foreign group");
        until_not(
            ErrorClass::DependencyViolation,
            Duration::from_secs(10),
            || d.delete_vpc(p.region, &other_vpc),
        )
        .await
        .expect("delete the other vpc");
    }

    teardown(
        p,
        cloud.emulator(),
        &*d,
        std::slice::from_ref(&id),
        &net,
        &[own],
    )
    .await;
}
