//! What kind of registry a host is (Harbor, Huawei SWR, Amazon ECR, Docker Hub, Quay or
//! plain distribution), and where its management API lives. Listing repositories and
//! creating targets go through each vendor's own API, so the kind decides which one is
//! asked. Pure: the host's name, and auth.json's `kind`/`region`/`api`, are all it reads;
//! recognising Harbor by its ping is `vendor`'s (it needs the network).

use std::fmt;

/// A registry's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Harbor,
    Swr,
    Ecr,
    #[serde(rename = "dockerhub")]
    DockerHub,
    Quay,
    Distribution,
}

/// The values auth.json's `"kind"` accepts.
pub const SETTABLE: [&str; 4] = ["harbor", "swr", "ecr", "distribution"];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Harbor => "harbor",
            Kind::Swr => "swr",
            Kind::Ecr => "ecr",
            Kind::DockerHub => "dockerhub",
            Kind::Quay => "quay",
            Kind::Distribution => "distribution",
        }
    }

    /// auth.json's `"kind"` value; `None` for anything but [`SETTABLE`].
    pub fn parse(value: &str) -> Option<Kind> {
        match value {
            "harbor" => Some(Kind::Harbor),
            "swr" => Some(Kind::Swr),
            "ecr" => Some(Kind::Ecr),
            "distribution" => Some(Kind::Distribution),
            _ => None,
        }
    }

    /// Whether the kind's API needs a region (signed requests name it).
    pub fn needs_region(self) -> bool {
        matches!(self, Kind::Swr | Kind::Ecr)
    }

    /// What the "container" of a repository is on this kind, that `--create-targets`
    /// makes: the project (Harbor), the organization (SWR), the repository itself (ECR).
    pub fn container(self) -> Option<&'static str> {
        match self {
            Kind::Harbor => Some("project"),
            Kind::Swr => Some("organization"),
            Kind::Ecr => Some("repository"),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a host's name says: the kind, and the region when the name carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKind {
    pub kind: Kind,
    pub region: Option<String>,
    /// `.cn` (AWS China) or `.eu` (Huawei Cloud Europe): the API is in the same partition.
    pub suffix: &'static str,
}

/// The kind a registry's host names (`registry` is canonical: Docker Hub is `docker.io`):
/// `swr.<region>.myhuaweicloud.com` (and `.eu`), `<account>.dkr.ecr.<region>.amazonaws.com`
/// (and `.com.cn`), `docker.io`, `quay.io`. `None` for any other host: Harbor or plain
/// distribution, which only asking tells apart.
pub fn from_host(registry: &str) -> Option<HostKind> {
    let host = registry.split(':').next().unwrap_or(registry);
    let known = |kind, region: Option<&str>, suffix| {
        Some(HostKind {
            kind,
            region: region.map(str::to_string),
            suffix,
        })
    };
    if host == "docker.io" {
        return known(Kind::DockerHub, None, "");
    }
    if host == "quay.io" {
        return known(Kind::Quay, None, "");
    }
    for (suffix, tail) in [("", ".myhuaweicloud.com"), (".eu", ".myhuaweicloud.eu")] {
        if let Some(region) = host
            .strip_prefix("swr.")
            .and_then(|rest| rest.strip_suffix(tail))
            .filter(|region| is_region(region))
        {
            return known(Kind::Swr, Some(region), suffix);
        }
    }
    for (suffix, tail) in [("", ".amazonaws.com"), (".cn", ".amazonaws.com.cn")] {
        if let Some(rest) = host.strip_suffix(tail)
            && let Some((account, region)) = rest.split_once(".dkr.ecr.")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && is_region(region)
        {
            return known(Kind::Ecr, Some(region), suffix);
        }
    }
    None
}

/// A region name: lowercase letters, digits and `-` (`cn-north-4`, `eu-west-1`).
pub fn is_region(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 40
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// The management API's default base URL for a kind; `registry_base` is the registry's
/// own (`https://host`), which Harbor's API shares. `None` when the kind has no API of its
/// own (plain distribution) or a needed region is unknown.
pub fn default_api(
    kind: Kind,
    region: Option<&str>,
    suffix: &str,
    registry_base: &str,
) -> Option<String> {
    match kind {
        Kind::Harbor | Kind::Distribution => Some(registry_base.to_string()),
        Kind::Swr => region.map(|r| format!("https://swr-api.{r}.myhuaweicloud.com{suffix}")),
        Kind::Ecr => region.map(|r| {
            let tail = if suffix == ".cn" { ".com.cn" } else { ".com" };
            format!("https://api.ecr.{r}.amazonaws{tail}")
        }),
        Kind::DockerHub => Some("https://hub.docker.com".to_string()),
        Kind::Quay => Some("https://quay.io".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(host: &str) -> Option<(Kind, Option<String>)> {
        from_host(host).map(|h| (h.kind, h.region))
    }

    #[test]
    fn hosts_that_name_their_kind() {
        let swr = |r: &str| Some((Kind::Swr, Some(r.to_string())));
        let ecr = |r: &str| Some((Kind::Ecr, Some(r.to_string())));
        assert_eq!(kind("swr.cn-north-4.myhuaweicloud.com"), swr("cn-north-4"));
        assert_eq!(kind("swr.eu-west-101.myhuaweicloud.eu"), swr("eu-west-101"));
        assert_eq!(
            kind("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            ecr("eu-west-1")
        );
        assert_eq!(
            kind("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            ecr("cn-north-1")
        );
        assert_eq!(kind("docker.io"), Some((Kind::DockerHub, None)));
        assert_eq!(kind("quay.io"), Some((Kind::Quay, None)));
        for other in [
            "harbor.example.com",
            "localhost:5000",
            "swr.myhuaweicloud.com",
            "swr..myhuaweicloud.com",
            "12345.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.io",
            "ghcr.io",
        ] {
            assert_eq!(kind(other), None, "{other}");
        }
    }

    #[test]
    fn default_apis() {
        let api = |host: &str| {
            let h = from_host(host).unwrap();
            default_api(h.kind, h.region.as_deref(), h.suffix, "https://x")
        };
        assert_eq!(
            api("swr.cn-north-4.myhuaweicloud.com").unwrap(),
            "https://swr-api.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(
            api("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap(),
            "https://api.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            api("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").unwrap(),
            "https://api.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            default_api(Kind::Harbor, None, "", "http://h:1").unwrap(),
            "http://h:1"
        );
        assert_eq!(default_api(Kind::Swr, None, "", "https://x"), None);
    }
}
