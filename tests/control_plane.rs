//! Smoke test of the real control plane through the Rust client: the API machinery the operator
//! relies on (CRDs, server-side apply of status, watches, RBAC) behaves as in a production cluster.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use mce_testkit::control_plane;
use mce_testkit::namespace::TestNamespace;
use serde_json::json;

const CRD_NAME: &str = "widgets.smoke.multicloud.io";

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "smoke.multicloud.io",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}},
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
                    }
                }}
            }]
        }
    }))
    .expect("valid CRD")
}

#[tokio::test]
async fn control_plane_serves_crds_status_watches_and_rbac() {
    let client = control_plane::shared().client().await;

    // List namespaces: the apiserver created its own.
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap();
    let names: Vec<String> = namespaces.items.iter().map(|n| n.name_any()).collect();
    assert!(
        names.contains(&"default".to_string()),
        "namespaces: {names:?}"
    );

    // Create (apply: the control plane is shared by reruns) a CRD and wait until Established.
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(
        CRD_NAME,
        &PatchParams::apply("smoke-test").force(),
        &Patch::Apply(widget_crd()),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds.clone(), CRD_NAME, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .unwrap();

    // Create an object in a fresh namespace.
    let ns = TestNamespace::create(&client, "smoke", &[]).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "smoke.multicloud.io",
        "v1",
        "Widget",
    ));
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), &ns.name, &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "smoke.multicloud.io/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();

    // Schema validation is enforced by the server.
    let invalid: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "smoke.multicloud.io/v1", "kind": "Widget",
        "metadata": {"name": "w-invalid"}, "spec": {"size": 0}
    }))
    .unwrap();
    let err = widgets
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err}"
    );

    // A watch started now sees the status written by server-side apply.
    let watch = watcher(
        widgets.clone(),
        watcher::Config::default().fields("metadata.name=w1"),
    )
    .applied_objects()
    .try_filter(|w| {
        let ready = w.data.pointer("/status/phase").and_then(|p| p.as_str()) == Some("Ready");
        futures::future::ready(ready)
    })
    .boxed();
    let status_patch = json!({
        "apiVersion": "smoke.multicloud.io/v1", "kind": "Widget",
        "status": {"phase": "Ready"}
    });
    let patched = widgets
        .patch_status(
            "w1",
            &PatchParams::apply("smoke-test").force(),
            &Patch::Apply(status_patch),
        )
        .await
        .unwrap();
    assert_eq!(
        patched
            .data
            .pointer("/status/phase")
            .and_then(|p| p.as_str()),
        Some("Ready")
    );
    let mut watch = watch;
    let seen = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("watch saw the change in time")
        .expect("watch stream open")
        .unwrap();
    assert_eq!(seen.name_any(), "w1");

    // A non-admin identity may not create CRDs.
    let user = control_plane::shared().user_client("smoke-user").await;
    let user_crds = Api::<CustomResourceDefinition>::all(user);
    let mut other = widget_crd();
    other.metadata.name = Some("gadgets.smoke.multicloud.io".into());
    let err = user_crds
        .create(&PostParams::default(), &other)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "expected Forbidden, got {err}"
    );
}
