//! The AWS EC2 front end over real loopback HTTP, signed by a SigV4 signer of this file's own
//! (independent of the emulator's verifier): authentication failures, a life cycle, ClientToken
//! idempotency and faults.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use mce_emulator::model::Faults;
use mce_emulator::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorConfig, EmulatorHandle,
};
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";
const ZONE: &str = "us-east-1b";
const AMI: &str = "ami-0c7217cdde317cfec";

async fn emulator() -> EmulatorHandle {
    mce_emulator::start(EmulatorConfig {
        boot_delay: Duration::from_millis(200),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How a request is signed (and spoiled, for the failure cases).
struct Signing<'a> {
    key: &'a str,
    secret: &'a str,
    when: Timestamp,
    scope_date: Option<&'a str>,
    tamper_body: bool,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Self {
            key: DEFAULT_ACCESS_KEY_ID,
            secret: DEFAULT_ACCESS_KEY_SECRET,
            when: Timestamp::now(),
            scope_date: None,
            tamper_body: false,
        }
    }
}

/// A signed `POST /` form call, as botocore sends it; answers the status and the body.
async fn call_with(h: &EmulatorHandle, params: &[(&str, &str)], s: Signing<'_>) -> (u16, String) {
    let mut all = vec![("Version", "2016-11-15")];
    all.extend_from_slice(params);
    let body: String = all
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let host = h.endpoint();
    let amz_date = s.when.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = s
        .scope_date
        .map_or_else(|| amz_date[..8].to_string(), String::from);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let canonical = format!(
        "POST\n/\n\ncontent-type:{content_type}\nhost:{host}\nx-amz-date:{amz_date}\n\ncontent-type;host;x-amz-date\n{}",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    let scope = format!("{date}/{REGION}/ec2/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", s.secret).as_bytes(), &date);
    for part in [REGION, "ec2", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    let sent = if s.tamper_body {
        body.replace("DescribeVpcs", "DescribeTags")
    } else {
        body
    };
    let response = reqwest::Client::new()
        .post(format!("{}/", h.base_url()))
        .header("content-type", content_type)
        .header("x-amz-date", amz_date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={signature}",
                s.key
            ),
        )
        .body(sent)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    if status != 504 {
        let ct = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(ct, "text/xml;charset=UTF-8");
    }
    (status, response.text().await.unwrap_or_default())
}

async fn call(h: &EmulatorHandle, params: &[(&str, &str)]) -> (u16, String) {
    call_with(h, params, Signing::default()).await
}

/// The text of the first `<name>` element.
fn field<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// The error code of an error answer.
fn code(xml: &str) -> &str {
    field(xml, "Code").unwrap_or_default()
}

async fn ok(h: &EmulatorHandle, params: &[(&str, &str)]) -> String {
    let (status, body) = call(h, params).await;
    assert_eq!(status, 200, "{params:?}: {body}");
    let action = params
        .iter()
        .find(|(k, _)| *k == "Action")
        .map(|(_, v)| *v)
        .unwrap_or_default();
    assert!(
        body.contains(&format!(
            "<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"
        )),
        "{body}"
    );
    body
}

async fn state_of(h: &EmulatorHandle, id: &str) -> String {
    let body = ok(h, &[("Action", "DescribeInstances"), ("InstanceId.1", id)]).await;
    let state = field(&body, "instanceState").unwrap_or_default();
    field(state, "name").unwrap_or_default().to_string()
}

async fn wait_state(h: &EmulatorHandle, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_of(h, id).await != want {
        assert!(Instant::now() < deadline, "{id} never became {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A VPC, a subnet in it and a security group: their ids.
async fn network(h: &EmulatorHandle) -> (String, String, String) {
    let vpc = ok(h, &[("Action", "CreateVpc"), ("CidrBlock", "10.0.0.0/16")]).await;
    let vpc = field(&vpc, "vpcId").unwrap().to_string();
    let subnet = ok(
        h,
        &[
            ("Action", "CreateSubnet"),
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.1.0/24"),
            ("AvailabilityZone", ZONE),
        ],
    )
    .await;
    assert_eq!(field(&subnet, "availableIpAddressCount"), Some("251"));
    let subnet = field(&subnet, "subnetId").unwrap().to_string();
    let sg = ok(
        h,
        &[
            ("Action", "CreateSecurityGroup"),
            ("GroupName", "web"),
            ("GroupDescription", "web servers"),
            ("VpcId", &vpc),
        ],
    )
    .await;
    let sg = field(&sg, "groupId").unwrap().to_string();
    (vpc, subnet, sg)
}

fn run<'a>(
    subnet: &'a str,
    sg: &'a str,
    token: &'a str,
    instance_type: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Action", "RunInstances"),
        ("ImageId", AMI),
        ("InstanceType", instance_type),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("SubnetId", subnet),
        ("SecurityGroupId.1", sg),
        ("ClientToken", token),
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "owner"),
        ("TagSpecification.1.Tag.1.Value", "http-test"),
    ]
}

#[tokio::test]
async fn signatures_are_verified_as_ec2_verifies_them() {
    let h = emulator().await;
    let describe = [("Action", "DescribeVpcs")];
    ok(&h, &describe).await;
    let (status, body) = call_with(
        &h,
        &describe,
        Signing {
            secret: "not-the-secret",
            ..Signing::default()
        },
    )
    .await;
    assert_eq!((status, code(&body)), (401, "AuthFailure"), "{body}");
    assert!(body.starts_with("<?xml") && body.contains("<Response><Errors><Error><Code>"));
    assert!(body.contains("<RequestID>"));
    let (status, body) = call_with(
        &h,
        &describe,
        Signing {
            key: "AKIAUNKNOWN",
            ..Signing::default()
        },
    )
    .await;
    assert_eq!((status, code(&body)), (401, "AuthFailure"));
    let (status, body) = call_with(
        &h,
        &describe,
        Signing {
            tamper_body: true,
            ..Signing::default()
        },
    )
    .await;
    assert_eq!((status, code(&body)), (401, "AuthFailure"));
    let (status, body) = call_with(
        &h,
        &describe,
        Signing {
            when: Timestamp::now() - jiff::SignedDuration::from_mins(20),
            ..Signing::default()
        },
    )
    .await;
    assert_eq!((status, code(&body)), (400, "RequestExpired"));
    let (status, body) = call_with(
        &h,
        &describe,
        Signing {
            scope_date: Some("20200101"),
            ..Signing::default()
        },
    )
    .await;
    assert_eq!((status, code(&body)), (401, "AuthFailure"));
    assert!(body.contains("Date in Credential scope"), "{body}");
    // A key added at run time signs from then on.
    h.state().add_access_key("AKIANEW", "new-secret");
    let (status, _) = call_with(
        &h,
        &describe,
        Signing {
            key: "AKIANEW",
            secret: "new-secret",
            ..Signing::default()
        },
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(&h, &[("Action", "NoSuchThing")]).await;
    assert_eq!((status, code(&body)), (400, "InvalidAction"));
    let (status, body) = call(&h, &[("Action", "DescribeVpcs"), ("Bogus", "1")]).await;
    assert_eq!((status, code(&body)), (400, "UnknownParameter"));
    let calls = h.state().calls();
    assert_eq!(calls.errors.get("AuthFailure"), Some(&4));
    h.shutdown().await;
}

#[tokio::test]
async fn life_cycle_on_the_aws_realm() {
    let h = emulator().await;
    let (vpc, subnet, sg) = network(&h).await;
    assert!(vpc.starts_with("vpc-0") && vpc.len() == 21, "{vpc}");
    assert!(subnet.starts_with("subnet-"));
    // The VPC's default group and the new one.
    let groups = ok(
        &h,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", &vpc),
        ],
    )
    .await;
    assert_eq!(groups.matches("<groupName>").count(), 2, "{groups}");
    assert!(groups.contains("<groupName>default</groupName>"));
    let rule = [
        ("Action", "AuthorizeSecurityGroupIngress"),
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "22"),
        ("IpPermissions.1.ToPort", "22"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
    ];
    ok(&h, &rule).await;
    let (status, body) = call(&h, &rule).await;
    assert_eq!((status, code(&body)), (400, "InvalidPermission.Duplicate"));

    let token = "life-cycle-token";
    let launched = ok(&h, &run(&subnet, &sg, token, "p3.2xlarge")).await;
    let id = field(&launched, "instanceId").unwrap().to_string();
    assert_eq!(field(&launched, "code"), Some("0"));
    assert_eq!(field(&launched, "privateIpAddress"), Some("10.0.1.4"));
    wait_state(&h, &id, "running").await;
    let by_filter = ok(
        &h,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "tag:owner"),
            ("Filter.1.Value.1", "http-*"),
            ("Filter.2.Name", "instance-state-name"),
            ("Filter.2.Value.1", "running"),
        ],
    )
    .await;
    assert!(by_filter.contains(&id));
    let (status, body) = call(
        &h,
        &[
            ("Action", "DescribeInstances"),
            ("InstanceId.1", "i-0123456789abcdef0"),
        ],
    )
    .await;
    assert_eq!((status, code(&body)), (400, "InvalidInstanceID.NotFound"));

    let (status, body) = call(&h, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)]).await;
    assert_eq!((status, code(&body)), (400, "DependencyViolation"));
    let stopped = ok(&h, &[("Action", "StopInstances"), ("InstanceId.1", &id)]).await;
    assert!(stopped.contains("<currentState><code>64</code><name>stopping</name>"));
    wait_state(&h, &id, "stopped").await;
    let started = ok(&h, &[("Action", "StartInstances"), ("InstanceId.1", &id)]).await;
    assert!(started.contains("<currentState><code>0</code><name>pending</name>"));
    wait_state(&h, &id, "running").await;

    let gone = ok(
        &h,
        &[("Action", "TerminateInstances"), ("InstanceId.1", &id)],
    )
    .await;
    assert!(gone.contains("<currentState><code>32</code><name>shutting-down</name>"));
    wait_state(&h, &id, "terminated").await;
    // Terminating again is fine; the instance stays visible, terminated.
    let again = ok(
        &h,
        &[("Action", "TerminateInstances"), ("InstanceId.1", &id)],
    )
    .await;
    assert!(again.contains("<code>48</code><name>terminated</name>"));
    ok(&h, &[("Action", "DeleteSecurityGroup"), ("GroupId", &sg)]).await;
    ok(&h, &[("Action", "DeleteSubnet"), ("SubnetId", &subnet)]).await;
    ok(&h, &[("Action", "DeleteVpc"), ("VpcId", &vpc)]).await;
    assert_eq!(h.state().resource_count(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn client_tokens_make_run_instances_idempotent() {
    let h = emulator().await;
    let (_, subnet, sg) = network(&h).await;
    let first = ok(&h, &run(&subnet, &sg, "token-1", "t3.micro")).await;
    let again = ok(&h, &run(&subnet, &sg, "token-1", "t3.micro")).await;
    assert_eq!(
        field(&first, "reservationId"),
        field(&again, "reservationId")
    );
    assert_eq!(field(&first, "instanceId"), field(&again, "instanceId"));
    let (status, body) = call(&h, &run(&subnet, &sg, "token-1", "m5.large")).await;
    assert_eq!((status, code(&body)), (400, "IdempotentParameterMismatch"));
    assert_eq!(h.state().with_model(|m| m.instances.len()), 1);
    let id = field(&first, "instanceId").unwrap().to_string();
    ok(
        &h,
        &[("Action", "TerminateInstances"), ("InstanceId.1", &id)],
    )
    .await;
    wait_state(&h, &id, "terminated").await;
    let (status, body) = call(&h, &run(&subnet, &sg, "token-1", "t3.micro")).await;
    assert_eq!((status, code(&body)), (400, "IdempotentInstanceTerminated"));
    // The token is the client's filter too.
    let by_token = ok(
        &h,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "client-token"),
            ("Filter.1.Value.1", "token-1"),
        ],
    )
    .await;
    assert!(by_token.contains(&id));
    h.shutdown().await;
}

#[tokio::test]
async fn faults_answer_as_ec2_and_lost_answers_are_replayed() {
    let h = emulator().await;
    let (_, subnet, sg) = network(&h).await;
    h.state().set_faults(Faults {
        throttle_rate: 1.0,
        actions: vec!["DescribeVpcs".into()],
        ..Faults::default()
    });
    let (status, body) = call(&h, &[("Action", "DescribeVpcs")]).await;
    assert_eq!((status, code(&body)), (503, "RequestLimitExceeded"));
    h.state().set_faults(Faults {
        error_rate: 1.0,
        actions: vec!["DescribeVpcs".into()],
        ..Faults::default()
    });
    let (status, body) = call(&h, &[("Action", "DescribeVpcs")]).await;
    assert_eq!((status, code(&body)), (500, "InternalError"));
    // The answer is lost after the cloud acted: the retry with the same token finds it.
    h.state().set_faults(Faults {
        lost_response_rate: 1.0,
        lost_response_actions: vec!["RunInstances".into()],
        ..Faults::default()
    });
    let (status, _) = call(&h, &run(&subnet, &sg, "lost-token", "t3.micro")).await;
    assert_eq!(status, 504);
    assert_eq!(h.state().with_model(|m| m.instances.len()), 1);
    h.state().set_faults(Faults::default());
    let replay = ok(&h, &run(&subnet, &sg, "lost-token", "t3.micro")).await;
    assert_eq!(h.state().with_model(|m| m.instances.len()), 1);
    let id = field(&replay, "instanceId").unwrap().to_string();
    // Read lag: a new resource is not found by id at first.
    h.state().set_faults(Faults {
        read_lag_ms: 300,
        ..Faults::default()
    });
    let fresh = ok(&h, &run(&subnet, &sg, "lagging", "t3.micro")).await;
    let fresh = field(&fresh, "instanceId").unwrap().to_string();
    let (status, body) = call(
        &h,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &fresh)],
    )
    .await;
    assert_eq!((status, code(&body)), (400, "InvalidInstanceID.NotFound"));
    tokio::time::sleep(Duration::from_millis(350)).await;
    ok(
        &h,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &fresh)],
    )
    .await;
    assert!(!id.is_empty());
    let log = h.state().call_log();
    assert!(log.iter().any(|c| c.action == "RunInstances" && c.lost));
    h.shutdown().await;
}

#[tokio::test]
async fn stock_quotas_and_subnet_size_refuse_launches() {
    let h = emulator().await;
    let (vpc, subnet, sg) = network(&h).await;
    h.state().set_stock(&[mce_emulator::model::StockEntry {
        instance_type: "p4d.24xlarge".into(),
        zone: ZONE.into(),
        available: Some(0),
    }]);
    let (status, body) = call(&h, &run(&subnet, &sg, "", "p4d.24xlarge")).await;
    assert_eq!((status, code(&body)), (500, "InsufficientInstanceCapacity"));
    let mut quotas = h.state().quotas();
    quotas.instances = 0;
    h.state().set_quotas(quotas);
    let (status, body) = call(&h, &run(&subnet, &sg, "", "t3.micro")).await;
    assert_eq!((status, code(&body)), (400, "InstanceLimitExceeded"));
    h.state().set_quotas(mce_emulator::model::Quotas::default());
    let small = ok(
        &h,
        &[
            ("Action", "CreateSubnet"),
            ("VpcId", &vpc),
            ("CidrBlock", "10.0.2.0/28"),
            ("AvailabilityZone", ZONE),
        ],
    )
    .await;
    let small = field(&small, "subnetId").unwrap().to_string();
    let mut params = run(&small, &sg, "", "t3.micro");
    params.retain(|(k, _)| !matches!(*k, "MinCount" | "MaxCount"));
    params.extend([("MinCount", "12"), ("MaxCount", "12")]);
    let (status, body) = call(&h, &params).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InsufficientFreeAddressesInSubnet")
    );
    let (status, body) = call(
        &h,
        &[
            ("Action", "RunInstances"),
            ("ImageId", AMI),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet),
            ("KeyName", "missing"),
        ],
    )
    .await;
    assert_eq!((status, code(&body)), (400, "InvalidKeyPair.NotFound"));
    h.shutdown().await;
}
