//! Alibaba Cloud RPC front end of the emulator: request parsing (`POST /?params`, form bodies,
//! `GET`), ACS3-HMAC-SHA256 and V2 HMAC-SHA1 verification (the server's own, [`crate::verify`]),
//! dispatch by version and action, Alibaba response shapes and error bodies.

mod auth;
mod compute;
mod network;
mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rand::Rng;
use serde_json::{Value, json};

use crate::EmulatorState;
use crate::model::Tags;
use crate::model::{
    AllocateEip, CreateSecurityGroup, CreateSubnet, CreateVpc, Idem, Instance, JoinGroupError,
    Kind, Model, ModelError, RuleSpec, RunInstances, round_cents,
};
use crate::verify::{self, Acs3Header, ReceivedRequest, sha256_hex};

use auth::{authenticate, header_str};
use compute::*;
use network::*;
pub use request::{Params, parse_pairs, percent_decode};

pub const ECS_VERSION: &str = "2014-05-26";
pub const VPC_VERSION: &str = "2016-04-28";

/// An error answer: HTTP status, Alibaba code and message.
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

    fn missing(name: &str) -> Self {
        Self::new(
            400,
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    fn invalid(name: &str, value: &str) -> Self {
        Self::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid: {value:?}."),
        )
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            ModelError::NotFound { kind, .. } => (
                404,
                match kind {
                    Kind::Vpc => "InvalidVpcId.NotFound",
                    Kind::Subnet => "InvalidVSwitchId.NotFound",
                    Kind::SecurityGroup => "InvalidSecurityGroupId.NotFound",
                    Kind::SecurityGroupRule => "InvalidSecurityGroupRuleId.NotFound",
                    Kind::Instance => "InvalidInstanceId.NotFound",
                    Kind::Eip => "InvalidAllocationId.NotFound",
                },
            ),
            ModelError::Dependency {
                kind: Kind::Vpc,
                blocker: Kind::Subnet,
                ..
            } => (400, "DependencyViolation.VSwitch"),
            ModelError::Dependency {
                kind: Kind::Vpc,
                blocker: Kind::SecurityGroup,
                ..
            } => (400, "DependencyViolation.SecurityGroup"),
            ModelError::Dependency {
                kind: Kind::Subnet, ..
            } => (400, "DependencyViolation.Instance"),
            ModelError::Dependency { .. } => (403, "DependencyViolation"),
            ModelError::Quota(kind) => match kind {
                Kind::Vpc => (400, "QuotaExceeded.Vpc"),
                Kind::Subnet => (400, "QuotaExceeded.VSwitch"),
                Kind::SecurityGroup => (403, "QuotaExceed.SecurityGroup"),
                Kind::SecurityGroupRule => (403, "AuthorizationLimitExceed"),
                Kind::Instance => (403, "QuotaExceed.ElasticQuota"),
                Kind::Eip => (400, "QuotaExceeded.Eip"),
            },
            ModelError::NoStock { .. } => (403, "OperationDenied.NoStock"),
            ModelError::InstanceStatus { .. } => (403, "IncorrectInstanceStatus"),
            ModelError::EipStatus { .. } => (400, "IncorrectEipStatus"),
            ModelError::IdempotencyMismatch => (400, "IdempotentParameterMismatch"),
            ModelError::UnknownInstanceType(_) => (400, "InvalidInstanceType.ValueNotSupported"),
            ModelError::InvalidCidr(_) => (400, "InvalidCidrBlock.Malformed"),
            ModelError::CidrOverlap(_) => (400, "InvalidCidrBlock.Overlapped"),
            ModelError::UnknownRegion(_) => (404, "InvalidRegionId.NotFound"),
            ModelError::TagLimit(_) => (403, "OperationDenied.QuotaExceed"),
            ModelError::SubnetFull(_) => (400, "InvalidVSwitchId.IpNotEnough"),
            ModelError::Invalid(_) => (400, "InvalidParameter"),
        };
        Self::new(status, code, message)
    }
}

impl From<JoinGroupError> for ApiError {
    /// JoinSecurityGroup's own refusals, with the codes of its reference.
    fn from(e: JoinGroupError) -> Self {
        let message = e.to_string();
        match e {
            JoinGroupError::Model(e) => e.into(),
            JoinGroupError::AlreadyMember { .. } => Self::new(
                403,
                "InvalidInstanceId.AlreadyExists",
                "The specified instance already exists in the specified security group.",
            ),
            JoinGroupError::VpcMismatch { .. } => Self::new(
                400,
                "InvalidInstanceId.Mismatch",
                format!(
                    "Specified instance and security group are not in the same VPC: {message}."
                ),
            ),
            JoinGroupError::GroupLimit { .. } => Self::new(
                400,
                "InstanceSecurityGroupLimitExceeded",
                format!(
                    "Exceeding the allowed amount of security groups that an instance can be in: {message}."
                ),
            ),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn request_id() -> String {
    let mut rng = rand::rng();
    let a: u32 = rng.random();
    let b: u16 = rng.random();
    let c: u16 = rng.random();
    let d: u16 = rng.random();
    let e: u64 = rng.random::<u64>() & 0xFFFF_FFFF_FFFF;
    format!("{a:08X}-{b:04X}-{c:04X}-{d:04X}-{e:012X}")
}

fn error_response(state: &EmulatorState, err: &ApiError, host: &str) -> Response {
    state.count_error(&err.code);
    let body = json!({
        "RequestId": request_id(),
        "HostId": host,
        "Code": err.code,
        "Message": err.message,
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={}&product=Ecs", err.code),
    });
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn ok_response(mut body: Value) -> Response {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("RequestId".into(), Value::String(request_id()));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The axum handler of every cloud call.
pub async fn handle(
    State(state): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = header_str(&headers, "host")
        .unwrap_or("emulator")
        .to_string();
    match serve(&state, &method, &uri, &headers, &body).await {
        Ok(v) => ok_response(v),
        Err(e) => error_response(&state, &e, &host),
    }
}

async fn serve(
    state: &EmulatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Value> {
    if *method != Method::GET && *method != Method::POST {
        return Err(ApiError::new(
            405,
            "UnsupportedHTTPMethod",
            format!("Method {method} is not supported."),
        ));
    }
    let bad_encoding = || {
        ApiError::new(
            400,
            "InvalidParameter",
            "The request is not correctly percent-encoded.",
        )
    };
    let query = parse_pairs(uri.query().unwrap_or_default()).ok_or_else(bad_encoding)?;
    let is_form = header_str(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut all = query.clone();
    if !body.is_empty() && is_form {
        let text = std::str::from_utf8(body).map_err(|_| bad_encoding())?;
        all.extend(parse_pairs(text).ok_or_else(bad_encoding)?);
    }
    let params = Params(all);
    let action = header_str(headers, "x-acs-action")
        .or_else(|| params.get("Action"))
        .ok_or_else(|| ApiError::missing("Action"))?
        .to_string();
    let version = header_str(headers, "x-acs-version")
        .or_else(|| params.get("Version"))
        .ok_or_else(|| ApiError::missing("Version"))?
        .to_string();
    let access_key_id = authenticate(state, method, uri, headers, &query, &params, body)?;
    state.count_call(&action);
    let faults = state.faults();
    let result = match injected_error(&faults, &action).await {
        Some(e) => Err(e),
        None => authorize(state, &access_key_id, &version, &action, &params)
            .and_then(|()| dispatch(state, &version, &action, &params)),
    };
    let lost = result.is_ok() && faults.lose_response(&action);
    state.log_call(
        &action,
        params.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        result.as_ref().err().map(|e| e.code.as_str()),
        lost,
    );
    if lost {
        // What a client sees when the connection drops after the cloud acted: a gateway
        // error, classified as transient, so it retries (with the same ClientToken).
        return Err(ApiError::new(
            504,
            "LostResponse",
            "The request was carried out but its response was lost.",
        ));
    }
    result
}

/// Latency, then the throttling or server error the faults call for, if any.
async fn injected_error(faults: &crate::model::Faults, action: &str) -> Option<ApiError> {
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
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        ));
    }
    if roll < faults.throttle_rate + faults.error_rate {
        return Some(ApiError::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
        ));
    }
    None
}

/// The key's RAM policy, if any, as the cloud applies it: `Forbidden.RAM` (HTTP 403) naming the
/// action (`AccessDeniedDetail`, like the cloud's newer answers).
fn authorize(
    state: &EmulatorState,
    access_key_id: &str,
    version: &str,
    action: &str,
    p: &Params,
) -> ApiResult<()> {
    let service = if version == VPC_VERSION { "vpc" } else { "ecs" };
    let call = crate::policy::aliyun_call(service, action, &p.0);
    state
        .authorize(access_key_id, crate::policy::Grammar::Ram, &call)
        .map_err(|d| {
            let kind = if d.explicit {
                "ExplicitDeny"
            } else {
                "ImplicitDeny"
            };
            ApiError::new(
                403,
                "Forbidden.RAM",
                format!(
                    "User not authorized to operate on the specified resource, or this API doesn't support RAM. AccessDeniedDetail: AuthAction {}, AuthPrincipalDisplayName {access_key_id}, NoPermissionType {kind}, Resource {}",
                    d.action, d.resource
                ),
            )
        })
}

fn dispatch(state: &EmulatorState, version: &str, action: &str, p: &Params) -> ApiResult<Value> {
    let now = Instant::now();
    match (version, action) {
        (ECS_VERSION | VPC_VERSION, "DescribeRegions") => describe_regions(state, version),
        (VPC_VERSION, "CreateVpc") => create_vpc(state, p),
        (VPC_VERSION, "DescribeVpcs") => state.with_model(|m| describe_vpcs(m, p)),
        (VPC_VERSION, "DeleteVpc") => {
            let (region, id) = (p.region()?, p.req("VpcId")?);
            state.with_model_mut(|m| m.delete_vpc(&region, id))?;
            Ok(json!({}))
        }
        (VPC_VERSION, "CreateVSwitch") => create_vswitch(state, p),
        (VPC_VERSION, "DescribeVSwitches") => state.with_model(|m| describe_vswitches(m, p)),
        (VPC_VERSION, "DeleteVSwitch") => {
            let (region, id) = (p.region()?, p.req("VSwitchId")?);
            state.with_model_mut(|m| m.delete_subnet(&region, id))?;
            Ok(json!({}))
        }
        (VPC_VERSION, "AllocateEipAddress") => allocate_eip(state, p),
        (VPC_VERSION, "AssociateEipAddress") => {
            let (region, id, instance) =
                (p.region()?, p.req("AllocationId")?, p.req("InstanceId")?);
            let kind = p.get("InstanceType").unwrap_or("EcsInstance");
            if kind != "EcsInstance" {
                return Err(ApiError::invalid("InstanceType", kind));
            }
            state.with_model_mut(|m| m.associate_eip(&region, id, instance, now))?;
            Ok(json!({}))
        }
        (VPC_VERSION, "UnassociateEipAddress") => {
            let (region, id) = (p.region()?, p.req("AllocationId")?);
            state.with_model_mut(|m| m.unassociate_eip(&region, id, p.get("InstanceId")))?;
            Ok(json!({}))
        }
        (VPC_VERSION, "ModifyEipAddressAttribute") => {
            let (region, id) = (p.region()?, p.req("AllocationId")?);
            let bandwidth = p
                .get("Bandwidth")
                .map(|_| p.u32_or("Bandwidth", 0))
                .transpose()?;
            let (name, desc) = (
                p.get("Name").map(String::from),
                p.get("Description").map(String::from),
            );
            state.with_model_mut(|m| m.modify_eip(&region, id, bandwidth, name, desc))?;
            Ok(json!({}))
        }
        (VPC_VERSION, "ReleaseEipAddress") => {
            let (region, id) = (p.region()?, p.req("AllocationId")?);
            state.with_model_mut(|m| m.release_eip(&region, id))?;
            Ok(json!({}))
        }
        (VPC_VERSION, "DescribeEipAddresses") => state.with_model(|m| describe_eips(m, p)),
        (ECS_VERSION, "CreateSecurityGroup") => create_security_group(state, p),
        (ECS_VERSION, "DescribeSecurityGroups") => {
            state.with_model(|m| describe_security_groups(m, p))
        }
        (ECS_VERSION, "DeleteSecurityGroup") => {
            let (region, id) = (p.region()?, p.req("SecurityGroupId")?);
            state.with_model_mut(|m| m.delete_security_group(&region, id))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "AuthorizeSecurityGroup") => {
            let (region, id) = (p.region()?, p.req("SecurityGroupId")?);
            let specs = rule_specs(p)?;
            if specs.is_empty() {
                return Err(ApiError::missing("Permissions"));
            }
            state.with_model_mut(|m| m.authorize(&region, id, specs))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "RevokeSecurityGroup") => {
            let (region, id) = (p.region()?, p.req("SecurityGroupId")?);
            let specs = rule_specs(p)?;
            let rule_ids = p.indexed("SecurityGroupRuleId");
            if specs.is_empty() && rule_ids.is_empty() {
                return Err(ApiError::missing("Permissions"));
            }
            state.with_model_mut(|m| m.revoke(&region, id, &specs, &rule_ids))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "DescribeSecurityGroupAttribute") => {
            state.with_model(|m| describe_sg_attribute(m, p))
        }
        (ECS_VERSION, "RunInstances") => run_instances(state, p, now),
        (ECS_VERSION, "DescribeInstances") => state.with_model(|m| describe_instances(m, p, now)),
        (ECS_VERSION, "StopInstance") => {
            let id = p.req("InstanceId")?;
            let region = state
                .with_model(|m| m.instances.get(id).map(|i| i.region.clone()))
                .unwrap_or_default();
            state.with_model_mut(|m| m.stop_instance(&region, id, now))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "StartInstance") => {
            let id = p.req("InstanceId")?;
            let region = state
                .with_model(|m| m.instances.get(id).map(|i| i.region.clone()))
                .unwrap_or_default();
            state.with_model_mut(|m| m.start_instance(&region, id, now))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "JoinSecurityGroup") => {
            let group = p.req("SecurityGroupId")?;
            // An elastic network interface joins by `NetworkInterfaceId` instead (not modelled).
            if let Some(eni) = p.get("NetworkInterfaceId") {
                return Err(ApiError::invalid("NetworkInterfaceId", eni));
            }
            let id = p.req("InstanceId")?;
            let region = match p.get("RegionId") {
                Some(r) => r.to_string(),
                None => state
                    .with_model(|m| m.instances.get(id).map(|i| i.region.clone()))
                    .unwrap_or_default(),
            };
            state.with_model_mut(|m| m.join_security_group(&region, id, group, now))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "DeleteInstance") => {
            let id = p.req("InstanceId")?.to_string();
            let region = state
                .with_model(|m| m.instances.get(&id).map(|i| i.region.clone()))
                .unwrap_or_default();
            state.with_model_mut(|m| m.delete_instances(&region, &[id], p.flag("Force"), now))?;
            Ok(json!({}))
        }
        (ECS_VERSION, "DeleteInstances") => {
            let region = p.region()?;
            let ids = p.indexed("InstanceId");
            if ids.is_empty() {
                return Err(ApiError::missing("InstanceId.N"));
            }
            if ids.len() > 100 {
                return Err(ApiError::invalid("InstanceId.N", "more than 100 ids"));
            }
            if p.flag("DryRun") {
                return Err(dry_run());
            }
            state.with_model_mut(|m| m.delete_instances(&region, &ids, p.flag("Force"), now))?;
            Ok(json!({}))
        }
        // The VPC API spells the removal `UnTagResources`; `UntagResources` is kept there too,
        // as earlier clients of the emulator sent it.
        (ECS_VERSION, "TagResources" | "UntagResources")
        | (VPC_VERSION, "TagResources" | "UntagResources" | "UnTagResources") => {
            let region = p.region()?;
            let kind = resource_kind(version, p.req("ResourceType")?)?;
            let ids = p.indexed("ResourceId");
            if ids.is_empty() {
                return Err(ApiError::missing("ResourceId.N"));
            }
            if ids.len() > 50 {
                return Err(ApiError::invalid("ResourceId.N", "more than 50 ids"));
            }
            if action == "TagResources" {
                let tags = p.tags()?;
                if tags.is_empty() {
                    return Err(ApiError::missing("Tag.N.Key"));
                }
                state.with_model_mut(|m| m.tag_resources(kind, &region, &ids, &tags))?;
            } else {
                let keys = p.indexed("TagKey");
                state.with_model_mut(|m| {
                    m.untag_resources(kind, &region, &ids, &keys, p.flag("All"))
                })?;
            }
            Ok(json!({}))
        }
        (ECS_VERSION, "DescribePrice") => state.with_model(|m| describe_price(m, p)),
        (ECS_VERSION, "DescribeAvailableResource") => {
            state.with_model(|m| describe_available_resource(m, p))
        }
        (ECS_VERSION | VPC_VERSION, _) => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!(
                "Specified api is not found, please check your url and method: {action} ({version})."
            ),
        )),
        _ => Err(ApiError::new(
            400,
            "InvalidVersion",
            format!("Specified parameter Version is not valid: {version}."),
        )),
    }
}

// ---- Shapes shared by the ECS and VPC actions ----

/// `ResourceType` of TagResources / UntagResources (ECS lower case, VPC upper case; both
/// case-insensitive). Each API tags its own resources: ECS instances and security groups, VPC
/// VPCs, VSwitches and EIPs.
fn resource_kind(version: &str, value: &str) -> ApiResult<Kind> {
    let ecs = version == ECS_VERSION;
    match value.to_ascii_lowercase().as_str() {
        "instance" if ecs => Ok(Kind::Instance),
        "securitygroup" if ecs => Ok(Kind::SecurityGroup),
        "vpc" if !ecs => Ok(Kind::Vpc),
        "vswitch" if !ecs => Ok(Kind::Subnet),
        "eip" if !ecs => Ok(Kind::Eip),
        _ => Err(ApiError::new(
            400,
            "InvalidResourceType.NotFound",
            format!("Unsupported ResourceType {value}."),
        )),
    }
}

fn dry_run() -> ApiError {
    ApiError::new(
        400,
        "DryRunOperation",
        "Request validation has been passed with DryRun flag set.",
    )
}

fn time_ecs(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

fn time_vpc(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// ECS tag shape: `{"Tag":[{"TagKey","TagValue"}]}`.
fn ecs_tags(tags: &Tags) -> Value {
    json!({ "Tag": tags.iter().map(|(k, v)| json!({"TagKey": k, "TagValue": v})).collect::<Vec<_>>() })
}

/// VPC tag shape: `{"Tag":[{"Key","Value"}]}`.
fn vpc_tags(tags: &Tags) -> Value {
    json!({ "Tag": tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>() })
}

/// Pages a filtered list: (items of the page, total, page number, page size).
fn paginate<T>(items: Vec<T>, p: &Params, max_size: u32) -> ApiResult<(Vec<T>, usize, u32, u32)> {
    let number = p.u32_or("PageNumber", 1)?.max(1);
    let size = p.u32_or("PageSize", 10)?;
    if size == 0 || size > max_size {
        return Err(ApiError::invalid("PageSize", &size.to_string()));
    }
    let total = items.len();
    let start = (number as usize - 1).saturating_mul(size as usize);
    let page = items.into_iter().skip(start).take(size as usize).collect();
    Ok((page, total, number, size))
}
