//! A repository's tags (`GET /v2/<name>/tags/list`), every page followed by its `Link`,
//! within bounds: a page of at most [`bounds::MAX_TAG_PAGE_BYTES`], no page read twice,
//! and no more than [`bounds::MAX_TAGS_PER_REPOSITORY`] names, which is an error, never a
//! truncation. Names that are not tags are counted and skipped, never used.

use super::pages::Listing;
use super::{Repo, paths};
use crate::error::{Error, Result};
use crate::http::{RequestStats, bounds};
use crate::reference::is_valid_tag;

/// Tags asked for per page.
const TAGS_PAGE: usize = 1000;

/// Names kept of those a tag list holds that are not tags (the rest are only counted, so
/// that a hostile list of long names takes no memory).
pub const REJECTED_TAGS_KEPT: usize = 5;

/// A repository's tag list: the tags (sorted, once each), and the names it listed that
/// do not match the tag grammar (skipped: never used in a URL or a file name): how many,
/// and the first few of them.
#[derive(Debug, Default)]
pub struct Tags {
    pub valid: Vec<String>,
    pub rejected: Vec<String>,
    pub rejected_count: usize,
}

impl Tags {
    /// Adds one page's names, each where it belongs.
    fn add_page(&mut self, names: Vec<String>) {
        for name in names {
            if is_valid_tag(&name) {
                self.valid.push(name);
            } else {
                self.rejected_count += 1;
                if self.rejected.len() < REJECTED_TAGS_KEPT {
                    self.rejected.push(name);
                }
            }
        }
    }

    fn count(&self) -> usize {
        self.valid.len() + self.rejected_count
    }
}

impl Repo<'_> {
    /// Every tag, following `Link` pagination, and the names it listed that are not tags.
    pub fn list_tags(&self, stats: &RequestStats) -> Result<Tags> {
        self.tags(false, stats).map(Option::unwrap_or_default)
    }

    /// Every tag, or `None` when the registry does not know the repository (`404` on
    /// the first page): a target repository that the run is about to create.
    pub fn list_tags_if_any(&self, stats: &RequestStats) -> Result<Option<Vec<String>>> {
        Ok(self.tags(true, stats)?.map(|tags| tags.valid))
    }

    /// Follows the pages until one has no `next` link (see the module's bounds).
    fn tags(&self, absent_is_none: bool, stats: &RequestStats) -> Result<Option<Tags>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tag list of {}", self.display());
        let listing = Listing {
            first: paths::tags(self.name(), TAGS_PAGE),
            what: &what,
            failing: &format!("listing tags of {}", self.display()),
            absent_is_none,
        };
        let mut tags = Tags::default();
        let walked = self.walk_pages(listing, stats, |body, _| {
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
            tags.add_page(page.tags.unwrap_or_default());
            if tags.count() > bounds::MAX_TAGS_PER_REPOSITORY {
                return Err(Error::protocol(format!(
                    "{what}: more than {} tags, the most this tool lists for one repository; \
                     name the tags in the rule instead",
                    bounds::MAX_TAGS_PER_REPOSITORY
                )));
            }
            Ok(())
        })?;
        if walked.is_none() {
            return Ok(None);
        }
        tags.valid.sort();
        tags.valid.dedup();
        Ok(Some(tags))
    }
}
