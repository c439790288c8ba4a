//! A small bearer token server (the `realm` of a registry with `auth: token`), on
//! `http://127.0.0.1:PORT/token`. It checks HTTP basic credentials, grants the requested
//! actions a user's grants allow, and issues ES256 JWTs whose header carries the signing
//! certificate (`x5c`); that certificate is self-signed and is the registry's
//! `rootcertbundle`, so distribution accepts the tokens offline.
//!
//! `lifetime` sets how long a token works: `expires_in` says so, and the JWT's `exp` is
//! set 60 s earlier than that to cancel the registry's 60 s clock-skew leeway, so the
//! registry really refuses the token once `lifetime` has passed.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use super::http1::{Request, form_pairs, respond};

/// The registry's leeway on `exp`/`nbf` (distribution `registry/auth/token`).
const REGISTRY_LEEWAY: u64 = 60;

/// One token request as the server saw it.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub at: Instant,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    pub account: Option<String>,
    pub authorization: Option<String>,
    /// `refresh_token` for an OAuth2 POST (Docker's identity token flow), else `None`.
    pub grant: Option<String>,
    pub status: u16,
    /// The token issued (empty when refused).
    pub token: String,
}

/// (repository prefix, allowed actions) pairs.
type Grants = Vec<(String, Vec<String>)>;

/// A user for [`TokenServer::start`]: (name, password, [(repository prefix, actions)]).
pub type User<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [&'a str])]);

struct State {
    issuer: String,
    service: String,
    key: EcdsaKeyPair,
    x5c: String,
    /// (user, password, [(repository prefix, allowed actions)])
    users: Vec<(String, String, Grants)>,
    lifetime: Mutex<Duration>,
    log: Mutex<Vec<TokenRequest>>,
    /// How many of the next requests are answered 503 (a struggling token service).
    unavailable: Mutex<u32>,
}

pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`
    pub realm: String,
    pub issuer: String,
    pub service: String,
    /// The signing certificate (PEM): the registry's root certificate bundle.
    pub cert_pem: String,
    state: Arc<State>,
}

impl TokenServer {
    /// `users`: (name, password, [(repository prefix, actions)]).
    pub fn start(users: &[User<'_>]) -> TokenServer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "image-migrator test token signer",
        );
        let cert = params.self_signed(&key).unwrap();
        let signing = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let state = Arc::new(State {
            issuer: "image-migrator-test-issuer".into(),
            service: "image-migrator-test-registry".into(),
            key: signing,
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            users: users
                .iter()
                .map(|(u, p, grants)| {
                    let grants = grants
                        .iter()
                        .map(|(prefix, actions)| {
                            (
                                prefix.to_string(),
                                actions.iter().map(|a| a.to_string()).collect(),
                            )
                        })
                        .collect();
                    (u.to_string(), p.to_string(), grants)
                })
                .collect(),
            lifetime: Mutex::new(Duration::from_secs(300)),
            log: Mutex::new(Vec::new()),
            unavailable: Mutex::new(0),
        });
        let server_state = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = server_state.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        TokenServer {
            realm,
            issuer: state.issuer.clone(),
            service: state.service.clone(),
            cert_pem: cert.pem(),
            state,
        }
    }

    /// How long tokens issued from now on work (default 300 s).
    pub fn set_lifetime(&self, lifetime: Duration) {
        *self.state.lifetime.lock().unwrap() = lifetime;
    }

    /// The next `count` token requests are answered 503 Service Unavailable.
    pub fn fail_next(&self, count: u32) {
        *self.state.unavailable.lock().unwrap() = count;
    }

    /// A token for `access` ([(repository, actions)]) without any request, for seeding.
    pub fn mint(&self, access: &[(&str, &[&str])]) -> String {
        let access = access
            .iter()
            .map(|(name, actions)| {
                (
                    name.to_string(),
                    actions.iter().map(|a| a.to_string()).collect(),
                )
            })
            .collect::<Vec<_>>();
        issue(&self.state, "seeder", &access, Duration::from_secs(300))
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.log.lock().unwrap().clone()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn issue(
    state: &State,
    subject: &str,
    access: &[(String, Vec<String>)],
    lifetime: Duration,
) -> String {
    let now = now_secs();
    let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [state.x5c] });
    let claims = serde_json::json!({
        "iss": state.issuer,
        "sub": subject,
        "aud": state.service,
        "exp": (now + lifetime.as_secs()).saturating_sub(REGISTRY_LEEWAY),
        "nbf": now - 1,
        "iat": now,
        "jti": format!("{:016x}", fastrand_u64()),
        "access": access.iter().map(|(name, actions)| serde_json::json!({
            "type": "repository", "name": name, "actions": actions
        })).collect::<Vec<_>>(),
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = state
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    format!("{signing_input}.{}", b64url(signature.as_ref()))
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(request) = Request::read(&mut reader)? else {
        return Ok(());
    };
    let authorization = request.header("authorization").map(str::to_string);
    let method = request.method.as_str();
    // GET carries its parameters in the query; an OAuth2 POST in a form body, where
    // `scope` holds the scopes separated by spaces.
    let pairs = if method == "POST" {
        form_pairs(&String::from_utf8_lossy(&request.body))
    } else {
        request.query()
    };
    let mut service = None;
    let mut scopes = Vec::new();
    let mut account = None;
    let mut grant = None;
    for (k, v) in pairs {
        match k.as_str() {
            "service" => service = Some(v),
            "scope" if method == "POST" => scopes.extend(v.split(' ').map(str::to_string)),
            "scope" => scopes.push(v),
            "account" => account = Some(v),
            "refresh_token" => grant = Some(v),
            _ => {}
        }
    }
    // Who is asking: basic credentials must match a user exactly; a refresh token must be
    // a user's password (the identity token `docker login` stored for that user).
    let user = if method == "POST" {
        grant.as_deref().and_then(|token| {
            state
                .users
                .iter()
                .find(|(_, password, _)| password == token)
        })
    } else {
        authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|creds| {
                let (u, p) = creds.split_once(':')?;
                state
                    .users
                    .iter()
                    .find(|(name, password, _)| name == u && password == p)
            })
    };
    let presented = authorization.is_some() || grant.is_some();
    let lifetime = *state.lifetime.lock().unwrap();
    let unavailable = {
        let mut left = state.unavailable.lock().unwrap();
        let fail = *left > 0;
        *left = left.saturating_sub(1);
        fail
    };
    let (status, body, token) = match (user, presented) {
        _ if unavailable => (
            503,
            r#"{"errors":[{"code":"UNAVAILABLE","message":"try again later"}]}"#.to_string(),
            String::new(),
        ),
        (None, true) => (
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#
                .to_string(),
            String::new(),
        ),
        (user, _) => {
            let mut access = Vec::new();
            for scope in &scopes {
                let mut parts = scope.splitn(3, ':');
                let (Some("repository"), Some(name), Some(actions)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let allowed: Vec<String> = actions
                    .split(',')
                    .filter(|action| {
                        user.is_some_and(|(_, _, grants)| {
                            grants.iter().any(|(prefix, acts)| {
                                name.starts_with(prefix.as_str())
                                    && acts.iter().any(|a| a == action)
                            })
                        })
                    })
                    .map(str::to_string)
                    .collect();
                access.push((name.to_string(), allowed));
            }
            let subject = user.map_or("anonymous", |(name, _, _)| name.as_str());
            let token = issue(state, subject, &access, lifetime);
            let body = serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": lifetime.as_secs(),
            })
            .to_string();
            (200, body, token)
        }
    };
    state.log.lock().unwrap().push(TokenRequest {
        at: Instant::now(),
        service,
        scopes,
        account,
        authorization,
        grant,
        status,
        token,
    });
    respond(
        &mut writer,
        status,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        true,
    )
}
