//! `config --from-registry`'s rules: one whole-repository rule per listed repository under
//! the source namespace, its path below the namespace kept under the target, filtered by
//! `--include`/`--exclude` (unanchored regexes over that path; exclude wins). Pure.

use std::collections::BTreeMap;

use regex::Regex;

use crate::reference::Location;

/// `--include` and `--exclude`, compiled.
#[derive(Debug, Default)]
pub struct PathFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl PathFilter {
    /// Compiles the expressions; an invalid one is an error naming its flag.
    pub fn new(include: &[String], exclude: &[String]) -> Result<PathFilter, String> {
        let compile = |flag: &str, list: &[String]| {
            list.iter()
                .map(|re| Regex::new(re).map_err(|e| format!("{flag} {re:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(PathFilter {
            include: compile("--include", include)?,
            exclude: compile("--exclude", exclude)?,
        })
    }

    pub fn keeps(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|re| re.is_match(path)))
            && !self.exclude.iter().any(|re| re.is_match(path))
    }
}

/// The path of `repository` below `namespace` (at a `/` boundary); the last segment when
/// the repository is the namespace itself; `None` when the namespace does not cover it.
pub fn below(namespace: Option<&str>, repository: &str) -> Option<String> {
    match namespace {
        None => Some(repository.to_string()),
        Some(ns) if repository == ns => repository.rsplit('/').next().map(str::to_string),
        Some(ns) => repository
            .strip_prefix(ns)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty())
            .map(str::to_string),
    }
}

/// The rules, source → target, sorted by source; and how many repositories the filter
/// left out.
pub fn rules(
    source: &Location,
    repositories: &[String],
    target: &Location,
    filter: &PathFilter,
) -> (BTreeMap<String, String>, usize) {
    let mut out = BTreeMap::new();
    let mut filtered = 0;
    for repository in repositories {
        let Some(path) = below(source.namespace.as_deref(), repository) else {
            continue;
        };
        if !filter.keeps(&path) {
            filtered += 1;
            continue;
        }
        let to = match &target.namespace {
            Some(ns) => format!("{}/{ns}/{path}", target.registry),
            None => format!("{}/{path}", target.registry),
        };
        out.insert(format!("{}/{repository}", source.registry), to);
    }
    (out, filtered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(value: &str) -> Location {
        Location::parse(value).unwrap()
    }

    #[test]
    fn the_namespace_matches_at_a_slash_and_the_path_below_is_kept() {
        let repos: Vec<String> = ["team/a", "team/b/c", "team-x/d", "teamy", "other/e"]
            .map(String::from)
            .to_vec();
        let (rules, filtered) = rules(
            &location("h.io/team"),
            &repos,
            &location("swr.cn-north-4.myhuaweicloud.com/moved"),
            &PathFilter::default(),
        );
        assert_eq!(filtered, 0);
        assert_eq!(
            rules.into_iter().collect::<Vec<_>>(),
            [
                (
                    "h.io/team/a".to_string(),
                    "swr.cn-north-4.myhuaweicloud.com/moved/a".to_string()
                ),
                (
                    "h.io/team/b/c".to_string(),
                    "swr.cn-north-4.myhuaweicloud.com/moved/b/c".to_string()
                ),
            ]
        );
    }

    #[test]
    fn exclude_wins_over_include() {
        let filter =
            PathFilter::new(&["^b/".to_string(), "a".to_string()], &["c$".to_string()]).unwrap();
        assert!(filter.keeps("a"));
        assert!(filter.keeps("b/x"));
        assert!(!filter.keeps("b/c"));
        assert!(!filter.keeps("d"));
        let error = PathFilter::new(&[], &["(".to_string()]).unwrap_err();
        assert!(error.starts_with("--exclude \"(\""), "{error}");
    }

    #[test]
    fn without_namespaces() {
        assert_eq!(below(None, "a/b"), Some("a/b".into()));
        assert_eq!(below(Some("a/b"), "a/b"), Some("b".into()));
        let (rules, _) = rules(
            &location("h.io"),
            &["x/y".to_string()],
            &location("t.io"),
            &PathFilter::default(),
        );
        assert_eq!(rules["h.io/x/y"], "t.io/x/y");
    }
}
