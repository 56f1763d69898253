//! The AWS Price List Query API (`AWSPriceListService.GetProducts`, JSON 1.1), answered from
//! the model's price table: one product per (instance type, region), Linux, shared tenancy, no
//! pre-installed software, with its on-demand hourly price in `pricePerUnit.USD`.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::*;
use crate::verify::sha256_hex;

const TARGET_PREFIX: &str = "AWSPriceListService.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The on-demand offer term code (the same for every on-demand price).
const ON_DEMAND_TERM: &str = "JRTCKXETXF";
const RATE_CODE: &str = "6YS6EN2CT7";

/// Whether a request is a Price List call (`X-Amz-Target: AWSPriceListService.*`).
pub(super) fn is_pricing_request(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

/// A JSON-protocol error: `{"__type": ..., "message": ...}`.
#[derive(Debug)]
pub(super) struct JsonError {
    status: u16,
    kind: String,
    message: String,
}

fn json_error(status: u16, kind: &str, message: impl Into<String>) -> JsonError {
    JsonError {
        status,
        kind: kind.into(),
        message: message.into(),
    }
}

/// An authentication failure as the JSON services name it.
pub(super) fn from_auth(e: ApiError, key_known: bool) -> JsonError {
    match e.code.as_str() {
        "RequestExpired" => json_error(
            400,
            "InvalidSignatureException",
            format!("Signature expired: {}", e.message),
        ),
        "AuthFailure" if !key_known => json_error(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        _ => json_error(400, "InvalidSignatureException", e.message),
    }
}

pub(super) fn error_response(state: &EmulatorState, e: &JsonError) -> Response {
    state.count_error(&e.kind);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        json!({"__type": e.kind, "message": e.message}).to_string(),
    )
        .into_response()
}

/// Serves one Price List call.
pub(super) async fn serve(
    state: &EmulatorState,
    caller: &auth::Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(action) = target.strip_prefix(TARGET_PREFIX) else {
        return error_response(
            state,
            &json_error(400, "UnknownOperationException", "Missing X-Amz-Target"),
        );
    };
    if action != "GetProducts" {
        return error_response(
            state,
            &json_error(
                400,
                "UnknownOperationException",
                format!("Unknown operation {action}"),
            ),
        );
    }
    state.count_call(action);
    let faults = state.faults();
    let result = match injected_error(&faults, action).await {
        Some(e) if e.code == "RequestLimitExceeded" => {
            Err(json_error(400, "ThrottlingException", "Rate exceeded"))
        }
        Some(e) => Err(json_error(500, "InternalErrorException", e.message)),
        None => get_products(state, caller, body),
    };
    let lost = result.is_ok() && faults.lose_response(action);
    let params: Vec<(String, String)> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .map(|o| o.into_iter().map(|(k, v)| (k, v.to_string())).collect())
        .unwrap_or_default();
    state.log_call(
        action,
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        result.as_ref().err().map(|e| e.kind.as_str()),
        lost,
    );
    match result {
        _ if lost => lost_response(state),
        Ok(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            v.to_string(),
        )
            .into_response(),
        Err(e) => error_response(state, &e),
    }
}

fn region_name(region: &str) -> &'static str {
    match region {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "eu-west-1" => "EU (Ireland)",
        "eu-central-1" => "EU (Frankfurt)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        _ => "Unknown",
    }
}

fn usage_prefix(region: &str) -> String {
    match region {
        "us-east-1" => "USE1".into(),
        "us-east-2" => "USE2".into(),
        "us-west-1" => "USW1".into(),
        "us-west-2" => "USW2".into(),
        "eu-west-1" => "EU".into(),
        "eu-central-1" => "EUC1".into(),
        "ap-northeast-1" => "APN1".into(),
        _ => "APS1".into(),
    }
}

/// One product of the price list, as `GetProducts` returns it (serialized to a string there).
fn product(instance_type: &str, region: &str, hourly: f64, currency: &str) -> Value {
    let sku: String = sha256_hex(format!("{instance_type}/{region}").as_bytes())
        .chars()
        .take(16)
        .collect::<String>()
        .to_ascii_uppercase();
    let info = instance_type_info(instance_type);
    let mut attributes = json!({
        "servicecode": "AmazonEC2",
        "servicename": "Amazon Elastic Compute Cloud",
        "instanceType": instance_type,
        "instanceFamily": if info.is_some_and(|i| i.gpus > 0) { "GPU instance" } else { "General purpose" },
        "regionCode": region,
        "location": region_name(region),
        "locationType": "AWS Region",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "operation": "RunInstances",
        "usagetype": format!("{}-BoxUsage:{instance_type}", usage_prefix(region)),
        "marketoption": "OnDemand",
    });
    if let (Some(i), Some(obj)) = (info, attributes.as_object_mut()) {
        obj.insert("vcpu".into(), Value::String(i.vcpus.to_string()));
        obj.insert(
            "memory".into(),
            Value::String(format!("{} GiB", i.memory_gib)),
        );
        obj.insert("gpu".into(), Value::String(i.gpus.to_string()));
        if i.gpus > 0 {
            obj.insert("gpuMemory".into(), Value::String("NA".into()));
        }
    }
    let term = format!("{sku}.{ON_DEMAND_TERM}");
    let rate = format!("{term}.{RATE_CODE}");
    json!({
        "product": {"productFamily": "Compute Instance", "attributes": attributes, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {term.clone(): {
            "priceDimensions": {rate.clone(): {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "description": format!("${hourly} per On Demand Linux {instance_type} Instance Hour"),
                "rateCode": rate,
                "pricePerUnit": {currency: format!("{hourly:.10}")},
            }},
            "sku": sku, "effectiveDate": "2025-01-01T00:00:00Z", "offerTermCode": ON_DEMAND_TERM,
            "termAttributes": {},
        }}},
        "version": "20250101000000",
        "publicationDate": "2025-01-01T00:00:00Z",
    })
}

fn get_products(
    state: &EmulatorState,
    caller: &auth::Caller,
    body: &[u8],
) -> Result<Value, JsonError> {
    let call = IamCall {
        action: "pricing:GetProducts".into(),
        region: caller.region.clone(),
        request_tags: None,
        resources: vec![IamResource {
            arn: "*".into(),
            tags: None,
        }],
        create_action: None,
    };
    state.authorize_iam(&caller.access_key_id, &call).map_err(|d| {
        json_error(
            400,
            "AccessDeniedException",
            format!("User: arn:aws:iam::{ACCOUNT_ID}:user/emulator is not authorized to perform: {} on resource: *", d.action),
        )
    })?;
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|_| json_error(400, "SerializationException", "The body is not JSON."))?
    };
    let invalid = |m: &str| json_error(400, "InvalidParameterException", m);
    let service = request
        .get("ServiceCode")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if service.is_empty() {
        return Err(invalid("ServiceCode is required."));
    }
    if service != "AmazonEC2" {
        return Err(json_error(
            400,
            "NotFoundException",
            format!("The service code {service} has no price list in the emulator."),
        ));
    }
    if request
        .get("FormatVersion")
        .and_then(Value::as_str)
        .is_some_and(|f| f != "aws_v1")
    {
        return Err(invalid("FormatVersion must be aws_v1."));
    }
    let mut filters: Vec<(String, String)> = Vec::new();
    for f in request
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = f.get("Type").and_then(Value::as_str).unwrap_or_default();
        if kind != "TERM_MATCH" {
            return Err(invalid("The emulator takes TERM_MATCH filters only."));
        }
        let field = f.get("Field").and_then(Value::as_str).unwrap_or_default();
        let value = f.get("Value").and_then(Value::as_str).unwrap_or_default();
        if field.is_empty() {
            return Err(invalid("Filter Field is required."));
        }
        filters.push((field.to_ascii_lowercase(), value.to_string()));
    }
    let max = request
        .get("MaxResults")
        .and_then(Value::as_i64)
        .unwrap_or(100);
    if !(1..=100).contains(&max) {
        return Err(invalid("MaxResults must be within 1..100."));
    }
    let offset: usize = match request.get("NextToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("mce-page:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| json_error(400, "InvalidNextTokenException", "Invalid NextToken."))?,
    };
    let prices = state.prices();
    let mut types: std::collections::BTreeSet<String> =
        INSTANCE_TYPES.iter().map(|t| t.name.to_string()).collect();
    types.extend(
        prices
            .instance_currency
            .iter()
            .filter(|(_, c)| *c == "USD")
            .map(|(t, _)| t.clone()),
    );
    let mut list = Vec::new();
    for t in &types {
        let Ok(hourly) = prices.instance_hourly(t) else {
            continue;
        };
        let currency = prices.currency_of(t);
        for region in REGIONS {
            let p = product(t, region, hourly, currency);
            let attributes = &p["product"]["attributes"];
            let matches = filters.iter().all(|(field, value)| {
                let actual = attributes.as_object().and_then(|a| {
                    a.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(field))
                        .and_then(|(_, v)| v.as_str())
                });
                let actual = if field == "servicecode" {
                    Some("AmazonEC2")
                } else {
                    actual
                };
                actual.is_some_and(|a| a.eq_ignore_ascii_case(value))
            });
            if matches {
                list.push(p.to_string());
            }
        }
    }
    let max = usize::try_from(max).unwrap_or(100);
    let total = list.len();
    let page: Vec<String> = list.into_iter().skip(offset).take(max).collect();
    let mut out = json!({"FormatVersion": "aws_v1", "PriceList": page});
    if offset + max < total
        && let Some(obj) = out.as_object_mut()
    {
        obj.insert(
            "NextToken".into(),
            Value::String(format!("mce-page:{}", offset + max)),
        );
    }
    Ok(out)
}
