//! Throughput of the emulator: concurrent loopback clients send ACS3-signed DescribeInstances and
//! DescribeVpcs calls for a bounded time; prints requests/s and p50/p99 latency.
//!
//! `cargo bench -p mce-bench --bench emulator_throughput` (env: `MCE_BENCH_SECS`, default 10;
//! `MCE_BENCH_CLIENTS`, default 32). The emulator runs in this process (the library, as the
//! tests use it); the clients are `mce_testkit`'s signed test client.

use std::time::{Duration, Instant};

use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};
use mce_testkit::aliyun_client::SignedClient;
use mce_testkit::emulator::start_in_process;

const REGION: &str = "cn-hangzhou";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

async fn seed(client: &SignedClient) {
    let (_, vpc) = client
        .vpc(
            "CreateVpc",
            &[("RegionId", REGION), ("CidrBlock", "10.0.0.0/16")],
        )
        .await
        .expect("CreateVpc");
    let vpc_id = vpc["VpcId"].as_str().expect("VpcId").to_string();
    let (_, vsw) = client
        .vpc(
            "CreateVSwitch",
            &[
                ("RegionId", REGION),
                ("VpcId", &vpc_id),
                ("ZoneId", "cn-hangzhou-i"),
                ("CidrBlock", "10.0.0.0/20"),
            ],
        )
        .await
        .expect("CreateVSwitch");
    let (_, sg) = client
        .ecs(
            "CreateSecurityGroup",
            &[("RegionId", REGION), ("VpcId", &vpc_id)],
        )
        .await
        .expect("CreateSecurityGroup");
    let (status, body) = client
        .ecs(
            "RunInstances",
            &[
                ("RegionId", REGION),
                ("InstanceType", "ecs.g7.large"),
                ("ImageId", "ubuntu"),
                ("VSwitchId", vsw["VSwitchId"].as_str().expect("VSwitchId")),
                (
                    "SecurityGroupId",
                    sg["SecurityGroupId"].as_str().expect("SecurityGroupId"),
                ),
                ("Amount", "50"),
                ("Tag.1.Key", "bench"),
                ("Tag.1.Value", "yes"),
            ],
        )
        .await
        .expect("RunInstances");
    assert_eq!(status, 200, "{body}");
}

/// One client's loop until `deadline`: alternately DescribeInstances (10 of the 50 seeded) and
/// DescribeVpcs; returns the latencies (µs) of the successful calls and the failures.
async fn drive(client: SignedClient, first: u64, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
    let mut errors = 0u64;
    let mut i = first;
    while Instant::now() < deadline {
        let t = Instant::now();
        let result = if i.is_multiple_of(2) {
            client
                .ecs(
                    "DescribeInstances",
                    &[
                        ("RegionId", REGION),
                        ("MaxResults", "10"),
                        ("Tag.1.Key", "bench"),
                    ],
                )
                .await
        } else {
            client.vpc("DescribeVpcs", &[("RegionId", REGION)]).await
        };
        i += 1;
        match result {
            Ok((200, _)) => {
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX))
            }
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

fn main() {
    let secs = env_u64("MCE_BENCH_SECS", 10);
    let clients = env_u64("MCE_BENCH_CLIENTS", 32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let emulator = start_in_process(Duration::ZERO).await;
        let client = SignedClient::new(
            emulator.endpoint(),
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
        );
        seed(&client).await;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|n| tokio::spawn(drive(client.clone(), n, deadline)))
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (lat, err) = task.await.expect("client task");
            all.extend(lat);
            errors += err;
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let calls = emulator.state().calls();
        println!(
            "emulator_throughput: {clients} clients, {elapsed:.1} s, DescribeInstances (10 of 50 instances) + DescribeVpcs, ACS3-signed"
        );
        println!("  requests ok: {}  errors: {errors}", all.len());
        println!("  throughput:  {:.0} req/s", all.len() as f64 / elapsed);
        println!(
            "  latency:     p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0)
        );
        println!("  calls seen by the emulator: {:?}", calls.by_action);
        emulator.shutdown().await;
    });
}
