//! The permission probe: which RAM actions the operator needs that the credentials lack, found
//! without effect (DryRun creates, one-item reads). `deploy/policies/aliyun-ram-policy.json`
//! grants them all.

use mce_cloud::{CloudResult, ErrorClass, Tags};

use crate::{AliyunDriver, Params, Service};

/// Whether an error code is RAM refusing the call (as opposed to the credentials being wrong).
pub fn is_permission_denied(code: &str) -> bool {
    matches!(
        code,
        "Forbidden.RAM" | "NoPermission" | "Forbidden.NoPermission"
    )
}

/// One check: the RAM action, and the call that proves it.
fn checks(tags: &Tags) -> Vec<(&'static str, Service, &'static str, Params)> {
    let page = || Params::new().with("PageNumber", 1).with("PageSize", 1);
    let mut run = Params::new().with("DryRun", "true").with("Amount", 1);
    run.tags(tags);
    let mut vpc = Params::new()
        .with("DryRun", "true")
        .with("CidrBlock", "172.16.0.0/12");
    vpc.tags(tags);
    vec![
        (
            "ecs:DescribeRegions",
            Service::Ecs,
            "DescribeRegions",
            Params::new(),
        ),
        (
            "ecs:DescribeInstances",
            Service::Ecs,
            "DescribeInstances",
            Params::new().with("MaxResults", 1),
        ),
        (
            "ecs:DescribeSecurityGroups",
            Service::Ecs,
            "DescribeSecurityGroups",
            page(),
        ),
        ("vpc:DescribeVpcs", Service::Vpc, "DescribeVpcs", page()),
        (
            "vpc:DescribeVSwitches",
            Service::Vpc,
            "DescribeVSwitches",
            page(),
        ),
        (
            "vpc:DescribeEipAddresses",
            Service::Vpc,
            "DescribeEipAddresses",
            page(),
        ),
        ("ecs:RunInstances", Service::Ecs, "RunInstances", run),
        ("vpc:CreateVpc", Service::Vpc, "CreateVpc", vpc),
    ]
}

/// Runs every check. RAM authorizes before the API validates, so any answer but a permission
/// denial — `DryRunOperation`, or a parameter error of the deliberately minimal DryRun
/// request — proves the permission. Credentials the cloud rejects fail the whole probe.
pub async fn probe_permissions(
    driver: &AliyunDriver,
    region: &str,
    tags: &Tags,
) -> CloudResult<Vec<String>> {
    let mut missing = Vec::new();
    for (permission, service, action, params) in checks(tags) {
        match driver
            .call::<serde_json::Value>(service, region, action, params)
            .await
        {
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
        assert!(is_permission_denied("Forbidden.RAM"));
        assert!(is_permission_denied("NoPermission"));
        assert!(!is_permission_denied("InvalidAccessKeyId.NotFound"));
        assert!(!is_permission_denied("SignatureDoesNotMatch"));
    }

    #[test]
    fn dry_runs_carry_the_tags() {
        let tags: Tags = [("createdBy".to_string(), "multicloud-ecs".to_string())].into();
        let all = checks(&tags);
        let run = &all.iter().find(|c| c.2 == "RunInstances").unwrap().3;
        let pairs = run.pairs();
        assert!(pairs.contains(&("DryRun".to_string(), "true".to_string())));
        assert!(pairs.contains(&("Tag.1.Key".to_string(), "createdBy".to_string())));
    }
}
