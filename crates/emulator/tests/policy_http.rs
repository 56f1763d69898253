//! Access policies over real loopback HTTP: the shipped RAM and CAM policies attached to a key
//! (admin endpoint), answered `Forbidden.RAM` (HTTP 403) and `UnauthorizedOperation` (HTTP 200
//! error body) as the clouds do, tag conditions included; DryRun creates nothing; keys added at
//! run time are accepted.

use std::time::Duration;

use mce_cloud::{CloudDriver, CreateVpc, Credentials, ErrorClass, Secret};
use mce_cloud_tencent::{RateLimit, TencentConfig, TencentDriver};
use mce_emulator::{EmulatorConfig, EmulatorHandle};
use mce_testkit::aliyun_client::SignedClient;
use serde_json::{Value, json};

const KEY: &str = "policy-key";
const SECRET: &str = "policy-secret";

async fn emulator() -> EmulatorHandle {
    mce_emulator::start(EmulatorConfig {
        boot_delay: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

fn shipped(name: &str) -> Value {
    let path = format!(
        "{}/../../deploy/policies/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn admin(
    h: &EmulatorHandle,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", h.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ram_policy_is_enforced_with_tag_conditions() {
    let h = emulator().await;
    let (status, _) = admin(
        &h,
        reqwest::Method::PUT,
        &format!("/_emulator/credentials/{KEY}"),
        json!({"secret": SECRET}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = admin(
        &h,
        reqwest::Method::PUT,
        &format!("/_emulator/policies/{KEY}"),
        shipped("aliyun-ram-policy.json"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statements"], 11);
    let (status, body) = admin(
        &h,
        reqwest::Method::PUT,
        "/_emulator/policies/x",
        json!({"Version": "1", "Statement": [{"Effect": "Allow"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let c = SignedClient::new(h.addr().to_string(), KEY, SECRET);
    let region = ("RegionId", "cn-hangzhou");
    // Reads are allowed.
    let (status, _) = c.vpc("DescribeVpcs", &[region]).await.unwrap();
    assert_eq!(status, 200);
    // A create without the createdBy tag is refused, naming the action.
    let (status, body) = c.vpc("CreateVpc", &[region]).await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["Code"], "Forbidden.RAM");
    assert!(
        body["Message"].as_str().unwrap().contains("vpc:CreateVpc"),
        "{body}"
    );
    // DryRun with the tag: permitted, nothing created.
    let tagged = [
        region,
        ("Tag.1.Key", "createdBy"),
        ("Tag.1.Value", "multicloud-ecs"),
    ];
    let (status, body) = c
        .vpc("CreateVpc", &[&tagged[..], &[("DryRun", "true")]].concat())
        .await
        .unwrap();
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("DryRunOperation")),
        "{body}"
    );
    assert_eq!(
        h.state().resources()["vpcs"].as_array().map_or(0, Vec::len),
        0
    );
    // With the tag: created.
    let (status, body) = c.vpc("CreateVpc", &tagged).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let ours = body["VpcId"].as_str().unwrap().to_string();
    // Another's VPC (created by the unrestricted default key, untagged) may not be deleted.
    let default = SignedClient::new(
        h.addr().to_string(),
        mce_emulator::DEFAULT_ACCESS_KEY_ID,
        mce_emulator::DEFAULT_ACCESS_KEY_SECRET,
    );
    let (_, body) = default.vpc("CreateVpc", &[region]).await.unwrap();
    let theirs = body["VpcId"].as_str().unwrap().to_string();
    let (status, body) = c
        .vpc("DeleteVpc", &[region, ("VpcId", &theirs)])
        .await
        .unwrap();
    assert_eq!(
        (status, body["Code"].as_str()),
        (403, Some("Forbidden.RAM")),
        "{body}"
    );
    let (status, body) = c
        .vpc("DeleteVpc", &[region, ("VpcId", &ours)])
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Not in the policy at all.
    let (status, _) = c
        .ecs("StopInstance", &[region, ("InstanceId", "i-x")])
        .await
        .unwrap();
    assert_eq!(status, 403);
    // Detached: everything again.
    admin(
        &h,
        reqwest::Method::DELETE,
        &format!("/_emulator/policies/{KEY}"),
        Value::Null,
    )
    .await;
    let (status, _) = c.vpc("CreateVpc", &[region]).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cam_policy_is_enforced_through_the_driver() {
    let h = emulator().await;
    h.state().add_access_key(KEY, SECRET);
    h.state()
        .attach_policy(KEY, shipped("tencent-cam-policy.json"))
        .unwrap();
    let mut config = TencentConfig::new(Credentials {
        access_key_id: KEY.into(),
        access_key_secret: Secret::new(SECRET),
    })
    .with_endpoint(h.base_url());
    config.rate_limit = RateLimit::unlimited();
    let d = TencentDriver::new(config).unwrap();
    d.probe("ap-guangzhou").await.unwrap();
    let req = |tags: &[(&str, &str)]| CreateVpc {
        region: "ap-guangzhou".into(),
        cidr_block: "10.0.0.0/16".into(),
        name: "p".into(),
        description: String::new(),
        client_token: String::new(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let e = d.create_vpc(&req(&[("owner", "x")])).await.unwrap_err();
    assert_eq!(e.code, "UnauthorizedOperation");
    assert_eq!(e.class, ErrorClass::Authentication);
    assert!(e.message.contains("vpc:CreateVpc"), "{e}");
    let id = d
        .create_vpc(&req(&[("createdBy", "multicloud-ecs")]))
        .await
        .unwrap();
    d.delete_vpc("ap-guangzhou", &id).await.unwrap();
    // A removed key is refused as unknown.
    h.state().remove_access_key(KEY);
    let e = d.probe("ap-guangzhou").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Authentication);
}
