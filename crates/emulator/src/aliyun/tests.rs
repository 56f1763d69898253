use super::*;

#[test]
fn decoding_handles_percent_and_plus() {
    assert_eq!(percent_decode("a%20b+c%2A").as_deref(), Some("a b c*"));
    assert_eq!(percent_decode("%E4%B8%AD").as_deref(), Some("中"));
    assert!(percent_decode("%G1").is_none());
    assert!(percent_decode("%4").is_none());
    let pairs = parse_pairs("b=2&a=&Tag.1.Key=k%3Dv").unwrap();
    assert_eq!(
        pairs,
        vec![
            ("b".into(), "2".into()),
            ("a".into(), "".into()),
            ("Tag.1.Key".into(), "k=v".into())
        ]
    );
}

fn params(list: &[(&str, &str)]) -> Params {
    Params(
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn params_parse_lists_tags_and_rules() {
    let p = params(&[
        ("Tag.2.Key", "b"),
        ("Tag.1.Key", "a"),
        ("Tag.1.Value", "1"),
        ("InstanceId.2", "i-2"),
        ("InstanceId.1", "i-1"),
        ("InstanceIds", "[\"i-1\",\"i-2\"]"),
        ("Permissions.1.IpProtocol", "TCP"),
        ("Permissions.1.PortRange", "22/22"),
        ("Permissions.2.IpProtocol", "icmp"),
    ]);
    assert_eq!(
        p.tag_filters(),
        vec![
            ("a".to_string(), Some("1".to_string())),
            ("b".to_string(), None)
        ]
    );
    assert_eq!(p.indexed("InstanceId"), vec!["i-1", "i-2"]);
    assert_eq!(p.json_list("InstanceIds").unwrap(), vec!["i-1", "i-2"]);
    let rules = rule_specs(&p).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].protocol, "tcp");
    assert_eq!(rules[0].source_cidr, "0.0.0.0/0");
    assert_eq!(rules[1].port_range, "-1/-1");
    let flat = params(&[
        ("IpProtocol", "udp"),
        ("PortRange", "53/53"),
        ("SourceCidrIp", "10.0.0.0/8"),
    ]);
    assert_eq!(rule_specs(&flat).unwrap()[0].source_cidr, "10.0.0.0/8");
    assert!(rule_specs(&params(&[("IpProtocol", "tcp"), ("PortRange", "99/1")])).is_err());
}

#[test]
fn fingerprint_ignores_signature_params_but_not_business_ones() {
    let a = params(&[
        ("ClientToken", "t"),
        ("CidrBlock", "10.0.0.0/8"),
        ("SignatureNonce", "1"),
    ]);
    let b = params(&[
        ("SignatureNonce", "2"),
        ("CidrBlock", "10.0.0.0/8"),
        ("ClientToken", "t"),
    ]);
    let c = params(&[("ClientToken", "t"), ("CidrBlock", "10.1.0.0/16")]);
    let fa = a.idem("CreateVpc").unwrap().unwrap();
    assert_eq!(fa, b.idem("CreateVpc").unwrap().unwrap());
    assert_ne!(
        fa.fingerprint,
        c.idem("CreateVpc").unwrap().unwrap().fingerprint
    );
    assert!(
        params(&[("ClientToken", &"x".repeat(65))])
            .idem("CreateVpc")
            .is_err()
    );
}

#[test]
fn model_errors_map_to_alibaba_codes() {
    let e: ApiError = ModelError::NotFound {
        kind: Kind::Instance,
        id: "i-1".into(),
    }
    .into();
    assert_eq!(
        (e.status, e.code.as_str()),
        (404, "InvalidInstanceId.NotFound")
    );
    let e: ApiError = ModelError::Dependency {
        kind: Kind::Vpc,
        id: "v".into(),
        blocker: Kind::Subnet,
    }
    .into();
    assert_eq!(e.code, "DependencyViolation.VSwitch");
    let e: ApiError = ModelError::Quota(Kind::Instance).into();
    assert_eq!(e.code, "QuotaExceed.ElasticQuota");
    let e: ApiError = ModelError::IdempotencyMismatch.into();
    assert_eq!(
        (e.status, e.code.as_str()),
        (400, "IdempotentParameterMismatch")
    );
}
