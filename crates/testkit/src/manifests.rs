//! Manifests of the operator's objects as JSON (what a user would apply), and the helpers to send
//! them through a dynamic client.

use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use mce_emulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};
use serde_json::{Value, json};

pub const API_VERSION: &str = "ecs.multicloud.io/v1alpha1";
pub const REGION: &str = "cn-hangzhou";
pub const ZONE: &str = "cn-hangzhou-i";
/// Field manager of the server-side applies of tests and benchmarks.
pub const FIELD_MANAGER: &str = "multicloud-ecs-tests";
/// Name of the credentials Secret a [`provider_manifest`] refers to.
pub const CREDENTIALS_SECRET: &str = "creds";

/// The data of a [`CREDENTIALS_SECRET`] the emulator accepts (its default keys).
pub const EMULATOR_CREDENTIALS: [(&str, &str); 2] = [
    ("accessKeyId", DEFAULT_ACCESS_KEY_ID),
    ("accessKeySecret", DEFAULT_ACCESS_KEY_SECRET),
];

/// A random CloudProvider code (`T` + 8 hex digits).
pub fn random_code() -> String {
    format!("T{:08X}", rand::random::<u32>())
}

/// A CloudProvider like the quickstart's, on `endpoint`, with credentials in
/// `secret_ns/`[`CREDENTIALS_SECRET`].
pub fn provider_manifest(
    name: &str,
    code: &str,
    endpoint: &str,
    secret_ns: &str,
    disabled: bool,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "CloudProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "ALIYUN",
            "code": code,
            "credentialsSecretRef": {"name": CREDENTIALS_SECRET, "namespace": secret_ns},
            "endpoint": endpoint,
            "rateLimit": {"requestsPerSecond": 5000, "burst": 10000},
            "disabled": disabled,
            "defaults": {
                "region": REGION,
                "zones": {REGION: ZONE, "cn-beijing": "cn-beijing-a"},
                "instanceType": "ecs.g7.large",
                "systemDiskCategory": "cloud_essd",
                "systemDiskSizeGiB": 40
            },
            "catalog": {
                "images": {
                    "centos-7.9": "centos_7_9_x64_20G_alibase_20220824.vhd",
                    "ubuntu-20.04": "ubuntu_20_04_x64_20G_alibase_20220824.vhd",
                    "pytorch-1.12": "pytorch_1_12_cuda11_3_ubuntu20_04"
                },
                "gpuModels": {
                    "A100": "ecs.gn7-c12g1.3xlarge",
                    "A10": "ecs.gn7i-c8g1.2xlarge",
                    "T4": "ecs.gn6i-c4g1.xlarge"
                },
                "sizes": [
                    {"cpu": 2, "memoryGiB": 8, "instanceType": "ecs.g7.large"},
                    {"cpu": 4, "memoryGiB": 16, "instanceType": "ecs.g7.xlarge"}
                ]
            }
        }
    })
}

/// An EcsInstance on provider `code` for `user`; `extra` is merged into the spec.
pub fn instance_manifest(name: &str, code: &str, user: &str, extra: Value) -> Value {
    let mut spec = json!({
        "provider": code,
        "region": REGION,
        "userId": user,
        "imageKey": "ubuntu-20.04",
        "chargeMode": "ON_DEMAND",
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": API_VERSION,
        "kind": "EcsInstance",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// JSON merge patch (RFC 7386) of `patch` into `target`.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

/// The `ApiResource` of a typed resource, for a dynamic `Api`.
pub fn ar<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// A manifest as a `DynamicObject`.
pub fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("valid object")
}
