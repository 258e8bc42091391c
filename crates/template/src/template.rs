//! A whole JSON config value with every string value parsed, and
//! introspection of its tags for validators.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::ast::{Tag, TemplateString};
use crate::parse::ParseError;

/// The parsed JSON tree. Object keys stay literal: only string *values* are
/// templates, so configs may use any key (including ones containing `{{`).
#[derive(Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(TemplateString),
    Array(Vec<Node>),
    /// Kept as a list in the source map's order; rendering rebuilds a map.
    Object(Vec<(String, Node)>),
}

/// A parsed JSON config value.
///
/// Parse once with [`Template::parse`], keep it, render it per run. Cloning
/// is a reference-count increment. `Debug` shows the source JSON (tag names
/// only, never resolved values).
#[derive(Clone, PartialEq)]
pub struct Template {
    root: Arc<Node>,
}

/// A tag found in a [`Template`], with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef<'a> {
    /// JSON pointer (RFC 6901) of the string holding the tag, e.g.
    /// `/headers/Authorization`; empty when the template is a bare string.
    pub location: String,
    /// Byte offset of the tag's `{{` within that string.
    pub offset: usize,
    /// The tag.
    pub tag: &'a Tag,
}

impl Template {
    /// Parses every string value of `value`. The error names the JSON
    /// pointer of the first malformed string and the byte offset within it.
    pub fn parse(value: &Value) -> Result<Self, ParseError> {
        let mut pointer = String::new();
        let root = parse_node(value, &mut pointer)?;
        Ok(Template { root: Arc::new(root) })
    }

    /// The JSON value this template was parsed from.
    pub fn to_value(&self) -> Value {
        source_value(&self.root)
    }

    /// Every tag, in document order (array order, then object keys in the
    /// source map's order), with its location, so validators can reject
    /// e.g. secrets outside webhook steps or references to later steps.
    pub fn tags(&self) -> impl Iterator<Item = TagRef<'_>> + '_ {
        let mut found = Vec::new();
        let mut pointer = String::new();
        collect_tags(&self.root, &mut pointer, &mut found);
        found.into_iter()
    }

    /// Names of the secrets referenced anywhere, sorted and deduplicated.
    pub fn secret_names(&self) -> BTreeSet<&str> {
        self.tags().filter_map(|r| r.tag.secret_name()).collect()
    }

    pub(crate) fn root(&self) -> &Node {
        &self.root
    }
}

impl From<TemplateString> for Template {
    fn from(string: TemplateString) -> Self {
        Template {
            root: Arc::new(Node::String(string)),
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({})", self.to_value())
    }
}

/// Appends one RFC 6901 reference token to `pointer`; returns the previous
/// length so the caller can truncate back after visiting the child.
pub(crate) fn push_token(pointer: &mut String, token: &str) -> usize {
    let len = pointer.len();
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
    len
}

fn parse_node(value: &Value, pointer: &mut String) -> Result<Node, ParseError> {
    Ok(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Number(n) => Node::Number(n.clone()),
        Value::String(s) => Node::String(
            TemplateString::parse(s)
                .map_err(|e| ParseError::new(pointer.clone(), e.offset(), e.kind().clone()))?,
        ),
        Value::Array(items) => {
            let mut nodes = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = push_token(pointer, &i.to_string());
                nodes.push(parse_node(item, pointer)?);
                pointer.truncate(len);
            }
            Node::Array(nodes)
        }
        Value::Object(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, item) in map {
                let len = push_token(pointer, key);
                entries.push((key.clone(), parse_node(item, pointer)?));
                pointer.truncate(len);
            }
            Node::Object(entries)
        }
    })
}

fn source_value(node: &Node) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(n) => Value::Number(n.clone()),
        Node::String(s) => Value::String(s.as_str().to_owned()),
        Node::Array(items) => Value::Array(items.iter().map(source_value).collect()),
        Node::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), source_value(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn collect_tags<'a>(node: &'a Node, pointer: &mut String, found: &mut Vec<TagRef<'a>>) {
    match node {
        Node::String(s) => {
            for (offset, tag) in s.tags() {
                found.push(TagRef {
                    location: pointer.clone(),
                    offset,
                    tag,
                });
            }
        }
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = push_token(pointer, &i.to_string());
                collect_tags(item, pointer, found);
                pointer.truncate(len);
            }
        }
        Node::Object(entries) => {
            for (key, item) in entries {
                let len = push_token(pointer, key);
                collect_tags(item, pointer, found);
                pointer.truncate(len);
            }
        }
        Node::Null | Node::Bool(_) | Node::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        let mut pointer = String::new();
        push_token(&mut pointer, "a/b");
        push_token(&mut pointer, "c~d");
        assert_eq!(pointer, "/a~1b/c~0d");
    }
}
