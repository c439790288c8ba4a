//! Reads a configuration file into its top-level entries in file order, with the line of
//! each entry. Repeated keys are kept (images.json repeats keys on purpose), so a plain
//! map cannot be used; values stay raw JSON slices of the input so their lines are known.

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer as _, MapAccess, Visitor};
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

/// One top-level `"key": value` entry.
pub struct Entry<'a> {
    pub key: String,
    pub value: &'a RawValue,
    pub line: usize,
}

impl SourceFile {
    /// Reads the file, refusing what is not a plausible JSON text with a clear message.
    pub fn read(path: &Path) -> Result<SourceFile, ConfigErrors> {
        let fail = |message: String| ConfigErrors(vec![ConfigError::file(path, message)]);
        let metadata = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if metadata.is_dir() {
            return Err(fail("is a directory, expected a JSON file".into()));
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
            return Err(fail(
                "is empty; expected a JSON object such as {} or {\"key\": \"value\"}".into(),
            ));
        }
        let newlines = text
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        Ok(SourceFile { text, newlines })
    }

    /// The top-level object's entries, in order, duplicates kept.
    pub fn entries(&self, path: &Path) -> Result<Vec<Entry<'_>>, ConfigErrors> {
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
        Ok(raw
            .into_iter()
            .map(|(key, value)| Entry {
                line: self.line_of(value.get()),
                key,
                value,
            })
            .collect())
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
