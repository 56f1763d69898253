//! Who is calling: the TC3-HMAC-SHA256 signature over the raw body and the headers the client
//! declared as signed, and the timestamp (at most 300 s off), checked as the cloud does.

use axum::http::{HeaderMap, Method, Uri};
use jiff::Timestamp;

use super::{ApiError, ApiResult, Call, Service};
use crate::EmulatorState;
use crate::verify::{self, Tc3Header, Tc3Request, sha256_hex};

/// Accepted clock skew of `X-TC-Timestamp`.
pub const MAX_SKEW_SECS: i64 = 300;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn invalid_authorization(message: &str) -> ApiError {
    ApiError::new("AuthFailure.InvalidAuthorization", message)
}

fn signature_failure(message: &str) -> ApiError {
    ApiError::new("AuthFailure.SignatureFailure", message)
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp.
fn utc_date(timestamp: i64) -> Option<String> {
    Timestamp::from_second(timestamp)
        .ok()
        .map(|t| t.strftime("%Y-%m-%d").to_string())
}

/// Verifies the call and tells what it is.
pub(super) fn authenticate(
    state: &EmulatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Call> {
    let authorization = header(headers, "authorization")
        .ok_or_else(|| invalid_authorization("The request carries no Authorization header."))?;
    let parsed = Tc3Header::parse(authorization).ok_or_else(|| {
        invalid_authorization("The Authorization header does not conform to TC3-HMAC-SHA256.")
    })?;
    if !["content-type", "host"]
        .iter()
        .all(|h| parsed.signed_headers.iter().any(|s| s == h))
    {
        return Err(invalid_authorization(
            "SignedHeaders must include content-type and host.",
        ));
    }
    let secret = state.secret_of(&parsed.secret_id).ok_or_else(|| {
        ApiError::new(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        )
    })?;
    let timestamp_text =
        header(headers, "x-tc-timestamp").ok_or_else(|| ApiError::missing("X-TC-Timestamp"))?;
    let timestamp: i64 = timestamp_text
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid_value("X-TC-Timestamp", timestamp_text))?;
    let now = Timestamp::now().as_second();
    if (now - timestamp).abs() > MAX_SKEW_SECS {
        return Err(ApiError::new(
            "AuthFailure.SignatureExpire",
            format!(
                "Signature expired. Timestamp {timestamp} differs from the server time {now} by more than {MAX_SKEW_SECS} seconds."
            ),
        ));
    }
    if utc_date(timestamp).as_deref() != Some(parsed.date.as_str()) {
        return Err(signature_failure(
            "The credential scope's date is not the UTC date of X-TC-Timestamp.",
        ));
    }
    let payload_sha256 = if header(headers, "x-tc-content-sha256") == Some("UNSIGNED-PAYLOAD") {
        sha256_hex(b"UNSIGNED-PAYLOAD")
    } else {
        sha256_hex(body)
    };
    let received: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = Tc3Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &received,
        payload_sha256: &payload_sha256,
        timestamp: timestamp_text,
    };
    let string_to_sign =
        request.string_to_sign(&parsed.signed_headers, &parsed.date, &parsed.service);
    let expected = verify::tc3_expected(&secret, &parsed.date, &parsed.service, &string_to_sign);
    if !verify::same_signature(&expected, &parsed.signature) {
        return Err(signature_failure(
            "The provided credentials could not be validated. Please check your signature is correct.",
        ));
    }
    if *method != Method::POST
        || !header(headers, "content-type").is_some_and(|c| c.starts_with("application/json"))
    {
        return Err(ApiError::invalid(
            "The emulator serves POST requests with a JSON body (Content-Type: application/json).",
        ));
    }
    let service = Service::from_scope(&parsed.service).ok_or_else(|| {
        ApiError::new(
            "InvalidAction",
            format!("The service `{}` is not emulated.", parsed.service),
        )
    })?;
    let action = header(headers, "x-tc-action").ok_or_else(|| ApiError::missing("Action"))?;
    let version = header(headers, "x-tc-version").ok_or_else(|| ApiError::missing("Version"))?;
    if version != service.version() {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!(
                "The version `{version}` of service {service:?} is not supported (use {}).",
                service.version()
            ),
        ));
    }
    Ok(Call {
        access_key_id: parsed.secret_id.clone(),
        service,
        action: action.to_string(),
        region: header(headers, "x-tc-region")
            .unwrap_or_default()
            .to_string(),
    })
}

/// The headers of a TC3-signed JSON `POST /`, exactly as the official SDK sends them. For tests
/// and benchmarks, which are clients of the emulator; no driver uses it.
#[allow(clippy::too_many_arguments)]
pub fn sign_for_tests(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    service: &str,
    action: &str,
    region: &str,
    body: &[u8],
    timestamp: i64,
) -> Vec<(String, String)> {
    let version = Service::from_scope(service).map_or("", Service::version);
    let date = utc_date(timestamp).unwrap_or_default();
    let timestamp = timestamp.to_string();
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Host".to_string(), host.to_string()),
        ("X-TC-Action".to_string(), action.to_string()),
        ("X-TC-Timestamp".to_string(), timestamp.clone()),
        ("X-TC-Version".to_string(), version.to_string()),
    ];
    if !region.is_empty() {
        headers.push(("X-TC-Region".to_string(), region.to_string()));
    }
    let payload = sha256_hex(body);
    let request = Tc3Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload_sha256: &payload,
        timestamp: &timestamp,
    };
    let signed = ["content-type".to_string(), "host".to_string()];
    let string_to_sign = request.string_to_sign(&signed, &date, service);
    let signature = verify::tc3_expected(secret_key, &date, service, &string_to_sign);
    headers.push((
        "Authorization".to_string(),
        format!(
            "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders=content-type;host, Signature={signature}"
        ),
    ));
    headers
}
