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

/// What a test needs to know to order a machine on one cloud of the emulator: the
/// CloudProvider's type, placement defaults and catalog (data, as a platform admin writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloudFixture {
    pub provider_type: &'static str,
    pub region: &'static str,
    pub zone: &'static str,
    /// A second region and its zone.
    pub other_region: (&'static str, &'static str),
    pub instance_type: &'static str,
    pub larger_instance_type: &'static str,
    pub disk_category: &'static str,
    /// Business image key → image id; `ubuntu-20.04` is what [`instance_manifest`] orders.
    pub images: [(&'static str, &'static str); 3],
    pub gpu_models: [(&'static str, &'static str); 3],
    /// The action that deletes an instance.
    pub delete_instance_action: &'static str,
}

/// Alibaba Cloud (gn7 is the A100 family, gn7i A10, gn6i T4).
pub const ALIYUN: CloudFixture = CloudFixture {
    provider_type: "ALIYUN",
    region: REGION,
    zone: ZONE,
    other_region: ("cn-beijing", "cn-beijing-a"),
    instance_type: "ecs.g7.large",
    larger_instance_type: "ecs.g7.xlarge",
    disk_category: "cloud_essd",
    images: [
        ("centos-7.9", "centos_7_9_x64_20G_alibase_20220824.vhd"),
        ("ubuntu-20.04", "ubuntu_20_04_x64_20G_alibase_20220824.vhd"),
        ("pytorch-1.12", "pytorch_1_12_cuda11_3_ubuntu20_04"),
    ],
    gpu_models: [
        ("A100", "ecs.gn7-c12g1.3xlarge"),
        ("A10", "ecs.gn7i-c8g1.2xlarge"),
        ("T4", "ecs.gn6i-c4g1.xlarge"),
    ],
    delete_instance_action: "DeleteInstance",
};

/// Tencent Cloud (GT4 is the A100 family, PNV4 A10, GN7 T4; image ids are per region).
pub const TENCENT: CloudFixture = CloudFixture {
    provider_type: "TENCENT",
    region: "ap-guangzhou",
    zone: "ap-guangzhou-3",
    other_region: ("ap-shanghai", "ap-shanghai-2"),
    instance_type: "S5.MEDIUM8",
    larger_instance_type: "S5.LARGE16",
    disk_category: "CLOUD_PREMIUM",
    images: [
        ("centos-7.9", "img-l8og963d"),
        ("ubuntu-20.04", "img-22trbn9x"),
        ("pytorch-1.12", "img-pytorch112"),
    ],
    gpu_models: [
        ("A100", "GT4.4XLARGE96"),
        ("A10", "PNV4.7XLARGE116"),
        ("T4", "GN7.2XLARGE32"),
    ],
    delete_instance_action: "TerminateInstances",
};

/// AWS EC2 (p4d is the A100 family, g5 A10G, g4dn T4; AMI ids are per region).
pub const AWS: CloudFixture = CloudFixture {
    provider_type: "AWS",
    region: "us-east-1",
    zone: "us-east-1a",
    other_region: ("us-west-2", "us-west-2a"),
    instance_type: "m5.large",
    larger_instance_type: "m5.xlarge",
    disk_category: "gp3",
    images: [
        ("centos-7.9", "ami-0aedf6b1cb669b4c7"),
        ("ubuntu-20.04", "ami-0149b2da6ceec4bb0"),
        ("pytorch-1.12", "ami-0a7de32b1c9e3e2f1"),
    ],
    gpu_models: [
        ("A100", "p4d.24xlarge"),
        ("A10", "g5.xlarge"),
        ("T4", "g4dn.xlarge"),
    ],
    delete_instance_action: "TerminateInstances",
};

impl CloudFixture {
    /// The fixture of a provider type, if there is one.
    pub fn of(provider_type: &str) -> Option<&'static CloudFixture> {
        [&ALIYUN, &TENCENT, &AWS]
            .into_iter()
            .find(|c| c.provider_type == provider_type)
    }

    /// The image id of the catalog's business `key`.
    pub fn image(&self, key: &str) -> &'static str {
        self.images
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("{key} not in the {} fixture", self.provider_type))
    }

    /// The GPU instance type of the catalog's `model`.
    pub fn gpu_type(&self, model: &str) -> &'static str {
        self.gpu_models
            .iter()
            .find(|(m, _)| *m == model)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("{model} not in the {} fixture", self.provider_type))
    }
}

/// A CloudProvider like the quickstart's on Alibaba Cloud: see [`provider_manifest_on`].
pub fn provider_manifest(
    name: &str,
    code: &str,
    endpoint: &str,
    secret_ns: &str,
    disabled: bool,
) -> Value {
    provider_manifest_on(&ALIYUN, name, code, endpoint, secret_ns, disabled)
}

/// A CloudProvider of `cloud` on `endpoint`, with credentials in
/// `secret_ns/`[`CREDENTIALS_SECRET`].
pub fn provider_manifest_on(
    cloud: &CloudFixture,
    name: &str,
    code: &str,
    endpoint: &str,
    secret_ns: &str,
    disabled: bool,
) -> Value {
    let pairs = |list: &[(&str, &str)]| -> serde_json::Map<String, Value> {
        list.iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect()
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": "CloudProvider",
        "metadata": {"name": name},
        "spec": {
            "type": cloud.provider_type,
            "code": code,
            "credentialsSecretRef": {"name": CREDENTIALS_SECRET, "namespace": secret_ns},
            "endpoint": endpoint,
            "rateLimit": {"requestsPerSecond": 5000, "burst": 10000},
            "disabled": disabled,
            "defaults": {
                "region": cloud.region,
                "zones": {cloud.region: cloud.zone, cloud.other_region.0: cloud.other_region.1},
                "instanceType": cloud.instance_type,
                "systemDiskCategory": cloud.disk_category,
                "systemDiskSizeGiB": 40
            },
            "catalog": {
                "images": pairs(&cloud.images),
                "gpuModels": pairs(&cloud.gpu_models),
                "sizes": [
                    {"cpu": 2, "memoryGiB": 8, "instanceType": cloud.instance_type},
                    {"cpu": 4, "memoryGiB": 16, "instanceType": cloud.larger_instance_type}
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
