//! A TLS front for a plain-HTTP registry: terminates TLS with rustls (the test CA's server
//! certificate; session resumption on, as a server has it by default) on `127.0.0.1:0`,
//! passes the bytes through to the registry, and counts the connections whose ClientHello
//! arrived and how each handshake went: full (certificate sent, signed and verified) or
//! resumed from an earlier session.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

use super::apiserver::Certs;

pub struct TlsFront {
    /// `127.0.0.1:port` of the front.
    pub host: String,
    full: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
    hellos: Arc<AtomicUsize>,
}

impl TlsFront {
    /// A front for the registry at `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str, certs: &Certs) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let config = certs.server_config();
        let (full, resumed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let hellos = Arc::new(AtomicUsize::new(0));
        let counts = (full.clone(), resumed.clone(), hellos.clone());
        let upstream = upstream.to_string();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (config, upstream, counts) = (config.clone(), upstream.clone(), counts.clone());
                thread::spawn(move || {
                    let _ = relay(client, &upstream, config, &counts);
                });
            }
        });
        TlsFront {
            host,
            full,
            resumed,
            hellos,
        }
    }

    /// Connections whose first bytes (a ClientHello) arrived so far.
    pub fn hellos(&self) -> usize {
        self.hellos.load(Ordering::SeqCst)
    }

    /// Handshakes completed so far: (full, resumed).
    pub fn handshakes(&self) -> (usize, usize) {
        (
            self.full.load(Ordering::SeqCst),
            self.resumed.load(Ordering::SeqCst),
        )
    }
}

/// One connection: the handshake (counted), then bytes both ways until either side closes.
fn relay(
    mut client: TcpStream,
    upstream: &str,
    config: Arc<ServerConfig>,
    (full, resumed, hellos): &(Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>),
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    if client.peek(&mut [0u8; 1])? > 0 {
        hellos.fetch_add(1, Ordering::SeqCst);
    }
    let mut connection = ServerConnection::new(config).map_err(io::Error::other)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut client)?;
    }
    match connection.handshake_kind() {
        Some(HandshakeKind::Resumed) => resumed.fetch_add(1, Ordering::SeqCst),
        _ => full.fetch_add(1, Ordering::SeqCst),
    };
    let mut registry = TcpStream::connect(upstream)?;
    // Both directions from one thread: short read timeouts, turn by turn.
    let poll = Some(Duration::from_millis(2));
    client.set_read_timeout(poll)?;
    registry.set_read_timeout(poll)?;
    let mut tls = StreamOwned::new(connection, client);
    let mut buffer = vec![0u8; 64 * 1024];
    let idle = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    };
    loop {
        match tls.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => registry.write_all(&buffer[..n])?,
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
        match registry.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                tls.write_all(&buffer[..n])?;
                tls.flush()?;
            }
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
}
