//! The provider-neutral driver conformance suite (`mce_testkit::conformance`), run against the
//! Tencent Cloud driver and the emulator's Tencent front end (TC3-signed requests on the same
//! address, the emulator's credentials as SecretId/SecretKey).

use mce_cloud_tencent::{PROFILE, TencentConfig, TencentDriver};
use mce_testkit::conformance::{DriverOptions, DriverUnderTest, LoginChoice, Provider, UnknownIds};

fn build(base_url: &str, o: &DriverOptions) -> DriverUnderTest {
    let mut config = TencentConfig::new(o.credentials()).with_endpoint(base_url);
    config.timeout = o.timeout;
    config.retry = o.retry;
    config.rate_limit = o.rate_limit;
    DriverUnderTest::new(
        TencentDriver::new(config).expect("driver builds"),
        TencentDriver::stats,
    )
}

static TENCENT: Provider = Provider {
    code: "TENCENT",
    build,
    region: "ap-guangzhou",
    zone: "ap-guangzhou-3",
    instance_type: "S5.MEDIUM4",
    gpu_instance_type: "GT4.4XLARGE96",
    image: "img-487zeit5",
    disk_category: "CLOUD_PREMIUM",
    tags_per_resource: PROFILE.limits.tags_per_resource,
    unknown: UnknownIds {
        instance: "ins-00000000",
        subnet: "subnet-00000000",
        security_group: "sg-00000000",
    },
    regional_security_groups: true,
    default_security_group: false,
    vpc_cidr: "172.16.0.0/12",
    login: LoginChoice::Password,
    currency: "CNY",
    prepaid: true,
    lists_sold_out_zones: true,
    refuses_starting_a_running_instance: true,
    external: None,
    priced: true,
    refuses_deleting_a_used_subnet: true,
};

mce_testkit::conformance_suite!(TENCENT);

// Registered here rather than in the suite's macro (a case added alongside the AWS driver's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_resources_by_id_are_described_and_tagged() {
    mce_testkit::conformance::network_resources_by_id_are_described_and_tagged(&TENCENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_joins_a_security_group() {
    mce_testkit::conformance::an_instance_joins_a_security_group(&TENCENT).await;
}
