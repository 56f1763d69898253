//! Provider selection. The interface lets a later policy choose among providers (price, stock,
//! spread); this release ships a fixed policy: the EcsInstance names its provider, which must
//! exist, be enabled and be available.

pub mod placement;

use crate::api::{CloudProvider, Reason, conditions};

/// Why no provider could be selected. `reason()` is the stable condition reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchedulingError {
    #[error("spec.provider is required: name the CloudProvider code to run on")]
    ProviderRequired,
    #[error("no CloudProvider has code {0:?}")]
    ProviderNotFound(String),
    #[error("CloudProvider {code:?} is unavailable: {why}")]
    ProviderUnavailable { code: String, why: String },
    /// The provider was just created and has not been probed yet: wait, not a failure.
    #[error("CloudProvider {0:?} has not been probed yet")]
    ProviderPending(String),
}

impl SchedulingError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::ProviderRequired => Reason::ProviderRequired,
            Self::ProviderNotFound(_) => Reason::ProviderNotFound,
            Self::ProviderUnavailable { .. } => Reason::ProviderUnavailable,
            Self::ProviderPending(_) => Reason::ProviderPending,
        }
    }
}

/// What a policy needs to know about the request.
pub struct SchedulingRequest<'a> {
    pub provider: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// Chooses the provider an instance runs on.
pub trait Scheduler: Send + Sync {
    fn select<'p>(
        &self,
        request: &SchedulingRequest<'_>,
        providers: &'p [std::sync::Arc<CloudProvider>],
    ) -> Result<&'p CloudProvider, SchedulingError>;
}

/// The fixed policy: the named provider, if it exists, is enabled and is available.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedPolicy;

impl Scheduler for FixedPolicy {
    fn select<'p>(
        &self,
        request: &SchedulingRequest<'_>,
        providers: &'p [std::sync::Arc<CloudProvider>],
    ) -> Result<&'p CloudProvider, SchedulingError> {
        let code = request
            .provider
            .filter(|c| !c.is_empty())
            .ok_or(SchedulingError::ProviderRequired)?;
        let provider = providers
            .iter()
            .find(|p| p.spec.code == code)
            .ok_or_else(|| SchedulingError::ProviderNotFound(code.to_string()))?;
        check_available(provider)?;
        Ok(provider)
    }
}

/// A provider can take new work when it is enabled and its last probe succeeded.
pub fn check_available(provider: &CloudProvider) -> Result<(), SchedulingError> {
    let unavailable = |why: String| SchedulingError::ProviderUnavailable {
        code: provider.spec.code.clone(),
        why,
    };
    if provider.spec.disabled {
        return Err(unavailable("disabled by spec.disabled".into()));
    }
    let available = provider
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::AVAILABLE));
    match available {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(unavailable(format!("{}: {}", c.reason, c.message))),
        None => Err(SchedulingError::ProviderPending(provider.spec.code.clone())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::cloud_provider::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn provider(code: &str, disabled: bool, available: Option<bool>) -> Arc<CloudProvider> {
        let mut p = CloudProvider::new(
            &code.to_lowercase(),
            CloudProviderSpec {
                provider_type: ProviderType::new("ALIYUN"),
                code: code.into(),
                credentials_secret_ref: CredentialsSecretRef {
                    name: "s".into(),
                    namespace: "ns".into(),
                },
                endpoint: None,
                defaults: Default::default(),
                catalog: Default::default(),
                rate_limit: None,
                disabled,
                allowed_extensions: Vec::new(),
                allow_untagged_adoption: false,
                pricing: None,
            },
        );
        p.status = available.map(|a| CloudProviderStatus {
            observed_generation: None,
            conditions: vec![Condition {
                type_: "Available".into(),
                status: if a { "True" } else { "False" }.into(),
                reason: if a { "ProbeSucceeded" } else { "ProbeFailed" }.into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time("2026-01-01T00:00:00Z".parse().unwrap()),
            }],
        });
        Arc::new(p)
    }

    fn select(
        code: Option<&str>,
        providers: &[Arc<CloudProvider>],
    ) -> Result<String, &'static str> {
        let req = SchedulingRequest {
            provider: code,
            region: None,
        };
        FixedPolicy
            .select(&req, providers)
            .map(|p| p.spec.code.clone())
            .map_err(|e| e.reason().as_str())
    }

    #[test]
    fn fixed_policy_reasons() {
        let providers = vec![
            provider("ALIYUN", false, Some(true)),
            provider("OFF", true, Some(true)),
            provider("DOWN", false, Some(false)),
            provider("NEW", false, None),
        ];
        assert_eq!(select(Some("ALIYUN"), &providers), Ok("ALIYUN".into()));
        assert_eq!(select(None, &providers), Err("ProviderRequired"));
        assert_eq!(select(Some(""), &providers), Err("ProviderRequired"));
        assert_eq!(select(Some("AWS"), &providers), Err("ProviderNotFound"));
        assert_eq!(select(Some("OFF"), &providers), Err("ProviderUnavailable"));
        assert_eq!(select(Some("DOWN"), &providers), Err("ProviderUnavailable"));
        assert_eq!(select(Some("NEW"), &providers), Err("ProviderPending"));
    }
}
