//! TC3-HMAC-SHA256 (Tencent Cloud API 3.0 "Signature v3"), by hand with hmac/sha2.
//!
//! The driver always signs `POST /` with an empty query and the two headers `content-type` and
//! `host`; the verifier side ([`parse_tc3_authorization`]) is here too so tests and the emulator
//! check requests exactly as the cloud would.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The headers the driver signs, in canonical (sorted) order.
pub const SIGNED_HEADERS: &str = "content-type;host";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp, as the credential scope needs it. `None`
/// for a timestamp outside jiff's range.
pub fn scope_date(timestamp: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_second(timestamp).ok()?;
    Some(ts.strftime("%Y-%m-%d").to_string())
}

/// One request to sign (or verify): everything TC3 covers.
#[derive(Clone, Copy, Debug)]
pub struct Tc3Request<'a> {
    /// `Host` exactly as sent, port included (`127.0.0.1:8080`).
    pub host: &'a str,
    /// `Content-Type` exactly as sent.
    pub content_type: &'a str,
    /// The raw body bytes (the hash covers them, not a re-serialisation).
    pub payload: &'a [u8],
    /// `X-TC-Timestamp`.
    pub timestamp: i64,
    /// The service of the credential scope: `cvm`, `vpc`, `tag`.
    pub service: &'a str,
    /// UTC date of `timestamp`, `YYYY-MM-DD`.
    pub date: &'a str,
}

impl Tc3Request<'_> {
    pub fn credential_scope(&self) -> String {
        format!("{}/{}/tc3_request", self.date, self.service)
    }

    pub fn canonical_request(&self) -> String {
        format!(
            "POST\n/\n\ncontent-type:{}\nhost:{}\n\n{SIGNED_HEADERS}\n{}",
            self.content_type,
            self.host,
            sha256_hex(self.payload)
        )
    }

    pub fn string_to_sign(&self) -> String {
        format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.timestamp,
            self.credential_scope(),
            sha256_hex(self.canonical_request().as_bytes())
        )
    }

    /// kDate = HMAC("TC3"+key, date); kService = HMAC(kDate, service);
    /// kSigning = HMAC(kService, "tc3_request").
    pub fn signing_key(&self, secret_key: &str) -> Vec<u8> {
        let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), self.date.as_bytes());
        let k_service = hmac_sha256(&k_date, self.service.as_bytes());
        hmac_sha256(&k_service, b"tc3_request")
    }

    pub fn signature(&self, secret_key: &str) -> String {
        hex::encode(hmac_sha256(
            &self.signing_key(secret_key),
            self.string_to_sign().as_bytes(),
        ))
    }

    /// The `Authorization` header value.
    pub fn authorization(&self, secret_id: &str, secret_key: &str) -> String {
        format!(
            "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={SIGNED_HEADERS}, Signature={}",
            self.credential_scope(),
            self.signature(secret_key)
        )
    }
}

/// The parts of a TC3 `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tc3Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=..,
/// Signature=..`; `None` when it is not a well-formed TC3 header.
pub fn parse_tc3_authorization(value: &str) -> Option<Tc3Authorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let (secret_id, date, service, terminator) =
        (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    if terminator != "tc3_request" || scope.next().is_some() || secret_id.is_empty() {
        return None;
    }
    Some(Tc3Authorization {
        secret_id: secret_id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    })
}

pub use mce_cloud::transport::signatures_equal;

#[cfg(test)]
mod tests {
    use super::*;

    // The official example of the API 3.0 signature documentation (see cloud-apis.md).
    const BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    fn vector() -> Tc3Request<'static> {
        Tc3Request {
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            payload: BODY.as_bytes(),
            timestamp: 1551113065,
            service: "cvm",
            date: "2019-02-25",
        }
    }

    #[test]
    fn official_vector_byte_for_byte() {
        let r = vector();
        assert_eq!(
            sha256_hex(r.payload),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            r.canonical_request(),
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            sha256_hex(r.canonical_request().as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(r.credential_scope(), "2019-02-25/cvm/tc3_request");
        assert_eq!(
            r.string_to_sign(),
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            r.signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        assert_eq!(
            r.authorization(
                "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
            ),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn scope_date_is_the_utc_date_of_the_timestamp() {
        assert_eq!(scope_date(1551113065).as_deref(), Some("2019-02-25"));
        // 23:59:59 UTC stays on its day whatever the local zone.
        assert_eq!(scope_date(1551139199).as_deref(), Some("2019-02-25"));
        assert_eq!(scope_date(1551139200).as_deref(), Some("2019-02-26"));
    }

    #[test]
    fn authorization_round_trips() {
        let r = vector();
        let header = r.authorization("AKID", "key");
        let parsed = parse_tc3_authorization(&header).unwrap();
        assert_eq!(parsed.secret_id, "AKID");
        assert_eq!(parsed.date, "2019-02-25");
        assert_eq!(parsed.service, "cvm");
        assert_eq!(parsed.signed_headers, ["content-type", "host"]);
        assert!(signatures_equal(&parsed.signature, &r.signature("key")));
        assert!(!signatures_equal(&parsed.signature, &r.signature("other")));
        assert!(parse_tc3_authorization("ACS3-HMAC-SHA256 Credential=x").is_none());
        assert!(
            parse_tc3_authorization(
                "TC3-HMAC-SHA256 Credential=a/2019-02-25/cvm/aws4_request, SignedHeaders=host, Signature=00"
            )
            .is_none()
        );
    }
}
