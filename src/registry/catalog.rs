//! A registry's `_catalog` (distribution's listing of its repositories), for `config
//! --from-registry` on a registry that has no API of its own: every page followed by its
//! `Link`, within the bounds of tag lists.

use super::pages::Listing;
use super::{Access, Client, paths};
use crate::error::{Error, Result};
use crate::http::{RequestStats, bounds};

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
        let what = format!("GET {}/v2/_catalog", repo.base()?);
        let listing = Listing {
            first: paths::catalog(CATALOG_PAGE),
            what: &what,
            failing: &what,
            absent_is_none: false,
        };
        let mut names = Vec::new();
        repo.walk_pages(listing, stats, |body, _| {
            let page: Catalog = serde_json::from_slice(&body)
                .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
            names.extend(page.repositories.unwrap_or_default());
            if names.len() > bounds::MAX_TAGS_PER_REPOSITORY {
                return Err(Error::protocol(format!(
                    "{what}: more than {} repositories; name a namespace",
                    bounds::MAX_TAGS_PER_REPOSITORY
                )));
            }
            Ok(())
        })?;
        names.sort();
        names.dedup();
        Ok(names)
    }
}
