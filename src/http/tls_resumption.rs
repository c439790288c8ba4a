//! New TLS connections to a server resume a session rather than each making a full
//! handshake. In a full handshake the server signs with its certificate's key (a Go
//! registry with an RSA-2048 key spends ~1.5 ms of CPU on it: 4.2 ms per connection and
//! request against 2.5–2.9 ms resumed, measured) and the client verifies the chain; a
//! resumed one does neither. A TLS 1.3 ticket serves one connection and a server issues
//! one or two per handshake (Go one), so the connections a run opens at once — each
//! worker's first request — shared one ticket and the rest made full handshakes. Here a
//! new connection to a server with no ticket at hand waits for one (they come with a
//! handshake's last flight, or, from servers that send them after the client's Finished,
//! with the connection's first answer) for as long as tickets keep coming or resuming
//! handshakes keep beginning, each within [`WAIT_AT_MOST`] of the last: near, the
//! handshakes go one after another, each resumed; far, where a handshake takes a round
//! trip, they go together after that one wait, as before. A server that never issued a
//! ticket within a wait is not waited for again until it does; a TLS 1.2 session is
//! reused by every connection, as rustls does.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::NamedGroup;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;

/// The longest a new connection waits for a ticket after the last sign of one coming (a
/// ticket, or a handshake that will bring one beginning): a local or LAN server answers a
/// handshake in a few milliseconds; a far one takes a round trip, more than this.
pub const WAIT_AT_MOST: Duration = Duration::from_millis(20);

/// One server's TLS sessions (rustls's in-memory store) and what is known of its tickets.
#[derive(Debug)]
pub struct Resumptions {
    store: ClientSessionMemoryCache,
    server: Mutex<Server>,
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
    /// A ticket or a session was ever issued.
    issued_any: bool,
    /// When a ticket last came, or a handshake that will bring one began (the first, or
    /// one resuming): a wait lasts while this moves.
    progress: Option<Instant>,
    /// A wait ran out before the server ever issued a ticket: no more waits until it does.
    issues_none: bool,
}

impl Default for Resumptions {
    fn default() -> Self {
        Resumptions {
            store: ClientSessionMemoryCache::new(4),
            server: Mutex::new(Server::default()),
            changed: Condvar::new(),
        }
    }
}

impl Resumptions {
    /// Before a handshake with the server: waits, if one began lately, for a ticket (see
    /// the module's note). A ticket found is set aside for this handshake until it begins.
    pub fn before_handshake(self: &Arc<Self>) -> Handshake {
        let mut known = self.server.lock().unwrap();
        let (mut reserved, mut waited) = (false, false);
        loop {
            if known.tls12 || known.issues_none {
                break;
            }
            if known.tickets > known.reserved {
                known.reserved += 1;
                reserved = true;
                break;
            }
            let left = (known.progress)
                .and_then(|at| WAIT_AT_MOST.checked_sub(at.elapsed()))
                .filter(|left| !left.is_zero());
            let Some(left) = left else {
                // Tickets come with a handshake's last flight or its first answer. A wait
                // that ran out goes on with a full handshake and does not count as
                // progress, so the others waiting give up with it (far away: once).
                if waited && !known.issued_any {
                    known.issues_none = true;
                }
                break;
            };
            waited = true;
            known = self.changed.wait_timeout(known, left).unwrap().0;
        }
        if reserved || known.progress.is_none() {
            known.progress = Some(Instant::now());
        }
        Handshake {
            resumptions: self.clone(),
            reserved,
        }
    }

    fn change(&self, change: impl FnOnce(&mut Server)) {
        change(&mut self.server.lock().unwrap());
        self.changed.notify_all();
    }
}

/// A handshake about to begin (see [`Resumptions::before_handshake`]).
pub struct Handshake {
    resumptions: Arc<Resumptions>,
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
            (self.resumptions).change(|known| known.reserved = known.reserved.saturating_sub(1));
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
        self.store.set_tls12_session(server_name, value);
        self.change(|known| {
            known.tls12 = true;
            known.issued_any = true;
            known.progress = Some(Instant::now());
            known.issues_none = false;
        });
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.store.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.store.remove_tls12_session(server_name);
        self.change(|known| known.tls12 = false);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        // Stored before it is counted: a handshake told of it takes it at once. rustls's
        // store keeps a server's newest 8.
        self.store.insert_tls13_ticket(server_name, value);
        self.change(|known| {
            known.tickets = (known.tickets + 1).min(8);
            known.issued_any = true;
            known.progress = Some(Instant::now());
            known.issues_none = false;
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let ticket = self.store.take_tls13_ticket(server_name);
        if ticket.is_some() {
            self.change(|known| {
                known.tickets = known.tickets.saturating_sub(1);
            });
        }
        ticket
    }
}
