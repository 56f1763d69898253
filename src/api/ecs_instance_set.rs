//! `EcsInstanceSet`: a pool of identical EcsInstances ("8 A100 boxes for this team"), scaled with
//! `kubectl scale` (or an autoscaler, through the scale subresource) and rolled on template
//! changes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::Schema;
use serde::{Deserialize, Serialize};

use super::EcsInstanceSpec;

/// Label on every child naming its set (children are also found by their ownerReference).
pub const SET_LABEL: &str = "ecs.multicloud.io/set";

/// A set of EcsInstances made from one template. Children are named `<set>-<suffix>` and owned
/// by the set (ownerReference, controller). Scale down removes not-ready children first, then
/// the newest. A template change of a field a live instance can take (tags, openPorts,
/// publicIp, deletionPolicy) is patched onto the children in place; any other change replaces
/// them one at a time within `maxSurge`/`maxUnavailable`.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "ecs.multicloud.io",
    version = "v1alpha1",
    kind = "EcsInstanceSet",
    namespaced,
    shortname = "ecsset",
    status = "EcsInstanceSetStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Up-to-date","type":"integer","jsonPath":".status.updatedReplicas","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.maxSurge > 0 || self.maxUnavailable > 0").message("maxSurge and maxUnavailable cannot both be 0"),
    validation = Rule::new("!has(self.template.spec.adopt)").message("a set's template cannot adopt an existing instance"),
    validation = Rule::new("!has(self.spreadZones) || size(self.spreadZones) == 0 || !has(self.template.spec.placement)").message("spreadZones and template.spec.placement are exclusive: placement chooses each child's zone itself"),
    validation = Rule::new("has(self.selector) == has(oldSelf.selector) && (!has(self.selector) || self.selector == oldSelf.selector)").message("selector is immutable")
)]
pub struct EcsInstanceSetSpec {
    /// Number of EcsInstances wanted (0..1000).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// Selects the children for the scale subresource (HPA, KEDA). Optional: derived from the
    /// template's labels plus `ecs.multicloud.io/set`; when given it must select the template's
    /// labels (else `SelectorMismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// What each child is made of.
    pub template: EcsInstanceTemplate,

    /// How many children above `replicas` a replacement may create (default 1).
    #[serde(default = "default_max_surge")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_surge: i32,

    /// How many ready children a replacement may take away below `replicas` (default 0: a
    /// ready child is deleted only once its replacement is ready).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub max_unavailable: i32,

    /// Zones of the template's region to spread the children over: each new child goes to the
    /// zone holding the fewest, a scale down takes from the zone holding the most, and the
    /// template's own `zone` is not used. A change of the list replaces only the children in a
    /// zone no longer listed. Empty (default): every child in the template's zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 64)))]
    pub spread_zones: Vec<String>,
}

fn default_replicas() -> i32 {
    1
}

fn default_max_surge() -> i32 {
    1
}

/// The template of the children.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsInstanceTemplate {
    /// Labels (and annotations) given to every child.
    #[serde(default)]
    pub metadata: TemplateMetadata,
    /// The EcsInstance spec of every child. Unlike on an EcsInstance, every field may change
    /// here: a change the live children cannot take replaces them.
    #[schemars(schema_with = "template_spec_schema")]
    pub spec: EcsInstanceSpec,
}

/// Labels and annotations of the children.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The EcsInstance schema without its transition rules (`oldSelf`): they guard a live
/// instance, while a template's immutable fields change by replacing the children.
fn template_spec_schema(generator: &mut schemars::SchemaGenerator) -> Schema {
    let schema = generator.subschema_for::<EcsInstanceSpec>();
    if let Some(map) = schema.as_object() {
        let mut value = serde_json::Value::Object(map.clone());
        strip_transition_rules(&mut value);
        if let Ok(stripped) = Schema::try_from(value) {
            return stripped;
        }
    }
    schema
}

fn strip_transition_rules(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                rules.retain(|r| {
                    !r.get("rule")
                        .and_then(|r| r.as_str())
                        .is_some_and(|r| r.contains("oldSelf"))
                });
                if rules.is_empty() {
                    map.remove("x-kubernetes-validations");
                }
            }
            for v in map.values_mut() {
                strip_transition_rules(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_transition_rules),
        _ => {}
    }
}

/// Observed state of an EcsInstanceSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsInstanceSetStatus {
    /// Children that exist and are not being deleted.
    #[serde(default)]
    pub replicas: i32,
    /// Children whose `Ready` condition is True.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Ready children of the current template.
    #[serde(default)]
    pub available_replicas: i32,
    /// Children of the current template (ready or not).
    #[serde(default)]
    pub updated_replicas: i32,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The label selector of the children, in `kubectl get -l` form (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// `Ready`: every wanted child exists, runs the current template and is Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn template_keeps_value_rules_and_drops_transition_rules() {
        let crd = serde_json::to_string(&EcsInstanceSet::crd()).unwrap();
        assert!(
            !crd.contains("imageKey is immutable"),
            "transition rule kept"
        );
        assert!(crd.contains("ports must be in 1..65535"));
        assert!(crd.contains("set gpuModel or instanceType, not both"));
        assert!(crd.contains("specReplicasPath"));
    }
}
