//! Huawei Cloud SWR's management API (`https://swr-api.<region>.myhuaweicloud.com`): the
//! repositories of an organization (`GET /v2/manage/repos`, paginated with
//! `offset`/`limit`), and organizations — checked (`GET /v2/manage/namespaces/<o>`) and
//! created (`POST /v2/manage/namespaces`), because SWR refuses a push into an organization
//! that does not exist. Every request is signed with APIG's `SDK-HMAC-SHA256` using
//! `HUAWEICLOUD_SDK_AK` / `HUAWEICLOUD_SDK_SK` (`crate::signing`).

use super::{Answer, Api, Listing, encode, endless, too_many};
use crate::error::{Error, ErrorKind, Result};
use crate::http::Method;
use crate::http::RequestStats;

/// Repositories per page.
const PAGE_SIZE: usize = 100;

/// A request signed with the Huawei keys: the headers to send (`Authorization` among them).
fn signed_headers(
    api: &Api<'_>,
    method: &Method,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(&'static str, String)>> {
    let Some(keys) = &api.client.credentials().cloud().huawei else {
        return Err(Error::new(
            ErrorKind::Auth,
            format!(
                "{}: SWR's API is signed with an access key: set HUAWEICLOUD_SDK_AK and \
                 HUAWEICLOUD_SDK_SK",
                api.registry
            ),
        ));
    };
    let host = api
        .base
        .split_once("://")
        .map_or(api.base.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let date = crate::signing::sdk_date(std::time::SystemTime::now());
    let mut headers: Vec<(&'static str, String)> = vec![
        ("host", host),
        ("content-type", "application/json".to_string()),
        ("x-sdk-date", date.clone()),
    ];
    if let Some(project) = &keys.project_id {
        headers.push(("x-project-id", project.clone()));
    }
    let to_sign: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let authorization = crate::signing::apig_authorization(
        &crate::signing::ApigRequest {
            method: method.as_str(),
            path,
            query,
            headers: &to_sign,
            body,
        },
        &date,
        keys.ak.expose(),
        keys.sk.expose(),
    );
    // The transport sends Host itself, from the URL: the same value.
    headers.retain(|(k, _)| *k != "host");
    headers.push(("authorization", authorization));
    Ok(headers)
}

/// A signed call: `path` and `query` unencoded.
fn call(
    api: &Api<'_>,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
    stats: &RequestStats,
) -> Result<Answer> {
    let mut url = format!("{}{path}", api.base);
    if !query.is_empty() {
        url.push('?');
        url.push_str(
            &query
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    let headers = signed_headers(api, &method, path, query, body)?;
    api.call(method, &url, &headers, body, stats)
}

/// The repositories under `namespace` (its first segment is the organization), or of
/// every organization the keys see when `None`.
pub fn list(api: &Api<'_>, namespace: Option<&str>, stats: &RequestStats) -> Result<Listing> {
    #[derive(serde::Deserialize)]
    struct Repository {
        name: String,
        namespace: String,
    }
    let organization = namespace.map(|n| n.split('/').next().unwrap_or(n));
    let path = "/v2/manage/repos";
    let asked = format!(
        "GET {}{path}{}",
        api.base,
        organization
            .map(|o| format!("?namespace={}", encode(o)))
            .unwrap_or_default()
    );
    let mut repositories = Vec::new();
    let max_pages = super::MAX_REPOSITORIES / PAGE_SIZE + 1;
    // The offset moves by what came: SWR may give fewer than asked on a page.
    let mut offset = 0;
    for page in 0.. {
        if page >= max_pages {
            return Err(endless(&asked, max_pages));
        }
        let offset_text = offset.to_string();
        let limit = PAGE_SIZE.to_string();
        let mut query = vec![("offset", offset_text.as_str()), ("limit", limit.as_str())];
        if let Some(organization) = organization {
            query.insert(0, ("namespace", organization));
        }
        let answer = call(api, Method::Get, path, &query, &[], stats)?;
        if answer.status != 200 {
            return Err(answer.error(&hint(&answer, "list its repositories")));
        }
        let items: Vec<Repository> = answer.json()?;
        let got = items.len();
        offset += got;
        repositories.extend(
            items
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace, r.name)),
        );
        if repositories.len() > super::MAX_REPOSITORIES {
            return Err(too_many(&asked));
        }
        // `Content-Range: <first>-<last>/<total>` says when the pages end, else a short page.
        let total = answer
            .header("content-range")
            .and_then(|range| range.rsplit('/').next())
            .and_then(|total| total.trim().parse::<usize>().ok());
        let done = match total {
            Some(total) => offset >= total,
            None => got < PAGE_SIZE,
        };
        if done || got == 0 {
            break;
        }
    }
    Ok(Listing {
        repositories,
        asked,
    })
}

/// Whether the organization exists (`GET /v2/manage/namespaces/<o>`: 200 or 404).
pub fn organization_exists(api: &Api<'_>, name: &str, stats: &RequestStats) -> Result<bool> {
    let path = format!("/v2/manage/namespaces/{}", encode(name));
    let answer = call(api, Method::Get, &path, &[], &[], stats)?;
    match answer.status {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(answer.error(&hint(&answer, "see its organizations"))),
    }
}

/// Creates the organization (`POST /v2/manage/namespaces`); `false` when SWR says it exists
/// already (409), which is as good.
pub fn create_organization(api: &Api<'_>, name: &str, stats: &RequestStats) -> Result<bool> {
    let body = serde_json::json!({ "namespace": name }).to_string();
    let answer = call(
        api,
        Method::Post,
        "/v2/manage/namespaces",
        &[],
        body.as_bytes(),
        stats,
    )?;
    match answer.status {
        200..=299 => Ok(true),
        409 => Ok(false),
        _ => Err(answer.error(&hint(&answer, "create organizations"))),
    }
}

/// What a refusal means in SWR's terms.
fn hint(answer: &Answer, what: &str) -> String {
    match answer.status {
        401 => " (API Gateway did not accept the signature: check HUAWEICLOUD_SDK_AK and \
                HUAWEICLOUD_SDK_SK, and the machine's clock)"
            .to_string(),
        403 => format!(
            " (the IAM user of HUAWEICLOUD_SDK_AK may not {what} in this region: it needs \
             the \"SWR Administrator\" role, or a custom policy allowing it, on the region's \
             project)"
        ),
        404 => " (no such organization, or the keys may not see it)".to_string(),
        _ => String::new(),
    }
}
