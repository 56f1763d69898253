//! RPC parameters: an ordered list of flat `name=value` pairs, with helpers for Alibaba
//! Cloud's flattening rules (`Tag.N.Key`, `SystemDisk.Size`, `Permissions.N.PortRange`,
//! JSON-array strings such as `InstanceIds=["i-1","i-2"]`).

use mce_cloud::Tags;

/// Parameter names whose values are secret: never logged, scrubbed from error messages.
pub const SECRET_PARAMS: &[&str] = &["Password"];

/// Flat RPC parameters, in insertion order. Setting a name twice replaces the value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name=value`, replacing an earlier value of the same name.
    pub fn set(&mut self, name: impl Into<String>, value: impl ToString) -> &mut Self {
        let name = name.into();
        let value = value.to_string();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
        self
    }

    /// Builder form of [`Params::set`].
    pub fn with(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name=value` only when no value is set yet; returns whether it was set.
    pub fn set_if_absent(&mut self, name: &str, value: &str) -> bool {
        if self.contains(name) {
            return false;
        }
        self.0.push((name.to_string(), value.to_string()));
        true
    }

    /// Sets the parameter when the value is present and non-empty.
    pub fn set_opt(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.set(name, v);
        }
        self
    }

    /// `{prefix}.{field}` for a nested object, e.g. `SystemDisk.Size`.
    pub fn nested(&mut self, prefix: &str, field: &str, value: impl ToString) -> &mut Self {
        self.set(format!("{prefix}.{field}"), value)
    }

    /// `Tag.N.Key` / `Tag.N.Value`, N from 1, in key order.
    pub fn tags(&mut self, tags: &Tags) -> &mut Self {
        for (i, (k, v)) in tags.iter().enumerate() {
            let n = i + 1;
            self.set(format!("Tag.{n}.Key"), k);
            self.set(format!("Tag.{n}.Value"), v);
        }
        self
    }

    /// A repeated list of objects: `{prefix}.N.{field}` for each item's fields, N from 1.
    pub fn repeated<'a, I, F>(&mut self, prefix: &str, items: I) -> &mut Self
    where
        I: IntoIterator<Item = F>,
        F: IntoIterator<Item = (&'a str, String)>,
    {
        for (i, fields) in items.into_iter().enumerate() {
            let n = i + 1;
            for (field, value) in fields {
                self.set(format!("{prefix}.{n}.{field}"), value);
            }
        }
        self
    }

    /// A JSON-array string parameter, e.g. `InstanceIds=["i-1","i-2"]`.
    pub fn json_array<S: AsRef<str>>(&mut self, name: &str, values: &[S]) -> &mut Self {
        let list: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        // Serializing a list of strings cannot fail.
        let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string());
        self.set(name, json)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Values of the secret parameters, to scrub from any text shown to users.
    pub fn secret_values(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| SECRET_PARAMS.contains(&k.as_str()) && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_numbered_from_one_in_key_order() {
        let tags: Tags = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        let mut p = Params::new();
        p.tags(&tags);
        assert_eq!(
            p.pairs(),
            &[
                ("Tag.1.Key".to_string(), "a".to_string()),
                ("Tag.1.Value".to_string(), "1".to_string()),
                ("Tag.2.Key".to_string(), "b".to_string()),
                ("Tag.2.Value".to_string(), "2".to_string()),
            ]
        );
    }

    #[test]
    fn nested_and_repeated() {
        let mut p = Params::new();
        p.nested("SystemDisk", "Category", "cloud_essd")
            .nested("SystemDisk", "Size", 40);
        p.repeated(
            "Permissions",
            [22u16, 80].iter().map(|port| {
                vec![
                    ("IpProtocol", "tcp".to_string()),
                    ("PortRange", format!("{port}/{port}")),
                ]
            }),
        );
        assert_eq!(p.get("SystemDisk.Category"), Some("cloud_essd"));
        assert_eq!(p.get("SystemDisk.Size"), Some("40"));
        assert_eq!(p.get("Permissions.1.PortRange"), Some("22/22"));
        assert_eq!(p.get("Permissions.2.PortRange"), Some("80/80"));
        assert_eq!(p.get("Permissions.2.IpProtocol"), Some("tcp"));
        assert_eq!(p.get("Permissions.3.IpProtocol"), None);
    }

    #[test]
    fn json_arrays_are_strings() {
        let mut p = Params::new();
        p.json_array("InstanceIds", &["i-1", "i-2"]);
        p.json_array("SecurityGroupIds", &[String::from("sg-\"x")]);
        assert_eq!(p.get("InstanceIds"), Some(r#"["i-1","i-2"]"#));
        assert_eq!(p.get("SecurityGroupIds"), Some(r#"["sg-\"x"]"#));
    }

    #[test]
    fn set_replaces_and_set_if_absent_keeps() {
        let mut p = Params::new().with("A", 1).with("B", "x");
        p.set("A", 2);
        assert!(!p.set_if_absent("A", "3"));
        assert!(p.set_if_absent("C", "3"));
        p.set_opt("D", Some(""))
            .set_opt("E", None)
            .set_opt("F", Some("f"));
        assert_eq!(p.get("A"), Some("2"));
        assert_eq!(p.pairs().len(), 4);
        assert_eq!(p.get("F"), Some("f"));
    }

    #[test]
    fn secret_values_are_found() {
        let p = Params::new()
            .with("Password", "hunter2")
            .with("InstanceName", "x");
        assert_eq!(p.secret_values(), vec!["hunter2"]);
    }
}
