//! The permission probe: which CAM actions the operator needs that the credentials lack, found
//! without effect (a DryRun RunInstances, one-item reads). `deploy/policies/tencent-cam-policy.json`
//! grants them all.

use mce_cloud::{CloudResult, ErrorClass, Tags};
use serde_json::{Value, json};

use crate::{Service, TencentDriver, set_page};

/// Whether an error code is CAM refusing the call. The VPC codes `UnauthorizedOperation.*`
/// about attachments and peerings are not about permissions.
pub fn is_permission_denied(code: &str) -> bool {
    matches!(
        code,
        "UnauthorizedOperation"
            | "UnauthorizedOperation.PermissionDenied"
            | "UnauthorizedOperation.CamNoAuth"
            | "AuthFailure.UnauthorizedOperation"
    )
}

/// A one-item page (VPC's Describe calls take Offset/Limit as strings).
fn page(as_strings: bool) -> Value {
    let mut body = json!({});
    set_page(&mut body, 0, 1, as_strings);
    body
}

/// One check: the CAM action, and the call that proves it.
fn checks(tags: &Tags) -> Vec<(&'static str, Service, &'static str, Value)> {
    let tag_list: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    let run = json!({
        "DryRun": true,
        "TagSpecification": [{"ResourceType": "instance", "Tags": tag_list}],
    });
    vec![
        (
            "cvm:DescribeRegions",
            Service::Cvm,
            "DescribeRegions",
            json!({}),
        ),
        (
            "cvm:DescribeInstances",
            Service::Cvm,
            "DescribeInstances",
            page(false),
        ),
        ("vpc:DescribeVpcs", Service::Vpc, "DescribeVpcs", page(true)),
        (
            "vpc:DescribeSubnets",
            Service::Vpc,
            "DescribeSubnets",
            page(true),
        ),
        (
            "vpc:DescribeSecurityGroups",
            Service::Vpc,
            "DescribeSecurityGroups",
            page(true),
        ),
        (
            "vpc:DescribeAddresses",
            Service::Vpc,
            "DescribeAddresses",
            page(false),
        ),
        ("cvm:RunInstances", Service::Cvm, "RunInstances", run),
    ]
}

/// Runs every check. CAM authorizes before the API validates, so any answer but a permission
/// denial — `DryRunOperation`, or a parameter error of the deliberately minimal DryRun
/// request — proves the permission. Credentials the cloud rejects fail the whole probe.
pub async fn probe_permissions(
    driver: &TencentDriver,
    region: &str,
    tags: &Tags,
) -> CloudResult<Vec<String>> {
    let mut missing = Vec::new();
    for (permission, service, action, body) in checks(tags) {
        match driver.call::<Value>(service, region, action, &body).await {
            Ok(_) => {}
            Err(e) if is_permission_denied(&e.code) => missing.push(permission.to_string()),
            Err(e) if e.is(ErrorClass::Authentication) || e.class.is_transport_retryable() => {
                return Err(e);
            }
            Err(_) => {}
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_told_from_bad_credentials() {
        assert!(is_permission_denied("UnauthorizedOperation"));
        assert!(!is_permission_denied(
            "UnauthorizedOperation.AttachmentNotFound"
        ));
        assert!(!is_permission_denied("AuthFailure.SecretIdNotFound"));
    }

    #[test]
    fn the_dry_run_carries_the_tags() {
        let tags: Tags = [("createdBy".to_string(), "multicloud-ecs".to_string())].into();
        let all = checks(&tags);
        let run = &all.iter().find(|c| c.2 == "RunInstances").unwrap().3;
        assert_eq!(run["DryRun"], true);
        assert_eq!(run["TagSpecification"][0]["Tags"][0]["Key"], "createdBy");
    }
}
