//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), by hand with hmac/sha2.
//!
//! General enough for the official test suite (any method, query and header set); the driver
//! signs `POST /` with an empty query and the headers `content-type`, `host` (port included)
//! and `x-amz-date` (plus `x-amz-target` for the JSON 1.1 Price List API), over the SHA-256 of
//! the raw body. [`parse_authorization`] is the verifier side, for tests.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The scope terminator.
pub const TERMINATOR: &str = "aws4_request";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 percent-encoding as SigV4 (and the Query protocol) wants it: unreserved characters
/// `A-Z a-z 0-9 - _ . ~` stay, every other byte of the UTF-8 form becomes `%XX` (upper case).
pub fn uri_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string of decoded `(name, value)` pairs: each encoded, sorted by name
/// then value, `name=value` joined by `&`. Empty when there are none.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) and the scope date (`YYYYMMDD`) of a Unix timestamp, UTC.
pub fn amz_date(timestamp: i64) -> Option<(String, String)> {
    let ts = jiff::Timestamp::from_second(timestamp).ok()?;
    Some((
        ts.strftime("%Y%m%dT%H%M%SZ").to_string(),
        ts.strftime("%Y%m%d").to_string(),
    ))
}

/// One request to sign (or verify): everything SigV4 covers.
#[derive(Clone, Copy, Debug)]
pub struct SigV4Request<'a> {
    pub method: &'a str,
    /// The canonical (already URI-encoded) path, `/` for the Query and JSON protocols.
    pub path: &'a str,
    /// The canonical query string (see [`canonical_query`]); empty for a form POST.
    pub query: &'a str,
    /// Every signed header as sent: names in any case, values untrimmed.
    pub headers: &'a [(&'a str, &'a str)],
    /// The raw body bytes.
    pub payload: &'a [u8],
    /// `X-Amz-Date`, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    /// The service of the credential scope: `ec2`, `pricing`.
    pub service: &'a str,
}

impl SigV4Request<'_> {
    /// The scope date: the first 8 characters of `amz_date`.
    pub fn date(&self) -> &str {
        self.amz_date.get(..8).unwrap_or(self.amz_date)
    }

    pub fn credential_scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date(),
            self.region,
            self.service
        )
    }

    /// Lower-cased names, values trimmed with inner runs of spaces collapsed, sorted by name.
    fn canonical_headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.trim().to_ascii_lowercase(),
                    value.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        headers.sort();
        headers
    }

    /// `h1;h2;...`, lower case and sorted.
    pub fn signed_headers(&self) -> String {
        self.canonical_headers()
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn canonical_request(&self) -> String {
        let headers: String = self
            .canonical_headers()
            .iter()
            .map(|(name, value)| format!("{name}:{value}\n"))
            .collect();
        format!(
            "{}\n{}\n{}\n{headers}\n{}\n{}",
            self.method,
            self.path,
            self.query,
            self.signed_headers(),
            sha256_hex(self.payload)
        )
    }

    pub fn string_to_sign(&self) -> String {
        format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.amz_date,
            self.credential_scope(),
            sha256_hex(self.canonical_request().as_bytes())
        )
    }

    /// kDate = HMAC("AWS4"+secret, date); kRegion = HMAC(kDate, region);
    /// kService = HMAC(kRegion, service); kSigning = HMAC(kService, "aws4_request").
    pub fn signing_key(&self, secret: &str) -> Vec<u8> {
        let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), self.date().as_bytes());
        let k_region = hmac_sha256(&k_date, self.region.as_bytes());
        let k_service = hmac_sha256(&k_region, self.service.as_bytes());
        hmac_sha256(&k_service, TERMINATOR.as_bytes())
    }

    pub fn signature(&self, secret: &str) -> String {
        hex::encode(hmac_sha256(
            &self.signing_key(secret),
            self.string_to_sign().as_bytes(),
        ))
    }

    /// The `Authorization` header value.
    pub fn authorization(&self, access_key_id: &str, secret: &str) -> String {
        format!(
            "{ALGORITHM} Credential={access_key_id}/{}, SignedHeaders={}, Signature={}",
            self.credential_scope(),
            self.signed_headers(),
            self.signature(secret)
        )
    }
}

/// The parts of a SigV4 `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
/// SignedHeaders=.., Signature=..`; `None` when it is not a well-formed SigV4 header.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
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
    let (id, date, region, service, terminator) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    if terminator != TERMINATOR || scope.next().is_some() || id.is_empty() {
        return None;
    }
    Some(Authorization {
        access_key_id: id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature?.to_string(),
    })
}

pub use mce_cloud::transport::signatures_equal;

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret of AWS's documentation and of the SigV4 test suite.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    /// The vector of cloud-apis.md (AWS general reference, "Signature Version 4 signing
    /// process" example): IAM ListUsers as a GET with the query in the URL.
    #[test]
    fn documentation_vector_byte_for_byte() {
        let query = canonical_query(&[
            ("Version".into(), "2010-05-08".into()),
            ("Action".into(), "ListUsers".into()),
        ]);
        assert_eq!(query, "Action=ListUsers&Version=2010-05-08");
        let headers = [
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", DATE),
        ];
        let r = SigV4Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload: b"",
            amz_date: DATE,
            region: "us-east-1",
            service: "iam",
        };
        assert_eq!(
            r.canonical_request(),
            "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(r.canonical_request().as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(r.credential_scope(), "20150830/us-east-1/iam/aws4_request");
        assert_eq!(
            hex::encode(r.signing_key(SECRET)),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            r.signature(SECRET),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// botocore `tests/unit/auth/aws4_testsuite/post-x-www-form-urlencoded`: a form body, an
    /// empty query, service `service`.
    #[test]
    fn aws4_testsuite_post_x_www_form_urlencoded() {
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", DATE),
        ];
        let r = SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: b"Param1=value1",
            amz_date: DATE,
            region: "us-east-1",
            service: "service",
        };
        assert_eq!(
            r.canonical_request(),
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        assert_eq!(
            r.string_to_sign(),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
        );
        assert_eq!(
            r.authorization("AKIDEXAMPLE", SECRET),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    /// botocore `aws4_testsuite/get-vanilla-query-order-key-case` (query sorted by name) and
    /// `post-vanilla` (no body, two headers).
    #[test]
    fn aws4_testsuite_query_order_and_post_vanilla() {
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)];
        let query = canonical_query(&[
            ("Param2".into(), "value2".into()),
            ("Param1".into(), "value1".into()),
        ]);
        let get = SigV4Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload: b"",
            amz_date: DATE,
            region: "us-east-1",
            service: "service",
        };
        assert_eq!(
            get.signature(SECRET),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        let post = SigV4Request {
            method: "POST",
            query: "",
            ..get
        };
        assert_eq!(
            sha256_hex(post.canonical_request().as_bytes()),
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87"
        );
        assert_eq!(
            post.signature(SECRET),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    /// What the driver sends to an endpoint override, as boto3 would: an EC2 form POST with an
    /// empty query, `host` with the port, the charset content type and the raw body's hash.
    /// Expected values computed with botocore 1.44.8's `SigV4Auth` on the same request.
    #[test]
    fn ec2_form_post_with_a_port_as_botocore_signs_it() {
        let body = b"Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=tag%3Aowner&Filter.1.Value.1=ns%2Fvm%201";
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "127.0.0.1:5000"),
            ("x-amz-date", DATE),
        ];
        let r = SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: body,
            amz_date: DATE,
            region: "us-west-2",
            service: "ec2",
        };
        assert_eq!(
            r.canonical_request(),
            format!(
                "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:127.0.0.1:5000\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n{}",
                sha256_hex(body)
            )
        );
        assert_eq!(r.credential_scope(), "20150830/us-west-2/ec2/aws4_request");
        assert_eq!(r.signature(SECRET), BOTOCORE_EC2_SIGNATURE);
    }

    const BOTOCORE_EC2_SIGNATURE: &str =
        "f03c3d8239238e7918dfe863a93ab9ec71fa9e27af20f2f1af2dc57964701570";

    #[test]
    fn dates_encoding_and_round_trip() {
        assert_eq!(
            amz_date(1440938160),
            Some(("20150830T123600Z".to_string(), "20150830".to_string()))
        );
        assert_eq!(uri_encode("a b*~/:"), "a%20b%2A~%2F%3A");
        assert_eq!(uri_encode("\u{e9}"), "%C3%A9");
        let headers = [("host", "h"), ("x-amz-date", DATE)];
        let r = SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: b"x",
            amz_date: DATE,
            region: "eu-west-1",
            service: "ec2",
        };
        let parsed = parse_authorization(&r.authorization("AKID", "k")).unwrap();
        assert_eq!(parsed.access_key_id, "AKID");
        assert_eq!(parsed.date, "20150830");
        assert_eq!(parsed.region, "eu-west-1");
        assert_eq!(parsed.service, "ec2");
        assert_eq!(parsed.signed_headers, ["host", "x-amz-date"]);
        assert!(signatures_equal(&parsed.signature, &r.signature("k")));
        assert!(!signatures_equal(&parsed.signature, &r.signature("other")));
        assert!(parse_authorization("TC3-HMAC-SHA256 Credential=x").is_none());
    }
}
