//! The provider-neutral driver conformance suite (`mce_testkit::conformance`), run against the
//! AWS driver and the emulator's EC2 front end (SigV4-signed Query calls on the same address,
//! the emulator's credentials as access key id and secret access key). Wire details stay in
//! the driver's unit tests and `moto.rs`.
//!
//! Where AWS differs, the suite is told through the provider's facts rather than skipping:
//! no password login (instances launch without a credential: creating a key pair is no
//! operation of the trait), prices in USD (the Price List API), no prepaid instances (prepaid
//! prices and stock are refused), stock as offerings (a sold-out zone is absent), and
//! StartInstances on a running instance is a no-op success.

use mce_cloud_aws::{AwsConfig, AwsDriver, PROFILE};
use mce_testkit::conformance::{DriverOptions, DriverUnderTest, LoginChoice, Provider, UnknownIds};

fn build(base_url: &str, o: &DriverOptions) -> DriverUnderTest {
    let mut config = AwsConfig::new(o.credentials()).with_endpoint(base_url);
    config.timeout = o.timeout;
    config.retry = o.retry;
    config.rate_limit = o.rate_limit;
    DriverUnderTest::new(
        AwsDriver::new(config).expect("driver builds"),
        AwsDriver::stats,
    )
}

static AWS: Provider = Provider {
    code: "AWS",
    build,
    region: "us-east-1",
    zone: "us-east-1a",
    instance_type: "t3.micro",
    gpu_instance_type: "g4dn.xlarge",
    image: "ami-0c7217cdde317cfec",
    disk_category: "gp3",
    tags_per_resource: PROFILE.limits.tags_per_resource,
    unknown: UnknownIds {
        instance: "i-0123456789abcdef0",
        subnet: "subnet-0123456789abcdef0",
        security_group: "sg-0123456789abcdef0",
    },
    regional_security_groups: false,
    default_security_group: true,
    vpc_cidr: "172.16.0.0/16",
    login: LoginChoice::None,
    currency: "USD",
    prepaid: false,
    lists_sold_out_zones: false,
    refuses_starting_a_running_instance: false,
    external: None,
    priced: true,
    refuses_deleting_a_used_subnet: true,
};

mce_testkit::conformance_suite!(AWS);

// Registered here rather than in the suite's macro, as the other providers do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_resources_by_id_are_described_and_tagged() {
    mce_testkit::conformance::network_resources_by_id_are_described_and_tagged(&AWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_joins_a_security_group() {
    mce_testkit::conformance::an_instance_joins_a_security_group(&AWS).await;
}
