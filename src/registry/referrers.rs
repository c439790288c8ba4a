//! What refers to a manifest (signatures, SBOMs, attestations): the OCI 1.1 referrers
//! API (`/v2/<name>/referrers/<digest>`, every page) when the registry answers it, else
//! the referrers tag schema's `sha256-<hex>` index. Whether a registry has the API is
//! learnt from its first answer and kept in its endpoint's memo.

use std::collections::HashSet;
use std::sync::Arc;

use super::memo::Capability;
use super::url::next_link;
use super::{Repo, paths, tag_or_digest};
use crate::digest::Digest;
use crate::error::{Error, ErrorCode, ErrorKind, RegistryError, Result, StatusClass};
use crate::http::{Method, RequestStats};
use crate::manifest::{self, Manifest};
use crate::reference::TagOrDigest;

/// Pages of one referrers API answer followed at most.
const REFERRERS_PAGES: usize = 100;

/// What a repository says refers to one manifest.
#[derive(Debug, Default)]
pub struct ReferrerListing {
    /// Whether the registry answered the referrers API (else the fallback tag was read).
    pub api: bool,
    /// The `sha256-<hex>` fallback index as stored, when read and present.
    pub fallback_index: Option<Arc<Manifest>>,
    pub referrers: Vec<manifest::Referrer>,
}

impl Repo<'_> {
    /// What refers to `subject`: `GET /v2/<name>/referrers/<subject>` when the registry
    /// answers it (learnt from its first answer: `404` or an answer that is not an index
    /// means no API, and the registry is not asked again); else the referrers tag schema's
    /// `sha256-<hex>` index. `tags`, when known, spares the `GET` of an absent fallback tag.
    pub fn referrers(
        &self,
        subject: &Digest,
        tags: Option<&HashSet<String>>,
        stats: &RequestStats,
    ) -> Result<ReferrerListing> {
        if self.endpoint.referrers_api.get() != Capability::No
            && let Some(referrers) = self.referrers_api(subject, stats)?
        {
            return Ok(ReferrerListing {
                api: true,
                fallback_index: None,
                referrers,
            });
        }
        let tag = tag_or_digest(&manifest::fallback_tag(subject))?;
        if tags.is_some_and(|tags| !tags.contains(tag.as_str())) {
            return Ok(ReferrerListing::default());
        }
        let index = match self.manifest_at(&tag, stats) {
            Ok(index) => index,
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Ok(ReferrerListing::default());
            }
            Err(e) => return Err(e),
        };
        let referrers = manifest::referrers_of(&index.bytes)
            .map_err(|e| e.context(format!("referrers index {}", self.id.at(&tag))))?;
        Ok(ReferrerListing {
            api: false,
            fallback_index: Some(index),
            referrers,
        })
    }

    /// The referrers API's answer (every page), or `None` when the registry has no API.
    fn referrers_api(
        &self,
        subject: &Digest,
        stats: &RequestStats,
    ) -> Result<Option<Vec<manifest::Referrer>>> {
        let what = format!(
            "listing referrers of {}",
            self.id.at(&TagOrDigest::Digest(subject.clone()))
        );
        let headers = [("accept", manifest::OCI_INDEX.to_string())];
        let mut referrers = Vec::new();
        let mut next = Some(paths::referrers(self.name(), subject));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > REFERRERS_PAGES {
                return Err(Error::protocol(format!("{what}: pagination does not end")));
            }
            let response = self.retrying_request(Method::Get, &path, &headers, stats)?;
            let status = response.status;
            let refused = matches!(StatusClass::of(status), StatusClass::Auth);
            if refused || (status != 200 && pages > 1) {
                return Err(response.describe_error(&what));
            }
            next = response
                .header("link")
                .and_then(next_link)
                .map(|link| link.to_string());
            let body = response.read_bounded(manifest::MAX_MANIFEST_BYTES, "referrers list")?;
            // An index is the API's answer; a 404 (or 400, 405, …: a route the registry
            // does not have) or anything but an index on the first page means no API. A
            // registry with the API may still say the repository is unknown (a dry run's
            // target): that settles nothing about the registry.
            let page = match status {
                200 => manifest::referrers_of(&body).ok(),
                _ => None,
            };
            match page {
                Some(page) => referrers.extend(page),
                None if pages == 1 => {
                    let repository_unknown = status == 404
                        && RegistryError::codes_of(&body).contains(&ErrorCode::NameUnknown);
                    if !repository_unknown {
                        self.endpoint.referrers_api.settle(false);
                    }
                    return Ok(None);
                }
                None => {
                    return Err(Error::protocol(format!(
                        "{what}: page {pages} is not a referrers index"
                    )));
                }
            }
        }
        self.endpoint.referrers_api.settle(true);
        Ok(Some(referrers))
    }
}
