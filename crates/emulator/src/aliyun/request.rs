//! Request parameters as Alibaba Cloud sends them: query and form decoding, typed access.

use super::*;

/// Decodes `application/x-www-form-urlencoded` / query text (`+` is a space).
pub fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
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
pub fn parse_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k)?, percent_decode(v)?));
    }
    Some(pairs)
}

/// The request parameters (query and form body).
pub struct Params(pub(super) Vec<(String, String)>);

/// Parameters that do not take part in the idempotency fingerprint.
pub(super) const NON_BUSINESS_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "SignatureType",
    "Timestamp",
    "ClientToken",
    "SecurityToken",
];

impl Params {
    /// The value of a parameter; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn req(&self, name: &str) -> ApiResult<&str> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }

    pub(super) fn string(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    pub(super) fn u32_or(&self, name: &str, default: u32) -> ApiResult<u32> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ApiError::invalid(name, v)),
        }
    }

    pub(super) fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `Prefix.N` values, ordered by N.
    pub(super) fn indexed(&self, prefix: &str) -> Vec<String> {
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k
                    .strip_prefix(prefix)?
                    .strip_prefix('.')?
                    .parse::<u32>()
                    .ok()?;
                Some((n, v.clone()))
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Prefix.N.Field` groups, ordered by N.
    pub(super) fn groups(&self, prefix: &str) -> Vec<Vec<(String, String)>> {
        let mut map: std::collections::BTreeMap<u32, Vec<(String, String)>> =
            std::collections::BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            map.entry(n)
                .or_default()
                .push((field.to_string(), v.clone()));
        }
        map.into_values().collect()
    }

    /// `Tag.N.Key` / `Tag.N.Value` as filters (a missing value matches any).
    pub(super) fn tag_filters(&self) -> Vec<(String, Option<String>)> {
        self.groups("Tag")
            .into_iter()
            .filter_map(|g| {
                let key = g
                    .iter()
                    .find(|(f, _)| f == "Key")
                    .map(|(_, v)| v.clone())
                    .filter(|k| !k.is_empty())?;
                let value = g
                    .iter()
                    .find(|(f, _)| f == "Value")
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty());
                Some((key, value))
            })
            .collect()
    }

    pub(super) fn tags(&self) -> ApiResult<Tags> {
        let filters = self.tag_filters();
        if filters.len() > 20 {
            return Err(ApiError::new(
                400,
                "InvalidTagKey.Malformed",
                "At most 20 tags are allowed.",
            ));
        }
        Ok(filters
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect())
    }

    /// A JSON-array string parameter (`["a","b"]`).
    pub(super) fn json_list(&self, name: &str) -> ApiResult<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => {
                serde_json::from_str::<Vec<String>>(v).map_err(|_| ApiError::invalid(name, v))
            }
        }
    }

    /// A comma-separated list parameter.
    pub(super) fn comma_list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn region(&self) -> ApiResult<String> {
        self.req("RegionId").map(String::from)
    }

    /// The ClientToken with a fingerprint (hash) of every business parameter.
    pub(super) fn idem(&self, action: &str) -> ApiResult<Option<Idem>> {
        let Some(token) = self.get("ClientToken") else {
            return Ok(None);
        };
        if token.len() > 64 || !token.is_ascii() {
            return Err(ApiError::invalid("ClientToken", token));
        }
        let mut pairs: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| !NON_BUSINESS_PARAMS.contains(&k.as_str()))
            .collect();
        pairs.sort();
        let mut text = String::new();
        for (k, v) in pairs {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        Ok(Some(Idem {
            scope: action.to_string(),
            token: token.to_string(),
            fingerprint: sha256_hex(text.as_bytes()),
        }))
    }
}
