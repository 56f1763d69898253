//! Request parameters as API 3.0 sends them: a JSON object whose fields are typed as the SDK
//! models type them. A value of the wrong JSON type is refused (`InvalidParameter`), as the
//! cloud does: the VPC describes take `Offset`/`Limit` as strings, CVM ones as integers.

use serde_json::{Map, Value};

use super::{ApiError, ApiResult};
use crate::model::Tags;

/// A JSON object of the request, with the dotted path of where it sits (for messages).
#[derive(Clone, Copy)]
pub(super) struct Body<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// One `{"Name", "Values"}` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

fn wrong_type(name: &str, expected: &str) -> ApiError {
    ApiError::invalid(format!(
        "The type of parameter `{name}` must be {expected}."
    ))
}

impl<'a> Body<'a> {
    pub fn root(map: &'a Map<String, Value>) -> Self {
        Self { map, path: "" }
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// The value of a field; `null` counts as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn str(&self, field: &str) -> ApiResult<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(&self.name(field), "String")),
        }
    }

    /// A required string: absent or empty is `MissingParameter`.
    pub fn req_str(&self, field: &str) -> ApiResult<&'a str> {
        self.str(field)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing(&self.name(field)))
    }

    pub fn int(&self, field: &str) -> ApiResult<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(&self.name(field), "Integer")),
            Some(_) => Err(wrong_type(&self.name(field), "Integer")),
        }
    }

    /// An integer the SDK model types as a String (`"20"`).
    pub fn int_str(&self, field: &str) -> ApiResult<Option<i64>> {
        match self.str(field)? {
            None | Some("") => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_value(&self.name(field), s)),
        }
    }

    pub fn bool(&self, field: &str) -> ApiResult<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(wrong_type(&self.name(field), "Boolean")),
        }
    }

    /// A list of strings (absent is empty).
    pub fn strs(&self, field: &str) -> ApiResult<Vec<&'a str>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| wrong_type(&self.name(field), "Array of String"))
                })
                .collect(),
            Some(_) => Err(wrong_type(&self.name(field), "Array of String")),
        }
    }

    pub fn obj(&self, field: &str, path: &'a str) -> ApiResult<Option<Body<'a>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Body { map, path })),
            Some(_) => Err(wrong_type(&self.name(field), "Object")),
        }
    }

    /// A list of objects (absent is empty).
    pub fn objs(&self, field: &str, path: &'a str) -> ApiResult<Vec<Body<'a>>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(map) => Ok(Body { map, path }),
                    _ => Err(wrong_type(&self.name(field), "Array of Object")),
                })
                .collect(),
            Some(_) => Err(wrong_type(&self.name(field), "Array of Object")),
        }
    }

    /// `[{"Key","Value"}]` (CVM, VPC).
    pub fn tags(&self, field: &str) -> ApiResult<Tags> {
        self.key_values(field, "Key", "Value")
    }

    /// Pairs of a list of objects, e.g. the Tag API's `[{"TagKey","TagValue"}]`.
    pub fn key_values(&self, field: &str, key: &str, value: &str) -> ApiResult<Tags> {
        let mut tags = Tags::new();
        for t in self.objs(field, field)? {
            let k = t.req_str(key)?;
            let v = t.str(value)?.unwrap_or_default();
            if tags.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ApiError::new(
                    "InvalidParameterValue.TagDuplicateKey",
                    format!("The tag key `{k}` is given twice."),
                ));
            }
        }
        Ok(tags)
    }

    /// `Filters`: at most 10, each with a `Name` and a list of `Values`.
    pub fn filters(&self) -> ApiResult<Vec<Filter>> {
        let filters = self.objs("Filters", "Filters")?;
        if filters.len() > 10 {
            return Err(ApiError::new(
                "InvalidParameterValue.LimitExceeded",
                "At most 10 filters are allowed.",
            ));
        }
        filters
            .iter()
            .map(|f| {
                Ok(Filter {
                    name: f.req_str("Name")?.to_string(),
                    values: f.strs("Values")?.into_iter().map(String::from).collect(),
                })
            })
            .collect()
    }
}

/// `Offset`/`Limit` (default 0 and 20, at most 100), typed as strings or integers.
pub(super) fn page(body: &Body, as_strings: bool, cvm: bool) -> ApiResult<(usize, usize)> {
    let (offset, limit) = if as_strings {
        (body.int_str("Offset")?, body.int_str("Limit")?)
    } else {
        (body.int("Offset")?, body.int("Limit")?)
    };
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(20);
    let (offset_code, limit_code) = if cvm {
        ("InvalidParameterValueOffset", "InvalidParameterValueLimit")
    } else {
        ("InvalidParameterValue.Range", "InvalidParameterValue.Range")
    };
    if offset < 0 {
        return Err(ApiError::new(
            offset_code,
            format!("Offset {offset} is out of range."),
        ));
    }
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            limit_code,
            format!("Limit {limit} is out of range [1, 100]."),
        ));
    }
    Ok((
        usize::try_from(offset).unwrap_or(usize::MAX),
        usize::try_from(limit).unwrap_or(100),
    ))
}

/// Ids and `Filters` cannot be given together (`code`: the service's error for it).
pub(super) fn ids_or_filters<'a>(
    body: &Body<'a>,
    ids_field: &str,
    code: &str,
) -> ApiResult<(Vec<&'a str>, Vec<Filter>)> {
    let ids = body.strs(ids_field)?;
    let filters = body.filters()?;
    if !ids.is_empty() && body.has("Filters") {
        return Err(ApiError::new(
            code,
            format!(
                "The parameters `{ids_field}` and `Filters` cannot be specified at the same time."
            ),
        ));
    }
    if ids.len() > 100 {
        return Err(ApiError::new(
            "InvalidParameterValue.LimitExceeded",
            format!("At most 100 values of `{ids_field}` are allowed."),
        ));
    }
    Ok((ids, filters))
}

/// An unknown filter name.
pub(super) fn bad_filter(name: &str, code: &str) -> ApiError {
    ApiError::new(code, format!("The filter `{name}` is not supported."))
}

/// Whether `tags` pass a tag filter (`tag-key`, `tag-value`, `tag:<key>`); `None` when the
/// filter is not about tags.
pub(super) fn tag_filter(tags: &Tags, f: &Filter) -> Option<bool> {
    if f.name == "tag-key" {
        return Some(f.values.iter().any(|k| tags.contains_key(k)));
    }
    if f.name == "tag-value" {
        return Some(tags.values().any(|v| f.values.contains(v)));
    }
    let key = f.name.strip_prefix("tag:")?;
    Some(tags.get(key).is_some_and(|v| f.values.contains(v)))
}

/// The tag keys a filter list reads (for the read lag of recently set tags).
pub(super) fn filter_tag_keys(filters: &[Filter]) -> Vec<(String, Option<String>)> {
    filters
        .iter()
        .filter_map(|f| f.name.strip_prefix("tag:"))
        .map(|k| (k.to_string(), None))
        .collect()
}

/// One page of a filtered list and the count of all matches.
pub(super) fn paged<T>(items: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, usize) {
    let total = items.len();
    (items.into_iter().skip(offset).take(limit).collect(), total)
}
