//! Every reason the operator writes into a condition or an event. The wire strings are API
//! surface: users, alerts and the Argo CD health checks (`deploy/argocd/*.lua`) match on them,
//! so a variant's [`Reason::as_str`] never changes.

use std::fmt;
use std::time::Duration;

use mce_cloud::ErrorClass;

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        /// A condition or event reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[$doc])* $name,)+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)+];

            /// The stable wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)+
                }
            }
        }
    };
}

reasons! {
    // Converged or converging.
    /// The summary condition holds (EcsInstance `Ready`); also the event on becoming ready.
    Ready,
    Running,
    Starting,
    NetworkPending,
    NetworkReady,
    NetworkNotFound,
    Provisioning,
    Binding,
    Bound,
    NotRequested,
    PortsOpen,
    /// A UserNetwork being deleted still has instances.
    InUse,
    InstanceLost,
    PublicIpLost,
    /// Every cloud resource of a deleted object is gone (event).
    Released,
    // Outcomes of cloud calls, as the reconcilers name them.
    OutOfStock,
    QuotaExceeded,
    /// The subnet has no free address left: the user's network is full in that zone.
    SubnetFull,
    Throttled,
    CreateFailed,
    NetworkCreateFailed,
    // Error classes of the cloud layer (`ErrorClass::reason`).
    NotFound,
    DependencyViolation,
    InvalidParameter,
    WrongState,
    AuthenticationFailed,
    IdempotencyMismatch,
    Transient,
    // Tenancy.
    NamespaceWithoutTenant,
    TenantMismatch,
    NetworkMismatch,
    ZoneMismatch,
    // Mapping of the spec onto the provider.
    RegionRequired,
    ZoneRequired,
    UnknownImageKey,
    UnknownGpuModel,
    NoMatchingSize,
    InstanceTypeRequired,
    PasswordUnsupported,
    // Login.
    PasswordSecretNotFound,
    PasswordInvalid,
    // Scheduling and the provider's driver.
    ProviderRequired,
    ProviderNotFound,
    ProviderPending,
    ProviderUnavailable,
    ProviderNotSupported,
    CredentialsNotFound,
    CredentialsInvalid,
    DriverConfigInvalid,
    // CloudProvider availability probe.
    /// The probe succeeded after failing (event).
    Available,
    ProbeSucceeded,
    ProbeFailed,
    Disabled,
    // Reconcile failures outside the cloud.
    KubeApiError,
    /// Something else must happen first (a dependency released, a cache filled).
    Waiting,
    // UserNetwork release (issue 9).
    /// A deleted UserNetwork cannot reach its cloud yet (provider unknown or its driver
    /// unusable), or the cloud has not confirmed the release: the finalizer stays.
    ReleasePending,
    // EcsInstance hardening (issue 9).
    /// An id in status names a cloud resource that carries another object's UID or tenant tag:
    /// the operator refuses to act on it (status was edited or is corrupt).
    OwnershipMismatch,
    /// An id in status names a resource without this object's UID tag (yet: tags may lag):
    /// nothing is done to it.
    OwnershipUnconfirmed,
    /// The instance is stopped (or stopping, or its subscription expired); it is started again.
    InstanceStopped,
    /// The cloud reports the instance in a state the operator cannot act on (failed, unknown).
    InstanceUnavailable,
    /// A running instance's tags could not be updated.
    TagUpdateFailed,
    /// The bound EIP's billing mode differs from `publicIp.bandwidthMode`; the cloud cannot
    /// change it in place.
    BandwidthModeImmutable,
    // Admission by the operator (issue 9).
    /// `spec.extensions` sets a parameter the CloudProvider does not allow.
    ExtensionNotAllowed,
    // Placement and prices (issue 11).
    /// A candidate was chosen (condition `Scheduled`).
    Scheduled,
    /// No candidate can take the instance now (no stock, quota, unavailable, catalog miss);
    /// looked at again until one can.
    NoCandidateAvailable,
    /// Every candidate with stock quotes above `placement.maxHourlyPrice`.
    OverBudget,
    /// A candidate's quote is in a currency that cannot be converted into the reference
    /// currency (its CloudProvider has no matching `spec.pricing`), so `maxHourlyPrice`
    /// cannot be checked against it.
    NoExchangeRate,
    /// A PriceQuote has its prices (condition `Quoted`).
    Quoted,
    /// A PriceQuote could not be priced at all.
    QuoteFailed,
    /// A tag key the provider's cloud reserves for itself (Tencent's `project`...), caught
    /// when the provider is named by a custom code that admission cannot see through.
    ReservedTag,
    // EcsInstanceSet (issue 12).
    /// The set creates children to reach `replicas` (or waits for new ones to become ready).
    ScalingUp,
    /// The set deletes surplus children (not-ready ones first, then the newest).
    ScalingDown,
    /// Children of an older template are replaced one at a time within maxSurge/maxUnavailable.
    RollingUpdate,
    /// A child failed terminally: only a template (or provider) change helps.
    ChildFailed,
    /// `spec.selector` does not select the template's labels.
    SelectorMismatch,
    // Adoption and deletion guards (issue 12).
    /// `spec.adopt` names a resource the operator may not take over (missing, in another
    /// region, owned by another object, or another tenant's): nothing was written to it.
    AdoptionRefused,
    /// An existing cloud resource was taken over (event).
    Adopted,
    /// A CloudProvider being deleted is still referenced by EcsInstances or UserNetworks.
    ProviderInUse,
    // Cloud permissions (issue 15).
    /// The credentials authenticate but lack cloud permissions the operator needs (named in the
    /// CloudProvider's `Available` message; `deploy/policies/` grants them). Probed again, so
    /// granting them is enough.
    PermissionsMissing,
}

impl Reason {
    /// Reasons that need a spec (or namespace/provider) change, not a retry: the instance's
    /// phase becomes Failed and Argo CD reports it Degraded.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::CreateFailed
                | Self::TenantMismatch
                | Self::NamespaceWithoutTenant
                | Self::NetworkMismatch
                | Self::ZoneMismatch
                | Self::UnknownImageKey
                | Self::ReservedTag
                | Self::UnknownGpuModel
                | Self::NoMatchingSize
                | Self::RegionRequired
                | Self::ZoneRequired
                | Self::InstanceTypeRequired
                | Self::PasswordUnsupported
                | Self::PasswordSecretNotFound
                | Self::PasswordInvalid
                | Self::ProviderRequired
                | Self::ProviderNotFound
                // Issue 9: only a status or spec change helps.
                | Self::OwnershipMismatch
                | Self::BandwidthModeImmutable
                | Self::ExtensionNotAllowed
                // Issue 12.
                | Self::ChildFailed
                | Self::SelectorMismatch
                | Self::AdoptionRefused
        )
    }

    /// Reasons of a step that is simply not finished yet: no Warning event for them.
    pub const fn is_progress(self) -> bool {
        matches!(
            self,
            Self::Starting
                | Self::NetworkPending
                | Self::Binding
                | Self::Provisioning
                // A provider not probed yet: it will be, shortly.
                | Self::ProviderPending
                // A set converging on its own.
                | Self::ScalingUp
                | Self::ScalingDown
                | Self::RollingUpdate
        )
    }

    /// How long a reconcile that failed with this reason waits before the next attempt
    /// (before jitter): sooner when only the cloud's own progress is awaited.
    pub const fn requeue(self) -> Duration {
        match self {
            Self::Waiting | Self::DependencyViolation | Self::WrongState => Duration::from_secs(2),
            // Stock and prices change by themselves, not within seconds.
            Self::NoCandidateAvailable => Duration::from_secs(10),
            Self::OverBudget => Duration::from_secs(60),
            _ => Duration::from_secs(5),
        }
    }

    /// The reason with this wire string.
    pub fn from_wire(wire: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == wire)
    }
}

impl From<ErrorClass> for Reason {
    fn from(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Throttled => Self::Throttled,
            ErrorClass::QuotaExceeded => Self::QuotaExceeded,
            ErrorClass::NotFound => Self::NotFound,
            ErrorClass::DependencyViolation => Self::DependencyViolation,
            ErrorClass::OutOfStock => Self::OutOfStock,
            ErrorClass::SubnetFull => Self::SubnetFull,
            ErrorClass::InvalidParameter => Self::InvalidParameter,
            ErrorClass::WrongState => Self::WrongState,
            ErrorClass::Authentication => Self::AuthenticationFailed,
            ErrorClass::IdempotencyMismatch => Self::IdempotencyMismatch,
            ErrorClass::Transient => Self::Transient,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in Reason::ALL {
            assert!(seen.insert(reason.as_str()), "duplicate {reason}");
            assert_eq!(Reason::from_wire(reason.as_str()), Some(*reason));
        }
        assert_eq!(Reason::from_wire("NoSuchReason"), None);
    }

    #[test]
    fn error_classes_keep_the_cloud_layer_strings() {
        for class in ErrorClass::ALL {
            assert_eq!(Reason::from(class).as_str(), class.reason());
        }
    }

    #[test]
    fn terminal_and_progress_are_disjoint() {
        assert!(
            Reason::ALL
                .iter()
                .all(|r| !(r.is_terminal() && r.is_progress()))
        );
        assert!(Reason::PasswordInvalid.is_terminal());
        assert!(!Reason::AuthenticationFailed.is_terminal());
        assert!(!Reason::NetworkCreateFailed.is_terminal());
        assert!(Reason::Binding.is_progress());
        assert!(Reason::ProviderPending.is_progress());
        assert!(Reason::ExtensionNotAllowed.is_terminal());
        assert_eq!(Reason::Throttled.requeue(), Duration::from_secs(5));
        assert_eq!(Reason::WrongState.requeue(), Duration::from_secs(2));
    }
}
