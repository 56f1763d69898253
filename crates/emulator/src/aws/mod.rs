//! AWS front end of the emulator: the EC2 Query API (2016-11-15) and the Price List Query API
//! (`GetProducts`), signed with AWS Signature Version 4 (verified by hand, [`auth`]).
//!
//! EC2 calls are `POST /` with a form body (or `GET` with a query) of flattened parameters
//! (`Filter.1.Name`, `InstanceId.1`, `TagSpecification.1.Tag.1.Key`), answered in XML
//! (`<XxxResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`, lower-camel names,
//! `<xxxSet><item>` lists) exactly as botocore's EC2 service model reads them; errors are
//! `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>` with a
//! 4xx/5xx status. Resources live in the model's AWS [`REALM`] (17-digit hex ids, AWS regions);
//! what the neutral model does not have is kept here ([`FrontState`]): internet gateways, key
//! pairs, routes, the default security group of each VPC, reservations, the `stopping` and
//! `shutting-down` states and terminated instances, which stay visible for an hour.
//!
//! Access policies are IAM documents (`{"Version": "2012-10-17", ...}`) evaluated per resource
//! ARN (see [`crate::policy::IamCall`]); `DryRun=true` answers `DryRunOperation` (412) when the
//! policy allows the call, `UnauthorizedOperation` (403) when not.

mod auth;
mod compute;
mod network;
mod pricing;
mod request;
#[cfg(test)]
mod tests;
mod xml;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::Timestamp;
use rand::Rng;

use crate::EmulatorState;
use crate::model::{Faults, Instance, Kind, Model, ModelError, Realm, Tags};
use crate::policy::{IamCall, IamResource};

pub use auth::{Service, Sigv4Header, sign_for_tests};
use request::Params;
use xml::Xml;

/// The EC2 API version.
pub const EC2_VERSION: &str = "2016-11-15";
/// The namespace of EC2 answers.
pub const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
/// The emulated AWS account id (owner of every resource, in ARNs).
pub const ACCOUNT_ID: &str = "123456789012";

/// Regions of the AWS realm (disjoint from the other clouds' regions).
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
];

/// Regions serving the Price List Query API.
pub const PRICING_REGIONS: &[&str] = &["us-east-1", "eu-central-1", "ap-south-1"];

/// The model realm of AWS resources.
pub const REALM: Realm = Realm {
    name: "aws",
    short_ids: true,
    prefixes: &[
        ("vsw", "subnet"),
        ("vtb", "rtb"),
        ("vrt", "vgw"),
        ("eip", "eipalloc"),
    ],
    regions: Some(REGIONS),
    zone_suffixes: None,
};

/// The availability zones of a region (`us-east-1a` ...), as the account sees them.
pub fn zones(region: &str) -> Vec<String> {
    let suffixes: &[&str] = match region {
        "us-east-1" => &["a", "b", "c", "d", "e", "f"],
        "us-west-2" => &["a", "b", "c", "d"],
        "us-west-1" => &["a", "c"],
        _ => &["a", "b", "c"],
    };
    suffixes.iter().map(|s| format!("{region}{s}")).collect()
}

/// The zone id of a zone (`us-east-1a` is `use1-az1`).
fn zone_id(zone: &str) -> String {
    let (region, suffix) = zone.split_at(zone.len().saturating_sub(1));
    let parts: Vec<&str> = region.split('-').collect();
    let middle = match parts.get(1).copied().unwrap_or_default() {
        "northeast" => "ne".to_string(),
        "southeast" => "se".to_string(),
        "northwest" => "nw".to_string(),
        "southwest" => "sw".to_string(),
        other => other.chars().take(1).collect(),
    };
    let n = suffix
        .bytes()
        .next()
        .map_or(1, |b| u32::from(b.saturating_sub(b'a')) + 1);
    format!(
        "{}{middle}{}-az{n}",
        parts.first().copied().unwrap_or_default(),
        parts.get(2).copied().unwrap_or_default()
    )
}

/// One instance type of the catalogue: vCPUs, memory (GiB), GPUs and their model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceTypeInfo {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: f64,
    pub gpus: u32,
    pub gpu_model: &'static str,
}

/// The instance types the AWS realm offers (prices in the model's table, USD).
pub const INSTANCE_TYPES: &[InstanceTypeInfo] = &[
    info("t3.micro", 2, 1.0, 0, ""),
    info("t3.medium", 2, 4.0, 0, ""),
    info("m5.large", 2, 8.0, 0, ""),
    info("m5.xlarge", 4, 16.0, 0, ""),
    info("c5.large", 2, 4.0, 0, ""),
    info("g4dn.xlarge", 4, 16.0, 1, "T4"),
    info("g5.xlarge", 4, 16.0, 1, "A10G"),
    info("p3.2xlarge", 8, 61.0, 1, "V100"),
    info("p4d.24xlarge", 96, 1152.0, 8, "A100"),
    info("p5.48xlarge", 192, 2048.0, 8, "H100"),
];

const fn info(
    name: &'static str,
    vcpus: u32,
    memory_gib: f64,
    gpus: u32,
    gpu_model: &'static str,
) -> InstanceTypeInfo {
    InstanceTypeInfo {
        name,
        vcpus,
        memory_gib,
        gpus,
        gpu_model,
    }
}

pub fn instance_type_info(name: &str) -> Option<&'static InstanceTypeInfo> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// Images the realm knows by id (any well-formed `ami-` id is accepted too).
pub const IMAGES: &[(&str, &str)] = &[
    (
        "ami-0c7217cdde317cfec",
        "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server",
    ),
    (
        "ami-0a0c8eebcdd6dcbd0",
        "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.1 (Ubuntu 20.04)",
    ),
    ("ami-0230bd60aa48260c6", "al2023-ami-2023-x86_64"),
];

/// How long terminated instances stay visible to DescribeInstances.
const TERMINATED_VISIBLE: Duration = Duration::from_secs(3600);
/// Most terminated instances remembered (oldest forgotten first).
const TERMINATED_CAPACITY: usize = 10_000;

/// An error answer: HTTP status, EC2 code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// A client error (HTTP 400).
    pub(crate) fn bad(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub(crate) fn missing(name: &str) -> Self {
        Self::bad(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    pub(crate) fn invalid_value(name: &str, value: &str) -> Self {
        Self::bad(
            "InvalidParameterValue",
            format!("Value ({value}) for parameter {name} is invalid."),
        )
    }

    fn not_found(kind: Kind, id: &str) -> Self {
        let (code, message) = match kind {
            Kind::Vpc => (
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            ),
            Kind::Subnet => (
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ),
            Kind::SecurityGroup | Kind::SecurityGroupRule => (
                "InvalidGroup.NotFound",
                format!("The security group '{id}' does not exist"),
            ),
            Kind::Instance => (
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{id}' does not exist"),
            ),
            Kind::Eip => (
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{id}' does not exist"),
            ),
        };
        Self::bad(code, message)
    }

    /// A model error as EC2 reports it.
    fn from_model(e: ModelError) -> Self {
        let message = e.to_string();
        match e {
            ModelError::NotFound { kind, id } => Self::not_found(kind, &id),
            ModelError::Dependency { kind, id, .. } => {
                let what = match kind {
                    Kind::SecurityGroup => {
                        return Self::bad(
                            "DependencyViolation",
                            format!("resource {id} has a dependent object"),
                        );
                    }
                    Kind::Subnet => "subnet",
                    _ => "vpc",
                };
                Self::bad(
                    "DependencyViolation",
                    format!("The {what} '{id}' has dependencies and cannot be deleted."),
                )
            }
            ModelError::Quota(kind) => {
                let (code, message) = match kind {
                    Kind::Vpc => (
                        "VpcLimitExceeded",
                        "The maximum number of VPCs has been reached.",
                    ),
                    Kind::Subnet => (
                        "SubnetLimitExceeded",
                        "The maximum number of subnets has been reached.",
                    ),
                    Kind::SecurityGroup => (
                        "SecurityGroupLimitExceeded",
                        "The maximum number of security groups has been reached.",
                    ),
                    Kind::SecurityGroupRule => (
                        "RulesPerSecurityGroupLimitExceeded",
                        "The maximum number of rules per security group has been reached.",
                    ),
                    Kind::Instance => (
                        "InstanceLimitExceeded",
                        "You have requested more instances than your current instance limit allows for the specified instance type.",
                    ),
                    Kind::Eip => (
                        "AddressLimitExceeded",
                        "The maximum number of addresses has been reached.",
                    ),
                };
                Self::bad(code, message)
            }
            ModelError::NoStock {
                instance_type,
                zone,
            } => Self::new(
                500,
                "InsufficientInstanceCapacity",
                format!(
                    "We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested ({zone}). Our system will be working on provisioning additional capacity. You can currently get {instance_type} capacity by not specifying an Availability Zone in your request or choosing a different Availability Zone."
                ),
            ),
            ModelError::InstanceStatus { .. } => Self::bad("IncorrectInstanceState", message),
            ModelError::EipStatus { .. } => Self::bad("InvalidIPAddress.InUse", message),
            ModelError::IdempotencyMismatch => Self::bad(
                "IdempotentParameterMismatch",
                "The client token you have provided is associated with a resource that is already deleted or has different parameters. Please use a different client token.",
            ),
            ModelError::CidrOverlap(cidr) => Self::bad(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ),
            ModelError::TagLimit(id) => Self::bad(
                "TagLimitExceeded",
                format!("The maximum number of tags for resource {id} has been reached."),
            ),
            ModelError::SubnetFull(id) => Self::bad(
                "InsufficientFreeAddressesInSubnet",
                format!(
                    "There are not enough free addresses in subnet '{id}' to satisfy the requested number of instances."
                ),
            ),
            ModelError::UnknownInstanceType(t) => Self::invalid_value("InstanceType", &t),
            ModelError::UnknownRegion(_) | ModelError::InvalidCidr(_) | ModelError::Invalid(_) => {
                Self::bad("InvalidParameterValue", message)
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Per-instance facts of the EC2 wire the neutral model does not keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct InstanceExtra {
    reservation_id: String,
    client_token: String,
    launch_index: u32,
    key_name: Option<String>,
    volume_id: String,
    volume_type: String,
    device_name: String,
    eni_id: String,
    launched: Option<Timestamp>,
}

/// A terminated instance, as DescribeInstances still shows it for a while.
#[derive(Clone, Debug)]
struct Terminated {
    instance: Instance,
    extra: InstanceExtra,
    gone_at: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct InternetGateway {
    id: String,
    region: String,
    vpc_id: Option<String>,
    tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPair {
    id: String,
    name: String,
    region: String,
    key_type: String,
    fingerprint: String,
    public_key: String,
    tags: Tags,
    created: Timestamp,
}

/// A route other than the VPC's local one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    destination: String,
    gateway_id: String,
}

/// What EC2 has and the provider-neutral model does not (held next to the model, always locked
/// after it).
#[derive(Debug, Default)]
pub struct FrontState {
    instances: HashMap<String, InstanceExtra>,
    /// Instances shutting down, until the time they are terminated.
    terminating: HashMap<String, Instant>,
    /// Stopped instances still `stopping`, until the time they are `stopped`.
    stopping: HashMap<String, Instant>,
    terminated: BTreeMap<String, Terminated>,
    internet_gateways: BTreeMap<String, InternetGateway>,
    key_pairs: BTreeMap<String, KeyPair>,
    /// Routes by route table id (the model's VPC `route_table_id`, the main table).
    routes: HashMap<String, Vec<Route>>,
    route_table_tags: HashMap<String, Tags>,
    /// The `default` security group of each VPC.
    default_groups: HashMap<String, String>,
    /// EIP association id → allocation id.
    associations: HashMap<String, String>,
}

impl FrontState {
    /// Moves the instances whose shutdown is over out of the model (terminated), and forgets
    /// terminated ones no longer shown.
    fn settle(&mut self, m: &mut Model, now: Instant) {
        let done: Vec<String> = self
            .terminating
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            self.terminating.remove(&id);
            self.stopping.remove(&id);
            let Some(instance) = m.instances.get(&id).cloned() else {
                continue;
            };
            if let Some(eip) = &instance.eip_id {
                self.associations.retain(|_, alloc| alloc != eip);
            }
            let _ = m.delete_instances(&instance.region, std::slice::from_ref(&id), true, now);
            let extra = self.instances.remove(&id).unwrap_or_default();
            self.terminated.insert(
                id,
                Terminated {
                    instance,
                    extra,
                    gone_at: now + TERMINATED_VISIBLE,
                },
            );
        }
        self.terminated.retain(|_, t| t.gone_at > now);
        while self.terminated.len() > TERMINATED_CAPACITY {
            let oldest = self
                .terminated
                .iter()
                .min_by_key(|(_, t)| t.gone_at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    self.terminated.remove(&id);
                }
                None => break,
            }
        }
        self.stopping.retain(|_, at| *at > now);
    }

    /// Forgets everything about an instance deleted out of band.
    pub(crate) fn forget_instance(&mut self, id: &str) {
        self.instances.remove(id);
        self.terminating.remove(id);
        self.stopping.remove(id);
    }

    /// The front end's own resources, for `GET /_emulator/resources`.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let igws: Vec<serde_json::Value> = self
            .internet_gateways
            .values()
            .map(|g| {
                serde_json::json!({"id": g.id, "region": g.region, "vpcId": g.vpc_id, "tags": g.tags})
            })
            .collect();
        let keys: Vec<serde_json::Value> = self
            .key_pairs
            .values()
            .map(|k| {
                serde_json::json!({"id": k.id, "name": k.name, "region": k.region, "tags": k.tags})
            })
            .collect();
        serde_json::json!({
            "counts": {"internetGateways": igws.len(), "keyPairs": keys.len()},
            "internetGateways": igws,
            "keyPairs": keys,
        })
    }
}

/// A new id of a resource the front end keeps: `<prefix>-0` and 16 hex digits.
fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let n: u64 = rng.random();
    format!("{prefix}-0{:016x}", n)
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

const XML_CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

fn xml_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, XML_CONTENT_TYPE)], body).into_response()
}

fn error_response(state: &EmulatorState, err: &ApiError) -> Response {
    state.count_error(&err.code);
    xml_response(
        err.status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            xml::escape(&err.code),
            xml::escape(&err.message),
            request_id()
        ),
    )
}

fn ok_response(action: &str, body: Xml) -> Response {
    xml_response(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{XMLNS}\"><requestId>{}</requestId>{}</{action}Response>",
            request_id(),
            body.into_string()
        ),
    )
}

fn lost_response(state: &EmulatorState) -> Response {
    // What a client sees when the connection drops after the cloud acted: a gateway error
    // (botocore retries it, with the same ClientToken).
    state.count_error("LostResponse");
    (
        StatusCode::GATEWAY_TIMEOUT,
        [(header::CONTENT_TYPE, "text/plain")],
        "The request was carried out but its response was lost.",
    )
        .into_response()
}

/// Whether a request is for this front end: a SigV4 `Authorization` header.
pub fn is_aws_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256"))
}

/// The axum handler of every AWS call (the router sends SigV4-signed requests here).
pub async fn handle(
    State(state): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match auth::authenticate(&state, &method, &uri, &headers, &body) {
        Ok(c) => c,
        Err(e) => {
            return if pricing::is_pricing_request(&headers) {
                let key_known = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Sigv4Header::parse)
                    .is_some_and(|h| state.secret_of(&h.access_key_id).is_some());
                pricing::error_response(&state, &pricing::from_auth(e, key_known))
            } else {
                error_response(&state, &e)
            };
        }
    };
    if caller.service == Service::Pricing {
        return pricing::serve(&state, &caller, &headers, &body).await;
    }
    match serve(&state, &caller, &method, &uri, &headers, &body).await {
        Outcome::Ok(action, x) => ok_response(&action, x),
        Outcome::Err(e) => error_response(&state, &e),
        Outcome::Lost => lost_response(&state),
    }
}

enum Outcome {
    Ok(String, Xml),
    Err(ApiError),
    Lost,
}

/// Latency, then the throttling or server error the faults call for, if any.
pub(crate) async fn injected_error(faults: &Faults, action: &str) -> Option<ApiError> {
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
            503,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ));
    }
    if roll < faults.throttle_rate + faults.error_rate {
        return Some(ApiError::new(
            500,
            "InternalError",
            "An internal error has occurred",
        ));
    }
    None
}

/// The request's parameters: the query, and the form body of a POST.
fn params_of(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> ApiResult<Params> {
    let bad = || {
        ApiError::bad(
            "InvalidParameterValue",
            "The request is not correctly form-encoded.",
        )
    };
    if *method != Method::GET && *method != Method::POST {
        return Err(ApiError::new(
            405,
            "UnsupportedHttpVerb",
            format!("The HTTP verb {method} is not supported."),
        ));
    }
    let mut pairs = request::parse_pairs(uri.query().unwrap_or_default()).ok_or_else(bad)?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && !body.is_empty() {
        if !is_form {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                "The request body must be application/x-www-form-urlencoded.",
            ));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad())?;
        pairs.extend(request::parse_pairs(text).ok_or_else(bad)?);
    }
    Ok(Params::from_pairs(&pairs))
}

async fn serve(
    state: &EmulatorState,
    caller: &auth::Caller,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    let p = match params_of(method, uri, headers, body) {
        Ok(p) => p,
        Err(e) => return Outcome::Err(e),
    };
    let Some(action) = p.get("Action").filter(|a| !a.is_empty()).map(String::from) else {
        return Outcome::Err(ApiError::bad(
            "MissingAction",
            "The request must contain the parameter Action",
        ));
    };
    match p.get("Version") {
        Some(EC2_VERSION) => {}
        None => return Outcome::Err(ApiError::missing("Version")),
        Some(other) => {
            return Outcome::Err(ApiError::bad(
                "NoSuchVersion",
                format!("The requested version ({other}) of service AmazonEC2 does not exist"),
            ));
        }
    }
    let Some(known) = known_params(&action) else {
        return Outcome::Err(ApiError::bad(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        ));
    };
    state.count_call(&action);
    let faults = state.faults();
    let result = match injected_error(&faults, &action).await {
        Some(e) => Err(e),
        None => check_known(&p, known).and_then(|()| dispatch(state, caller, &action, &p)),
    };
    let lost = result.is_ok() && faults.lose_response(&action);
    state.log_call(
        &action,
        p.0.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "Action" | "Version"))
            .map(|(k, v)| (k.as_str(), v.as_str())),
        result.as_ref().err().map(|e| e.code.as_str()),
        lost,
    );
    match result {
        _ if lost => Outcome::Lost,
        Ok(x) => Outcome::Ok(action, x),
        Err(e) => Outcome::Err(e),
    }
}

/// Refuses parameters the action does not know (the cloud's `UnknownParameter`).
fn check_known(p: &Params, known: &[&str]) -> ApiResult<()> {
    for name in p.top_level() {
        if !matches!(name, "Action" | "Version") && !known.contains(&name) {
            return Err(ApiError::bad(
                "UnknownParameter",
                format!("The parameter {name} is not recognized"),
            ));
        }
    }
    Ok(())
}

fn known_params(action: &str) -> Option<&'static [&'static str]> {
    KNOWN_PARAMS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, k)| *k)
}

/// The actions served and their top-level parameters (query names), from botocore's EC2
/// service model.
const KNOWN_PARAMS: &[(&str, &[&str])] = &[
    (
        "CreateVpc",
        &[
            "CidrBlock",
            "Ipv6Pool",
            "Ipv6CidrBlock",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
            "Ipv6CidrBlockNetworkBorderGroup",
            "VpcEncryptionControl",
            "TagSpecification",
            "DryRun",
            "InstanceTenancy",
            "AmazonProvidedIpv6CidrBlock",
        ],
    ),
    (
        "DescribeVpcs",
        &["Filter", "VpcId", "NextToken", "MaxResults", "DryRun"],
    ),
    ("DeleteVpc", &["VpcId", "DryRun"]),
    (
        "CreateSubnet",
        &[
            "TagSpecification",
            "AvailabilityZone",
            "AvailabilityZoneId",
            "CidrBlock",
            "Ipv6CidrBlock",
            "OutpostArn",
            "VpcId",
            "Ipv6Native",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
            "DryRun",
        ],
    ),
    (
        "DescribeSubnets",
        &["Filter", "SubnetId", "NextToken", "MaxResults", "DryRun"],
    ),
    ("DeleteSubnet", &["SubnetId", "DryRun"]),
    (
        "CreateSecurityGroup",
        &[
            "GroupDescription",
            "GroupName",
            "VpcId",
            "TagSpecification",
            "DryRun",
        ],
    ),
    (
        "DescribeSecurityGroups",
        &[
            "GroupId",
            "GroupName",
            "NextToken",
            "MaxResults",
            "DryRun",
            "Filter",
        ],
    ),
    (
        "AuthorizeSecurityGroupIngress",
        &[
            "CidrIp",
            "FromPort",
            "GroupId",
            "GroupName",
            "IpPermissions",
            "IpProtocol",
            "SourceSecurityGroupName",
            "SourceSecurityGroupOwnerId",
            "ToPort",
            "TagSpecification",
            "DryRun",
        ],
    ),
    (
        "RevokeSecurityGroupIngress",
        &[
            "CidrIp",
            "FromPort",
            "GroupId",
            "GroupName",
            "IpPermissions",
            "IpProtocol",
            "SourceSecurityGroupName",
            "SourceSecurityGroupOwnerId",
            "ToPort",
            "SecurityGroupRuleId",
            "DryRun",
        ],
    ),
    ("DeleteSecurityGroup", &["GroupId", "GroupName", "DryRun"]),
    ("CreateInternetGateway", &["TagSpecification", "DryRun"]),
    (
        "AttachInternetGateway",
        &["DryRun", "InternetGatewayId", "VpcId"],
    ),
    (
        "DetachInternetGateway",
        &["DryRun", "InternetGatewayId", "VpcId"],
    ),
    ("DeleteInternetGateway", &["DryRun", "InternetGatewayId"]),
    (
        "DescribeInternetGateways",
        &[
            "NextToken",
            "MaxResults",
            "DryRun",
            "InternetGatewayId",
            "Filter",
        ],
    ),
    (
        "DescribeRouteTables",
        &[
            "NextToken",
            "MaxResults",
            "DryRun",
            "RouteTableId",
            "Filter",
        ],
    ),
    (
        "CreateRoute",
        &[
            "DestinationPrefixListId",
            "VpcEndpointId",
            "TransitGatewayId",
            "LocalGatewayId",
            "CarrierGatewayId",
            "CoreNetworkArn",
            "OdbNetworkArn",
            "DryRun",
            "RouteTableId",
            "DestinationCidrBlock",
            "GatewayId",
            "DestinationIpv6CidrBlock",
            "EgressOnlyInternetGatewayId",
            "InstanceId",
            "NetworkInterfaceId",
            "VpcPeeringConnectionId",
            "NatGatewayId",
        ],
    ),
    (
        "DeleteRoute",
        &[
            "DestinationPrefixListId",
            "DryRun",
            "RouteTableId",
            "DestinationCidrBlock",
            "DestinationIpv6CidrBlock",
        ],
    ),
    (
        "RunInstances",
        &[
            "BlockDeviceMapping",
            "ImageId",
            "InstanceType",
            "Ipv6AddressCount",
            "Ipv6Address",
            "KernelId",
            "KeyName",
            "MaxCount",
            "MinCount",
            "Monitoring",
            "Placement",
            "RamdiskId",
            "SecurityGroupId",
            "SecurityGroup",
            "SubnetId",
            "UserData",
            "ElasticGpuSpecification",
            "ElasticInferenceAccelerator",
            "TagSpecification",
            "LaunchTemplate",
            "InstanceMarketOptions",
            "CreditSpecification",
            "CpuOptions",
            "CapacityReservationSpecification",
            "HibernationOptions",
            "LicenseSpecification",
            "MetadataOptions",
            "EnclaveOptions",
            "PrivateDnsNameOptions",
            "MaintenanceOptions",
            "DisableApiStop",
            "EnablePrimaryIpv6",
            "NetworkPerformanceOptions",
            "Operator",
            "SecondaryInterface",
            "DryRun",
            "DisableApiTermination",
            "InstanceInitiatedShutdownBehavior",
            "PrivateIpAddress",
            "ClientToken",
            "AdditionalInfo",
            "NetworkInterface",
            "IamInstanceProfile",
            "EbsOptimized",
        ],
    ),
    (
        "DescribeInstances",
        &[
            "InstanceId",
            "IncludeManagedResources",
            "DryRun",
            "Filter",
            "NextToken",
            "MaxResults",
        ],
    ),
    (
        "TerminateInstances",
        &["InstanceId", "Force", "SkipOsShutdown", "DryRun"],
    ),
    (
        "StartInstances",
        &["InstanceId", "AdditionalInfo", "DryRun"],
    ),
    (
        "ModifyInstanceAttribute",
        &[
            "SourceDestCheck",
            "DisableApiStop",
            "DryRun",
            "InstanceId",
            "Attribute",
            "Value",
            "BlockDeviceMapping",
            "DisableApiTermination",
            "InstanceType",
            "Kernel",
            "Ramdisk",
            "UserData",
            "InstanceInitiatedShutdownBehavior",
            "GroupId",
            "EbsOptimized",
            "SriovNetSupport",
            "EnaSupport",
        ],
    ),
    (
        "StopInstances",
        &[
            "InstanceId",
            "Hibernate",
            "SkipOsShutdown",
            "DryRun",
            "Force",
        ],
    ),
    ("CreateTags", &["DryRun", "ResourceId", "Tag"]),
    ("DeleteTags", &["DryRun", "ResourceId", "Tag"]),
    (
        "DescribeTags",
        &["DryRun", "Filter", "MaxResults", "NextToken"],
    ),
    (
        "AllocateAddress",
        &[
            "Domain",
            "Address",
            "PublicIpv4Pool",
            "NetworkBorderGroup",
            "CustomerOwnedIpv4Pool",
            "TagSpecification",
            "IpamPoolId",
            "DryRun",
        ],
    ),
    (
        "AssociateAddress",
        &[
            "AllocationId",
            "InstanceId",
            "PublicIp",
            "DryRun",
            "NetworkInterfaceId",
            "PrivateIpAddress",
            "AllowReassociation",
        ],
    ),
    (
        "DisassociateAddress",
        &["AssociationId", "PublicIp", "DryRun"],
    ),
    (
        "ReleaseAddress",
        &["AllocationId", "PublicIp", "NetworkBorderGroup", "DryRun"],
    ),
    (
        "DescribeAddresses",
        &["PublicIp", "DryRun", "Filter", "AllocationId"],
    ),
    (
        "ImportKeyPair",
        &["TagSpecification", "DryRun", "KeyName", "PublicKeyMaterial"],
    ),
    (
        "CreateKeyPair",
        &[
            "KeyName",
            "KeyType",
            "TagSpecification",
            "KeyFormat",
            "DryRun",
        ],
    ),
    (
        "DescribeImages",
        &[
            "ImageId",
            "Owner",
            "ExecutableBy",
            "Filter",
            "IncludeDeprecated",
            "IncludeDisabled",
            "MaxResults",
            "NextToken",
            "DryRun",
        ],
    ),
    (
        "DescribeKeyPairs",
        &[
            "KeyName",
            "KeyPairId",
            "IncludePublicKey",
            "DryRun",
            "Filter",
        ],
    ),
    ("DeleteKeyPair", &["KeyName", "KeyPairId", "DryRun"]),
    (
        "DescribeRegions",
        &["RegionName", "AllRegions", "DryRun", "Filter"],
    ),
    (
        "DescribeAvailabilityZones",
        &[
            "ZoneName",
            "ZoneId",
            "AllAvailabilityZones",
            "DryRun",
            "Filter",
        ],
    ),
    (
        "DescribeInstanceTypeOfferings",
        &[
            "DryRun",
            "LocationType",
            "Filter",
            "MaxResults",
            "NextToken",
        ],
    ),
];

/// Authorizes, honours `DryRun`, then carries the call out.
fn dispatch(
    state: &EmulatorState,
    caller: &auth::Caller,
    action: &str,
    p: &Params,
) -> ApiResult<Xml> {
    let region = caller.region.as_str();
    let now = Instant::now();
    settle(state, now);
    authorize(state, caller, action, p)?;
    if p.dry_run()? {
        return Err(ApiError::new(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    match action {
        "CreateVpc"
        | "DescribeVpcs"
        | "DeleteVpc"
        | "CreateSubnet"
        | "DescribeSubnets"
        | "DeleteSubnet"
        | "CreateSecurityGroup"
        | "DescribeSecurityGroups"
        | "AuthorizeSecurityGroupIngress"
        | "RevokeSecurityGroupIngress"
        | "DeleteSecurityGroup"
        | "CreateInternetGateway"
        | "AttachInternetGateway"
        | "DetachInternetGateway"
        | "DeleteInternetGateway"
        | "DescribeInternetGateways"
        | "DescribeRouteTables"
        | "CreateRoute"
        | "DeleteRoute" => network::dispatch(state, region, action, p, now),
        _ => compute::dispatch(state, region, action, p, now),
    }
}

/// Lets the asynchronous transitions that are due happen.
fn settle(state: &EmulatorState, now: Instant) {
    if state.aws().terminating.is_empty() && state.aws().terminated.is_empty() {
        return;
    }
    state.with_model_mut(|m| state.aws().settle(m, now));
}

// ---- Access policies ----

/// `arn:aws:ec2:<region>:<account>:<kind>/<id>`.
fn arn(region: &str, kind: &str, id: &str) -> String {
    if kind == "image" {
        return format!("arn:aws:ec2:{region}::image/{id}");
    }
    format!("arn:aws:ec2:{region}:{ACCOUNT_ID}:{kind}/{id}")
}

/// An existing resource by id (or key pair by name), with its tags, as IAM sees it.
fn existing(m: &Model, f: &FrontState, region: &str, id: &str) -> IamResource {
    let (kind, tags) = if let Some(i) = m.instances.get(id) {
        ("instance", Some(i.tags.clone()))
    } else if let Some(v) = m.vpcs.get(id) {
        ("vpc", Some(v.tags.clone()))
    } else if let Some(s) = m.subnets.get(id) {
        ("subnet", Some(s.tags.clone()))
    } else if let Some(g) = m.security_groups.get(id) {
        ("security-group", Some(g.tags.clone()))
    } else if let Some(e) = m.eips.get(id) {
        ("elastic-ip", Some(e.tags.clone()))
    } else if let Some(g) = f.internet_gateways.get(id) {
        ("internet-gateway", Some(g.tags.clone()))
    } else if id.starts_with("rtb-") {
        (
            "route-table",
            Some(f.route_table_tags.get(id).cloned().unwrap_or_default()),
        )
    } else {
        let kind = match id.split('-').next().unwrap_or_default() {
            "i" => "instance",
            "vpc" => "vpc",
            "subnet" => "subnet",
            "sg" => "security-group",
            "eipalloc" => "elastic-ip",
            "igw" => "internet-gateway",
            "ami" => "image",
            _ => "resource",
        };
        (kind, Some(Tags::new()))
    };
    IamResource {
        arn: arn(region, kind, id),
        tags,
    }
}

fn new_resource(region: &str, kind: &str) -> IamResource {
    IamResource {
        arn: arn(region, kind, "*"),
        tags: None,
    }
}

fn key_pair_resource(f: &FrontState, region: &str, name: &str) -> IamResource {
    let tags = f
        .key_pairs
        .values()
        .find(|k| k.region == region && k.name == name)
        .map(|k| k.tags.clone());
    IamResource {
        arn: arn(region, "key-pair", name),
        tags: Some(tags.unwrap_or_default()),
    }
}

/// The IAM requests a call makes: the action on every resource it touches, and for a create
/// with tags the `ec2:CreateTags` on the new resources (`ec2:CreateAction`), as EC2 authorizes
/// tag-on-create.
fn iam_calls(m: &Model, f: &FrontState, region: &str, action: &str, p: &Params) -> Vec<IamCall> {
    let specs: BTreeMap<String, Tags> = p
        .groups("TagSpecification")
        .into_iter()
        .filter_map(|s| {
            let kind = s.get("ResourceType")?.to_string();
            Some((kind, s.tags("Tag").unwrap_or_default()))
        })
        .collect();
    let request_tags: Option<Tags> = if specs.is_empty() {
        None
    } else {
        Some(
            specs
                .values()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    let ids = |prefix: &str| -> Vec<IamResource> {
        p.list(prefix)
            .iter()
            .map(|id| existing(m, f, region, id))
            .collect()
    };
    let one = |name: &str| -> Vec<IamResource> {
        p.get(name)
            .map(|id| existing(m, f, region, id))
            .into_iter()
            .collect()
    };
    let mut created: Vec<IamResource> = Vec::new();
    let mut resources: Vec<IamResource> = Vec::new();
    match action {
        "CreateVpc" => created.push(new_resource(region, "vpc")),
        "CreateSubnet" => {
            created.push(new_resource(region, "subnet"));
            resources.extend(one("VpcId"));
        }
        "CreateSecurityGroup" => {
            created.push(new_resource(region, "security-group"));
            resources.extend(one("VpcId"));
        }
        "CreateInternetGateway" => created.push(new_resource(region, "internet-gateway")),
        "AllocateAddress" => created.push(new_resource(region, "elastic-ip")),
        "ImportKeyPair" | "CreateKeyPair" => created.push(IamResource {
            arn: arn(region, "key-pair", p.get("KeyName").unwrap_or("*")),
            tags: None,
        }),
        "RunInstances" => {
            for kind in ["instance", "volume", "network-interface"] {
                created.push(new_resource(region, kind));
            }
            let mut subnets = one("SubnetId");
            let mut groups = ids("SecurityGroupId");
            for nic in p.groups("NetworkInterface") {
                subnets.extend(nic.get("SubnetId").map(|id| existing(m, f, region, id)));
                groups.extend(
                    nic.list("SecurityGroupId")
                        .iter()
                        .map(|id| existing(m, f, region, id)),
                );
            }
            resources.extend(subnets);
            resources.extend(groups);
            resources.extend(p.get("ImageId").map(|id| existing(m, f, region, id)));
            if let Some(name) = p.get("KeyName") {
                resources.push(key_pair_resource(f, region, name));
            }
        }
        "DeleteVpc" | "DeleteSubnet" => {
            resources.extend(one(if action == "DeleteVpc" {
                "VpcId"
            } else {
                "SubnetId"
            }));
        }
        "DeleteSecurityGroup" | "AuthorizeSecurityGroupIngress" | "RevokeSecurityGroupIngress" => {
            resources.extend(one("GroupId"))
        }
        "AttachInternetGateway" | "DetachInternetGateway" => {
            resources.extend(one("InternetGatewayId"));
            resources.extend(one("VpcId"));
        }
        "DeleteInternetGateway" => resources.extend(one("InternetGatewayId")),
        "CreateRoute" | "DeleteRoute" => resources.extend(one("RouteTableId")),
        // EC2 authorizes the instance and every group of the new set.
        "ModifyInstanceAttribute" => {
            resources.extend(one("InstanceId"));
            resources.extend(ids("GroupId"));
        }
        "TerminateInstances" | "StartInstances" | "StopInstances" => {
            resources.extend(ids("InstanceId"));
        }
        "AssociateAddress" => {
            resources.extend(one("AllocationId"));
            resources.extend(one("InstanceId"));
        }
        "DisassociateAddress" => {
            if let Some(alloc) = p.get("AssociationId").and_then(|a| f.associations.get(a)) {
                resources.push(existing(m, f, region, alloc));
            }
        }
        "ReleaseAddress" => resources.extend(one("AllocationId")),
        "DeleteKeyPair" => {
            let name = p.get("KeyName").map(String::from).or_else(|| {
                p.get("KeyPairId")
                    .and_then(|id| f.key_pairs.get(id))
                    .map(|k| k.name.clone())
            });
            if let Some(name) = name {
                resources.push(key_pair_resource(f, region, &name));
            }
        }
        "CreateTags" | "DeleteTags" => {
            let tags = p.tags("Tag").unwrap_or_default();
            return vec![IamCall {
                action: format!("ec2:{action}"),
                region: region.to_string(),
                request_tags: (action == "CreateTags").then_some(tags),
                resources: ids("ResourceId"),
                create_action: None,
            }];
        }
        _ => {}
    }
    let mut calls = Vec::new();
    if created.is_empty() && resources.is_empty() {
        // Actions without resource-level permissions (the describes).
        resources.push(IamResource {
            arn: "*".into(),
            tags: None,
        });
    }
    let tagged_creates: Vec<IamResource> = created
        .iter()
        .filter(|r| {
            let kind = r
                .arn
                .rsplit(':')
                .next()
                .and_then(|k| k.split('/').next())
                .unwrap_or_default();
            specs.contains_key(kind) || (kind == "elastic-ip" && specs.contains_key("elastic-ip"))
        })
        .cloned()
        .collect();
    calls.push(IamCall {
        action: format!("ec2:{action}"),
        region: region.to_string(),
        request_tags: request_tags.clone(),
        resources: created.into_iter().chain(resources).collect(),
        create_action: None,
    });
    if !tagged_creates.is_empty() {
        calls.push(IamCall {
            action: "ec2:CreateTags".into(),
            region: region.to_string(),
            request_tags,
            resources: tagged_creates,
            create_action: Some(action.to_string()),
        });
    }
    calls
}

/// The key's IAM policy, if any, as EC2 applies it: `UnauthorizedOperation` (403) with an
/// encoded authorization message.
fn authorize(
    state: &EmulatorState,
    caller: &auth::Caller,
    action: &str,
    p: &Params,
) -> ApiResult<()> {
    let calls = {
        let m = state.model_read();
        let f = state.aws();
        iam_calls(&m, &f, &caller.region, action, p)
    };
    for call in &calls {
        state
            .authorize_iam(&caller.access_key_id, call)
            .map_err(|d| unauthorized(&d))?;
    }
    Ok(())
}

fn unauthorized(d: &crate::policy::Denied) -> ApiError {
    let detail = serde_json::json!({
        "allowed": false,
        "explicitDeny": d.explicit,
        "context": {"action": d.action, "resource": d.resource},
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(detail.to_string());
    ApiError::new(
        403,
        "UnauthorizedOperation",
        format!(
            "You are not authorized to perform this operation. User: arn:aws:iam::{ACCOUNT_ID}:user/emulator is not authorized to perform: {} on resource: {} {} Encoded authorization failure message: {encoded}",
            d.action,
            d.resource,
            if d.explicit {
                "with an explicit deny in an identity-based policy."
            } else {
                "because no identity-based policy allows the action."
            }
        ),
    )
}

/// `true` as the answer of calls without a result of their own.
fn returns_true() -> Xml {
    let mut x = Xml::new();
    x.leaf("return", "true");
    x
}
