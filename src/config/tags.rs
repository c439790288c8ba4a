//! Tag selection for all-tags rules: `include`/`exclude` regexes, a `semver` range,
//! `created_within`, `older_than`, `latest: N` and `newest: N`, applied in that order;
//! beside them, two settings that select nothing: `immutable` (tags trusted not to
//! change) and `min_tags` (the guard a rule's selection must pass). Reading and
//! checking the filters happens here, with the configuration; applying them needs the
//! tag list and, for the two time-based filters, each candidate's creation time, which
//! the caller fetches (this module never talks to the network).

use std::cmp::Reverse;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::source::Node;

/// A regular expression as written, and compiled. Matching is an unanchored search, as
/// image-syncer's `/regex/` keys are.
#[derive(Debug, Clone)]
pub struct TagRegex {
    pub text: String,
    regex: regex::Regex,
}

impl TagRegex {
    pub fn new(text: &str) -> Result<Self, String> {
        regex::Regex::new(text)
            .map(|regex| TagRegex {
                text: text.to_string(),
                regex,
            })
            .map_err(|e| {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or_default().trim();
                let last = last.strip_prefix("error: ").unwrap_or(last);
                format!("the regular expression /{text}/ does not compile: {last}")
            })
    }

    pub fn is_match(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }
}

/// The filters of one rule; empty = every tag.
#[derive(Debug, Clone, Default)]
pub struct TagFilters {
    pub include: Vec<TagRegex>,
    pub exclude: Vec<TagRegex>,
    /// The range as written, and parsed.
    pub semver: Option<(String, semver::VersionReq)>,
    /// As written (`90d`), and parsed.
    pub created_within: Option<(String, Duration)>,
    /// As written (`7d`), and parsed: only tags created at least that long ago.
    pub older_than: Option<(String, Duration)>,
    pub latest: Option<usize>,
    pub newest: Option<usize>,
    /// Tags trusted never to change: once the target lists one, it is not compared.
    pub immutable: Option<TagRegex>,
    /// A rule that selects fewer tags fails (a broken source never empties a mirror).
    pub min_tags: Option<usize>,
}

/// One regex or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilters {
    include: Option<OneOrMany>,
    exclude: Option<OneOrMany>,
    semver: Option<String>,
    created_within: Option<String>,
    older_than: Option<String>,
    latest: Option<u64>,
    newest: Option<u64>,
    immutable: Option<String>,
    min_tags: Option<u64>,
}

const FIELDS: &str = "\"include\", \"exclude\", \"semver\", \"created_within\", \
                      \"older_than\", \"latest\", \"newest\", \"immutable\", \"min_tags\"";

impl TagFilters {
    /// Reads a rule's `tags` object.
    pub fn from_node(node: &Node) -> Result<TagFilters, String> {
        let raw: RawFilters = serde_json::from_value(node.to_json()).map_err(|e| {
            format!(
                "\"tags\": {}; the fields are {FIELDS}",
                super::source::without_value(&e.to_string())
                    .replace("struct RawFilters", "an object")
                    .replace(
                        "data did not match any variant of untagged enum OneOrMany",
                        "include/exclude must be a string or a list of strings"
                    )
            )
        })?;
        let regexes = |field: &str, value: Option<OneOrMany>| -> Result<Vec<TagRegex>, String> {
            let list = match value {
                None => Vec::new(),
                Some(OneOrMany::One(one)) => vec![one],
                Some(OneOrMany::Many(many)) => many,
            };
            list.iter()
                .map(|text| TagRegex::new(text).map_err(|e| format!("\"tags\".{field}: {e}")))
                .collect()
        };
        let count = |field: &str, value: Option<u64>| -> Result<Option<usize>, String> {
            match value {
                Some(0) => Err(format!(
                    "\"tags\".{field} must be at least 1 (leave it out to keep every tag)"
                )),
                Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                None => Ok(None),
            }
        };
        let semver = raw
            .semver
            .map(|range| {
                semver::VersionReq::parse(&range)
                    .map(|req| (range.clone(), req))
                    .map_err(|e| format!("\"tags\".semver {range:?} is not a semver range: {e}"))
            })
            .transpose()?;
        let duration = |field: &str, value: Option<String>| {
            value
                .map(|text| {
                    humantime::parse_duration(&text)
                        .map(|d| (text.clone(), d))
                        .map_err(|e| {
                            format!(
                                "\"tags\".{field} {text:?} is not a duration such as 90d or \
                                 12h: {e}"
                            )
                        })
                })
                .transpose()
        };
        let immutable = regexes("immutable", raw.immutable.map(OneOrMany::One))?;
        Ok(TagFilters {
            include: regexes("include", raw.include)?,
            exclude: regexes("exclude", raw.exclude)?,
            semver,
            created_within: duration("created_within", raw.created_within)?,
            older_than: duration("older_than", raw.older_than)?,
            latest: count("latest", raw.latest)?,
            newest: count("newest", raw.newest)?,
            immutable: immutable.into_iter().next(),
            min_tags: count("min_tags", raw.min_tags)?,
        })
    }

    /// Adds a `/regex/` key's expression to `include`.
    pub fn add_include(&mut self, text: &str) -> Result<(), String> {
        self.include.push(TagRegex::new(text)?);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.semver.is_none()
            && self.created_within.is_none()
            && self.older_than.is_none()
            && self.latest.is_none()
            && self.newest.is_none()
    }

    /// Whether applying the filters needs each candidate's creation time.
    pub fn needs_created(&self) -> bool {
        self.created_within.is_some() || self.older_than.is_some() || self.newest.is_some()
    }

    /// The filters as `validate --format json` shows them (only those set).
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        let texts = |list: &[TagRegex]| list.iter().map(|r| r.text.clone()).collect::<Vec<_>>();
        if !self.include.is_empty() {
            out.insert("include".into(), texts(&self.include).into());
        }
        if !self.exclude.is_empty() {
            out.insert("exclude".into(), texts(&self.exclude).into());
        }
        if let Some((text, _)) = &self.semver {
            out.insert("semver".into(), text.clone().into());
        }
        if let Some((text, _)) = &self.created_within {
            out.insert("created_within".into(), text.clone().into());
        }
        if let Some((text, _)) = &self.older_than {
            out.insert("older_than".into(), text.clone().into());
        }
        if let Some(regex) = &self.immutable {
            out.insert("immutable".into(), regex.text.clone().into());
        }
        if let Some(n) = self.min_tags {
            out.insert("min_tags".into(), n.into());
        }
        if let Some(n) = self.latest {
            out.insert("latest".into(), n.into());
        }
        if let Some(n) = self.newest {
            out.insert("newest".into(), n.into());
        }
        serde_json::Value::Object(out)
    }

    /// One line for the text output of `validate`, e.g. `include /^v3\./; latest 5`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let slashed = |list: &[TagRegex]| {
            list.iter()
                .map(|r| format!("/{}/", r.text))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !self.include.is_empty() {
            parts.push(format!("include {}", slashed(&self.include)));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("exclude {}", slashed(&self.exclude)));
        }
        if let Some((text, _)) = &self.semver {
            parts.push(format!("semver {text}"));
        }
        if let Some((text, _)) = &self.created_within {
            parts.push(format!("created within {text}"));
        }
        if let Some((text, _)) = &self.older_than {
            parts.push(format!("older than {text}"));
        }
        if let Some(n) = self.latest {
            parts.push(format!("latest {n}"));
        }
        if let Some(n) = self.newest {
            parts.push(format!("newest {n}"));
        }
        if let Some(regex) = &self.immutable {
            parts.push(format!("immutable /{}/", regex.text));
        }
        if let Some(n) = self.min_tags {
            parts.push(format!("at least {n} tag(s)"));
        }
        parts.join("; ")
    }

    /// The first, cheap step: `include`, `exclude` and `semver`, in listing order. What is
    /// left are the only tags whose creation time is ever needed.
    pub fn prefilter(&self, tags: &[String]) -> Vec<String> {
        tags.iter()
            .filter(|t| self.include.is_empty() || self.include.iter().any(|r| r.is_match(t)))
            .filter(|t| !self.exclude.iter().any(|r| r.is_match(t)))
            .filter(|t| match &self.semver {
                Some((_, range)) => version_of(t).is_some_and(|v| range.matches(&v)),
                None => true,
            })
            .cloned()
            .collect()
    }

    /// The second step, on the prefiltered tags with their creation times (`None` = not
    /// read, or the image does not say; such tags are dropped by the time-based filters):
    /// `created_within`, `older_than`, `latest`, `newest`. Listing order is kept.
    pub fn finish(
        &self,
        candidates: Vec<(String, Option<SystemTime>)>,
        now: SystemTime,
    ) -> Vec<String> {
        let mut kept = candidates;
        if let Some((_, within)) = &self.created_within {
            let since = now.checked_sub(*within).unwrap_or(SystemTime::UNIX_EPOCH);
            kept.retain(|(_, time)| time.is_some_and(|t| t >= since));
        }
        if let Some((_, cooldown)) = &self.older_than {
            let until = now.checked_sub(*cooldown).unwrap_or(SystemTime::UNIX_EPOCH);
            kept.retain(|(_, time)| time.is_some_and(|t| t <= until));
        }
        if let Some(n) = self.latest {
            let mut versioned: Vec<(semver::Version, String)> = kept
                .iter()
                .filter_map(|(t, _)| version_of(t).map(|v| (v, t.clone())))
                .collect();
            versioned.sort_by(|a, b| b.0.cmp(&a.0));
            let highest: Vec<String> = versioned.into_iter().take(n).map(|(_, t)| t).collect();
            kept.retain(|(t, _)| highest.contains(t));
        }
        if let Some(n) = self.newest {
            let mut dated: Vec<(SystemTime, String)> = kept
                .iter()
                .filter_map(|(t, time)| time.map(|x| (x, t.clone())))
                .collect();
            dated.sort_by_key(|(time, _)| Reverse(*time));
            let newest: Vec<String> = dated.into_iter().take(n).map(|(_, t)| t).collect();
            kept.retain(|(t, _)| newest.contains(t));
        }
        kept.into_iter().map(|(t, _)| t).collect()
    }
}

/// A tag read as SemVer, a leading `v` allowed (`v3.5.2`, `3.5.2-rc.1`).
fn version_of(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(json: serde_json::Value) -> Result<TagFilters, String> {
        let text = json.to_string();
        let node = crate::config::yaml::parse(&text).unwrap().unwrap();
        TagFilters::from_node(&node)
    }

    fn tags() -> Vec<String> {
        [
            "v3.4.0",
            "v3.5.1-rc.1",
            "latest",
            "v3.5.2",
            "3.6.0",
            "v4.0.0",
            "v3.5.0-alpha",
        ]
        .map(String::from)
        .to_vec()
    }

    fn select(f: &TagFilters) -> Vec<String> {
        let created = |tag: &str| {
            let day = match tag {
                "v3.4.0" => 1,
                "v3.5.2" => 3,
                "3.6.0" => 5,
                "v4.0.0" => 4,
                "latest" => 5,
                _ => return None,
            };
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(day * 86_400))
        };
        let candidates = f
            .prefilter(&tags())
            .into_iter()
            .map(|t| {
                let time = created(&t);
                (t, time)
            })
            .collect();
        f.finish(
            candidates,
            SystemTime::UNIX_EPOCH + Duration::from_secs(6 * 86_400),
        )
    }

    #[test]
    fn filters_apply_in_order() {
        let f = filters(serde_json::json!({"include": ["^v3\\."], "exclude": ["-rc", "alpha"]}))
            .unwrap();
        assert_eq!(select(&f), ["v3.4.0", "v3.5.2"]);
        let f = filters(serde_json::json!({"semver": ">=3.5.0, <4"})).unwrap();
        assert_eq!(select(&f), ["v3.5.2", "3.6.0"]);
        let f = filters(serde_json::json!({"latest": 2})).unwrap();
        assert_eq!(select(&f), ["3.6.0", "v4.0.0"]);
        let f = filters(serde_json::json!({"newest": 2})).unwrap();
        assert_eq!(select(&f), ["latest", "3.6.0"]);
        let f = filters(serde_json::json!({"created_within": "2d", "exclude": "latest"})).unwrap();
        assert_eq!(select(&f), ["3.6.0", "v4.0.0"]);
        // Cooldown: created at least 2 days before day 6 (day 4 or earlier); tags without
        // a creation time are left out.
        let f = filters(serde_json::json!({"older_than": "2d"})).unwrap();
        assert_eq!(select(&f), ["v3.4.0", "v3.5.2", "v4.0.0"]);
    }

    #[test]
    fn immutable_and_min_tags_select_nothing() {
        let f = filters(serde_json::json!({"immutable": "^v", "min_tags": 3})).unwrap();
        assert!(f.is_empty(), "neither narrows the selection");
        assert!(f.immutable.as_ref().unwrap().is_match("v1"));
        assert_eq!(f.min_tags, Some(3));
        assert_eq!(f.describe(), "immutable /^v/; at least 3 tag(s)");
    }

    #[test]
    fn bad_filters_are_named() {
        let bad = |json, needle: &str| {
            let e = filters(json).unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        bad(serde_json::json!({"latest": 0}), "at least 1");
        bad(serde_json::json!({"semver": ">=x"}), "not a semver range");
        bad(serde_json::json!({"include": ["(unclosed"]}), "/(unclosed/");
        bad(
            serde_json::json!({"created_within": "soon"}),
            "not a duration",
        );
        bad(serde_json::json!({"lastest": 3}), "unknown field `lastest`");
        bad(serde_json::json!({"older_than": "later"}), "older_than");
        bad(
            serde_json::json!({"min_tags": 0}),
            "min_tags must be at least 1",
        );
        bad(serde_json::json!({"immutable": "(x"}), "\"tags\".immutable");
    }
}
