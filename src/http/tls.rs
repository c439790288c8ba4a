//! Where trust comes from, in one place for registries and the Kubernetes API alike: the
//! system store (plus `SSL_CERT_FILE`/`SSL_CERT_DIR`), the bundled
//! Mozilla roots where the system has none, extra CAs layered on top (`--ca-file`,
//! `/etc/docker/certs.d/<host>/*.crt`), client certificates, and telling a TLS failure
//! from other transport errors by its type.

use std::path::Path;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

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
pub struct ClientIdentity(ClientCert);

impl ClientIdentity {
    /// Parses and checks a PEM chain and key; the error says which part is wrong.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let chain = pem_certificates(cert_pem).map_err(|e| format!("client certificate: {e}"))?;
        let key = PrivateKey::from_pem(key_pem).map_err(|e| format!("client key: {e}"))?;
        check_client_identity(&chain, key_pem)?;
        Ok(ClientIdentity(ClientCert::new_with_certs(&chain, key)))
    }
}

/// The system's roots, loaded once per process: the platform store plus `SSL_CERT_FILE`/
/// `SSL_CERT_DIR` where set (they add to it, they do not hide it); the bundled Mozilla
/// roots where that yields none.
pub fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<Certificate<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        // With either variable set, rustls-native-certs reads only what they name.
        let mut found = rustls_native_certs::load_native_certs().certs;
        if openssl_probe::has_ssl_cert_env_vars() {
            for dir in openssl_probe::candidate_cert_dirs() {
                found.extend(rustls_native_certs::load_certs_from_paths(None, Some(dir)).certs);
            }
        }
        let system: Vec<Certificate<'static>> = found
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        if system.is_empty() {
            bundled_roots()
        } else {
            system
        }
    })
}

/// The Mozilla roots compiled into the binary.
pub fn bundled_roots() -> Vec<Certificate<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

/// The ureq TLS settings for `roots` and an optional client certificate.
pub fn tls_config(roots: &Roots, identity: Option<&ClientIdentity>) -> TlsConfig {
    let mut tls = TlsConfig::builder();
    tls = match roots {
        Roots::Unverified => tls.disable_verification(true),
        Roots::Only(certs) => tls.root_certs(RootCerts::new_with_certs(certs)),
        Roots::System(extra) => {
            let mut all = system_roots().to_vec();
            all.extend(extra.iter().cloned());
            tls.root_certs(RootCerts::new_with_certs(&all))
        }
    };
    if let Some(identity) = identity {
        tls = tls.client_cert(Some(identity.0.clone()));
    }
    tls.build()
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

/// ureq panics when rustls rejects a client certificate/key pair (mismatched or
/// unsupported key), so the same check is made here first, with a message instead.
fn check_client_identity(chain: &[Certificate<'static>], key_pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("client key: invalid PEM: {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(certs, key)
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "the client key does not belong to the client certificate".to_string()
            }
            e => format!("client certificate or key not usable: {e}"),
        })
}

/// Docker's per-registry trust directory.
pub const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";

/// What `/etc/docker/certs.d/<host[:port]>/` holds for one registry: CAs (`*.crt`) trusted
/// for that registry only, and a client certificate (`<name>.cert` with `<name>.key`).
pub struct HostTrust {
    pub cas: Vec<Certificate<'static>>,
    pub identity: Option<ClientIdentity>,
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
            }
            _ => {}
        }
    }
    Ok(Some(HostTrust { cas, identity }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_roots_are_there_and_system_roots_are_never_empty() {
        assert!(bundled_roots().len() > 50);
        assert!(!system_roots().is_empty());
    }

    #[test]
    fn pem_without_certificates_is_an_error() {
        assert_eq!(
            pem_certificates(b"not pem").unwrap_err(),
            "no PEM certificate found"
        );
    }
}
