//! `Link`-paginated listings — a repository's tags, a registry's `_catalog` — walked in one
//! place, within one set of bounds: a page of at most [`bounds::MAX_TAG_PAGE_BYTES`], no
//! page read twice (a link back to one is a loop, an error), and at most
//! [`bounds::MAX_TAGS_PER_REPOSITORY`] pages. What a page holds, and how many names are too
//! many, the caller decides.

use std::collections::HashSet;

use super::Repo;
use super::url::{next_link, resolve_url};
use crate::error::{Error, Result};
use crate::http::{Method, RequestStats, bounds};

/// One listing to walk.
pub(super) struct Listing<'a> {
    /// The first page's path.
    pub first: String,
    /// What the listing is, for errors (`tag list of r.io/a`).
    pub what: &'a str,
    /// What a refused page says it was doing (`listing tags of r.io/a`).
    pub failing: &'a str,
    /// Whether a `404` on the first page means "no such listing" (`Ok(None)`).
    pub absent_is_none: bool,
}

impl Repo<'_> {
    /// Reads the first page and every page its `Link` headers lead to, handing each body to
    /// `page` (with the page's number); `None` when the first page is absent and that is
    /// allowed.
    pub(super) fn walk_pages(
        &self,
        listing: Listing,
        stats: &RequestStats,
        mut page: impl FnMut(Vec<u8>, usize) -> Result<()>,
    ) -> Result<Option<()>> {
        let what = listing.what;
        let base = self.base()?;
        let mut visited = HashSet::from([resolve_url(&base, &listing.first)]);
        let mut next = Some(listing.first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > bounds::MAX_TAGS_PER_REPOSITORY {
                return Err(Error::protocol(format!(
                    "{what}: more than {} pages; the pagination does not end",
                    bounds::MAX_TAGS_PER_REPOSITORY
                )));
            }
            let response = self.retrying_request(Method::Get, &path, &[], stats)?;
            if response.status == 404 && listing.absent_is_none && pages == 1 {
                response.discard();
                return Ok(None);
            }
            if response.status != 200 {
                return Err(response.describe_error(listing.failing));
            }
            next = response
                .header("link")
                .and_then(next_link)
                .map(|link| link.to_string());
            let body = response.read_bounded(
                bounds::MAX_TAG_PAGE_BYTES,
                &format!("{what}, page {pages},"),
            )?;
            page(body, pages)?;
            if let Some(link) = &next
                && !visited.insert(resolve_url(&base, link))
            {
                return Err(Error::protocol(format!(
                    "{what}: the pagination loops (page {pages} links back to {}, a page already read)",
                    bounds::escaped(link, 200)
                )));
            }
        }
        Ok(Some(()))
    }
}
