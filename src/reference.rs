//! Image references (`registry/namespace/repository[:tag][@digest]`): the distribution
//! reference grammar, Docker Hub's aliases and `library/` normalization, in one place so
//! that configuration, planning and reports all name images the same way.

mod grammar;
mod repo_id;
mod tag_or_digest;

use std::fmt;

use crate::digest::Digest;
pub use grammar::is_valid_tag;
use grammar::{error, split_reference, validate_path, validate_registry, validate_tag};
pub use repo_id::RepoId;
pub use tag_or_digest::{Tag, TagOrDigest};

/// The canonical name of Docker Hub in references, reports and auth matching.
pub const DOCKER_HUB: &str = "docker.io";

/// Names Docker treats as Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Longest accepted repository name, registry included (distribution's `NameTotalLengthMax`).
pub const NAME_MAX: usize = 255;
/// Longest accepted tag.
pub const TAG_MAX: usize = 128;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port when given; Docker Hub aliases become `docker.io`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/nginx` or `coreos/etcd`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {value:?}: {reason}")]
pub struct ReferenceError {
    pub value: String,
    pub reason: String,
}

impl Reference {
    /// Parses a fully qualified reference whose first segment must be a registry host,
    /// as images.json requires (`docker.io/library/nginx`, never `nginx`).
    pub fn parse(value: &str) -> Result<Self, ReferenceError> {
        let (name, tag, digest) = split_reference(value)?;
        let (first, rest) = match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => (first, rest),
            _ => {
                return Err(error(
                    value,
                    "must start with a registry host, e.g. docker.io/library/nginx or \
                     quay.io/coreos/etcd (Docker Hub images need the docker.io/ prefix)",
                ));
            }
        };
        Self::build(value, first, rest, tag, digest)
    }

    /// Parses a reference the way `docker pull` does: a missing registry means Docker Hub,
    /// and a one-segment Docker Hub path gets `library/`. The tag stays `None` when absent.
    pub fn parse_normalized(value: &str) -> Result<Self, ReferenceError> {
        let (name, tag, digest) = split_reference(value)?;
        match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => {
                Self::build(value, first, rest, tag, digest)
            }
            _ => Self::build(value, DOCKER_HUB, name, tag, digest),
        }
    }

    fn build(
        value: &str,
        registry: &str,
        path: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Self, ReferenceError> {
        validate_registry(value, registry)?;
        let registry = canonical_registry(registry);
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        validate_path(value, &repository)?;
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(error(
                value,
                &format!("repository name is longer than {NAME_MAX} characters"),
            ));
        }
        if let Some(tag) = tag {
            validate_tag(value, tag)?;
        }
        let digest = digest
            .map(Digest::parse)
            .transpose()
            .map_err(|e| error(value, e.reason))?;
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Number of `/`-separated segments in the repository path.
    pub fn path_segments(&self) -> usize {
        self.repository.split('/').count()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A registry with an optional namespace path under it: an auth.json key, a `config
/// --target`, a default location (`host[:port]` or `host[:port]/namespace[/…]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Canonical (Docker Hub's aliases are `docker.io`).
    pub registry: String,
    pub namespace: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{namespace}", self.registry),
            None => write!(f, "{}", self.registry),
        }
    }
}

impl Location {
    /// `host[:port]` or `host[:port]/namespace[/…]`, without a scheme, tag or digest.
    pub fn parse(value: &str) -> Result<Location, ReferenceError> {
        if value.contains("://") {
            return Err(error(
                value,
                "must not contain a URL scheme; write host[/namespace]",
            ));
        }
        if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(error(
                value,
                &format!("contains whitespace or control character {c:?}"),
            ));
        }
        let (host, path) = match value.split_once('/') {
            Some((host, path)) => (host, Some(path)),
            None => (value, None),
        };
        if !looks_like_registry(host) {
            return Err(error(
                value,
                "must start with a registry host such as docker.io, quay.io or localhost:5000",
            ));
        }
        validate_registry(value, host)?;
        if let Some(path) = path {
            validate_path(value, path)?;
        }
        Ok(Location {
            registry: canonical_registry(host),
            namespace: path.map(str::to_string),
        })
    }
}

/// Checks a namespace path on its own (`--default-namespace`): lowercase components with
/// single separators between them.
pub fn check_namespace(value: &str) -> Result<(), ReferenceError> {
    validate_path(value, value)
}

/// `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry.
pub fn canonical_registry(host: &str) -> String {
    if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB.to_string()
    } else {
        host.to_string()
    }
}

/// Docker's rule: the first segment is a registry when it has a `.` or `:`, is
/// `localhost`, or is a bracketed IPv6 address.
pub fn looks_like_registry(segment: &str) -> bool {
    segment.contains('.')
        || segment.contains(':')
        || segment == "localhost"
        || segment.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(value: &str) -> Reference {
        Reference::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    fn rejects(value: &str, needle: &str) {
        assert!(
            !needle.is_empty(),
            "{value}: an empty needle matches every reason"
        );
        let err = Reference::parse(value).expect_err(value);
        assert!(err.reason.contains(needle), "{value}: {}", err.reason);
    }

    #[test]
    fn splits_registry_repository_tag() {
        let r = parse("quay.io/coreos/etcd:v3.5.0");
        assert_eq!(r.registry, "quay.io");
        assert_eq!(r.repository, "coreos/etcd");
        assert_eq!(r.tag.as_deref(), Some("v3.5.0"));
        assert_eq!(r.digest, None);
    }

    #[test]
    fn port_is_not_a_tag() {
        let r = parse("localhost:5000/ns/repo");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "ns/repo");
        assert_eq!(r.tag, None);
        let r = parse("localhost:5000/ns/repo:1.0");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
    }

    #[test]
    fn ipv6_hosts_in_brackets() {
        let r = parse("[::1]:5000/ns/repo:tag");
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(r.repository, "ns/repo");
        assert_eq!(r.tag.as_deref(), Some("tag"));
        let r = parse("[2001:db8::1]/ns/repo");
        assert_eq!(r.registry, "[2001:db8::1]");
        assert_eq!(r.tag, None);
        rejects("[::1/ns/repo", "unclosed");
    }

    #[test]
    fn docker_hub_aliases_are_one_registry_and_library_only_for_one_segment() {
        assert_eq!(parse("index.docker.io/library/nginx").registry, "docker.io");
        assert_eq!(
            parse("registry-1.docker.io/library/nginx").registry,
            "docker.io"
        );
        let r = Reference::parse_normalized("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        let r = Reference::parse_normalized("bitnami/redis:7").unwrap();
        assert_eq!(r.to_string(), "docker.io/bitnami/redis:7");
        let r = Reference::parse_normalized("docker.io/nginx").unwrap();
        assert_eq!(r.repository, "library/nginx");
        // library/ is only added on Docker Hub.
        let r = Reference::parse_normalized("quay.io/etcd").unwrap();
        assert_eq!(r.repository, "etcd");
        let r = Reference::parse_normalized("localhost/etcd").unwrap();
        assert_eq!(r.repository, "etcd");
    }

    #[test]
    fn strict_parse_requires_registry() {
        rejects("nginx", "registry host");
        rejects("library/nginx:1", "docker.io/library/nginx");
    }

    #[test]
    fn digests() {
        let r = parse(&format!("quay.io/coreos/etcd@{DIGEST}"));
        assert_eq!(r.digest.unwrap().as_str(), DIGEST);
        assert_eq!(r.tag, None);
        let r = parse(&format!("quay.io/coreos/etcd:1.0@{DIGEST}"));
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        rejects("quay.io/coreos/etcd@sha256:abc", "64 hex");
        rejects(
            &format!("quay.io/coreos/etcd@{}", DIGEST.to_uppercase()),
            "lowercase",
        );
    }

    #[test]
    fn uppercase_repository_rejected() {
        rejects("quay.io/CoreOS/etcd", "lowercase");
        // Uppercase in the registry host is fine.
        assert_eq!(parse("Quay.IO/coreos/etcd").registry, "Quay.IO");
    }

    #[test]
    fn path_component_separators() {
        for ok in ["a.b/c", "a_b/c", "a__b/c", "a---b/c", "a0/b1"] {
            parse(&format!("example.com/{ok}"));
        }
        for bad in [
            "-a/b", "a-/b", "a..b/c", "a___b/c", "a._b/c", "a//b", "a/b/", ".a/b",
        ] {
            assert!(
                Reference::parse(&format!("example.com/{bad}")).is_err(),
                "{bad} should be rejected"
            );
        }
        rejects("example.com/ns/../repo", "path component");
    }

    #[test]
    fn tags() {
        parse(&format!("example.com/a/b:{}", "t".repeat(128)));
        rejects(&format!("example.com/a/b:{}", "t".repeat(129)), "128");
        rejects("example.com/a/b:.x", "invalid tag");
        rejects("example.com/a/b:-x", "invalid tag");
        rejects("example.com/a/b:", "tag is empty");
        parse("example.com/a/b:_x.Y-1");
    }

    #[test]
    fn name_length_limit() {
        let long = "a".repeat(NAME_MAX);
        rejects(&format!("example.com/ns/{long}"), "255");
        let fits = "a".repeat(NAME_MAX - "example.com/ns/".len());
        parse(&format!("example.com/ns/{fits}"));
    }

    #[test]
    fn hostile_strings() {
        rejects("https://quay.io/coreos/etcd", "scheme");
        rejects("quay.io/coreos/etcd :1", "whitespace");
        rejects("quay.io/coreos/etcd\r", "control");
        // User information before the host: the part before '@' is read as the name, and
        // it has no registry host.
        rejects(
            "user@quay.io/coreos/etcd",
            "must start with a registry host",
        );
        rejects(
            "robot.example.com@quay.io/coreos/etcd",
            "must start with a registry host",
        );
        rejects("quay.io:99999/a/b", "port");
        rejects("quay.io:/a/b", "port");
        rejects("qu_ay.io/a/b", "host");
        rejects("", "empty");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "quay.io/coreos/etcd",
            "quay.io/coreos/etcd:1",
            "localhost:5000/a/b/c:x",
            "[::1]:5000/a/b",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn locations_are_a_registry_and_an_optional_namespace() {
        let hub = Location::parse("index.docker.io/library").unwrap();
        assert_eq!(hub.registry, "docker.io");
        assert_eq!(hub.namespace.as_deref(), Some("library"));
        assert_eq!(hub.to_string(), "docker.io/library");
        let bare = Location::parse("harbor.example.com:8443").unwrap();
        assert_eq!(bare.namespace, None);
        assert_eq!(bare.to_string(), "harbor.example.com:8443");
        for bad in [
            "https://r.io",
            "r.io/Upper",
            "r.io/a//b",
            "nginx",
            "r.io/a b",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert!(check_namespace("team/sub-team").is_ok());
        assert!(check_namespace("Team").is_err());
    }
}
