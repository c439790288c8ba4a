//! A Harbor stand-in: Harbor's API v2.0 in front of a real registry (a [`FaultProxy`] with
//! an intercept), checking what Harbor checks. `GET /api/v2.0/ping` answers `Pong`; the
//! project API (`HEAD /api/v2.0/projects?project_name=`, `POST /api/v2.0/projects`, `GET
//! /api/v2.0/projects/<p>/repositories`, paginated with `page`/`page_size`, `Link` and
//! `X-Total-Count`) wants Basic credentials of a known user, and only users allowed to
//! create projects may; and, as Harbor does, a push into a project that does not exist is
//! refused with 401 `project <p> not found` — the registry never sees it. Repositories
//! are the registry's own (its `_catalog`), so what the tool pushes is what is listed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::fault_proxy::{Answer, FaultProxy, Intercepted};
use super::registry::TestRegistry;

/// One API request the stand-in answered: method, path with query, status.
pub type ApiCall = (String, String, u16);

struct State {
    registry: String,
    projects: Mutex<BTreeSet<String>>,
    /// (user, password, may create projects).
    users: Vec<(String, String, bool)>,
    /// The most repositories on one page (Harbor's is 100; smaller here to show the pages).
    max_page_size: usize,
    calls: Mutex<Vec<ApiCall>>,
}

/// The stand-in; `host` is what images and auth.json name.
pub struct HarborStandIn {
    pub host: String,
    pub proxy: FaultProxy,
    state: Arc<State>,
}

impl HarborStandIn {
    /// Harbor in front of `registry`, with these projects, users (name, password, may
    /// create projects), and pages of at most `max_page_size` repositories.
    pub fn start(
        registry: &TestRegistry,
        projects: &[&str],
        users: &[(&str, &str, bool)],
        max_page_size: usize,
    ) -> HarborStandIn {
        let proxy = FaultProxy::start(&registry.host);
        let state = Arc::new(State {
            registry: registry.host.clone(),
            projects: Mutex::new(projects.iter().map(|p| p.to_string()).collect()),
            users: users
                .iter()
                .map(|(u, p, c)| (u.to_string(), p.to_string(), *c))
                .collect(),
            max_page_size,
            calls: Mutex::new(Vec::new()),
        });
        let answering = state.clone();
        proxy.intercept(Arc::new(move |request| {
            let answer = answer(&answering, request);
            if let Some((status, _, _)) = &answer
                && !request.path.starts_with("/v2/")
            {
                answering.calls.lock().unwrap().push((
                    request.method.to_string(),
                    request.path.to_string(),
                    *status,
                ));
            }
            answer
        }));
        HarborStandIn {
            host: proxy.host.clone(),
            proxy,
            state,
        }
    }

    pub fn projects(&self) -> Vec<String> {
        self.state
            .projects
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    /// Every API call answered (pings included), in order.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The API calls that would change something (`POST`, `PUT`, `DELETE`).
    pub fn api_writes(&self) -> Vec<ApiCall> {
        self.api_calls()
            .into_iter()
            .filter(|(m, _, _)| !matches!(m.as_str(), "GET" | "HEAD"))
            .collect()
    }
}

fn json(status: u16, value: serde_json::Value) -> Option<Answer> {
    Some((
        status,
        vec![("Content-Type".into(), "application/json".into())],
        value.to_string().into_bytes(),
    ))
}

/// Harbor's error body.
fn error(status: u16, code: &str, message: &str) -> Option<Answer> {
    json(
        status,
        serde_json::json!({"errors": [{"code": code, "message": message}]}),
    )
}

/// The user the request's Basic credentials name, if they are right.
fn user<'s>(state: &'s State, request: &Intercepted<'_>) -> Option<&'s (String, String, bool)> {
    let encoded = request.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    state
        .users
        .iter()
        .find(|(u, p, _)| u == name && p == password)
}

fn answer(state: &State, request: &Intercepted<'_>) -> Option<Answer> {
    let path = request.path.split('?').next().unwrap_or_default();
    let query: Vec<(String, String)> = request
        .path
        .split_once('?')
        .map(|(_, q)| super::http1::form_pairs(q))
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    // The registry side: a write into a project that does not exist is refused.
    if let Some(rest) = path.strip_prefix("/v2/") {
        let writes = matches!(request.method, "POST" | "PUT" | "PATCH" | "DELETE");
        let project = rest.split('/').next().unwrap_or_default();
        if writes && !rest.is_empty() && !state.projects.lock().unwrap().contains(project) {
            return error(401, "UNAUTHORIZED", &format!("project {project} not found"));
        }
        return None;
    }

    if path == "/api/v2.0/ping" && request.method == "GET" {
        return Some((
            200,
            vec![("Content-Type".into(), "text/plain".into())],
            b"Pong".to_vec(),
        ));
    }
    let Some((_, _, may_create)) = user(state, request) else {
        return error(401, "UNAUTHORIZED", "unauthorized");
    };
    match (request.method, path) {
        ("HEAD", "/api/v2.0/projects") => {
            let name = param("project_name").unwrap_or_default();
            let exists = state.projects.lock().unwrap().contains(&name);
            Some((if exists { 200 } else { 404 }, Vec::new(), Vec::new()))
        }
        ("POST", "/api/v2.0/projects") => {
            let body: serde_json::Value = match serde_json::from_slice(request.body) {
                Ok(body) => body,
                Err(_) => return error(400, "BAD_REQUEST", "invalid JSON body"),
            };
            let name = body["project_name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
            if !valid {
                return error(400, "BAD_REQUEST", "project_name is invalid");
            }
            if body["metadata"]["public"].as_str().is_none() {
                return error(400, "BAD_REQUEST", "metadata.public must be a string");
            }
            if !may_create {
                return error(403, "FORBIDDEN", "forbidden");
            }
            let mut projects = state.projects.lock().unwrap();
            if !projects.insert(name.clone()) {
                return error(
                    409,
                    "CONFLICT",
                    &format!("The project named {name} already exists"),
                );
            }
            Some((
                201,
                vec![(
                    "Location".into(),
                    format!("/api/v2.0/projects/{}", projects.len()),
                )],
                Vec::new(),
            ))
        }
        ("GET", _)
            if path.starts_with("/api/v2.0/projects/") && path.ends_with("/repositories") =>
        {
            let project = path
                .trim_start_matches("/api/v2.0/projects/")
                .trim_end_matches("/repositories");
            if !state.projects.lock().unwrap().contains(project) {
                return error(404, "NOT_FOUND", &format!("project {project} not found"));
            }
            let page: usize = param("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1);
            let size: usize = param("page_size")
                .and_then(|p| p.parse().ok())
                .unwrap_or(10)
                .clamp(1, state.max_page_size);
            let all: Vec<String> = catalog(&state.registry)
                .into_iter()
                .filter(|r| r.starts_with(&format!("{project}/")))
                .collect();
            let items: Vec<serde_json::Value> = all
                .iter()
                .skip((page - 1) * size)
                .take(size)
                .map(|name| serde_json::json!({"name": name, "artifact_count": 1}))
                .collect();
            let mut headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Total-Count".to_string(), all.len().to_string()),
            ];
            if page * size < all.len() {
                headers.push((
                    "Link".to_string(),
                    format!("<{path}?page={}&page_size={size}>; rel=\"next\"", page + 1),
                ));
            }
            Some((
                200,
                headers,
                serde_json::Value::Array(items).to_string().into_bytes(),
            ))
        }
        _ => error(404, "NOT_FOUND", "no such API"),
    }
}

/// The registry's repositories.
fn catalog(registry: &str) -> Vec<String> {
    let body = ureq::get(format!("http://{registry}/v2/_catalog?n=1000"))
        .call()
        .expect("the registry's catalog")
        .body_mut()
        .read_to_string()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}
