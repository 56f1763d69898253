//! The emulator over real loopback HTTP: signatures (ACS3 and V2), the resource lifecycle,
//! idempotency, faults and the administration endpoints.

use std::time::Duration;

use mce_emulator::model::{Faults, StockEntry};
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, EmulatorHandle};
use mce_testkit::aliyun_client::{SignOptions, SignedClient, send};
use mce_testkit::emulator::start_in_process;
use serde_json::Value;

const REGION: &str = "cn-hangzhou";
const ZONE: &str = "cn-hangzhou-i";

async fn emulator() -> (EmulatorHandle, SignedClient) {
    let handle = start_in_process(Duration::from_millis(200)).await;
    let client = SignedClient::new(
        handle.endpoint(),
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_ACCESS_KEY_SECRET,
    );
    (handle, client)
}

fn code(body: &Value) -> &str {
    body["Code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn signatures_are_verified() {
    let (h, client) = emulator().await;
    let (status, body) = client.ecs("DescribeRegions", &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["Regions"]["Region"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(body["RequestId"].is_string());

    let wrong = SignedClient::new(h.endpoint(), DEFAULT_ACCESS_KEY_ID, "not-the-secret");
    let (status, body) = wrong.ecs("DescribeRegions", &[]).await.unwrap();
    assert_eq!(
        (status, code(&body)),
        (400, "SignatureDoesNotMatch"),
        "{body}"
    );
    for field in ["RequestId", "HostId", "Message", "Recommend"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }

    let unknown = SignedClient::new(h.endpoint(), "nobody", "x");
    let (status, body) = unknown.ecs("DescribeRegions", &[]).await.unwrap();
    assert_eq!((status, code(&body)), (404, "InvalidAccessKeyId.NotFound"));

    let opts = SignOptions {
        nonce: Some("fixed-nonce-1".into()),
        ..SignOptions::default()
    };
    let params = [("RegionId", REGION)];
    let (status, _) = send(client.acs3("2016-04-28", "DescribeVpcs", &params, &opts))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, body) = send(client.acs3("2016-04-28", "DescribeVpcs", &params, &opts))
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "SignatureNonceUsed"));

    let stale = SignOptions {
        date: Some("2020-01-01T00:00:00Z".into()),
        ..SignOptions::default()
    };
    let (status, body) = send(client.acs3("2016-04-28", "DescribeVpcs", &params, &stale))
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "InvalidTimeStamp.Expired"));

    // A query that differs from the signed one.
    let tampered = client.acs3(
        "2016-04-28",
        "DescribeVpcs",
        &params,
        &SignOptions::default(),
    );
    let mut request = tampered.build().unwrap();
    request.url_mut().set_query(Some("RegionId=cn-shanghai"));
    let response = client.http.execute(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);

    // V2 HMAC-SHA1, as GET with query parameters and as POST with a form body.
    let url = client.v2_url(
        "GET",
        "2016-04-28",
        "DescribeVpcs",
        &params,
        &SignOptions::default(),
    );
    let (status, body) = send(client.http.get(&url)).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["Vpcs"]["Vpc"].is_array());
    let url = client.v2_url(
        "POST",
        "2016-04-28",
        "CreateVpc",
        &[("RegionId", REGION), ("CidrBlock", "10.0.0.0/16")],
        &SignOptions::default(),
    );
    let (base, form) = url.split_once('?').unwrap();
    let request = client
        .http
        .post(format!("{base}?"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    let (status, body) = send(request).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["VpcId"]
            .as_str()
            .is_some_and(|id| id.starts_with("vpc-"))
    );
    // Replayed V2 request.
    let replay = client
        .http
        .post(format!("{base}?"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    let (status, body) = send(replay).await.unwrap();
    assert_eq!((status, code(&body)), (400, "SignatureNonceUsed"));
    let bad = client
        .v2_url(
            "GET",
            "2016-04-28",
            "DescribeVpcs",
            &params,
            &SignOptions::default(),
        )
        .replace("Signature=", "Signature=x");
    let (status, body) = send(client.http.get(&bad)).await.unwrap();
    assert_eq!((status, code(&body)), (400, "SignatureDoesNotMatch"));

    let (status, body) = client.ecs("NoSuchAction", &[]).await.unwrap();
    assert_eq!((status, code(&body)), (404, "InvalidAction.NotFound"));
    let calls = h.state().calls();
    assert!(calls.by_action["DescribeVpcs"] >= 2);
    assert!(calls.errors["SignatureDoesNotMatch"] >= 2);
    h.shutdown().await;
}

async fn ok(result: reqwest::Result<(u16, Value)>) -> Value {
    let (status, body) = result.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn lifecycle_idempotency_and_dependencies() {
    let (h, c) = emulator().await;
    let vpc = ok(c
        .vpc(
            "CreateVpc",
            &[
                ("RegionId", REGION),
                ("CidrBlock", "10.0.0.0/16"),
                ("Tag.1.Key", "owner"),
                ("Tag.1.Value", "t"),
                ("ClientToken", "vpc-1"),
            ],
        )
        .await)
    .await;
    let vpc_id = vpc["VpcId"].as_str().unwrap().to_string();
    let again = ok(c
        .vpc(
            "CreateVpc",
            &[
                ("RegionId", REGION),
                ("CidrBlock", "10.0.0.0/16"),
                ("Tag.1.Key", "owner"),
                ("Tag.1.Value", "t"),
                ("ClientToken", "vpc-1"),
            ],
        )
        .await)
    .await;
    assert_eq!(again["VpcId"], vpc["VpcId"]);
    let (status, body) = c
        .vpc(
            "CreateVpc",
            &[
                ("RegionId", REGION),
                ("CidrBlock", "10.9.0.0/16"),
                ("ClientToken", "vpc-1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "IdempotentParameterMismatch"));

    let vpcs = ok(c
        .vpc(
            "DescribeVpcs",
            &[
                ("RegionId", REGION),
                ("Tag.1.Key", "owner"),
                ("Tag.1.Value", "t"),
            ],
        )
        .await)
    .await;
    assert_eq!(vpcs["TotalCount"], 1);
    assert_eq!(vpcs["Vpcs"]["Vpc"][0]["Tags"]["Tag"][0]["Key"], "owner");
    let none = ok(c
        .vpc(
            "DescribeVpcs",
            &[
                ("RegionId", REGION),
                ("Tag.1.Key", "owner"),
                ("Tag.1.Value", "x"),
            ],
        )
        .await)
    .await;
    assert_eq!(none["TotalCount"], 0);

    let vsw = ok(c
        .vpc(
            "CreateVSwitch",
            &[
                ("RegionId", REGION),
                ("VpcId", &vpc_id),
                ("ZoneId", ZONE),
                ("CidrBlock", "10.0.1.0/24"),
            ],
        )
        .await)
    .await;
    let vsw_id = vsw["VSwitchId"].as_str().unwrap().to_string();
    let sg = ok(c
        .ecs(
            "CreateSecurityGroup",
            &[
                ("RegionId", REGION),
                ("VpcId", &vpc_id),
                ("SecurityGroupName", "web"),
            ],
        )
        .await)
    .await;
    let sg_id = sg["SecurityGroupId"].as_str().unwrap().to_string();
    for _ in 0..2 {
        ok(c.ecs(
            "AuthorizeSecurityGroup",
            &[
                ("RegionId", REGION),
                ("SecurityGroupId", &sg_id),
                ("Permissions.1.IpProtocol", "tcp"),
                ("Permissions.1.PortRange", "22/22"),
                ("Permissions.1.SourceCidrIp", "0.0.0.0/0"),
            ],
        )
        .await)
        .await;
    }
    let attr = ok(c
        .ecs(
            "DescribeSecurityGroupAttribute",
            &[("RegionId", REGION), ("SecurityGroupId", &sg_id)],
        )
        .await)
    .await;
    let rules = attr["Permissions"]["Permission"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["PortRange"], "22/22");

    let (status, body) = c
        .vpc("DeleteVpc", &[("RegionId", REGION), ("VpcId", &vpc_id)])
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "DependencyViolation.VSwitch"));

    let sgs = format!("[\"{sg_id}\"]");
    let run = [
        ("RegionId", REGION),
        ("InstanceType", "ecs.g7.large"),
        ("ImageId", "ubuntu_22_04"),
        ("VSwitchId", &vsw_id),
        ("SecurityGroupId", &sg_id),
        ("Amount", "3"),
        ("Password", "Secret-Pass-1"),
        ("ClientToken", "run-1"),
        ("Tag.1.Key", "job"),
        ("Tag.1.Value", "a"),
    ];
    let created = ok(c.ecs("RunInstances", &run).await).await;
    let ids: Vec<String> = created["InstanceIdSets"]["InstanceIdSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ok(c.ecs("RunInstances", &run).await).await["InstanceIdSets"],
        created["InstanceIdSets"]
    );
    assert!(created["TradePrice"].as_f64().unwrap() > 0.0);
    assert!(!h.state().resources().to_string().contains("Secret-Pass-1"));

    // Pagination with MaxResults / NextToken.
    let page1 = ok(c
        .ecs(
            "DescribeInstances",
            &[
                ("RegionId", REGION),
                ("MaxResults", "2"),
                ("SecurityGroupId", &sg_id),
            ],
        )
        .await)
    .await;
    assert_eq!(page1["Instances"]["Instance"].as_array().unwrap().len(), 2);
    let token = page1["NextToken"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let page2 = ok(c
        .ecs(
            "DescribeInstances",
            &[
                ("RegionId", REGION),
                ("MaxResults", "2"),
                ("NextToken", &token),
            ],
        )
        .await)
    .await;
    assert_eq!(page2["Instances"]["Instance"].as_array().unwrap().len(), 1);
    assert_eq!(page2["NextToken"], "");
    let first = format!("[\"{}\"]", ids[0]);
    let one = ok(c
        .ecs(
            "DescribeInstances",
            &[
                ("RegionId", REGION),
                ("InstanceIds", &first),
                ("Tag.1.Key", "job"),
            ],
        )
        .await)
    .await;
    let inst = &one["Instances"]["Instance"][0];
    assert_eq!(
        inst["SecurityGroupIds"]["SecurityGroupId"][0].as_str(),
        Some(sg_id.as_str())
    );
    assert_eq!(inst["Tags"]["Tag"][0]["TagKey"], "job");
    assert!(
        inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0]
            .as_str()
            .unwrap()
            .starts_with("10.0.1.")
    );
    assert_eq!(inst["Status"], "Pending");
    let _ = sgs;

    let (status, body) = c
        .ecs("DeleteInstance", &[("InstanceId", &ids[0])])
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (403, "IncorrectInstanceStatus"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let running = ok(c
        .ecs(
            "DescribeInstances",
            &[("RegionId", REGION), ("Status", "Running")],
        )
        .await)
    .await;
    assert_eq!(running["TotalCount"], 3);

    let eip = ok(c
        .vpc(
            "AllocateEipAddress",
            &[("RegionId", REGION), ("Bandwidth", "10")],
        )
        .await)
    .await;
    let eip_id = eip["AllocationId"].as_str().unwrap().to_string();
    ok(c.vpc(
        "AssociateEipAddress",
        &[
            ("RegionId", REGION),
            ("AllocationId", &eip_id),
            ("InstanceId", &ids[0]),
        ],
    )
    .await)
    .await;
    let (status, body) = c
        .vpc(
            "ReleaseEipAddress",
            &[("RegionId", REGION), ("AllocationId", &eip_id)],
        )
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "IncorrectEipStatus"));
    let eips = ok(c
        .vpc(
            "DescribeEipAddresses",
            &[("RegionId", REGION), ("AllocationId", &eip_id)],
        )
        .await)
    .await;
    assert_eq!(eips["EipAddresses"]["EipAddress"][0]["Status"], "InUse");
    assert_eq!(
        eips["EipAddresses"]["EipAddress"][0]["InstanceId"].as_str(),
        Some(ids[0].as_str())
    );

    ok(c.ecs("StopInstance", &[("InstanceId", &ids[0])]).await).await;
    ok(c.ecs("DeleteInstance", &[("InstanceId", &ids[0])]).await).await;
    let eips = ok(c.vpc("DescribeEipAddresses", &[("RegionId", REGION)]).await).await;
    assert_eq!(eips["EipAddresses"]["EipAddress"][0]["Status"], "Available");
    ok(c.vpc(
        "ReleaseEipAddress",
        &[("RegionId", REGION), ("AllocationId", &eip_id)],
    )
    .await)
    .await;
    ok(c.ecs(
        "DeleteInstances",
        &[
            ("RegionId", REGION),
            ("InstanceId.1", &ids[1]),
            ("InstanceId.2", &ids[2]),
            ("Force", "true"),
        ],
    )
    .await)
    .await;
    let (status, body) = c
        .ecs(
            "DeleteInstance",
            &[("InstanceId", &ids[1]), ("Force", "true")],
        )
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (404, "InvalidInstanceId.NotFound"));

    ok(c.ecs(
        "DeleteSecurityGroup",
        &[("RegionId", REGION), ("SecurityGroupId", &sg_id)],
    )
    .await)
    .await;
    ok(c.vpc(
        "DeleteVSwitch",
        &[("RegionId", REGION), ("VSwitchId", &vsw_id)],
    )
    .await)
    .await;
    ok(
        c.vpc("DeleteVpc", &[("RegionId", REGION), ("VpcId", &vpc_id)])
            .await,
    )
    .await;
    assert_eq!(h.state().resource_count(), 0);

    let price = ok(c
        .ecs(
            "DescribePrice",
            &[
                ("RegionId", REGION),
                ("InstanceType", "ecs.g7.large"),
                ("PriceUnit", "Hour"),
            ],
        )
        .await)
    .await;
    assert!(price["PriceInfo"]["Price"]["TradePrice"].as_f64().unwrap() > 0.0);
    assert_eq!(price["PriceInfo"]["Price"]["Currency"], "CNY");
    h.shutdown().await;
}

#[tokio::test]
async fn quotas_stock_and_faults() {
    let (h, c) = emulator().await;
    let admin = reqwest::Client::new();
    let base = h.base_url();
    let quotas: Value = admin
        .put(format!("{base}/_emulator/quotas"))
        .json(&serde_json::json!({"vpcs": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quotas["vpcs"], 1);
    let vpc = ok(c
        .vpc(
            "CreateVpc",
            &[("RegionId", REGION), ("CidrBlock", "10.0.0.0/16")],
        )
        .await)
    .await;
    let (status, body) = c
        .vpc(
            "CreateVpc",
            &[("RegionId", REGION), ("CidrBlock", "10.1.0.0/16")],
        )
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "QuotaExceeded.Vpc"));
    let vpc_id = vpc["VpcId"].as_str().unwrap();
    ok(c.vpc(
        "TagResources",
        &[
            ("RegionId", REGION),
            ("ResourceType", "VPC"),
            ("ResourceId.1", vpc_id),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "a"),
        ],
    )
    .await)
    .await;
    let tagged = ok(c
        .vpc(
            "DescribeVpcs",
            &[
                ("RegionId", REGION),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "a"),
            ],
        )
        .await)
    .await;
    assert_eq!(tagged["TotalCount"], 1);
    ok(c.vpc(
        "UntagResources",
        &[
            ("RegionId", REGION),
            ("ResourceType", "VPC"),
            ("ResourceId.1", vpc_id),
            ("TagKey.1", "team"),
        ],
    )
    .await)
    .await;
    let tagged = ok(c
        .vpc(
            "DescribeVpcs",
            &[("RegionId", REGION), ("Tag.1.Key", "team")],
        )
        .await)
    .await;
    assert_eq!(tagged["TotalCount"], 0);
    let (status, body) = c
        .ecs(
            "TagResources",
            &[
                ("RegionId", REGION),
                ("ResourceType", "instance"),
                ("ResourceId.1", "i-missing"),
                ("Tag.1.Key", "k"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (404, "InvalidInstanceId.NotFound"));
    let vsw = ok(c
        .vpc(
            "CreateVSwitch",
            &[
                ("RegionId", REGION),
                ("VpcId", vpc_id),
                ("ZoneId", ZONE),
                ("CidrBlock", "10.0.1.0/24"),
            ],
        )
        .await)
    .await;
    let sg = ok(c
        .ecs(
            "CreateSecurityGroup",
            &[("RegionId", REGION), ("VpcId", vpc_id)],
        )
        .await)
    .await;

    h.state().set_stock(&[StockEntry {
        instance_type: "ecs.gn7i-c8g1.2xlarge".into(),
        zone: ZONE.into(),
        available: Some(0),
    }]);
    let run = [
        ("RegionId", REGION),
        ("InstanceType", "ecs.gn7i-c8g1.2xlarge"),
        ("ImageId", "img"),
        ("VSwitchId", vsw["VSwitchId"].as_str().unwrap()),
        ("SecurityGroupId", sg["SecurityGroupId"].as_str().unwrap()),
    ];
    let (status, body) = c.ecs("RunInstances", &run).await.unwrap();
    assert_eq!((status, code(&body)), (403, "OperationDenied.NoStock"));
    let stock: Value = admin.put(format!("{base}/_emulator/stock")).json(&serde_json::json!([{"instanceType": "ecs.gn7i-c8g1.2xlarge", "zone": ZONE, "available": null}])).send().await.unwrap().json().await.unwrap();
    assert_eq!(stock, serde_json::json!([]));
    ok(c.ecs("RunInstances", &run).await).await;

    h.state().set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    });
    let (status, body) = c
        .vpc("DescribeVpcs", &[("RegionId", REGION)])
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (400, "Throttling.User"));
    let faults: Value = admin.put(format!("{base}/_emulator/faults")).json(&serde_json::json!({"throttleRate": 0.0, "errorRate": 1.0, "actions": ["DescribeVpcs"]})).send().await.unwrap().json().await.unwrap();
    assert_eq!(faults["errorRate"], 1.0);
    let (status, body) = c
        .vpc("DescribeVpcs", &[("RegionId", REGION)])
        .await
        .unwrap();
    assert_eq!((status, code(&body)), (500, "InternalError"));
    ok(c.vpc("DescribeVSwitches", &[("RegionId", REGION)]).await).await;

    let calls: Value = admin
        .get(format!("{base}/_emulator/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["byAction"]["DescribeVpcs"], 4);
    let resources: Value = admin
        .get(format!("{base}/_emulator/resources"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resources["counts"]["instances"], 1);
    assert_eq!(resources["instances"][0]["passwordSet"], false);
    admin
        .post(format!("{base}/_emulator/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.state().resource_count(), 0);
    assert_eq!(h.state().faults(), Faults::default());
    h.shutdown().await;
}
