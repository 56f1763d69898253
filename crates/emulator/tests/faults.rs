//! The faults real clouds have, over loopback HTTP: read lag, lost responses, out-of-band changes
//! by another console user, and the call log.

use std::time::Duration;

use mce_emulator::model::{Faults, Kind};
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorHandle, REDACTED};
use mce_testkit::aliyun_client::SignedClient;
use mce_testkit::emulator::start_in_process;
use serde_json::{Value, json};

const REGION: &str = "cn-hangzhou";
const ZONE: &str = "cn-hangzhou-i";
const BOOT: Duration = Duration::from_millis(200);

async fn emulator() -> (EmulatorHandle, SignedClient) {
    let handle = start_in_process(BOOT).await;
    let client = SignedClient::new(
        handle.endpoint(),
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_ACCESS_KEY_SECRET,
    );
    (handle, client)
}

async fn ok(result: reqwest::Result<(u16, Value)>) -> Value {
    let (status, body) = result.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_default()
}

/// A VPC, a VSwitch and a security group; returns their ids.
async fn network(c: &SignedClient) -> (String, String, String) {
    let vpc = ok(c
        .vpc(
            "CreateVpc",
            &[("RegionId", REGION), ("CidrBlock", "10.0.0.0/16")],
        )
        .await)
    .await;
    let vpc = str_of(&vpc, "VpcId").to_string();
    let vsw = ok(c
        .vpc(
            "CreateVSwitch",
            &[
                ("RegionId", REGION),
                ("VpcId", &vpc),
                ("ZoneId", ZONE),
                ("CidrBlock", "10.0.1.0/24"),
            ],
        )
        .await)
    .await;
    let sg = ok(c
        .ecs(
            "CreateSecurityGroup",
            &[("RegionId", REGION), ("VpcId", &vpc)],
        )
        .await)
    .await;
    (
        vpc,
        str_of(&vsw, "VSwitchId").to_string(),
        str_of(&sg, "SecurityGroupId").to_string(),
    )
}

fn vpc_count(body: &Value) -> usize {
    body["Vpcs"]["Vpc"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn read_lag_hides_new_resources_and_tags_from_reads_only() {
    let (h, c) = emulator().await;
    let admin = reqwest::Client::new();
    let faults: Value = admin
        .put(format!("{}/_emulator/faults", h.base_url()))
        .json(&json!({"readLagMs": 500}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["readLagMs"], 500);

    let vpc = ok(c
        .vpc(
            "CreateVpc",
            &[
                ("RegionId", REGION),
                ("Tag.1.Key", "owner"),
                ("Tag.1.Value", "a"),
            ],
        )
        .await)
    .await;
    let id = str_of(&vpc, "VpcId").to_string();
    let by_id = [("RegionId", REGION), ("VpcId", id.as_str())];
    let by_tag = [("RegionId", REGION), ("Tag.1.Key", "owner")];
    assert_eq!(vpc_count(&ok(c.vpc("DescribeVpcs", &by_id).await).await), 0);
    assert_eq!(
        vpc_count(&ok(c.vpc("DescribeVpcs", &by_tag).await).await),
        0
    );
    // Calls that change a resource by id find it at once.
    let sg = ok(c
        .ecs(
            "CreateSecurityGroup",
            &[("RegionId", REGION), ("VpcId", &id)],
        )
        .await)
    .await;
    let sg = str_of(&sg, "SecurityGroupId").to_string();
    let (status, body) = c
        .ecs(
            "DescribeSecurityGroupAttribute",
            &[("RegionId", REGION), ("SecurityGroupId", &sg)],
        )
        .await
        .unwrap();
    assert_eq!(
        (status, str_of(&body, "Code")),
        (404, "InvalidSecurityGroupId.NotFound")
    );

    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(vpc_count(&ok(c.vpc("DescribeVpcs", &by_id).await).await), 1);
    assert_eq!(
        vpc_count(&ok(c.vpc("DescribeVpcs", &by_tag).await).await),
        1
    );

    // A tag added later is invisible to filters for the lag too; older ones stay visible.
    ok(c.vpc(
        "TagResources",
        &[
            ("RegionId", REGION),
            ("ResourceType", "VPC"),
            ("ResourceId.1", &id),
            ("Tag.1.Key", "stage"),
            ("Tag.1.Value", "dev"),
        ],
    )
    .await)
    .await;
    let by_new_tag = [("RegionId", REGION), ("Tag.1.Key", "stage")];
    assert_eq!(
        vpc_count(&ok(c.vpc("DescribeVpcs", &by_new_tag).await).await),
        0
    );
    assert_eq!(
        vpc_count(&ok(c.vpc("DescribeVpcs", &by_tag).await).await),
        1
    );
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(
        vpc_count(&ok(c.vpc("DescribeVpcs", &by_new_tag).await).await),
        1
    );
}

#[tokio::test]
async fn lost_responses_are_carried_out_and_a_token_retry_returns_the_same_resource() {
    let (h, c) = emulator().await;
    h.state().set_faults(Faults {
        lost_response_rate: 1.0,
        lost_response_actions: vec!["CreateVpc".into()],
        ..Faults::default()
    });
    let create = [("RegionId", REGION), ("ClientToken", "tok-lost-1")];
    let (status, body) = c.vpc("CreateVpc", &create).await.unwrap();
    assert_eq!((status, str_of(&body, "Code")), (504, "LostResponse"));
    let cloud = h.state().resources();
    assert_eq!(cloud["counts"]["vpcs"], 1, "carried out: {cloud}");
    let created = cloud["vpcs"][0]["id"].as_str().unwrap().to_string();
    // Other actions answer normally.
    ok(c.vpc("DescribeVpcs", &[("RegionId", REGION)]).await).await;

    h.state().set_faults(Faults::default());
    let retried = ok(c.vpc("CreateVpc", &create).await).await;
    assert_eq!(str_of(&retried, "VpcId"), created);
    assert_eq!(h.state().resources()["counts"]["vpcs"], 1);
    let log = h.state().call_log();
    let lost: Vec<_> = log.iter().filter(|r| r.lost).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].action, "CreateVpc");
    assert_eq!(h.state().calls().errors.get("LostResponse"), Some(&1));
}

async fn admin_post(h: &EmulatorHandle, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_emulator/oob/{path}", h.base_url()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn out_of_band_changes_as_another_console_user() {
    let (h, c) = emulator().await;
    let (vpc, vsw, sg) = network(&c).await;
    ok(c.ecs(
        "AuthorizeSecurityGroup",
        &[
            ("RegionId", REGION),
            ("SecurityGroupId", &sg),
            ("Permissions.1.IpProtocol", "TCP"),
            ("Permissions.1.PortRange", "22/22"),
            ("Permissions.2.IpProtocol", "TCP"),
            ("Permissions.2.PortRange", "80/80"),
        ],
    )
    .await)
    .await;
    let run = ok(c
        .ecs(
            "RunInstances",
            &[
                ("RegionId", REGION),
                ("InstanceType", "ecs.g7.large"),
                ("ImageId", "img"),
                ("VSwitchId", &vsw),
                ("SecurityGroupId", &sg),
            ],
        )
        .await)
    .await;
    let instance = run["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let eip = ok(c.vpc("AllocateEipAddress", &[("RegionId", REGION)]).await).await;
    let eip = str_of(&eip, "AllocationId").to_string();
    tokio::time::sleep(BOOT + Duration::from_millis(50)).await;
    ok(c.vpc(
        "AssociateEipAddress",
        &[
            ("RegionId", REGION),
            ("AllocationId", &eip),
            ("InstanceId", &instance),
        ],
    )
    .await)
    .await;

    let (status, body) = admin_post(&h, &format!("revoke-rule?group={sg}&port=22")).await;
    assert_eq!((status, &body["revoked"]), (200, &json!(1)), "{body}");
    let ports = mce_testkit::emulator::group_ports(&h.state().resources(), &sg);
    assert_eq!(ports, vec![80]);

    assert_eq!(admin_post(&h, &format!("detach-eip?id={eip}")).await.0, 200);
    let cloud = h.state().resources();
    assert_eq!(cloud["eips"][0]["status"], "Available");

    assert_eq!(
        admin_post(&h, &format!("stop-instance?id={instance}"))
            .await
            .0,
        200
    );
    assert_eq!(h.state().resources()["instances"][0]["status"], "Stopped");
    assert_eq!(
        admin_post(&h, &format!("start-instance?id={instance}"))
            .await
            .0,
        200
    );
    assert_eq!(h.state().resources()["instances"][0]["status"], "Starting");

    // The cloud's dependency rules hold; an instance goes whatever its state.
    let (status, body) = admin_post(&h, &format!("delete?kind=vpc&id={vpc}")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        admin_post(&h, &format!("delete?kind=instance&id={instance}"))
            .await
            .0,
        200
    );
    for (kind, id) in [
        ("eip", &eip),
        ("security-group", &sg),
        ("subnet", &vsw),
        ("vpc", &vpc),
    ] {
        let (status, body) = admin_post(&h, &format!("delete?kind={kind}&id={id}")).await;
        assert_eq!(status, 200, "{kind}: {body}");
    }
    assert_eq!(h.state().resource_count(), 0);
    assert_eq!(
        admin_post(&h, &format!("delete?kind=vpc&id={vpc}")).await.0,
        404
    );
    assert_eq!(admin_post(&h, "delete?kind=disk&id=d-1").await.0, 400);
    assert_eq!(admin_post(&h, "stop-instance").await.0, 400);
    // None of this was a cloud call.
    assert!(!h.state().calls().by_action.contains_key("DeleteVpc"));

    // The same in Rust.
    let (vpc, _, _) = network(&c).await;
    assert!(h.state().oob_delete(Kind::Vpc, &vpc).is_err());
}

#[tokio::test]
async fn the_call_log_holds_parameters_with_secrets_redacted() {
    let (h, c) = emulator().await;
    let (_, vsw, sg) = network(&c).await;
    ok(c.ecs(
        "RunInstances",
        &[
            ("RegionId", REGION),
            ("InstanceType", "ecs.g7.large"),
            ("ImageId", "img"),
            ("VSwitchId", &vsw),
            ("SecurityGroupId", &sg),
            ("Password", "Sup3rSecret!"),
            ("HostName", "web-1"),
        ],
    )
    .await)
    .await;
    let body: Value = reqwest::get(format!("{}/_emulator/calls?log=1", h.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["byAction"]["RunInstances"], 1);
    assert_eq!(body["total"], 4);
    let log = body["log"].as_array().unwrap();
    assert_eq!(log.len(), 4);
    let run = log.iter().find(|r| r["action"] == "RunInstances").unwrap();
    assert_eq!(run["params"]["Password"], REDACTED);
    assert_eq!(run["params"]["HostName"], "web-1");
    assert_eq!(run["seq"], 4);
    let text = body.to_string();
    assert!(!text.contains("Sup3rSecret!"));
    assert!(!text.contains(DEFAULT_ACCESS_KEY_SECRET));
    // Without `log`, only the counts (the scale bench polls this).
    let counts: Value = reqwest::get(format!("{}/_emulator/calls", h.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(counts.get("log").is_none());
    h.state().reset();
    assert!(h.state().call_log().is_empty());
}
