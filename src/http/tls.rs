//! Where trust comes from, in one place for registries and the Kubernetes API alike: the
//! system store (plus `SSL_CERT_FILE`/`SSL_CERT_DIR`), the bundled
//! Mozilla roots where the system has none, extra CAs layered on top (`--ca-file`,
//! `/etc/docker/certs.d/<host>/*.crt`), client certificates, and telling a TLS failure
//! from other transport errors by its type (and, among them, a server's refusal of the
//! client certificate, or of its absence, from a failure to verify the server).

use std::io;
use std::path::Path;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ureq::tls::{Certificate, PemItem};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// Which roots a connection verifies against.
#[derive(Clone)]
pub enum Roots {
    /// The system store (or the bundled roots), plus these extra CAs.
    System(Vec<Certificate<'static>>),
    /// Only these CAs (a kubeconfig's `certificate-authority`, as kubectl does).
    Only(Vec<Certificate<'static>>),
    /// No verification at all (`insecure`).
    Unverified,
}

/// A client certificate chain with its key, checked to belong together.
#[derive(Clone)]
pub struct ClientIdentity {
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: Arc<PrivateKeyDer<'static>>,
}

impl ClientIdentity {
    /// Parses and checks a PEM chain and key; the error says which part is wrong.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let chain = pem_certificates(cert_pem)
            .map_err(|e| format!("client certificate: {e}"))?
            .iter()
            .map(|c| CertificateDer::from(c.der().to_vec()))
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("client key: invalid PEM: {e}"))?;
        let identity = ClientIdentity {
            chain,
            key: Arc::new(key),
        };
        identity.check()?;
        Ok(identity)
    }

    /// rustls refuses a certificate and key that do not belong together (or a key it cannot
    /// use) only when a configuration is built: the same check, made when they are read,
    /// gives a message rather than a failure on the first connection.
    fn check(&self) -> Result<(), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map(|_| ())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the client key does not belong to the client certificate".to_string()
                }
                e => format!("client certificate or key not usable: {e}"),
            })
    }
}

/// The system's roots, loaded once per process: the platform store plus `SSL_CERT_FILE`/
/// `SSL_CERT_DIR` where set (they add to it, they do not hide it); the bundled Mozilla
/// roots where that yields none. Each directory is read once and each certificate kept
/// once: reading the platform's directory again when `SSL_CERT_DIR` names it doubled the
/// work (some 150 files on Debian) and kept every root twice.
pub fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<Certificate<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        // With either variable set, rustls-native-certs reads only what they name.
        let mut found = rustls_native_certs::load_native_certs().certs;
        if openssl_probe::has_ssl_cert_env_vars() {
            let named = named_cert_dirs();
            for dir in openssl_probe::candidate_cert_dirs() {
                if !named.contains(&canonical(dir)) {
                    found.extend(rustls_native_certs::load_certs_from_paths(None, Some(dir)).certs);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut system: Vec<Certificate<'static>> = Vec::new();
        for der in &found {
            if seen.insert(der.as_ref()) {
                system.push(Certificate::from_der(der.as_ref()).to_owned());
            }
        }
        if system.is_empty() {
            bundled_roots()
        } else {
            system
        }
    })
}

/// The directories `SSL_CERT_DIR` names (`:`-separated), as read above.
fn named_cert_dirs() -> Vec<std::path::PathBuf> {
    std::env::var_os("SSL_CERT_DIR")
        .map(|dirs| {
            std::env::split_paths(&dirs)
                .map(|d| canonical(&d))
                .collect()
        })
        .unwrap_or_default()
}

/// `path` with its links resolved, or as given when it cannot be.
fn canonical(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The Mozilla roots compiled into the binary.
pub fn bundled_roots() -> Vec<Certificate<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

/// The certificates of a PEM file; `what` names it in errors (a flag, a variable, a path).
pub fn pem_file_certificates(path: &Path, what: &str) -> Result<Vec<Certificate<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    pem_certificates(&bytes).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The certificates in PEM text; other PEM items are skipped; none at all is an error.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("invalid PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// Docker's per-registry trust directory.
pub const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";

/// What `/etc/docker/certs.d/<host[:port]>/` holds for one registry: CAs (`*.crt`) trusted
/// for that registry only, and a client certificate (`<name>.cert` with `<name>.key`).
pub struct HostTrust {
    pub cas: Vec<Certificate<'static>>,
    pub identity: Option<ClientIdentity>,
    /// The file the client certificate came from.
    pub identity_file: Option<std::path::PathBuf>,
}

/// Reads `<root>/<authority>/`; `None` when there is no such directory. An unreadable
/// or invalid file is an error naming it.
pub fn host_trust(root: &Path, authority: &str) -> Result<Option<HostTrust>, String> {
    let dir = root.join(authority);
    if authority.is_empty() || authority.contains('/') || !dir.is_dir() {
        return Ok(None);
    }
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut cas = Vec::new();
    let mut identity = None;
    let mut identity_file = None;
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => cas.extend(pem_file_certificates(path, "CA file")?),
            Some("cert") => {
                let key = path.with_extension("key");
                let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
                let (cert_pem, key_pem) = (read(path)?, read(&key)?);
                if identity.is_some() {
                    return Err(format!(
                        "{}: more than one client certificate (*.cert)",
                        dir.display()
                    ));
                }
                identity = Some(
                    ClientIdentity::from_pem(&cert_pem, &key_pem)
                        .map_err(|e| format!("{}: {e}", path.display()))?,
                );
                identity_file = Some(path.clone());
            }
            _ => {}
        }
    }
    Ok(Some(HostTrust {
        cas,
        identity,
        identity_file,
    }))
}

/// A TLS failure: reported by ureq directly, or (handshake failures, e.g. a plain-HTTP
/// server answering a ClientHello) as an I/O error wrapping the rustls error.
pub fn is_tls_failure(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

/// What a server's fatal TLS alert says about the client certificate (mTLS). A server
/// checks no certificate but the client's, so an alert about a certificate is about ours,
/// or the lack of one; failing to verify the server's certificate is a different error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertAlert {
    /// `certificate_required`, `bad_certificate`, `unknown_ca`, `certificate_expired`, …
    /// (the alert's name as TLS spells it).
    AboutCertificate(&'static str),
    /// `handshake_failure`: what some servers (OpenSSL over TLS 1.2) send when a required
    /// client certificate is missing, and others for any disagreement in the handshake.
    HandshakeFailure,
    /// `decrypt_error`: a signature in the handshake did not verify. After a client
    /// certificate was presented, most likely its own or its issuer's (rustls sends it
    /// for a certificate from another CA of the same name as the one it trusts).
    DecryptError,
}

/// The server's alert about the client certificate, if `error` is one (reported by ureq
/// directly or as an I/O error wrapping the rustls error).
pub fn client_cert_alert(error: &ureq::Error) -> Option<ClientCertAlert> {
    use rustls::AlertDescription as A;
    let rustls_error = match error {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    let rustls::Error::AlertReceived(alert) = rustls_error? else {
        return None;
    };
    let name = match alert {
        A::HandshakeFailure => return Some(ClientCertAlert::HandshakeFailure),
        A::DecryptError => return Some(ClientCertAlert::DecryptError),
        A::CertificateRequired => "certificate_required",
        A::NoCertificate => "no_certificate",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        _ => return None,
    };
    Some(ClientCertAlert::AboutCertificate(name))
}

/// The link under TLS in every registry agent's connector chain. A server that refuses a
/// client certificate (or its absence) sends a fatal alert and closes; the client may still
/// be writing (the rest of its TLS 1.2 handshake; under TLS 1.3, whose client is done with
/// the handshake by then, its request), and when the server's reset comes first those
/// writes fail ("broken pipe"). rustls writes what it holds before it reads, so it would
/// never read the alert that says why. Writes that meet a reset on a TLS connection are
/// therefore reported as done, up to [`LAST_WORDS_WRITES`] bytes in all: rustls goes on to
/// read, and fails with the server's alert (or, if there was none, the reset). Past that
/// (a body being sent), a write fails as it is.
#[derive(Debug)]
pub struct LastWords;

/// Bytes of writes that met a reset reported as done: a handshake flight or a request's
/// head, not a body.
pub const LAST_WORDS_WRITES: usize = 64 * 1024;

impl<In: Transport> Connector<In> for LastWords {
    type Out = LastWordsTransport<In>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| LastWordsTransport {
            inner,
            tls: details.needs_tls(),
            reset: false,
            dropped: 0,
        }))
    }
}

/// A connection below TLS; see [`LastWords`].
#[derive(Debug)]
pub struct LastWordsTransport<T> {
    inner: T,
    /// TLS goes over this connection.
    tls: bool,
    /// A write met the peer's reset.
    reset: bool,
    /// Bytes reported as written since.
    dropped: usize,
}

impl<T: Transport> Transport for LastWordsTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        match self.inner.transmit_output(amount, timeout) {
            Err(ureq::Error::Io(e))
                if self.tls
                    && self.dropped + amount <= LAST_WORDS_WRITES
                    && matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ) =>
            {
                self.reset = true;
                self.dropped += amount;
                Ok(())
            }
            other => other,
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        !self.reset && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_roots_are_there_and_system_roots_are_never_empty() {
        assert!(bundled_roots().len() > 50);
        assert!(!system_roots().is_empty());
    }

    #[test]
    fn each_system_root_is_kept_once() {
        // Under SSL_CERT_DIR=/etc/ssl/certs the platform's directory was read a second
        // time, and each of its roots kept twice; the store keeps one of each.
        let roots = system_roots();
        let distinct: std::collections::HashSet<&[u8]> = roots.iter().map(|c| c.der()).collect();
        assert_eq!(distinct.len(), roots.len());
    }

    #[test]
    fn alerts_about_the_client_certificate_are_told_from_other_tls_errors() {
        use rustls::AlertDescription as A;
        let wrapped = |alert| {
            ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(alert),
            ))
        };
        assert_eq!(
            client_cert_alert(&wrapped(A::CertificateRequired)),
            Some(ClientCertAlert::AboutCertificate("certificate_required"))
        );
        assert_eq!(
            client_cert_alert(&ureq::Error::Rustls(rustls::Error::AlertReceived(
                A::UnknownCA
            ))),
            Some(ClientCertAlert::AboutCertificate("unknown_ca"))
        );
        assert_eq!(
            client_cert_alert(&wrapped(A::HandshakeFailure)),
            Some(ClientCertAlert::HandshakeFailure)
        );
        assert_eq!(
            client_cert_alert(&wrapped(A::DecryptError)),
            Some(ClientCertAlert::DecryptError)
        );
        // Not about the client certificate: our own check of the server's, other alerts.
        let unknown_issuer = ureq::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_tls_failure(&unknown_issuer));
        assert_eq!(client_cert_alert(&unknown_issuer), None);
        assert_eq!(client_cert_alert(&wrapped(A::ProtocolVersion)), None);
        assert_eq!(
            client_cert_alert(&ureq::Error::Io(std::io::ErrorKind::TimedOut.into())),
            None
        );
    }

    /// A connection whose every write meets the peer's reset.
    #[derive(Debug)]
    struct ResetByPeer(ureq::unversioned::transport::LazyBuffers);

    impl Transport for ResetByPeer {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.0
        }
        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), ureq::Error> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe).into())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, ureq::Error> {
            Ok(false)
        }
        fn is_open(&mut self) -> bool {
            true
        }
    }

    fn reset_by_peer(tls: bool) -> LastWordsTransport<ResetByPeer> {
        LastWordsTransport {
            inner: ResetByPeer(ureq::unversioned::transport::LazyBuffers::new(1024, 1024)),
            tls,
            reset: false,
            dropped: 0,
        }
    }

    #[test]
    fn writes_that_meet_a_reset_under_tls_pass_up_to_a_bound_so_the_alert_is_read() {
        let timeout = NextTimeout::default();
        let mut tls = reset_by_peer(true);
        assert!(tls.is_open());
        for _ in 0..LAST_WORDS_WRITES / 1024 {
            tls.transmit_output(1024, timeout).unwrap();
        }
        assert!(!tls.is_open(), "never back in the pool");
        let error = tls.transmit_output(1, timeout).unwrap_err();
        assert!(matches!(&error, ureq::Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe));

        // Plain HTTP has no alert to read: the write fails at once.
        let mut plain = reset_by_peer(false);
        assert!(plain.transmit_output(10, timeout).is_err());
    }

    #[test]
    fn pem_without_certificates_is_an_error() {
        assert_eq!(
            pem_certificates(b"not pem").unwrap_err(),
            "no PEM certificate found"
        );
    }
}
