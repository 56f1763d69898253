use super::request::{filter_tag_keys, page, tag_filter};
use super::*;

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn fields_are_typed_as_the_sdk_models_type_them() {
    let map = body(json!({"Limit": "20", "Offset": 5, "Name": 3, "Ids": ["a", 1]}));
    let b = Body::root(&map);
    assert_eq!(b.int_str("Limit").unwrap(), Some(20));
    assert_eq!(b.int("Offset").unwrap(), Some(5));
    assert_eq!(b.str("Name").unwrap_err().code, "InvalidParameter");
    assert_eq!(b.strs("Ids").unwrap_err().code, "InvalidParameter");
    assert_eq!(b.req_str("Missing").unwrap_err().code, "MissingParameter");
    // VPC describes take strings, CVM ones integers.
    assert_eq!(page(&b, true, false).unwrap_err().code, "InvalidParameter");
    let map = body(json!({"Limit": "100", "Offset": "7"}));
    assert_eq!(page(&Body::root(&map), true, false).unwrap(), (7, 100));
    let map = body(json!({"Limit": 101}));
    assert_eq!(
        page(&Body::root(&map), false, true).unwrap_err().code,
        "InvalidParameterValueLimit"
    );
    let map = body(json!({}));
    assert_eq!(page(&Body::root(&map), false, true).unwrap(), (0, 20));
}

#[test]
fn tags_and_filters_parse() {
    let map = body(json!({
        "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b"}],
        "Filters": [{"Name": "tag:a", "Values": ["1", "2"]}, {"Name": "tag-key", "Values": ["b"]}],
    }));
    let b = Body::root(&map);
    let tags = b.tags("Tags").unwrap();
    assert_eq!(tags.get("b").map(String::as_str), Some(""));
    let filters = b.filters().unwrap();
    assert_eq!(tag_filter(&tags, &filters[0]), Some(true));
    assert_eq!(tag_filter(&tags, &filters[1]), Some(true));
    assert_eq!(filter_tag_keys(&filters), vec![("a".to_string(), None)]);
    let dup = body(json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}));
    assert_eq!(
        Body::root(&dup).tags("Tags").unwrap_err().code,
        "InvalidParameterValue.TagDuplicateKey"
    );
}

#[test]
fn unknown_parameters_and_wrong_services_are_refused() {
    let map = body(json!({"VpcName": "x", "CidrBlock": "10.0.0.0/16", "Foo": 1}));
    assert_eq!(
        check_known("CreateVpc", &map).unwrap_err().code,
        "UnknownParameter"
    );
    assert_eq!(service_of("RunInstances"), Some(Service::Cvm));
    assert_eq!(service_of("CreateVpc"), Some(Service::Vpc));
    assert_eq!(service_of("TagResources"), Some(Service::Tag));
    assert_eq!(service_of("GetCallerIdentity"), Some(Service::Sts));
    assert_eq!(service_of("Nope"), None);
}

#[test]
fn state_codes_and_request_ids() {
    assert_eq!(
        instance_state_code("RUNNING"),
        "UnsupportedOperation.InstanceStateRunning"
    );
    assert_eq!(
        instance_state_code("LAUNCH_FAILED"),
        "UnsupportedOperation.InstanceStateLaunchFailed"
    );
    let id = request_id();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
}

#[test]
fn body_flattens_for_the_log_and_passwords_are_redacted() {
    let mut out = Vec::new();
    flatten(
        "",
        &json!({"LoginSettings": {"Password": "Pa55word!"}, "SecurityGroupIds": ["sg-1"], "InstanceCount": 1}),
        &mut out,
    );
    assert!(out.contains(&("SecurityGroupIds.0".to_string(), "sg-1".to_string())));
    assert!(out.contains(&("InstanceCount".to_string(), "1".to_string())));
    assert!(crate::is_secret("LoginSettings.Password"));
}

#[test]
fn tasks_and_transitions_finish() {
    let mut front = FrontState::default();
    let t1 = front.task(Duration::from_secs(60));
    let t2 = front.task(Duration::ZERO);
    assert_ne!(t1, t2);
    assert!(t1.parse::<u64>().is_ok());
    front.transition("eip-1", "BINDING", Duration::from_secs(60));
    assert_eq!(
        front.eip_transition("eip-1", Instant::now()),
        Some("BINDING")
    );
    assert_eq!(
        front.eip_transition("eip-1", Instant::now() + Duration::from_secs(61)),
        None
    );
}

#[test]
fn signed_headers_verify() {
    use axum::http::HeaderValue;
    let config = crate::EmulatorConfig {
        credentials: vec![("AKID".into(), "secret".into())],
        ..crate::EmulatorConfig::default()
    };
    let state = EmulatorState::new(&config);
    let payload = br#"{"Limit": 1}"#;
    let now = Timestamp::now().as_second();
    let signed = sign_for_tests(
        "AKID",
        "secret",
        "127.0.0.1:1",
        "cvm",
        "DescribeInstances",
        "ap-guangzhou",
        payload,
        now,
    );
    let mut headers = HeaderMap::new();
    for (k, v) in &signed {
        headers.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let uri: Uri = "/".parse().unwrap();
    let call = auth::authenticate(&state, &Method::POST, &uri, &headers, payload).unwrap();
    assert_eq!(call.service, Service::Cvm);
    assert_eq!(call.region, "ap-guangzhou");
    // The body is covered byte for byte.
    let err =
        auth::authenticate(&state, &Method::POST, &uri, &headers, br#"{"Limit":1}"#).unwrap_err();
    assert_eq!(err.code, "AuthFailure.SignatureFailure");
    // Unknown SecretId, expired timestamp, garbled header.
    let other = sign_for_tests("NOPE", "secret", "h", "cvm", "A", "", b"{}", now);
    let mut h = HeaderMap::new();
    for (k, v) in &other {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    assert_eq!(
        auth::authenticate(&state, &Method::POST, &uri, &h, b"{}")
            .unwrap_err()
            .code,
        "AuthFailure.SecretIdNotFound"
    );
    let old = sign_for_tests("AKID", "secret", "h", "cvm", "A", "", b"{}", now - 301);
    let mut h = HeaderMap::new();
    for (k, v) in &old {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    assert_eq!(
        auth::authenticate(&state, &Method::POST, &uri, &h, b"{}")
            .unwrap_err()
            .code,
        "AuthFailure.SignatureExpire"
    );
    h.insert(
        "authorization",
        HeaderValue::from_static("TC3-HMAC-SHA256 garbage"),
    );
    assert_eq!(
        auth::authenticate(&state, &Method::POST, &uri, &h, b"{}")
            .unwrap_err()
            .code,
        "AuthFailure.InvalidAuthorization"
    );
}

#[test]
fn type_sizes_from_names() {
    use super::compute::type_size;
    assert_eq!(type_size("S5.MEDIUM8"), (2, 8));
    assert_eq!(type_size("S5.LARGE16"), (4, 16));
    assert_eq!(type_size("GT4.4XLARGE96"), (16, 96));
    assert_eq!(type_size("PNV4.7XLARGE116"), (28, 116));
    assert_eq!(type_size("S5.SMALL1"), (1, 1));
    assert_eq!(type_size("odd"), (0, 0));
}
