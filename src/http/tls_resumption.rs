//! New TLS connections to a server resume a session rather than each making a full
//! handshake. In a full handshake the server signs with its certificate's key (a Go
//! registry with an RSA-2048 key spends ~1.5 ms of CPU on it: 4.2 ms per connection and
//! request against 2.5–2.9 ms resumed, measured) and the client verifies the chain; a
//! resumed one does neither. A TLS 1.3 ticket serves one connection and a server issues
//! one or two per handshake (Go one), so the connections a run opens at once — each
//! worker's first request — shared one ticket and the rest made full handshakes. Here a
//! new connection to a server with no ticket at hand waits for the one the latest
//! handshake brings (with the handshake's last flight, or, from servers that send it after
//! the client's Finished, with the connection's first answer), at most [`WAIT_AT_MOST`]
//! after that handshake began: near, the handshakes go one after another, each resumed;
//! far, where a handshake takes a round trip, they go together after that wait, as before.
//! A server that issued nothing within a wait is not waited for again until it issues a
//! ticket; a TLS 1.2 session is reused by every connection, as rustls does.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::NamedGroup;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;

/// The longest a new connection waits for a ticket, counted from the start of the latest
/// handshake: a local or LAN server answers a handshake in a few
/// milliseconds; a far one takes a round trip, more than this.
pub const WAIT_AT_MOST: Duration = Duration::from_millis(20);

/// The agent's TLS sessions (rustls's in-memory store) and what is known of each server's.
#[derive(Debug)]
pub struct Resumptions {
    store: ClientSessionMemoryCache,
    servers: Mutex<HashMap<String, Server>>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Server {
    /// TLS 1.3 tickets in the store.
    tickets: usize,
    /// Of those, the ones a handshake about to start will take.
    reserved: usize,
    /// A TLS 1.2 session is kept: every new connection resumes it.
    tls12: bool,
    /// Tickets and sessions issued so far.
    issued: u64,
    /// When the latest handshake began.
    latest_start: Option<Instant>,
    /// A wait for a ticket ran out with none issued: no more waits until one is.
    issues_none: bool,
}

impl Default for Resumptions {
    fn default() -> Self {
        Resumptions {
            store: ClientSessionMemoryCache::new(256),
            servers: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
        }
    }
}

impl Resumptions {
    /// Before a handshake with `server`: waits, if one began lately, for a ticket (see the
    /// module's note). A ticket found is set aside for this handshake until it begins.
    pub fn before_handshake(self: &Arc<Self>, server: &str) -> Handshake {
        let mut servers = self.servers.lock().unwrap();
        let issued_before = servers.entry(server.to_string()).or_default().issued;
        let (mut reserved, mut waited) = (false, false);
        loop {
            let known = servers.entry(server.to_string()).or_default();
            if known.tls12 || known.issues_none {
                break;
            }
            if known.tickets > known.reserved {
                known.reserved += 1;
                reserved = true;
                break;
            }
            let left = (known.latest_start)
                .and_then(|start| WAIT_AT_MOST.checked_sub(start.elapsed()))
                .filter(|left| !left.is_zero());
            let Some(left) = left else {
                // Tickets come with a handshake's last flight or its first answer: none
                // within the wait, none to wait for.
                if waited && known.issued == issued_before {
                    known.issues_none = true;
                }
                break;
            };
            waited = true;
            servers = self.changed.wait_timeout(servers, left).unwrap().0;
        }
        let known = servers.entry(server.to_string()).or_default();
        known.latest_start = Some(Instant::now());
        Handshake {
            resumptions: self.clone(),
            server: server.to_string(),
            reserved,
        }
    }

    fn with_server(&self, server: &ServerName<'_>, change: impl FnOnce(&mut Server)) {
        let name = server.to_str();
        let mut servers = self.servers.lock().unwrap();
        change(servers.entry(name.into_owned()).or_default());
        drop(servers);
        self.changed.notify_all();
    }
}

/// A handshake about to begin (see [`Resumptions::before_handshake`]).
pub struct Handshake {
    resumptions: Arc<Resumptions>,
    server: String,
    /// A ticket was set aside for it, not taken yet.
    reserved: bool,
}

impl Handshake {
    /// The connection was made: a ticket set aside is now taken (or was not there).
    pub fn begun(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.reserved) {
            let mut servers = self.resumptions.servers.lock().unwrap();
            if let Some(known) = servers.get_mut(&self.server) {
                known.reserved = known.reserved.saturating_sub(1);
            }
            drop(servers);
            self.resumptions.changed.notify_all();
        }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.release();
    }
}

impl ClientSessionStore for Resumptions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.store.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.store.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        // Stored before it is counted: a handshake told of it takes it at once.
        self.store.set_tls12_session(server_name.clone(), value);
        self.with_server(&server_name, |known| {
            known.tls12 = true;
            known.issued += 1;
            known.issues_none = false;
        });
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.store.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.store.remove_tls12_session(server_name);
        self.with_server(server_name, |known| known.tls12 = false);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        // Stored before it is counted: a handshake told of it takes it at once. rustls's
        // store keeps a server's newest 8.
        self.store.insert_tls13_ticket(server_name.clone(), value);
        self.with_server(&server_name, |known| {
            known.tickets = (known.tickets + 1).min(8);
            known.issued += 1;
            known.issues_none = false;
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let ticket = self.store.take_tls13_ticket(server_name);
        if ticket.is_some() {
            self.with_server(server_name, |known| {
                known.tickets = known.tickets.saturating_sub(1);
            });
        }
        ticket
    }
}
