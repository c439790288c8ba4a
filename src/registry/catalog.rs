//! A registry's `_catalog` (distribution's listing of its repositories), for `config
//! --from-registry` on a registry that has no API of its own: every page followed by its
//! `Link`, within the bounds of tag lists.

use std::collections::HashSet;

use super::url::{next_link, resolve_url};
use super::{Access, Client, paths};
use crate::error::{Error, Result};
use crate::http::{Method, RequestStats, bounds};

/// Repositories asked for per page.
const CATALOG_PAGE: usize = 1000;

impl Client {
    /// Every repository of the registry's `_catalog` (distribution's listing), following
    /// `Link` pages, bounded as tag lists are: a page of at most
    /// [`bounds::MAX_TAG_PAGE_BYTES`], no page twice, at most
    /// [`bounds::MAX_TAGS_PER_REPOSITORY`] names. `namespace` picks the credentials (as
    /// for a repository under it); the caller filters.
    pub fn catalog(
        &self,
        registry: &str,
        namespace: Option<&str>,
        stats: &RequestStats,
    ) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let repo = self.repo(registry, namespace.unwrap_or_default(), Access::Catalog);
        let base = repo.base()?;
        let first = paths::catalog(CATALOG_PAGE);
        let what = format!("GET {base}/v2/_catalog");
        let mut visited = HashSet::from([resolve_url(&base, &first)]);
        let mut next = Some(first);
        let mut names = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            let response = repo.retrying_request(Method::Get, &path, &[], stats)?;
            if response.status != 200 {
                return Err(response.describe_error(&what));
            }
            next = response
                .header("link")
                .and_then(next_link)
                .map(|link| link.to_string());
            let body = response.read_bounded(
                bounds::MAX_TAG_PAGE_BYTES,
                &format!("{what}, page {pages},"),
            )?;
            let page: Catalog = serde_json::from_slice(&body)
                .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
            names.extend(page.repositories.unwrap_or_default());
            if names.len() > bounds::MAX_TAGS_PER_REPOSITORY
                || pages > bounds::MAX_TAGS_PER_REPOSITORY
            {
                return Err(Error::protocol(format!(
                    "{what}: more than {} repositories; name a namespace",
                    bounds::MAX_TAGS_PER_REPOSITORY
                )));
            }
            if let Some(link) = &next
                && !visited.insert(resolve_url(&base, link))
            {
                return Err(Error::protocol(format!(
                    "{what}: the pagination loops (page {pages} links back to {}, a page already read)",
                    bounds::escaped(link, 200)
                )));
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}
