//! How a server's certificate is checked: against the system's roots, read while the first
//! handshake is under way ([`SystemRoots`]), or not at all for `insecure` registries
//! ([`Unverified`]). Reading the system's roots (some 150 files of `/etc/ssl/certs`, ~3 ms)
//! sat between the first connection's TCP handshake and its ClientHello; the roots are
//! needed only when the server's certificate arrives, a round trip (and the server's
//! signature) later, so they are read on a thread of their own from the moment the first
//! configuration is built, and the check waits for them only if they are not read yet.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore};
use ureq::tls::Certificate;

use super::tls::system_roots;

/// A root store of `certs` (those that do not parse are left out).
pub fn root_store(certs: &mut dyn Iterator<Item = &Certificate<'static>>) -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(certs.map(|c| CertificateDer::from(c.der())));
    store
}

/// Verifies as rustls's WebPKI verifier does, against the system's roots and `extra` CAs,
/// built on first need (see the module's note).
#[derive(Debug)]
pub struct SystemRoots {
    extra: Vec<Certificate<'static>>,
    provider: Arc<CryptoProvider>,
    webpki: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl SystemRoots {
    pub fn new(extra: Vec<Certificate<'static>>, provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(SystemRoots {
            extra,
            provider,
            webpki: OnceLock::new(),
        })
    }

    /// Starts reading the roots on a thread of their own; without one, the first check
    /// reads them.
    pub fn read_ahead(self: &Arc<Self>) {
        let verifier = self.clone();
        let _ = std::thread::Builder::new()
            .name("roots".into())
            .spawn(move || {
                let _ = verifier.webpki();
            });
    }

    fn webpki(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.webpki
            .get_or_init(|| {
                let mut certs = system_roots().iter().chain(&self.extra);
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(root_store(&mut certs)),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| format!("the trusted roots: {e}"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `insecure`: any certificate is accepted; the handshake's signatures are still checked
/// against the certificate presented (they prove nothing about who the server is).
#[derive(Debug)]
pub struct Unverified(WebPkiSupportedAlgorithms);

impl Unverified {
    pub fn new(provider: &CryptoProvider) -> Self {
        Unverified(provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
