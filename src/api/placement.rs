//! Multi-cloud placement: where an EcsInstance (or a PriceQuote) may run and how the one place
//! is chosen — the original design's scheduler (its FixedScheduler plus the planned "cheapest"
//! and "failover" policies) and its order price inquiry.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Where the machine may run and how the candidate is chosen.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.policy == 'Fixed' || size(self.candidates) > 0").message("Cheapest and Failover need at least one candidate")
)]
pub struct PlacementSpec {
    /// `Fixed` (default: `spec.provider`, as without placement), `Cheapest` (the lowest hourly
    /// quote in the reference currency among candidates with stock; see CloudProvider
    /// `spec.pricing`) or `Failover` (the first candidate, in order, with stock).
    #[serde(default)]
    pub policy: PlacementPolicy,
    /// Ordered candidates. Failover tries them in order; Cheapest breaks price ties by order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub candidates: Vec<Candidate>,
    /// Refuse every candidate quoting more than this per hour (a decimal, e.g. `"40"`), in the
    /// reference currency: the currency of quotes of CloudProviders without `spec.pricing`, into
    /// which the others' `spec.pricing.toReference` converts. A quote that cannot be converted
    /// cannot be checked against it: that candidate is skipped (`NoExchangeRate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub max_hourly_price: Option<String>,
}

/// A placement policy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PlacementPolicy {
    #[default]
    Fixed,
    Cheapest,
    Failover,
}

impl PlacementPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "Fixed",
            Self::Cheapest => "Cheapest",
            Self::Failover => "Failover",
        }
    }
}

/// One place a machine may run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// CloudProvider code.
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    #[schemars(length(min = 1, max = 63))]
    pub region: String,
    /// Optional: without it, the provider's default zone of the region, or any zone with stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub zone: Option<String>,
}

/// The chosen place and why, with what was tried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// The chosen candidate; absent while none is (see `candidates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Why this one, e.g. "cheapest of 2 available candidates".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The policy that chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PlacementPolicy>,
    /// What each candidate offered, or why it was skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateStatus>,
}

/// One candidate as placement (or a quote) saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateStatus {
    pub provider: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// The currency of the provider's quote (`hourly`, `monthly`, `totalForPeriod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Price per hour (decimal string), as the provider quoted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<String>,
    /// `hourly` in the reference currency: what `Cheapest` and `maxHourlyPrice` compare. The
    /// same amount for a quote in the reference currency, `hourly × toReference` for one its
    /// CloudProvider's `spec.pricing` converts. Absent for a quote that cannot be converted:
    /// the candidate ranks after every priced one and `error` says what to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_hourly: Option<String>,
    /// The reference currency, where it is known (a candidate quoting in it without
    /// `spec.pricing`, or a `spec.pricing` with `toReference: "1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_currency: Option<String>,
    /// The rate that converted `hourly` (the CloudProvider's `spec.pricing.toReference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_rate: Option<String>,
    /// Price per month of 730 hours, or the monthly subscription (PREPAID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<String>,
    /// PREPAID: the whole period's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_for_period: Option<String>,
    /// Can take the machine now (has stock, is available, within budget).
    #[serde(default)]
    pub available: bool,
    /// Why not: a reason name (`OutOfStock`, `QuotaExceeded`, `OverBudget`, `NoExchangeRate`,
    /// `ProviderUnavailable`, `UnknownGpuModel`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Details of the skip, or of an error (no price; a price in a currency that cannot be
    /// converted, with the `spec.pricing` to set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When a create on it was refused (stock, quota): it is passed over for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_at: Option<String>,
}

/// The price of the instance's order, as the chosen provider quoted it (its currency; the
/// reference amount is the chosen candidate's `referenceHourly` in `status.placement`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceStatus {
    pub currency: String,
    /// Per hour (decimal string).
    pub hourly: String,
    /// Per month (decimal string), for subscriptions and as 730 hours for on-demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<String>,
    /// When the cloud quoted it (RFC 3339).
    pub quoted_at: String,
}

impl super::EcsInstance {
    /// Whether a placement policy (not `Fixed`) chooses where the instance runs.
    pub fn is_placed(&self) -> bool {
        self.spec
            .placement
            .as_ref()
            .is_some_and(|p| p.policy != PlacementPolicy::Fixed)
    }

    /// The chosen candidate in status, for a placed instance.
    fn choice(&self) -> Option<&PlacementStatus> {
        self.status
            .as_ref()?
            .placement
            .as_ref()
            .filter(|p| self.is_placed() && p.provider.is_some())
    }

    /// The provider code the instance runs on: placement's choice, else `spec.provider`.
    pub fn target_provider(&self) -> Option<&str> {
        match self.choice() {
            Some(p) => p.provider.as_deref(),
            None => self.spec.provider.as_deref(),
        }
    }

    /// The region the instance runs in: placement's choice, else `spec.region`.
    pub fn target_region(&self) -> Option<&str> {
        match self.choice() {
            Some(p) => p.region.as_deref(),
            None => self.spec.region.as_deref(),
        }
    }

    /// The zone the instance runs in: placement's choice, else `spec.zone`.
    pub fn target_zone(&self) -> Option<&str> {
        match self.choice() {
            Some(p) => p.zone.as_deref(),
            None => self.spec.zone.as_deref(),
        }
    }

    /// The instance as the steps after scheduling see it: placement's choice written into the
    /// spec's provider, region and zone (the object itself is unchanged).
    pub fn placed(&self) -> Self {
        let mut placed = self.clone();
        placed.spec.provider = self.target_provider().map(String::from);
        placed.spec.region = self.target_region().map(String::from);
        placed.spec.zone = self.target_zone().map(String::from);
        placed
    }
}

/// A create on the chosen candidate was refused for stock or quota (`reason`): before the
/// instance exists, the choice is dropped and the candidate passed over for a while, so the
/// next pass places it elsewhere. False when there is nothing to move (not placed, or pinned).
pub fn release_choice(
    status: &mut super::EcsInstanceStatus,
    reason: super::Reason,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    if status.instance_id.is_some() {
        return false;
    }
    let Some(placement) = status.placement.as_mut() else {
        return false;
    };
    let (Some(provider), Some(region)) = (placement.provider.take(), placement.region.take())
    else {
        return false;
    };
    placement.zone = None;
    placement.instance_type = None;
    placement.reason = format!("{reason} on {provider} {region}; placing again");
    if let Some(c) = placement
        .candidates
        .iter_mut()
        .find(|c| c.provider == provider && c.region == region)
    {
        c.available = false;
        c.skipped = Some(reason.as_str().to_string());
        c.error = Some(message.to_string());
        c.refused_at = Some(now.to_string());
    }
    status.price = None;
    // The next attempt, elsewhere, needs a fresh token.
    status.client_token = None;
    true
}
