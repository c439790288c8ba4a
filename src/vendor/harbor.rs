//! Harbor's API v2.0: the repositories of a project (paginated), and its projects —
//! checked and created, because Harbor refuses a push into a project that does not exist
//! (with a confusing 401 `project p not found`). Authenticated with the Basic credentials
//! the registry gets; robot accounts and users alike.

use super::{Answer, Api, Listing, encode, endless, too_many};
use crate::error::Result;
use crate::http::Method;
use crate::http::RequestStats;

/// Repositories per page (Harbor's maximum is 100).
const PAGE_SIZE: usize = 100;

/// The repositories under `namespace` (its first segment is the project), or of every
/// project the credentials see when `None`.
pub fn list(api: &Api<'_>, namespace: Option<&str>, stats: &RequestStats) -> Result<Listing> {
    #[derive(serde::Deserialize)]
    struct Repository {
        name: String,
    }
    let path = match namespace {
        Some(namespace) => {
            let project = namespace.split('/').next().unwrap_or(namespace);
            format!("/api/v2.0/projects/{}/repositories", encode(project))
        }
        None => "/api/v2.0/repositories".to_string(),
    };
    let asked = format!("GET {}{path}", api.base);
    let authorization = api.basic_authorization(namespace.unwrap_or_default())?;
    let headers: Vec<(&str, String)> = authorization
        .into_iter()
        .map(|value| ("authorization", value))
        .collect();
    let mut repositories = Vec::new();
    let max_pages = super::MAX_REPOSITORIES / PAGE_SIZE + 1;
    for page in 1.. {
        if page > max_pages {
            return Err(endless(&asked, max_pages));
        }
        let url = format!("{}{path}?page={page}&page_size={PAGE_SIZE}", api.base);
        let answer = api.call(Method::Get, &url, &headers, &[], stats)?;
        if answer.status != 200 {
            return Err(answer.error(&hint(&answer, "list its repositories")));
        }
        let items: Vec<Repository> = answer.json()?;
        let full = items.len() >= PAGE_SIZE;
        repositories.extend(items.into_iter().map(|r| r.name));
        if repositories.len() > super::MAX_REPOSITORIES {
            return Err(too_many(&asked));
        }
        let next = answer
            .header("link")
            .is_some_and(|link| crate::registry::next_link(link).is_some());
        if !full && !next {
            break;
        }
    }
    Ok(Listing {
        repositories,
        asked,
    })
}

/// Whether the project exists (`HEAD /api/v2.0/projects?project_name=`: 200 or 404).
pub fn project_exists(api: &Api<'_>, project: &str, stats: &RequestStats) -> Result<bool> {
    let url = format!(
        "{}/api/v2.0/projects?project_name={}",
        api.base,
        encode(project)
    );
    let headers = authorization(api, project)?;
    let answer = api.call(Method::Head, &url, &headers, &[], stats)?;
    match answer.status {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(answer.error(&hint(&answer, "see its projects"))),
    }
}

/// Creates a private project (`POST /api/v2.0/projects`); `false` when Harbor says it
/// exists already (409), which is as good.
pub fn create_project(api: &Api<'_>, project: &str, stats: &RequestStats) -> Result<bool> {
    let url = format!("{}/api/v2.0/projects", api.base);
    let body = serde_json::json!({
        "project_name": project,
        "metadata": { "public": "false" },
    })
    .to_string();
    let mut headers = authorization(api, project)?;
    headers.push(("content-type", "application/json".to_string()));
    let answer = api.call(Method::Post, &url, &headers, body.as_bytes(), stats)?;
    match answer.status {
        200..=299 => Ok(true),
        409 => Ok(false),
        _ => Err(answer.error(&hint(&answer, "create projects"))),
    }
}

fn authorization(api: &Api<'_>, project: &str) -> Result<Vec<(&'static str, String)>> {
    Ok(api
        .basic_authorization(project)?
        .into_iter()
        .map(|value| ("authorization", value))
        .collect())
}

/// What a refusal means in Harbor's terms.
fn hint(answer: &Answer, what: &str) -> String {
    match answer.status {
        401 => format!(
            " (Harbor did not accept the credentials; the user or robot account must be \
             allowed to {what})"
        ),
        403 => format!(
            " (the Harbor user or robot account may not {what}: creating projects needs a \
             system administrator, \"Project Creation\" open to everyone, or a system robot \
             account with the \"project: create\" permission)"
        ),
        404 => " (no such project, or the credentials may not see it)".to_string(),
        _ => String::new(),
    }
}
