//! Signature verification as the cloud performs it, written from the server's side and on
//! purpose not shared with any driver: a signer that shares code with its verifier cannot
//! catch the bugs they share. Each function recomputes what a correct client must have sent:
//! ACS3 and V2 (Alibaba Cloud), TC3 (Tencent Cloud).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// RFC 3986 encoding of the Alibaba Cloud APIs: everything but `A-Za-z0-9-_.~` as `%XX`.
fn rfc3986(raw: &str) -> String {
    let mut encoded = String::with_capacity(raw.len() * 3);
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Decoded parameters, encoded and sorted by encoded name (then value), `&`-joined.
fn sorted_query<'a>(params: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> =
        params.map(|(k, v)| (rfc3986(k), rfc3986(v))).collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256, as `x-acs-content-sha256` carries it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// An `Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Acs3Header {
    pub access_key_id: String,
    /// Lower-case names, as the client declared them.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Acs3Header {
    pub fn parse(value: &str) -> Option<Self> {
        let fields = value.strip_prefix("ACS3-HMAC-SHA256")?.trim_start();
        let mut access_key_id = None;
        let mut signed_headers = None;
        let mut signature = None;
        for field in fields.split(',') {
            match field.trim().split_once('=')? {
                ("Credential", v) => access_key_id = Some(v.to_string()),
                ("SignedHeaders", v) => {
                    signed_headers = Some(
                        v.split(';')
                            .map(|h| h.trim().to_ascii_lowercase())
                            .collect(),
                    )
                }
                ("Signature", v) => signature = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Self {
            access_key_id: access_key_id?,
            signed_headers: signed_headers?,
            signature: signature?,
        })
    }
}

/// What the server received, as the ACS3 string to sign covers it.
pub struct ReceivedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Lower-case header names with their values, as received.
    pub headers: &'a [(String, String)],
    /// The client's `x-acs-content-sha256` (or the body's hash when absent).
    pub body_sha256: &'a str,
}

impl ReceivedRequest<'_> {
    /// The ACS3 string to sign over the headers the client declared as signed.
    pub fn acs3_string_to_sign(&self, signed_headers: &[String]) -> String {
        let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let canonical_headers: String = names
            .iter()
            .map(|name| {
                let values: Vec<&str> = self
                    .headers
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.trim())
                    .collect();
                format!("{name}:{}\n", values.join(","))
            })
            .collect();
        let canonical_request = [
            self.method.to_string(),
            self.path.to_string(),
            sorted_query(self.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            canonical_headers,
            names.join(";"),
            self.body_sha256.to_string(),
        ]
        .join("\n");
        format!(
            "ACS3-HMAC-SHA256\n{}",
            sha256_hex(canonical_request.as_bytes())
        )
    }
}

/// The hex HMAC-SHA256 a client holding `secret` must have sent for `string_to_sign`.
pub fn acs3_expected(secret: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The V2 (HMAC-SHA1) signature a client holding `secret` must have sent: over every
/// parameter but `Signature`.
pub fn v2_expected<'a>(
    method: &str,
    params: impl Iterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let query = sorted_query(params.filter(|(k, _)| *k != "Signature"));
    let string_to_sign = format!("{method}&{}&{}", rfc3986("/"), rfc3986(&query));
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(format!("{secret}&").as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// An `Authorization: TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
/// SignedHeaders=<h1;h2>, Signature=<hex>` header (Tencent Cloud API 3.0).
#[derive(Debug, PartialEq, Eq)]
pub struct Tc3Header {
    pub secret_id: String,
    /// `YYYY-MM-DD`, the UTC date the client signed for.
    pub date: String,
    /// The credential scope's service (`cvm`, `vpc`, ...): it routes the call.
    pub service: String,
    /// Lower-case names, as the client declared them.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Tc3Header {
    pub fn parse(value: &str) -> Option<Self> {
        let fields = value.strip_prefix("TC3-HMAC-SHA256")?.trim_start();
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for field in fields.split(',') {
            match field.trim().split_once('=')? {
                ("Credential", v) => credential = Some(v),
                ("SignedHeaders", v) => {
                    signed_headers = Some(
                        v.split(';')
                            .map(|h| h.trim().to_ascii_lowercase())
                            .filter(|h| !h.is_empty())
                            .collect::<Vec<_>>(),
                    )
                }
                ("Signature", v) => signature = Some(v.to_string()),
                _ => {}
            }
        }
        let mut scope = credential?.split('/');
        let (secret_id, date, service, terminator) =
            (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
        if terminator != "tc3_request" || scope.next().is_some() || secret_id.is_empty() {
            return None;
        }
        Some(Self {
            secret_id: secret_id.to_string(),
            date: date.to_string(),
            service: service.to_string(),
            signed_headers: signed_headers.filter(|h| !h.is_empty())?,
            signature: signature?,
        })
    }
}

/// What the server received, as the TC3 string to sign covers it.
pub struct Tc3Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string (a GET carries its parameters there), empty for a JSON POST.
    pub query: &'a str,
    /// Header names (any case) with their values, as received.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the raw body bytes (or of `UNSIGNED-PAYLOAD` when the client said so).
    pub payload_sha256: &'a str,
    /// `X-TC-Timestamp`, as sent.
    pub timestamp: &'a str,
}

impl Tc3Request<'_> {
    /// The TC3 string to sign over the headers the client declared as signed. Header names and
    /// values are lower-cased and trimmed, as the API 3.0 signature document prescribes.
    pub fn string_to_sign(&self, signed_headers: &[String], date: &str, service: &str) -> String {
        let mut names: Vec<&str> = signed_headers.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let canonical_headers: String = names
            .iter()
            .map(|name| {
                let value = self
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                format!("{name}:{value}\n")
            })
            .collect();
        let canonical_request = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.path,
            self.query,
            canonical_headers,
            names.join(";"),
            self.payload_sha256
        );
        format!(
            "TC3-HMAC-SHA256\n{}\n{date}/{service}/tc3_request\n{}",
            self.timestamp,
            sha256_hex(canonical_request.as_bytes())
        )
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The hex TC3 signature a client holding `secret_key` must have sent: the key is derived from
/// `"TC3" + secret`, the date, the service and `tc3_request`.
pub fn tc3_expected(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

/// Constant-time comparison, so timing does not reveal how much of a guess was right.
pub fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official ACS3 example (Alibaba Cloud "request signature" document).
    #[test]
    fn acs3_official_vector() {
        let query = vec![
            (
                "ImageId".to_string(),
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd".to_string(),
            ),
            ("RegionId".to_string(), "cn-shanghai".to_string()),
        ];
        let headers = vec![
            (
                "host".to_string(),
                "ecs.cn-shanghai.aliyuncs.com".to_string(),
            ),
            ("x-acs-action".to_string(), "RunInstances".to_string()),
            (
                "x-acs-content-sha256".to_string(),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
            ),
            ("x-acs-date".to_string(), "2023-10-26T10:22:32Z".to_string()),
            (
                "x-acs-signature-nonce".to_string(),
                "3156853299f313e23d1673dc12e1703d".to_string(),
            ),
            ("x-acs-version".to_string(), "2014-05-26".to_string()),
        ];
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let request = ReceivedRequest {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        };
        let string_to_sign = request.acs3_string_to_sign(&signed);
        assert_eq!(
            acs3_expected("YourAccessKeySecret", &string_to_sign),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// The official TC3 example (Tencent Cloud API 3.0 "Signature v3" document).
    #[test]
    fn tc3_official_vector() {
        let body = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let payload = sha256_hex(body.as_bytes());
        assert_eq!(
            payload,
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/json; charset=utf-8".to_string(),
            ),
            ("Host".to_string(), "cvm.tencentcloudapi.com".to_string()),
            ("X-TC-Action".to_string(), "DescribeInstances".to_string()),
        ];
        let request = Tc3Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_sha256: &payload,
            timestamp: "1551113065",
        };
        let signed = vec!["content-type".to_string(), "host".to_string()];
        let string_to_sign = request.string_to_sign(&signed, "2019-02-25", "cvm");
        assert_eq!(
            string_to_sign,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            tc3_expected(
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                "2019-02-25",
                "cvm",
                &string_to_sign
            ),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn tc3_header_parses() {
        let h = Tc3Header::parse(
            "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;Host, Signature=abc",
        )
        .unwrap();
        assert_eq!(h.secret_id, "AKID");
        assert_eq!((h.date.as_str(), h.service.as_str()), ("2019-02-25", "cvm"));
        assert_eq!(h.signed_headers, vec!["content-type", "host"]);
        assert!(
            Tc3Header::parse(
                "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/cvm, SignedHeaders=host, Signature=abc"
            )
            .is_none()
        );
        assert!(
            Tc3Header::parse(
                "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/cvm/tc3_request, Signature=abc"
            )
            .is_none()
        );
        assert!(Tc3Header::parse("ACS3-HMAC-SHA256 Credential=id").is_none());
    }

    #[test]
    fn header_parses() {
        let h = Acs3Header::parse(
            "ACS3-HMAC-SHA256 Credential=id,SignedHeaders=host;X-Acs-Date,Signature=abc",
        )
        .unwrap();
        assert_eq!(h.access_key_id, "id");
        assert_eq!(h.signed_headers, vec!["host", "x-acs-date"]);
        assert!(Acs3Header::parse("HMAC Credential=id").is_none());
    }
}
