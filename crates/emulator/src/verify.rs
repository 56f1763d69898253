//! Signature verification as the cloud performs it, written from the server's side and on
//! purpose not shared with any driver: a signer that shares code with its verifier cannot
//! catch the bugs they share. Each function recomputes what a correct client must have sent.

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
