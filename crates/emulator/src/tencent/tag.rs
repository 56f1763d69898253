//! Tag API (tags of live resources by six-segment name,
//! `qcs::cvm:<region>:uin/<uin>:instance/<id>`) and STS `GetCallerIdentity`.

use super::*;
use crate::model::Model;

/// Resources per TagResources/UnTagResources call, and tags per call.
const MAX_PER_CALL: usize = 50;
const TAGS_PER_CALL: usize = 10;

pub(super) fn dispatch(state: &EmulatorState, call: &Call, body: &Body) -> ApiResult<Value> {
    match call.action.as_str() {
        "GetCallerIdentity" => Ok(json!({
            "Arn": format!("qcs::cam::uin/{ACCOUNT_UIN}:uin/{ACCOUNT_UIN}"),
            "AccountId": ACCOUNT_UIN,
            "UserId": ACCOUNT_UIN,
            "PrincipalId": ACCOUNT_UIN,
            "Type": "CAMUser",
        })),
        "TagResources" => {
            let resources = resource_list(body)?;
            let tags = body.key_values("Tags", "TagKey", "TagValue")?;
            if tags.is_empty() {
                return Err(ApiError::missing("Tags"));
            }
            if tags.len() > TAGS_PER_CALL {
                return Err(ApiError::new(
                    "LimitExceeded.TagNumPerRequest",
                    format!("At most {TAGS_PER_CALL} tags per call."),
                ));
            }
            state.with_model_mut(|m| {
                each_resource(m, &resources, |m, kind, region, id| {
                    m.tag_resources(kind, region, &[id.to_string()], &tags)
                })
            })
        }
        "UnTagResources" => {
            let resources = resource_list(body)?;
            let keys: Vec<String> = body
                .strs("TagKeys")?
                .into_iter()
                .map(String::from)
                .collect();
            if keys.is_empty() {
                return Err(ApiError::missing("TagKeys"));
            }
            state.with_model_mut(|m| {
                each_resource(m, &resources, |m, kind, region, id| {
                    m.untag_resources(kind, region, &[id.to_string()], &keys, false)
                })
            })
        }
        "GetResources" => state.with_model(|m| get_resources(m, body)),
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("The action `{}` is not emulated.", call.action),
        )),
    }
}

fn resource_list<'a>(body: &Body<'a>) -> ApiResult<Vec<&'a str>> {
    let list = body.strs("ResourceList")?;
    if list.is_empty() {
        return Err(ApiError::missing("ResourceList"));
    }
    if list.len() > MAX_PER_CALL {
        return Err(ApiError::new(
            "LimitExceeded.ResourceNumPerRequest",
            format!("At most {MAX_PER_CALL} resources per call."),
        ));
    }
    Ok(list)
}

/// A six-segment resource name: (kind, region, id); `Err` names the failure code.
fn parse_resource(name: &str) -> Result<(Kind, &str, &str), (&'static str, String)> {
    let malformed = || {
        (
            "InvalidParameterValue.ResourceDescriptionError",
            format!("`{name}` is not a six-segment resource name."),
        )
    };
    let mut parts = name.splitn(6, ':');
    let (qcs, empty, service, region, account, resource) = (
        parts.next().ok_or_else(malformed)?,
        parts.next().ok_or_else(malformed)?,
        parts.next().ok_or_else(malformed)?,
        parts.next().ok_or_else(malformed)?,
        parts.next().ok_or_else(malformed)?,
        parts.next().ok_or_else(malformed)?,
    );
    if qcs != "qcs" || !empty.is_empty() {
        return Err(malformed());
    }
    if account != format!("uin/{ACCOUNT_UIN}") {
        return Err((
            "InvalidParameterValue.UinInvalid",
            format!("`{account}` is not this account."),
        ));
    }
    let (prefix, id) = resource.split_once('/').ok_or_else(malformed)?;
    let kind = match (service, prefix) {
        ("cvm", "instance") => Kind::Instance,
        ("cvm" | "vpc", "sg") => Kind::SecurityGroup,
        ("cvm" | "vpc", "eip") => Kind::Eip,
        ("vpc", "vpc") => Kind::Vpc,
        ("vpc", "subnet") => Kind::Subnet,
        _ => {
            return Err((
                "InvalidParameterValue.ResourcePrefixInvalid",
                format!("`{service}:{prefix}` resources are not emulated."),
            ));
        }
    };
    Ok((kind, region, id))
}

/// The realm of a resource, if it exists in `region`.
fn realm_of(m: &Model, kind: Kind, region: &str, id: &str) -> Option<&'static str> {
    let found = match kind {
        Kind::Instance => m.instances.get(id).map(|r| (r.realm, &r.region)),
        Kind::Vpc => m.vpcs.get(id).map(|r| (r.realm, &r.region)),
        Kind::Subnet => m.subnets.get(id).map(|r| (r.realm, &r.region)),
        Kind::SecurityGroup => m.security_groups.get(id).map(|r| (r.realm, &r.region)),
        Kind::Eip => m.eips.get(id).map(|r| (r.realm, &r.region)),
        Kind::SecurityGroupRule => None,
    };
    found.filter(|(_, r)| *r == region).map(|(realm, _)| realm)
}

/// Applies `f` to each resource; failures are reported per resource in `FailedResources`, as
/// the Tag API answers them (the call itself succeeds).
fn each_resource(
    m: &mut Model,
    resources: &[&str],
    f: impl Fn(&mut Model, Kind, &str, &str) -> crate::model::ModelResult<()>,
) -> ApiResult<Value> {
    let mut failed = Vec::new();
    for name in resources {
        let outcome = parse_resource(name).and_then(|(kind, region, id)| {
            if realm_of(m, kind, region, id) != Some(REALM.name) {
                return Err((
                    "ResourceNotFound.RecordNotFound",
                    format!("The resource `{name}` does not exist."),
                ));
            }
            f(m, kind, region, id).map_err(|e| {
                let code = match e {
                    crate::model::ModelError::TagLimit(_) => "LimitExceeded.ResourceAttachedTags",
                    _ => "FailedOperation",
                };
                (code, e.to_string())
            })
        });
        if let Err((code, message)) = outcome {
            failed.push(json!({"Resource": name, "Code": code, "Message": message}));
        }
    }
    Ok(json!({ "FailedResources": failed }))
}

/// Every Tencent resource (or those listed) with its tags, filtered by `TagFilters`, paged by
/// `MaxResults` (at most 200) and an opaque `PaginationToken`.
fn get_resources(m: &Model, body: &Body) -> ApiResult<Value> {
    let wanted = body.strs("ResourceList")?;
    let mut filters = Vec::new();
    for f in body.objs("TagFilters", "TagFilters")? {
        let key = f.req_str("TagKey")?.to_string();
        let values: Vec<String> = f.strs("TagValue")?.into_iter().map(String::from).collect();
        filters.push((key, values));
    }
    if filters.len() > 6 {
        return Err(ApiError::new(
            "InvalidParameterValue.TagFilters",
            "At most 6 tag filters are allowed.",
        ));
    }
    let max = body.int("MaxResults")?.unwrap_or(50);
    if !(1..=200).contains(&max) {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("MaxResults {max} is out of range [1, 200]."),
        ));
    }
    let start: usize = match body.str("PaginationToken")?.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::invalid_value("PaginationToken", t))?,
    };
    let uin = ACCOUNT_UIN;
    let mut all: Vec<(String, &Tags)> = Vec::new();
    let ours = |realm: &str| realm == REALM.name;
    for i in m.instances.values().filter(|r| ours(r.realm)) {
        all.push((
            format!("qcs::cvm:{}:uin/{uin}:instance/{}", i.region, i.id),
            &i.tags,
        ));
    }
    for v in m.vpcs.values().filter(|r| ours(r.realm)) {
        all.push((
            format!("qcs::vpc:{}:uin/{uin}:vpc/{}", v.region, v.id),
            &v.tags,
        ));
    }
    for s in m.subnets.values().filter(|r| ours(r.realm)) {
        all.push((
            format!("qcs::vpc:{}:uin/{uin}:subnet/{}", s.region, s.id),
            &s.tags,
        ));
    }
    for g in m.security_groups.values().filter(|r| ours(r.realm)) {
        all.push((
            format!("qcs::cvm:{}:uin/{uin}:sg/{}", g.region, g.id),
            &g.tags,
        ));
    }
    for e in m.eips.values().filter(|r| ours(r.realm)) {
        all.push((
            format!("qcs::cvm:{}:uin/{uin}:eip/{}", e.region, e.id),
            &e.tags,
        ));
    }
    let matching: Vec<(String, &Tags)> = all
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.contains(&name.as_str()))
        .filter(|(_, tags)| {
            filters.iter().all(|(k, values)| {
                tags.get(k)
                    .is_some_and(|v| values.is_empty() || values.contains(v))
            })
        })
        .collect();
    let max = usize::try_from(max).unwrap_or(50);
    let end = start.saturating_add(max).min(matching.len());
    let page: Vec<Value> = matching
        .get(start.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|(name, tags)| {
            let tags: Vec<Value> = tags
                .iter()
                .map(|(k, v)| json!({"TagKey": k, "TagValue": v, "Category": "Custom"}))
                .collect();
            json!({"Resource": name, "Tags": tags})
        })
        .collect();
    let token = if end < matching.len() {
        end.to_string()
    } else {
        String::new()
    };
    Ok(json!({"PaginationToken": token, "ResourceTagMappingList": page}))
}
