//! The provider-neutral driver conformance suite (`mce_testkit::conformance`), run against the
//! Alibaba Cloud driver and the emulator's Alibaba front end. Wire details stay in
//! `aliyun_driver.rs`.

use mce_cloud_aliyun::{AliyunConfig, AliyunDriver, PROFILE};
use mce_testkit::conformance::{DriverOptions, DriverUnderTest, LoginChoice, Provider, UnknownIds};

fn build(base_url: &str, o: &DriverOptions) -> DriverUnderTest {
    let mut config = AliyunConfig::new(o.credentials()).with_endpoint(base_url);
    config.timeout = o.timeout;
    config.retry = o.retry;
    config.rate_limit = o.rate_limit;
    DriverUnderTest::new(
        AliyunDriver::new(config).expect("driver builds"),
        AliyunDriver::stats,
    )
}

static ALIYUN: Provider = Provider {
    code: "ALIYUN",
    build,
    region: "cn-hangzhou",
    zone: "cn-hangzhou-i",
    instance_type: "ecs.g7.large",
    gpu_instance_type: "ecs.gn7-c12g1.3xlarge",
    image: "ubuntu_22_04_x64_20G_alibase_20240130.vhd",
    disk_category: "cloud_essd",
    tags_per_resource: PROFILE.limits.tags_per_resource,
    unknown: UnknownIds {
        instance: "i-doesnotexist",
        subnet: "vsw-doesnotexist",
        security_group: "sg-doesnotexist",
    },
    regional_security_groups: false,
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

mce_testkit::conformance_suite!(ALIYUN);

// Registered here rather than in the suite's macro (a case added alongside the AWS driver's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_resources_by_id_are_described_and_tagged() {
    mce_testkit::conformance::network_resources_by_id_are_described_and_tagged(&ALIYUN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_joins_a_security_group() {
    mce_testkit::conformance::an_instance_joins_a_security_group(&ALIYUN).await;
}
