//! Alibaba Cloud RPC front end of the emulator: request parsing (`POST /?params`, form bodies,
//! `GET`), ACS3-HMAC-SHA256 and V2 HMAC-SHA1 verification (the server's own, [`crate::verify`]),
//! dispatch by version and action, Alibaba response shapes and error bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use rand::Rng;
use serde_json::{Value, json};

use super::EmulatorState;
use super::model::{
    AllocateEip, CreateSecurityGroup, CreateSubnet, CreateVpc, Idem, Instance, Kind, Model,
    ModelError, RuleSpec, RunInstances, round_cents, tags_match,
};
use crate::model::Tags;
use crate::verify::{self, Acs3Header, ReceivedRequest, sha256_hex};

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
            ModelError::Invalid(_) => (400, "InvalidParameter"),
        };
        Self::new(status, code, message)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Decodes `application/x-www-form-urlencoded` / query text (`+` is a space).
pub fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decoded `k=v&k=v` pairs, in wire order.
pub fn parse_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k)?, percent_decode(v)?));
    }
    Some(pairs)
}

/// The request parameters (query and form body).
pub struct Params(Vec<(String, String)>);

/// Parameters that do not take part in the idempotency fingerprint.
const NON_BUSINESS_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "SignatureType",
    "Timestamp",
    "ClientToken",
    "SecurityToken",
];

impl Params {
    /// The value of a parameter; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn req(&self, name: &str) -> ApiResult<&str> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }

    fn string(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    fn u32_or(&self, name: &str, default: u32) -> ApiResult<u32> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ApiError::invalid(name, v)),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `Prefix.N` values, ordered by N.
    fn indexed(&self, prefix: &str) -> Vec<String> {
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k
                    .strip_prefix(prefix)?
                    .strip_prefix('.')?
                    .parse::<u32>()
                    .ok()?;
                Some((n, v.clone()))
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Prefix.N.Field` groups, ordered by N.
    fn groups(&self, prefix: &str) -> Vec<Vec<(String, String)>> {
        let mut map: std::collections::BTreeMap<u32, Vec<(String, String)>> =
            std::collections::BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            map.entry(n)
                .or_default()
                .push((field.to_string(), v.clone()));
        }
        map.into_values().collect()
    }

    /// `Tag.N.Key` / `Tag.N.Value` as filters (a missing value matches any).
    fn tag_filters(&self) -> Vec<(String, Option<String>)> {
        self.groups("Tag")
            .into_iter()
            .filter_map(|g| {
                let key = g
                    .iter()
                    .find(|(f, _)| f == "Key")
                    .map(|(_, v)| v.clone())
                    .filter(|k| !k.is_empty())?;
                let value = g
                    .iter()
                    .find(|(f, _)| f == "Value")
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty());
                Some((key, value))
            })
            .collect()
    }

    fn tags(&self) -> ApiResult<Tags> {
        let filters = self.tag_filters();
        if filters.len() > 20 {
            return Err(ApiError::new(
                400,
                "InvalidTagKey.Malformed",
                "At most 20 tags are allowed.",
            ));
        }
        Ok(filters
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    }

    /// A JSON-array string parameter (`["a","b"]`).
    fn json_list(&self, name: &str) -> ApiResult<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => {
                serde_json::from_str::<Vec<String>>(v).map_err(|_| ApiError::invalid(name, v))
            }
        }
    }

    /// A comma-separated list parameter.
    fn comma_list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn region(&self) -> ApiResult<String> {
        self.req("RegionId").map(String::from)
    }

    /// The ClientToken with a fingerprint (hash) of every business parameter.
    fn idem(&self, action: &str) -> ApiResult<Option<Idem>> {
        let Some(token) = self.get("ClientToken") else {
            return Ok(None);
        };
        if token.len() > 64 || !token.is_ascii() {
            return Err(ApiError::invalid("ClientToken", token));
        }
        let mut pairs: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| !NON_BUSINESS_PARAMS.contains(&k.as_str()))
            .collect();
        pairs.sort();
        let mut text = String::new();
        for (k, v) in pairs {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        Ok(Some(Idem {
            scope: action.to_string(),
            token: token.to_string(),
            fingerprint: sha256_hex(text.as_bytes()),
        }))
    }
}

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

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_timestamp(state: &EmulatorState, value: &str, name: &str) -> ApiResult<()> {
    let ts: Timestamp = value.parse().map_err(|_| {
        ApiError::new(
            400,
            "InvalidTimeStamp.Format",
            format!("Specified {name} is not valid: {value}."),
        )
    })?;
    let skew = (Timestamp::now().as_second() - ts.as_second()).unsigned_abs();
    if skew > state.max_clock_skew().as_secs() {
        return Err(ApiError::new(
            400,
            "InvalidTimeStamp.Expired",
            format!("Specified time stamp or date value is expired: {value}."),
        ));
    }
    Ok(())
}

fn unknown_key(id: &str) -> ApiError {
    ApiError::new(
        404,
        "InvalidAccessKeyId.NotFound",
        format!("Specified access key is not found: {id}."),
    )
}

/// Verifies the request signature (ACS3 header or V2 parameters) and its nonce.
fn authenticate(
    state: &EmulatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
    params: &Params,
    body: &[u8],
) -> ApiResult<()> {
    if let Some(auth) = header_str(headers, "authorization") {
        let parsed = Acs3Header::parse(auth).ok_or_else(|| {
            ApiError::new(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        })?;
        let secret = state
            .secret_of(&parsed.access_key_id)
            .ok_or_else(|| unknown_key(&parsed.access_key_id))?;
        for required in ["x-acs-date", "x-acs-signature-nonce"] {
            if !parsed.signed_headers.iter().any(|h| h == required)
                || headers.get(required).is_none()
            {
                return Err(ApiError::new(
                    400,
                    "IncompleteSignature",
                    format!("The header {required} must be sent and signed."),
                ));
            }
        }
        check_timestamp(
            state,
            header_str(headers, "x-acs-date").unwrap_or_default(),
            "x-acs-date",
        )?;
        let body_sha = sha256_hex(body);
        if let Some(claimed) = header_str(headers, "x-acs-content-sha256")
            && !claimed.eq_ignore_ascii_case(&body_sha)
        {
            return Err(ApiError::new(
                400,
                "SignatureDoesNotMatch",
                "The x-acs-content-sha256 header does not match the request body.",
            ));
        }
        let header_pairs: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| parsed.signed_headers.iter().any(|h| h == name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let request = ReceivedRequest {
            method: method.as_str(),
            path: uri.path(),
            query,
            headers: &header_pairs,
            body_sha256: header_str(headers, "x-acs-content-sha256").unwrap_or(&body_sha),
        };
        let string_to_sign = request.acs3_string_to_sign(&parsed.signed_headers);
        if !verify::same_signature(
            &verify::acs3_expected(secret, &string_to_sign),
            &parsed.signature,
        ) {
            return Err(ApiError::new(
                400,
                "SignatureDoesNotMatch",
                format!(
                    "Specified signature does not match our calculation. The string to sign is: {string_to_sign:?}"
                ),
            ));
        }
        let nonce = header_str(headers, "x-acs-signature-nonce").unwrap_or_default();
        if !state.use_nonce(nonce) {
            return Err(ApiError::new(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        return Ok(());
    }
    let Some(signature) = params.get("Signature") else {
        return Err(ApiError::new(
            400,
            "IncompleteSignature",
            "The request carries neither an Authorization header nor a Signature parameter.",
        ));
    };
    let key_id = params.req("AccessKeyId")?;
    let secret = state.secret_of(key_id).ok_or_else(|| unknown_key(key_id))?;
    let method_name = params.get("SignatureMethod").unwrap_or("HMAC-SHA1");
    if method_name != "HMAC-SHA1" {
        return Err(ApiError::new(
            400,
            "InvalidSignatureMethod",
            format!("Unsupported SignatureMethod {method_name}."),
        ));
    }
    check_timestamp(state, params.req("Timestamp")?, "Timestamp")?;
    let nonce = params.req("SignatureNonce")?;
    let expected = verify::v2_expected(
        method.as_str(),
        params.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        secret,
    );
    if !verify::same_signature(&expected, signature) {
        return Err(ApiError::new(
            400,
            "SignatureDoesNotMatch",
            "Specified signature does not match our calculation.",
        ));
    }
    if !state.use_nonce(nonce) {
        return Err(ApiError::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(())
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
    authenticate(state, method, uri, headers, &query, &params, body)?;
    state.count_call(&action);
    let faults = state.faults();
    if faults.applies_to(&action) {
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if faults.throttle_rate > 0.0 || faults.error_rate > 0.0 {
            let roll: f64 = rand::rng().random();
            if roll < faults.throttle_rate {
                return Err(ApiError::new(
                    400,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                ));
            }
            if roll < faults.throttle_rate + faults.error_rate {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    "The request processing has failed due to some unknown error, exception or failure.",
                ));
            }
        }
    }
    dispatch(state, &version, &action, &params)
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
        (ECS_VERSION | VPC_VERSION, "TagResources" | "UntagResources") => {
            let region = p.region()?;
            let kind = resource_kind(p.req("ResourceType")?)?;
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

/// `ResourceType` of TagResources / UntagResources (ECS lower case, VPC upper case).
fn resource_kind(value: &str) -> ApiResult<Kind> {
    match value.to_ascii_lowercase().as_str() {
        "instance" => Ok(Kind::Instance),
        "securitygroup" => Ok(Kind::SecurityGroup),
        "vpc" => Ok(Kind::Vpc),
        "vswitch" => Ok(Kind::Subnet),
        "eip" => Ok(Kind::Eip),
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

fn describe_regions(state: &EmulatorState, version: &str) -> ApiResult<Value> {
    let service = if version == ECS_VERSION { "ecs" } else { "vpc" };
    let regions: Vec<String> = state.with_model(|m| m.settings.regions.clone());
    let list: Vec<Value> = regions
        .iter()
        .map(|r| json!({"RegionId": r, "LocalName": r, "RegionEndpoint": format!("{service}.{r}.aliyuncs.com"), "Status": "available"}))
        .collect();
    Ok(json!({ "Regions": { "Region": list } }))
}

fn create_vpc(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let req = CreateVpc {
        region: p.region()?,
        cidr_block: p.get("CidrBlock").unwrap_or("172.16.0.0/12").to_string(),
        name: p.string("VpcName"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("CreateVpc")?;
    let (id, router, table) = state.with_model_mut(|m| -> ApiResult<_> {
        let id = m.create_vpc(req, idem.as_ref())?;
        let vpc = &m.vpcs[&id];
        Ok((id, vpc.router_id.clone(), vpc.route_table_id.clone()))
    })?;
    Ok(
        json!({"VpcId": id, "VRouterId": router, "RouteTableId": table, "ResourceGroupId": "rg-emulator"}),
    )
}

fn describe_vpcs(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.comma_list("VpcId");
    if ids.len() > 20 {
        return Err(ApiError::invalid("VpcId", "more than 20 ids"));
    }
    let name = p.get("VpcName");
    let tags = p.tag_filters();
    let vpcs: Vec<_> = m
        .list_vpcs(&region)
        .filter(|v| ids.is_empty() || ids.contains(&v.id))
        .filter(|v| name.is_none_or(|n| v.name == n))
        .filter(|v| tags_match(&v.tags, &tags))
        .collect();
    let (page, total, number, size) = paginate(vpcs, p, 50)?;
    let list: Vec<Value> = page
        .iter()
        .map(|v| {
            let vswitches: Vec<&str> = m.subnets.values().filter(|s| s.vpc_id == v.id).map(|s| s.id.as_str()).collect();
            json!({
                "VpcId": v.id, "RegionId": v.region, "Status": "Available", "VpcName": v.name,
                "Description": v.description, "CidrBlock": v.cidr_block, "VRouterId": v.router_id,
                "CreationTime": time_vpc(v.created), "IsDefault": false, "ResourceGroupId": "rg-emulator",
                "VSwitchIds": {"VSwitchId": vswitches}, "UserCidrs": {"UserCidr": []},
                "SecondaryCidrBlocks": {"SecondaryCidrBlock": []}, "Tags": vpc_tags(&v.tags),
            })
        })
        .collect();
    Ok(json!({"Vpcs": {"Vpc": list}, "TotalCount": total, "PageNumber": number, "PageSize": size}))
}

fn create_vswitch(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let req = CreateSubnet {
        region: p.region()?,
        vpc_id: p.req("VpcId")?.to_string(),
        zone: p.req("ZoneId")?.to_string(),
        cidr_block: p.req("CidrBlock")?.to_string(),
        name: p.string("VSwitchName"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("CreateVSwitch")?;
    let id = state.with_model_mut(|m| m.create_subnet(req, idem.as_ref()))?;
    Ok(json!({"VSwitchId": id}))
}

fn describe_vswitches(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.comma_list("VSwitchId");
    let (vpc, zone, name) = (p.get("VpcId"), p.get("ZoneId"), p.get("VSwitchName"));
    let tags = p.tag_filters();
    let list: Vec<_> = m
        .subnets
        .values()
        .filter(|s| s.region == region)
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| vpc.is_none_or(|v| s.vpc_id == v) && zone.is_none_or(|z| s.zone == z))
        .filter(|s| name.is_none_or(|n| s.name == n))
        .filter(|s| tags_match(&s.tags, &tags))
        .collect();
    let (page, total, number, size) = paginate(list, p, 50)?;
    let list: Vec<Value> = page
        .iter()
        .map(|s| {
            let table = m.vpcs.get(&s.vpc_id).map(|v| v.route_table_id.clone()).unwrap_or_default();
            json!({
                "VSwitchId": s.id, "VpcId": s.vpc_id, "Status": "Available", "CidrBlock": s.cidr_block,
                "ZoneId": s.zone, "AvailableIpAddressCount": m.subnet_free_ips(s), "VSwitchName": s.name,
                "Description": s.description, "CreationTime": time_vpc(s.created), "IsDefault": false,
                "ResourceGroupId": "rg-emulator", "RouteTable": {"RouteTableId": table, "RouteTableType": "System"},
                "Tags": vpc_tags(&s.tags),
            })
        })
        .collect();
    Ok(
        json!({"VSwitches": {"VSwitch": list}, "TotalCount": total, "PageNumber": number, "PageSize": size}),
    )
}

fn create_security_group(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let kind = p.get("SecurityGroupType").unwrap_or("normal");
    if kind != "normal" && kind != "enterprise" {
        return Err(ApiError::invalid("SecurityGroupType", kind));
    }
    let req = CreateSecurityGroup {
        region: p.region()?,
        vpc_id: p.req("VpcId")?.to_string(),
        name: p.string("SecurityGroupName"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("CreateSecurityGroup")?;
    let id = state.with_model_mut(|m| m.create_security_group(req, idem.as_ref()))?;
    Ok(json!({"SecurityGroupId": id}))
}

fn describe_security_groups(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let mut ids = p.json_list("SecurityGroupIds")?;
    ids.extend(p.get("SecurityGroupId").map(String::from));
    if ids.len() > 100 {
        return Err(ApiError::invalid("SecurityGroupIds", "more than 100 ids"));
    }
    let (vpc, name) = (p.get("VpcId"), p.get("SecurityGroupName"));
    let tags = p.tag_filters();
    let list: Vec<_> = m
        .security_groups
        .values()
        .filter(|g| g.region == region)
        .filter(|g| ids.is_empty() || ids.contains(&g.id))
        .filter(|g| vpc.is_none_or(|v| g.vpc_id == v) && name.is_none_or(|n| g.name == n))
        .filter(|g| tags_match(&g.tags, &tags))
        .collect();
    let (page, total, number, size) = paginate(list, p, 100)?;
    let list: Vec<Value> = page
        .iter()
        .map(|g| {
            json!({
                "SecurityGroupId": g.id, "SecurityGroupName": g.name, "Description": g.description,
                "VpcId": g.vpc_id, "SecurityGroupType": "normal", "CreationTime": time_vpc(g.created),
                "ResourceGroupId": "", "ServiceManaged": false, "RuleCount": g.rules.len(),
                "Tags": ecs_tags(&g.tags),
            })
        })
        .collect();
    Ok(json!({
        "SecurityGroups": {"SecurityGroup": list}, "TotalCount": total, "PageNumber": number,
        "PageSize": size, "RegionId": region, "NextToken": "",
    }))
}

/// Rules from `Permissions.N.*` or the older flat parameters.
fn rule_specs(p: &Params) -> ApiResult<Vec<RuleSpec>> {
    let mut groups = p.groups("Permissions");
    if groups.is_empty() && p.get("IpProtocol").is_some() {
        groups.push(
            [
                "IpProtocol",
                "PortRange",
                "SourceCidrIp",
                "Policy",
                "Priority",
                "Description",
            ]
            .iter()
            .filter_map(|k| p.get(k).map(|v| ((*k).to_string(), v.to_string())))
            .collect(),
        );
    }
    groups
        .into_iter()
        .map(|g| {
            let field = |name: &str| g.iter().find(|(f, _)| f == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
            let protocol = field("IpProtocol").ok_or_else(|| ApiError::missing("IpProtocol"))?.to_ascii_lowercase();
            if !matches!(protocol.as_str(), "tcp" | "udp" | "icmp" | "icmpv6" | "gre" | "all") {
                return Err(ApiError::new(400, "InvalidIpProtocol.Malformed", format!("Unsupported IpProtocol {protocol}.")));
            }
            let port_range = match field("PortRange") {
                Some(r) => r.to_string(),
                None if matches!(protocol.as_str(), "tcp" | "udp") => return Err(ApiError::missing("PortRange")),
                None => "-1/-1".to_string(),
            };
            let valid_range = port_range == "-1/-1"
                || port_range.split_once('/').is_some_and(|(a, b)| {
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a >= 1 && a <= b)
                });
            if !valid_range {
                return Err(ApiError::new(400, "InvalidPortRange.Malformed", format!("Invalid PortRange {port_range}.")));
            }
            let source_cidr = field("SourceCidrIp").unwrap_or("0.0.0.0/0").to_string();
            if source_cidr.parse::<ipnet::IpNet>().is_err() && source_cidr.parse::<std::net::IpAddr>().is_err() {
                return Err(ApiError::invalid("SourceCidrIp", &source_cidr));
            }
            let policy = field("Policy").unwrap_or("accept").to_ascii_lowercase();
            if policy != "accept" && policy != "drop" {
                return Err(ApiError::invalid("Policy", &policy));
            }
            let priority = match field("Priority") {
                None => 1,
                Some(v) => v.parse::<u32>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| ApiError::invalid("Priority", v))?,
            };
            Ok(RuleSpec {
                protocol,
                port_range,
                source_cidr,
                policy,
                priority,
                description: field("Description").unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn describe_sg_attribute(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let g = m.get_security_group(p.req("SecurityGroupId")?, &region)?;
    let direction = p.get("Direction").unwrap_or("all");
    let rules: Vec<Value> = if direction == "egress" {
        Vec::new()
    } else {
        g.rules
            .iter()
            .map(|r| {
                json!({
                    "SecurityGroupRuleId": r.id, "Direction": "ingress", "IpProtocol": r.protocol.to_ascii_uppercase(),
                    "PortRange": r.port_range, "SourceCidrIp": r.source_cidr, "Ipv6SourceCidrIp": "",
                    "SourceGroupId": "", "SourcePortRange": "", "DestCidrIp": "", "DestGroupId": "",
                    "Policy": if r.policy == "accept" { "Accept" } else { "Drop" },
                    "Priority": r.priority.to_string(), "NicType": "intranet", "Description": r.description,
                    "CreateTime": time_vpc(r.created),
                })
            })
            .collect()
    };
    Ok(json!({
        "SecurityGroupId": g.id, "SecurityGroupName": g.name, "Description": g.description,
        "VpcId": g.vpc_id, "RegionId": g.region, "InnerAccessPolicy": "Accept",
        "Permissions": {"Permission": rules},
    }))
}

fn run_instances(state: &EmulatorState, p: &Params, now: Instant) -> ApiResult<Value> {
    let mut sgs = p.indexed("SecurityGroupIds");
    if let Some(sg) = p.get("SecurityGroupId") {
        sgs.insert(0, sg.to_string());
    }
    let charge_type = p
        .get("InstanceChargeType")
        .unwrap_or("PostPaid")
        .to_string();
    if charge_type != "PostPaid" && charge_type != "PrePaid" {
        return Err(ApiError::invalid("InstanceChargeType", &charge_type));
    }
    let internet_charge_type = p
        .get("InternetChargeType")
        .unwrap_or("PayByTraffic")
        .to_string();
    if internet_charge_type != "PayByTraffic" && internet_charge_type != "PayByBandwidth" {
        return Err(ApiError::invalid(
            "InternetChargeType",
            &internet_charge_type,
        ));
    }
    let bandwidth_out = p.u32_or("InternetMaxBandwidthOut", 0)?;
    if bandwidth_out > 100 {
        return Err(ApiError::invalid(
            "InternetMaxBandwidthOut",
            &bandwidth_out.to_string(),
        ));
    }
    let disk_category = p
        .get("SystemDisk.Category")
        .unwrap_or("cloud_efficiency")
        .to_string();
    if !matches!(
        disk_category.as_str(),
        "cloud_essd" | "cloud_ssd" | "cloud_efficiency" | "cloud_auto" | "cloud"
    ) {
        return Err(ApiError::new(
            400,
            "InvalidSystemDiskCategory.ValueNotSupported",
            format!("Unsupported disk category {disk_category}."),
        ));
    }
    let disk_gib = p.u32_or("SystemDisk.Size", 40)?;
    if !(20..=2048).contains(&disk_gib) {
        return Err(ApiError::new(
            400,
            "InvalidSystemDiskSize",
            format!("SystemDisk.Size {disk_gib} is out of range."),
        ));
    }
    let password_set = p.get("Password").is_some();
    if let Some(pw) = p.get("Password")
        && !(8..=30).contains(&pw.len())
    {
        // The value is never echoed.
        return Err(ApiError::new(
            400,
            "InvalidPassword.Malformed",
            "The password must be 8 to 30 characters long.",
        ));
    }
    let amount = p.u32_or("Amount", 1)?;
    let req = RunInstances {
        region: p.region()?,
        zone: p.get("ZoneId").map(String::from),
        instance_type: p.req("InstanceType")?.to_string(),
        image_id: p.req("ImageId")?.to_string(),
        subnet_id: p.req("VSwitchId")?.to_string(),
        security_group_ids: sgs,
        name: p.string("InstanceName"),
        description: p.string("Description"),
        charge_type,
        internet_charge_type,
        bandwidth_out,
        disk_category,
        disk_gib,
        password_set,
        key_pair_name: p.get("KeyPairName").map(String::from),
        tags: p.tags()?,
        amount,
        min_amount: p.u32_or("MinAmount", 0)?,
        dry_run: p.flag("DryRun"),
    };
    if req.security_group_ids.is_empty() {
        return Err(ApiError::missing("SecurityGroupId"));
    }
    let dry = req.dry_run;
    let idem = p.idem("RunInstances")?;
    let (ids, price) = state.with_model_mut(|m| -> ApiResult<_> {
        let ids = m.run_instances(req, idem.as_ref(), now)?;
        let price: f64 = ids
            .iter()
            .filter_map(|id| m.instances.get(id))
            .map(|i| i.hourly_price)
            .sum();
        Ok((ids, round_cents(price)))
    })?;
    if dry {
        return Err(dry_run());
    }
    let order: u64 = rand::rng().random_range(100_000_000_000..999_999_999_999);
    Ok(
        json!({"InstanceIdSets": {"InstanceIdSet": ids}, "OrderId": order.to_string(), "TradePrice": price}),
    )
}

fn instance_json(m: &Model, i: &Instance, now: Instant) -> Value {
    let eip = i.eip_id.as_ref().and_then(|e| m.eips.get(e));
    let eip_json = match eip {
        Some(e) => {
            json!({"AllocationId": e.id, "IpAddress": e.ip.to_string(), "Bandwidth": e.bandwidth,
            "InternetChargeType": e.internet_charge_type, "IsSupportUnassociate": true})
        }
        None => {
            json!({"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": "", "IsSupportUnassociate": true})
        }
    };
    let public: Vec<String> = i.public_ip.iter().map(ToString::to_string).collect();
    json!({
        "InstanceId": i.id, "InstanceName": i.name, "HostName": i.name, "Description": i.description,
        "ImageId": i.image_id, "InstanceType": i.instance_type, "RegionId": i.region, "ZoneId": i.zone,
        "Status": m.instance_status(i, now).as_str(), "CreationTime": time_ecs(i.created),
        "StartTime": time_ecs(i.created), "ExpiredTime": "2099-12-31T15:59Z",
        "InstanceChargeType": i.charge_type, "InternetChargeType": i.internet_charge_type,
        "InternetMaxBandwidthOut": i.bandwidth_out, "InternetMaxBandwidthIn": 100,
        "InstanceNetworkType": "vpc", "OSType": "linux", "StoppedMode": "Not-applicable",
        "KeyPairName": i.key_pair_name.clone().unwrap_or_default(), "DeletionProtection": false,
        "PublicIpAddress": {"IpAddress": public}, "InnerIpAddress": {"IpAddress": []},
        "EipAddress": eip_json,
        "VpcAttributes": {"VpcId": i.vpc_id, "VSwitchId": i.subnet_id, "NatIpAddress": "",
            "PrivateIpAddress": {"IpAddress": [i.private_ip.to_string()]}},
        "SecurityGroupIds": {"SecurityGroupId": i.security_group_ids},
        "Tags": ecs_tags(&i.tags),
    })
}

fn describe_instances(m: &Model, p: &Params, now: Instant) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.json_list("InstanceIds")?;
    if ids.len() > 100 {
        return Err(ApiError::invalid("InstanceIds", "more than 100 ids"));
    }
    let (vpc, vsw, zone, status) = (
        p.get("VpcId"),
        p.get("VSwitchId"),
        p.get("ZoneId"),
        p.get("Status"),
    );
    let (name, sg, itype) = (
        p.get("InstanceName"),
        p.get("SecurityGroupId"),
        p.get("InstanceType"),
    );
    let tags = p.tag_filters();
    let token_mode = p.get("MaxResults").is_some() || p.get("NextToken").is_some();
    let after = p.get("NextToken");
    let matches = |i: &&Instance| {
        i.region == region
            && (ids.is_empty() || ids.contains(&i.id))
            && vpc.is_none_or(|v| i.vpc_id == v)
            && vsw.is_none_or(|v| i.subnet_id == v)
            && zone.is_none_or(|z| i.zone == z)
            && itype.is_none_or(|t| i.instance_type == t)
            && name.is_none_or(|n| match n.strip_suffix('*') {
                Some(prefix) => i.name.starts_with(prefix),
                None => i.name == n,
            })
            && sg.is_none_or(|s| i.security_group_ids.iter().any(|x| x == s))
            && status.is_none_or(|s| m.instance_status(i, now).as_str() == s)
            && tags_match(&i.tags, &tags)
    };
    if token_mode {
        let max = p.u32_or("MaxResults", 10)?;
        if max == 0 || max > 100 {
            return Err(ApiError::invalid("MaxResults", &max.to_string()));
        }
        let total = m.instances.values().filter(|i| matches(i)).count();
        let range = match after {
            Some(token) => m
                .instances
                .range::<str, _>((std::ops::Bound::Excluded(token), std::ops::Bound::Unbounded)),
            None => m.instances.range::<str, _>(..),
        };
        let mut page: Vec<&Instance> = Vec::new();
        let mut more = false;
        for i in range.map(|(_, i)| i).filter(|i| matches(i)) {
            if page.len() == max as usize {
                more = true;
                break;
            }
            page.push(i);
        }
        let next = if more {
            page.last().map(|i| i.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let list: Vec<Value> = page.iter().map(|i| instance_json(m, i, now)).collect();
        return Ok(
            json!({"Instances": {"Instance": list}, "NextToken": next, "TotalCount": total, "MaxResults": max}),
        );
    }
    let list: Vec<&Instance> = m.instances.values().filter(|i| matches(i)).collect();
    let (page, total, number, size) = paginate(list, p, 100)?;
    let list: Vec<Value> = page.iter().map(|i| instance_json(m, i, now)).collect();
    Ok(
        json!({"Instances": {"Instance": list}, "TotalCount": total, "PageNumber": number, "PageSize": size, "NextToken": ""}),
    )
}

fn allocate_eip(state: &EmulatorState, p: &Params) -> ApiResult<Value> {
    let charge = p
        .get("InternetChargeType")
        .unwrap_or("PayByBandwidth")
        .to_string();
    if charge != "PayByBandwidth" && charge != "PayByTraffic" {
        return Err(ApiError::invalid("InternetChargeType", &charge));
    }
    let req = AllocateEip {
        region: p.region()?,
        bandwidth: p.u32_or("Bandwidth", 5)?,
        internet_charge_type: charge,
        name: p.string("Name"),
        description: p.string("Description"),
        tags: p.tags()?,
    };
    let idem = p.idem("AllocateEipAddress")?;
    let (id, ip) = state.with_model_mut(|m| -> ApiResult<_> {
        let id = m.allocate_eip(req, idem.as_ref())?;
        let ip = m.eips[&id].ip.to_string();
        Ok((id, ip))
    })?;
    Ok(
        json!({"AllocationId": id, "EipAddress": ip, "ResourceGroupId": "rg-emulator", "OrderId": 0}),
    )
}

fn describe_eips(m: &Model, p: &Params) -> ApiResult<Value> {
    let region = p.region()?;
    let ids = p.comma_list("AllocationId");
    let (ip, status) = (p.get("EipAddress"), p.get("Status"));
    let instance = p.get("AssociatedInstanceId");
    let tags = p.tag_filters();
    let list: Vec<_> = m
        .eips
        .values()
        .filter(|e| e.region == region)
        .filter(|e| ids.is_empty() || ids.contains(&e.id))
        .filter(|e| ip.is_none_or(|a| e.ip.to_string() == a))
        .filter(|e| status.is_none_or(|s| e.status().as_str() == s))
        .filter(|e| instance.is_none_or(|i| e.instance_id.as_deref() == Some(i)))
        .filter(|e| tags_match(&e.tags, &tags))
        .collect();
    let (page, total, number, size) = paginate(list, p, 100)?;
    let list: Vec<Value> = page
        .iter()
        .map(|e| {
            json!({
                "AllocationId": e.id, "IpAddress": e.ip.to_string(), "Status": e.status().as_str(),
                "InstanceId": e.instance_id.clone().unwrap_or_default(),
                "InstanceType": if e.instance_id.is_some() { "EcsInstance" } else { "" },
                "InstanceRegionId": e.region, "RegionId": e.region, "Bandwidth": e.bandwidth.to_string(),
                "InternetChargeType": e.internet_charge_type, "ChargeType": "PostPaid", "Name": e.name,
                "Description": e.description, "AllocationTime": time_vpc(e.created), "ISP": "BGP",
                "Mode": "NAT", "ResourceGroupId": "rg-emulator", "Tags": vpc_tags(&e.tags),
            })
        })
        .collect();
    Ok(
        json!({"EipAddresses": {"EipAddress": list}, "TotalCount": total, "PageNumber": number, "PageSize": size}),
    )
}

fn describe_price(m: &Model, p: &Params) -> ApiResult<Value> {
    let resource = p.get("ResourceType").unwrap_or("instance");
    if resource != "instance" {
        return Err(ApiError::invalid("ResourceType", resource));
    }
    let instance_type = p.req("InstanceType")?;
    let disk_gib = p.u32_or("SystemDisk.Size", 40)?;
    let bandwidth = p.u32_or("InternetMaxBandwidthOut", 0)?;
    let unit = p.get("PriceUnit").unwrap_or("Hour");
    let unit_hours = match unit {
        "Hour" => 1.0,
        "Week" => 168.0,
        "Month" => 720.0,
        "Year" => 8760.0,
        other => return Err(ApiError::invalid("PriceUnit", other)),
    };
    let period = p.u32_or("Period", 1)?.max(1);
    let amount = p.u32_or("Amount", 1)?.max(1);
    let hours = unit_hours * f64::from(period);
    let prices = &m.settings.prices;
    let total = prices.quote(instance_type, disk_gib, bandwidth, hours, amount)?;
    let part = |hourly: f64| round_cents(hourly * hours * f64::from(amount));
    let instance = part(prices.instance_hourly(instance_type)?);
    let disk = part(prices.disk_gib_hourly * f64::from(disk_gib));
    let bw = part(prices.bandwidth_mbps_hourly * f64::from(bandwidth));
    let detail = |resource: &str, price: f64| json!({"Resource": resource, "OriginalPrice": price, "DiscountPrice": 0.0, "TradePrice": price});
    Ok(json!({
        "PriceInfo": {
            "Price": {
                "OriginalPrice": total, "DiscountPrice": 0.0, "TradePrice": total, "Currency": prices.currency,
                "DetailInfos": {"DetailInfo": [detail("instanceType", instance), detail("systemDisk", disk), detail("bandwidth", bw)]},
            },
            "Rules": {"Rule": []},
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_handles_percent_and_plus() {
        assert_eq!(percent_decode("a%20b+c%2A").as_deref(), Some("a b c*"));
        assert_eq!(percent_decode("%E4%B8%AD").as_deref(), Some("中"));
        assert!(percent_decode("%G1").is_none());
        assert!(percent_decode("%4").is_none());
        let pairs = parse_pairs("b=2&a=&Tag.1.Key=k%3Dv").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("b".into(), "2".into()),
                ("a".into(), "".into()),
                ("Tag.1.Key".into(), "k=v".into())
            ]
        );
    }

    fn params(list: &[(&str, &str)]) -> Params {
        Params(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn params_parse_lists_tags_and_rules() {
        let p = params(&[
            ("Tag.2.Key", "b"),
            ("Tag.1.Key", "a"),
            ("Tag.1.Value", "1"),
            ("InstanceId.2", "i-2"),
            ("InstanceId.1", "i-1"),
            ("InstanceIds", "[\"i-1\",\"i-2\"]"),
            ("Permissions.1.IpProtocol", "TCP"),
            ("Permissions.1.PortRange", "22/22"),
            ("Permissions.2.IpProtocol", "icmp"),
        ]);
        assert_eq!(
            p.tag_filters(),
            vec![
                ("a".to_string(), Some("1".to_string())),
                ("b".to_string(), None)
            ]
        );
        assert_eq!(p.indexed("InstanceId"), vec!["i-1", "i-2"]);
        assert_eq!(p.json_list("InstanceIds").unwrap(), vec!["i-1", "i-2"]);
        let rules = rule_specs(&p).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].protocol, "tcp");
        assert_eq!(rules[0].source_cidr, "0.0.0.0/0");
        assert_eq!(rules[1].port_range, "-1/-1");
        let flat = params(&[
            ("IpProtocol", "udp"),
            ("PortRange", "53/53"),
            ("SourceCidrIp", "10.0.0.0/8"),
        ]);
        assert_eq!(rule_specs(&flat).unwrap()[0].source_cidr, "10.0.0.0/8");
        assert!(rule_specs(&params(&[("IpProtocol", "tcp"), ("PortRange", "99/1")])).is_err());
    }

    #[test]
    fn fingerprint_ignores_signature_params_but_not_business_ones() {
        let a = params(&[
            ("ClientToken", "t"),
            ("CidrBlock", "10.0.0.0/8"),
            ("SignatureNonce", "1"),
        ]);
        let b = params(&[
            ("SignatureNonce", "2"),
            ("CidrBlock", "10.0.0.0/8"),
            ("ClientToken", "t"),
        ]);
        let c = params(&[("ClientToken", "t"), ("CidrBlock", "10.1.0.0/16")]);
        let fa = a.idem("CreateVpc").unwrap().unwrap();
        assert_eq!(fa, b.idem("CreateVpc").unwrap().unwrap());
        assert_ne!(
            fa.fingerprint,
            c.idem("CreateVpc").unwrap().unwrap().fingerprint
        );
        assert!(
            params(&[("ClientToken", &"x".repeat(65))])
                .idem("CreateVpc")
                .is_err()
        );
    }

    #[test]
    fn model_errors_map_to_alibaba_codes() {
        let e: ApiError = ModelError::NotFound {
            kind: Kind::Instance,
            id: "i-1".into(),
        }
        .into();
        assert_eq!(
            (e.status, e.code.as_str()),
            (404, "InvalidInstanceId.NotFound")
        );
        let e: ApiError = ModelError::Dependency {
            kind: Kind::Vpc,
            id: "v".into(),
            blocker: Kind::Subnet,
        }
        .into();
        assert_eq!(e.code, "DependencyViolation.VSwitch");
        let e: ApiError = ModelError::Quota(Kind::Instance).into();
        assert_eq!(e.code, "QuotaExceed.ElasticQuota");
        let e: ApiError = ModelError::IdempotencyMismatch.into();
        assert_eq!(
            (e.status, e.code.as_str()),
            (400, "IdempotentParameterMismatch")
        );
    }
}
