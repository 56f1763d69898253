//! API 3.0 transport: `POST /` with a JSON body, `X-TC-*` headers, TC3-HMAC-SHA256 signed,
//! retried with backoff on throttling and transient failures (a fresh timestamp and signature
//! per attempt), rate limited per region.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::classify;
use crate::sign::{Tc3Request, scope_date};
use mce_cloud::ratelimit::RateLimit;
use mce_cloud::retry::RetryPolicy;
use mce_cloud::transport::{
    ConfigError, Endpoint, Transport, TransportStats, invalid_response, scrub, transport_error,
};
use mce_cloud::{CloudError, CloudResult, Credentials, ErrorClass};

pub const PROVIDER: &str = "TENCENT";
/// Exactly what the official SDK sends (and the emulator checks): no charset.
pub const CONTENT_TYPE: &str = "application/json";

/// The Tencent Cloud services the driver talks to; the name is the credential-scope service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// CVM: instances, prices, regions.
    Cvm,
    /// VPC: VPCs, subnets, security groups, EIPs.
    Vpc,
    /// Tag: tags of live resources.
    Tag,
    /// STS: the caller's account id (the Tag API names resources by it).
    Sts,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cvm => "cvm",
            Self::Vpc => "vpc",
            Self::Tag => "tag",
            Self::Sts => "sts",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Self::Cvm | Self::Vpc => "2017-03-12",
            Self::Tag | Self::Sts => "2018-08-13",
        }
    }
}

impl Service {
    /// The public endpoint of the service (`cvm.tencentcloudapi.com`); the region travels in
    /// `X-TC-Region`, so one host serves every region.
    pub fn public_endpoint(self) -> Endpoint {
        Endpoint::https(format!("{}.tencentcloudapi.com", self.name()))
    }
}

/// String values of `Password` fields anywhere in a request body: never echoed in errors.
pub fn secret_values(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![body];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) if k == "Password" => out.push(s.clone()),
                        other => stack.push(other),
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ErrorBody {
    code: String,
    message: String,
}

/// The envelope of every answer: `{"Response": {..., "RequestId"}}`, with `Error` on failure.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: Value,
}

/// Signed API 3.0 client for one credential.
pub struct ApiClient {
    credentials: Credentials,
    transport: Transport,
}

impl ApiClient {
    pub fn new(
        credentials: Credentials,
        endpoint_override: Option<&str>,
        timeout: Duration,
        retry: RetryPolicy,
        rate_limit: RateLimit,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            credentials,
            transport: Transport::new(PROVIDER, endpoint_override, timeout, retry, rate_limit)?,
        })
    }

    pub fn stats(&self) -> TransportStats {
        self.transport.stats()
    }

    fn endpoint(&self, service: Service) -> Endpoint {
        self.transport.endpoint_or(|| service.public_endpoint())
    }

    /// Calls `action` with a JSON body and parses `Response` into `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        body: &Value,
    ) -> CloudResult<T> {
        self.call_replaying(service, region, action, body, true)
            .await
    }

    /// [`Self::call`] for a create without a ClientToken (CreateVpc, CreateSubnet,
    /// CreateSecurityGroup): not sent again once its outcome is unknown.
    pub async fn call_create<T: DeserializeOwned>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        body: &Value,
    ) -> CloudResult<T> {
        self.call_replaying(service, region, action, body, false)
            .await
    }

    async fn call_replaying<T: DeserializeOwned>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        body: &Value,
        replay_unknown: bool,
    ) -> CloudResult<T> {
        let endpoint = self.endpoint(service);
        let secrets = secret_values(body);
        let payload = serde_json::to_vec(body).map_err(|e| {
            CloudError::new(
                ErrorClass::InvalidParameter,
                PROVIDER,
                action,
                "InvalidRequest",
                format!("cannot serialise the request: {e}"),
            )
        })?;
        let send = || self.send_once(service, &endpoint, region, action, &payload, &secrets);
        let (response, request_id) = if replay_unknown {
            self.transport.call(region, action, send).await?
        } else {
            self.transport
                .call_once_created(region, action, send)
                .await?
        };
        serde_json::from_value::<T>(response).map_err(|e| {
            invalid_response(PROVIDER, action, request_id, &e, &self.secrets(&secrets))
        })
    }

    /// Every secret a message about this call must not contain.
    fn secrets<'a>(&'a self, secrets: &'a [String]) -> Vec<&'a str> {
        let mut all: Vec<&str> = secrets.iter().map(String::as_str).collect();
        all.push(self.credentials.access_key_secret.expose());
        all
    }

    fn scrub(&self, text: &str, secrets: &[String]) -> String {
        scrub(text, &self.secrets(secrets))
    }

    fn transport_error(&self, action: &str, err: reqwest::Error, secrets: &[String]) -> CloudError {
        let code = if err.is_timeout() {
            "Timeout"
        } else if err.is_connect() {
            mce_cloud::CONNECTION_FAILED
        } else {
            "Transport"
        };
        // Without the URL: the endpoint may be internal, and it says nothing to the user.
        let err = err.without_url();
        transport_error(PROVIDER, action, code, &err, &self.secrets(secrets))
    }

    /// One signed attempt; `Ok((Response, RequestId))` or the classified error.
    async fn send_once(
        &self,
        service: Service,
        endpoint: &Endpoint,
        region: &str,
        action: &str,
        payload: &[u8],
        secrets: &[String],
    ) -> CloudResult<(Value, String)> {
        // A fresh timestamp per attempt: a retry after a long backoff must not be refused as
        // expired (the cloud accepts 5 minutes of skew).
        let timestamp = jiff::Timestamp::now().as_second();
        let date = scope_date(timestamp).unwrap_or_default();
        let authorization = Tc3Request {
            host: &endpoint.authority,
            content_type: CONTENT_TYPE,
            payload,
            timestamp,
            service: service.name(),
            date: &date,
        }
        .authorization(
            &self.credentials.access_key_id,
            self.credentials.access_key_secret.expose(),
        );
        let url = format!("{}://{}/", endpoint.scheme, endpoint.authority);
        let mut request = self
            .transport
            .http()
            .post(url)
            .header("authorization", authorization)
            .header("content-type", CONTENT_TYPE)
            .header("host", endpoint.authority.as_str())
            .header("x-tc-action", action)
            .header("x-tc-version", service.version())
            .header("x-tc-timestamp", timestamp.to_string());
        if !region.is_empty() {
            request = request.header("x-tc-region", region);
        }
        let response = request
            .body(payload.to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(action, e, secrets))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(action, e, secrets))?;
        let response = serde_json::from_str::<Envelope>(&text)
            .ok()
            .map(|e| e.response);
        let request_id = response
            .as_ref()
            .and_then(|r| r.get("RequestId"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let error = response
            .as_ref()
            .and_then(|r| r.get("Error"))
            .map(|e| serde_json::from_value::<ErrorBody>(e.clone()).unwrap_or_default());
        match (status.is_success(), response, error) {
            (true, Some(response), None) => Ok((response, request_id)),
            (_, _, error) => {
                let error = error.unwrap_or_default();
                let (code, class) = if error.code.is_empty() {
                    let code = if status.is_success() {
                        "InvalidResponse".to_string()
                    } else {
                        format!("HTTP{}", status.as_u16())
                    };
                    // A 200 without a parsable envelope is the server's fault: retry.
                    let status_for_class = if status.is_success() {
                        0
                    } else {
                        status.as_u16()
                    };
                    (code, classify("", status_for_class))
                } else {
                    let class = classify(&error.code, status.as_u16());
                    (error.code, class)
                };
                let message = if error.message.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    error.message
                };
                let mut err =
                    CloudError::new(class, PROVIDER, action, code, self.scrub(&message, secrets));
                err.http_status = Some(status.as_u16());
                err.request_id = Some(request_id).filter(|id| !id.is_empty());
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/").unwrap(),
            Endpoint {
                scheme: "http".into(),
                authority: "127.0.0.1:8080".into()
            }
        );
        assert_eq!(Endpoint::parse("cvm.example.com").unwrap().scheme, "https");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
        assert_eq!(
            Service::Tag.public_endpoint().authority,
            "tag.tencentcloudapi.com"
        );
        assert_eq!(Service::Vpc.version(), "2017-03-12");
        assert_eq!(Service::Tag.version(), "2018-08-13");
    }

    #[test]
    fn passwords_are_found_and_scrubbed() {
        let body = serde_json::json!({
            "LoginSettings": {"Password": "Pa55w0rd!"},
            "Tags": [{"Key": "k", "Value": "v"}]
        });
        let secrets = secret_values(&body);
        assert_eq!(secrets, ["Pa55w0rd!"]);
        assert_eq!(
            scrub("bad Pa55w0rd! here", &["Pa55w0rd!", ""]),
            "bad <redacted> here"
        );
    }

    /// A tiny server that checks what Tencent would: the TC3 signature over the raw body, the
    /// `X-TC-*` headers, the exact `Content-Type` and `Host`.
    mod wire {
        use std::collections::VecDeque;
        use std::sync::Arc;

        use axum::http::{HeaderMap, StatusCode};
        use parking_lot::Mutex;

        use super::super::*;
        use crate::sign::{parse_tc3_authorization, signatures_equal};
        use mce_cloud::Secret;

        const SECRET: &str = "s3cr3t-KEY";

        struct Seen {
            headers: HeaderMap,
            body: Value,
            valid: bool,
        }

        #[derive(Default)]
        struct Mock {
            script: VecDeque<(u16, String)>,
            seen: Vec<Seen>,
        }

        fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let Some(auth) = parse_tc3_authorization(&header("authorization")) else {
                return false;
            };
            let Ok(timestamp) = header("x-tc-timestamp").parse::<i64>() else {
                return false;
            };
            let now = jiff::Timestamp::now().as_second();
            let request = Tc3Request {
                host: &header("host"),
                content_type: &header("content-type"),
                payload: body,
                timestamp,
                service: &auth.service,
                date: &auth.date,
            };
            auth.secret_id == "AKID"
                && auth.signed_headers == ["content-type", "host"]
                && scope_date(timestamp).as_deref() == Some(auth.date.as_str())
                && (now - timestamp).abs() <= 300
                && signatures_equal(&request.signature(SECRET), &auth.signature)
        }

        async fn serve(mock: Arc<Mutex<Mock>>) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app =
                axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let mock = Arc::clone(&mock);
                    async move {
                        let valid = verify(&headers, &body);
                        let mut m = mock.lock();
                        m.seen.push(Seen {
                            headers,
                            body: serde_json::from_slice(&body).unwrap(),
                            valid,
                        });
                        let (status, body) = m
                            .script
                            .pop_front()
                            .unwrap_or((200, r#"{"Response":{"RequestId":"rid-ok"}}"#.into()));
                        (
                            StatusCode::from_u16(status).unwrap(),
                            [("content-type", "application/json")],
                            body,
                        )
                    }
                });
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        }

        fn client(endpoint: &str) -> ApiClient {
            ApiClient::new(
                Credentials {
                    access_key_id: "AKID".into(),
                    access_key_secret: Secret::new(SECRET),
                },
                Some(endpoint),
                Duration::from_secs(5),
                RetryPolicy {
                    max_attempts: 4,
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(20),
                },
                RateLimit::unlimited(),
            )
            .unwrap()
        }

        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Ids {
            instance_id_set: Vec<String>,
            request_id: String,
        }

        #[tokio::test]
        async fn signed_json_post_with_tc_headers_and_retries_on_throttling() {
            let mock = Arc::new(Mutex::new(Mock::default()));
            mock.lock().script = [
                (
                    200,
                    r#"{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"slow"},"RequestId":"r1"}}"#
                        .to_string(),
                ),
                (502, "bad gateway".to_string()),
                (
                    200,
                    r#"{"Response":{"InstanceIdSet":["ins-1"],"RequestId":"r3"}}"#.to_string(),
                ),
            ]
            .into();
            let endpoint = serve(Arc::clone(&mock)).await;
            let c = client(&endpoint);
            let body = serde_json::json!({
                "InstanceType": "GN7.2XLARGE32",
                "InstanceName": "\u{672a}\u{547d}\u{540d}",
                "ClientToken": "tok-1"
            });
            let r: Ids = c
                .call(Service::Cvm, "ap-guangzhou", "RunInstances", &body)
                .await
                .unwrap();
            assert_eq!(r.instance_id_set, ["ins-1"]);
            assert_eq!(r.request_id, "r3");
            assert_eq!(
                c.stats(),
                TransportStats {
                    attempts: 3,
                    retries: 2
                }
            );
            let m = mock.lock();
            for seen in &m.seen {
                assert!(seen.valid, "signature");
                let h = &seen.headers;
                assert_eq!(h["x-tc-action"], "RunInstances");
                assert_eq!(h["x-tc-version"], "2017-03-12");
                assert_eq!(h["x-tc-region"], "ap-guangzhou");
                assert_eq!(h["content-type"], "application/json");
                assert_eq!(h["host"], endpoint.trim_start_matches("http://"));
                assert!(
                    h["authorization"]
                        .to_str()
                        .unwrap()
                        .contains("/cvm/tc3_request, SignedHeaders=content-type;host, ")
                );
                assert_eq!(seen.body, body);
            }
        }

        #[tokio::test]
        async fn terminal_errors_are_not_retried_and_carry_no_secrets() {
            let mock = Arc::new(Mutex::new(Mock::default()));
            mock.lock().script = [(
                200,
                r#"{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"bad Pa55w0rd! for s3cr3t-KEY"},"RequestId":"r9"}}"#
                    .to_string(),
            )]
            .into();
            let endpoint = serve(Arc::clone(&mock)).await;
            let c = client(&endpoint);
            let body = serde_json::json!({"LoginSettings": {"Password": "Pa55w0rd!"}});
            let err = c
                .call::<Value>(Service::Cvm, "ap-guangzhou", "RunInstances", &body)
                .await
                .unwrap_err();
            assert_eq!(err.class, ErrorClass::InvalidParameter);
            assert_eq!(err.code, "InvalidParameterValue");
            assert_eq!(err.request_id.as_deref(), Some("r9"));
            let text = err.to_string();
            assert!(
                !text.contains("Pa55w0rd!") && !text.contains(SECRET),
                "{text}"
            );
            assert_eq!(c.stats().attempts, 1);
        }

        #[tokio::test]
        async fn connection_failures_are_transient_and_bounded() {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let c = client(&format!("http://127.0.0.1:{port}"));
            let err = c
                .call::<Value>(Service::Vpc, "ap-guangzhou", "DescribeVpcs", &Value::Null)
                .await
                .unwrap_err();
            assert_eq!(err.class, ErrorClass::Transient);
            assert_eq!(c.stats().attempts, 4);
            assert!(!err.to_string().contains("127.0.0.1"), "{err}");
        }
    }
}
