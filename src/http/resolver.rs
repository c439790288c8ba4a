//! Name resolution for the agents: once per host for a while, not once per request. ureq
//! resolves the host of every request, before it looks in its pool for a kept-alive
//! connection, and with a timeout set (ours always are) on a thread of its own: each
//! request cost a thread and a `getaddrinfo` (on a machine without a local DNS cache, a DNS
//! round trip) even when it then went out on a connection already open. Here an address
//! literal is read without a lookup or a thread, and the addresses of a name are kept for
//! [`KEPT_FOR`] (as Java's resolver keeps them); a lookup that fails is not kept, so the
//! next request asks again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::unversioned::transport::time::Duration as Timeout;

/// How long a name's addresses are used before it is looked up again: new connections
/// follow a DNS change within this; open ones keep the address they have.
pub const KEPT_FOR: Duration = Duration::from_secs(30);

/// How a name is looked up when it is not known: ureq's resolver (on a thread, within the
/// request's timeout).
type Lookup =
    dyn Fn(&Uri, &Config, NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> + Send + Sync;

/// The resolver of an agent (see the module's note).
pub struct KeptResolver {
    lookup: Box<Lookup>,
    /// `host:port` → when it was looked up, and its addresses.
    known: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl std::fmt::Debug for KeptResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptResolver").finish_non_exhaustive()
    }
}

impl Default for KeptResolver {
    fn default() -> Self {
        let system = DefaultResolver::default();
        KeptResolver::with_lookup(move |uri, config, timeout| system.resolve(uri, config, timeout))
    }
}

impl KeptResolver {
    /// A resolver that looks names up with `lookup`.
    pub fn with_lookup(
        lookup: impl Fn(&Uri, &Config, NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        KeptResolver {
            lookup: Box::new(lookup),
            known: Mutex::new(HashMap::new()),
        }
    }
}

impl Resolver for KeptResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => DefaultResolver::host_and_port(scheme, authority),
            _ => None,
        };
        let Some(key) = key else {
            // ureq's own resolver says what is wrong with the URL.
            return (self.lookup)(uri, config, timeout);
        };
        if key.parse::<SocketAddr>().is_ok() {
            // An address already: parsed at once, no thread needed to bound it.
            let at_once = NextTimeout {
                after: Timeout::NotHappening,
                ..timeout
            };
            return (self.lookup)(uri, config, at_once);
        }
        if let Some((when, addrs)) = self.known.lock().unwrap().get(&key)
            && when.elapsed() < KEPT_FOR
        {
            return Ok(addrs.clone());
        }
        let addrs = (self.lookup)(uri, config, timeout)?;
        (self.known.lock().unwrap()).insert(key, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(fail: bool) -> (KeptResolver, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let system = DefaultResolver::default();
        let resolver = KeptResolver::with_lookup(move |uri, config, timeout| {
            counted.fetch_add(1, Ordering::SeqCst);
            if fail {
                return Err(ureq::Error::HostNotFound);
            }
            system.resolve(uri, config, timeout)
        });
        (resolver, calls)
    }

    fn resolve(resolver: &KeptResolver, url: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        let timeout = NextTimeout {
            after: Timeout::Exact(Duration::from_secs(5)),
            reason: ureq::Timeout::Resolve,
            ..NextTimeout::default()
        };
        let uri: Uri = url.parse().unwrap();
        resolver
            .resolve(&uri, &Config::default(), timeout)
            .map(|addrs| addrs.to_vec())
    }

    #[test]
    fn a_name_is_looked_up_once_for_many_requests() {
        let (resolver, calls) = counting(false);
        let first = resolve(&resolver, "https://localhost:5000/v2/").unwrap();
        for path in ["/v2/a/tags/list", "/v2/b/manifests/1"] {
            let again = resolve(&resolver, &format!("https://localhost:5000{path}")).unwrap();
            assert_eq!(again, first);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        resolve(&resolver, "https://localhost:5001/v2/").unwrap();
        resolve(&resolver, "http://localhost/v2/").unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "each host:port once");
    }

    #[test]
    fn an_address_is_read_without_a_bounding_thread_and_a_failure_is_not_kept() {
        // ureq's resolver spawns a thread only to bound a lookup in time.
        let system = DefaultResolver::default();
        let resolver = KeptResolver::with_lookup(move |uri, config, timeout| {
            assert!(
                timeout.after.is_not_happening(),
                "{uri}: bounded by a thread"
            );
            system.resolve(uri, config, timeout)
        });
        let addrs = resolve(&resolver, "https://127.0.0.1:5000/v2/").unwrap();
        assert_eq!(addrs, ["127.0.0.1:5000".parse::<SocketAddr>().unwrap()]);
        let addrs = resolve(&resolver, "https://[::1]:5000/v2/").unwrap();
        assert_eq!(addrs, ["[::1]:5000".parse::<SocketAddr>().unwrap()]);

        let (failing, calls) = counting(true);
        for _ in 0..2 {
            assert!(resolve(&failing, "https://registry.invalid/v2/").is_err());
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "asked again after a failure"
        );
    }
}
