//! Reconciler errors. Each has a stable `reason()` used for conditions, events and metrics.

use mce_cloud::CloudError;

use crate::api::Reason;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The provider's driver cannot be built (credentials Secret missing, unsupported type).
    #[error("{message}")]
    Driver { reason: Reason, message: String },
    /// Deletion must wait for something else (a dependency, an EIP to detach).
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    pub fn reason(&self) -> Reason {
        match self {
            Self::Kube(_) => Reason::KubeApiError,
            Self::Cloud(e) => e.class.into(),
            Self::Driver { reason, .. } => *reason,
            Self::Waiting(_) => Reason::Waiting,
        }
    }
}

/// The API server's own message, without the status object around it.
fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
