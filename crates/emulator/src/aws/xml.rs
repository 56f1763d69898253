//! The EC2 Query protocol's XML: lower-camel element names, lists as `<xxxSet><item>`.

use std::fmt::Display;

use jiff::Timestamp;

use crate::model::Tags;

/// Escapes text for an XML element.
pub(super) fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `2024-05-01T12:00:00.000Z`, the EC2 timestamp format.
pub(super) fn time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}

/// An XML body being written.
#[derive(Debug, Default)]
pub(super) struct Xml {
    out: String,
}

impl Xml {
    pub fn new() -> Self {
        Self::default()
    }

    /// `<name>value</name>`.
    pub fn leaf(&mut self, name: &str, value: impl Display) -> &mut Self {
        let text = escape(&value.to_string());
        self.out.push_str(&format!("<{name}>{text}</{name}>"));
        self
    }

    /// A leaf, when there is a value.
    pub fn opt(&mut self, name: &str, value: Option<impl Display>) -> &mut Self {
        if let Some(v) = value {
            self.leaf(name, v);
        }
        self
    }

    /// `<name>...</name>` around what `f` writes.
    pub fn node(&mut self, name: &str, f: impl FnOnce(&mut Xml)) -> &mut Self {
        self.out.push_str(&format!("<{name}>"));
        f(self);
        self.out.push_str(&format!("</{name}>"));
        self
    }

    /// `<name><item>...</item>...</name>`, one item per element.
    pub fn set<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.out.push_str(&format!("<{name}>"));
        for item in items {
            self.out.push_str("<item>");
            f(self, item);
            self.out.push_str("</item>");
        }
        self.out.push_str(&format!("</{name}>"));
        self
    }

    /// `<tagSet><item><key/><value/></item></tagSet>`.
    pub fn tags(&mut self, tags: &Tags) -> &mut Self {
        self.set("tagSet", tags, |x, (k, v)| {
            x.leaf("key", k).leaf("value", v);
        })
    }

    /// `<instanceState>`-like `{code, name}`.
    pub fn state(&mut self, name: &str, state: (u16, &str)) -> &mut Self {
        self.node(name, |x| {
            x.leaf("code", state.0).leaf("name", state.1);
        })
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sets_and_escapes() {
        let mut x = Xml::new();
        x.leaf("a", "<&>").set("bSet", ["1", "2"], |x, v| {
            x.leaf("v", v);
        });
        x.tags(&Tags::from([("k".to_string(), "v'".to_string())]));
        assert_eq!(
            x.into_string(),
            "<a>&lt;&amp;&gt;</a><bSet><item><v>1</v></item><item><v>2</v></item></bSet>\
             <tagSet><item><key>k</key><value>v&apos;</value></item></tagSet>"
        );
    }
}
