//! Alibaba Cloud request signatures, written from the public spec: ACS3-HMAC-SHA256 (V3) and the
//! older RPC HMAC-SHA1 (V2). Used by the driver to sign and by the emulator to verify, so both
//! sides share one canonicalization.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const ACS3_ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// Hex SHA-256 of the empty body.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 percent-encoding as Alibaba Cloud specifies it: unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) stay, everything else is `%XX` (space is `%20`, `*` is `%2A`).
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 8);
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Sorted, encoded `k=v&k=v` over already-decoded parameter pairs.
pub fn canonical_query<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The parts of a request that ACS3 signs.
pub struct Acs3Request<'a> {
    pub method: &'a str,
    /// `/` for RPC-style APIs.
    pub path: &'a str,
    /// Decoded query parameters, in any order.
    pub query: &'a [(String, String)],
    /// Lower-case header names and values; only those named in `signed_headers` are used.
    pub headers: &'a [(String, String)],
    /// Lower-case header names to sign, in any order.
    pub signed_headers: &'a [String],
    /// Hex SHA-256 of the body (`x-acs-content-sha256`).
    pub body_sha256: &'a str,
}

impl Acs3Request<'_> {
    /// The signed header names, sorted and `;`-joined.
    pub fn signed_header_list(&self) -> String {
        let mut names: Vec<&str> = self.signed_headers.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names.join(";")
    }

    pub fn canonical_request(&self) -> String {
        let mut names: Vec<&str> = self.signed_headers.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let mut canonical_headers = String::new();
        for name in &names {
            // A header may repeat; values are joined with commas, each trimmed.
            let values: Vec<&str> = self
                .headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
                .collect();
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(&values.join(","));
            canonical_headers.push('\n');
        }
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.path,
            canonical_query(self.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            canonical_headers,
            names.join(";"),
            self.body_sha256
        )
    }

    pub fn string_to_sign(&self) -> String {
        format!(
            "{ACS3_ALGORITHM}\n{}",
            sha256_hex(self.canonical_request().as_bytes())
        )
    }

    /// Hex HMAC-SHA256 of the string to sign with the raw secret.
    pub fn signature(&self, secret: &str) -> String {
        hex::encode(hmac_sha256(
            secret.as_bytes(),
            self.string_to_sign().as_bytes(),
        ))
    }

    /// The `Authorization` header value.
    pub fn authorization(&self, access_key_id: &str, secret: &str) -> String {
        format!(
            "{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={}",
            self.signed_header_list(),
            self.signature(secret)
        )
    }
}

/// A parsed ACS3 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Acs3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
pub fn parse_acs3_authorization(value: &str) -> Option<Acs3Authorization> {
    let rest = value.strip_prefix(ACS3_ALGORITHM)?.trim_start();
    let (mut id, mut headers, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => id = Some(v.to_string()),
            "SignedHeaders" => {
                headers = Some(
                    v.split(';')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .collect(),
                )
            }
            "Signature" => sig = Some(v.to_string()),
            _ => {}
        }
    }
    Some(Acs3Authorization {
        access_key_id: id?,
        signed_headers: headers?,
        signature: sig?,
    })
}

/// V2 RPC signature: Base64(HMAC-SHA1(secret + "&", METHOD&%2F&enc(canonical query))), over
/// every parameter except `Signature`.
pub fn rpc_v2_signature<'a>(
    method: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let query = canonical_query(params.into_iter().filter(|(k, _)| *k != "Signature"));
    let string_to_sign = format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&query)
    );
    let key = format!("{secret}&");
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub use mce_cloud::transport::signatures_equal;

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The official ACS3 vector from Alibaba Cloud's "V3 request structure and signature".
    #[test]
    fn acs3_official_vector() {
        let query = pairs(&[
            ("RegionId", "cn-shanghai"),
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
        ]);
        let headers = pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", EMPTY_BODY_SHA256),
        ]);
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let req = Acs3Request {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            body_sha256: EMPTY_BODY_SHA256,
        };
        let expected_canonical = "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n\
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
x-acs-version:2014-05-26\n\n\
host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(req.canonical_request(), expected_canonical);
        assert_eq!(
            req.string_to_sign(),
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            req.signature("YourAccessKeySecret"),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        let auth = req.authorization("YourAccessKeyId", "YourAccessKeySecret");
        let parsed = parse_acs3_authorization(&auth).unwrap();
        assert_eq!(parsed.access_key_id, "YourAccessKeyId");
        let mut sorted = signed.clone();
        sorted.sort();
        assert_eq!(parsed.signed_headers, sorted);
        assert_eq!(
            parsed.signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// The official V2 (HMAC-SHA1) vector from Alibaba Cloud's "RPC mechanism".
    #[test]
    fn rpc_v2_official_vector() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeDedicatedHosts"),
            ("Format", "JSON"),
            ("RegionId", "cn-beijing"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2023-03-13T08:34:30Z"),
            ("Version", "2014-05-26"),
        ];
        assert_eq!(
            canonical_query(params.iter().copied()),
            "AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-beijing&SignatureMethod=HMAC-SHA1&SignatureNonce=edb2b34af0af9a6d14deaf7c1a5315eb&SignatureVersion=1.0&Timestamp=2023-03-13T08%3A34%3A30Z&Version=2014-05-26"
        );
        assert_eq!(
            rpc_v2_signature("GET", params.iter().copied(), "testsecret"),
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        );
        // The Signature parameter itself is excluded.
        let mut with_sig = params.to_vec();
        with_sig.push(("Signature", "ignored"));
        assert_eq!(
            rpc_v2_signature("GET", with_sig, "testsecret"),
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        );
    }

    #[test]
    fn percent_encoding_follows_rfc3986() {
        assert_eq!(percent_encode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9");
        assert_eq!(percent_encode("[\"sg-1\"]"), "%5B%22sg-1%22%5D");
    }

    #[test]
    fn canonical_query_sorts_after_encoding() {
        assert_eq!(
            canonical_query([("b", "2"), ("a", "1 1"), ("Tag.1.Key", "k")]),
            "Tag.1.Key=k&a=1%201&b=2"
        );
        assert_eq!(canonical_query(std::iter::empty()), "");
    }

    #[test]
    fn malformed_authorization_is_rejected() {
        assert!(parse_acs3_authorization("HMAC foo").is_none());
        assert!(parse_acs3_authorization("ACS3-HMAC-SHA256 Credential=a,Signature=b").is_none());
    }
}
