//! Request parameters as the EC2 Query protocol sends them: a form body (or query string) of
//! flattened names, `Filter.1.Name`, `Filter.1.Value.1`, `InstanceId.1`,
//! `TagSpecification.1.Tag.1.Key`, `IpPermissions.1.IpRanges.1.CidrIp`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;

use super::{ApiError, ApiResult};
use crate::model::Tags;
use crate::policy::glob;

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub(super) fn percent_decode(input: &str, plus_is_space: bool) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decoded `k=v&k=v` pairs, in wire order.
pub(super) fn parse_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Some(pairs)
}

/// Parameters by flattened name (a sub-structure's view strips its prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Params(pub BTreeMap<String, String>);

/// One `Filter.N`: a name and its values (`*` and `?` wildcards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Filter {
    /// Whether one of the filter's values matches `actual`.
    pub fn matches(&self, actual: &str) -> bool {
        self.values.iter().any(|v| glob(v, actual))
    }
}

impl Params {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        Self(pairs.iter().cloned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter: absent or empty is `MissingParameter`.
    pub fn req(&self, name: &str) -> ApiResult<&str> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing(name))
    }

    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_value(name, v)),
        }
    }

    pub fn int(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_value(name, v)),
        }
    }

    /// The top-level names (before the first dot), to refuse unknown parameters.
    pub fn top_level(&self) -> BTreeSet<&str> {
        self.0
            .keys()
            .map(|k| k.split('.').next().unwrap_or(k))
            .collect()
    }

    /// The entries `<prefix>.<N>` or `<prefix>.<N>.<rest>`, grouped by N in index order.
    fn indexed(&self, prefix: &str) -> BTreeMap<u32, Params> {
        let mut out: BTreeMap<u32, Params> = BTreeMap::new();
        let dotted = format!("{prefix}.");
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&dotted) else {
                continue;
            };
            let (n, tail) = rest.split_once('.').unwrap_or((rest, ""));
            let Ok(n) = n.parse::<u32>() else {
                continue;
            };
            out.entry(n)
                .or_default()
                .0
                .insert(tail.to_string(), v.clone());
        }
        out
    }

    /// `<prefix>.N` values, in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indexed(prefix)
            .into_values()
            .filter_map(|p| p.0.get("").cloned())
            .collect()
    }

    /// `<prefix>.N.*` structures, in index order.
    pub fn groups(&self, prefix: &str) -> Vec<Params> {
        self.indexed(prefix).into_values().collect()
    }

    /// `<name>.*`: the sub-structure `name`.
    pub fn sub(&self, name: &str) -> Params {
        let dotted = format!("{name}.");
        Params(
            self.0
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&dotted)?.to_string(), v.clone())))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> ApiResult<Vec<Filter>> {
        self.groups("Filter")
            .into_iter()
            .map(|f| {
                Ok(Filter {
                    name: f.req("Name")?.to_string(),
                    values: f.list("Value"),
                })
            })
            .collect()
    }

    /// `<prefix>.N.Key` / `<prefix>.N.Value` (a missing value is empty).
    pub fn tags(&self, prefix: &str) -> ApiResult<Tags> {
        let mut tags = Tags::new();
        for t in self.groups(prefix) {
            let key = t.req("Key")?;
            check_tag(key, t.get("Value").unwrap_or_default())?;
            tags.insert(
                key.to_string(),
                t.get("Value").unwrap_or_default().to_string(),
            );
        }
        Ok(tags)
    }

    /// `TagSpecification.N.{ResourceType, Tag.M.*}` by resource type; types outside `allowed`
    /// are refused as the cloud refuses them.
    pub fn tag_specs(&self, allowed: &[&str]) -> ApiResult<BTreeMap<String, Tags>> {
        let mut out: BTreeMap<String, Tags> = BTreeMap::new();
        for spec in self.groups("TagSpecification") {
            let kind = spec.req("ResourceType")?;
            if !allowed.contains(&kind) {
                return Err(ApiError::bad(
                    "InvalidParameterValue",
                    format!("'{kind}' is not a valid taggable resource type for this operation."),
                ));
            }
            out.entry(kind.to_string())
                .or_default()
                .extend(spec.tags("Tag")?);
        }
        Ok(out)
    }

    /// `DryRun=true`.
    pub fn dry_run(&self) -> ApiResult<bool> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }
}

/// Tag keys and values as EC2 takes them: keys of 1..128 characters not starting with `aws:`,
/// values up to 256.
pub(super) fn check_tag(key: &str, value: &str) -> ApiResult<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!("Tag key '{key}' must be 1 to 128 characters long."),
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    if value.chars().count() > 256 {
        return Err(ApiError::bad(
            "InvalidParameterValue",
            format!("Tag value for key '{key}' exceeds 256 characters."),
        ));
    }
    Ok(())
}

/// Whether `tags` pass a tag filter (`tag:<key>`, `tag-key`, `tag-value`); `None` when the
/// filter is not about tags.
pub(super) fn tag_filter(tags: &Tags, f: &Filter) -> Option<bool> {
    match f.name.as_str() {
        "tag-key" => Some(tags.keys().any(|k| f.matches(k))),
        "tag-value" => Some(tags.values().any(|v| f.matches(v))),
        name => {
            let key = name.strip_prefix("tag:")?;
            Some(tags.get(key).is_some_and(|v| f.matches(v)))
        }
    }
}

/// Applies filters to one resource: tags first, then `check` for the resource's own filter
/// names (`None`: a name the describe does not know → `InvalidParameterValue`).
pub(super) fn passes(
    tags: &Tags,
    filters: &[Filter],
    check: impl Fn(&Filter) -> Option<bool>,
) -> ApiResult<bool> {
    for f in filters {
        match tag_filter(tags, f).or_else(|| check(f)) {
            Some(true) => {}
            Some(false) => return Ok(false),
            None => {
                return Err(ApiError::bad(
                    "InvalidParameterValue",
                    format!("The filter '{}' is invalid", f.name),
                ));
            }
        }
    }
    Ok(true)
}

/// The tag keys tag filters read (the model hides tags set within the read lag).
pub(super) fn filter_tag_keys(filters: &[Filter]) -> Vec<(String, Option<String>)> {
    filters
        .iter()
        .filter_map(|f| f.name.strip_prefix("tag:"))
        .map(|k| (k.to_string(), None))
        .collect()
}

/// One page of `items` by `MaxResults` (within `min..=max`) and `NextToken`, and the token of
/// the next page.
pub(super) fn page<T>(
    items: Vec<T>,
    p: &Params,
    min: i64,
    max: i64,
) -> ApiResult<(Vec<T>, Option<String>)> {
    let limit = match p.int("MaxResults")? {
        None => None,
        Some(n) if (min..=max).contains(&n) => Some(usize::try_from(n).unwrap_or(1000)),
        Some(n) => {
            return Err(ApiError::bad(
                "InvalidParameterValue",
                format!(
                    "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}."
                ),
            ));
        }
    };
    let offset = match p.get("NextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => decode_token(token).ok_or_else(|| {
            ApiError::bad(
                "InvalidPaginationToken",
                format!("Invalid pagination token: {token}"),
            )
        })?,
    };
    if limit.is_none() && offset == 0 {
        return Ok((items, None));
    }
    let limit = limit.unwrap_or(usize::try_from(max).unwrap_or(1000));
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + limit < total).then(|| encode_token(offset + limit));
    Ok((page, next))
}

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("mce-page:{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("mce-page:")?
        .parse()
        .ok()
}
