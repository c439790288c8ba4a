//! Compact keys for what the ledger and the claims remember: a digest in 33 bytes
//! instead of a string of 71 on the heap, and each registry and repository name stored
//! once and named by a number.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// A digest as a key: a sha256 digest's own 32 bytes; a digest of any other algorithm
/// by the sha256 of its whole text (the copy rests on sha256 not colliding anyway),
/// the flag keeping the two kinds apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(in crate::copy) struct DigestKey {
    hashed_text: bool,
    bytes: [u8; 32],
}

impl From<&Digest> for DigestKey {
    fn from(digest: &Digest) -> Self {
        let mut bytes = [0; 32];
        match digest.as_str().strip_prefix("sha256:") {
            Some(hex) if hex::decode_to_slice(hex, &mut bytes).is_ok() => DigestKey {
                hashed_text: false,
                bytes,
            },
            _ => DigestKey {
                hashed_text: true,
                bytes: Sha256::digest(digest.as_str()).into(),
            },
        }
    }
}

/// A name's number in [`Names`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(in crate::copy) struct NameId(u32);

/// Names (registries, repositories) stored once each, numbered as first seen. They are
/// never forgotten: a run names few of them next to its blobs and tags.
#[derive(Default)]
pub(in crate::copy) struct Names {
    ids: HashMap<Arc<str>, NameId>,
    names: Vec<Arc<str>>,
}

impl Names {
    /// The number of `name`, given on first sight.
    pub(in crate::copy) fn id(&mut self, name: &str) -> NameId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = NameId(u32::try_from(self.names.len()).expect("fewer than 2^32 names"));
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub(in crate::copy) fn name(&self, id: NameId) -> &str {
        &self.names[id.0 as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_any_algorithm_make_distinct_keys() {
        let sha256 = Digest::sha256_of(b"a");
        let sha512 = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
        let other = Digest::parse(&format!("sha512:{}", "b".repeat(128))).unwrap();
        assert_eq!(DigestKey::from(&sha256), DigestKey::from(&sha256.clone()));
        assert_eq!(DigestKey::from(&sha512), DigestKey::from(&sha512.clone()));
        assert_ne!(DigestKey::from(&sha512), DigestKey::from(&other));
        assert_ne!(DigestKey::from(&sha256), DigestKey::from(&sha512));
        // The digest of a blob whose content is another digest's text: the same 32
        // bytes as that digest's key, kept apart by the flag.
        let text_of_sha512 = Digest::sha256_of(sha512.as_str().as_bytes());
        assert_ne!(DigestKey::from(&text_of_sha512), DigestKey::from(&sha512));
        assert_eq!(std::mem::size_of::<DigestKey>(), 33);
    }

    #[test]
    fn a_name_is_stored_once_and_numbered() {
        let mut names = Names::default();
        let (a, b) = (names.id("a/one"), names.id("b/two"));
        assert_ne!(a, b);
        assert_eq!(names.id("a/one"), a);
        assert_eq!((names.name(a), names.name(b)), ("a/one", "b/two"));
        assert_eq!(names.names.len(), 2);
    }
}
