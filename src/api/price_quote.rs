//! `PriceQuote`: the original design's order price inquiry (`calculateOrderPrice`) as a
//! resource: the machine an EcsInstance would order, priced on every placement candidate,
//! without ordering anything (no write call reaches any cloud).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::ecs_instance::{ChargeMode, PublicIpSpec, SystemDiskSpec};
use super::placement::{CandidateStatus, PlacementSpec};

/// A machine to price on each candidate; `kubectl get pq` shows the cheapest.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "ecs.multicloud.io",
    version = "v1alpha1",
    kind = "PriceQuote",
    namespaced,
    shortname = "pq",
    status = "PriceQuoteStatus",
    printcolumn = r#"{"name":"Cheapest","type":"string","jsonPath":".status.cheapest.provider"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".status.cheapest.region"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".status.cheapest.instanceType"}"#,
    printcolumn = r#"{"name":"Hourly","type":"string","jsonPath":".status.cheapest.hourly"}"#,
    printcolumn = r#"{"name":"Currency","type":"string","jsonPath":".status.cheapest.currency"}"#,
    printcolumn = r#"{"name":"Reference","type":"string","jsonPath":".status.cheapest.referenceHourly","priority":1}"#,
    printcolumn = r#"{"name":"Valid-Until","type":"string","jsonPath":".status.validUntil","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.gpuModel) || !has(self.instanceType)").message("set gpuModel or instanceType, not both"),
    validation = Rule::new("self.chargeMode != 'PREPAID' || has(self.periodMonths)").message("chargeMode PREPAID requires periodMonths"),
    validation = Rule::new("size(self.placement.candidates) > 0").message("placement needs at least one candidate")
)]
pub struct PriceQuoteSpec {
    /// Business image key, as on EcsInstance.
    #[schemars(length(min = 1, max = 128))]
    pub image_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub gpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<u32>,
    #[serde(default, rename = "memoryGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384))]
    pub memory_gib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<SystemDiskSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<PublicIpSpec>,
    #[serde(default)]
    pub charge_mode: ChargeMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60))]
    pub period_months: Option<u32>,
    /// The candidates to price (the policy does not decide what `cheapest` means: the lowest
    /// available price in the reference currency, whatever the policy; see CloudProvider
    /// `spec.pricing`).
    pub placement: PlacementSpec,
}

/// The quotes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceQuoteStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Quoted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Every candidate, in spec order: the provider's quote (`currency`, `hourly`...), its
    /// `referenceHourly` where it could be converted, availability, or the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateStatus>,
    /// The available candidate with the lowest hourly price in the reference currency (a quote
    /// that cannot be converted is never it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cheapest: Option<CandidateStatus>,
    /// When the clouds quoted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_at: Option<String>,
    /// Until when the prices hold (an hour, as the design's price service); quoted again then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

impl PriceQuoteSpec {
    /// The EcsInstance spec ordering this machine (what the catalog mapping takes): the same
    /// fields under the same names, plus a placeholder user.
    pub fn machine(&self) -> Result<super::ecs_instance::EcsInstanceSpec, serde_json::Error> {
        let mut spec = serde_json::to_value(self)?;
        spec["userId"] = serde_json::Value::from("price-quote");
        serde_json::from_value(spec)
    }
}
