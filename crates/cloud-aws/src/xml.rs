//! EC2 answers are XML: `<XxxResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with
//! lowerCamel element names and lists as `<xxxSet><item>…</item></xxxSet>`; errors are
//! `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
//! [`Node`] is an owned tree of local names and trimmed texts, read with a few helpers: a
//! missing element reads as empty, so an omitted field never fails a describe.

use mce_cloud::Tags;

/// One element: its local name (namespace dropped), its own text (trimmed) and its children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

static EMPTY: Node = Node {
    name: String::new(),
    text: String::new(),
    children: Vec::new(),
};

impl Node {
    /// Parses a document into the tree of its root element.
    pub fn parse(xml: &str) -> Result<Node, roxmltree::Error> {
        let doc = roxmltree::Document::parse(xml)?;
        Ok(Self::from_element(doc.root_element()))
    }

    fn from_element(e: roxmltree::Node<'_, '_>) -> Node {
        let mut text = String::new();
        let mut children = Vec::new();
        for c in e.children() {
            if c.is_element() {
                children.push(Self::from_element(c));
            } else if c.is_text()
                && let Some(t) = c.text()
            {
                text.push_str(t);
            }
        }
        Node {
            name: e.tag_name().name().to_string(),
            text: text.trim().to_string(),
            children,
        }
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at a path of child names; an empty node when absent.
    pub fn at(&self, path: &[&str]) -> &Node {
        let mut node = self;
        for name in path {
            match node.child(name) {
                Some(c) => node = c,
                None => return &EMPTY,
            }
        }
        node
    }

    /// The text of a child (`""` when absent).
    pub fn text_of(&self, name: &str) -> &str {
        self.child(name).map_or("", |c| c.text.as_str())
    }

    /// A child's text, `None` when absent or empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.text_of(name))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The `<item>`s of the list element `set` (`vpcSet`, `tagSet`, ...).
    pub fn items<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Node> + 'a {
        self.child(set)
            .into_iter()
            .flat_map(|s| s.children.iter().filter(|c| c.name == "item"))
    }

    /// `tagSet/item/{key,value}`.
    pub fn tags(&self) -> Tags {
        self.items("tagSet")
            .map(|t| (t.text_of("key").to_string(), t.text_of("value").to_string()))
            .filter(|(k, _)| !k.is_empty())
            .collect()
    }

    /// The first descendant (or self) named `name`, depth first.
    pub fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// `requestId` of an answer (`RequestID` of an error).
    pub fn request_id(&self) -> String {
        self.find("requestId")
            .or_else(|| self.find("RequestID"))
            .or_else(|| self.find("RequestId"))
            .map(|n| n.text.clone())
            .unwrap_or_default()
    }

    /// `nextToken` of a paged describe, `None` at the last page.
    pub fn next_token(&self) -> Option<String> {
        self.opt("nextToken")
    }
}

/// `(Code, Message)` of an EC2 error document (`<Response><Errors><Error>`; also the
/// `<ErrorResponse><Error>` shape of other Query services).
pub fn error_of(root: &Node) -> Option<(String, String)> {
    let error = root.find("Error")?;
    let code = error.text_of("Code");
    (!code.is_empty()).then(|| (code.to_string(), error.text_of("Message").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VPCS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
    <vpcSet>
        <item>
            <vpcId>vpc-0a60eb65b4EXAMPLE</vpcId>
            <state>available</state>
            <cidrBlock>172.16.0.0/12</cidrBlock>
            <tagSet>
                <item><key>owner</key><value>ns/vm 1</value></item>
                <item><key>empty</key><value/></item>
            </tagSet>
        </item>
        <item><vpcId>vpc-2</vpcId><state>pending</state></item>
    </vpcSet>
    <nextToken>tok-2</nextToken>
</DescribeVpcsResponse>"#;

    #[test]
    fn answers_read_by_local_names() {
        let root = Node::parse(VPCS).unwrap();
        assert_eq!(root.name, "DescribeVpcsResponse");
        assert_eq!(root.request_id(), "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE");
        assert_eq!(root.next_token().as_deref(), Some("tok-2"));
        let vpcs: Vec<&Node> = root.items("vpcSet").collect();
        assert_eq!(vpcs.len(), 2);
        assert_eq!(vpcs[0].text_of("cidrBlock"), "172.16.0.0/12");
        assert_eq!(
            vpcs[0].tags(),
            [
                ("empty".to_string(), String::new()),
                ("owner".to_string(), "ns/vm 1".to_string())
            ]
            .into()
        );
        assert!(vpcs[1].tags().is_empty());
        assert_eq!(vpcs[1].text_of("cidrBlock"), "");
        assert_eq!(vpcs[1].opt("cidrBlock"), None);
        assert_eq!(root.at(&["nope", "deeper"]).text, "");
        assert_eq!(root.items("nothing").count(), 0);
    }

    #[test]
    fn errors_and_escapes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID 'vpc-1' &amp; more does not exist</Message></Error></Errors><RequestID>rid-9</RequestID></Response>"#;
        let root = Node::parse(xml).unwrap();
        assert_eq!(
            error_of(&root),
            Some((
                "InvalidVpcID.NotFound".to_string(),
                "The vpc ID 'vpc-1' & more does not exist".to_string()
            ))
        );
        assert_eq!(root.request_id(), "rid-9");
        assert_eq!(error_of(&Node::parse(VPCS).unwrap()), None);
        assert!(Node::parse("<html><body>bad gateway").is_err());
    }
}
