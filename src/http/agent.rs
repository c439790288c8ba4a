//! The agents requests go through: the settings every agent shares (User-Agent, statuses
//! as answers, no compression, connection buffers), the connector chain of ours, and the
//! pool of registry agents — verified, unverified for `insecure` registries, and one per
//! host that has its own CAs or client certificate in certs.d.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ureq::config::ConfigBuilder;
use ureq::tls::Certificate;
use ureq::typestate::AgentScope;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};
use ureq::{Agent, Proxy};

use super::resolver::KeptResolver;
use super::tls::{self, ClientIdentity, DOCKER_CERTS_D, Roots};
use super::tls_connector::TlsConnector;
use super::{TimeBounds, USER_AGENT, bounds, proxy};
use crate::error::{Error, Result};

/// Buffers of each pooled connection, per layer (TCP, and TLS above it). ureq's 128 KiB
/// each way cost 0.5 MiB per TLS connection and 9 MiB over a run's pool, for no speed:
/// reads are 64 KiB at most anyway (and TLS records 16 KiB); the input buffer still holds
/// the largest response header ureq accepts (64 KiB).
const INPUT_BUFFER_BYTES: usize = 64 * 1024;
const OUTPUT_BUFFER_BYTES: usize = 32 * 1024;

/// The settings every agent shares, registries and the Kubernetes API alike: the
/// User-Agent, statuses as answers, no compression, a connect timeout, connection buffers.
/// TLS is a link of the connector chain ([`TlsConnector`]). The proxy is chosen per request
/// (see [`super::ProxyPolicy`]), so none is set here.
pub(super) fn agent_config() -> ConfigBuilder<AgentScope> {
    Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(USER_AGENT)
        .accept_encoding("identity")
        .timeout_connect(Some(Duration::from_secs(30)))
        .input_buffer_size(INPUT_BUFFER_BYTES)
        .output_buffer_size(OUTPUT_BUFFER_BYTES)
        .proxy(None)
}

/// A pooled agent for registries: the shared settings, no redirects followed, an answer's
/// headers within the request deadline, long transfers allowed (the speed floor bounds
/// them, as a timer on each connection: [`bounds::FloorClock`]), and enough idle
/// connections for the parallel jobs.
fn pooled_agent(tls: TlsConnector, max_idle_per_host: usize, time: &TimeBounds) -> Agent {
    let per_io = time.request_timeout.min(Duration::from_secs(120));
    let config = agent_config()
        .max_redirects(0)
        .timeout_recv_response(Some(time.request_timeout))
        .timeout_per_read(Some(per_io))
        .timeout_per_write(Some(per_io))
        .max_idle_connections(max_idle_per_host * 4)
        .max_idle_connections_per_host(max_idle_per_host)
        .build();
    Agent::with_parts(config, connector(tls), KeptResolver::default())
}

/// The connector chain of the registry agents: ureq's CONNECT proxies and TCP with links
/// of ours: SOCKS refused as an error ([`proxy::NoSocks`]), a server's last words read
/// after a reset under TLS ([`tls::LastWords`]), TLS with the agent's one configuration
/// ([`TlsConnector`]), and the speed floor's timer on every read ([`bounds::FloorClock`]).
fn connector(tls: TlsConnector) -> impl Connector {
    proxy::NoSocks
        .chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(tls::LastWords)
        .chain(tls)
        .chain(bounds::FloorClock)
}

/// The connector chain of the Kubernetes API's agent: its proxy (set on the agent), TCP,
/// and TLS trusting `roots`, presenting `identity`.
pub(super) fn api_connector(roots: Roots, identity: Option<ClientIdentity>) -> impl Connector {
    ConnectProxyConnector::default()
        .chain(TcpConnector::default())
        .chain(TlsConnector::new(roots, identity))
}

/// Sends `request` through `proxy` (or directly), within `deadline` for the whole exchange
/// when one is given.
pub(super) fn run_via(
    agent: &Agent,
    proxy: Option<Proxy>,
    deadline: Option<Duration>,
    request: ureq::http::Request<impl ureq::AsSendBody>,
) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let mut config = agent.configure_request(request).proxy(proxy);
    if deadline.is_some() {
        config = config.timeout_per_call(deadline);
    }
    agent.run(config.build())
}

/// An agent, and the file of the client certificate it presents.
#[derive(Clone)]
pub(super) struct HostAgent {
    pub agent: Agent,
    pub client_cert: Option<PathBuf>,
}

/// What certs.d gave for one host: its own agent, none (the shared one), or why not.
type HostAgentEntry = std::result::Result<Option<HostAgent>, String>;

/// The registry agents of a run: the two shared ones and those of certs.d's hosts.
pub(super) struct Agents {
    verified: Agent,
    unverified: Agent,
    /// `--ca-file`'s CAs, layered on the system roots.
    extra_roots: Vec<Certificate<'static>>,
    certs_d: Option<PathBuf>,
    /// Agents for hosts with a certs.d directory, by `host[:port]` and `insecure`; `None` =
    /// the shared one.
    per_host: Mutex<HashMap<(String, bool), HostAgentEntry>>,
    max_idle_per_host: usize,
    time: TimeBounds,
}

impl Agents {
    pub(super) fn new(
        extra_roots: Vec<Certificate<'static>>,
        certs_d: Option<PathBuf>,
        max_idle_per_host: usize,
        time: TimeBounds,
    ) -> Self {
        let pooled =
            |roots: Roots| pooled_agent(TlsConnector::new(roots, None), max_idle_per_host, &time);
        Agents {
            verified: pooled(Roots::System(extra_roots.clone())),
            unverified: pooled(Roots::Unverified),
            extra_roots,
            certs_d,
            per_host: Mutex::new(HashMap::new()),
            max_idle_per_host,
            time,
        }
    }

    /// The agent for a request to `url`: the shared one (verified, or not for an
    /// `insecure` registry), or the host's own when certs.d has a directory for it (read
    /// once per run): its CAs for a verified request, its client certificate either way,
    /// as Docker does. Also the file of the client certificate presented, if any.
    pub(super) fn for_url(&self, url: &str, insecure: bool) -> Result<HostAgent> {
        let shared = HostAgent {
            agent: if insecure {
                self.unverified.clone()
            } else {
                self.verified.clone()
            },
            client_cert: None,
        };
        let Some(root) = &self.certs_d else {
            return Ok(shared);
        };
        let authority = authority_of(url);
        let mut per_host = self.per_host.lock().unwrap();
        let entry = per_host
            .entry((authority.clone(), insecure))
            .or_insert_with(|| {
                let Some(trust) = tls::host_trust(root, &authority)? else {
                    return Ok(None);
                };
                let roots = if insecure {
                    if trust.identity.is_none() {
                        return Ok(None);
                    }
                    Roots::Unverified
                } else {
                    let mut roots = self.extra_roots.clone();
                    roots.extend(trust.cas);
                    Roots::System(roots)
                };
                Ok(Some(HostAgent {
                    agent: pooled_agent(
                        TlsConnector::new(roots, trust.identity),
                        self.max_idle_per_host,
                        &self.time,
                    ),
                    client_cert: trust.identity_file,
                }))
            });
        match entry {
            Ok(Some(agent)) => Ok(agent.clone()),
            Ok(None) => Ok(shared),
            Err(e) => Err(Error::protocol(format!(
                "{authority}: Docker's certs.d: {e}"
            ))),
        }
    }

    /// Where certs.d has (or would have) the directory of `url`'s registry.
    pub(super) fn certs_d_dir(&self, url: &str) -> PathBuf {
        let root = self
            .certs_d
            .clone()
            .unwrap_or_else(|| PathBuf::from(DOCKER_CERTS_D));
        root.join(authority_of(url))
    }
}

/// `host[:port]` of `url`, lowercased: the name of its directory in certs.d.
fn authority_of(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}
