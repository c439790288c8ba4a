//! Quay's API (`/api/v1/repository?namespace=`): the repositories of an organization or
//! user, which Quay's registry does not list through `_catalog`. Public repositories are
//! listed anonymously; a password that is an OAuth application token (username
//! `$oauthtoken`) is sent as a bearer token and shows private ones too.

use super::{Api, Listing, encode, endless, too_many};
use crate::error::{Error, Result};
use crate::http::Method;
use crate::http::RequestStats;

pub fn list(api: &Api<'_>, namespace: Option<&str>, stats: &RequestStats) -> Result<Listing> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        repositories: Vec<Repository>,
        #[serde(default)]
        next_page: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Repository {
        namespace: String,
        name: String,
    }
    let Some(namespace) = namespace else {
        return Err(Error::protocol(format!(
            "{}: name the organization or user, e.g. --from-registry quay.io/myorg: Quay lists \
             repositories per namespace",
            api.registry
        )));
    };
    let owner = namespace.split('/').next().unwrap_or(namespace);
    let path = format!("/api/v1/repository?namespace={}", encode(owner));
    let asked = format!("GET {}/api/v1/repository (namespace {owner})", api.base);
    let mut headers = Vec::new();
    if let Some((username, token)) = api.user_password(namespace)?
        && username == "$oauthtoken"
    {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    let mut repositories = Vec::new();
    let mut next_page: Option<String> = None;
    let max_pages = super::MAX_REPOSITORIES / 100 + 1;
    for pages in 1.. {
        if pages > max_pages {
            return Err(endless(&asked, max_pages));
        }
        let url = match &next_page {
            Some(token) => format!("{}{path}&next_page={}", api.base, encode(token)),
            None => format!("{}{path}", api.base),
        };
        let answer = api.call(Method::Get, &url, &headers, &[], stats)?;
        if answer.status != 200 {
            return Err(answer.error(""));
        }
        let page: Page = answer.json()?;
        repositories.extend(
            page.repositories
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace, r.name)),
        );
        if repositories.len() > super::MAX_REPOSITORIES {
            return Err(too_many(&asked));
        }
        match page.next_page.filter(|p| !p.is_empty()) {
            Some(token) if next_page.as_deref() != Some(token.as_str()) => next_page = Some(token),
            Some(_) => return Err(endless(&asked, pages)),
            None => break,
        }
    }
    Ok(Listing {
        repositories,
        asked,
    })
}
