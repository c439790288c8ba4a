//! YAML configuration files (`.yaml`/`.yml`, as image-syncer users have them), read into
//! the same [`Node`] tree as JSON: every value keeps its line, and a key repeated in a
//! mapping stays a separate entry (a YAML library that builds a map would keep only one).

use std::collections::HashMap;

use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::source::{Node, NodeKind};

/// A YAML text that could not be read: its 1-based line and what is wrong.
#[derive(Debug)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// Parses one YAML document into a tree; `None` when the text holds no document (only
/// comments).
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| YamlError {
        line: e.marker().line(),
        message: format!("invalid YAML: {} (column {})", e.info(), e.marker().col()),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    if builder.documents.len() > 1 {
        return Err(YamlError {
            line: builder.document_starts.get(1).copied().unwrap_or(0),
            message: "holds more than one YAML document (---); put every entry in one".into(),
        });
    }
    Ok(builder.documents.pop())
}

/// A mapping or sequence being built: its line, anchor, and what is collected so far.
enum Open {
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(String, Node)>,
        /// A key read, waiting for its value, and the key's line.
        pending_key: Option<(String, usize)>,
    },
    List {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Open>,
    documents: Vec<Node>,
    anchors: HashMap<usize, Node>,
    /// Line of each document's start (`---`, or its first line).
    document_starts: Vec<usize>,
    error: Option<YamlError>,
}

impl TreeBuilder {
    fn fail(&mut self, line: usize, message: &str) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line,
                message: message.to_string(),
            });
        }
    }

    /// Adds a finished value to whatever is open: a key or value of a mapping, an item of a
    /// sequence, or a whole document.
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let line = node.line;
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Open::List { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                // A value is placed at its key's line (a block list or mapping starts on
                // the next one); its items keep their own lines.
                Some((key, key_line)) => entries.push((
                    key,
                    Node {
                        line: key_line,
                        ..node
                    },
                )),
                None => match node.kind {
                    NodeKind::Scalar(serde_json::Value::String(key)) => {
                        *pending_key = Some((key, line));
                    }
                    NodeKind::Scalar(serde_json::Value::Null) => {
                        self.fail(line, "a mapping key is empty");
                    }
                    NodeKind::Scalar(other) => *pending_key = Some((other.to_string(), line)),
                    _ => self.fail(line, "a mapping key must be a plain string"),
                },
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let json = if style == TScalarStyle::Plain && tag.is_none() {
                    resolve_plain(&value)
                } else {
                    serde_json::Value::String(value)
                };
                self.push(
                    Node {
                        line,
                        kind: NodeKind::Scalar(json),
                    },
                    anchor,
                );
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(node) => self.push(Node { line, ..node }, 0),
                None => self.fail(line, "an alias (*name) refers to an unknown anchor"),
            },
            Event::SequenceStart(anchor, _) => self.stack.push(Open::List {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map {
                line,
                anchor,
                entries: Vec::new(),
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::List {
                    line,
                    anchor,
                    items,
                }) => self.push(
                    Node {
                        line,
                        kind: NodeKind::List(items),
                    },
                    anchor,
                ),
                Some(Open::Map {
                    line,
                    anchor,
                    entries,
                    ..
                }) => self.push(
                    Node {
                        line,
                        kind: NodeKind::Map(entries),
                    },
                    anchor,
                ),
                None => {}
            },
            Event::DocumentStart => self.document_starts.push(line),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// A plain (unquoted) scalar's YAML 1.2 core type: null, boolean, number or string.
fn resolve_plain(value: &str) -> serde_json::Value {
    match Yaml::from_str(value) {
        Yaml::Null => serde_json::Value::Null,
        Yaml::Boolean(b) => serde_json::Value::Bool(b),
        Yaml::Integer(i) => serde_json::Value::from(i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(
                || serde_json::Value::String(value.to_string()),
                serde_json::Value::Number,
            ),
        _ => serde_json::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(node: &Node) -> Vec<(String, usize)> {
        match &node.kind {
            NodeKind::Map(entries) => entries.iter().map(|(k, v)| (k.clone(), v.line)).collect(),
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn repeated_keys_stay_separate_with_their_lines() {
        let doc = parse("# rules\na/b/c: x/y/c\na/b/c: z/y/c\n'q.io/d/e:1': \"\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            entries(&doc),
            [
                ("a/b/c".to_string(), 2),
                ("a/b/c".to_string(), 3),
                ("q.io/d/e:1".to_string(), 4)
            ]
        );
    }

    #[test]
    fn plain_scalars_are_typed_and_quoted_ones_are_strings() {
        let doc = parse("a: true\nb: 'true'\nc: 5\nd: ~\ne: [x, y]\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"a": true, "b": "true", "c": 5, "d": null, "e": ["x", "y"]})
        );
    }

    #[test]
    fn errors_have_lines() {
        let error = parse("a: b\nc: [d\n").unwrap_err();
        assert!(error.line >= 2, "{error:?}");
        assert!(parse("# nothing\n").unwrap().is_none());
        assert_eq!(parse("a: 1\n---\nb: 2\n").unwrap_err().line, 2);
    }
}
