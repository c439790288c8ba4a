//! What names a manifest inside a repository: a tag or a digest, told apart once when
//! the string is read, so that no caller sniffs a string with `Digest::parse(..).is_ok()`
//! and no unchecked name reaches a URL.

use std::fmt;

use super::ReferenceError;
use super::grammar::{error, validate_tag};
use crate::digest::Digest;

/// A tag that matches the tag grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(value: &str) -> Result<Tag, ReferenceError> {
        validate_tag(value, value)?;
        Ok(Tag(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A manifest's name in a repository: `:tag` or `@digest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TagOrDigest {
    Tag(Tag),
    Digest(Digest),
}

impl TagOrDigest {
    /// A digest when `value` reads as one (`sha256:<64 hex>`), else a tag; neither is an
    /// error naming both reasons.
    pub fn parse(value: &str) -> Result<TagOrDigest, ReferenceError> {
        let not_a_digest = match Digest::parse(value) {
            Ok(digest) => return Ok(TagOrDigest::Digest(digest)),
            Err(e) => e.reason,
        };
        match Tag::parse(value) {
            Ok(tag) => Ok(TagOrDigest::Tag(tag)),
            Err(not_a_tag) => Err(error(
                value,
                &format!(
                    "neither a tag ({}) nor a digest ({not_a_digest})",
                    not_a_tag.reason
                ),
            )),
        }
    }

    /// The tag or the digest, as it goes in a URL.
    pub fn as_str(&self) -> &str {
        match self {
            TagOrDigest::Tag(tag) => tag.as_str(),
            TagOrDigest::Digest(digest) => digest.as_str(),
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match self {
            TagOrDigest::Digest(digest) => Some(digest),
            TagOrDigest::Tag(_) => None,
        }
    }

    /// What joins it to a repository name in a reference: `:` before a tag, `@` before a
    /// digest.
    pub fn separator(&self) -> char {
        match self {
            TagOrDigest::Tag(_) => ':',
            TagOrDigest::Digest(_) => '@',
        }
    }
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Digest> for TagOrDigest {
    fn from(digest: Digest) -> Self {
        TagOrDigest::Digest(digest)
    }
}

impl From<Tag> for TagOrDigest {
    fn from(tag: Tag) -> Self {
        TagOrDigest::Tag(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_digest_is_a_digest_and_a_tag_a_tag() {
        let digest = TagOrDigest::parse(DIGEST).unwrap();
        assert_eq!(digest.digest().map(Digest::as_str), Some(DIGEST));
        assert_eq!(digest.separator(), '@');
        assert_eq!(digest.to_string(), DIGEST);

        for tag in ["latest", "v1.2.3", "_x.Y-1", "sha256-e3b0c442"] {
            let parsed = TagOrDigest::parse(tag).unwrap();
            assert_eq!(parsed, TagOrDigest::Tag(Tag::parse(tag).unwrap()), "{tag}");
            assert_eq!(parsed.digest(), None);
            assert_eq!(parsed.separator(), ':');
            assert_eq!(parsed.as_str(), tag);
            assert_eq!(parsed.to_string(), tag);
        }
        assert_eq!(
            TagOrDigest::from(Digest::parse(DIGEST).unwrap()),
            TagOrDigest::parse(DIGEST).unwrap()
        );
    }

    #[test]
    fn what_is_neither_says_why() {
        for (value, why) in [
            ("sha256:abc", "64 hex"),
            ("", "tag is empty"),
            (".hidden", "invalid tag"),
            ("a/b", "invalid tag"),
            ("x?y", "invalid tag"),
            (&"t".repeat(129), "128"),
            (&DIGEST.to_uppercase(), "lowercase"),
        ] {
            let error = TagOrDigest::parse(value).expect_err(value);
            assert!(error.reason.contains("neither a tag"), "{value}: {error}");
            assert!(error.reason.contains(why), "{value}: {error}");
            assert_eq!(error.value, value);
        }
        assert!(Tag::parse("a:b").is_err());
    }
}
