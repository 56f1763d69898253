//! Access policies attached to access keys, evaluated on every call as the clouds do.
//!
//! A key carries at most one Alibaba Cloud RAM policy (`{"Version":"1","Statement":[...]}`), one
//! Tencent Cloud CAM policy (`{"version":"2.0","statement":[...]}`) and one AWS IAM policy
//! (`{"Version":"2012-10-17",...}`, see [`Policy::decide_iam`]); a key without a policy
//! of a cloud may call everything on it (the emulator's behaviour before policies existed). With
//! one, a call needs an `Allow` statement matching its action, resource and conditions and no
//! matching `Deny`; otherwise the front end answers Alibaba `Forbidden.RAM` (HTTP 403), Tencent
//! `UnauthorizedOperation` (HTTP 200 error body) or AWS `UnauthorizedOperation` (HTTP 403).
//!
//! Conditions on tags are evaluated against the call and the model: RAM `acs:RequestTag/<key>` and
//! CAM `qcs:request_tag` against the tags a creating call carries, RAM `acs:ResourceTag/<key>` and
//! CAM `qcs:resource_tag` against the tags of the existing resources the call names. Any other
//! condition key or operator is refused when the policy is attached, so a policy is never
//! silently evaluated more permissively than written.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::EmulatorState;
use crate::model::{Model, Tags};

/// Which cloud's grammar a policy document is written in (and whose calls it governs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Grammar {
    /// Alibaba Cloud RAM.
    Ram,
    /// Tencent Cloud CAM.
    Cam,
    /// AWS IAM (identity-based policies, EC2 and Price List actions).
    Iam,
}

/// Why a policy document was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(String);

fn invalid(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// A parsed policy document.
#[derive(Clone, Debug)]
pub struct Policy {
    pub grammar: Grammar,
    statements: Vec<Statement>,
    /// The document as attached, for `GET /_emulator/policies`.
    pub document: Value,
}

#[derive(Clone, Debug)]
struct Statement {
    allow: bool,
    /// Lower-case `service:Action` patterns (`*` and `?` wildcards).
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
    /// IAM conditions (IAM statements only).
    iam: Vec<IamCondition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// The tags the call itself carries (creates).
    Request,
    /// The tags of the existing resources the call acts on.
    Resource,
}

#[derive(Clone, Debug)]
enum Test {
    /// RAM: the tag `key` has one of `values` (`like`: glob patterns).
    KeyIn {
        key: String,
        values: Vec<String>,
        like: bool,
    },
    /// CAM: one of the `key&value` pairs is among the tags.
    AnyPair(Vec<(String, String)>),
}

#[derive(Clone, Debug)]
struct Condition {
    scope: Scope,
    test: Test,
}

impl Test {
    fn holds(&self, tags: &Tags) -> bool {
        match self {
            Test::KeyIn { key, values, like } => tags.get(key).is_some_and(|v| {
                values
                    .iter()
                    .any(|want| if *like { glob(want, v) } else { want == v })
            }),
            Test::AnyPair(pairs) => pairs.iter().any(|(k, v)| tags.get(k) == Some(v)),
        }
    }
}

/// One or many strings (both grammars accept either).
fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| invalid(format!("{what}: expected strings")))
            })
            .collect(),
        _ => Err(invalid(format!("{what}: expected a string or a list"))),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name)
}

impl Policy {
    /// Parses a RAM or CAM document (told apart by `Version`/`Statement` vs
    /// `version`/`statement`).
    pub fn parse(document: Value) -> Result<Self, PolicyError> {
        let obj = document
            .as_object()
            .ok_or_else(|| invalid("expected a JSON object"))?;
        let (grammar, statements) = match (obj.get("Statement"), obj.get("statement")) {
            (Some(s), None) => match obj.get("Version").and_then(Value::as_str) {
                Some("1") => (Grammar::Ram, s),
                Some("2012-10-17" | "2008-10-17") => (Grammar::Iam, s),
                _ => {
                    return Err(invalid(
                        "a RAM policy has \"Version\": \"1\", an IAM policy \"2012-10-17\"",
                    ));
                }
            },
            (None, Some(s)) => {
                if obj.get("version").and_then(Value::as_str) != Some("2.0") {
                    return Err(invalid("a CAM policy has \"version\": \"2.0\""));
                }
                (Grammar::Cam, s)
            }
            _ => {
                return Err(invalid(
                    "expected a RAM (Statement) or CAM (statement) policy",
                ));
            }
        };
        // IAM also takes a single statement object.
        let single = [statements.clone()];
        let list = match statements {
            Value::Object(_) if grammar == Grammar::Iam => &single[..],
            other => other
                .as_array()
                .ok_or_else(|| invalid("the statements must be a list"))?
                .as_slice(),
        };
        let statements = list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_statement(grammar, s).map_err(|e| invalid(format!("statement {i}: {}", e.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            grammar,
            statements,
            document,
        })
    }

    /// Whether the policy allows the call, given the model's resources.
    pub fn decide(&self, call: &Call, model: &Model) -> Decision {
        let action = call.action.to_ascii_lowercase();
        let arns = call.arns(self.grammar, model);
        let mut allowed = false;
        for s in &self.statements {
            let matches = s.actions.iter().any(|p| glob(p, &action))
                && arns
                    .iter()
                    .all(|arn| s.resources.iter().any(|p| glob(p, arn)))
                && s.conditions.iter().all(|c| call.satisfies(c, model));
            if matches && !s.allow {
                return Decision::ExplicitDeny;
            }
            allowed |= matches;
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    /// How many statements the policy has.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

fn parse_statement(grammar: Grammar, value: &Value) -> Result<Statement, PolicyError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("expected an object"))?;
    let (effect, action, resource, condition) = match grammar {
        Grammar::Ram | Grammar::Iam => ("Effect", "Action", "Resource", "Condition"),
        Grammar::Cam => ("effect", "action", "resource", "condition"),
    };
    for key in obj.keys() {
        let sid = grammar == Grammar::Iam && key == "Sid";
        if !sid && ![effect, action, resource, condition].contains(&key.as_str()) {
            return Err(invalid(format!("unsupported element {key:?}")));
        }
    }
    let allow = match field(obj, effect).and_then(Value::as_str) {
        Some(e) if e.eq_ignore_ascii_case("allow") => true,
        Some(e) if e.eq_ignore_ascii_case("deny") => false,
        _ => return Err(invalid(format!("{effect} must be Allow or Deny"))),
    };
    let actions = strings(
        field(obj, action).ok_or_else(|| invalid(format!("{action} is required")))?,
        action,
    )?;
    for a in &actions {
        if a != "*" && !a.contains(':') {
            return Err(invalid(format!("action {a:?} is not service:Action")));
        }
    }
    let resources = strings(
        field(obj, resource).ok_or_else(|| invalid(format!("{resource} is required")))?,
        resource,
    )?;
    let (conditions, iam) = match (field(obj, condition), grammar) {
        (None, _) => (Vec::new(), Vec::new()),
        (Some(c), Grammar::Iam) => (Vec::new(), parse_iam_conditions(c)?),
        (Some(c), _) => (parse_conditions(grammar, c)?, Vec::new()),
    };
    Ok(Statement {
        allow,
        actions: actions.iter().map(|a| a.to_ascii_lowercase()).collect(),
        resources,
        conditions,
        iam,
    })
}

fn parse_conditions(grammar: Grammar, value: &Value) -> Result<Vec<Condition>, PolicyError> {
    let ops = value
        .as_object()
        .ok_or_else(|| invalid("a condition block is an object"))?;
    let mut out = Vec::new();
    for (op, keys) in ops {
        let keys = keys
            .as_object()
            .ok_or_else(|| invalid(format!("condition {op}: expected an object")))?;
        for (key, values) in keys {
            let values = strings(values, key)?;
            out.push(match grammar {
                Grammar::Ram => ram_condition(op, key, values)?,
                Grammar::Cam => cam_condition(op, key, values)?,
                Grammar::Iam => return Err(invalid("IAM conditions are parsed apart")),
            });
        }
    }
    Ok(out)
}

fn ram_condition(op: &str, key: &str, values: Vec<String>) -> Result<Condition, PolicyError> {
    let like = match op {
        "StringEquals" => false,
        "StringLike" => true,
        _ => return Err(invalid(format!("unsupported RAM condition operator {op}"))),
    };
    let (scope, tag) = if let Some(tag) = key.strip_prefix("acs:RequestTag/") {
        (Scope::Request, tag)
    } else if let Some(tag) = key.strip_prefix("acs:ResourceTag/") {
        (Scope::Resource, tag)
    } else {
        return Err(invalid(format!("unsupported RAM condition key {key}")));
    };
    Ok(Condition {
        scope,
        test: Test::KeyIn {
            key: tag.to_string(),
            values,
            like,
        },
    })
}

fn cam_condition(op: &str, key: &str, values: Vec<String>) -> Result<Condition, PolicyError> {
    if !matches!(op, "for_any_value:string_equal" | "string_equal") {
        return Err(invalid(format!("unsupported CAM condition operator {op}")));
    }
    let scope = match key {
        "qcs:request_tag" => Scope::Request,
        "qcs:resource_tag" => Scope::Resource,
        _ => return Err(invalid(format!("unsupported CAM condition key {key}"))),
    };
    let pairs = values
        .iter()
        .map(|v| {
            v.split_once('&')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| invalid(format!("{key}: {v:?} is not key&value")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Condition {
        scope,
        test: Test::AnyPair(pairs),
    })
}

/// `*` any run of characters, `?` one character.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The outcome of a policy for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows the call.
    ImplicitDeny,
    /// A `Deny` statement matches.
    ExplicitDeny,
}

/// What a policy is evaluated on: one call as the front end received it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// `service:Action`, e.g. `ecs:RunInstances`, `cvm:RunInstances`.
    pub action: String,
    pub region: String,
    /// Tags a creating call carries (`Tag.N`, `Tags`, `TagSpecification`).
    pub request_tags: Tags,
    /// Ids of the existing resources the call acts on.
    pub targets: Vec<String>,
}

impl Call {
    /// The service part of the action.
    fn service(&self) -> &str {
        self.action.split(':').next().unwrap_or_default()
    }

    /// The resource names the call is about: one per target, else the service's wildcard.
    fn arns(&self, grammar: Grammar, model: &Model) -> Vec<String> {
        let name = |kind: &str, id: &str| match grammar {
            Grammar::Ram => format!(
                "acs:{}:{}:{ALIYUN_ACCOUNT}:{kind}/{id}",
                self.service(),
                self.region
            ),
            Grammar::Cam => format!(
                "qcs::{}:{}:uin/{}:{kind}/{id}",
                self.service(),
                self.region,
                crate::tencent::ACCOUNT_UIN
            ),
            Grammar::Iam => format!(
                "arn:aws:{}:{}:{}:{kind}/{id}",
                self.service(),
                self.region,
                crate::aws::ACCOUNT_ID
            ),
        };
        let mut arns: Vec<String> = self
            .targets
            .iter()
            .filter_map(|id| Some(name(kind_name(model, id)?, id)))
            .collect();
        if arns.is_empty() {
            arns.push(name("*", "*").trim_end_matches("/*").to_string());
        }
        arns
    }

    fn satisfies(&self, condition: &Condition, model: &Model) -> bool {
        match condition.scope {
            Scope::Request => condition.test.holds(&self.request_tags),
            Scope::Resource => {
                if self.targets.is_empty() {
                    return false;
                }
                // Resources that do not exist (any more) do not decide: the call answers
                // NotFound, as an idempotent delete expects, not Forbidden.
                self.targets
                    .iter()
                    .filter_map(|id| resource_tags(model, id))
                    .all(|tags| condition.test.holds(tags))
            }
        }
    }
}

/// The emulated Alibaba Cloud account id, in RAM resource names.
pub const ALIYUN_ACCOUNT: &str = "1000000000000001";

fn resource_tags<'m>(model: &'m Model, id: &str) -> Option<&'m Tags> {
    model
        .instances
        .get(id)
        .map(|r| &r.tags)
        .or_else(|| model.eips.get(id).map(|r| &r.tags))
        .or_else(|| model.security_groups.get(id).map(|r| &r.tags))
        .or_else(|| model.subnets.get(id).map(|r| &r.tags))
        .or_else(|| model.vpcs.get(id).map(|r| &r.tags))
}

fn kind_name(model: &Model, id: &str) -> Option<&'static str> {
    if model.instances.contains_key(id) {
        Some("instance")
    } else if model.eips.contains_key(id) {
        Some("eip")
    } else if model.security_groups.contains_key(id) {
        Some("securitygroup")
    } else if model.subnets.contains_key(id) {
        Some("vswitch")
    } else if model.vpcs.contains_key(id) {
        Some("vpc")
    } else {
        None
    }
}

/// The policy view of an Alibaba Cloud RPC call (`ecs` for the ECS version, else `vpc`).
pub fn aliyun_call(service: &str, action: &str, params: &[(String, String)]) -> Call {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // `Name.N` parameters, in index order.
    let indexed = |prefix: &str| {
        let mut items: Vec<(u32, String)> = params
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(prefix)?.strip_prefix('.')?.parse().ok()?;
                Some((n, v.clone()))
            })
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    };
    let mut request_tags = Tags::new();
    for (k, key) in params {
        if let Some(n) = k
            .strip_prefix("Tag.")
            .and_then(|rest| rest.strip_suffix(".Key"))
        {
            let value = get(&format!("Tag.{n}.Value")).unwrap_or_default();
            request_tags.insert(key.clone(), value);
        }
    }
    let mut targets = Vec::new();
    let mut one = |name: &str| targets.extend(get(name));
    match action {
        "DeleteVpc" => one("VpcId"),
        "DeleteVSwitch" => one("VSwitchId"),
        "AssociateEipAddress" => {
            one("AllocationId");
            one("InstanceId");
        }
        "UnassociateEipAddress" | "ModifyEipAddressAttribute" | "ReleaseEipAddress" => {
            one("AllocationId")
        }
        "DeleteSecurityGroup" | "AuthorizeSecurityGroup" | "RevokeSecurityGroup" => {
            one("SecurityGroupId")
        }
        "StartInstance" | "StopInstance" | "RebootInstance" | "DeleteInstance" => one("InstanceId"),
        "JoinSecurityGroup" | "LeaveSecurityGroup" => {
            one("InstanceId");
            one("SecurityGroupId");
        }
        "DeleteInstances" | "StartInstances" | "StopInstances" => {
            targets.extend(indexed("InstanceId"))
        }
        "TagResources" | "UntagResources" | "UnTagResources" => {
            targets.extend(indexed("ResourceId"))
        }
        _ => {}
    }
    Call {
        action: format!("{service}:{action}"),
        region: get("RegionId").unwrap_or_default(),
        request_tags,
        targets,
    }
}

/// The policy view of a Tencent Cloud API 3.0 call (`service` as in the credential scope).
pub fn tencent_call(service: &str, action: &str, region: &str, body: &Map<String, Value>) -> Call {
    let tag_list = |v: Option<&Value>| -> Vec<(String, String)> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t.get("Key")?.as_str()?.to_string(),
                    t.get("Value")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ))
            })
            .collect()
    };
    let mut request_tags: Tags = tag_list(body.get("Tags")).into_iter().collect();
    for spec in body
        .get("TagSpecification")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        request_tags.extend(tag_list(spec.get("Tags")));
    }
    let one = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(String::from)
            .into_iter()
            .collect::<Vec<_>>()
    };
    let many = |name: &str| {
        body.get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let targets = match action {
        "DeleteVpc" => one("VpcId"),
        "DeleteSubnet" => one("SubnetId"),
        "DeleteSecurityGroup" | "CreateSecurityGroupPolicies" | "DeleteSecurityGroupPolicies" => {
            one("SecurityGroupId")
        }
        "StartInstances" | "StopInstances" | "RebootInstances" | "TerminateInstances" => {
            many("InstanceIds")
        }
        "AssociateSecurityGroups" | "DisassociateSecurityGroups" => {
            [many("InstanceIds"), many("SecurityGroupIds")].concat()
        }
        "AssociateAddress" => [one("AddressId"), one("InstanceId")].concat(),
        "DisassociateAddress" => one("AddressId"),
        "ReleaseAddresses" | "ModifyAddressesBandwidth" => many("AddressIds"),
        // `qcs::cvm:<region>:uin/<uin>:instance/<id>`: the id is the last segment.
        "TagResources" | "UnTagResources" => many("ResourceList")
            .iter()
            .filter_map(|r| r.rsplit('/').next().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    Call {
        action: format!("{service}:{action}"),
        region: region.to_string(),
        request_tags,
        targets,
    }
}

/// Actions the cloud serves without any authorization (CAM: `sts:GetCallerIdentity`).
fn exempt(action: &str) -> bool {
    action.eq_ignore_ascii_case("sts:GetCallerIdentity")
}

/// The policies attached to access keys.
#[derive(Debug, Default)]
pub struct Policies {
    by_key: HashMap<(String, Grammar), Policy>,
}

impl Policies {
    /// Attaches `policy` to the key, replacing its policy of the same grammar.
    pub fn attach(&mut self, access_key_id: &str, policy: Policy) {
        self.by_key
            .insert((access_key_id.to_string(), policy.grammar), policy);
    }

    /// Detaches every policy of the key (it may call everything again).
    pub fn detach(&mut self, access_key_id: &str) {
        self.by_key.retain(|(k, _), _| k != access_key_id);
    }

    /// Every attached document, by key and grammar.
    pub fn documents(&self) -> Value {
        let mut out = Map::new();
        for ((key, grammar), policy) in &self.by_key {
            let entry = out
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(obj) = entry.as_object_mut() {
                let name = match grammar {
                    Grammar::Ram => "ram",
                    Grammar::Cam => "cam",
                    Grammar::Iam => "iam",
                };
                obj.insert(name.into(), policy.document.clone());
            }
        }
        Value::Object(out)
    }
}

/// A call a policy refuses: what the front end names in its error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub action: String,
    pub resource: String,
    pub explicit: bool,
}

impl EmulatorState {
    /// Attaches a policy document to an access key (see [`Policies::attach`]).
    pub fn attach_policy(
        &self,
        access_key_id: &str,
        document: Value,
    ) -> Result<Policy, PolicyError> {
        let policy = Policy::parse(document)?;
        self.policies.write().attach(access_key_id, policy.clone());
        Ok(policy)
    }

    /// Detaches every policy of an access key.
    pub fn detach_policies(&self, access_key_id: &str) {
        self.policies.write().detach(access_key_id);
    }

    /// Every attached policy document.
    pub fn policy_documents(&self) -> Value {
        self.policies.read().documents()
    }

    /// Whether the key may make the call under its policy of `grammar` (none: it may).
    pub(crate) fn authorize(
        &self,
        access_key_id: &str,
        grammar: Grammar,
        call: &Call,
    ) -> Result<(), Denied> {
        if exempt(&call.action) {
            return Ok(());
        }
        let policies = self.policies.read();
        let Some(policy) = policies.by_key.get(&(access_key_id.to_string(), grammar)) else {
            return Ok(());
        };
        let model = self.model.read();
        let decision = policy.decide(call, &model);
        if decision == Decision::Allow {
            return Ok(());
        }
        Err(Denied {
            action: call.action.clone(),
            resource: call.arns(grammar, &model).join(","),
            explicit: decision == Decision::ExplicitDeny,
        })
    }
}

// ---- AWS IAM ----

/// A condition key IAM evaluates for the emulated AWS calls.
#[derive(Clone, Debug, PartialEq, Eq)]
enum IamKey {
    /// `aws:RequestTag/<key>`: a tag the call sets.
    RequestTag(String),
    /// `aws:ResourceTag/<key>` or `ec2:ResourceTag/<key>`: a tag of the existing resource.
    ResourceTag(String),
    /// `aws:TagKeys`: the keys of the tags the call sets (multi-valued).
    TagKeys,
    /// `ec2:CreateAction`: the creating action a tag-on-create `ec2:CreateTags` belongs to.
    CreateAction,
    /// `aws:RequestedRegion` or `ec2:Region`.
    Region,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IamOp {
    /// `String(Not)Equals` (`like: false`) or `String(Not)Like`.
    Str { like: bool, negate: bool },
    /// `Null`: whether the key is absent (`true`) or present (`false`).
    Null(bool),
}

/// How a condition treats a multi-valued key (`ForAllValues:` / `ForAnyValue:` prefixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Single,
    ForAllValues,
    ForAnyValue,
}

#[derive(Clone, Debug)]
struct IamCondition {
    key: IamKey,
    op: IamOp,
    set: SetOp,
    /// `...IfExists`: an absent key satisfies the condition.
    if_exists: bool,
    values: Vec<String>,
}

fn iam_key(key: &str) -> Result<IamKey, PolicyError> {
    let lower = key.to_ascii_lowercase();
    let tag = |prefix: &str| {
        lower
            .starts_with(prefix)
            .then(|| key[prefix.len()..].to_string())
    };
    if let Some(k) = tag("aws:requesttag/") {
        return Ok(IamKey::RequestTag(k));
    }
    if let Some(k) = tag("aws:resourcetag/").or_else(|| tag("ec2:resourcetag/")) {
        return Ok(IamKey::ResourceTag(k));
    }
    match lower.as_str() {
        "aws:tagkeys" => Ok(IamKey::TagKeys),
        "ec2:createaction" => Ok(IamKey::CreateAction),
        "aws:requestedregion" | "ec2:region" => Ok(IamKey::Region),
        _ => Err(invalid(format!("unsupported IAM condition key {key}"))),
    }
}

fn parse_iam_conditions(value: &Value) -> Result<Vec<IamCondition>, PolicyError> {
    let ops = value
        .as_object()
        .ok_or_else(|| invalid("a condition block is an object"))?;
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let (set, rest) = if let Some(r) = op_name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, r)
        } else if let Some(r) = op_name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, r)
        } else {
            (SetOp::Single, op_name.as_str())
        };
        let (rest, if_exists) = match rest.strip_suffix("IfExists") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let op = match rest {
            "StringEquals" => IamOp::Str {
                like: false,
                negate: false,
            },
            "StringNotEquals" => IamOp::Str {
                like: false,
                negate: true,
            },
            "StringLike" => IamOp::Str {
                like: true,
                negate: false,
            },
            "StringNotLike" => IamOp::Str {
                like: true,
                negate: true,
            },
            "Null" if set == SetOp::Single && !if_exists => IamOp::Null(false),
            _ => {
                return Err(invalid(format!(
                    "unsupported IAM condition operator {op_name}"
                )));
            }
        };
        let keys = keys
            .as_object()
            .ok_or_else(|| invalid(format!("condition {op_name}: expected an object")))?;
        for (key, values) in keys {
            let values = match values {
                Value::Bool(b) => vec![b.to_string()],
                other => strings(other, key)?,
            };
            let op = match op {
                IamOp::Null(_) => match values.as_slice() {
                    [v] if v == "true" || v == "false" => IamOp::Null(v == "true"),
                    _ => return Err(invalid(format!("Null {key}: expected true or false"))),
                },
                other => other,
            };
            out.push(IamCondition {
                key: iam_key(key)?,
                op,
                set,
                if_exists,
                values,
            });
        }
    }
    Ok(out)
}

/// One resource an IAM-authorized call acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamResource {
    /// `arn:aws:ec2:<region>:<account>:instance/<id>`, `.../instance/*` for one being created,
    /// or `*` for actions without resource-level permissions.
    pub arn: String,
    /// The tags of an existing resource (`None` for one being created).
    pub tags: Option<Tags>,
}

/// What an IAM policy is evaluated on: one call, with every resource it acts on; each must be
/// allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IamCall {
    /// `ec2:RunInstances`.
    pub action: String,
    pub region: String,
    /// The tags the call sets, if it sets any.
    pub request_tags: Option<Tags>,
    pub resources: Vec<IamResource>,
    /// For the `ec2:CreateTags` of a tag-on-create: the creating action.
    pub create_action: Option<String>,
}

impl IamCall {
    fn values(&self, key: &IamKey, resource: &IamResource) -> Vec<String> {
        match key {
            IamKey::RequestTag(k) => self
                .request_tags
                .as_ref()
                .and_then(|t| t.get(k))
                .cloned()
                .into_iter()
                .collect(),
            IamKey::ResourceTag(k) => resource
                .tags
                .as_ref()
                .and_then(|t| t.get(k))
                .cloned()
                .into_iter()
                .collect(),
            IamKey::TagKeys => self
                .request_tags
                .iter()
                .flat_map(|t| t.keys().cloned())
                .collect(),
            IamKey::CreateAction => self.create_action.clone().into_iter().collect(),
            IamKey::Region => vec![self.region.clone()],
        }
    }

    fn satisfies(&self, c: &IamCondition, resource: &IamResource) -> bool {
        let values = self.values(&c.key, resource);
        let (like, negate) = match c.op {
            IamOp::Null(absent) => return values.is_empty() == absent,
            IamOp::Str { like, negate } => (like, negate),
        };
        let one = |v: &String| {
            let hit = c
                .values
                .iter()
                .any(|p| if like { glob(p, v) } else { p == v });
            hit != negate
        };
        match c.set {
            SetOp::ForAllValues => values.iter().all(one),
            SetOp::ForAnyValue => values.iter().any(one),
            SetOp::Single if values.is_empty() => c.if_exists || negate,
            SetOp::Single => values.iter().all(one),
        }
    }
}

impl Policy {
    /// IAM evaluation: every resource of the call needs an `Allow` statement matching the
    /// action, the resource and the conditions, and none may match a `Deny`. Answers the
    /// decision and, when denied, the resource that was refused.
    pub fn decide_iam(&self, call: &IamCall) -> (Decision, Option<String>) {
        let action = call.action.to_ascii_lowercase();
        let mut refused = None;
        for r in &call.resources {
            let mut allowed = false;
            for s in &self.statements {
                let matches = s.actions.iter().any(|p| glob(p, &action))
                    && s.resources.iter().any(|p| glob(p, &r.arn))
                    && s.iam.iter().all(|c| call.satisfies(c, r));
                if matches && !s.allow {
                    return (Decision::ExplicitDeny, Some(r.arn.clone()));
                }
                allowed |= matches;
            }
            if !allowed && refused.is_none() {
                refused = Some(r.arn.clone());
            }
        }
        match refused {
            Some(arn) => (Decision::ImplicitDeny, Some(arn)),
            None => (Decision::Allow, None),
        }
    }
}

impl EmulatorState {
    /// Whether the key may make the AWS call under its IAM policy (none: it may).
    pub(crate) fn authorize_iam(&self, access_key_id: &str, call: &IamCall) -> Result<(), Denied> {
        let policies = self.policies.read();
        let Some(policy) = policies
            .by_key
            .get(&(access_key_id.to_string(), Grammar::Iam))
        else {
            return Ok(());
        };
        match policy.decide_iam(call) {
            (Decision::Allow, _) => Ok(()),
            (decision, resource) => Err(Denied {
                action: call.action.clone(),
                resource: resource.unwrap_or_else(|| "*".into()),
                explicit: decision == Decision::ExplicitDeny,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSettings;
    use serde_json::json;

    fn shipped(name: &str) -> Policy {
        let path = format!(
            "{}/../../deploy/policies/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        Policy::parse(serde_json::from_str(&text).unwrap()).unwrap()
    }

    fn tagged(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn vpc(model: &mut Model, region: &str, tags: Tags) -> String {
        model
            .create_vpc(
                crate::model::CreateVpc {
                    region: region.into(),
                    cidr_block: "172.16.0.0/12".into(),
                    name: String::new(),
                    description: String::new(),
                    tags,
                },
                None,
            )
            .unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob("ecs:describe*", "ecs:describeinstances"));
        assert!(glob("*", "anything"));
        assert!(glob(
            "acs:ecs:*:*:instance/*",
            "acs:ecs:cn-hangzhou:1:instance/i-1"
        ));
        assert!(!glob("ecs:run?", "ecs:runinstances"));
        assert!(!glob("vpc:*", "ecs:runinstances"));
    }

    #[test]
    fn grammars_are_told_apart_and_checked() {
        assert_eq!(shipped("aliyun-ram-policy.json").grammar, Grammar::Ram);
        assert_eq!(shipped("tencent-cam-policy.json").grammar, Grammar::Cam);
        assert_eq!(shipped("aws-iam-policy.json").grammar, Grammar::Iam);
        for bad in [
            json!([]),
            json!({"Version": "2", "Statement": []}),
            json!({"Version": "1", "Statement": [{"Effect": "Maybe", "Action": "ecs:A", "Resource": "*"}]}),
            json!({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "RunInstances", "Resource": "*"}]}),
            json!({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "ecs:A", "Resource": "*",
                "Condition": {"IpAddress": {"acs:SourceIp": "1.2.3.4"}}}]}),
            json!({"version": "2.0", "statement": [{"effect": "allow", "action": ["cvm:A"], "resource": "*",
                "condition": {"for_any_value:string_equal": {"qcs:request_tag": ["no-ampersand"]}}}]}),
        ] {
            assert!(Policy::parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ram_actions_and_tag_conditions() {
        let mut model = Model::new(ModelSettings::default());
        let policy = shipped("aliyun-ram-policy.json");
        let ours = tagged(&[("createdBy", "multicloud-ecs")]);
        let run = |tags: Tags| Call {
            action: "ecs:RunInstances".into(),
            region: "cn-hangzhou".into(),
            request_tags: tags,
            targets: vec![],
        };
        assert_eq!(policy.decide(&run(ours.clone()), &model), Decision::Allow);
        assert_eq!(
            policy.decide(&run(tagged(&[("createdBy", "someone")])), &model),
            Decision::ImplicitDeny
        );
        assert_eq!(
            policy.decide(&run(Tags::new()), &model),
            Decision::ImplicitDeny
        );
        // Not in the policy at all.
        let stop = Call {
            action: "ecs:StopInstance".into(),
            ..run(ours.clone())
        };
        assert_eq!(policy.decide(&stop, &model), Decision::ImplicitDeny);
        // Resource tags: ours may be deleted, another's may not; a gone one answers NotFound.
        let ours_id = vpc(&mut model, "cn-hangzhou", ours.clone());
        let other_id = vpc(&mut model, "cn-hangzhou", Tags::new());
        let delete = |id: &str| {
            aliyun_call(
                "vpc",
                "DeleteVpc",
                &[
                    ("RegionId".into(), "cn-hangzhou".into()),
                    ("VpcId".into(), id.into()),
                ],
            )
        };
        assert_eq!(policy.decide(&delete(&ours_id), &model), Decision::Allow);
        assert_eq!(
            policy.decide(&delete(&other_id), &model),
            Decision::ImplicitDeny
        );
        assert_eq!(policy.decide(&delete("vpc-gone"), &model), Decision::Allow);
        // Explicit deny wins.
        let mut doc = policy.document.clone();
        doc["Statement"].as_array_mut().unwrap().push(
            json!({"Effect": "Deny", "Action": "vpc:DeleteVpc", "Resource": format!("acs:vpc:*:*:vpc/{ours_id}")}),
        );
        let denying = Policy::parse(doc).unwrap();
        assert_eq!(
            denying.decide(&delete(&ours_id), &model),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn cam_request_and_resource_tags() {
        let mut model = Model::new(ModelSettings::default());
        let policy = shipped("tencent-cam-policy.json");
        let body = json!({
            "InstanceType": "S5.MEDIUM8",
            "TagSpecification": [{"ResourceType": "instance",
                "Tags": [{"Key": "createdBy", "Value": "multicloud-ecs"}]}],
        });
        let run = tencent_call(
            "cvm",
            "RunInstances",
            "ap-guangzhou",
            body.as_object().unwrap(),
        );
        assert_eq!(
            run.request_tags.get("createdBy").map(String::as_str),
            Some("multicloud-ecs")
        );
        assert_eq!(policy.decide(&run, &model), Decision::Allow);
        let untagged = tencent_call("cvm", "RunInstances", "ap-guangzhou", &Map::new());
        assert_eq!(policy.decide(&untagged, &model), Decision::ImplicitDeny);
        let other = vpc(
            &mut model,
            "cn-hangzhou",
            tagged(&[("createdBy", "console")]),
        );
        let tag = tencent_call(
            "tag",
            "TagResources",
            "ap-guangzhou",
            json!({"ResourceList": [format!("qcs::vpc:ap-guangzhou:uin/1:vpc/{other}")]})
                .as_object()
                .unwrap(),
        );
        assert_eq!(tag.targets, [other]);
        assert_eq!(policy.decide(&tag, &model), Decision::ImplicitDeny);
        let read = tencent_call("vpc", "DescribeVpcs", "ap-guangzhou", &Map::new());
        assert_eq!(policy.decide(&read, &model), Decision::Allow);
    }

    #[test]
    fn state_attaches_per_key_and_grammar() {
        let state = EmulatorState::new(&crate::EmulatorConfig::default());
        let call = Call {
            action: "ecs:StopInstance".into(),
            ..Call::default()
        };
        assert!(state.authorize("k", Grammar::Ram, &call).is_ok());
        state
            .attach_policy("k", shipped("aliyun-ram-policy.json").document)
            .unwrap();
        let denied = state.authorize("k", Grammar::Ram, &call).unwrap_err();
        assert_eq!(denied.action, "ecs:StopInstance");
        assert!(!denied.explicit);
        // Another key, and the key's Tencent calls, are not governed by this RAM policy.
        assert!(state.authorize("other", Grammar::Ram, &call).is_ok());
        assert!(state.authorize("k", Grammar::Cam, &call).is_ok());
        let whoami = Call {
            action: "sts:GetCallerIdentity".into(),
            ..Call::default()
        };
        state
            .attach_policy("k", shipped("tencent-cam-policy.json").document)
            .unwrap();
        assert!(state.authorize("k", Grammar::Cam, &whoami).is_ok());
        state.detach_policies("k");
        assert!(state.authorize("k", Grammar::Ram, &call).is_ok());
    }
    fn iam(arn: &str, tags: Option<&[(&str, &str)]>) -> IamResource {
        IamResource {
            arn: arn.into(),
            tags: tags.map(tagged),
        }
    }

    #[test]
    fn iam_evaluates_every_resource_of_a_call() {
        let policy = shipped("aws-iam-policy.json");
        let ours: &[(&str, &str)] = &[("createdBy", "multicloud-ecs")];
        let arn = |kind: &str, id: &str| format!("arn:aws:ec2:us-east-1:123456789012:{kind}/{id}");
        let run = |subnet_tags: &[(&str, &str)], request: Option<Tags>| IamCall {
            action: "ec2:RunInstances".into(),
            region: "us-east-1".into(),
            request_tags: request,
            resources: vec![
                iam(&arn("instance", "*"), None),
                iam(&arn("volume", "*"), None),
                iam(&arn("network-interface", "*"), None),
                iam(&arn("subnet", "subnet-1"), Some(subnet_tags)),
                iam(&arn("security-group", "sg-1"), Some(ours)),
                iam("arn:aws:ec2:us-east-1::image/ami-1", Some(&[])),
            ],
            create_action: None,
        };
        assert_eq!(
            policy.decide_iam(&run(ours, Some(tagged(ours)))).0,
            Decision::Allow
        );
        // Without the operator's tags, or into someone else's subnet: refused, naming the ARN.
        let (decision, refused) = policy.decide_iam(&run(ours, None));
        assert_eq!(decision, Decision::ImplicitDeny);
        assert_eq!(refused.as_deref(), Some(arn("instance", "*").as_str()));
        let (_, refused) = policy.decide_iam(&run(&[], Some(tagged(ours))));
        assert_eq!(refused.as_deref(), Some(arn("subnet", "subnet-1").as_str()));
        // Tag-on-create needs ec2:CreateTags with the creating action.
        let tag_on_create = IamCall {
            action: "ec2:CreateTags".into(),
            region: "us-east-1".into(),
            request_tags: Some(tagged(ours)),
            resources: vec![iam(&arn("instance", "*"), None)],
            create_action: Some("RunInstances".into()),
        };
        assert_eq!(policy.decide_iam(&tag_on_create).0, Decision::Allow);
        let retag = IamCall {
            create_action: None,
            resources: vec![iam(&arn("vpc", "vpc-foreign"), Some(&[]))],
            ..tag_on_create.clone()
        };
        assert_eq!(policy.decide_iam(&retag).0, Decision::ImplicitDeny);
        let describe = IamCall {
            action: "ec2:DescribeInstances".into(),
            resources: vec![iam("*", None)],
            ..IamCall::default()
        };
        assert_eq!(policy.decide_iam(&describe).0, Decision::Allow);
        // An explicit deny wins; StringLike and Null work; unknown keys are refused.
        let denying = Policy::parse(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {"Sid": "NoProd", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*",
             "Condition": {"StringLike": {"ec2:ResourceTag/env": "prod*"}}},
        ]}))
        .unwrap();
        let terminate = |env: &str| IamCall {
            action: "ec2:TerminateInstances".into(),
            resources: vec![iam(&arn("instance", "i-1"), Some(&[("env", env)]))],
            ..IamCall::default()
        };
        assert_eq!(
            denying.decide_iam(&terminate("production")).0,
            Decision::ExplicitDeny
        );
        assert_eq!(denying.decide_iam(&terminate("dev")).0, Decision::Allow);
        let single = Policy::parse(json!({"Version": "2012-10-17", "Statement":
            {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*",
             "Condition": {"Null": {"aws:RequestTag/owner": "false"}}}}))
        .unwrap();
        let with_owner = IamCall {
            action: "ec2:RunInstances".into(),
            request_tags: Some(tagged(&[("owner", "x")])),
            resources: vec![iam("*", None)],
            ..IamCall::default()
        };
        assert_eq!(single.decide_iam(&with_owner).0, Decision::Allow);
        let without = IamCall {
            request_tags: None,
            ..with_owner
        };
        assert_eq!(single.decide_iam(&without).0, Decision::ImplicitDeny);
        for bad in [
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:A", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}}}]}),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotAction": "ec2:A", "Resource": "*"}]}),
        ] {
            assert!(Policy::parse(bad.clone()).is_err(), "{bad}");
        }
        // An IAM policy governs only AWS calls.
        let state = EmulatorState::new(&crate::EmulatorConfig::default());
        state.attach_policy("k", policy.document.clone()).unwrap();
        assert!(state.authorize_iam("k", &run(ours, None)).is_err());
        assert!(state.authorize_iam("other", &run(ours, None)).is_ok());
        let stop = Call {
            action: "ecs:StopInstance".into(),
            ..Call::default()
        };
        assert!(state.authorize("k", Grammar::Ram, &stop).is_ok());
        assert!(state.policy_documents()["k"]["iam"].is_object());
    }

    /// The shipped policy's route-table claim: a new VPC's main route table (untagged) may be
    /// tagged with the operator's tags, then routed by resource tag; a table someone else
    /// tagged may not be claimed, and no table is routed before it is claimed.
    #[test]
    fn iam_route_tables_are_claimed_before_they_are_routed() {
        let policy = shipped("aws-iam-policy.json");
        let ours: &[(&str, &str)] = &[("createdBy", "multicloud-ecs"), ("Owner", "u")];
        let table = "arn:aws:ec2:us-east-1:123456789012:route-table/rtb-1";
        let claim = |table_tags: &[(&str, &str)], request: &[(&str, &str)]| IamCall {
            action: "ec2:CreateTags".into(),
            region: "us-east-1".into(),
            request_tags: Some(tagged(request)),
            resources: vec![iam(table, Some(table_tags))],
            create_action: None,
        };
        assert_eq!(policy.decide_iam(&claim(&[], ours)).0, Decision::Allow);
        assert_eq!(
            policy.decide_iam(&claim(&[("Name", "main")], ours)).0,
            Decision::Allow
        );
        assert_eq!(
            policy.decide_iam(&claim(&[], &[("Owner", "u")])).0,
            Decision::ImplicitDeny
        );
        let foreign: &[(&str, &str)] = &[("createdBy", "console")];
        assert_eq!(
            policy.decide_iam(&claim(foreign, ours)).0,
            Decision::ImplicitDeny
        );
        // Re-tagging a claimed table is a change of the operator's resource.
        assert_eq!(policy.decide_iam(&claim(ours, ours)).0, Decision::Allow);
        let route = |action: &str, table_tags: &[(&str, &str)]| IamCall {
            action: action.into(),
            region: "us-east-1".into(),
            request_tags: None,
            resources: vec![iam(table, Some(table_tags))],
            create_action: None,
        };
        for action in ["ec2:CreateRoute", "ec2:ReplaceRoute"] {
            assert_eq!(
                policy.decide_iam(&route(action, &[])).0,
                Decision::ImplicitDeny
            );
            assert_eq!(
                policy.decide_iam(&route(action, foreign)).0,
                Decision::ImplicitDeny
            );
            assert_eq!(policy.decide_iam(&route(action, ours)).0, Decision::Allow);
        }
        assert_eq!(
            policy.decide_iam(&route("ec2:DeleteRoute", ours)).0,
            Decision::ImplicitDeny
        );
    }
}
