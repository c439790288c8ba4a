//! Which repository: a registry and a repository path, as one value. Caches and claims
//! key on it, and messages print it, instead of a `(String, String)` pair whose order
//! each reader must remember.

use std::fmt;

use super::TagOrDigest;

/// A repository on a registry (`registry/repository`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoId {
    pub registry: String,
    pub repository: String,
}

impl RepoId {
    pub fn new(registry: impl Into<String>, repository: impl Into<String>) -> Self {
        RepoId {
            registry: registry.into(),
            repository: repository.into(),
        }
    }

    /// `registry/repository:tag` or `registry/repository@digest`, for messages.
    pub fn at(&self, reference: &TagOrDigest) -> String {
        format!("{self}{}{reference}", reference.separator())
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_prints_as_docker_names_it() {
        let id = RepoId::new("localhost:5000", "team/app");
        assert_eq!(id.to_string(), "localhost:5000/team/app");
        let tag = TagOrDigest::parse("v1").unwrap();
        assert_eq!(id.at(&tag), "localhost:5000/team/app:v1");
        let digest = format!("sha256:{}", "a".repeat(64));
        let digest = TagOrDigest::parse(&digest).unwrap();
        assert_eq!(id.at(&digest), format!("localhost:5000/team/app@{digest}"));
        // Told apart by both parts, whatever they print as.
        assert_ne!(RepoId::new("r.io", "a/b"), RepoId::new("r.io/a", "b"));
    }
}
