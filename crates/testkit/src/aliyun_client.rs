//! A tiny signed client for tests and benchmarks of the emulator (not the production driver):
//! ACS3-HMAC-SHA256 over `POST /?params` as the official SDK sends it, and V2 HMAC-SHA1.

use rand::Rng;
use serde_json::Value;

use mce_cloud_aliyun::sign::{
    Acs3Request, EMPTY_BODY_SHA256, canonical_query, percent_encode, rpc_v2_signature,
};

/// Overrides for negative tests.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// `x-acs-date` / `Timestamp`; now by default.
    pub date: Option<String>,
    /// `x-acs-signature-nonce` / `SignatureNonce`; random by default.
    pub nonce: Option<String>,
}

/// Signs and sends calls to one emulator endpoint.
#[derive(Clone)]
pub struct SignedClient {
    pub http: reqwest::Client,
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
}

pub fn random_nonce() -> String {
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

pub fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl SignedClient {
    /// `endpoint` is `127.0.0.1:PORT`.
    pub fn new(
        endpoint: impl Into<String>,
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
    ) -> Self {
        Self {
            http: reqwest::Client::new(),
            endpoint: endpoint.into(),
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
        }
    }

    /// An ACS3-signed `POST /?params` request with an empty body.
    pub fn acs3(
        &self,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
        opts: &SignOptions,
    ) -> reqwest::RequestBuilder {
        let query: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let date = opts.date.clone().unwrap_or_else(now_iso);
        let nonce = opts.nonce.clone().unwrap_or_else(random_nonce);
        let headers: Vec<(String, String)> = vec![
            ("host".into(), self.endpoint.clone()),
            ("x-acs-action".into(), action.into()),
            ("x-acs-version".into(), version.into()),
            ("x-acs-date".into(), date),
            ("x-acs-signature-nonce".into(), nonce),
            ("x-acs-content-sha256".into(), EMPTY_BODY_SHA256.into()),
        ];
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
        let request = Acs3Request {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            body_sha256: EMPTY_BODY_SHA256,
        };
        let authorization = request.authorization(&self.access_key_id, &self.access_key_secret);
        let url = format!(
            "http://{}/?{}",
            self.endpoint,
            canonical_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        );
        let mut builder = self.http.post(url).header("authorization", authorization);
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            builder = builder.header(k, v);
        }
        builder
    }

    /// A V2 (HMAC-SHA1) signed `GET /?params` URL.
    pub fn v2_url(
        &self,
        method: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
        opts: &SignOptions,
    ) -> String {
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let date = opts.date.clone().unwrap_or_else(now_iso);
        let nonce = opts.nonce.clone().unwrap_or_else(random_nonce);
        for (k, v) in [
            ("Action", action),
            ("Version", version),
            ("Format", "JSON"),
            ("AccessKeyId", self.access_key_id.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", nonce.as_str()),
            ("Timestamp", date.as_str()),
        ] {
            all.push((k.into(), v.into()));
        }
        let signature = rpc_v2_signature(
            method,
            all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.access_key_secret,
        );
        let query = canonical_query(all.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        format!(
            "http://{}/?{query}&Signature={}",
            self.endpoint,
            percent_encode(&signature)
        )
    }

    /// Sends an ACS3-signed call; returns the HTTP status and the JSON body.
    pub async fn call(
        &self,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Result<(u16, Value)> {
        send(self.acs3(version, action, params, &SignOptions::default())).await
    }

    /// An ECS (2014-05-26) call.
    pub async fn ecs(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Result<(u16, Value)> {
        self.call(mce_emulator::aliyun::ECS_VERSION, action, params)
            .await
    }

    /// A VPC (2016-04-28) call.
    pub async fn vpc(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Result<(u16, Value)> {
        self.call(mce_emulator::aliyun::VPC_VERSION, action, params)
            .await
    }
}

/// Sends a request; returns the HTTP status and the JSON body (`Null` when not JSON).
pub async fn send(builder: reqwest::RequestBuilder) -> reqwest::Result<(u16, Value)> {
    let response = builder.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
