//! Who is calling: AWS Signature Version 4, recomputed from the server's side with hmac/sha2
//! (canonical request over the method, path, canonical query, the headers the client declared
//! as signed and the payload hash), the credential scope (date, region, service) and the
//! request time (at most 15 minutes off), checked as EC2 checks them.

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::Sha256;

use super::request::percent_decode;
use super::{ApiError, ApiResult, PRICING_REGIONS, REGIONS};
use crate::EmulatorState;
use crate::verify::{same_signature, sha256_hex};

/// Accepted clock skew of `X-Amz-Date`.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// The AWS service a request was signed for (the credential scope's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Pricing,
}

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub access_key_id: String,
    pub region: String,
    pub service: Service,
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=<id>/<yyyymmdd>/<region>/<service>/aws4_request,
/// SignedHeaders=<h1;h2>, Signature=<hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sigv4Header {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case names, as the client declared them.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Sigv4Header {
    pub fn parse(value: &str) -> Option<Self> {
        let fields = value.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for field in fields.split(',') {
            match field.trim().split_once('=')? {
                ("Credential", v) => credential = Some(v),
                ("SignedHeaders", v) => {
                    signed = Some(
                        v.split(';')
                            .map(|h| h.trim().to_ascii_lowercase())
                            .filter(|h| !h.is_empty())
                            .collect::<Vec<_>>(),
                    );
                }
                ("Signature", v) => signature = Some(v.trim().to_string()),
                _ => {}
            }
        }
        let mut scope = credential?.split('/');
        let (id, date, region, service, terminator) = (
            scope.next()?,
            scope.next()?,
            scope.next()?,
            scope.next()?,
            scope.next()?,
        );
        if terminator != "aws4_request" || scope.next().is_some() || id.is_empty() {
            return None;
        }
        Some(Self {
            access_key_id: id.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            signed_headers: signed.filter(|s| !s.is_empty())?,
            signature: signature?,
        })
    }
}

/// RFC 3986 encoding of SigV4: everything but `A-Za-z0-9-_.~` as `%XX` (upper-case hex);
/// `/` too unless `keep_slash`.
fn uri_encode(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query: each name and value decoded and encoded again, sorted by name then
/// value, `&`-joined.
fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = percent_decode(k, false).unwrap_or_else(|| k.to_string());
            let v = percent_decode(v, false).unwrap_or_else(|| v.to_string());
            (uri_encode(&k, false), uri_encode(&v, false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The SigV4 canonical request.
pub fn canonical_request(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    signed_headers: &[String],
    payload_sha256: &str,
) -> String {
    let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let canonical_headers: String = names
        .iter()
        .map(|name| {
            let values: Vec<String> = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    let path = if path.is_empty() { "/" } else { path };
    let path = uri_encode(
        &percent_decode(path, false).unwrap_or_else(|| path.to_string()),
        true,
    );
    format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{payload_sha256}",
        canonical_query(raw_query),
        names.join(";")
    )
}

/// `AWS4-HMAC-SHA256\n<amz-date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The hex signature of a string to sign.
pub fn signature(key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn auth_failure(message: impl Into<String>) -> ApiError {
    ApiError::new(401, "AuthFailure", message)
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "IncompleteSignature", message)
}

/// `20150830T123600Z` as a timestamp.
fn parse_amz_date(text: &str) -> Option<Timestamp> {
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", text)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Verifies the call's signature and tells who made it, for which region and service.
pub(crate) fn authenticate(
    state: &EmulatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Caller> {
    let authorization = header(headers, "authorization").unwrap_or_default();
    let parsed = Sigv4Header::parse(authorization).ok_or_else(|| {
        incomplete(format!(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters of the form <id>/<date>/<region>/<service>/aws4_request. Authorization={authorization}"
        ))
    })?;
    let service = match parsed.service.as_str() {
        "ec2" => Service::Ec2,
        "pricing" => Service::Pricing,
        _ => {
            return Err(auth_failure(format!(
                "Credential should be scoped to correct service: 'ec2'. Scope: {}",
                parsed.service
            )));
        }
    };
    let regions = match service {
        Service::Ec2 => REGIONS,
        Service::Pricing => PRICING_REGIONS,
    };
    if !regions.contains(&parsed.region.as_str()) {
        return Err(auth_failure(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            parsed.region
        )));
    }
    let secret = state.secret_of(&parsed.access_key_id).ok_or_else(|| {
        auth_failure("AWS was not able to validate the provided access credentials")
    })?;
    let amz_date = header(headers, "x-amz-date").ok_or_else(|| {
        incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    })?;
    let when = parse_amz_date(amz_date)
        .ok_or_else(|| incomplete(format!("Invalid X-Amz-Date '{amz_date}'.")))?;
    if amz_date.get(..8) != Some(parsed.date.as_str()) {
        return Err(auth_failure(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            parsed.date,
            amz_date.get(..8).unwrap_or_default()
        )));
    }
    let now = Timestamp::now();
    let skew = (now.as_second() - when.as_second()).abs();
    if skew > MAX_SKEW_SECS {
        return Err(ApiError::new(
            400,
            "RequestExpired",
            format!(
                "Request has expired. Timestamp date is {amz_date}, server time is {}.",
                now.strftime("%Y%m%dT%H%M%SZ")
            ),
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !parsed.signed_headers.iter().any(|h| h == required) {
            return Err(auth_failure(format!(
                "The header '{required}' must be signed."
            )));
        }
    }
    let body_sha256 = sha256_hex(body);
    let payload = match header(headers, "x-amz-content-sha256") {
        Some("UNSIGNED-PAYLOAD") | None => body_sha256.clone(),
        Some(declared) => {
            if !declared.eq_ignore_ascii_case(&body_sha256) {
                return Err(auth_failure(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
            declared.to_string()
        }
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
    let canonical = canonical_request(
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or_default(),
        &received,
        &parsed.signed_headers,
        &payload,
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        parsed.date, parsed.region, parsed.service
    );
    let expected = signature(
        &signing_key(&secret, &parsed.date, &parsed.region, &parsed.service),
        &string_to_sign(amz_date, &scope, &canonical),
    );
    if !same_signature(&expected, &parsed.signature.to_ascii_lowercase()) {
        // EC2 answers a wrong secret exactly as an unknown key.
        return Err(auth_failure(
            "AWS was not able to validate the provided access credentials",
        ));
    }
    Ok(Caller {
        access_key_id: parsed.access_key_id,
        region: parsed.region,
        service,
    })
}

/// The headers of a SigV4-signed `POST /` form request, as botocore sends them. For tests and
/// benchmarks, which are clients of the emulator; no driver uses it.
pub fn sign_for_tests(
    access_key_id: &str,
    secret: &str,
    host: &str,
    region: &str,
    service: &str,
    body: &[u8],
    timestamp: i64,
) -> Vec<(String, String)> {
    let when = Timestamp::from_second(timestamp).unwrap_or(Timestamp::UNIX_EPOCH);
    let amz_date = when.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = amz_date[..8].to_string();
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("Host".to_string(), host.to_string()),
        ("X-Amz-Date".to_string(), amz_date.clone()),
    ];
    let signed: Vec<String> = ["content-type", "host", "x-amz-date"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let canonical = canonical_request("POST", "/", "", &headers, &signed, &sha256_hex(body));
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sig = signature(
        &signing_key(secret, &date, region, service),
        &string_to_sign(&amz_date, &scope, &canonical),
    );
    headers.push((
        "Authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={sig}"
        ),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SigV4 example of the AWS documentation (IAM ListUsers, `get-vanilla`-style).
    #[test]
    fn sigv4_official_vector() {
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("Host".to_string(), "iam.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let signed: Vec<String> = vec!["content-type".into(), "host".into(), "x-amz-date".into()];
        let canonical = canonical_request(
            "GET",
            "/",
            "Version=2010-05-08&Action=ListUsers",
            &headers,
            &signed,
            &sha256_hex(b""),
        );
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let sts = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/iam/aws4_request",
            &canonical,
        );
        assert_eq!(
            signature(&key, &sts),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn header_parses() {
        let h = Sigv4Header::parse(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ec2/aws4_request, SignedHeaders=Host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(h.access_key_id, "AKID");
        assert_eq!(
            (h.date.as_str(), h.region.as_str(), h.service.as_str()),
            ("20150830", "us-east-1", "ec2")
        );
        assert_eq!(h.signed_headers, ["host", "x-amz-date"]);
        for bad in [
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ec2, SignedHeaders=host, Signature=a",
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ec2/aws4_request, Signature=a",
            "TC3-HMAC-SHA256 Credential=AKID/2015-08-30/cvm/tc3_request",
        ] {
            assert!(Sigv4Header::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn query_is_canonicalized() {
        assert_eq!(canonical_query("b=2&a=%7e+x&a=1"), "a=1&a=~%2Bx&b=2");
        assert_eq!(canonical_query(""), "");
    }
}
