//! Tencent Cloud error codes → provider-neutral [`ErrorClass`].

use mce_cloud::ErrorClass;

/// Classifies a Tencent Cloud error code (`Response.Error.Code`). Tencent answers errors with
/// HTTP 200, so the status only matters for the transport's own failures (no code).
///
/// Known codes are those of the official SDK's `errorcodes.py` (cvm/vpc 2017-03-12, tag/sts
/// 2018-08-13) the driver can meet; families are matched by prefix (`AuthFailure.*`,
/// `ResourceInsufficient.*`, `LimitExceeded.*`, `ResourceNotFound.*`, `Invalid*.NotFound`, ...).
/// An unknown code with HTTP 200 is the request's fault ([`ErrorClass::InvalidParameter`]), like
/// an unknown 4xx on Alibaba; without a code, 429 → Throttled and anything else → Transient.
pub fn classify(code: &str, http_status: u16) -> ErrorClass {
    if code.is_empty() {
        return match http_status {
            429 => ErrorClass::Throttled,
            400..=499 if http_status != 408 => ErrorClass::InvalidParameter,
            _ => ErrorClass::Transient,
        };
    }
    match code {
        // VPC `UnauthorizedOperation.*` codes that are not about credentials.
        "UnauthorizedOperation.AttachmentNotFound" => return ErrorClass::NotFound,
        "UnauthorizedOperation.PrimaryIp" | "UnauthorizedOperation.VpcPeerCidrConflict" => {
            return ErrorClass::InvalidParameter;
        }
        // No free address left in the subnet: a capacity problem of the network, as Alibaba's
        // `InvalidVSwitchId.IpNotEnough`. CVM RunInstances answers
        // `FailedOperation.NoAvailableIpAddressCountInSubnet` or `LimitExceeded.VpcSubnetNum`
        // ("子网IP不足"), VPC `ResourceInsufficient.Subnet` / `ResourceInsufficient.CidrBlock`.
        c if is_subnet_exhausted(c) => return ErrorClass::SubnetFull,
        _ => {}
    }
    // Authentication first: `AuthFailure.SecretIdNotFound` must not read as NotFound.
    if code == "AuthFailure"
        || code.starts_with("AuthFailure.")
        || code == "UnauthorizedOperation"
        || code.starts_with("UnauthorizedOperation.")
    {
        return ErrorClass::Authentication;
    }
    match code {
        // `LimitExceeded.ActionLimited` (VPC) and STS `InvalidParameter.OverLimit` are rate
        // limits, not quotas: before the families below.
        "RequestLimitExceeded" | "LimitExceeded.ActionLimited" | "InvalidParameter.OverLimit" => {
            return ErrorClass::Throttled;
        }
        "AddressQuotaLimitExceeded"
        | "InstancesQuotaLimitExceeded"
        | "ImageQuotaLimitExceeded"
        | "VpcLimitExceeded"
        | "OverQuota"
        | "InvalidKeyPair.LimitExceeded"
        | "InvalidParameterValue.TagQuotaLimitExceeded"
        | "InvalidParameterValue.ExternalIpQuotaLimited"
        | "ResourceInsufficient.DisasterRecoverGroupCvmQuota"
        | "ResourceInsufficient.InsufficientGroupQuota"
        | "UnsupportedOperation.InsufficientClusterQuota"
        | "UnsupportedOperation.UserLimitOperationExceedQuota"
        // Not enough balance: the account must be topped up, then the same call succeeds.
        | "InvalidAccount.InsufficientBalance"
        | "FailedOperation.BalanceInsufficient"
        | "UnsupportedOperation.InsufficientFunds" => return ErrorClass::QuotaExceeded,
        // `LimitExceeded.*` codes that are about one request, not an account quota.
        "LimitExceeded.NumberOfFilters"
        | "LimitExceeded.TagNumPerRequest"
        | "LimitExceeded.ResourceNumPerRequest"
        | "LimitExceeded.InstanceTypeBandwidth" => return ErrorClass::InvalidParameter,
        "ResourceNotFound"
        | "InvalidInstanceId.NotFound"
        | "InvalidParameterValue.AddressNotFound"
        | "InvalidParameterValue.AddressIpNotFound"
        | "InvalidParameterValue.SubnetNotExist"
        | "InvalidParameterValue.VpcIdNotExist"
        | "UnsupportedOperation.SubnetNotExists" => return ErrorClass::NotFound,
        // A region that does not exist is a wrong request, not a deleted resource.
        "InvalidRegion.NotFound" => return ErrorClass::InvalidParameter,
        "ResourceInUse" | "DependencyViolation" => return ErrorClass::DependencyViolation,
        // The instance type is not offered in this zone now: try elsewhere, like no stock.
        "ResourceUnavailable.InstanceType"
        | "ResourceNotFound.InvalidZoneInstanceType"
        | "ResourceNotFound.NoDefaultCbs"
        | "ResourceNotFound.NoDefaultCbsWithReason"
        | "InvalidParameterValue.InsufficientOffering"
        | "InvalidParameter.InvalidCloudDiskSoldOut"
        | "ResourceInsufficient" => {
            return ErrorClass::OutOfStock;
        }
        // 云盘参数不符合规范: the disk parameters are wrong, not sold out.
        "ResourceInsufficient.CloudDiskUnavailable" => return ErrorClass::InvalidParameter,
        "IncorrectStatus"
        | "InvalidAddressState"
        | "InvalidAddressIdStatus.NotPermit"
        | "InvalidInstanceState"
        | "InvalidParameterValue.InvalidInstanceState"
        | "UnsupportedOperation.AddressIpInArrear"
        | "UnsupportedOperation.BindEIP"
        | "UnsupportedOperation.UnbindEIP"
        | "UnsupportedOperation.ResourceProcessing"
        // DeleteSecurityGroupPolicies pinned to a Version that moved on: read again, retry.
        | "UnsupportedOperation.VersionMismatch"
        // AssociateSecurityGroups while another task of the instance runs: retry later.
        | "MutexOperation.TaskRunning"
        | "FailedOperation.InvalidImageState"
        | "InvalidParameterValue.InvalidImageState" => {
            return ErrorClass::WrongState;
        }
        "UnsupportedOperation.IdempotentParameterMismatch" => {
            return ErrorClass::IdempotencyMismatch;
        }
        "InvalidParameter"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "UnknownParameter"
        | "InvalidClientToken.TooLong"
        | "UnsupportedOperation.DuplicatePolicy" => return ErrorClass::InvalidParameter,
        "InternalError"
        | "InternalServerError"
        | "ServiceUnavailable"
        // 先前的幂等请求仍在处理中，请稍后重试: the first call with this token is still running.
        | "UnsupportedOperation.IdempotentProcessing" => {
            return ErrorClass::Transient;
        }
        _ => {}
    }
    if code.starts_with("RequestLimitExceeded.") {
        return ErrorClass::Throttled;
    }
    if code.starts_with("ResourceInsufficient.")
        || code.starts_with("ResourcesSoldOut.")
        || code.ends_with("SoldOut")
    {
        return ErrorClass::OutOfStock;
    }
    if code.starts_with("LimitExceeded") || code.starts_with("AddressQuotaLimitExceeded") {
        return ErrorClass::QuotaExceeded;
    }
    if code.starts_with("ResourceNotFound.")
        || (code.starts_with("Invalid") && code.ends_with(".NotFound"))
    {
        return ErrorClass::NotFound;
    }
    if code.starts_with("ResourceInUse.") || code.starts_with("DependencyViolation.") {
        return ErrorClass::DependencyViolation;
    }
    // `UnsupportedOperation.InstanceStateRunning`, `OperationDenied.InstanceOperationInProgress`,
    // `InvalidAddressIdState.InArrears`, `UnsupportedOperation.AddressStatusNotPermit` ...
    let about_state = code.contains("State")
        || code.contains("Status")
        || code.contains("InProgress")
        || code.contains("Arrears")
        || code.contains("MutexTask");
    if about_state
        && (code.starts_with("UnsupportedOperation.")
            || code.starts_with("OperationDenied.")
            || code.starts_with("Incorrect")
            || code.starts_with("InvalidAddress")
            || code.starts_with("InvalidInstanceState"))
    {
        return ErrorClass::WrongState;
    }
    if code.starts_with("InternalError.") {
        return ErrorClass::Transient;
    }
    match http_status {
        429 => ErrorClass::Throttled,
        500..=599 => ErrorClass::Transient,
        // `InvalidParameter*`, `MissingParameter*`, `UnsupportedOperation.*`,
        // `OperationDenied.*` not about state (`AccountNotSupported`), `FailedOperation.*`...
        _ => ErrorClass::InvalidParameter,
    }
}

/// The subnet (or the VPC's address range) has no free private address left.
pub fn is_subnet_exhausted(code: &str) -> bool {
    matches!(
        code,
        "FailedOperation.NoAvailableIpAddressCountInSubnet"
            | "LimitExceeded.VpcSubnetNum"
            | "ResourceInsufficient.Subnet"
            | "ResourceInsufficient.CidrBlock"
    )
}

/// CreateSecurityGroupPolicies: the rule already exists (counts as success).
pub fn is_duplicate_rule(code: &str) -> bool {
    code == "UnsupportedOperation.DuplicatePolicy"
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn reference_table() {
        let table: &[(&str, ErrorClass)] = &[
            ("RequestLimitExceeded", Throttled),
            ("RequestLimitExceeded.UinLimitExceeded", Throttled),
            ("LimitExceeded.ActionLimited", Throttled),
            ("LimitExceeded.CvmInstanceQuota", QuotaExceeded),
            ("LimitExceeded.InstanceQuota", QuotaExceeded),
            ("AddressQuotaLimitExceeded", QuotaExceeded),
            ("LimitExceeded.SecurityGroupPolicySet", QuotaExceeded),
            ("InvalidInstanceId.NotFound", NotFound),
            ("ResourceNotFound", NotFound),
            ("ResourceNotFound.NoSecurityGroup", NotFound),
            ("InvalidVpcId.NotFound", NotFound),
            ("InvalidSecurityGroupID.NotFound", NotFound),
            ("InvalidAddressId.NotFound", NotFound),
            ("ResourceInUse", DependencyViolation),
            ("DependencyViolation", DependencyViolation),
            ("ResourceInsufficient.SpecifiedInstanceType", OutOfStock),
            ("ResourcesSoldOut.SpecifiedInstanceType", OutOfStock),
            (
                "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance",
                OutOfStock,
            ),
            ("ResourceInsufficient.CloudDiskSoldOut", OutOfStock),
            ("InvalidParameter", InvalidParameter),
            ("InvalidParameter.Coexist", InvalidParameter),
            ("InvalidParameterValue.Range", InvalidParameter),
            ("MissingParameter", InvalidParameter),
            ("InvalidClientToken.TooLong", InvalidParameter),
            ("UnsupportedOperation.DuplicatePolicy", InvalidParameter),
            ("UnsupportedOperation.InstanceStateRunning", WrongState),
            ("UnsupportedOperation.InstanceStatePending", WrongState),
            ("InvalidAddressIdStatus.NotPermit", WrongState),
            ("InvalidAddressState", WrongState),
            ("IncorrectStatus", WrongState),
            ("OperationDenied.InstanceOperationInProgress", WrongState),
            ("AuthFailure.SignatureFailure", Authentication),
            ("AuthFailure.SignatureExpire", Authentication),
            ("AuthFailure.SecretIdNotFound", Authentication),
            ("UnauthorizedOperation", Authentication),
            ("InternalError", Transient),
            ("InternalError.TradeUnknownError", Transient),
            // From the SDK's errorcodes.py, classes the prefix rules alone got wrong.
            ("InstancesQuotaLimitExceeded", QuotaExceeded),
            ("VpcLimitExceeded", QuotaExceeded),
            ("InvalidAccount.InsufficientBalance", QuotaExceeded),
            ("ResourceInsufficient.InsufficientGroupQuota", QuotaExceeded),
            ("LimitExceeded.ResourceAttachedTags", QuotaExceeded),
            ("LimitExceeded.TagNumPerRequest", InvalidParameter),
            ("LimitExceeded.NumberOfFilters", InvalidParameter),
            ("InvalidParameter.OverLimit", Throttled),
            ("UnsupportedOperation.VersionMismatch", WrongState),
            ("UnsupportedOperation.AddressStatusNotPermit", WrongState),
            ("UnsupportedOperation.InvalidAddressState", WrongState),
            ("InvalidAddressIdState.InArrears", WrongState),
            ("UnsupportedOperation.InstanceStateShutdown", WrongState),
            // AssociateSecurityGroups (SDK `cvm_client`'s list for it).
            ("LimitExceeded.AssociateUSGLimitExceeded", QuotaExceeded),
            ("InvalidSecurityGroupId.NotFound", NotFound),
            ("MutexOperation.TaskRunning", WrongState),
            ("InvalidParameterValue.InvalidInstanceState", WrongState),
            (
                "UnsupportedOperation.IdempotentParameterMismatch",
                IdempotencyMismatch,
            ),
            ("UnsupportedOperation.IdempotentProcessing", Transient),
            ("InvalidParameterValue.AddressNotFound", NotFound),
            ("InvalidParameterValue.SubnetNotExist", NotFound),
            ("UnauthorizedOperation.AttachmentNotFound", NotFound),
            ("UnauthorizedOperation.PermissionDenied", Authentication),
            ("InvalidRegion.NotFound", InvalidParameter),
            ("ResourceNotFound.InvalidZoneInstanceType", OutOfStock),
            (
                "ResourceInsufficient.CloudDiskUnavailable",
                InvalidParameter,
            ),
            ("InvalidParameterValue.InstanceHasWanIP", InvalidParameter),
            ("OperationDenied.AccountNotSupported", InvalidParameter),
            ("OperationDenied.MutexTaskRunning", WrongState),
            (
                "FailedOperation.NoAvailableIpAddressCountInSubnet",
                SubnetFull,
            ),
            ("LimitExceeded.VpcSubnetNum", SubnetFull),
            ("ResourceInsufficient.Subnet", SubnetFull),
            ("ResourceInsufficient.CidrBlock", SubnetFull),
        ];
        for (code, class) in table {
            assert_eq!(classify(code, 200), *class, "{code}");
        }
    }

    #[test]
    fn transport_failures_fall_back_on_the_status() {
        assert_eq!(classify("", 429), Throttled);
        assert_eq!(classify("", 502), Transient);
        assert_eq!(classify("", 0), Transient);
        assert_eq!(classify("", 400), InvalidParameter);
        assert_eq!(classify("SomethingNew", 200), InvalidParameter);
        assert_eq!(classify("SomethingNew", 503), Transient);
    }

    /// The subnet-exhaustion codes get the class Alibaba gives `InvalidVSwitchId.IpNotEnough`.
    #[test]
    fn subnet_exhaustion_is_a_capacity_error_like_on_alibaba() {
        for code in [
            "FailedOperation.NoAvailableIpAddressCountInSubnet",
            "LimitExceeded.VpcSubnetNum",
            "ResourceInsufficient.Subnet",
        ] {
            assert!(is_subnet_exhausted(code));
            assert_eq!(classify(code, 200), SubnetFull, "{code}");
        }
    }

    #[test]
    fn duplicate_rule() {
        assert!(is_duplicate_rule("UnsupportedOperation.DuplicatePolicy"));
        assert!(!is_duplicate_rule("UnsupportedOperation"));
    }
}
