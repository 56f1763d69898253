//! The "decide" half of the EcsInstanceSet reconciler: from the set and its children, which
//! children to create, delete and patch, and the status that results. Pure: no API server.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

use crate::api::ecs_instance_set::SET_LABEL;
use crate::api::{EcsInstanceSpec, Reason};

/// Fields of an EcsInstance spec a live instance takes in place. Every other field (image,
/// type, GPU model, disk, zone, provider, placement, login...) is immutable on an EcsInstance,
/// so a template change of it replaces the children.
pub const MUTABLE_FIELDS: &[&str] = &["tags", "openPorts", "publicIp", "deletionPolicy"];

/// What the planner needs to know of one child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub name: String,
    /// `metadata.creationTimestamp` (RFC 3339; orders "newest").
    pub created: String,
    /// Being deleted: neither counted nor acted on.
    pub deleting: bool,
    /// Its immutable fields are the template's.
    pub up_to_date: bool,
    /// Its mutable fields and labels are the template's.
    pub in_sync: bool,
    /// `Ready` is True.
    pub ready: bool,
    /// A terminal failure (phase Failed): its reason.
    pub failed: Option<String>,
    /// `spec.zone`.
    pub zone: Option<String>,
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// New children of the current template to create.
    pub create: usize,
    /// Children to delete (their cloud resources go through the EcsInstance finalizer).
    pub delete: Vec<String>,
    /// Up-to-date children whose mutable fields or labels must be patched in place.
    pub patch: Vec<String>,
}

/// The `n` children a scale down removes: not-ready first, then, one at a time, the newest of
/// the zone holding the most of those left (so a spread set stays balanced; a set in one zone
/// simply loses its newest). The name breaks ties, for determinism.
fn removals<'a>(children: &[&'a Child], n: usize) -> Vec<&'a Child> {
    let mut left: Vec<&Child> = children.to_vec();
    let mut removed = Vec::with_capacity(n);
    while removed.len() < n && !left.is_empty() {
        let mut per_zone: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        for c in &left {
            *per_zone.entry(c.zone.as_deref()).or_default() += 1;
        }
        let crowd = |c: &Child| per_zone.get(&c.zone.as_deref()).copied().unwrap_or(0);
        let Some(pick) = left
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                a.ready
                    .cmp(&b.ready)
                    .then_with(|| crowd(b).cmp(&crowd(a)))
                    .then_with(|| b.created.cmp(&a.created))
                    .then_with(|| b.name.cmp(&a.name))
            })
            .map(|(i, _)| i)
        else {
            break;
        };
        removed.push(left.swap_remove(pick));
    }
    removed
}

/// Zones for `n` new children: each goes to the listed zone holding the fewest live children
/// (list order breaks ties). Empty when the set does not spread.
pub fn zones_for_new(spread: &[String], children: &[Child], n: usize) -> Vec<String> {
    let mut zones: Vec<&String> = Vec::new();
    for z in spread {
        if !zones.contains(&z) {
            zones.push(z);
        }
    }
    if zones.is_empty() {
        return Vec::new();
    }
    let mut counts: Vec<usize> = zones
        .iter()
        .map(|z| {
            children
                .iter()
                .filter(|c| !c.deleting && c.zone.as_ref() == Some(*z))
                .count()
        })
        .collect();
    (0..n)
        .map(|_| {
            let (i, _) = counts
                .iter()
                .enumerate()
                .min_by_key(|(i, c)| (**c, *i))
                .unwrap_or((0, &0));
            counts[i] += 1;
            zones[i].clone()
        })
        .collect()
}

/// Decides one step towards `replicas` children of the current template.
///
/// - Without outdated children: create the missing, delete the surplus (not-ready first, then
///   the newest).
/// - With outdated children (an immutable field changed): outdated not-ready children go at
///   once (they serve nothing); an outdated ready child goes only while the ready count stays
///   at least `replicas - max_unavailable` — and never below what it is (nothing is deleted
///   while fewer are ready); new children are created while the total stays within
///   `replicas + max_surge`.
pub fn decide(
    replicas: usize,
    max_surge: usize,
    max_unavailable: usize,
    children: &[Child],
) -> Decision {
    let live: Vec<&Child> = children.iter().filter(|c| !c.deleting).collect();
    let mut current: Vec<&Child> = live.iter().copied().filter(|c| c.up_to_date).collect();
    let mut outdated: Vec<&Child> = live.iter().copied().filter(|c| !c.up_to_date).collect();
    let mut decision = Decision::default();

    // Surplus of the current template (a scale down, or one during a rollout).
    if current.len() > replicas {
        let gone = removals(&current, current.len() - replicas);
        decision.delete.extend(gone.iter().map(|c| c.name.clone()));
        current.retain(|c| !gone.iter().any(|g| g.name == c.name));
    }

    if !outdated.is_empty() {
        // Not-ready outdated children first: deleting them costs no readiness.
        let (not_ready, ready): (Vec<&Child>, Vec<&Child>) =
            outdated.drain(..).partition(|c| !c.ready);
        decision
            .delete
            .extend(not_ready.iter().map(|c| c.name.clone()));
        let mut ready = ready;
        let ready_total = current.iter().filter(|c| c.ready).count() + ready.len();
        let floor = replicas.saturating_sub(max_unavailable);
        // Surplus of outdated children beyond `replicas` goes too, within the same floor.
        let removable = ready_total.saturating_sub(floor);
        // Oldest first: they have run the old template the longest.
        ready.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        let take = removable.min(ready.len());
        decision
            .delete
            .extend(ready.drain(..take).map(|c| c.name.clone()));
        outdated = ready;
    }

    let total = current.len() + outdated.len();
    let missing = replicas.saturating_sub(current.len());
    let room = if outdated.is_empty() {
        missing
    } else {
        (replicas + max_surge).saturating_sub(total)
    };
    decision.create = missing.min(room);

    decision.patch = current
        .iter()
        .chain(outdated.iter())
        .filter(|c| c.up_to_date && !c.in_sync)
        .map(|c| c.name.clone())
        .collect();
    decision
}

/// The counts of the status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub updated: i32,
}

pub fn counts(children: &[Child]) -> Counts {
    let live = || children.iter().filter(|c| !c.deleting);
    let n = |it: usize| i32::try_from(it).unwrap_or(i32::MAX);
    Counts {
        replicas: n(live().count()),
        ready: n(live().filter(|c| c.ready).count()),
        available: n(live().filter(|c| c.ready && c.up_to_date).count()),
        updated: n(live().filter(|c| c.up_to_date).count()),
    }
}

/// The set's `Ready` condition: (status, reason, message).
pub fn readiness(replicas: i32, counts: Counts, children: &[Child]) -> (bool, Reason, String) {
    if let Some(failed) = children.iter().find(|c| !c.deleting && c.failed.is_some()) {
        return (
            false,
            Reason::ChildFailed,
            format!(
                "EcsInstance {} failed: {}",
                failed.name,
                failed.failed.clone().unwrap_or_default()
            ),
        );
    }
    let summary = format!(
        "{} of {replicas} ready, {} up to date, {} present",
        counts.ready, counts.updated, counts.replicas
    );
    if counts.updated < counts.replicas {
        (false, Reason::RollingUpdate, summary)
    } else if counts.replicas < replicas {
        (false, Reason::ScalingUp, summary)
    } else if counts.replicas > replicas {
        (false, Reason::ScalingDown, summary)
    } else if counts.ready < replicas {
        (false, Reason::ScalingUp, summary)
    } else {
        (true, Reason::Ready, summary)
    }
}

/// The spec as JSON with only the mutable fields (`mutable == true`) or without them.
pub fn view(spec: &EcsInstanceSpec, mutable: bool) -> Value {
    let Ok(Value::Object(map)) = serde_json::to_value(spec) else {
        return Value::Null;
    };
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| MUTABLE_FIELDS.contains(&k.as_str()) == mutable)
            .collect(),
    )
}

/// Whether a child's immutable fields are the template's. In a spread set the zone is the
/// set's choice, not the template's: any listed zone is current.
pub fn up_to_date(child: &EcsInstanceSpec, template: &EcsInstanceSpec, spread: &[String]) -> bool {
    if spread.is_empty() {
        return view(child, false) == view(template, false);
    }
    let without_zone = |spec: &EcsInstanceSpec| {
        let mut v = view(spec, false);
        if let Value::Object(map) = &mut v {
            map.remove("zone");
        }
        v
    };
    child.zone.as_ref().is_some_and(|z| spread.contains(z))
        && without_zone(child) == without_zone(template)
}

/// A JSON merge patch (RFC 7386) turning `old` into `new`; `None` when they are equal.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, v) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

/// The labels every child carries: the template's plus the set's own.
pub fn child_labels(set: &str, template: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = template.clone();
    labels.insert(SET_LABEL.to_string(), set.to_string());
    labels
}

/// The selector of the children: the given one, else the child labels.
pub fn selector(
    set: &str,
    given: Option<&LabelSelector>,
    template: &BTreeMap<String, String>,
) -> LabelSelector {
    given.cloned().unwrap_or_else(|| LabelSelector {
        match_labels: Some(child_labels(set, template)),
        match_expressions: None,
    })
}

/// Whether a selector selects `labels` (matchLabels and the four matchExpressions operators).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// A selector in `kubectl get -l` form (the scale subresource's `labelSelectorPath`).
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn child(name: &str, created: &str, up_to_date: bool, ready: bool) -> Child {
        Child {
            name: name.into(),
            created: created.into(),
            deleting: false,
            up_to_date,
            in_sync: true,
            ready,
            failed: None,
            zone: None,
        }
    }

    fn at(i: u32) -> String {
        format!("2026-01-01T00:00:{i:02}Z")
    }

    #[test]
    fn scale_up_from_zero_creates_all_at_once() {
        let d = decide(5, 1, 0, &[]);
        assert_eq!(d.create, 5);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn scale_down_removes_not_ready_first_then_newest() {
        let children = vec![
            child("a", &at(1), true, true),
            child("b", &at(2), true, false),
            child("c", &at(3), true, true),
            child("d", &at(4), true, true),
            child("e", &at(5), true, true),
        ];
        let d = decide(2, 1, 0, &children);
        assert_eq!(d.create, 0);
        assert_eq!(d.delete, vec!["b", "e", "d"]);
        assert_eq!(decide(0, 1, 0, &children).delete.len(), 5);
    }

    #[test]
    fn children_being_deleted_are_not_counted() {
        let mut gone = child("x", &at(1), true, true);
        gone.deleting = true;
        let d = decide(2, 1, 0, &[gone, child("a", &at(2), true, true)]);
        assert_eq!(d.create, 1);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn rollout_surges_one_and_never_drops_below_the_ready_count() {
        // Three ready children of the old template.
        let old: Vec<Child> = (1..=3)
            .map(|i| child(&format!("o{i}"), &at(i), false, true))
            .collect();
        let d = decide(3, 1, 0, &old);
        assert_eq!((d.create, d.delete.len()), (1, 0), "surge first");

        // The new child is not ready yet: nothing more.
        let mut step = old.clone();
        step.push(child("n1", &at(10), true, false));
        assert_eq!(decide(3, 1, 0, &step), Decision::default());

        // Ready: the oldest outdated child goes and the next new one is created.
        step[3].ready = true;
        let d = decide(3, 1, 0, &step);
        assert_eq!(d.delete, vec!["o1"]);
        assert_eq!(d.create, 1);

        // The ready count never falls below 3 along the way.
        let ready_after = step.iter().filter(|c| c.ready).count() - d.delete.len();
        assert!(ready_after >= 3);
    }

    #[test]
    fn rollout_with_max_unavailable_deletes_before_creating() {
        let old: Vec<Child> = (1..=3)
            .map(|i| child(&format!("o{i}"), &at(i), false, true))
            .collect();
        let d = decide(3, 0, 1, &old);
        assert_eq!(d.delete, vec!["o1"]);
        assert_eq!(d.create, 1);
    }

    #[test]
    fn outdated_not_ready_children_go_at_once_and_nothing_when_too_few_are_ready() {
        let children = vec![
            child("o1", &at(1), false, false),
            child("o2", &at(2), false, true),
        ];
        let d = decide(3, 1, 0, &children);
        assert_eq!(d.delete, vec!["o1"]);
        // One outdated ready child, floor 3: it stays; three new ones fit in 3 + 1 surge.
        assert_eq!(d.create, 3);
    }

    #[test]
    fn mutable_changes_patch_up_to_date_children_only() {
        let mut a = child("a", &at(1), true, true);
        a.in_sync = false;
        let mut o = child("o", &at(2), false, true);
        o.in_sync = false;
        let d = decide(1, 1, 0, &[a, o]);
        assert_eq!(d.patch, vec!["a"]);
    }

    fn spec(extra: Value) -> EcsInstanceSpec {
        let mut base = json!({"userId": "u1", "imageKey": "pytorch-1.12", "provider": "ALIYUN"});
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn ports_tags_and_public_ip_are_mutable_image_and_type_are_not() {
        let base = spec(json!({"openPorts": [22], "tags": {"a": "1"}}));
        let ports = spec(json!({"openPorts": [22, 80], "tags": {"b": "2"},
            "publicIp": {"allocate": true}}));
        assert!(up_to_date(&ports, &base, &[]));
        assert!(!up_to_date(
            &spec(json!({"imageKey": "ubuntu-22.04"})),
            &base,
            &[]
        ));
        assert!(!up_to_date(&spec(json!({"gpuModel": "A100"})), &base, &[]));
        let patch = merge_patch(&view(&base, true), &view(&ports, true)).unwrap();
        assert_eq!(
            patch,
            json!({"openPorts": [22, 80], "tags": {"a": null, "b": "2"},
                "publicIp": {"allocate": true, "bandwidthMbps": 5, "bandwidthMode": "TRAFFIC"}})
        );
        assert_eq!(merge_patch(&view(&base, true), &view(&base, true)), None);
    }

    #[test]
    fn a_spread_set_takes_any_listed_zone_as_current() {
        let spread = ["z-a".to_string(), "z-b".to_string()];
        let template = spec(json!({"zone": "z-a"}));
        assert!(up_to_date(
            &spec(json!({"zone": "z-b"})),
            &template,
            &spread
        ));
        assert!(!up_to_date(
            &spec(json!({"zone": "z-c"})),
            &template,
            &spread
        ));
        assert!(!up_to_date(&spec(json!({})), &template, &spread));
        assert!(!up_to_date(
            &spec(json!({"zone": "z-a", "imageKey": "ubuntu-22.04"})),
            &template,
            &spread
        ));
        assert!(!up_to_date(&spec(json!({"zone": "z-b"})), &template, &[]));
    }

    fn in_zone(name: &str, created: &str, ready: bool, zone: &str) -> Child {
        Child {
            zone: Some(zone.into()),
            ..child(name, created, true, ready)
        }
    }

    #[test]
    fn new_children_fill_the_emptiest_zones_in_list_order() {
        let spread: Vec<String> = ["z-a", "z-b", "z-c"].map(String::from).to_vec();
        assert_eq!(
            zones_for_new(&spread, &[], 5),
            ["z-a", "z-b", "z-c", "z-a", "z-b"]
        );
        let mut gone = in_zone("g", &at(9), true, "z-b");
        gone.deleting = true;
        let have = [
            in_zone("a", &at(1), true, "z-a"),
            in_zone("b", &at(2), true, "z-a"),
            in_zone("c", &at(3), true, "z-c"),
            gone,
        ];
        assert_eq!(zones_for_new(&spread, &have, 3), ["z-b", "z-b", "z-c"]);
        assert!(zones_for_new(&[], &have, 3).is_empty());
        let twice: Vec<String> = ["z-a", "z-a"].map(String::from).to_vec();
        assert_eq!(zones_for_new(&twice, &[], 2), ["z-a", "z-a"]);
    }

    #[test]
    fn scale_down_of_a_spread_set_keeps_the_zones_balanced() {
        let children = vec![
            in_zone("a1", &at(1), true, "z-a"),
            in_zone("a2", &at(2), true, "z-a"),
            in_zone("a3", &at(3), true, "z-a"),
            in_zone("b1", &at(4), true, "z-b"),
            in_zone("b2", &at(5), false, "z-b"),
            in_zone("c1", &at(6), true, "z-c"),
        ];
        // The not-ready one first, then the newest of the most crowded zone each time.
        assert_eq!(decide(3, 1, 0, &children).delete, vec!["b2", "a3", "a2"]);
    }

    #[test]
    fn readiness_reports_failures_rollouts_and_scaling() {
        let ready = vec![child("a", &at(1), true, true)];
        let (ok, reason, _) = readiness(1, counts(&ready), &ready);
        assert!(ok);
        assert_eq!(reason, Reason::Ready);
        let (_, reason, _) = readiness(2, counts(&ready), &ready);
        assert_eq!(reason, Reason::ScalingUp);
        let (_, reason, _) = readiness(0, counts(&ready), &ready);
        assert_eq!(reason, Reason::ScalingDown);
        let mixed = vec![child("a", &at(1), false, true)];
        assert_eq!(
            readiness(1, counts(&mixed), &mixed).1,
            Reason::RollingUpdate
        );
        let mut failed = child("f", &at(1), true, false);
        failed.failed = Some("UnknownImageKey".into());
        let (ok, reason, message) = readiness(1, counts(&[failed.clone()]), &[failed]);
        assert!(!ok);
        assert_eq!(reason, Reason::ChildFailed);
        assert!(message.contains("UnknownImageKey"));
    }

    #[test]
    fn selectors_derive_from_template_labels_and_render_for_kubectl() {
        let labels = BTreeMap::from([("team".to_string(), "ml".to_string())]);
        let s = selector("pool", None, &labels);
        assert!(selects(&s, &child_labels("pool", &labels)));
        assert!(!selects(&s, &labels));
        assert_eq!(selector_string(&s), "ecs.multicloud.io/set=pool,team=ml");
        let given: LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["ml", "cv"]}]
        }))
        .unwrap();
        assert!(selects(&given, &labels));
        assert_eq!(selector_string(&given), "team in (ml,cv)");
    }
}
