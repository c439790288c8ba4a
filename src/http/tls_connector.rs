//! TLS for every agent of ours, with one rustls configuration per agent. ureq's own
//! connector builds a configuration — every root certificate parsed again, and all of them
//! hashed — for each new connection of a request that carries its own settings, as every
//! request of ours does (the proxy, the deadline); each configuration also has its own,
//! empty, session cache, so no connection could resume another's TLS session. Here the
//! configuration is built once, on the agent's first TLS connection (concurrent first
//! connections wait for that one build), and shared: later handshakes with a server that
//! issued a ticket resume (no certificate chain sent, signed or verified again).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::transport::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use super::tls::{ClientIdentity, Roots};
use super::tls_resumption::Resumptions;
use super::tls_verifiers::{SystemRoots, Unverified, root_store};

/// The TLS link of a connector chain: wraps the connection below in TLS when the URL is
/// `https`, with the agent's one configuration (see the module's note).
pub struct TlsConnector {
    roots: Roots,
    identity: Option<ClientIdentity>,
    config: OnceLock<Arc<ClientConfig>>,
    /// Per server (`host:port`): the configuration with that server's own session store
    /// (rustls keys sessions by name alone, so two registries on one host would be
    /// offered each other's tickets), and what is known of its tickets.
    servers: Mutex<HashMap<String, ServerTls>>,
}

/// A server's configuration (the agent's, with the server's own session store) and what
/// is known of its tickets.
type ServerTls = (Arc<ClientConfig>, Arc<Resumptions>);

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("client_certificate", &self.identity.is_some())
            .field("built", &self.config.get().is_some())
            .finish()
    }
}

impl TlsConnector {
    /// Verifies servers against `roots`, presents `identity` when a server asks for one.
    pub fn new(roots: Roots, identity: Option<ClientIdentity>) -> Self {
        TlsConnector {
            roots,
            identity,
            config: OnceLock::new(),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration for `server` (`host:port`), and its sessions: the agent's one
    /// configuration, built by the first caller, with the server's own session store.
    fn for_server(&self, server: &str) -> ServerTls {
        let base = self
            .config
            .get_or_init(|| client_config(&self.roots, self.identity.as_ref()));
        let mut servers = self.servers.lock().unwrap();
        let (config, resumptions) = servers.entry(server.to_string()).or_insert_with(|| {
            let resumptions = Arc::new(Resumptions::default());
            let mut config = ClientConfig::clone(base);
            config.resumption = Resumption::store(resumptions.clone());
            (Arc::new(config), resumptions)
        });
        (config.clone(), resumptions.clone())
    }
}

/// The rustls configuration for `roots` and an optional client certificate: every TLS
/// version rustls has and ring's algorithms (each server gets its own session store: see
/// `TlsConnector::for_server`).
pub fn client_config(roots: &Roots, identity: Option<&ClientIdentity>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("ring supports every TLS version rustls has");
    let builder = match roots {
        Roots::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified::new(&provider))),
        Roots::Only(certs) => builder.with_root_certificates(root_store(&mut certs.iter())),
        Roots::System(extra) => {
            let verifier = SystemRoots::new(extra.clone(), provider.clone());
            verifier.read_ahead();
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
    };
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .expect("the client certificate and key were checked when they were read"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let authority = details
            .uri
            .authority()
            .ok_or(ureq::Error::Tls("no host to verify the certificate of"))?;
        let host = authority.host();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare)
            .map_err(|_| ureq::Error::Tls("not a valid name for TLS"))?
            .to_owned();
        let (config, resumptions) = self.for_server(authority.as_ref());
        let handshake = resumptions.before_handshake();
        let mut connection = ClientConnection::new(config, name)?;
        handshake.begun();
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(remaining(details));
        connection.complete_io(&mut socket)?;
        Ok(Some(Either::B(TlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned::new(connection, socket),
        })))
    }
}

/// What is left of the connection's timeout after the steps before TLS.
fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (Duration::Exact(limit), Instant::Exact(now), Instant::Exact(started)) =
        (timeout.after, (details.current_time)(), details.now)
    {
        timeout.after =
            Duration::Exact(limit.saturating_sub(now.saturating_duration_since(started)));
    }
    timeout
}

/// A connection under TLS.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
