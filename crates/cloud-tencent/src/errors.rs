//! Tencent Cloud error codes → provider-neutral [`ErrorClass`].

use mce_cloud::ErrorClass;

/// Classifies a Tencent Cloud error code (`Response.Error.Code`). Tencent answers errors with
/// HTTP 200, so the status only matters for the transport's own failures (no code).
///
/// Known codes come from the error-class table of the cloud API reference; families are
/// matched by prefix (`AuthFailure.*`, `ResourceInsufficient.*`, `LimitExceeded.*`,
/// `ResourceNotFound.*`, `Invalid*.NotFound`, ...). An unknown code with HTTP 200 is the
/// request's fault ([`ErrorClass::InvalidParameter`]), like an unknown 4xx on Alibaba; without a
/// code, 429 → Throttled and anything else → Transient.
pub fn classify(code: &str, http_status: u16) -> ErrorClass {
    if code.is_empty() {
        return match http_status {
            429 => ErrorClass::Throttled,
            400..=499 if http_status != 408 => ErrorClass::InvalidParameter,
            _ => ErrorClass::Transient,
        };
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
        // `LimitExceeded.ActionLimited` is a rate limit, not a quota: before the family below.
        "RequestLimitExceeded" | "LimitExceeded.ActionLimited" => return ErrorClass::Throttled,
        "AddressQuotaLimitExceeded" => return ErrorClass::QuotaExceeded,
        "ResourceNotFound" | "InvalidInstanceId.NotFound" => return ErrorClass::NotFound,
        "ResourceInUse" | "DependencyViolation" => return ErrorClass::DependencyViolation,
        // The instance type is not offered in this zone now: try elsewhere, like no stock.
        "ResourceUnavailable.InstanceType" | "ResourceInsufficient" => {
            return ErrorClass::OutOfStock;
        }
        "IncorrectStatus" | "InvalidAddressState" | "InvalidAddressIdStatus.NotPermit" => {
            return ErrorClass::WrongState;
        }
        "InvalidParameter"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "UnknownParameter"
        | "InvalidClientToken.TooLong"
        | "UnsupportedOperation.DuplicatePolicy" => return ErrorClass::InvalidParameter,
        "InternalError" | "InternalServerError" | "ServiceUnavailable" => {
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
    let about_state =
        code.contains("State") || code.contains("Status") || code.contains("InProgress");
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
    if code.starts_with("InvalidParameter")
        || code.starts_with("MissingParameter")
        || code.starts_with("UnsupportedOperation")
    {
        return ErrorClass::InvalidParameter;
    }
    if code.starts_with("OperationDenied.") {
        return ErrorClass::WrongState;
    }
    match http_status {
        429 => ErrorClass::Throttled,
        500..=599 => ErrorClass::Transient,
        _ => ErrorClass::InvalidParameter,
    }
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

    #[test]
    fn duplicate_rule() {
        assert!(is_duplicate_rule("UnsupportedOperation.DuplicatePolicy"));
        assert!(!is_duplicate_rule("UnsupportedOperation"));
    }
}
