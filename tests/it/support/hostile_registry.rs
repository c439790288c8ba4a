//! A registry that misbehaves on purpose: a small HTTP/1.1 server on 127.0.0.1 (std and
//! rustls only, one request per connection) serving one tiny image, `bad/app:v1`, with one
//! [`Behaviour`] that breaks the protocol the way a buggy or hostile server would. Every
//! request line is recorded, so a test can assert what the tool asked for (and what not).

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::{ServerConnection, StreamOwned};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::apiserver::Certs;
use super::http1::{Request, respond};

/// The repository and tag the server serves.
pub const REPO: &str = "bad/app";
pub const TAG: &str = "v1";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How the server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The manifest `GET` streams an endless body (no `Content-Length`).
    HugeManifest,
    /// The tag list's second page links to itself.
    SelfLinkingTags,
    /// The layer trickles one byte every 100 ms.
    TrickleBlob,
    /// Reads each request and never answers.
    NeverAnswers,
    /// Every manifest request is redirected to itself.
    RedirectLoop,
    /// The tag list holds names that are not tags (`../x`, control characters…) and `v1`.
    BadTagNames,
    /// `v1` is an index of an index of an index of an index of the image.
    NestedIndex,
    /// HTTPS, with a bearer challenge whose token realm is plain HTTP.
    PlainHttpRealm,
}

/// Names in the [`Behaviour::BadTagNames`] tag list besides `v1`.
pub fn bad_tag_names() -> Vec<String> {
    vec![
        "../../etc/passwd".into(),
        "a\u{1b}[31mred".into(),
        "with space".into(),
        "new\nline".into(),
        "-dash".into(),
        "x".repeat(300),
    ]
}

struct Content {
    /// By tag or digest: media type and bytes.
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    /// The digests of the nested indexes, top first.
    indexes: Vec<String>,
    layer: String,
}

struct State {
    behaviour: Behaviour,
    content: Content,
    log: Mutex<Vec<String>>,
    /// `http://127.0.0.1:PORT/token` in [`Behaviour::PlainHttpRealm`].
    realm: Option<String>,
}

pub struct HostileRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The CA to trust (`--ca-file`) in [`Behaviour::PlainHttpRealm`].
    pub ca_pem: Option<String>,
    state: Arc<State>,
    token_requests: Arc<AtomicUsize>,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn content(behaviour: Behaviour) -> Content {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (config_digest, layer_digest) = (sha256(&config), sha256(&layer));
    let image = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let mut manifests = HashMap::new();
    let mut top = (OCI_MANIFEST.to_string(), image.clone());
    manifests.insert(sha256(&image), top.clone());
    let mut indexes = Vec::new();
    if behaviour == Behaviour::NestedIndex {
        for _ in 0..4 {
            let (media_type, bytes) = &top;
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": media_type, "digest": sha256(bytes),
                               "size": bytes.len(),
                               "platform": {"os": "linux", "architecture": "amd64"}}],
            }))
            .unwrap();
            indexes.insert(0, sha256(&index));
            manifests.insert(sha256(&index), (OCI_INDEX.to_string(), index.clone()));
            top = (OCI_INDEX.to_string(), index);
        }
    }
    manifests.insert(TAG.to_string(), top);
    let blobs = HashMap::from([(config_digest, config), (layer_digest.clone(), layer)]);
    Content {
        manifests,
        blobs,
        indexes,
        layer: layer_digest,
    }
}

impl HostileRegistry {
    pub fn start(behaviour: Behaviour) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let token_requests = Arc::new(AtomicUsize::new(0));
        let (tls, ca_pem, realm) = if behaviour == Behaviour::PlainHttpRealm {
            let certs = Certs::generate();
            let realm = start_token_service(token_requests.clone());
            (Some(certs.server_config()), Some(certs.ca_pem), Some(realm))
        } else {
            (None, None, None)
        };
        let state = Arc::new(State {
            behaviour,
            content: content(behaviour),
            log: Mutex::new(Vec::new()),
            realm,
        });
        let thread_state = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = thread_state.clone();
                let tls = tls.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = match tls {
                        Some(config) => match ServerConnection::new(config) {
                            Ok(conn) => serve(StreamOwned::new(conn, stream), &state),
                            Err(_) => Ok(()),
                        },
                        None => serve(stream, &state),
                    };
                });
            }
        });
        HostileRegistry {
            host,
            ca_pem,
            state,
            token_requests,
        }
    }

    /// Request lines (`GET /v2/…`) in the order they arrived.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// Connections the plain-HTTP token service accepted.
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    /// The digests of the nested indexes of [`Behaviour::NestedIndex`], top first.
    pub fn index_digests(&self) -> Vec<String> {
        self.state.content.indexes.clone()
    }
}

/// A plain-HTTP token service that counts who calls it and hands out a token the
/// hostile registry (which checks nothing) accepts.
fn start_token_service(count: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream);
            let _ = Request::read(&mut reader);
            let body = br#"{"token":"t0","expires_in":300}"#;
            let mut out = reader.into_inner();
            let _ = respond(
                &mut out,
                200,
                &[("Content-Type", "application/json")],
                body,
                true,
            );
        }
    });
    realm
}

fn serve(stream: impl Read + Write, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let Some(request) = Request::read(&mut reader)? else {
        return Ok(());
    };
    state
        .log
        .lock()
        .unwrap()
        .push(format!("{} {}", request.method, request.target));
    let method = request.method.clone();
    let target = request.target.clone();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut out = reader.into_inner();
    let behaviour = state.behaviour;

    if behaviour == Behaviour::NeverAnswers {
        thread::sleep(Duration::from_secs(600));
        return Ok(());
    }
    if path == "/v2/" || path == "/v2" {
        if let Some(realm) = &state.realm {
            let challenge = format!("Bearer realm=\"{realm}\",service=\"hostile\"");
            return respond(
                &mut out,
                401,
                &[("WWW-Authenticate", &challenge)],
                b"{}",
                method != "HEAD",
            );
        }
        return respond(&mut out, 200, &[], b"{}", method != "HEAD");
    }
    let Some(rest) = path.strip_prefix(&format!("/v2/{REPO}/")) else {
        return respond(&mut out, 404, &[], b"", method != "HEAD");
    };
    if rest == "tags/list" {
        return tag_list(&mut out, behaviour, query, &method);
    }
    if let Some(reference) = rest.strip_prefix("manifests/") {
        if behaviour == Behaviour::RedirectLoop {
            return respond(&mut out, 302, &[("Location", path)], b"", method != "HEAD");
        }
        let Some((media_type, bytes)) = state.content.manifests.get(reference) else {
            return respond(&mut out, 404, &[], b"", method != "HEAD");
        };
        let digest = sha256(bytes);
        if behaviour == Behaviour::HugeManifest && method == "GET" {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nDocker-Content-Digest: {digest}\r\nConnection: close\r\n\r\n{{\"schemaVersion\":2,\"padding\":\""
            )?;
            let chunk = [b'x'; 64 * 1024];
            loop {
                out.write_all(&chunk)?;
            }
        }
        let headers = [
            ("Content-Type", media_type.as_str()),
            ("Docker-Content-Digest", &digest),
        ];
        return respond(&mut out, 200, &headers, bytes, method != "HEAD");
    }
    if let Some(digest) = rest.strip_prefix("blobs/") {
        let Some(bytes) = state.content.blobs.get(digest) else {
            return respond(&mut out, 404, &[], b"", method != "HEAD");
        };
        if behaviour == Behaviour::TrickleBlob && digest == state.content.layer && method == "GET" {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )?;
            for byte in bytes {
                out.write_all(&[*byte])?;
                out.flush()?;
                thread::sleep(Duration::from_millis(100));
            }
            return Ok(());
        }
        return respond(&mut out, 200, &[], bytes, method != "HEAD");
    }
    respond(&mut out, 404, &[], b"", method != "HEAD")
}

fn tag_list(
    out: &mut impl Write,
    behaviour: Behaviour,
    query: &str,
    method: &str,
) -> std::io::Result<()> {
    let mut tags = vec![TAG.to_string()];
    let mut headers = Vec::new();
    let next = format!("</v2/{REPO}/tags/list?n=1000&last={TAG}>; rel=\"next\"");
    match behaviour {
        Behaviour::BadTagNames => tags.extend(bad_tag_names()),
        // Page one links to page two, which links to itself.
        Behaviour::SelfLinkingTags => {
            if query.contains("last=") {
                tags = vec!["v2".to_string()];
            }
            headers.push(("Link", next.as_str()));
        }
        _ => {}
    }
    let body = serde_json::to_vec(&json!({ "name": REPO, "tags": tags })).unwrap();
    respond(out, 200, &headers, &body, method != "HEAD")
}
