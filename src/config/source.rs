//! Reads a configuration file (JSON, or YAML by extension) into a tree whose every value
//! knows its line, and the top-level entries in file order. Repeated keys are kept
//! (images.json repeats keys on purpose), so a plain map cannot be used.

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{ConfigError, ConfigErrors};

/// Files above this size are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The text of a configuration file.
pub struct SourceFile {
    pub text: String,
    /// Byte offset of every `\n`, so that `line_of` is a binary search (it is called once
    /// per entry: a scan from the start each time made loading quadratic in the rules).
    newlines: Vec<usize>,
}

/// One value of a configuration file with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// null, a boolean, a number or a string.
    Scalar(Value),
    List(Vec<Node>),
    /// Entries in file order, repeated keys kept.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value as plain JSON, for typed deserialization (a repeated key inside: the
    /// last one wins, as serde_json would decide).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(value) => value.clone(),
            NodeKind::List(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// What kind of value this is, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(Value::Null) => "null",
            NodeKind::Scalar(Value::Bool(_)) => "a boolean",
            NodeKind::Scalar(Value::Number(_)) => "a number",
            NodeKind::Scalar(Value::String(_)) => "a string",
            NodeKind::Scalar(_) | NodeKind::List(_) => "a list",
            NodeKind::Map(_) => "an object",
        }
    }
}

/// One top-level `key: value` entry; `line` is where its value starts.
pub struct Entry {
    pub key: String,
    pub value: Node,
    pub line: usize,
}

/// The entries of a nested object (`auth` and `images` of a `--config` file), or `None`
/// when the value is not an object.
pub fn map_entries(node: &Node) -> Option<Vec<Entry>> {
    match &node.kind {
        NodeKind::Map(entries) => Some(
            entries
                .iter()
                .map(|(key, value)| Entry {
                    key: key.clone(),
                    line: value.line,
                    value: value.clone(),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a path names a YAML file (`.yaml`/`.yml`); anything else is read as JSON.
pub fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

impl SourceFile {
    /// Reads the file, refusing what is not a plausible JSON text with a clear message.
    pub fn read(path: &Path) -> Result<SourceFile, ConfigErrors> {
        let fail = |message: String| ConfigErrors(vec![ConfigError::file(path, message)]);
        let metadata = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if metadata.is_dir() {
            return Err(fail("is a directory, expected a JSON or YAML file".into()));
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(fail(format!(
                "is {} bytes; configuration files larger than {MAX_FILE_BYTES} bytes are refused",
                metadata.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
            return Err(fail(
                "starts with a UTF-8 byte order mark (BOM); save the file as plain UTF-8".into(),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let offset = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            ConfigErrors(vec![ConfigError {
                line: Some(line),
                ..ConfigError::file(path, "is not valid UTF-8")
            }])
        })?;
        if text.trim().is_empty() {
            return Err(fail(if is_yaml(path) {
                "is empty; expected a YAML mapping such as `key: value`".into()
            } else {
                "is empty; expected a JSON object such as {} or {\"key\": \"value\"}".into()
            }));
        }
        let newlines = text
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        Ok(SourceFile { text, newlines })
    }

    /// The top-level object's entries, in order, duplicates kept.
    pub fn entries(&self, path: &Path) -> Result<Vec<Entry>, ConfigErrors> {
        if is_yaml(path) {
            return self.yaml_entries(path);
        }
        let raw = self.raw_json_entries(path)?;
        let mut entries = Vec::with_capacity(raw.len());
        for (key, value) in raw {
            let value = self.json_node(value).map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    line: Some(self.line_of(value.get())),
                    ..ConfigError::file(path, format!("invalid JSON: {}", strip_position(&e)))
                }])
            })?;
            entries.push(Entry {
                line: value.line,
                key,
                value,
            });
        }
        Ok(entries)
    }

    fn yaml_entries(&self, path: &Path) -> Result<Vec<Entry>, ConfigErrors> {
        let at = |line: usize, message: String| {
            ConfigErrors(vec![ConfigError {
                line: Some(line).filter(|&l| l > 0),
                ..ConfigError::file(path, message)
            }])
        };
        let document = super::yaml::parse(&self.text)
            .map_err(|e| at(e.line, e.message))?
            .ok_or_else(|| at(0, "holds no YAML document, only comments".into()))?;
        match document.kind {
            NodeKind::Map(entries) => Ok(entries
                .into_iter()
                .map(|(key, value)| Entry {
                    line: value.line,
                    key,
                    value,
                })
                .collect()),
            _ => Err(at(
                document.line,
                format!(
                    "the top level must be a YAML mapping (key: value lines), not {}",
                    document.type_name()
                ),
            )),
        }
    }

    /// A JSON value (a slice of the text) as a tree, each part with its line.
    fn json_node(&self, raw: &RawValue) -> Result<Node, serde_json::Error> {
        let text = raw.get();
        let line = self.line_of(text);
        let kind = match text.as_bytes().first() {
            Some(b'{') => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                let entries = deserializer.deserialize_map(EntriesVisitor)?;
                NodeKind::Map(
                    entries
                        .into_iter()
                        .map(|(key, value)| Ok((key, self.json_node(value)?)))
                        .collect::<Result<_, serde_json::Error>>()?,
                )
            }
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(text)?;
                NodeKind::List(
                    items
                        .into_iter()
                        .map(|item| self.json_node(item))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => NodeKind::Scalar(serde_json::from_str(text)?),
        };
        Ok(Node { line, kind })
    }

    fn raw_json_entries(&self, path: &Path) -> Result<Vec<(String, &RawValue)>, ConfigErrors> {
        let mut deserializer = serde_json::Deserializer::from_str(&self.text);
        let raw = deserializer
            .deserialize_map(EntriesVisitor)
            .and_then(|entries| deserializer.end().map(|_| entries))
            .map_err(|e| {
                let message = if e.is_data() && e.to_string().starts_with("invalid type") {
                    format!(
                        "the top level must be a JSON object {{ … }}: {}",
                        strip_position(&e)
                    )
                } else if let Some((line, column)) = self.trailing_comma(&e) {
                    return ConfigErrors(vec![ConfigError {
                        line: Some(line),
                        ..ConfigError::file(
                            path,
                            format!("invalid JSON: trailing comma (column {column})"),
                        )
                    }]);
                } else {
                    format!("invalid JSON: {}", strip_position(&e))
                };
                ConfigErrors(vec![ConfigError {
                    line: Some(e.line()).filter(|&l| l > 0),
                    ..ConfigError::file(path, message)
                }])
            })?;
        Ok(raw)
    }

    /// serde_json reports a trailing comma where the `}` or `]` after it is, often on the
    /// next line; the typo is the comma: its 1-based line and column.
    fn trailing_comma(&self, error: &serde_json::Error) -> Option<(usize, usize)> {
        let message = error.to_string();
        if error.line() == 0
            || !["trailing comma", "expected value", "key must be a string"]
                .iter()
                .any(|m| message.starts_with(m))
        {
            return None;
        }
        let line_start: usize = self
            .text
            .split_inclusive('\n')
            .take(error.line() - 1)
            .map(str::len)
            .sum();
        let closing = line_start + error.column().saturating_sub(1);
        // Inside a nested value serde_json says "expected value" (at a `]`) or "key must be
        // a string" (at a `}`).
        if !matches!(self.text.as_bytes().get(closing), Some(b']' | b'}')) {
            return None;
        }
        let comma = self.text.get(..closing)?.trim_end().len().checked_sub(1)?;
        if self.text.as_bytes()[comma] != b',' {
            return None;
        }
        let comma_line_start = self.text[..comma].rfind('\n').map_or(0, |i| i + 1);
        Some((
            self.line_of(&self.text[comma..]),
            comma - comma_line_start + 1,
        ))
    }

    /// 1-based line at which `slice` (a sub-slice of the text) starts.
    pub fn line_of(&self, slice: &str) -> usize {
        let offset = (slice.as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        let offset = offset.min(self.text.len());
        // Newlines strictly before `offset`.
        1 + self.newlines.partition_point(|&i| i < offset)
    }
}

/// serde_json appends " at line L column C"; the line is reported separately.
fn strip_position(error: &serde_json::Error) -> String {
    let text = without_value(&error.to_string());
    match text.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &text[..i], error.column()),
        None => text,
    }
}

/// serde quotes the offending value (`invalid type: string "hunter2", expected …`); in
/// auth.json that value may be a password, so only its JSON type is kept.
pub fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((unexpected, expected)) = rest.rsplit_once(", expected ")
        {
            let kind = unexpected
                .find(['`', '"'])
                .map_or(unexpected, |i| &unexpected[..i])
                .trim_end();
            return format!("{prefix}{kind}, expected {expected}");
        }
    }
    message.to_string()
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
            entries.push((key, value));
        }
        Ok(entries)
    }
}
