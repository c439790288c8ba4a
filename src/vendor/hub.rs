//! Docker Hub's own API (hub.docker.com): the repositories of a namespace, which the
//! registry protocol does not list (Docker Hub offers no `_catalog`). Public repositories
//! are listed anonymously; with credentials (a password or personal access token) the
//! Hub's login gives a token that also shows private ones.

use super::{Api, Listing, encode, endless, too_many};
use crate::error::{Error, Result};
use crate::http::Method;
use crate::http::RequestStats;

const PAGE_SIZE: usize = 100;

pub fn list(api: &Api<'_>, namespace: Option<&str>, stats: &RequestStats) -> Result<Listing> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        next: Option<String>,
        #[serde(default)]
        results: Vec<Repository>,
    }
    #[derive(serde::Deserialize)]
    struct Repository {
        name: String,
        #[serde(default)]
        namespace: Option<String>,
    }
    let Some(namespace) = namespace else {
        return Err(Error::protocol(
            "docker.io: name the namespace (user or organization), e.g. \
             --from-registry docker.io/myorg: Docker Hub lists repositories per namespace",
        ));
    };
    let owner = namespace.split('/').next().unwrap_or(namespace);
    let path = format!("/v2/namespaces/{}/repositories", encode(owner));
    let asked = format!("GET {}{path}", api.base);
    let mut headers = Vec::new();
    if let Some(token) = login(api, namespace, stats)? {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    let mut url = format!("{}{path}?page_size={PAGE_SIZE}", api.base);
    let mut repositories = Vec::new();
    let max_pages = super::MAX_REPOSITORIES / PAGE_SIZE + 1;
    for pages in 1.. {
        if pages > max_pages {
            return Err(endless(&asked, max_pages));
        }
        let answer = api.call(Method::Get, &url, &headers, &[], stats)?;
        if answer.status != 200 {
            return Err(answer.error(""));
        }
        let page: Page = answer.json()?;
        repositories.extend(
            page.results
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(owner), r.name)),
        );
        if repositories.len() > super::MAX_REPOSITORIES {
            return Err(too_many(&asked));
        }
        match page.next.filter(|n| !n.is_empty()) {
            // Only pages of the same API: the next link never takes the token elsewhere.
            Some(next) if next.starts_with(&api.base) => url = next,
            Some(next) => {
                return Err(Error::protocol(format!(
                    "{asked}: the next page {} is not on {}",
                    crate::http::bounds::escaped(&next, 200),
                    api.base
                )));
            }
            None => break,
        }
    }
    Ok(Listing {
        repositories,
        asked,
    })
}

/// `POST /v2/users/login` with the registry's username and password (or access token):
/// the Hub API's bearer token; `None` without credentials.
fn login(api: &Api<'_>, namespace: &str, stats: &RequestStats) -> Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Token {
        token: String,
    }
    let Some((username, password)) = api.user_password(namespace)? else {
        return Ok(None);
    };
    let url = format!("{}/v2/users/login", api.base);
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let headers = [("content-type", "application/json".to_string())];
    let answer = api.call(Method::Post, &url, &headers, body.as_bytes(), stats)?;
    if answer.status != 200 {
        return Err(answer.error(" (Docker Hub did not accept the credentials)"));
    }
    Ok(Some(answer.json::<Token>()?.token))
}
