//! Throughput of the emulator, per front end in the same run: concurrent loopback clients send
//! DescribeInstances and DescribeVpcs calls for a bounded time, first ACS3-signed to the Alibaba
//! front end, then TC3-signed (JSON bodies) to the Tencent one, then SigV4-signed (EC2 Query
//! form bodies, XML answers) to the AWS one; prints requests/s and p50/p99 latency of each.
//!
//! `cargo bench -p mce-bench --bench emulator_throughput` (env: `MCE_BENCH_SECS`, default 10 per
//! front end; `MCE_BENCH_CLIENTS`, default 32). The emulator runs in this process (the library,
//! as the tests use it); the Alibaba clients are `mce_testkit`'s signed test client, the Tencent
//! and AWS ones sign with the emulator's own test signers (`mce_emulator::tencent::sign_for_tests`,
//! `mce_emulator::aws::sign_for_tests`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};
use mce_testkit::aliyun_client::SignedClient;
use mce_testkit::emulator::start_in_process;

const REGION: &str = "cn-hangzhou";
const TC_REGION: &str = "ap-guangzhou";
const AWS_REGION: &str = "us-east-1";

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

/// A TC3-signing JSON client of the Tencent front end.
#[derive(Clone)]
struct TencentClient {
    http: reqwest::Client,
    host: String,
}

impl TencentClient {
    fn new(host: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            host,
        }
    }

    /// `Ok(Response)` of a successful call, `Err` with the error code or transport failure.
    async fn call(&self, service: &str, action: &str, body: &Value) -> Result<Value, String> {
        let payload = body.to_string().into_bytes();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let headers = mce_emulator::tencent::sign_for_tests(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
            &self.host,
            service,
            action,
            TC_REGION,
            &payload,
            now,
        );
        let mut request = self.http.post(format!("http://{}/", self.host));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request
            .body(payload)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        let answer = answer["Response"].clone();
        match answer["Error"]["Code"].as_str() {
            Some(code) => Err(code.to_string()),
            None => Ok(answer),
        }
    }
}

async fn seed_tencent(client: &TencentClient) {
    let vpc = client
        .call(
            "vpc",
            "CreateVpc",
            &json!({"VpcName": "bench", "CidrBlock": "10.0.0.0/16"}),
        )
        .await
        .expect("CreateVpc");
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().expect("VpcId").to_string();
    let subnet = client
        .call(
            "vpc",
            "CreateSubnet",
            &json!({"VpcId": vpc_id, "SubnetName": "bench", "CidrBlock": "10.0.0.0/20", "Zone": "ap-guangzhou-3"}),
        )
        .await
        .expect("CreateSubnet");
    let sg = client
        .call(
            "vpc",
            "CreateSecurityGroup",
            &json!({"GroupName": "bench", "GroupDescription": "bench"}),
        )
        .await
        .expect("CreateSecurityGroup");
    let run = client
        .call(
            "cvm",
            "RunInstances",
            &json!({
                "Placement": {"Zone": "ap-guangzhou-3"},
                "InstanceType": "S5.MEDIUM4",
                "ImageId": "img-bench",
                "VirtualPrivateCloud": {"VpcId": vpc_id, "SubnetId": subnet["Subnet"]["SubnetId"]},
                "SecurityGroupIds": [sg["SecurityGroup"]["SecurityGroupId"]],
                "InstanceCount": 50,
                "TagSpecification": [{"ResourceType": "instance", "Tags": [{"Key": "bench", "Value": "yes"}]}],
            }),
        )
        .await
        .expect("RunInstances");
    assert_eq!(run["InstanceIdSet"].as_array().map(Vec::len), Some(50));
}

/// The Tencent twin of [`drive`]: DescribeInstances (10 of the 50 seeded, by tag) and
/// DescribeVpcs, alternately.
async fn drive_tencent(client: TencentClient, first: u64, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
    let mut errors = 0u64;
    let mut i = first;
    let instances = json!({"Filters": [{"Name": "tag:bench", "Values": ["yes"]}], "Limit": 10});
    let vpcs = json!({});
    while Instant::now() < deadline {
        let t = Instant::now();
        let result = if i.is_multiple_of(2) {
            client.call("cvm", "DescribeInstances", &instances).await
        } else {
            client.call("vpc", "DescribeVpcs", &vpcs).await
        };
        i += 1;
        match result {
            Ok(_) => latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(_) => errors += 1,
        }
    }
    (latencies, errors)
}

/// A SigV4-signing EC2 Query client of the AWS front end (`POST /`, form body).
#[derive(Clone)]
struct Ec2Client {
    http: reqwest::Client,
    host: String,
}

/// RFC 3986 encoding of a form key or value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The text of the first `<name>` element of an XML answer.
fn xml_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

impl Ec2Client {
    fn new(host: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            host,
        }
    }

    /// The XML answer of a successful call, `Err` with the status and body otherwise.
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, String> {
        let mut body = format!("Action={action}&Version={}", mce_emulator::aws::EC2_VERSION);
        for (k, v) in params {
            body.push_str(&format!("&{}={}", form_encode(k), form_encode(v)));
        }
        let payload = body.into_bytes();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let headers = mce_emulator::aws::sign_for_tests(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
            &self.host,
            AWS_REGION,
            "ec2",
            &payload,
            now,
        );
        let mut request = self.http.post(format!("http://{}/", self.host));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request
            .body(payload)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("{status}: {text}"))
        }
    }
}

async fn seed_ec2(client: &Ec2Client) {
    let vpc = client
        .call("CreateVpc", &[("CidrBlock", "10.0.0.0/16")])
        .await
        .expect("CreateVpc");
    let vpc_id = xml_text(&vpc, "vpcId").expect("vpcId").to_string();
    let subnet = client
        .call(
            "CreateSubnet",
            &[
                ("VpcId", &vpc_id),
                ("CidrBlock", "10.0.0.0/20"),
                ("AvailabilityZone", "us-east-1a"),
            ],
        )
        .await
        .expect("CreateSubnet");
    let subnet_id = xml_text(&subnet, "subnetId").expect("subnetId").to_string();
    let sg = client
        .call(
            "CreateSecurityGroup",
            &[
                ("GroupName", "bench"),
                ("GroupDescription", "bench"),
                ("VpcId", &vpc_id),
            ],
        )
        .await
        .expect("CreateSecurityGroup");
    let sg_id = xml_text(&sg, "groupId").expect("groupId").to_string();
    let run = client
        .call(
            "RunInstances",
            &[
                ("ImageId", "ami-0c7217cdde317cfec"),
                ("InstanceType", "t3.micro"),
                ("MinCount", "50"),
                ("MaxCount", "50"),
                ("SubnetId", &subnet_id),
                ("SecurityGroupId.1", &sg_id),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "bench"),
                ("TagSpecification.1.Tag.1.Value", "yes"),
            ],
        )
        .await
        .expect("RunInstances");
    assert_eq!(run.matches("<instanceId>").count(), 50, "{run}");
}

/// The EC2 twin of [`drive`]: DescribeInstances (10 of the 50 seeded, by a tag filter) and
/// DescribeVpcs, alternately.
async fn drive_ec2(client: Ec2Client, first: u64, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
    let mut errors = 0u64;
    let mut i = first;
    let instances = [
        ("Filter.1.Name", "tag:bench"),
        ("Filter.1.Value.1", "yes"),
        ("MaxResults", "10"),
    ];
    while Instant::now() < deadline {
        let t = Instant::now();
        let result = if i.is_multiple_of(2) {
            client.call("DescribeInstances", &instances).await
        } else {
            client.call("DescribeVpcs", &[]).await
        };
        i += 1;
        match result {
            Ok(_) => latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(_) => errors += 1,
        }
    }
    (latencies, errors)
}

fn report(name: &str, clients: u64, elapsed: f64, all: &mut [u32], errors: u64) {
    all.sort_unstable();
    println!(
        "emulator_throughput [{name}]: {clients} clients, {elapsed:.1} s, DescribeInstances (10 of 50 instances) + DescribeVpcs"
    );
    println!("  requests ok: {}  errors: {errors}", all.len());
    println!("  throughput:  {:.0} req/s", all.len() as f64 / elapsed);
    println!(
        "  latency:     p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(all, 0.5),
        percentile(all, 0.99),
        percentile(all, 1.0)
    );
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
        report("Alibaba, ACS3", clients, elapsed, &mut all, errors);

        let tencent = TencentClient::new(emulator.endpoint());
        seed_tencent(&tencent).await;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|n| tokio::spawn(drive_tencent(tencent.clone(), n, deadline)))
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (lat, err) = task.await.expect("client task");
            all.extend(lat);
            errors += err;
        }
        let elapsed = started.elapsed().as_secs_f64();
        report("Tencent, TC3", clients, elapsed, &mut all, errors);

        let ec2 = Ec2Client::new(emulator.endpoint());
        seed_ec2(&ec2).await;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|n| tokio::spawn(drive_ec2(ec2.clone(), n, deadline)))
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (lat, err) = task.await.expect("client task");
            all.extend(lat);
            errors += err;
        }
        let elapsed = started.elapsed().as_secs_f64();
        report("AWS, SigV4", clients, elapsed, &mut all, errors);
        let calls = emulator.state().calls();
        println!("  calls seen by the emulator: {:?}", calls.by_action);
        if !calls.errors.is_empty() {
            println!("  errors seen by the emulator: {:?}", calls.errors);
        }
        emulator.shutdown().await;
    });
}
