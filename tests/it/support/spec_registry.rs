//! An in-memory registry that follows the distribution spec (the OCI distribution API over
//! plain HTTP/1.1 on 127.0.0.1, one request per connection, through `http1`): tag lists
//! paged with `n`/`last` and `Link`, manifests and blobs (`GET`/`HEAD`/`PUT`), uploads
//! (`POST`, `PATCH` with `Content-Range`, closing `PUT ?digest=`, the upload's status on
//! `GET` with its `Range`, cross-repository mounts), blob `Range` requests (`206`), and
//! basic or bearer authentication. Each protocol choice real registries differ on is a
//! [`Switches`] field, and every request is logged with its headers and the status given,
//! so a test asserts exactly what the tool sent. [`ObjectStore`] is the other host that
//! redirected blob downloads land on, checking a signed query as S3 does.
//!
//! It is strict where the spec is: a manifest whose blobs are not in the repository is
//! refused (`MANIFEST_BLOB_UNKNOWN`), an upload whose bytes do not hash to `?digest=` is
//! refused (`DIGEST_INVALID`), a `PATCH` out of order is `416`, a stale `_state` is `400`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::http1::{Request, respond};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The largest request body taken (a 64 MiB `PATCH` chunk and some).
const MAX_BODY: usize = 65 * 1024 * 1024;
/// The key the blob redirects are "signed" with.
const SIGNING_KEY: &str = "spec-registry-signing-key";

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The signature [`ObjectStore`] (and the registry's own `/_storage/`) expects for a digest.
pub fn signature(digest: &str) -> String {
    hex::encode(Sha256::digest(format!("{SIGNING_KEY}{digest}")))[..32].to_string()
}

/// How the registry authenticates.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    Anonymous,
    /// `WWW-Authenticate: Basic`; every request must carry these credentials.
    Basic { user: String, password: String },
    /// `WWW-Authenticate: Bearer realm=…`; every request must carry a JWT from `issuer`
    /// granting the repository the action (pull for reads, push for writes).
    Bearer {
        realm: String,
        service: String,
        issuer: String,
    },
}

/// How the `rel="next"` link of a tag-list page is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStyle {
    /// `</v2/<name>/tags/list?last=<tag>&n=<n>>; rel="next"` (distribution, Harbor, Hub).
    Relative,
    /// `<http://host/v2/<name>/tags/list?n=<n>&last=<tag>>; rel="next"`.
    Absolute,
    /// `</v2/<name>/tags/list?last=<tag>>; rel="next"`: no `n`, the server's page size.
    LastOnly,
    /// `<http://host/v2/<name>/tags/list?n=<n>&next_page=<opaque>>; rel="next"` (Quay).
    Cursor,
    /// A `rel="first"` link before the next one, which has other parameters around `rel`.
    AmongOthers,
}

/// Tag-list paging.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    /// The most names on one page, whatever `n` asks for.
    pub page_size: usize,
    pub style: LinkStyle,
    /// A full last page still links on, to a page with no tags (`"tags": []`).
    pub link_past_the_end: bool,
    /// The last page links back to the second one, written as an absolute URL.
    pub loop_back: bool,
}

/// How a cross-repository mount (`POST …/blobs/uploads/?mount=&from=`) is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountAnswer {
    /// As the spec: `201` when `from` holds the blob, else `202` with an upload session.
    Spec,
    /// `202` with an upload session always (a registry that does not mount).
    OpenUpload,
    /// This status with a `DENIED` error body, no session.
    Refuse(u16),
}

/// How the `Location` of an upload session is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationStyle {
    /// `http://host/v2/<name>/blobs/uploads/<id>?_state=<s>` (distribution).
    Absolute,
    /// `/v2/<name>/blobs/uploads/<id>?_state=<s>`.
    AbsolutePath,
    /// `<id>?_state=<s>`: a relative reference, resolved against the request's URL.
    Relative,
}

/// The behaviours under test; the default is a plain spec registry.
#[derive(Clone, Debug)]
pub struct Switches {
    pub auth: Auth,
    pub paging: Option<Paging>,
    pub mount: MountAnswer,
    pub location: LocationStyle,
    /// A `PUT` of an upload that carries the whole blob (a body) is answered this status.
    pub refuse_monolithic: Option<u16>,
    /// `201` answers to blob and manifest `PUT`s carry no `Docker-Content-Digest`.
    pub omit_digest_header: bool,
    /// A blob `GET` is answered with this status and a `Location`: `base` (an absolute URL
    /// or a path on this registry) + `/<digest>?X-Amz-Signature=…&X-Amz-Expires=300`.
    pub blob_redirect: Option<(u16, String)>,
    /// `DELETE /v2/<name>/manifests/<tag>` removes that tag alone (as registries that
    /// delete tags do, distribution 3 among them); `DELETE …/<digest>` removes the
    /// manifest and every tag naming it. Off: both answer `405 UNSUPPORTED`.
    pub deletes: bool,
    /// A manifest `PUT` that would move an existing tag to another digest is refused, in
    /// the words of the registry named.
    pub immutable_tags: Option<Immutability>,
    /// The first `PATCH` whose `Content-Range` starts at this offset breaks: the registry
    /// keeps the first half of its body, then hangs up without an answer (a link that
    /// broke mid-chunk). Later ones go through.
    pub break_patch_at: Option<usize>,
}

/// How a registry refuses to move an immutable tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Immutability {
    /// Harbor's immutability rules: `412` with code `PRECONDITION`.
    Harbor,
    /// An ECR repository with `imageTagMutability: IMMUTABLE`: `400 TAG_INVALID`.
    Ecr,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            auth: Auth::Anonymous,
            paging: None,
            mount: MountAnswer::Spec,
            location: LocationStyle::Absolute,
            refuse_monolithic: None,
            omit_digest_header: false,
            blob_redirect: None,
            deletes: false,
            immutable_tags: None,
            break_patch_at: None,
        }
    }
}

/// One request as the server received it, and the status it gave.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub status: u16,
}

impl Logged {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `METHOD target`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// An image pushed with [`SpecRegistry::push_image`].
#[derive(Clone, Debug)]
pub struct Image {
    pub digest: String,
    pub manifest: Vec<u8>,
    /// Config first, then the layers.
    pub blobs: Vec<String>,
}

#[derive(Default)]
struct RepoData {
    tags: BTreeMap<String, String>,
    /// By digest: media type and bytes.
    manifests: HashMap<String, (String, Arc<Vec<u8>>)>,
    blobs: HashSet<String>,
}

struct Upload {
    repo: String,
    data: Vec<u8>,
    state: u64,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Arc<Vec<u8>>>,
    repos: HashMap<String, RepoData>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
    /// Whether [`Switches::break_patch_at`] has broken its `PATCH`.
    broke_patch: bool,
}

struct State {
    host: String,
    switches: Mutex<Switches>,
    store: Mutex<Store>,
    log: Mutex<Vec<Logged>>,
}

/// The registry; it serves until the test process ends.
pub struct SpecRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    state: Arc<State>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The status a request is logged with when the registry hung up instead of answering.
pub const HANG_UP: u16 = 0;

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn error(status: u16, code: &str) -> Reply {
    let body = json!({"errors": [{"code": code, "message": code.to_lowercase()}]});
    reply(status)
        .header("Content-Type", "application/json")
        .body(body.to_string().into_bytes())
}

impl Reply {
    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }
}

impl SpecRegistry {
    pub fn start(switches: Switches) -> SpecRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            host: host.clone(),
            switches: Mutex::new(switches),
            store: Mutex::new(Store::default()),
            log: Mutex::new(Vec::new()),
        });
        let server = state.clone();
        serve_forever(listener, move |stream| serve(stream, &server));
        SpecRegistry { host, state }
    }

    /// The switches, to change between runs.
    pub fn switches(&self) -> MutexGuard<'_, Switches> {
        self.state.switches.lock().unwrap()
    }

    /// Stores an image (an OCI manifest, a config and `layers`) in `repo` under `tag`.
    pub fn push_image(&self, repo: &str, tag: &str, layers: &[Vec<u8>]) -> Image {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers",
                       "diff_ids": layers.iter().map(|l| sha256(l)).collect::<Vec<_>>()},
        }))
        .unwrap();
        let descriptor = |media_type: &str, bytes: &[u8]| json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()});
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
        }))
        .unwrap();
        let mut store = self.state.store.lock().unwrap();
        let mut blobs = Vec::new();
        for bytes in std::iter::once(&config).chain(layers) {
            let digest = sha256(bytes);
            store.blobs.insert(digest.clone(), Arc::new(bytes.to_vec()));
            store
                .repos
                .entry(repo.to_string())
                .or_default()
                .blobs
                .insert(digest.clone());
            blobs.push(digest);
        }
        let digest = sha256(&manifest);
        let data = store.repos.entry(repo.to_string()).or_default();
        data.manifests.insert(
            digest.clone(),
            (OCI_MANIFEST.to_string(), Arc::new(manifest.clone())),
        );
        data.tags.insert(tag.to_string(), digest.clone());
        Image {
            digest,
            manifest,
            blobs,
        }
    }

    /// Points more tags of `repo` at a manifest it holds.
    pub fn tag(&self, repo: &str, tags: impl IntoIterator<Item = String>, digest: &str) {
        let mut store = self.state.store.lock().unwrap();
        let data = store.repos.get_mut(repo).expect("repository exists");
        for tag in tags {
            data.tags.insert(tag, digest.to_string());
        }
    }

    /// The tags of `repo`, sorted (empty when it does not exist).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let store = self.state.store.lock().unwrap();
        store
            .repos
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The manifest bytes `repo:tag` points at.
    pub fn manifest(&self, repo: &str, tag: &str) -> Option<Vec<u8>> {
        let store = self.state.store.lock().unwrap();
        let data = store.repos.get(repo)?;
        let digest = data.tags.get(tag)?;
        Some(data.manifests.get(digest)?.1.to_vec())
    }

    /// A blob's bytes, when `repo` holds it.
    pub fn blob(&self, repo: &str, digest: &str) -> Option<Vec<u8>> {
        let store = self.state.store.lock().unwrap();
        if !store.repos.get(repo)?.blobs.contains(digest) {
            return None;
        }
        store.blobs.get(digest).map(|b| b.to_vec())
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    /// `METHOD target` of the requests `keep` picks.
    pub fn lines(&self, keep: impl Fn(&Logged) -> bool) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| keep(r))
            .map(Logged::line)
            .collect()
    }

    /// Upload sessions opened and not finished (nor cancelled).
    pub fn open_uploads(&self) -> usize {
        self.state.store.lock().unwrap().uploads.len()
    }
}

/// Accepts connections on a thread, each served on its own thread.
fn serve_forever(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) {
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let serve = serve.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                serve(stream);
            });
        }
    });
}

/// Reads one request, body and all (beyond what `http1` reads for small servers). `None`
/// for a closed connection or a TLS handshake: an `insecure` registry is first tried over
/// HTTPS, and this one only speaks plain HTTP.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let first = reader.fill_buf().ok()?.first().copied()?;
    if first == 0x16 {
        return None;
    }
    let mut request = Request::read(&mut reader).ok()??;
    let length = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    if request.body.len() < length {
        let mut rest = vec![0; length - request.body.len()];
        reader.read_exact(&mut rest).ok()?;
        request.body.extend(rest);
    }
    Some(request)
}

fn serve(mut stream: TcpStream, state: &State) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let switches = state.switches.lock().unwrap().clone();
    let answer = handle(&request, state, &switches);
    state.log.lock().unwrap().push(Logged {
        method: request.method.clone(),
        target: request.target.clone(),
        headers: request.headers.clone(),
        body_len: request.body.len(),
        status: answer.status,
    });
    if answer.status == HANG_UP {
        return;
    }
    let headers: Vec<(&str, &str)> = answer
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let _ = respond(
        &mut stream,
        answer.status,
        &headers,
        &answer.body,
        request.method != "HEAD",
    );
    let _ = stream.flush();
}

/// What a request to `/v2/<name>/…` is about.
enum Route<'a> {
    Tags,
    Manifest(&'a str),
    Uploads(&'a str),
    Blob(&'a str),
}

fn route(rest: &str) -> Option<(&str, Route<'_>)> {
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some((name, Route::Tags));
    }
    if let Some((name, id)) = rest.split_once("/blobs/uploads/") {
        return Some((name, Route::Uploads(id)));
    }
    if let Some((name, reference)) = rest.split_once("/manifests/") {
        return Some((name, Route::Manifest(reference)));
    }
    if let Some((name, digest)) = rest.split_once("/blobs/") {
        return Some((name, Route::Blob(digest)));
    }
    None
}

fn handle(request: &Request, state: &State, switches: &Switches) -> Reply {
    let path = request.path();
    if let Some(digest) = path.strip_prefix("/_storage/") {
        return signed_blob(request, digest, &state.store.lock().unwrap().blobs);
    }
    if path == "/v2/" || path == "/v2" {
        return match authorized(request, &switches.auth, None) {
            true => reply(200).body(b"{}".to_vec()),
            false => challenge(&switches.auth, None),
        };
    }
    let Some((name, what)) = path.strip_prefix("/v2/").and_then(route) else {
        return error(404, "NOT_FOUND");
    };
    let push = !matches!(request.method.as_str(), "GET" | "HEAD");
    let query = request.query();
    let param = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut scopes = vec![(name.to_string(), if push { "push" } else { "pull" })];
    if let Some(from) = param("from") {
        scopes.push((from, "pull"));
    }
    if !scopes
        .iter()
        .all(|scope| authorized(request, &switches.auth, Some(scope)))
    {
        return challenge(&switches.auth, Some((name, push)));
    }
    let mut store = state.store.lock().unwrap();
    match (request.method.as_str(), what) {
        ("GET", Route::Tags) => tag_page(&store, &state.host, name, &param, switches),
        ("GET" | "HEAD", Route::Manifest(reference)) => get_manifest(&store, name, reference),
        ("PUT", Route::Manifest(tag)) => put_manifest(&mut store, name, tag, request, switches),
        ("DELETE", Route::Manifest(reference)) if switches.deletes => {
            delete_manifest(&mut store, name, reference)
        }
        ("GET" | "HEAD", Route::Blob(digest)) => get_blob(&store, name, digest, request, switches),
        ("POST", Route::Uploads("")) => {
            start_upload(&mut store, &state.host, name, &param, switches)
        }
        ("PATCH", Route::Uploads(id)) => {
            patch_upload(&mut store, &state.host, name, id, &param, request, switches)
        }
        ("PUT", Route::Uploads(id)) => put_upload(&mut store, name, id, &param, request, switches),
        ("GET", Route::Uploads(id)) => match store.uploads.get(id).filter(|u| u.repo == name) {
            Some(upload) => {
                let location =
                    session_location(&state.host, name, id, upload.state, switches.location);
                session_reply(204, location, id, upload.data.len())
            }
            None => error(404, "BLOB_UPLOAD_UNKNOWN"),
        },
        ("DELETE", Route::Uploads(id)) => match store.uploads.remove(id) {
            Some(_) => reply(204),
            None => error(404, "BLOB_UPLOAD_UNKNOWN"),
        },
        _ => error(405, "UNSUPPORTED"),
    }
}

/// Whether the request carries what `auth` wants, for `scope` (repository, action) when
/// given (the ping needs only valid credentials).
fn authorized(request: &Request, auth: &Auth, scope: Option<&(String, &str)>) -> bool {
    let given = request.header("authorization").unwrap_or_default();
    match auth {
        Auth::Anonymous => true,
        Auth::Basic { user, password } => {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            given == format!("Basic {expected}")
        }
        Auth::Bearer { issuer, .. } => {
            let Some(claims) = given.strip_prefix("Bearer ").and_then(jwt_claims) else {
                return false;
            };
            if claims["iss"] != issuer.as_str() {
                return false;
            }
            let Some((repo, action)) = scope else {
                return true;
            };
            claims["access"].as_array().is_some_and(|grants| {
                grants.iter().any(|grant| {
                    grant["name"] == repo.as_str()
                        && grant["actions"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|a| a == action))
                })
            })
        }
    }
}

/// The claims of a JWT (the signature is the token server's business).
fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn challenge(auth: &Auth, scope: Option<(&str, bool)>) -> Reply {
    let value = match auth {
        Auth::Anonymous => unreachable!("anonymous access is always authorized"),
        Auth::Basic { .. } => "Basic realm=\"spec-registry\"".to_string(),
        Auth::Bearer { realm, service, .. } => {
            let mut value = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
            if let Some((name, push)) = scope {
                let actions = if push { "pull,push" } else { "pull" };
                value.push_str(&format!(",scope=\"repository:{name}:{actions}\""));
            }
            value
        }
    };
    error(401, "UNAUTHORIZED").header("WWW-Authenticate", value)
}

fn tag_page(
    store: &Store,
    host: &str,
    name: &str,
    param: &dyn Fn(&str) -> Option<String>,
    switches: &Switches,
) -> Reply {
    let Some(repo) = store.repos.get(name) else {
        return error(404, "NAME_UNKNOWN");
    };
    let last = param("last").or_else(|| {
        param("next_page").map(|cursor| String::from_utf8(hex::decode(cursor).unwrap()).unwrap())
    });
    let asked = param("n").and_then(|n| n.parse::<usize>().ok());
    let size = match switches.paging {
        Some(paging) => asked.unwrap_or(usize::MAX).min(paging.page_size),
        None => asked.unwrap_or(usize::MAX),
    };
    let after: Vec<&String> = repo
        .tags
        .keys()
        .filter(|t| last.as_ref().is_none_or(|last| *t > last))
        .collect();
    let page: Vec<&String> = after.iter().take(size).copied().collect();
    let body = json!({"name": name, "tags": page}).to_string();
    let mut answer = reply(200)
        .header("Content-Type", "application/json")
        .body(body);
    let Some(paging) = switches.paging else {
        return answer;
    };
    let more = after.len() > page.len() || (paging.link_past_the_end && !page.is_empty());
    let list = format!("/v2/{name}/tags/list");
    let n = paging.page_size;
    if !more {
        if paging.loop_back && last.is_some() {
            // Back to the second page: the one after the first page's last tag.
            let second = &repo.tags.keys().nth(n - 1).unwrap();
            let link = format!("<http://{host}{list}?last={second}&n={n}>; rel=\"next\"");
            answer = answer.header("Link", link);
        }
        return answer;
    }
    let last = page.last().map(|t| t.as_str()).unwrap_or_default();
    let link = match paging.style {
        LinkStyle::Relative => format!("<{list}?last={last}&n={n}>; rel=\"next\""),
        LinkStyle::Absolute => format!("<http://{host}{list}?n={n}&last={last}>; rel=\"next\""),
        LinkStyle::LastOnly => format!("<{list}?last={last}>; rel=\"next\""),
        LinkStyle::Cursor => format!(
            "<http://{host}{list}?n={n}&next_page={}>; rel=\"next\"",
            hex::encode(last)
        ),
        LinkStyle::AmongOthers => format!(
            "<{list}?n={n}>; rel=\"first\", \
             <{list}?last={last}&n={n}>; type=\"application/json\"; rel=\"next\"; title=\"more\""
        ),
    };
    answer.header("Link", link)
}

fn get_manifest(store: &Store, name: &str, reference: &str) -> Reply {
    let found = store.repos.get(name).and_then(|repo| {
        let digest = repo.tags.get(reference).map_or(reference, |d| d.as_str());
        repo.manifests.get(digest).map(|m| (digest, m))
    });
    let Some((digest, (media_type, bytes))) = found else {
        return error(404, "MANIFEST_UNKNOWN");
    };
    reply(200)
        .header("Content-Type", media_type.as_str())
        .header("Docker-Content-Digest", digest)
        .body(bytes.to_vec())
}

/// A tag alone, or a manifest with every tag naming it.
fn delete_manifest(store: &mut Store, name: &str, reference: &str) -> Reply {
    let Some(repo) = store.repos.get_mut(name) else {
        return error(404, "NAME_UNKNOWN");
    };
    if reference.starts_with("sha256:") {
        if repo.manifests.remove(reference).is_none() {
            return error(404, "MANIFEST_UNKNOWN");
        }
        repo.tags.retain(|_, digest| digest != reference);
        return reply(202);
    }
    match repo.tags.remove(reference) {
        Some(_) => reply(202),
        None => error(404, "MANIFEST_UNKNOWN"),
    }
}

fn put_manifest(
    store: &mut Store,
    name: &str,
    reference: &str,
    request: &Request,
    switches: &Switches,
) -> Reply {
    let Ok(manifest) = serde_json::from_slice::<Value>(&request.body) else {
        return error(400, "MANIFEST_INVALID");
    };
    let digest = sha256(&request.body);
    if reference.starts_with("sha256:") && reference != digest {
        return error(400, "DIGEST_INVALID");
    }
    let repo = store.repos.entry(name.to_string()).or_default();
    let mut wanted: Vec<&Value> = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    wanted.push(&manifest["config"]);
    for descriptor in wanted {
        if !repo
            .blobs
            .contains(descriptor["digest"].as_str().unwrap_or_default())
        {
            return error(400, "MANIFEST_BLOB_UNKNOWN");
        }
    }
    let moves = repo
        .tags
        .get(reference)
        .is_some_and(|there| *there != digest);
    if let (Some(style), true) = (switches.immutable_tags, moves) {
        return immutable_refusal(style, name, reference);
    }
    let media_type = request.header("content-type").unwrap_or(OCI_MANIFEST);
    repo.manifests.insert(
        digest.clone(),
        (media_type.to_string(), Arc::new(request.body.clone())),
    );
    if !reference.starts_with("sha256:") {
        repo.tags.insert(reference.to_string(), digest.clone());
    }
    let answer = reply(201).header("Location", format!("/v2/{name}/manifests/{digest}"));
    match switches.omit_digest_header {
        true => answer,
        false => answer.header("Docker-Content-Digest", digest),
    }
}

/// Harbor's and ECR's answers to a push that would move an immutable tag.
fn immutable_refusal(style: Immutability, name: &str, tag: &str) -> Reply {
    let (status, code, message) = match style {
        Immutability::Harbor => (
            412,
            "PRECONDITION",
            format!("Failed to process request due to '{name}:{tag}' configured as immutable."),
        ),
        Immutability::Ecr => (
            400,
            "TAG_INVALID",
            format!(
                "The image tag '{tag}' already exists in the '{name}' repository and cannot be \
                 overwritten because the repository is immutable."
            ),
        ),
    };
    let body = json!({"errors": [{"code": code, "message": message}]});
    reply(status)
        .header("Content-Type", "application/json")
        .body(body.to_string().into_bytes())
}

fn get_blob(
    store: &Store,
    name: &str,
    digest: &str,
    request: &Request,
    switches: &Switches,
) -> Reply {
    let held = store
        .repos
        .get(name)
        .is_some_and(|r| r.blobs.contains(digest));
    let Some(bytes) = store.blobs.get(digest).filter(|_| held) else {
        return error(404, "BLOB_UNKNOWN");
    };
    if let Some((status, base)) = &switches.blob_redirect
        && request.method == "GET"
    {
        let location = format!(
            "{base}/{digest}?X-Amz-Signature={}&X-Amz-Expires=300",
            signature(digest)
        );
        return reply(*status).header("Location", location);
    }
    let range = request
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .filter(|(first, last)| first <= last && *last < bytes.len());
    let answer = reply(if range.is_some() { 206 } else { 200 })
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest);
    match range {
        Some((first, last)) => answer
            .header(
                "Content-Range",
                format!("bytes {first}-{last}/{}", bytes.len()),
            )
            .body(bytes[first..=last].to_vec()),
        None => answer.body(bytes.to_vec()),
    }
}

/// A blob on a signed URL: the signature in the query, and no `Authorization` (S3 refuses
/// a request with both, `400`).
fn signed_blob(request: &Request, digest: &str, blobs: &HashMap<String, Arc<Vec<u8>>>) -> Reply {
    if request.header("authorization").is_some() {
        return error(400, "InvalidArgument: only one auth mechanism allowed");
    }
    let query = request.query();
    let signed = query
        .iter()
        .any(|(k, v)| k == "X-Amz-Signature" && *v == signature(digest))
        && query.iter().any(|(k, _)| k == "X-Amz-Expires");
    match (signed, blobs.get(digest)) {
        (false, _) => error(403, "SignatureDoesNotMatch"),
        (true, None) => error(404, "NoSuchKey"),
        (true, Some(bytes)) => reply(200).body(bytes.to_vec()),
    }
}

fn session_location(host: &str, name: &str, id: &str, state: u64, style: LocationStyle) -> String {
    match style {
        LocationStyle::Absolute => {
            format!("http://{host}/v2/{name}/blobs/uploads/{id}?_state={state}")
        }
        LocationStyle::AbsolutePath => format!("/v2/{name}/blobs/uploads/{id}?_state={state}"),
        LocationStyle::Relative => format!("{id}?_state={state}"),
    }
}

fn session_reply(status: u16, location: String, id: &str, len: usize) -> Reply {
    reply(status)
        .header("Location", location)
        .header("Docker-Upload-UUID", id)
        .header("Range", format!("0-{}", len.saturating_sub(1)))
}

fn start_upload(
    store: &mut Store,
    host: &str,
    name: &str,
    param: &dyn Fn(&str) -> Option<String>,
    switches: &Switches,
) -> Reply {
    if let (Some(digest), Some(from)) = (param("mount"), param("from")) {
        match switches.mount {
            MountAnswer::Refuse(status) => return error(status, "DENIED"),
            MountAnswer::OpenUpload => {}
            MountAnswer::Spec => {
                let held = store
                    .repos
                    .get(&from)
                    .is_some_and(|r| r.blobs.contains(&digest));
                if held {
                    let repo = store.repos.entry(name.to_string()).or_default();
                    repo.blobs.insert(digest.clone());
                    return reply(201)
                        .header("Location", format!("/v2/{name}/blobs/{digest}"))
                        .header("Docker-Content-Digest", digest);
                }
            }
        }
    }
    store.next_upload += 1;
    let id = format!("u{}", store.next_upload);
    store.uploads.insert(
        id.clone(),
        Upload {
            repo: name.to_string(),
            data: Vec::new(),
            state: 0,
        },
    );
    let location = session_location(host, name, &id, 0, switches.location);
    session_reply(202, location, &id, 0)
}

/// The open session `id` of `name`, when `_state` is its current one.
fn session<'s>(
    store: &'s mut Store,
    name: &str,
    id: &str,
    param: &dyn Fn(&str) -> Option<String>,
) -> Result<&'s mut Upload, Reply> {
    let upload = store
        .uploads
        .get_mut(id)
        .filter(|u| u.repo == name)
        .ok_or_else(|| error(404, "BLOB_UPLOAD_UNKNOWN"))?;
    if param("_state") != Some(upload.state.to_string()) {
        return Err(error(400, "BLOB_UPLOAD_INVALID"));
    }
    Ok(upload)
}

fn patch_upload(
    store: &mut Store,
    host: &str,
    name: &str,
    id: &str,
    param: &dyn Fn(&str) -> Option<String>,
    request: &Request,
    switches: &Switches,
) -> Reply {
    let breaks = switches.break_patch_at.is_some_and(|at| {
        let start = request
            .header("content-range")
            .and_then(|r| r.split('-').next());
        !store.broke_patch && start == Some(at.to_string().as_str())
    });
    store.broke_patch |= breaks;
    let upload = match session(store, name, id, param) {
        Ok(upload) => upload,
        Err(answer) => return answer,
    };
    if breaks {
        upload
            .data
            .extend_from_slice(&request.body[..request.body.len() / 2]);
        return reply(HANG_UP);
    }
    let range = request.header("content-range").and_then(|r| {
        let (start, end) = r.split_once('-')?;
        Some((start.parse::<usize>().ok()?, end.parse::<usize>().ok()?))
    });
    match range {
        Some((start, end))
            if start == upload.data.len() && end + 1 - start == request.body.len() => {}
        Some(_) => return error(416, "BLOB_UPLOAD_INVALID"),
        None => {} // a stream without a range is appended, as the spec allows
    }
    upload.data.extend_from_slice(&request.body);
    upload.state += 1;
    let location = session_location(host, name, id, upload.state, switches.location);
    session_reply(202, location, id, upload.data.len())
}

fn put_upload(
    store: &mut Store,
    name: &str,
    id: &str,
    param: &dyn Fn(&str) -> Option<String>,
    request: &Request,
    switches: &Switches,
) -> Reply {
    if let Some(status) = switches.refuse_monolithic
        && !request.body.is_empty()
    {
        return error(status, "SIZE_INVALID");
    }
    let upload = match session(store, name, id, param) {
        Ok(upload) => upload,
        Err(answer) => return answer,
    };
    let Some(digest) = param("digest") else {
        return error(400, "DIGEST_INVALID");
    };
    upload.data.extend_from_slice(&request.body);
    if sha256(&upload.data) != digest {
        return error(400, "DIGEST_INVALID");
    }
    let upload = store.uploads.remove(id).unwrap();
    store.blobs.insert(digest.clone(), Arc::new(upload.data));
    let repo = store.repos.entry(name.to_string()).or_default();
    repo.blobs.insert(digest.clone());
    let answer = reply(201).header("Location", format!("/v2/{name}/blobs/{digest}"));
    match switches.omit_digest_header {
        true => answer,
        false => answer.header("Docker-Content-Digest", digest),
    }
}

/// The "object storage" that blob downloads are redirected to: another host, serving
/// `/<bucket>/<digest>` of a registry's blobs on a signed query only, and refusing (`400`,
/// as S3) a request that also carries `Authorization`. Every request is logged.
pub struct ObjectStore {
    /// `http://127.0.0.1:PORT/bucket`: the base of a [`Switches::blob_redirect`].
    pub base: String,
    log: Arc<Mutex<Vec<Logged>>>,
}

impl ObjectStore {
    /// Serves the blobs of `registry`. With `redirect_forever`, every request is answered
    /// `307` to the same object with one more `hop` in its query, without end.
    pub fn start(registry: &SpecRegistry, redirect_forever: bool) -> ObjectStore {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/bucket", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (state, server_log) = (registry.state.clone(), log.clone());
        serve_forever(listener, move |mut stream| {
            let Some(request) = read_request(&stream) else {
                return;
            };
            let digest = request.path().strip_prefix("/bucket/").unwrap_or_default();
            let answer = if redirect_forever {
                let hop = request.query().len();
                let location = format!("{}&hop{hop}=1", request.target);
                reply(307).header("Location", location)
            } else {
                signed_blob(&request, digest, &state.store.lock().unwrap().blobs)
            };
            server_log.lock().unwrap().push(Logged {
                method: request.method.clone(),
                target: request.target.clone(),
                headers: request.headers.clone(),
                body_len: request.body.len(),
                status: answer.status,
            });
            let headers: Vec<(&str, &str)> = answer
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let _ = respond(&mut stream, answer.status, &headers, &answer.body, true);
        });
        ObjectStore { base, log }
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}
