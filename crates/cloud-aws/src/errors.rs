//! AWS error codes → provider-neutral [`ErrorClass`].
//!
//! Our own table, from the "Error codes for the Amazon EC2 API" reference (common client
//! errors, client errors of the actions the driver calls, server errors) plus the Price List
//! Query API's JSON 1.1 exceptions. Families are matched by suffix (`*.NotFound`,
//! `*LimitExceeded`, `Insufficient*Capacity`); an unknown code falls back on the HTTP status:
//! 5xx → Transient, 429 → Throttled, any other → InvalidParameter (the request's fault).

use mce_cloud::ErrorClass;

/// Classifies an AWS error code (`<Error><Code>` of EC2, the `__type` of JSON 1.1 without its
/// namespace). `http_status` 0 means no answer was received.
pub fn classify(code: &str, http_status: u16) -> ErrorClass {
    if code.is_empty() {
        return match http_status {
            429 => ErrorClass::Throttled,
            400..=499 if http_status != 408 => ErrorClass::InvalidParameter,
            _ => ErrorClass::Transient,
        };
    }
    match code {
        // Rate limits (EC2 `RequestLimitExceeded`; JSON APIs `ThrottlingException`).
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "SlowDown"
        | "PriorRequestNotComplete" => ErrorClass::Throttled,
        // Credentials: unknown key or wrong secret (both `AuthFailure` on EC2), a signature the
        // cloud cannot verify, a stale `X-Amz-Date`, and IAM refusing the call.
        "AuthFailure"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "RequestExpired"
        | "ExpiredToken"
        | "UnrecognizedClientException"
        | "UnauthorizedOperation"
        | "AccessDeniedException"
        | "AccessDenied"
        | "Blocked"
        | "OptInRequired"
        | "PendingVerification" => ErrorClass::Authentication,
        // Account quotas.
        "AddressLimitExceeded"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "VpcLimitExceeded"
        | "SubnetLimitExceeded"
        | "SecurityGroupLimitExceeded"
        | "RulesPerSecurityGroupLimitExceeded"
        | "InternetGatewayLimitExceeded"
        | "RouteLimitExceeded"
        | "TagLimitExceeded"
        | "VolumeLimitExceeded"
        | "MaxIOPSLimitExceeded"
        | "NetworkInterfaceLimitExceeded"
        | "ResourceLimitExceeded"
        | "MaxSpotInstanceCountExceeded"
        | "ResourceCountExceeded" => ErrorClass::QuotaExceeded,
        // Limits of one request, not of the account.
        "SecurityGroupsPerInstanceLimitExceeded"
        | "SecurityGroupsPerInterfaceLimitExceeded"
        | "PrivateIpAddressLimitExceeded"
        | "FilterLimitExceeded" => ErrorClass::InvalidParameter,
        // The subnet has no free private address left.
        "InsufficientFreeAddressesInSubnet" => ErrorClass::SubnetFull,
        // No capacity for the type in the zone: try elsewhere or later. `Unsupported`: the
        // type is not offered in that zone ("The requested configuration is currently not
        // supported"), which placement treats like no stock.
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientVolumeCapacity"
        | "InsufficientAddressCapacity"
        | "Unsupported" => ErrorClass::OutOfStock,
        // Deletes blocked by what is still inside.
        "DependencyViolation" | "InvalidGroup.InUse" | "VolumeInUse" => {
            ErrorClass::DependencyViolation
        }
        // The resource is in a state that forbids the call: retry later.
        "IncorrectInstanceState"
        | "IncorrectState"
        | "InvalidState"
        | "InvalidIPAddress.InUse"
        | "InvalidNetworkInterface.InUse"
        | "Resource.AlreadyAssociated"
        | "Gateway.NotAttached"
        | "InvalidAMIID.Unavailable"
        | "ConcurrentTagAccess"
        | "IncorrectSpotRequestState" => ErrorClass::WrongState,
        "IdempotentParameterMismatch" | "IdempotentInstanceTerminated" => {
            ErrorClass::IdempotencyMismatch
        }
        // Malformed ids and names of things that are not resources: the request is wrong.
        "InvalidAvailabilityZone" | "InvalidZone.NotFound" | "InvalidRegion.NotFound" => {
            ErrorClass::InvalidParameter
        }
        "InternalError"
        | "InternalFailure"
        | "InternalErrorException"
        | "ServiceUnavailable"
        | "Unavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorClass::Transient,
        "NotFoundException" => ErrorClass::NotFound,
        // Common client errors (explicit for the table's sake; the fallback agrees).
        "InvalidParameter"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "InvalidParameterDependency"
        | "InvalidParameterException"
        | "MissingParameter"
        | "UnknownParameter"
        | "InvalidAction"
        | "InvalidQueryParameter"
        | "MalformedQueryString"
        | "MissingAction"
        | "InvalidCharacter"
        | "InvalidPaginationToken"
        | "ExpiredNextTokenException"
        | "InvalidNextTokenException"
        | "UnsupportedOperation"
        | "UnsupportedProtocol"
        | "ValidationError"
        | "InvalidPermission.Duplicate"
        | "InvalidPermission.Malformed"
        | "InvalidGroup.Duplicate"
        | "RouteAlreadyExists"
        | "CidrConflict"
        | "InvalidSubnet.Conflict"
        | "InvalidSubnet.Range"
        | "InvalidVpc.Range"
        | "InvalidBlockDeviceMapping"
        | "InvalidInstanceType" => ErrorClass::InvalidParameter,
        c if c.ends_with(".NotFound") => ErrorClass::NotFound,
        c if c.ends_with("LimitExceeded") => ErrorClass::QuotaExceeded,
        c if c.starts_with("Insufficient") && c.ends_with("Capacity") => ErrorClass::OutOfStock,
        c if c.ends_with(".Malformed") => ErrorClass::InvalidParameter,
        _ => match http_status {
            429 => ErrorClass::Throttled,
            500..=599 => ErrorClass::Transient,
            _ => ErrorClass::InvalidParameter,
        },
    }
}

/// AuthorizeSecurityGroupIngress: the rule exists already (counts as success).
pub fn is_duplicate_rule(code: &str) -> bool {
    code == "InvalidPermission.Duplicate"
}

/// RevokeSecurityGroupIngress: the rule does not exist (counts as success).
pub fn is_missing_rule(code: &str) -> bool {
    code == "InvalidPermission.NotFound"
}

/// `DryRun=true` answered "would have succeeded" (HTTP 412).
pub fn is_dry_run_ok(code: &str) -> bool {
    code == "DryRunOperation"
}

/// IAM refused the call (the credentials themselves are fine).
pub fn is_permission_denied(code: &str) -> bool {
    matches!(
        code,
        "UnauthorizedOperation" | "AccessDeniedException" | "AccessDenied"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    /// The AWS column of cloud-apis.md's error-class table, plus the codes the driver meets.
    #[test]
    fn reference_table() {
        let table: &[(&str, ErrorClass)] = &[
            ("RequestLimitExceeded", Throttled),
            ("ThrottlingException", Throttled),
            ("VpcLimitExceeded", QuotaExceeded),
            ("InstanceLimitExceeded", QuotaExceeded),
            ("VcpuLimitExceeded", QuotaExceeded),
            ("AddressLimitExceeded", QuotaExceeded),
            ("RulesPerSecurityGroupLimitExceeded", QuotaExceeded),
            ("TagLimitExceeded", QuotaExceeded),
            ("SomeNewLimitExceeded", QuotaExceeded),
            ("SecurityGroupsPerInstanceLimitExceeded", InvalidParameter),
            ("InvalidInstanceID.NotFound", NotFound),
            ("InvalidVpcID.NotFound", NotFound),
            ("InvalidSubnetID.NotFound", NotFound),
            ("InvalidGroup.NotFound", NotFound),
            ("InvalidAllocationID.NotFound", NotFound),
            ("InvalidAssociationID.NotFound", NotFound),
            ("InvalidInternetGatewayID.NotFound", NotFound),
            ("InvalidAMIID.NotFound", NotFound),
            ("InvalidKeyPair.NotFound", NotFound),
            ("InvalidPermission.NotFound", NotFound),
            ("NotFoundException", NotFound),
            ("DependencyViolation", DependencyViolation),
            ("InvalidGroup.InUse", DependencyViolation),
            ("InsufficientInstanceCapacity", OutOfStock),
            ("InsufficientCapacity", OutOfStock),
            ("Unsupported", OutOfStock),
            ("InsufficientFreeAddressesInSubnet", SubnetFull),
            ("InvalidParameterValue", InvalidParameter),
            ("InvalidParameterCombination", InvalidParameter),
            ("MissingParameter", InvalidParameter),
            ("InvalidInstanceID.Malformed", InvalidParameter),
            ("InvalidAMIID.Malformed", InvalidParameter),
            ("InvalidPermission.Duplicate", InvalidParameter),
            ("InvalidAvailabilityZone", InvalidParameter),
            ("IncorrectInstanceState", WrongState),
            ("InvalidIPAddress.InUse", WrongState),
            ("Resource.AlreadyAssociated", WrongState),
            ("Gateway.NotAttached", WrongState),
            ("AuthFailure", Authentication),
            ("SignatureDoesNotMatch", Authentication),
            ("RequestExpired", Authentication),
            ("UnauthorizedOperation", Authentication),
            ("AccessDeniedException", Authentication),
            ("OptInRequired", Authentication),
            ("IdempotentParameterMismatch", IdempotencyMismatch),
            ("IdempotentInstanceTerminated", IdempotencyMismatch),
            ("InternalError", Transient),
            ("Unavailable", Transient),
            ("ServiceUnavailable", Transient),
        ];
        for (code, class) in table {
            assert_eq!(classify(code, 400), *class, "{code}");
        }
    }

    #[test]
    fn unknown_codes_fall_back_on_the_status() {
        assert_eq!(classify("", 429), Throttled);
        assert_eq!(classify("", 503), Transient);
        assert_eq!(classify("", 0), Transient);
        assert_eq!(classify("", 400), InvalidParameter);
        assert_eq!(classify("SomethingNew", 400), InvalidParameter);
        assert_eq!(classify("SomethingNew", 500), Transient);
        assert_eq!(classify("SomethingNew", 429), Throttled);
    }

    #[test]
    fn predicates() {
        assert!(is_duplicate_rule("InvalidPermission.Duplicate"));
        assert!(is_missing_rule("InvalidPermission.NotFound"));
        assert!(is_dry_run_ok("DryRunOperation"));
        assert!(is_permission_denied("UnauthorizedOperation"));
        assert!(!is_permission_denied("AuthFailure"));
    }
}
