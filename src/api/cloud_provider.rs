//! `CloudProvider`: one cloud account — credentials, endpoint, parameter catalog and availability.
//! Credentials, catalog and defaults are data, so a platform admin changes them without a release.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A cloud account EcsInstances and UserNetworks can run on, selected by its `code`.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "ecs.multicloud.io",
    version = "v1alpha1",
    kind = "CloudProvider",
    shortname = "cprov",
    status = "CloudProviderStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Code","type":"string","jsonPath":".spec.code"}"#,
    printcolumn = r#"{"name":"Disabled","type":"boolean","jsonPath":".spec.disabled"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.code == oldSelf.code && self.type == oldSelf.type").message("type and code are immutable")
)]
pub struct CloudProviderSpec {
    /// Which cloud this account is on.
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// Code EcsInstances name in `spec.provider` (e.g. `ALIYUN`); unique among CloudProviders.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Z][A-Z0-9_-]*$"))]
    pub code: String,
    /// Secret holding `accessKeyId` and `accessKeySecret`.
    pub credentials_secret_ref: CredentialsSecretRef,
    /// Endpoint override (e.g. `http://127.0.0.1:18080` for the emulator). Default: the cloud's
    /// regional endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub endpoint: Option<String>,
    /// Defaults for what an EcsInstance leaves out.
    #[serde(default)]
    pub defaults: ProviderDefaults,
    /// Business keys mapped to this provider's parameters.
    #[serde(default)]
    pub catalog: Catalog,
    /// Client-side rate limit of calls to this account, per region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Takes the provider out of scheduling (new EcsInstances get `ProviderUnavailable`);
    /// existing instances are still reconciled and deleted.
    #[serde(default)]
    pub disabled: bool,
    /// Provider wire parameters EcsInstances may pass in `spec.extensions` (e.g. `HostName`,
    /// `UserData`, `DataDisk.N.Size`: a segment `N` matches any index, a final `*` any rest).
    /// Default: none — an EcsInstance setting any other key is refused with
    /// `ExtensionNotAllowed` before any cloud call. Parameters that reach beyond the tenant's
    /// own instance (credentials, other networks, the account's snapshots, deletion protection,
    /// launch templates) and those the operator sets itself stay refused even when listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(e, size(e) >= 1 && size(e) <= 128)").message("allowedExtensions entries are 1 to 128 characters"))]
    pub allowed_extensions: Vec<String>,
    /// Issue 12: whether EcsInstances and UserNetworks may adopt (`spec.adopt`) resources that
    /// carry no `tenantId` tag at all. Off by default: only resources tagged for the adopting
    /// namespace's tenant are adopted; another tenant's are refused either way.
    #[serde(default)]
    pub allow_untagged_adoption: bool,
    /// How this account's price quotes compare with other clouds' (placement `Cheapest`,
    /// `maxHourlyPrice`, PriceQuote `cheapest`). Placement compares every quote in one
    /// reference currency, the one `maxHourlyPrice` is written in. Without `pricing`, the
    /// account's quotes are taken to be in the reference currency already; a quote in another
    /// currency than the other candidates' is then not compared: it ranks after every priced
    /// candidate and cannot pass a `maxHourlyPrice` (skipped `NoExchangeRate`), and its status
    /// names what to set here. E.g. AWS (USD) next to Alibaba and Tencent (CNY):
    /// `{currency: USD, toReference: "7.10"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<PricingSpec>,
}

/// The currency of a CloudProvider's quotes and how it converts into the reference currency.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("double(self.toReference) > 0.0").message("toReference must be above 0")
)]
pub struct PricingSpec {
    /// ISO 4217 code of the currency the account quotes in (e.g. `USD`); a quote in any other
    /// currency is not converted.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
    /// What one unit of `currency` is worth in the reference currency: a positive decimal
    /// (e.g. `"7.10"` CNY per USD). `"1"` declares `currency` the reference currency itself,
    /// operator-wide: quotes of accounts without `pricing` must then be in it too.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub to_reference: String,
}

/// Cloud type: the `type` of a registered provider plugin (see [`crate::providers`]). The
/// schema's enum is generated from the registry, so a new cloud needs no change here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderType(pub String);

impl ProviderType {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProviderType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl schemars::JsonSchema for ProviderType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProviderType".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": crate::providers::registry().types(),
        })
    }
}

/// Where the account's credentials are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Secret name.
    pub name: String,
    /// Secret namespace (the operator's namespace is a good home).
    pub namespace: String,
}

/// Defaults applied when an EcsInstance does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDefaults {
    /// Default region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Default zone per region.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zones: BTreeMap<String, String>,
    /// Instance type when neither gpuModel, instanceType nor a matching size is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// System disk category (e.g. `cloud_essd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_disk_category: Option<String>,
    /// System disk size in GiB.
    #[serde(
        default,
        rename = "systemDiskSizeGiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_disk_size_gib: Option<u32>,
}

/// Business keys → provider parameters. Data, not code: operators correct a mapping without a
/// release (mapping A100 to `ecs.gn7i-…`, an A10 family, is an easy mistake to make and fix).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Image key (e.g. `pytorch-1.12`) → provider image id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// GPU model (e.g. `A100`) → instance type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_models: BTreeMap<String, String>,
    /// Sizes for `cpu`/`memoryGiB` requests, smallest first wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<CatalogSize>,
    /// Per-region overrides of `images` and `gpuModels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, RegionCatalog>,
}

/// A general-purpose instance type and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSize {
    pub cpu: u32,
    #[serde(rename = "memoryGiB")]
    pub memory_gib: u32,
    pub instance_type: String,
}

/// Region-specific catalog entries, consulted before the global ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionCatalog {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gpu_models: BTreeMap<String, String>,
}

/// Client-side rate limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained calls per second.
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: u32,
    /// Burst above the sustained rate.
    #[schemars(range(min = 1, max = 10000))]
    pub burst: u32,
}

/// Observed state of a CloudProvider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudProviderStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available`: the driver's probe succeeded with the current credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}
