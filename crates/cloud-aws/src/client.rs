//! EC2 Query transport: `POST /` with a form body (`Action=…&Version=2016-11-15&…`), SigV4
//! signed (service `ec2`, the call's region in the scope), XML answers; and the Price List
//! Query API (JSON 1.1, service `pricing`). Retried with backoff on throttling and transient
//! failures (a fresh date and signature per attempt), rate limited per region.

use std::time::Duration;

use serde_json::Value;

use crate::errors::classify;
use crate::sign::{SigV4Request, amz_date};
use crate::wire::Params;
use crate::xml::{Node, error_of};
use mce_cloud::ratelimit::RateLimit;
use mce_cloud::retry::RetryPolicy;
use mce_cloud::transport::{
    ConfigError, Endpoint, Transport, TransportStats, scrub, transport_error,
};
use mce_cloud::{CloudError, CloudResult, Credentials, ErrorClass};

pub const PROVIDER: &str = "AWS";
/// What boto3 sends for the Query protocol.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The Price List Query API lives in a few regions only; this one serves every EC2 region.
pub const PRICING_REGION: &str = "us-east-1";
pub const PRICING_TARGET_PREFIX: &str = "AWSPriceListService.";

/// The public EC2 endpoint of a region.
pub fn ec2_endpoint(region: &str) -> Endpoint {
    Endpoint::https(format!("ec2.{region}.amazonaws.com"))
}

pub fn pricing_endpoint() -> Endpoint {
    Endpoint::https(format!("api.pricing.{PRICING_REGION}.amazonaws.com"))
}

/// Signed EC2 / Price List client for one credential.
pub struct ApiClient {
    credentials: Credentials,
    transport: Transport,
}

/// One signed HTTP request, before it is sent.
struct Outgoing<'a> {
    endpoint: &'a Endpoint,
    region: &'a str,
    service: &'a str,
    action: &'a str,
    content_type: &'a str,
    target: Option<&'a str>,
    body: &'a [u8],
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

    /// Calls an EC2 action; the answer's root element.
    pub async fn call(&self, region: &str, action: &str, params: &Params) -> CloudResult<Node> {
        self.ec2(region, action, params, true).await
    }

    /// [`Self::call`] for a create without a ClientToken (CreateVpc, CreateSubnet,
    /// CreateSecurityGroup, CreateInternetGateway, AllocateAddress): not sent again once its
    /// outcome is unknown.
    pub async fn call_create(
        &self,
        region: &str,
        action: &str,
        params: &Params,
    ) -> CloudResult<Node> {
        self.ec2(region, action, params, false).await
    }

    async fn ec2(
        &self,
        region: &str,
        action: &str,
        params: &Params,
        replay_unknown: bool,
    ) -> CloudResult<Node> {
        let endpoint = self.transport.endpoint_or(|| ec2_endpoint(region));
        let body = params.form_body(action).into_bytes();
        let send = || async {
            let out = Outgoing {
                endpoint: &endpoint,
                region,
                service: "ec2",
                action,
                content_type: FORM_CONTENT_TYPE,
                target: None,
                body: &body,
            };
            let (status, text) = self.send_once(&out).await?;
            self.ec2_answer(action, status, &text)
        };
        let (root, _) = if replay_unknown {
            self.transport.call(region, action, send).await?
        } else {
            self.transport
                .call_once_created(region, action, send)
                .await?
        };
        Ok(root)
    }

    /// Calls a Price List Query API operation (`GetProducts`) with a JSON body.
    pub async fn pricing(&self, operation: &str, body: &Value) -> CloudResult<Value> {
        let endpoint = self.transport.endpoint_or(pricing_endpoint);
        let payload = body.to_string().into_bytes();
        let target = format!("{PRICING_TARGET_PREFIX}{operation}");
        let send = || async {
            let out = Outgoing {
                endpoint: &endpoint,
                region: PRICING_REGION,
                service: "pricing",
                action: operation,
                content_type: JSON_CONTENT_TYPE,
                target: Some(&target),
                body: &payload,
            };
            let (status, text) = self.send_once(&out).await?;
            self.json_answer(operation, status, &text)
        };
        let (answer, _) = self.transport.call(PRICING_REGION, operation, send).await?;
        Ok(answer)
    }

    fn secrets(&self) -> [&str; 1] {
        [self.credentials.access_key_secret.expose()]
    }

    fn error(
        &self,
        class: ErrorClass,
        action: &str,
        code: String,
        message: &str,
        status: u16,
        request_id: String,
    ) -> CloudError {
        let mut err = CloudError::new(
            class,
            PROVIDER,
            action,
            code,
            scrub(message, &self.secrets()),
        );
        err.http_status = Some(status);
        err.request_id = Some(request_id).filter(|id| !id.is_empty());
        err
    }

    fn ec2_answer(&self, action: &str, status: u16, text: &str) -> CloudResult<(Node, String)> {
        let root = Node::parse(text).ok();
        let request_id = root.as_ref().map(Node::request_id).unwrap_or_default();
        let error = root.as_ref().and_then(error_of);
        match (status, root, error) {
            (200..=299, Some(root), None) => Ok((root, request_id)),
            (_, _, Some((code, message))) => {
                let class = classify(&code, status);
                Err(self.error(class, action, code, &message, status, request_id))
            }
            (_, _, None) => Err(self.unparsed(action, status, request_id)),
        }
    }

    fn json_answer(&self, action: &str, status: u16, text: &str) -> CloudResult<(Value, String)> {
        let value = serde_json::from_str::<Value>(text).ok();
        let field = |v: &Value, names: &[&str]| {
            names
                .iter()
                .find_map(|n| v.get(*n).and_then(Value::as_str))
                .unwrap_or_default()
                .to_string()
        };
        match value {
            Some(v) if (200..=299).contains(&status) => Ok((v, String::new())),
            Some(v) if v.get("__type").is_some() => {
                // `com.amazon.coral.service#ThrottlingException` → `ThrottlingException`.
                let raw = field(&v, &["__type"]);
                let code = raw
                    .rsplit(['#', ':'])
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let message = field(&v, &["message", "Message"]);
                let class = classify(&code, status);
                Err(self.error(class, action, code, &message, status, String::new()))
            }
            _ => Err(self.unparsed(action, status, String::new())),
        }
    }

    /// An answer without a readable error: a 2xx that does not parse is the server's fault
    /// (retried); otherwise the status decides.
    fn unparsed(&self, action: &str, status: u16, request_id: String) -> CloudError {
        let (code, class) = if (200..=299).contains(&status) {
            ("InvalidResponse".to_string(), ErrorClass::Transient)
        } else {
            (format!("HTTP{status}"), classify("", status))
        };
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("unreadable answer");
        self.error(class, action, code, reason, status, request_id)
    }

    fn transport_error(&self, action: &str, err: reqwest::Error) -> CloudError {
        let code = if err.is_timeout() {
            "Timeout"
        } else if err.is_connect() {
            mce_cloud::CONNECTION_FAILED
        } else {
            "Transport"
        };
        // Without the URL: the endpoint may be internal, and it says nothing to the user.
        let err = err.without_url();
        transport_error(PROVIDER, action, code, &err, &self.secrets())
    }

    /// One signed attempt: the status and the body text.
    async fn send_once(&self, out: &Outgoing<'_>) -> CloudResult<(u16, String)> {
        // A fresh date per attempt: a retry after a long backoff must not be refused as
        // expired (AWS accepts 15 minutes of skew).
        let now = jiff::Timestamp::now().as_second();
        let (date, _) = amz_date(now).unwrap_or_default();
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", out.content_type),
            ("host", out.endpoint.authority.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        if let Some(target) = out.target {
            headers.push(("x-amz-target", target));
        }
        let authorization = SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: out.body,
            amz_date: &date,
            region: out.region,
            service: out.service,
        }
        .authorization(
            &self.credentials.access_key_id,
            self.credentials.access_key_secret.expose(),
        );
        let url = format!("{}://{}/", out.endpoint.scheme, out.endpoint.authority);
        let mut request = self
            .transport
            .http()
            .post(url)
            .header("authorization", authorization);
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request
            .body(out.body.to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(out.action, e))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(out.action, e))?;
        Ok((status, text))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use axum::http::{HeaderMap, StatusCode};
    use parking_lot::Mutex;

    use super::*;
    use crate::sign::{parse_authorization, signatures_equal};
    use mce_cloud::Secret;

    const SECRET: &str = "s3cr3t/KEY+x";

    struct Seen {
        headers: HeaderMap,
        body: String,
        valid: bool,
    }

    #[derive(Default)]
    struct Mock {
        script: VecDeque<(u16, String)>,
        seen: Vec<Seen>,
    }

    /// Verifies as AWS would: the declared signed headers, the raw body's hash, the scope
    /// date equal to `X-Amz-Date`'s, 15 minutes of skew.
    fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let Some(auth) = parse_authorization(&header("authorization")) else {
            return false;
        };
        let date = header("x-amz-date");
        let values: Vec<(String, String)> = auth
            .signed_headers
            .iter()
            .map(|h| (h.clone(), header(h)))
            .collect();
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request = SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &pairs,
            payload: body,
            amz_date: &date,
            region: &auth.region,
            service: &auth.service,
        };
        let now = jiff::Timestamp::now().as_second();
        let skew_ok = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &date)
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .is_some_and(|z| (now - z.timestamp().as_second()).abs() <= 900);
        auth.access_key_id == "AKID"
            && date.starts_with(&auth.date)
            && skew_ok
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
                        body: String::from_utf8(body.to_vec()).unwrap(),
                        valid,
                    });
                    let (status, body) = m.script.pop_front().unwrap_or((
                        200,
                        "<OkResponse><requestId>rid-ok</requestId><return>true</return></OkResponse>"
                            .into(),
                    ));
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "text/xml;charset=UTF-8")],
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

    fn ec2_error(code: &str, message: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>rid-err</RequestID></Response>"
        )
    }

    #[tokio::test]
    async fn signed_form_post_retried_on_throttling_and_5xx() {
        let mock = Arc::new(Mutex::new(Mock::default()));
        mock.lock().script = [
            (503, ec2_error("RequestLimitExceeded", "Request limit exceeded.")),
            (500, "<html>oops</html>".to_string()),
            (
                200,
                "<RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r3</requestId><instancesSet><item><instanceId>i-1</instanceId></item></instancesSet></RunInstancesResponse>".to_string(),
            ),
        ]
        .into();
        let endpoint = serve(Arc::clone(&mock)).await;
        let c = client(&endpoint);
        let params = Params::new()
            .with("ClientToken", "tok-1")
            .with("TagSpecification.1.Tag.1.Value", "a b/c");
        let root = c.call("eu-west-1", "RunInstances", &params).await.unwrap();
        assert_eq!(
            root.at(&["instancesSet", "item"]).text_of("instanceId"),
            "i-1"
        );
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
            assert_eq!(h["content-type"], FORM_CONTENT_TYPE);
            assert_eq!(h["host"], endpoint.trim_start_matches("http://"));
            let auth = h["authorization"].to_str().unwrap();
            assert!(
                auth.contains(
                    "/eu-west-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                ),
                "{auth}"
            );
            assert_eq!(
                seen.body,
                "Action=RunInstances&Version=2016-11-15&ClientToken=tok-1&TagSpecification.1.Tag.1.Value=a%20b%2Fc"
            );
        }
    }

    #[tokio::test]
    async fn terminal_errors_are_classified_not_retried_and_scrubbed() {
        let mock = Arc::new(Mutex::new(Mock::default()));
        mock.lock().script = [(
            400,
            ec2_error("InvalidVpcID.NotFound", "vpc-1 not found for s3cr3t/KEY+x"),
        )]
        .into();
        let endpoint = serve(Arc::clone(&mock)).await;
        let c = client(&endpoint);
        let err = c
            .call(
                "us-east-1",
                "DeleteVpc",
                &Params::new().with("VpcId", "vpc-1"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
        assert_eq!(err.code, "InvalidVpcID.NotFound");
        assert_eq!(err.request_id.as_deref(), Some("rid-err"));
        assert_eq!(err.http_status, Some(400));
        assert!(!err.to_string().contains(SECRET), "{err}");
        assert_eq!(c.stats().attempts, 1);
    }

    #[tokio::test]
    async fn a_create_without_token_is_not_replayed_after_an_unknown_outcome() {
        let mock = Arc::new(Mutex::new(Mock::default()));
        mock.lock().script = [(504, "gateway timeout".to_string())].into();
        let endpoint = serve(Arc::clone(&mock)).await;
        let c = client(&endpoint);
        let err = c
            .call_create("us-east-1", "CreateVpc", &Params::new())
            .await
            .unwrap_err();
        assert!(err.outcome_unknown(), "{err:?}");
        assert_eq!(err.code, "HTTP504");
        assert_eq!(c.stats().attempts, 1);
        // Throttling never ran: a create is sent again.
        mock.lock().script = [(400, ec2_error("RequestLimitExceeded", "slow down"))].into();
        c.call_create("us-east-1", "CreateVpc", &Params::new())
            .await
            .unwrap();
        assert_eq!(c.stats().attempts, 3);
    }

    #[tokio::test]
    async fn pricing_is_json_1_1_with_a_target_in_us_east_1() {
        let mock = Arc::new(Mutex::new(Mock::default()));
        mock.lock().script = [
            (
                400,
                r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}"#
                    .to_string(),
            ),
            (200, r#"{"FormatVersion":"aws_v1","PriceList":[]}"#.to_string()),
        ]
        .into();
        let endpoint = serve(Arc::clone(&mock)).await;
        let c = client(&endpoint);
        let v = c
            .pricing(
                "GetProducts",
                &serde_json::json!({"ServiceCode": "AmazonEC2"}),
            )
            .await
            .unwrap();
        assert_eq!(v["FormatVersion"], "aws_v1");
        let m = mock.lock();
        assert_eq!(m.seen.len(), 2);
        let h = &m.seen[1].headers;
        assert!(m.seen[1].valid);
        assert_eq!(h["x-amz-target"], "AWSPriceListService.GetProducts");
        assert_eq!(h["content-type"], JSON_CONTENT_TYPE);
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            auth.contains("/us-east-1/pricing/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "),
            "{auth}"
        );
        assert_eq!(m.seen[1].body, r#"{"ServiceCode":"AmazonEC2"}"#);
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
            .call("us-east-1", "DescribeVpcs", &Params::new())
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient);
        assert_eq!(err.code, mce_cloud::CONNECTION_FAILED);
        assert_eq!(c.stats().attempts, 4);
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    }

    #[test]
    fn public_endpoints() {
        assert_eq!(
            ec2_endpoint("eu-west-1").authority,
            "ec2.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            pricing_endpoint().authority,
            "api.pricing.us-east-1.amazonaws.com"
        );
    }
}
