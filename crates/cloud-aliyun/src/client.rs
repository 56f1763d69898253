//! RPC transport: `POST /?<params>` with an empty body (or, for a call carrying a secret, `POST /`
//! with the parameters as a form body), ACS3-HMAC-SHA256 signed, retried with backoff on
//! throttling and transient failures, rate limited per region.

use std::time::Duration;

use rand::RngCore;
use serde::de::DeserializeOwned;

use super::errors::classify;
use super::model::ErrorBody;
use super::params::Params;
use super::sign::{Acs3Request, EMPTY_BODY_SHA256, percent_encode, sha256_hex};
use mce_cloud::ratelimit::RateLimit;
use mce_cloud::retry::RetryPolicy;
use mce_cloud::transport::{
    ConfigError, Endpoint, Transport, TransportStats, invalid_response, scrub, transport_error,
};
use mce_cloud::{CloudError, CloudResult, Credentials};

pub const PROVIDER: &str = "ALIYUN";

/// The two Alibaba Cloud services the driver talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// ECS: instances, security groups, prices, regions.
    Ecs,
    /// VPC: VPCs, VSwitches, EIPs.
    Vpc,
}

impl Service {
    pub fn version(self) -> &'static str {
        match self {
            Self::Ecs => "2014-05-26",
            Self::Vpc => "2016-04-28",
        }
    }

    fn host_prefix(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::Vpc => "vpc",
        }
    }
}

impl Service {
    /// The regional public endpoint of the service.
    pub fn regional_endpoint(self, region: &str) -> Endpoint {
        Endpoint::https(format!("{}.{region}.aliyuncs.com", self.host_prefix()))
    }
}

/// The `x-acs-date` format: `yyyy-MM-ddTHH:mm:ssZ`, UTC.
pub fn acs_date(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The wire query string: RFC 3986 encoded, in parameter order.
pub fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signed RPC client for one credential.
pub struct RpcClient {
    credentials: Credentials,
    transport: Transport,
}

impl RpcClient {
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

    fn endpoint(&self, service: Service, region: &str) -> Endpoint {
        self.transport
            .endpoint_or(|| service.regional_endpoint(region))
    }

    /// Calls `action` and parses the JSON response. `RegionId` is added when absent.
    pub async fn call<T: DeserializeOwned>(
        &self,
        service: Service,
        region: &str,
        action: &str,
        mut params: Params,
    ) -> CloudResult<T> {
        params.set_if_absent("RegionId", region);
        let endpoint = self.endpoint(service, region);
        let (body, request_id) = self
            .transport
            .call(region, action, || {
                self.send_once(service, &endpoint, action, &params)
            })
            .await?;
        serde_json::from_str::<T>(&body)
            .map_err(|e| invalid_response(PROVIDER, action, request_id, &e, &self.secrets(&params)))
    }

    /// Every secret a message about this call must not contain.
    fn secrets<'a>(&'a self, params: &'a Params) -> Vec<&'a str> {
        let mut secrets = params.secret_values();
        secrets.push(self.credentials.access_key_secret.expose());
        secrets
    }

    fn scrub(&self, text: &str, params: &Params) -> String {
        scrub(text, &self.secrets(params))
    }

    fn transport_error(&self, action: &str, err: reqwest::Error, params: &Params) -> CloudError {
        let code = if err.is_timeout() {
            "Timeout"
        } else if err.is_connect() {
            mce_cloud::CONNECTION_FAILED
        } else {
            "Transport"
        };
        // Without the URL: it carries the parameters (and says nothing to the user).
        let err = err.without_url();
        transport_error(PROVIDER, action, code, &err, &self.secrets(params))
    }

    /// One signed attempt (fresh date and nonce). Returns the body and request id on 2xx.
    async fn send_once(
        &self,
        service: Service,
        endpoint: &Endpoint,
        action: &str,
        params: &Params,
    ) -> CloudResult<(String, String)> {
        // A secret (the VM password) never goes into the URL, which proxies and access logs
        // record: such a call sends its parameters as a form body, which ACS3 signs by its hash
        // (as the official SDKs do). Other calls keep the query string and the empty body.
        let in_body = !params.secret_values().is_empty();
        let (query, body): (&[(String, String)], String) = if in_body {
            (&[], encode_query(params.pairs()))
        } else {
            (params.pairs(), String::new())
        };
        let body_sha256 = if in_body {
            sha256_hex(body.as_bytes())
        } else {
            EMPTY_BODY_SHA256.to_string()
        };
        let url = if in_body {
            format!("{}://{}/", endpoint.scheme, endpoint.authority)
        } else {
            format!(
                "{}://{}/?{}",
                endpoint.scheme,
                endpoint.authority,
                encode_query(query)
            )
        };
        let mut headers: Vec<(String, String)> = vec![
            ("host".to_string(), endpoint.authority.clone()),
            ("x-acs-action".to_string(), action.to_string()),
            ("x-acs-version".to_string(), service.version().to_string()),
            ("x-acs-date".to_string(), acs_date(jiff::Timestamp::now())),
            ("x-acs-signature-nonce".to_string(), new_nonce()),
            ("x-acs-content-sha256".to_string(), body_sha256.clone()),
        ];
        if in_body {
            headers.push((
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ));
        }
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let authorization = Acs3Request {
            method: "POST",
            path: "/",
            query,
            headers: &headers,
            signed_headers: &signed,
            body_sha256: &body_sha256,
        }
        .authorization(
            &self.credentials.access_key_id,
            self.credentials.access_key_secret.expose(),
        );
        let mut request = self
            .transport
            .http()
            .post(url)
            .header("authorization", authorization)
            .header("accept", "application/json");
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if in_body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(action, e, params))?;
        let status = response.status();
        let header_request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .text()
            .await
            .map_err(|e| self.transport_error(action, e, params))?;
        if status.is_success() {
            let request_id = serde_json::from_str::<super::model::Empty>(&body)
                .ok()
                .map(|e| e.request_id)
                .filter(|id| !id.is_empty())
                .or(header_request_id)
                .unwrap_or_default();
            return Ok((body, request_id));
        }
        let parsed: ErrorBody = serde_json::from_str(&body).unwrap_or_default();
        let code = if parsed.code.is_empty() {
            format!("HTTP{}", status.as_u16())
        } else {
            parsed.code
        };
        let message = if parsed.message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            parsed.message
        };
        let class = classify(&code, status.as_u16());
        let mut err = CloudError::new(class, PROVIDER, action, code, self.scrub(&message, params));
        err.http_status = Some(status.as_u16());
        err.request_id = Some(parsed.request_id)
            .filter(|id| !id.is_empty())
            .or(header_request_id);
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:8080").unwrap(),
            Endpoint {
                scheme: "https".into(),
                authority: "127.0.0.1:8080".into()
            }
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/").unwrap(),
            Endpoint {
                scheme: "http".into(),
                authority: "127.0.0.1:8080".into()
            }
        );
        assert_eq!(
            Endpoint::parse("https://ecs.example.com:443")
                .unwrap()
                .authority,
            "ecs.example.com"
        );
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x/path").is_err());
        assert_eq!(
            Service::Vpc.regional_endpoint("cn-hangzhou").authority,
            "vpc.cn-hangzhou.aliyuncs.com"
        );
    }

    #[test]
    fn date_format_is_utc_seconds() {
        let ts: jiff::Timestamp = "2023-10-26T10:22:32.123Z".parse().unwrap();
        assert_eq!(acs_date(ts), "2023-10-26T10:22:32Z");
    }

    #[test]
    fn nonces_are_fresh_hex() {
        let a = new_nonce();
        let b = new_nonce();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn query_is_rfc3986_encoded() {
        let p = Params::new()
            .with("InstanceIds", r#"["i-1"]"#)
            .with("Description", "a b*c");
        assert_eq!(
            encode_query(p.pairs()),
            "InstanceIds=%5B%22i-1%22%5D&Description=a%20b%2Ac"
        );
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("bad password hunter2!", &["hunter2", ""]),
            "bad password <redacted>!"
        );
    }

    mod wire {
        use std::collections::VecDeque;
        use std::sync::Arc;

        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        use parking_lot::Mutex;

        use super::super::*;
        use crate::sign::{parse_acs3_authorization, signatures_equal};
        use mce_cloud::Secret;

        const SECRET: &str = "s3cr3t-KEY";

        /// One received request: decoded query, headers, whether the signature (over the body
        /// too) verified.
        type Seen = (Vec<(String, String)>, HeaderMap, bool);

        #[derive(Default)]
        struct Mock {
            script: VecDeque<(u16, String)>,
            seen: Vec<Seen>,
            bodies: Vec<String>,
        }

        async fn serve(mock: Arc<Mutex<Mock>>) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                    let mock = Arc::clone(&mock);
                    async move {
                        let url = reqwest::Url::parse(&format!("http://x{uri}")).unwrap();
                        let query: Vec<(String, String)> = url
                            .query_pairs()
                            .map(|(k, v)| (k.into(), v.into()))
                            .collect();
                        let auth =
                            parse_acs3_authorization(headers["authorization"].to_str().unwrap())
                                .unwrap();
                        let hdrs: Vec<(String, String)> = headers
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
                            .collect();
                        let req = Acs3Request {
                            method: method.as_str(),
                            path: uri.path(),
                            query: &query,
                            headers: &hdrs,
                            signed_headers: &auth.signed_headers,
                            body_sha256: headers["x-acs-content-sha256"].to_str().unwrap(),
                        };
                        let valid = signatures_equal(&req.signature(SECRET), &auth.signature)
                            && crate::sign::sha256_hex(&body)
                                == headers["x-acs-content-sha256"].to_str().unwrap();
                        let mut m = mock.lock();
                        m.seen.push((query, headers.clone(), valid));
                        m.bodies.push(String::from_utf8(body.to_vec()).unwrap());
                        let (status, body) = m
                            .script
                            .pop_front()
                            .unwrap_or((200, r#"{"RequestId":"rid-ok"}"#.into()));
                        (StatusCode::from_u16(status).unwrap(), body)
                    }
                },
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        }

        fn client(endpoint: &str, secret: &str) -> RpcClient {
            RpcClient::new(
                Credentials {
                    access_key_id: "AKID".into(),
                    access_key_secret: Secret::new(secret),
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

        #[tokio::test]
        async fn signed_headers_and_retries_on_throttling() {
            let mock = Arc::new(Mutex::new(Mock::default()));
            mock.lock().script = [
                (
                    400,
                    r#"{"RequestId":"r1","Code":"Throttling.User","Message":"slow"}"#.to_string(),
                ),
                (503, "not json".to_string()),
            ]
            .into();
            let endpoint = serve(Arc::clone(&mock)).await;
            let c = client(&endpoint, SECRET);
            let p = Params::new()
                .with("Description", "a b*c~")
                .with("InstanceIds", r#"["i-1"]"#);
            let r: crate::model::Empty =
                c.call(Service::Vpc, "cn-x", "DeleteVpc", p).await.unwrap();
            assert_eq!(r.request_id, "rid-ok");
            assert_eq!(
                c.stats(),
                TransportStats {
                    attempts: 3,
                    retries: 2
                }
            );
            let m = mock.lock();
            assert!(m.seen.iter().all(|(_, _, valid)| *valid));
            let (query, headers, _) = &m.seen[0];
            assert!(query.contains(&("RegionId".to_string(), "cn-x".to_string())));
            assert!(query.contains(&("Description".to_string(), "a b*c~".to_string())));
            assert_eq!(headers["x-acs-action"], "DeleteVpc");
            assert_eq!(headers["x-acs-version"], "2016-04-28");
            assert_eq!(headers["x-acs-content-sha256"], EMPTY_BODY_SHA256);
            assert_eq!(headers["host"], endpoint.trim_start_matches("http://"));
            let nonces: Vec<_> = m
                .seen
                .iter()
                .map(|(_, h, _)| h["x-acs-signature-nonce"].clone())
                .collect();
            assert_ne!(nonces[0], nonces[1]);
            assert_ne!(nonces[1], nonces[2]);
        }

        #[tokio::test]
        async fn a_password_travels_in_the_signed_form_body_never_in_the_url() {
            let mock = Arc::new(Mutex::new(Mock::default()));
            let endpoint = serve(Arc::clone(&mock)).await;
            let c = client(&endpoint, SECRET);
            let p = Params::new()
                .with("InstanceType", "ecs.g7.large")
                .with("Password", "Pa55 w0rd&=!");
            let _: crate::model::Empty = c
                .call(Service::Ecs, "cn-x", "RunInstances", p)
                .await
                .unwrap();
            {
                let m = mock.lock();
                let (query, headers, valid) = &m.seen[0];
                assert!(*valid, "signature over the body");
                assert!(query.is_empty(), "{query:?}");
                assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
                let form: Vec<(String, String)> =
                    reqwest::Url::parse(&format!("http://x/?{}", m.bodies[0]))
                        .unwrap()
                        .query_pairs()
                        .map(|(k, v)| (k.into(), v.into()))
                        .collect();
                assert!(form.contains(&("Password".to_string(), "Pa55 w0rd&=!".to_string())));
                assert!(form.contains(&("RegionId".to_string(), "cn-x".to_string())));
            }

            // Calls without a secret keep the query string and the empty body.
            let _: crate::model::Empty = c
                .call(Service::Ecs, "cn-x", "DescribeInstances", Params::new())
                .await
                .unwrap();
            let m = mock.lock();
            assert!(
                m.seen[1]
                    .0
                    .contains(&("RegionId".to_string(), "cn-x".to_string()))
            );
            assert_eq!(m.bodies[1], "");
            assert!(m.seen[1].2);
        }

        #[tokio::test]
        async fn terminal_errors_are_not_retried_and_carry_no_secrets() {
            let mock = Arc::new(Mutex::new(Mock::default()));
            mock.lock().script = [(
                400,
                r#"{"RequestId":"r9","Code":"InvalidPassword.Malformed","Message":"bad Pa55w0rd! for s3cr3t-KEY"}"#
                    .to_string(),
            )]
            .into();
            let endpoint = serve(Arc::clone(&mock)).await;
            let c = client(&endpoint, SECRET);
            let err = c
                .call::<crate::model::Empty>(
                    Service::Ecs,
                    "cn-x",
                    "RunInstances",
                    Params::new().with("Password", "Pa55w0rd!"),
                )
                .await
                .unwrap_err();
            assert_eq!(err.class, mce_cloud::ErrorClass::InvalidParameter);
            assert_eq!(err.request_id.as_deref(), Some("r9"));
            assert_eq!(err.http_status, Some(400));
            let text = err.to_string();
            assert!(
                !text.contains("Pa55w0rd!") && !text.contains(SECRET),
                "{text}"
            );
            assert_eq!(c.stats().attempts, 1);
        }

        #[tokio::test]
        async fn connection_failures_are_transient_and_bounded() {
            // Bind then drop: nothing listens on the port.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let c = client(&format!("http://127.0.0.1:{port}"), SECRET);
            let err = c
                .call::<crate::model::Empty>(
                    Service::Ecs,
                    "cn-x",
                    "RunInstances",
                    Params::new().with("Password", "Pa55w0rd!"),
                )
                .await
                .unwrap_err();
            assert_eq!(err.class, mce_cloud::ErrorClass::Transient);
            assert_eq!(c.stats().attempts, 4);
            let text = err.to_string();
            assert!(
                !text.contains("Pa55w0rd") && !text.contains("127.0.0.1"),
                "{text}"
            );
        }
    }
}
