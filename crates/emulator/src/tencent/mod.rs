//! Tencent Cloud API 3.0 front end of the emulator: `POST /` with a JSON body and `X-TC-*`
//! headers, TC3-HMAC-SHA256 verification (the server's own, [`crate::verify`]), dispatch by the
//! credential scope's service (`cvm`, `vpc` 2017-03-12; `tag`, `sts` 2018-08-13) and action,
//! Tencent response shapes (`{"Response": {..., "RequestId"}}`, errors as HTTP 200 with
//! `Response.Error`) and the Tencent semantics the model does not have: asynchronous EIP tasks,
//! EIP transitional states, the recycle bin of prepaid instances. Resources live in the model's
//! Tencent [`REALM`]: Tencent-style ids, Tencent regions, invisible to the Alibaba front end.
//!
//! Error codes come from the official SDK's `errorcodes.py` (cvm, vpc, tag) and the API 3.0
//! common error codes.

mod auth;
mod compute;
mod network;
mod request;
mod tag;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::EmulatorState;
use crate::model::{Faults, Idem, Kind, ModelError, Realm, Tags};

pub use auth::sign_for_tests;
use request::Body;

/// API version of CVM and VPC.
pub const CVM_VERSION: &str = "2017-03-12";
pub const VPC_VERSION: &str = "2017-03-12";
/// API version of Tag and STS.
pub const TAG_VERSION: &str = "2018-08-13";
pub const STS_VERSION: &str = "2018-08-13";

/// The emulated account's uin (main account id), as STS reports it and Tag names resources by.
pub const ACCOUNT_UIN: &str = "100000000001";

/// Regions of the Tencent realm (disjoint from the Alibaba ones, which keeps the realms apart).
pub const REGIONS: &[&str] = &[
    "ap-guangzhou",
    "ap-shanghai",
    "ap-beijing",
    "ap-nanjing",
    "ap-chengdu",
    "ap-chongqing",
    "ap-hongkong",
    "ap-singapore",
];

/// Zones per region: `<region>-1` .. `<region>-7`.
pub const ZONES_PER_REGION: u32 = 7;

/// The model realm of Tencent resources: `ins-xxxxxxxx`-style ids, Tencent regions.
pub const REALM: Realm = Realm {
    name: "tencent",
    short_ids: true,
    prefixes: &[("i", "ins"), ("vsw", "subnet"), ("vtb", "rtb")],
    regions: Some(REGIONS),
    zone_suffixes: Some(&["1", "2", "3", "4", "5", "6", "7"]),
};

/// Exactly what the SDK accepts: with `; charset=utf-8` the Python SDK ignores the body.
const CONTENT_TYPE: &str = "application/json";

/// Most finished tasks remembered (oldest forgotten first).
const TASK_CAPACITY: usize = 100_000;

/// A Tencent Cloud service, named by the credential scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Cvm,
    Vpc,
    Tag,
    Sts,
}

impl Service {
    pub fn from_scope(name: &str) -> Option<Self> {
        match name {
            "cvm" => Some(Self::Cvm),
            "vpc" => Some(Self::Vpc),
            "tag" => Some(Self::Tag),
            "sts" => Some(Self::Sts),
            _ => None,
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Self::Cvm => CVM_VERSION,
            Self::Vpc => VPC_VERSION,
            Self::Tag => TAG_VERSION,
            Self::Sts => STS_VERSION,
        }
    }
}

/// An error answer: Tencent code and message (HTTP 200, like the cloud).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    pub(crate) fn missing(name: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!("The request is missing a required parameter `{name}`."),
        )
    }

    pub(crate) fn invalid_value(name: &str, value: &str) -> Self {
        Self::new(
            "InvalidParameterValue",
            format!("The value `{value}` of parameter `{name}` is invalid."),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameter", message)
    }

    fn not_found(kind: Kind, id: &str, service: Service) -> Self {
        let code = match (kind, service) {
            (Kind::Instance, _) => "InvalidInstanceId.NotFound",
            (Kind::Eip, _) => "InvalidAddressId.NotFound",
            (Kind::Vpc, Service::Cvm) => "InvalidParameterValue.VpcIdNotExist",
            (Kind::Subnet, Service::Cvm) => "InvalidParameterValue.SubnetNotExist",
            (Kind::SecurityGroup, Service::Cvm) => "InvalidSecurityGroupId.NotFound",
            (Kind::Vpc, _) => "InvalidVpcId.NotFound",
            (Kind::SecurityGroup, _) => "InvalidSecurityGroupID.NotFound",
            (Kind::Subnet | Kind::SecurityGroupRule, _) => "ResourceNotFound",
        };
        Self::new(code, format!("The resource `{id}` does not exist."))
    }

    /// A model error as the given service reports it.
    fn from_model(e: ModelError, service: Service) -> Self {
        let message = e.to_string();
        let code = match &e {
            ModelError::NotFound { kind, id } => return Self::not_found(*kind, id, service),
            ModelError::Dependency { .. } => "ResourceInUse",
            ModelError::Quota(kind) => match kind {
                Kind::Instance => "LimitExceeded.InstanceQuota",
                Kind::Eip => "AddressQuotaLimitExceeded",
                Kind::SecurityGroupRule => "LimitExceeded.SecurityGroupPolicySet",
                Kind::Vpc | Kind::Subnet | Kind::SecurityGroup => "LimitExceeded",
            },
            ModelError::NoStock { .. } => "ResourceInsufficient.SpecifiedInstanceType",
            ModelError::InstanceStatus { status, .. } => {
                return Self::new(instance_state_code(model_state_wire(status)), message);
            }
            ModelError::EipStatus { .. } => "InvalidAddressState",
            ModelError::IdempotencyMismatch => "InvalidParameter",
            ModelError::UnknownInstanceType(_) => "InvalidParameterValue.InstanceTypeNotFound",
            ModelError::InvalidCidr(_) if service == Service::Vpc => {
                "InvalidParameterValue.Malformed"
            }
            ModelError::CidrOverlap(_) => "InvalidParameterValue.SubnetConflict",
            ModelError::UnknownRegion(_) => "UnsupportedRegion",
            ModelError::TagLimit(_) => "LimitExceeded.TagKeyPerResourceExceeded",
            ModelError::SubnetFull(_) => "FailedOperation.NoAvailableIpAddressCountInSubnet",
            ModelError::InvalidCidr(_) | ModelError::Invalid(_) => "InvalidParameterValue",
        };
        Self::new(code, message)
    }
}

/// `UnsupportedOperation.InstanceState<State>`: the CVM code refusing an action in a state.
fn instance_state_code(state: &str) -> String {
    let mut camel = String::new();
    for word in state.split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            camel.push(first.to_ascii_uppercase());
            camel.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    format!("UnsupportedOperation.InstanceState{camel}")
}

/// The Tencent state of a model status name (as [`ModelError::InstanceStatus`] carries it).
fn model_state_wire(status: &str) -> &'static str {
    match status {
        "Pending" => "PENDING",
        "Starting" => "STARTING",
        "Running" => "RUNNING",
        _ => "STOPPED",
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Results of an asynchronous VPC task, as DescribeTaskResult reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Task {
    done_at: Instant,
}

/// An EIP in a transitional state until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EipTransition {
    status: &'static str,
    until: Instant,
}

/// Per-instance facts of the Tencent wire the neutral model does not keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct InstanceExtra {
    /// Months of a PREPAID instance.
    period: Option<u32>,
    renew_flag: String,
    public_ip_assigned: bool,
    key_ids: Vec<String>,
}

/// What Tencent has and the provider-neutral model does not (held next to the model, always
/// locked after it): tasks of asynchronous calls, EIP transitions, the recycle bin, per-instance
/// wire facts and AllocateAddresses client tokens.
#[derive(Debug, Default)]
pub struct FrontState {
    tasks: BTreeMap<u64, Task>,
    next_task: u64,
    eips: HashMap<String, EipTransition>,
    /// PREPAID instances terminated once: SHUTDOWN until terminated again.
    recycled: HashSet<String>,
    instances: HashMap<String, InstanceExtra>,
    allocate_tokens: HashMap<String, Vec<String>>,
}

impl FrontState {
    /// A new task finishing `delay` from now; its id as the wire's string.
    fn task(&mut self, delay: Duration) -> String {
        self.next_task += 1;
        let id = 1_000_000 + self.next_task;
        self.tasks.insert(
            id,
            Task {
                done_at: Instant::now() + delay,
            },
        );
        while self.tasks.len() > TASK_CAPACITY {
            self.tasks.pop_first();
        }
        id.to_string()
    }

    /// Puts an EIP in a transitional state for `delay`.
    fn transition(&mut self, eip: &str, status: &'static str, delay: Duration) {
        let now = Instant::now();
        self.eips.retain(|_, t| t.until > now);
        if !delay.is_zero() {
            self.eips.insert(
                eip.to_string(),
                EipTransition {
                    status,
                    until: now + delay,
                },
            );
        }
    }

    /// The transitional state of an EIP at `now`, if any.
    fn eip_transition(&self, eip: &str, now: Instant) -> Option<&'static str> {
        self.eips
            .get(eip)
            .filter(|t| now < t.until)
            .map(|t| t.status)
    }

    /// Forgets everything about a deleted instance.
    pub(crate) fn forget_instance(&mut self, id: &str) {
        self.recycled.remove(id);
        self.instances.remove(id);
    }
}

fn request_id() -> String {
    let mut rng = rand::rng();
    let a: u32 = rng.random();
    let b: u16 = rng.random();
    let c: u16 = (rng.random::<u16>() & 0x0FFF) | 0x4000;
    let d: u16 = (rng.random::<u16>() & 0x3FFF) | 0x8000;
    let e: u64 = rng.random::<u64>() & 0xFFFF_FFFF_FFFF;
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error_response(state: &EmulatorState, err: &ApiError) -> Response {
    state.count_error(&err.code);
    json_response(
        StatusCode::OK,
        json!({"Response": {
            "Error": {"Code": err.code, "Message": err.message},
            "RequestId": request_id(),
        }}),
    )
}

fn ok_response(mut body: Value) -> Response {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("RequestId".into(), Value::String(request_id()));
    }
    json_response(StatusCode::OK, json!({ "Response": body }))
}

/// What a call came to: an answer, an error answer, or a lost answer.
enum Outcome {
    Ok(Value),
    Err(ApiError),
    Lost,
}

/// The axum handler of every Tencent call (the router sends TC3-signed requests here).
pub async fn handle(
    State(state): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serve(&state, &method, &uri, &headers, &body).await {
        Outcome::Ok(v) => ok_response(v),
        Outcome::Err(e) => error_response(&state, &e),
        Outcome::Lost => {
            // What a client sees when the connection drops after the cloud acted: a gateway
            // error (the SDK raises a network error, a driver retries).
            state.count_error("LostResponse");
            (
                StatusCode::GATEWAY_TIMEOUT,
                [(header::CONTENT_TYPE, "text/plain")],
                "The request was carried out but its response was lost.",
            )
                .into_response()
        }
    }
}

/// Whether a request is for this front end: a TC3 signature, or Tencent's action header.
pub fn is_tencent_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("TC3-"))
        || headers.contains_key("x-tc-action")
}

/// Every business parameter as `dotted.path = value` pairs (for the call log).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

async fn serve(
    state: &EmulatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    let call = match auth::authenticate(state, method, uri, headers, body) {
        Ok(call) => call,
        Err(e) => return Outcome::Err(e),
    };
    let params = match parse_body(body) {
        Ok(p) => p,
        Err(e) => return Outcome::Err(e),
    };
    state.count_call(&call.action);
    let faults = state.faults();
    let result = match injected_error(&faults, &call.action).await {
        Some(e) => Err(e),
        None => dispatch(state, &call, &params),
    };
    let lost = result.is_ok() && faults.lose_response(&call.action);
    let mut pairs = Vec::new();
    flatten("", &Value::Object(params), &mut pairs);
    state.log_call(
        &call.action,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        result.as_ref().err().map(|e| e.code.as_str()),
        lost,
    );
    match result {
        _ if lost => Outcome::Lost,
        Ok(v) => Outcome::Ok(v),
        Err(e) => Outcome::Err(e),
    }
}

/// The JSON body as an object (an empty body is `{}`).
fn parse_body(body: &[u8]) -> ApiResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::invalid("The request body is not a JSON object.")),
    }
}

/// Latency, then the throttling or server error the faults call for, if any.
async fn injected_error(faults: &Faults, action: &str) -> Option<ApiError> {
    if !faults.applies_to(action) {
        return None;
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.throttle_rate <= 0.0 && faults.error_rate <= 0.0 {
        return None;
    }
    let roll: f64 = rand::rng().random();
    if roll < faults.throttle_rate {
        return Some(ApiError::new(
            "RequestLimitExceeded",
            "The number of requests exceeds the frequency limit.",
        ));
    }
    if roll < faults.throttle_rate + faults.error_rate {
        return Some(ApiError::new(
            "InternalError",
            "An internal error occurred.",
        ));
    }
    None
}

/// A verified call: which service, action and region.
#[derive(Debug)]
pub(crate) struct Call {
    /// The SecretId that signed the call.
    pub access_key_id: String,
    pub service: Service,
    pub action: String,
    /// `X-TC-Region`, empty when absent.
    pub region: String,
}

impl Call {
    /// The region, required and one of the realm's.
    fn region(&self) -> ApiResult<&str> {
        if self.region.is_empty() {
            return Err(ApiError::missing("Region"));
        }
        if !REGIONS.contains(&self.region.as_str()) {
            return Err(ApiError::new(
                "UnsupportedRegion",
                format!("The region `{}` is not supported.", self.region),
            ));
        }
        Ok(&self.region)
    }
}

/// Top-level request parameters per action, from the official SDK's `*Request` models: anything
/// else is refused with `UnknownParameter`, as the cloud does (it catches misspelt fields).
const KNOWN_PARAMS: &[(&str, &[&str])] = &[
    ("DescribeRegions", &[]),
    ("DescribeZones", &[]),
    ("DescribeZoneInstanceConfigInfos", &["Filters"]),
    (
        "RunInstances",
        &[
            "InstanceChargeType",
            "InstanceChargePrepaid",
            "Placement",
            "InstanceType",
            "ImageId",
            "SystemDisk",
            "DataDisks",
            "VirtualPrivateCloud",
            "InternetAccessible",
            "InstanceCount",
            "MinCount",
            "InstanceName",
            "LoginSettings",
            "SecurityGroupIds",
            "EnhancedService",
            "ClientToken",
            "HostName",
            "ActionTimer",
            "DisasterRecoverGroupIds",
            "TagSpecification",
            "InstanceMarketOptions",
            "UserData",
            "Metadata",
            "DryRun",
            "CpuTopology",
            "CamRoleName",
            "HpcClusterId",
            "LaunchTemplate",
            "DedicatedClusterId",
            "ChcIds",
            "PartitionNumber",
            "DisableApiTermination",
            "EnableJumboFrame",
            "NetworkInterfaces",
        ],
    ),
    (
        "DescribeInstances",
        &["InstanceIds", "Filters", "Offset", "Limit"],
    ),
    (
        "DescribeInstancesStatus",
        &["InstanceIds", "Offset", "Limit"],
    ),
    (
        "TerminateInstances",
        &["InstanceIds", "ReleaseAddress", "ReleasePrepaidDataDisks"],
    ),
    ("StartInstances", &["InstanceIds"]),
    (
        "AssociateSecurityGroups",
        &["SecurityGroupIds", "InstanceIds"],
    ),
    (
        "StopInstances",
        &["InstanceIds", "ForceStop", "StopType", "StoppedMode"],
    ),
    (
        "InquiryPriceRunInstances",
        &[
            "Placement",
            "ImageId",
            "InstanceChargeType",
            "InstanceChargePrepaid",
            "InstanceType",
            "SystemDisk",
            "DataDisks",
            "VirtualPrivateCloud",
            "InternetAccessible",
            "InstanceCount",
            "InstanceName",
            "LoginSettings",
            "SecurityGroupIds",
            "EnhancedService",
            "ClientToken",
            "HostName",
            "TagSpecification",
            "InstanceMarketOptions",
            "Metadata",
            "HpcClusterId",
            "CpuTopology",
            "LaunchTemplate",
            "NetworkInterfaces",
        ],
    ),
    (
        "CreateVpc",
        &[
            "VpcName",
            "StackType",
            "CidrBlock",
            "Ipv6CidrBlock",
            "AddressType",
            "EnableMulticast",
            "DnsServers",
            "DomainName",
            "Tags",
            "EnableRouteVpcPublish",
            "EnableRouteVpcPublishIpv6",
        ],
    ),
    ("DescribeVpcs", &["VpcIds", "Filters", "Offset", "Limit"]),
    ("DeleteVpc", &["VpcId"]),
    (
        "CreateSubnet",
        &[
            "VpcId",
            "SubnetName",
            "Zone",
            "StackType",
            "CidrBlock",
            "Ipv6CidrBlock",
            "Tags",
            "CdcId",
        ],
    ),
    (
        "DescribeSubnets",
        &[
            "SubnetIds",
            "Filters",
            "Offset",
            "Limit",
            "MaxResults",
            "NextToken",
        ],
    ),
    ("DeleteSubnet", &["SubnetId"]),
    (
        "CreateSecurityGroup",
        &["GroupName", "GroupDescription", "ProjectId", "Tags"],
    ),
    (
        "DescribeSecurityGroups",
        &[
            "SecurityGroupIds",
            "Filters",
            "Offset",
            "Limit",
            "OrderField",
            "OrderDirection",
        ],
    ),
    ("DeleteSecurityGroup", &["SecurityGroupId"]),
    (
        "CreateSecurityGroupPolicies",
        &["SecurityGroupId", "SecurityGroupPolicySet"],
    ),
    (
        "DeleteSecurityGroupPolicies",
        &["SecurityGroupId", "SecurityGroupPolicySet"],
    ),
    (
        "DescribeSecurityGroupPolicies",
        &["SecurityGroupId", "Filters"],
    ),
    (
        "AllocateAddresses",
        &[
            "AddressCount",
            "InternetServiceProvider",
            "InternetChargeType",
            "IPChargeType",
            "InternetMaxBandwidthOut",
            "AddressChargePrepaid",
            "AddressType",
            "AnycastZone",
            "VipCluster",
            "ApplicableForCLB",
            "Tags",
            "BandwidthPackageId",
            "AddressName",
            "DedicatedClusterId",
            "IsDedicatedAddressPool",
            "Egress",
            "AntiDDoSPackageId",
            "ClientToken",
        ],
    ),
    (
        "AssociateAddress",
        &[
            "AddressId",
            "InstanceId",
            "NetworkInterfaceId",
            "PrivateIpAddress",
            "EipDirectConnection",
            "InstanceRegion",
        ],
    ),
    (
        "DisassociateAddress",
        &["AddressId", "ReallocateNormalPublicIp"],
    ),
    ("ReleaseAddresses", &["AddressIds"]),
    (
        "DescribeAddresses",
        &["AddressIds", "Filters", "Offset", "Limit"],
    ),
    (
        "ModifyAddressesBandwidth",
        &[
            "AddressIds",
            "InternetMaxBandwidthOut",
            "StartTime",
            "EndTime",
        ],
    ),
    ("DescribeTaskResult", &["TaskId", "DealName"]),
    ("TagResources", &["ResourceList", "Tags"]),
    ("UnTagResources", &["ResourceList", "TagKeys"]),
    (
        "GetResources",
        &[
            "ResourceList",
            "TagFilters",
            "PaginationToken",
            "MaxResults",
        ],
    ),
    ("GetCallerIdentity", &[]),
];

/// Which service serves each action.
fn service_of(action: &str) -> Option<Service> {
    Some(match action {
        "DescribeRegions"
        | "DescribeZones"
        | "DescribeZoneInstanceConfigInfos"
        | "RunInstances"
        | "DescribeInstances"
        | "DescribeInstancesStatus"
        | "TerminateInstances"
        | "StartInstances"
        | "StopInstances"
        | "AssociateSecurityGroups"
        | "InquiryPriceRunInstances" => Service::Cvm,
        "TagResources" | "UnTagResources" | "GetResources" => Service::Tag,
        "GetCallerIdentity" => Service::Sts,
        _ if KNOWN_PARAMS.iter().any(|(a, _)| *a == action) => Service::Vpc,
        _ => return None,
    })
}

/// Refuses parameters the action does not know.
fn check_known(action: &str, params: &Map<String, Value>) -> ApiResult<()> {
    let known = KNOWN_PARAMS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, k)| *k)
        .unwrap_or_default();
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::new(
            "UnknownParameter",
            format!("The parameter `{unknown}` is not recognized."),
        )),
        None => Ok(()),
    }
}

fn dispatch(state: &EmulatorState, call: &Call, params: &Map<String, Value>) -> ApiResult<Value> {
    let action = call.action.as_str();
    if service_of(action) != Some(call.service) {
        return Err(ApiError::new(
            "InvalidAction",
            format!(
                "The action `{action}` does not exist in service {:?} (version {}).",
                call.service,
                call.service.version()
            ),
        ));
    }
    check_known(action, params)?;
    authorize(state, call, params)?;
    let body = Body::root(params);
    let now = Instant::now();
    match call.service {
        Service::Cvm => compute::dispatch(state, call, &body, now),
        Service::Vpc => network::dispatch(state, call, &body, now),
        Service::Tag | Service::Sts => tag::dispatch(state, call, &body),
    }
}

/// The key's CAM policy, if any, as the cloud applies it: `UnauthorizedOperation` naming the
/// operation and resource, in the usual HTTP 200 error body.
fn authorize(state: &EmulatorState, call: &Call, params: &Map<String, Value>) -> ApiResult<()> {
    let service = match call.service {
        Service::Cvm => "cvm",
        Service::Vpc => "vpc",
        Service::Tag => "tag",
        Service::Sts => "sts",
    };
    let request = crate::policy::tencent_call(service, &call.action, &call.region, params);
    state
        .authorize(&call.access_key_id, crate::policy::Grammar::Cam, &request)
        .map_err(|d| {
            ApiError::new(
                "UnauthorizedOperation",
                format!(
                    "you are not authorized to perform operation ({})\nresource ({}) has no permission",
                    d.action, d.resource
                ),
            )
        })
}

// ---- Shapes shared by the services ----

/// `[{"Key","Value"}]`, the tag shape of CVM and VPC.
fn tag_set(tags: &Tags) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// `YYYY-MM-DD hh:mm:ss`, the VPC API's time format.
fn time_vpc(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// `YYYY-MM-DDThh:mm:ssZ`, the CVM API's time format.
fn time_cvm(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The ClientToken of a creating call: at most 64 ASCII characters. A replay returns the first
/// answer whatever the other parameters (CVM documents no mismatch error).
fn client_token(body: &Body, action: &str) -> ApiResult<Option<Idem>> {
    let Some(token) = body.str("ClientToken")?.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if token.len() > 64 {
        return Err(ApiError::new(
            "InvalidClientToken.TooLong",
            "The ClientToken must be at most 64 characters long.",
        ));
    }
    if !token.is_ascii() {
        return Err(ApiError::invalid_value("ClientToken", token));
    }
    Ok(Some(Idem {
        scope: format!("{}:{action}", REALM.name),
        token: token.to_string(),
        fingerprint: String::new(),
    }))
}
