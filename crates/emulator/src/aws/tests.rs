use super::request::{Params, page, parse_pairs, tag_filter};
use super::*;

fn params(text: &str) -> Params {
    Params::from_pairs(&parse_pairs(text).unwrap())
}

#[test]
fn flattened_parameters_parse() {
    let p = params(
        "Action=RunInstances&InstanceId.2=i-b&InstanceId.1=i-a&Filter.1.Name=tag%3Aenv&Filter.1.Value.1=prod&Filter.1.Value.2=dev*\
         &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web\
         &IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&BlockDeviceMapping.1.Ebs.VolumeSize=100",
    );
    assert_eq!(p.list("InstanceId"), ["i-a", "i-b"]);
    let filters = p.filters().unwrap();
    assert_eq!(filters[0].name, "tag:env");
    let tags = Tags::from([("env".to_string(), "dev-1".to_string())]);
    assert_eq!(tag_filter(&tags, &filters[0]), Some(true));
    let specs = p.tag_specs(&["instance"]).unwrap();
    assert_eq!(specs["instance"]["Name"], "web");
    assert_eq!(
        p.groups("IpPermissions")[0].groups("IpRanges")[0].get("CidrIp"),
        Some("0.0.0.0/0")
    );
    assert_eq!(
        p.groups("BlockDeviceMapping")[0]
            .sub("Ebs")
            .int("VolumeSize")
            .unwrap(),
        Some(100)
    );
    assert_eq!(
        p.tag_specs(&["vpc"]).unwrap_err().code,
        "InvalidParameterValue"
    );
    assert!(p.top_level().contains("TagSpecification"));
    let reserved = params("Tag.1.Key=aws%3Aname&Tag.1.Value=x");
    assert_eq!(
        reserved.tags("Tag").unwrap_err().code,
        "InvalidParameterValue"
    );
}

#[test]
fn pages_and_tokens() {
    let items: Vec<u32> = (0..12).collect();
    let (first, next) = page(items.clone(), &params("MaxResults=5"), 5, 1000).unwrap();
    assert_eq!(first, [0, 1, 2, 3, 4]);
    let token = next.unwrap();
    let (second, next) = page(
        items.clone(),
        &Params::from_pairs(&[
            ("MaxResults".into(), "5".into()),
            ("NextToken".into(), token),
        ]),
        5,
        1000,
    )
    .unwrap();
    assert_eq!(second, [5, 6, 7, 8, 9]);
    assert!(next.is_some());
    assert_eq!(
        page(items.clone(), &params("MaxResults=4"), 5, 1000)
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
    assert_eq!(
        page(items, &params("NextToken=garbage"), 5, 1000)
            .unwrap_err()
            .code,
        "InvalidPaginationToken"
    );
}

#[test]
fn zones_and_ids() {
    assert_eq!(zone_id("us-east-1a"), "use1-az1");
    assert_eq!(zone_id("ap-northeast-1c"), "apne1-az3");
    assert_eq!(zones("us-west-2").len(), 4);
    let id = new_id("igw");
    assert_eq!(id.len(), "igw-".len() + 17);
    assert!(instance_type_info("p4d.24xlarge").is_some_and(|t| t.gpus == 8));
}

#[test]
fn run_instances_asks_for_every_resource_and_tag_on_create() {
    let m = Model::new(crate::model::ModelSettings::default());
    let f = FrontState::default();
    let p = params(
        "ImageId=ami-0c7217cdde317cfec&SubnetId=subnet-1&SecurityGroupId.1=sg-1&KeyName=k\
         &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=createdBy&TagSpecification.1.Tag.1.Value=multicloud-ecs",
    );
    let calls = iam_calls(&m, &f, "us-east-1", "RunInstances", &p);
    assert_eq!(calls.len(), 2);
    let arns: Vec<&str> = calls[0].resources.iter().map(|r| r.arn.as_str()).collect();
    assert!(arns.contains(&"arn:aws:ec2:us-east-1:123456789012:instance/*"));
    assert!(arns.contains(&"arn:aws:ec2:us-east-1:123456789012:subnet/subnet-1"));
    assert!(arns.contains(&"arn:aws:ec2:us-east-1::image/ami-0c7217cdde317cfec"));
    assert!(arns.contains(&"arn:aws:ec2:us-east-1:123456789012:key-pair/k"));
    assert_eq!(calls[1].action, "ec2:CreateTags");
    assert_eq!(calls[1].create_action.as_deref(), Some("RunInstances"));
    let describe = iam_calls(&m, &f, "us-east-1", "DescribeVpcs", &params(""));
    assert_eq!(describe[0].resources[0].arn, "*");
}

#[test]
fn model_errors_map_to_ec2_codes() {
    let cases = [
        (
            ModelError::IdempotencyMismatch,
            "IdempotentParameterMismatch",
            400,
        ),
        (
            ModelError::NoStock {
                instance_type: "p4d.24xlarge".into(),
                zone: "us-east-1a".into(),
            },
            "InsufficientInstanceCapacity",
            500,
        ),
        (
            ModelError::Quota(Kind::Instance),
            "InstanceLimitExceeded",
            400,
        ),
        (
            ModelError::SubnetFull("subnet-1".into()),
            "InsufficientFreeAddressesInSubnet",
            400,
        ),
        (
            ModelError::NotFound {
                kind: Kind::Instance,
                id: "i-1".into(),
            },
            "InvalidInstanceID.NotFound",
            400,
        ),
    ];
    for (e, code, status) in cases {
        let api = ApiError::from_model(e);
        assert_eq!((api.code.as_str(), api.status), (code, status));
    }
}
