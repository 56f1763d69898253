//! Alibaba Cloud error codes → provider-neutral [`ErrorClass`].

use mce_cloud::ErrorClass;

/// Classifies an Alibaba Cloud error code (with the HTTP status it came with).
///
/// Known codes come from the error table in the cloud API reference; families are matched
/// by prefix/suffix (`Throttling.*`, `QuotaExceeded.*`, `DependencyViolation.*`,
/// `Invalid*Id.NotFound`, `Incorrect*Status`). Unknown codes fall back on the status:
/// 429 → [`ErrorClass::Throttled`], 5xx → [`ErrorClass::Transient`], other 4xx →
/// [`ErrorClass::InvalidParameter`]; with no usable status, [`ErrorClass::Transient`].
pub fn classify(code: &str, http_status: u16) -> ErrorClass {
    match code {
        // Authentication first: `InvalidAccessKeyId.NotFound` must not read as NotFound.
        "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidAccessKeyId"
        | "InvalidAccessKeyId.NotFound"
        | "InvalidAccessKeyId.Inactive"
        | "InvalidTimeStamp.Expired"
        | "InvalidTimeStamp.Format"
        | "SignatureNonceUsed"
        | "InvalidSecurityToken.Expired"
        | "InvalidSecurityToken.MismatchWithAccessKey"
        | "InvalidSecurityToken.Malformed"
        | "Forbidden.RAM"
        | "Forbidden.AccessKeyDisabled" => return ErrorClass::Authentication,
        "Throttling" | "Throttling.User" | "Throttling.Api" | "ServiceUnavailable" => {
            return ErrorClass::Throttled;
        }
        "QuotaExceeded.Vpc"
        | "QuotaExceeded.Eip"
        // JoinSecurityGroup: the instance is in its maximum of groups (5 by default), or the
        // group holds its maximum of instances.
        | "InstanceSecurityGroupLimitExceeded"
        | "SecurityGroupInstanceLimitExceeded"
        | "QuotaExceed.ElasticQuota"
        | "AuthorizationLimitExceed"
        // TagResources/RunInstances: the resource already has its maximum of tags.
        | "OperationDenied.QuotaExceed" => {
            return ErrorClass::QuotaExceeded;
        }
        "InvalidInstanceId.NotFound"
        | "InvalidVpcId.NotFound"
        | "InvalidVSwitchId.NotFound"
        | "InvalidSecurityGroupId.NotFound"
        | "InvalidAllocationId.NotFound"
        // TagResources/UntagResources: an unknown ResourceId.N.
        | "InvalidResourceId.NotFound" => return ErrorClass::NotFound,
        "DependencyViolation"
        | "DependencyViolation.VSwitch"
        | "DependencyViolation.SecurityGroup"
        | "DependencyViolation.Instance" => return ErrorClass::DependencyViolation,
        "OperationDenied.NoStock" | "Zone.NotOnSale" | "InstanceType.Offline" => {
            return ErrorClass::OutOfStock;
        }
        // The VSwitch has no free address: the network's capacity, not the request.
        "InvalidVSwitchId.IpNotEnough" => return ErrorClass::SubnetFull,
        "InvalidParameter"
        | "InvalidInstanceType.ValueNotSupported"
        // JoinSecurityGroup: the instance and the group are not in the same VPC.
        | "InvalidInstanceId.Mismatch"
        | "MissingParameter"
        // TagResources/UntagResources request errors (some come with HTTP 404).
        | "NumberExceed.Tags"
        | "NumberExceed.ResourceIds"
        | "Duplicate.TagKey"
        | "InvalidTagKey.Malformed"
        | "InvalidTagValue.Malformed"
        | "InvalidTagCount"
        | "InvalidResourceType.NotFound"
        | "InvalidResourceId.NotSupported" => {
            return ErrorClass::InvalidParameter;
        }
        "IncorrectInstanceStatus" | "IncorrectEipStatus" => return ErrorClass::WrongState,
        "IdempotentParameterMismatch" | "IdempotenceParamNotMatch" => {
            return ErrorClass::IdempotencyMismatch;
        }
        "InternalError"
        | "UnknownError"
        | "OperationFailed.LastTokenProcessing"
        | "LastTokenProcessing" => {
            return ErrorClass::Transient;
        }
        _ => {}
    }
    // Families.
    if code.starts_with("Throttling.") {
        return ErrorClass::Throttled;
    }
    if code.starts_with("QuotaExceeded") || code.starts_with("QuotaExceed.") {
        return ErrorClass::QuotaExceeded;
    }
    if code.starts_with("DependencyViolation.") {
        return ErrorClass::DependencyViolation;
    }
    if code.starts_with("InvalidAccessKeyId.") || code.starts_with("InvalidSecurityToken.") {
        return ErrorClass::Authentication;
    }
    if code.starts_with("Invalid") && code.ends_with("Id.NotFound") {
        return ErrorClass::NotFound;
    }
    if code.starts_with("Incorrect") && code.contains("Status") {
        return ErrorClass::WrongState;
    }
    if code.starts_with("InvalidParameter.") || code.starts_with("MissingParameter") {
        return ErrorClass::InvalidParameter;
    }
    match http_status {
        429 => ErrorClass::Throttled,
        500..=599 => ErrorClass::Transient,
        400..=499 => ErrorClass::InvalidParameter,
        _ => ErrorClass::Transient,
    }
}

/// A rule that already exists (older AuthorizeSecurityGroup behaviour): counts as success.
pub fn is_duplicate_rule(code: &str) -> bool {
    code == "InvalidPermission.Duplicate"
        || code.ends_with(".Duplicate")
        || code.contains("DuplicateRule")
}

/// JoinSecurityGroup's answer for an instance already in the group (HTTP 403): counts as
/// success.
pub fn is_already_in_group(code: &str) -> bool {
    code == "InvalidInstanceId.AlreadyExists"
}

/// A rule that does not exist (RevokeSecurityGroup): counts as success.
pub fn is_missing_rule(code: &str) -> bool {
    matches!(
        code,
        "InvalidPermission.NotFound"
            | "InvalidSecurityGroupRule.RuleNotExist"
            | "InvalidPermission.NotExist"
    ) || code.ends_with("RuleNotExist")
        || code.ends_with("RuleNotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Alibaba code in the reference table, with its class.
    const TABLE: &[(&str, ErrorClass)] = &[
        ("Throttling", ErrorClass::Throttled),
        ("Throttling.User", ErrorClass::Throttled),
        ("Throttling.Api", ErrorClass::Throttled),
        ("ServiceUnavailable", ErrorClass::Throttled),
        ("QuotaExceeded.Vpc", ErrorClass::QuotaExceeded),
        ("QuotaExceeded.Eip", ErrorClass::QuotaExceeded),
        ("QuotaExceed.ElasticQuota", ErrorClass::QuotaExceeded),
        ("AuthorizationLimitExceed", ErrorClass::QuotaExceeded),
        ("InvalidInstanceId.NotFound", ErrorClass::NotFound),
        ("InvalidVpcId.NotFound", ErrorClass::NotFound),
        ("InvalidVSwitchId.NotFound", ErrorClass::NotFound),
        ("InvalidSecurityGroupId.NotFound", ErrorClass::NotFound),
        ("InvalidAllocationId.NotFound", ErrorClass::NotFound),
        ("InvalidResourceId.NotFound", ErrorClass::NotFound),
        ("OperationDenied.QuotaExceed", ErrorClass::QuotaExceeded),
        ("NumberExceed.Tags", ErrorClass::InvalidParameter),
        ("Duplicate.TagKey", ErrorClass::InvalidParameter),
        ("InvalidTagCount", ErrorClass::InvalidParameter),
        ("InvalidResourceType.NotFound", ErrorClass::InvalidParameter),
        (
            "DependencyViolation.VSwitch",
            ErrorClass::DependencyViolation,
        ),
        (
            "DependencyViolation.SecurityGroup",
            ErrorClass::DependencyViolation,
        ),
        (
            "DependencyViolation.Instance",
            ErrorClass::DependencyViolation,
        ),
        ("DependencyViolation", ErrorClass::DependencyViolation),
        ("OperationDenied.NoStock", ErrorClass::OutOfStock),
        ("Zone.NotOnSale", ErrorClass::OutOfStock),
        ("InstanceType.Offline", ErrorClass::OutOfStock),
        ("InvalidParameter", ErrorClass::InvalidParameter),
        (
            "InvalidInstanceType.ValueNotSupported",
            ErrorClass::InvalidParameter,
        ),
        ("MissingParameter", ErrorClass::InvalidParameter),
        (
            "InstanceSecurityGroupLimitExceeded",
            ErrorClass::QuotaExceeded,
        ),
        (
            "SecurityGroupInstanceLimitExceeded",
            ErrorClass::QuotaExceeded,
        ),
        ("InvalidInstanceId.Mismatch", ErrorClass::InvalidParameter),
        ("IncorrectInstanceStatus", ErrorClass::WrongState),
        ("IncorrectEipStatus", ErrorClass::WrongState),
        // Signature section.
        ("SignatureDoesNotMatch", ErrorClass::Authentication),
        ("InvalidAccessKeyId.NotFound", ErrorClass::Authentication),
        ("InvalidTimeStamp.Expired", ErrorClass::Authentication),
        ("SignatureNonceUsed", ErrorClass::Authentication),
        // ClientToken section.
        (
            "IdempotentParameterMismatch",
            ErrorClass::IdempotencyMismatch,
        ),
    ];

    #[test]
    fn every_table_code_is_classified_whatever_the_status() {
        for (code, class) in TABLE {
            for status in [400, 403, 404, 409, 500, 503] {
                assert_eq!(classify(code, status), *class, "{code} with HTTP {status}");
            }
        }
    }

    #[test]
    fn families_are_matched() {
        assert_eq!(classify("Throttling.Resource", 400), ErrorClass::Throttled);
        assert_eq!(
            classify("QuotaExceeded.Instance", 403),
            ErrorClass::QuotaExceeded
        );
        assert_eq!(
            classify("DependencyViolation.EniInstance", 400),
            ErrorClass::DependencyViolation
        );
        assert_eq!(
            classify("InvalidRouteTableId.NotFound", 404),
            ErrorClass::NotFound
        );
        assert_eq!(classify("IncorrectVpcStatus", 400), ErrorClass::WrongState);
        assert_eq!(
            classify("InvalidParameter.Bandwidth", 400),
            ErrorClass::InvalidParameter
        );
        assert_eq!(
            classify("InvalidAccessKeyId.Inactive", 400),
            ErrorClass::Authentication
        );
    }

    #[test]
    fn unknown_codes_fall_back_on_status() {
        assert_eq!(classify("SomethingNew", 500), ErrorClass::Transient);
        assert_eq!(classify("SomethingNew", 503), ErrorClass::Transient);
        assert_eq!(classify("SomethingNew", 400), ErrorClass::InvalidParameter);
        assert_eq!(classify("SomethingNew", 404), ErrorClass::InvalidParameter);
        assert_eq!(classify("", 429), ErrorClass::Throttled);
        assert_eq!(classify("", 502), ErrorClass::Transient);
    }

    #[test]
    fn rule_codes() {
        assert!(is_duplicate_rule("InvalidPermission.Duplicate"));
        assert!(!is_duplicate_rule("InvalidParameter"));
        assert!(is_missing_rule("InvalidSecurityGroupRule.RuleNotExist"));
        assert!(is_missing_rule("InvalidPermission.NotFound"));
        assert!(!is_missing_rule("InvalidSecurityGroupId.NotFound"));
        assert!(is_already_in_group("InvalidInstanceId.AlreadyExists"));
        assert!(!is_already_in_group("InvalidInstanceId.NotFound"));
    }
}
