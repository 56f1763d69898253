//! The permission probe: which IAM actions the operator needs that the credentials lack,
//! found without effect. EC2 checks IAM before anything else on `DryRun=true`: the answer
//! `DryRunOperation` (HTTP 412) means allowed, `UnauthorizedOperation` means missing. Creates
//! are dry-run with the operator's tags, so tag-conditioned grants count.

use mce_cloud::{CloudResult, ErrorClass, Tags};

use crate::wire::Params;
use crate::{AwsDriver, errors};

/// One check: the IAM action, the EC2 action and its parameters (DryRun added by the probe).
pub fn checks(tags: &Tags) -> Vec<(&'static str, &'static str, Params)> {
    let describe = |action: &'static str| (action, Params::new());
    let mut run = Params::new()
        .with("ImageId", "ami-00000000000000000")
        .with("InstanceType", "t3.micro")
        .with("MinCount", "1")
        .with("MaxCount", "1");
    run.tag_specification("instance", tags);
    let mut vpc = Params::new().with("CidrBlock", "172.16.0.0/12");
    vpc.tag_specification("vpc", tags);
    let mut eip = Params::new().with("Domain", "vpc");
    eip.tag_specification("elastic-ip", tags);
    let mut igw = Params::new();
    igw.tag_specification("internet-gateway", tags);
    let reads = [
        "DescribeAvailabilityZones",
        "DescribeInstances",
        "DescribeVpcs",
        "DescribeSubnets",
        "DescribeSecurityGroups",
        "DescribeAddresses",
        "DescribeInternetGateways",
        "DescribeRouteTables",
        "DescribeImages",
    ];
    let mut out: Vec<(&'static str, &'static str, Params)> = reads
        .iter()
        .map(|a| {
            let (action, params) = describe(a);
            (iam_name(action), action, params)
        })
        .collect();
    out.push(("ec2:RunInstances", "RunInstances", run));
    out.push(("ec2:CreateVpc", "CreateVpc", vpc));
    out.push(("ec2:AllocateAddress", "AllocateAddress", eip));
    out.push(("ec2:CreateInternetGateway", "CreateInternetGateway", igw));
    out
}

fn iam_name(action: &str) -> &'static str {
    match action {
        "DescribeAvailabilityZones" => "ec2:DescribeAvailabilityZones",
        "DescribeInstances" => "ec2:DescribeInstances",
        "DescribeVpcs" => "ec2:DescribeVpcs",
        "DescribeSubnets" => "ec2:DescribeSubnets",
        "DescribeSecurityGroups" => "ec2:DescribeSecurityGroups",
        "DescribeAddresses" => "ec2:DescribeAddresses",
        "DescribeInternetGateways" => "ec2:DescribeInternetGateways",
        "DescribeRouteTables" => "ec2:DescribeRouteTables",
        _ => "ec2:DescribeImages",
    }
}

/// Runs every check. Any answer but a denial — `DryRunOperation`, success from an endpoint
/// that ignores DryRun, a parameter error of the deliberately minimal request — proves the
/// permission; credentials the cloud rejects fail the whole probe.
pub async fn probe_permissions(
    driver: &AwsDriver,
    region: &str,
    tags: &Tags,
) -> CloudResult<Vec<String>> {
    let mut missing = Vec::new();
    for (permission, action, params) in checks(tags) {
        let params = params.with("DryRun", "true");
        match driver.call(region, action, &params).await {
            Ok(_) => {}
            Err(e) if errors::is_dry_run_ok(&e.code) => {}
            Err(e) if errors::is_permission_denied(&e.code) => {
                let named = denied_action(&e.message).unwrap_or(permission).to_string();
                if !missing.contains(&named) {
                    missing.push(named);
                }
            }
            Err(e) if e.is(ErrorClass::Authentication) || e.class.is_transport_retryable() => {
                return Err(e);
            }
            Err(_) => {}
        }
    }
    Ok(missing)
}

/// The IAM action a denial names ("... is not authorized to perform: ec2:CreateTags on
/// resource: ..."), which is not always the one dry-run: a create with tags is refused for
/// `ec2:CreateTags` when tag-on-create is not granted.
fn denied_action(message: &str) -> Option<&str> {
    let rest = message.split("not authorized to perform: ").nth(1)?;
    let action = rest.split_whitespace().next()?;
    action.contains(':').then_some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_are_dry_run_with_the_tags() {
        let tags: Tags = [("createdBy".to_string(), "multicloud-ecs".to_string())].into();
        let all = checks(&tags);
        let run = &all.iter().find(|c| c.1 == "RunInstances").unwrap().2;
        assert_eq!(run.get("TagSpecification.1.ResourceType"), Some("instance"));
        assert_eq!(run.get("TagSpecification.1.Tag.1.Key"), Some("createdBy"));
        let names: Vec<&str> = all.iter().map(|c| c.0).collect();
        assert!(names.contains(&"ec2:DescribeRouteTables"));
        assert!(names.contains(&"ec2:AllocateAddress"));
        assert_eq!(names.len(), 13);
    }

    #[test]
    fn a_denial_names_the_refused_action() {
        let m = "You are not authorized to perform this operation. User: arn:aws:iam::1:user/u is \
                 not authorized to perform: ec2:CreateTags on resource: arn:aws:ec2:r:1:vpc/* \
                 because no identity-based policy allows the action.";
        assert_eq!(denied_action(m), Some("ec2:CreateTags"));
        assert_eq!(
            denied_action("You are not authorized to perform this operation."),
            None
        );
    }
}
