//! Cloud errors, classified so the reconcilers decide what to do without knowing provider codes.

use std::fmt;

/// What a cloud error means for the caller. Each class has a stable `reason()` used in
/// conditions, events and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Rate limited: retry with backoff.
    Throttled,
    /// An account quota is exhausted: retry later, tell the user.
    QuotaExceeded,
    /// The named resource does not exist.
    NotFound,
    /// A delete is blocked by dependent resources: retry after they are gone.
    DependencyViolation,
    /// No capacity for this instance type in this zone: try elsewhere or later, with a new token.
    OutOfStock,
    /// The request itself is wrong: retrying the same request cannot succeed.
    InvalidParameter,
    /// The resource is in a state that forbids the call (e.g. releasing an associated EIP): retry.
    WrongState,
    /// Credentials rejected (bad key id, bad signature, expired timestamp).
    Authentication,
    /// A ClientToken was reused with different parameters.
    IdempotencyMismatch,
    /// Server errors, timeouts, connection failures: retry.
    Transient,
    /// The subnet has no free private address left: a capacity problem of the network, not a
    /// malformed request (Alibaba `InvalidVSwitchId.IpNotEnough`, Tencent
    /// `FailedOperation.NoAvailableIpAddressCountInSubnet`).
    SubnetFull,
}

impl ErrorClass {
    /// Every class, for exhaustive tables and tests.
    pub const ALL: [ErrorClass; 11] = [
        Self::Throttled,
        Self::QuotaExceeded,
        Self::NotFound,
        Self::DependencyViolation,
        Self::OutOfStock,
        Self::InvalidParameter,
        Self::WrongState,
        Self::Authentication,
        Self::IdempotencyMismatch,
        Self::Transient,
        Self::SubnetFull,
    ];

    /// Stable, CamelCase reason for conditions, events and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Throttled => "Throttled",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::NotFound => "NotFound",
            Self::DependencyViolation => "DependencyViolation",
            Self::OutOfStock => "OutOfStock",
            Self::InvalidParameter => "InvalidParameter",
            Self::WrongState => "WrongState",
            Self::Authentication => "AuthenticationFailed",
            Self::IdempotencyMismatch => "IdempotencyMismatch",
            Self::Transient => "Transient",
            Self::SubnetFull => "SubnetFull",
        }
    }

    /// Whether the transport layer retries this class on its own (with backoff).
    pub fn is_transport_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Transient)
    }

    /// Whether the same request can never succeed: the user must change the spec.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::InvalidParameter | Self::Authentication | Self::IdempotencyMismatch
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// An error returned by a cloud API (or by the way to it), keeping the provider's own code,
/// message and request id. Messages never carry secrets: drivers build them only from the
/// provider's response or from transport errors, never from request parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{provider} {action}: {code}: {message}{}", request_id.as_deref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
pub struct CloudError {
    pub class: ErrorClass,
    /// Provider code, e.g. `ALIYUN`.
    pub provider: &'static str,
    /// The API action that failed, e.g. `RunInstances`.
    pub action: String,
    /// The provider's error code, e.g. `OperationDenied.NoStock`; transport errors use `Transport`.
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// HTTP status, when a response was received.
    pub http_status: Option<u16>,
}

impl CloudError {
    pub fn new(
        class: ErrorClass,
        provider: &'static str,
        action: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            provider,
            action: action.into(),
            code: code.into(),
            message: message.into(),
            request_id: None,
            http_status: None,
        }
    }

    pub fn is(&self, class: ErrorClass) -> bool {
        self.class == class
    }

    /// Whether the cloud may have carried the call out although it failed: a lost answer, a
    /// timeout, a server error. (A refused connection, throttling or a 4xx never ran.) A create
    /// without a ClientToken must not be sent again blindly after such a failure.
    pub fn outcome_unknown(&self) -> bool {
        self.class == ErrorClass::Transient && self.code != CONNECTION_FAILED
    }
}

/// `code` of a transport error where no connection was made, so nothing was sent.
pub const CONNECTION_FAILED: &str = "ConnectionFailed";

pub type CloudResult<T> = Result<T, CloudError>;

/// Treats "not found" as success, for idempotent deletes.
pub trait IgnoreNotFound {
    fn ignore_not_found(self) -> CloudResult<()>;
}

impl IgnoreNotFound for CloudResult<()> {
    fn ignore_not_found(self) -> CloudResult<()> {
        match self {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other,
        }
    }
}
