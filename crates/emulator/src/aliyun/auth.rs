//! Who is calling: ACS3 and V2 signatures, clock skew and nonce replay, checked as the cloud does.

use super::*;

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn check_timestamp(state: &EmulatorState, value: &str, name: &str) -> ApiResult<()> {
    let ts: Timestamp = value.parse().map_err(|_| {
        ApiError::new(
            400,
            "InvalidTimeStamp.Format",
            format!("Specified {name} is not valid: {value}."),
        )
    })?;
    let skew = (Timestamp::now().as_second() - ts.as_second()).unsigned_abs();
    if skew > state.max_clock_skew().as_secs() {
        return Err(ApiError::new(
            400,
            "InvalidTimeStamp.Expired",
            format!("Specified time stamp or date value is expired: {value}."),
        ));
    }
    Ok(())
}

pub(super) fn unknown_key(id: &str) -> ApiError {
    ApiError::new(
        404,
        "InvalidAccessKeyId.NotFound",
        format!("Specified access key is not found: {id}."),
    )
}

/// Verifies the request signature (ACS3 header or V2 parameters) and its nonce; answers the
/// caller's access key id.
pub(super) fn authenticate(
    state: &EmulatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
    params: &Params,
    body: &[u8],
) -> ApiResult<String> {
    if let Some(auth) = header_str(headers, "authorization") {
        let parsed = Acs3Header::parse(auth).ok_or_else(|| {
            ApiError::new(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        })?;
        let secret = state
            .secret_of(&parsed.access_key_id)
            .ok_or_else(|| unknown_key(&parsed.access_key_id))?;
        for required in ["x-acs-date", "x-acs-signature-nonce"] {
            if !parsed.signed_headers.iter().any(|h| h == required)
                || headers.get(required).is_none()
            {
                return Err(ApiError::new(
                    400,
                    "IncompleteSignature",
                    format!("The header {required} must be sent and signed."),
                ));
            }
        }
        check_timestamp(
            state,
            header_str(headers, "x-acs-date").unwrap_or_default(),
            "x-acs-date",
        )?;
        let body_sha = sha256_hex(body);
        if let Some(claimed) = header_str(headers, "x-acs-content-sha256")
            && !claimed.eq_ignore_ascii_case(&body_sha)
        {
            return Err(ApiError::new(
                400,
                "SignatureDoesNotMatch",
                "The x-acs-content-sha256 header does not match the request body.",
            ));
        }
        let header_pairs: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| parsed.signed_headers.iter().any(|h| h == name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let request = ReceivedRequest {
            method: method.as_str(),
            path: uri.path(),
            query,
            headers: &header_pairs,
            body_sha256: header_str(headers, "x-acs-content-sha256").unwrap_or(&body_sha),
        };
        let string_to_sign = request.acs3_string_to_sign(&parsed.signed_headers);
        if !verify::same_signature(
            &verify::acs3_expected(&secret, &string_to_sign),
            &parsed.signature,
        ) {
            return Err(ApiError::new(
                400,
                "SignatureDoesNotMatch",
                format!(
                    "Specified signature does not match our calculation. The string to sign is: {string_to_sign:?}"
                ),
            ));
        }
        let nonce = header_str(headers, "x-acs-signature-nonce").unwrap_or_default();
        if !state.use_nonce(nonce) {
            return Err(ApiError::new(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        return Ok(parsed.access_key_id);
    }
    let Some(signature) = params.get("Signature") else {
        return Err(ApiError::new(
            400,
            "IncompleteSignature",
            "The request carries neither an Authorization header nor a Signature parameter.",
        ));
    };
    let key_id = params.req("AccessKeyId")?;
    let secret = state.secret_of(key_id).ok_or_else(|| unknown_key(key_id))?;
    let method_name = params.get("SignatureMethod").unwrap_or("HMAC-SHA1");
    if method_name != "HMAC-SHA1" {
        return Err(ApiError::new(
            400,
            "InvalidSignatureMethod",
            format!("Unsupported SignatureMethod {method_name}."),
        ));
    }
    check_timestamp(state, params.req("Timestamp")?, "Timestamp")?;
    let nonce = params.req("SignatureNonce")?;
    let expected = verify::v2_expected(
        method.as_str(),
        params.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &secret,
    );
    if !verify::same_signature(&expected, signature) {
        return Err(ApiError::new(
            400,
            "SignatureDoesNotMatch",
            "Specified signature does not match our calculation.",
        ));
    }
    if !state.use_nonce(nonce) {
        return Err(ApiError::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    Ok(key_id.to_string())
}
