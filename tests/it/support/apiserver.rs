//! A tiny Kubernetes API server for tests: real HTTPS (rustls, certificates from rcgen) on
//! 127.0.0.1, answering `/version` and the list endpoints of the workload kinds with the
//! API's JSON shapes, paginated with `limit`/`continue`. It can demand a bearer token,
//! basic auth or a client certificate, refuse one kind with 403, and records every request.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use serde_json::{Value, json};

use super::http1;

/// A test CA, a server certificate for 127.0.0.1/localhost and a client certificate, all
/// signed by the CA. Everything is PEM.
#[derive(Clone)]
pub struct Certs {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

impl Certs {
    pub fn generate() -> Certs {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "image-migrator test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "test-user");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        Certs {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
            ca_der: ca_cert.der().clone(),
        }
    }

    pub fn b64(pem: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    /// A rustls server configuration with the server certificate, asking no client for one.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert_der.clone()], key)
            .unwrap();
        Arc::new(config)
    }
}

/// What the server demands before it answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    Anonymous,
    Token(String),
    Basic(String, String),
    ClientCert,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub client_cert: bool,
    pub status: u16,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    /// (kind, object) pairs; objects carry metadata.namespace.
    objects: Vec<(String, Value)>,
    /// (plural, namespace or None for everywhere) answered with 403.
    forbidden: Vec<(String, Option<String>)>,
    auth: Auth,
    log: Mutex<Vec<Request>>,
}

pub struct ApiServerBuilder {
    objects: Vec<(String, Value)>,
    forbidden: Vec<(String, Option<String>)>,
    auth: Auth,
}

impl ApiServerBuilder {
    /// Adds an object of `kind` (`Deployment`, `Pod`, ...).
    pub fn object(mut self, kind: &str, object: Value) -> Self {
        self.objects.push((kind.to_string(), object));
        self
    }

    /// Answers 403 for listing `plural` (e.g. `daemonsets`) in `namespace`, or everywhere.
    pub fn forbid(mut self, plural: &str, namespace: Option<&str>) -> Self {
        self.forbidden
            .push((plural.to_string(), namespace.map(str::to_string)));
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn start(self) -> ApiServer {
        let certs = Certs::generate();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(certs.ca_der.clone()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certs.server_key_der.clone()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![certs.server_cert_der.clone()], key)
            .unwrap();
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            objects: self.objects,
            forbidden: self.forbidden,
            auth: self.auth,
            log: Mutex::new(Vec::new()),
        });
        let thread_state = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let config = config.clone();
                let state = thread_state.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, config, &state);
                });
            }
        });
        ApiServer { url, certs, state }
    }
}

pub struct ApiServer {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    pub certs: Certs,
    state: Arc<State>,
}

impl ApiServer {
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder {
            objects: Vec::new(),
            forbidden: Vec::new(),
            auth: Auth::Anonymous,
        }
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// Paths of the list requests (not `/version`), in order.
    pub fn list_paths(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/version")
            .map(|r| r.path)
            .collect()
    }

    /// Writes a kubeconfig with one context `test` (cluster `test-cluster`, user
    /// `test-user`) into `dir/config` and returns its path. `cluster` and `user` are extra
    /// YAML fields; values `true`/`false` are written as booleans, the rest as strings.
    pub fn write_kubeconfig(
        &self,
        dir: &Path,
        cluster: &[(&str, &str)],
        user: &[(&str, &str)],
    ) -> PathBuf {
        let path = dir.join("config");
        std::fs::write(&path, self.kubeconfig_yaml(cluster, user)).unwrap();
        path
    }

    pub fn kubeconfig_yaml(&self, cluster: &[(&str, &str)], user: &[(&str, &str)]) -> String {
        let fields = |pairs: &[(&str, &str)]| -> String {
            if pairs.is_empty() {
                return "    {}\n".to_string();
            }
            pairs
                .iter()
                .map(|(k, v)| match *v {
                    "true" | "false" => format!("    {k}: {v}\n"),
                    _ => format!("    {k}: {}\n", Value::String(v.to_string())),
                })
                .collect()
        };
        let mut cluster_fields = vec![("server", self.url.as_str())];
        cluster_fields.extend_from_slice(cluster);
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test-cluster\n  cluster:\n{}\
             contexts:\n- name: test\n  context:\n    cluster: test-cluster\n    user: test-user\n\
             users:\n- name: test-user\n  user:\n{}",
            fields(&cluster_fields),
            fields(user)
        )
    }
}

/// An object of `kind` in `namespace` whose pod template runs `images` as containers.
pub fn workload(kind: &str, namespace: &str, name: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let pod_spec = json!({"containers": containers, "restartPolicy": "Always"});
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": pod_spec});
    let spec = match kind {
        "Pod" => pod_spec,
        "CronJob" => json!({"schedule": "*/5 * * * *",
                            "jobTemplate": {"spec": {"template": template}}}),
        _ => {
            json!({"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template})
        }
    };
    json!({
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                     "resourceVersion": "1"},
        "spec": spec,
        "status": {}
    })
}

fn kind_of(plural: &str) -> Option<(&'static str, &'static str)> {
    Some(match plural {
        "deployments" => ("apps/v1", "Deployment"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        "daemonsets" => ("apps/v1", "DaemonSet"),
        "replicasets" => ("apps/v1", "ReplicaSet"),
        "jobs" => ("batch/v1", "Job"),
        "cronjobs" => ("batch/v1", "CronJob"),
        "pods" => ("v1", "Pod"),
        _ => return None,
    })
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, state: &State) -> std::io::Result<()> {
    let conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    let mut reader = std::io::BufReader::new(&mut tls);
    let Some(received) = http1::Request::read(&mut reader)? else {
        return Ok(());
    };
    let authorization = received.header("authorization").map(str::to_string);
    let (path, query) = (received.path().to_string(), received.query());
    let client_cert = tls.conn.peer_certificates().is_some_and(|c| !c.is_empty());
    let mut request = Request {
        path,
        query,
        authorization,
        client_cert,
        status: 0,
    };
    let (code, body) = respond(state, &request);
    request.status = code;
    state.log.lock().unwrap().push(request);

    let body = body.to_string();
    http1::respond(
        &mut tls,
        code,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        true,
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

fn respond(state: &State, request: &Request) -> (u16, Value) {
    let authorized = match &state.auth {
        Auth::Anonymous => true,
        Auth::Token(token) => request.authorization.as_deref() == Some(&format!("Bearer {token}")),
        Auth::Basic(user, password) => {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.authorization.as_deref() == Some(&format!("Basic {expected}"))
        }
        Auth::ClientCert => request.client_cert,
    };
    if !authorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if request.path == "/version" {
        return (
            200,
            json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-test",
                   "platform": "linux/amd64"}),
        );
    }

    // /api/v1/[namespaces/NS/]pods or /apis/GROUP/VERSION/[namespaces/NS/]PLURAL
    let rest = if let Some(rest) = request.path.strip_prefix("/api/v1/") {
        Some(("v1".to_string(), rest))
    } else if let Some(rest) = request.path.strip_prefix("/apis/") {
        let mut parts = rest.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(g), Some(v), Some(rest)) => Some((format!("{g}/{v}"), rest)),
            _ => None,
        }
    } else {
        None
    };
    let Some((api_version, rest)) = rest else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (namespace, plural) = match segments.as_slice() {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some(*ns), *plural),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let Some((expected_version, kind)) = kind_of(plural) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if expected_version != api_version {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let forbidden = state
        .forbidden
        .iter()
        .any(|(p, ns)| p == plural && (ns.is_none() || ns.as_deref() == namespace));
    if forbidden {
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        return status(
            403,
            "Forbidden",
            &format!(
                "{plural}{} is forbidden: User \"test-user\" cannot list resource \"{plural}\" \
                 in API group \"{group}\" {scope}",
                if group.is_empty() {
                    String::new()
                } else {
                    format!(".{group}")
                }
            ),
        );
    }

    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|(k, object)| {
            k == kind
                && namespace
                    .is_none_or(|ns| object.pointer("/metadata/namespace") == Some(&json!(ns)))
        })
        .map(|(_, object)| object.clone())
        .collect();
    let offset = match request.param("continue") {
        None => 0,
        Some(token) => match token
            .strip_prefix("tok-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => return status(410, "Expired", "the provided continue parameter is invalid"),
        },
    };
    let limit = request
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
    let next = offset.saturating_add(page.len());
    let mut metadata = json!({"resourceVersion": "12345"});
    if next < items.len() {
        metadata["continue"] = json!(format!("tok-{next}"));
        metadata["remainingItemCount"] = json!(items.len() - next);
    }
    (
        200,
        json!({"kind": format!("{kind}List"), "apiVersion": api_version,
               "metadata": metadata, "items": page}),
    )
}

/// `image-migrator` with no kubeconfig or proxy settings inherited from the environment.
pub fn image_migrator() -> assert_cmd::Command {
    super::migrator()
}

/// Parses images.json text, checking the file ends with a newline, that keys are sorted and
/// unique, and that every source and target is a fully qualified reference (a namespace is
/// not required: `registry.k8s.io/pause` is a rule like the others).
pub fn parse_rules(text: &str) -> Vec<(String, String)> {
    assert!(
        text.ends_with("}\n"),
        "output must end with a newline: {text:?}"
    );
    let map: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
    let keys: Vec<&String> = map.keys().collect();
    let raw_keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split_once("\": ").map(|(k, _)| k))
        .collect();
    assert_eq!(raw_keys.len(), keys.len(), "duplicate keys in {text}");
    let mut sorted = raw_keys.clone();
    sorted.sort();
    assert_eq!(raw_keys, sorted, "rules must be sorted by source");
    map.into_iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap().to_string();
            for r in [&k, &v] {
                image_migrator::reference::Reference::parse(r)
                    .unwrap_or_else(|e| panic!("{r} is not a valid images.json reference: {e}"));
            }
            (k, v)
        })
        .collect()
}
