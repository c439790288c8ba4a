//! Amazon ECR's API (`https://api.ecr.<region>.amazonaws.com`, JSON 1.1 with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Action>`): the repositories of a
//! registry (`DescribeRepositories`, `nextToken` pages) and repositories checked and created
//! (`CreateRepository`), because ECR refuses a push into a repository that does not exist
//! (`NAME_UNKNOWN`). Every request is signed with SigV4 (`signing::sigv4_headers`, AWS's own `aws-sigv4`,
//! which signs without an async runtime) using `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`.

use crate::http::Method;

use super::{Answer, Api, Listing, endless, too_many};
use crate::error::{Error, ErrorKind, Result};
use crate::http::RequestStats;

const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A signed JSON 1.1 call of `action`.
fn call(
    api: &Api<'_>,
    action: &str,
    body: &serde_json::Value,
    stats: &RequestStats,
) -> Result<Answer> {
    let Some(keys) = &api.client.credentials().cloud().aws else {
        return Err(Error::new(
            ErrorKind::Auth,
            format!(
                "{}: ECR's API is signed with an AWS access key: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
                api.registry
            ),
        ));
    };
    let Some(region) = api.region.as_deref() else {
        return Err(Error::protocol(format!(
            "{}: ECR's API needs a region: add \"region\" to its auth.json entry",
            api.registry
        )));
    };
    let url = format!("{}/", api.base);
    let body = body.to_string();
    let target = format!("{TARGET_PREFIX}{action}");
    let headers = [
        ("content-type", CONTENT_TYPE),
        ("x-amz-target", &target[..]),
    ];
    let key = crate::signing::AwsKey {
        access_key_id: keys.access_key_id.expose(),
        secret_access_key: keys.secret_access_key.expose(),
        session_token: keys.session_token.as_ref().map(|t| t.expose()),
    };
    let request = crate::signing::AwsRequest {
        method: "POST",
        url: &url,
        headers: &headers,
        body: body.as_bytes(),
        region,
        service: "ecr",
        time: std::time::SystemTime::now(),
    };
    let signed = crate::signing::sigv4_headers(&key, &request).map_err(|e| {
        Error::protocol(format!(
            "{}: cannot sign the ECR request: {e}",
            api.registry
        ))
    })?;
    let mut sent: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
    sent.extend(signed.iter().map(|(k, v)| (k.as_str(), v.clone())));
    api.call(Method::Post, &url, &sent, body.as_bytes(), stats)
}

/// AWS's error type (`__type`, without its namespace).
fn error_type(answer: &Answer) -> String {
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["__type"].as_str().map(str::to_string))
        .map(|t| t.rsplit('#').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Every repository of the registry (ECR has no namespaces of its own: the caller keeps
/// those under the namespace asked).
pub fn list(api: &Api<'_>, stats: &RequestStats) -> Result<Listing> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        #[serde(default)]
        repositories: Vec<Repository>,
        #[serde(default)]
        next_token: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Repository {
        repository_name: String,
    }
    let asked = format!("POST {}/ (DescribeRepositories)", api.base);
    let mut repositories = Vec::new();
    let mut token: Option<String> = None;
    let max_pages = super::MAX_REPOSITORIES / 100 + 1;
    for pages in 1.. {
        if pages > max_pages {
            return Err(endless(&asked, max_pages));
        }
        let mut body = serde_json::json!({ "maxResults": 1000 });
        if let Some(token) = &token {
            body["nextToken"] = token.clone().into();
        }
        let answer = call(api, "DescribeRepositories", &body, stats)?;
        if answer.status != 200 {
            return Err(answer.error(&hint(&answer, "ecr:DescribeRepositories")));
        }
        let page: Page = answer.json()?;
        repositories.extend(page.repositories.into_iter().map(|r| r.repository_name));
        if repositories.len() > super::MAX_REPOSITORIES {
            return Err(too_many(&asked));
        }
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
            Some(_) => return Err(endless(&asked, pages)),
            None => break,
        }
    }
    Ok(Listing {
        repositories,
        asked,
    })
}

/// Whether the repository exists (`DescribeRepositories` of it: found, or
/// `RepositoryNotFoundException`).
pub fn repository_exists(api: &Api<'_>, name: &str, stats: &RequestStats) -> Result<bool> {
    let body = serde_json::json!({ "repositoryNames": [name] });
    let answer = call(api, "DescribeRepositories", &body, stats)?;
    match answer.status {
        200 => Ok(true),
        400 if error_type(&answer) == "RepositoryNotFoundException" => Ok(false),
        _ => Err(answer.error(&hint(&answer, "ecr:DescribeRepositories"))),
    }
}

/// Creates the repository (`CreateRepository`); `false` when ECR says it exists already
/// (`RepositoryAlreadyExistsException`), which is as good.
pub fn create_repository(api: &Api<'_>, name: &str, stats: &RequestStats) -> Result<bool> {
    let body = serde_json::json!({ "repositoryName": name });
    let answer = call(api, "CreateRepository", &body, stats)?;
    match answer.status {
        200 => Ok(true),
        400 if error_type(&answer) == "RepositoryAlreadyExistsException" => Ok(false),
        _ => Err(answer.error(&hint(&answer, "ecr:CreateRepository"))),
    }
}

/// What a refusal means in AWS's terms: the IAM action that is missing.
fn hint(answer: &Answer, action: &str) -> String {
    match (answer.status, error_type(answer).as_str()) {
        (403, "AccessDeniedException") | (400, "AccessDeniedException") => format!(
            " (the IAM identity of AWS_ACCESS_KEY_ID needs the \"{action}\" permission on the \
             repository)"
        ),
        (400 | 403, "InvalidSignatureException" | "UnrecognizedClientException") => {
            " (AWS did not accept the signature: check AWS_ACCESS_KEY_ID, \
             AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and the machine's clock)"
                .to_string()
        }
        _ => String::new(),
    }
}
