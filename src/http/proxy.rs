//! Which forward proxy a request goes through: `HTTPS_PROXY` for https URLs, `HTTP_PROXY`
//! for http ones, `ALL_PROXY` for either (upper or lower case, the upper case winning),
//! `NO_PROXY` with curl's rules, and a per-host choice that beats the environment
//! (auth.json's `"proxy"`, where `""` means direct). Credentials in a proxy URL never
//! appear in a message.

use std::collections::HashMap;
use std::sync::RwLock;

use ureq::unversioned::transport::{ConnectionDetails, Connector};
use ureq::{Proxy, ProxyProtocol};

/// The proxy choice of the environment plus per-host overrides.
#[derive(Default)]
pub struct ProxyPolicy {
    https: Option<Proxy>,
    http: Option<Proxy>,
    no_proxy: Vec<NoProxyEntry>,
    /// By host (`host` or `host:port`): `None` = direct.
    per_host: RwLock<HashMap<String, Option<Proxy>>>,
}

impl ProxyPolicy {
    /// Reads the variables through `env`; an unparsable proxy URL is an error naming the
    /// variable (never its value, which may hold credentials).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| {
            env(name)
                .or_else(|| env(&name.to_ascii_lowercase()))
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name.to_string(), v))
        };
        let parse = |found: Option<(String, String)>| -> Result<Option<Proxy>, String> {
            match found {
                None => Ok(None),
                Some((name, value)) => parse_proxy(&value)
                    .map(Some)
                    .map_err(|e| format!("{name} (or {}): {e}", name.to_ascii_lowercase())),
            }
        };
        let all = var("ALL_PROXY");
        let https = parse(var("HTTPS_PROXY").or_else(|| all.clone()))?;
        let http = parse(var("HTTP_PROXY").or(all))?;
        let no_proxy = var("NO_PROXY")
            .map(|(_, v)| {
                v.split([',', ' '])
                    .filter_map(NoProxyEntry::parse)
                    .collect()
            })
            .unwrap_or_default();
        Ok(ProxyPolicy {
            https,
            http,
            no_proxy,
            per_host: RwLock::new(HashMap::new()),
        })
    }

    /// Requests to `host` (`host` or `host:port`) use `proxy` instead of the environment's
    /// choice; `""` sends them direct.
    pub fn set_for_host(&self, host: &str, proxy: &str) -> Result<(), String> {
        let chosen = if proxy.trim().is_empty() {
            None
        } else {
            Some(parse_proxy(proxy)?)
        };
        self.per_host
            .write()
            .unwrap()
            .insert(host.to_ascii_lowercase(), chosen);
        Ok(())
    }

    /// Requests to `host` go the way requests to `like` go, unless `host` has its own
    /// choice (a registry's token service follows the registry).
    pub fn follow(&self, host: &str, like: &str) {
        let mut map = self.per_host.write().unwrap();
        let host = host.to_ascii_lowercase();
        if let Some(choice) = map.get(&like.to_ascii_lowercase()).cloned() {
            map.entry(host).or_insert(choice);
        }
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn for_url(&self, url: &str) -> Option<Proxy> {
        let (scheme, authority) = split_url(url)?;
        let (host, port) = split_authority(authority, scheme);
        {
            let map = self.per_host.read().unwrap();
            let with_port = format!("{host}:{port}");
            if let Some(choice) = map.get(&with_port).or_else(|| map.get(&host)) {
                return choice.clone();
            }
        }
        if self.no_proxy.iter().any(|e| e.matches(&host, port)) {
            return None;
        }
        match scheme {
            "https" => self.https.clone(),
            _ => self.http.clone(),
        }
    }
}

/// A proxy URL as [`crate::proxy_url`] reads it (the grammar auth.json's `proxy` is
/// checked against too). Only HTTP proxies (CONNECT for HTTPS targets) are understood; a
/// SOCKS URL parses, and fails when used ([`NoSocks`]).
fn parse_proxy(value: &str) -> Result<Proxy, String> {
    let url = crate::proxy_url::normalize(value)?;
    Proxy::new(&url).map_err(|_| crate::proxy_url::NOT_A_PROXY_URL.to_string())
}

fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    Some((scheme, authority))
}

/// Host (lower case, IPv6 without brackets) and port (the scheme's default when absent).
fn split_authority(authority: &str, scheme: &str) -> (String, u16) {
    let default = if scheme == "https" { 443 } else { 80 };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = port.and_then(|p| p.parse().ok()).unwrap_or(default);
    (host.to_ascii_lowercase(), port)
}

/// One `NO_PROXY` entry, as curl reads it: `*` matches everything; a name matches itself
/// and its subdomains (a leading `.` or `*.` is ignored); `:port` restricts it to a port.
#[derive(Debug, PartialEq)]
enum NoProxyEntry {
    All,
    Host { name: String, port: Option<u16> },
}

impl NoProxyEntry {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        if entry == "*" {
            return Some(NoProxyEntry::All);
        }
        let entry = entry.trim_start_matches('*').trim_start_matches('.');
        let (name, port) = split_authority(entry, "");
        let port = (entry.ends_with(&format!(":{port}"))).then_some(port);
        Some(NoProxyEntry::Host { name, port })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        match self {
            NoProxyEntry::All => true,
            NoProxyEntry::Host { name, port: want } => {
                let host_matches = host == name
                    || host
                        .strip_suffix(name.as_str())
                        .is_some_and(|rest| rest.ends_with('.'));
                host_matches && want.is_none_or(|p| p == port)
            }
        }
    }
}

/// The first link of every registry agent's connector chain: a SOCKS proxy is refused
/// with an error (this build of ureq speaks only HTTP CONNECT; its own chain would panic).
#[derive(Debug)]
pub struct NoSocks;

impl Connector<()> for NoSocks {
    type Out = ();

    fn connect(
        &self,
        details: &ConnectionDetails,
        _: Option<()>,
    ) -> Result<Option<()>, ureq::Error> {
        let socks = details.config.proxy().is_some_and(|proxy| {
            !matches!(proxy.protocol(), ProxyProtocol::Http | ProxyProtocol::Https)
        });
        if socks {
            return Err(ureq::Error::ConnectProxyFailed(
                "SOCKS proxies are not supported; use an HTTP proxy (http://host:port)".into(),
            ));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(vars: &[(&str, &str)]) -> ProxyPolicy {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyPolicy::from_env(&|name| vars.get(name).cloned()).unwrap()
    }

    fn via(policy: &ProxyPolicy, url: &str) -> Option<String> {
        policy
            .for_url(url)
            .map(|p| format!("{}:{}", p.host(), p.port()))
    }

    #[test]
    fn scheme_picks_the_variable_and_all_proxy_is_the_fallback() {
        let p = policy(&[("HTTPS_PROXY", "http://s:1"), ("http_proxy", "h:2")]);
        assert_eq!(via(&p, "https://r.io/v2/"), Some("s:1".into()));
        assert_eq!(via(&p, "http://r.io/v2/"), Some("h:2".into()));
        let p = policy(&[("all_proxy", "http://a:3"), ("HTTP_PROXY", "h:2")]);
        assert_eq!(via(&p, "https://r.io/v2/"), Some("a:3".into()));
        assert_eq!(via(&p, "http://r.io/v2/"), Some("h:2".into()));
        let p = policy(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "lower:2"),
        ]);
        assert_eq!(via(&p, "https://r.io/"), Some("upper:1".into()));
        assert_eq!(via(&policy(&[]), "https://r.io/"), None);
    }

    #[test]
    fn no_proxy_follows_curl() {
        let p = policy(&[
            ("HTTPS_PROXY", "http://s:1"),
            (
                "no_proxy",
                "example.com, .corp.net,*.internal,10.0.0.1,r.io:5000",
            ),
        ]);
        for direct in [
            "https://example.com/v2/",
            "https://a.example.com/v2/",
            "https://x.corp.net/",
            "https://corp.net/",
            "https://b.internal/",
            "https://10.0.0.1:5000/",
            "https://R.io:5000/",
        ] {
            assert_eq!(via(&p, direct), None, "{direct}");
        }
        for proxied in [
            "https://notexample.com/",
            "https://r.io/",
            "https://r.io:5001/",
            "https://10.0.0.10/",
        ] {
            assert_eq!(via(&p, proxied), Some("s:1".into()), "{proxied}");
        }
        let p = policy(&[("HTTPS_PROXY", "http://s:1"), ("NO_PROXY", "*")]);
        assert_eq!(via(&p, "https://any.where/"), None);
    }

    #[test]
    fn a_host_choice_beats_the_environment_and_is_followed() {
        let p = policy(&[("HTTPS_PROXY", "http://s:1"), ("NO_PROXY", "near.io")]);
        p.set_for_host("r.io", "").unwrap();
        p.set_for_host("near.io", "http://own:9").unwrap();
        p.follow("auth.r.io", "r.io");
        assert_eq!(via(&p, "https://r.io/v2/"), None);
        assert_eq!(via(&p, "https://auth.r.io/token"), None);
        assert_eq!(via(&p, "https://near.io/v2/"), Some("own:9".into()));
        assert_eq!(via(&p, "https://other.io/v2/"), Some("s:1".into()));
    }

    /// `proxy_url` (which config checks auth.json with, without this layer) and ureq's
    /// proxy accept exactly the same URLs.
    #[test]
    fn the_pure_check_agrees_with_the_client() {
        let agree = |value: &str| {
            let with_scheme = if value.trim().contains("://") {
                value.trim().to_string()
            } else {
                format!("http://{}", value.trim())
            };
            let accepted = crate::proxy_url::normalize(value).is_ok();
            assert_eq!(accepted, Proxy::new(&with_scheme).is_ok(), "{value:?}");
            accepted
        };
        for value in [
            "proxy:3128",
            "http://proxy:3128",
            "HTTPS://proxy",
            "socks5h://u:p@proxy:1080",
            "socks4a://proxy",
            "ftp://proxy:21",
            "http://",
            "http:///path",
            "http://u:%ff@proxy:1",
            "http://%C3%A9:p@proxy:1",
            "http://u:p:q@proxy:1",
            "http://a@b@proxy:1",
            "proxy:port",
            "proxy:99999",
            "[::1]:3128",
            "http://[::1",
            "pro xy:1",
            "http://proxy:1/path?q#f",
            "//proxy:1",
            "://proxy",
            "proxy:1:2",
            "http://proxy%20:1",
            "http://u@",
        ] {
            agree(value);
        }
        let mut accepted = 0;
        let starts = [
            "",
            "http://",
            "SOCKS5://",
            "ftp://",
            "u:p@",
            "http://u:",
            "[",
        ];
        let alphabet: Vec<char> = "ahpx5:/@%[]. cfF0_-?#".chars().collect();
        let mut rng = fastrand::Rng::with_seed(22);
        for _ in 0..20_000 {
            let mut value = starts[rng.usize(..starts.len())].to_string();
            value.extend((0..rng.usize(0..14)).map(|_| alphabet[rng.usize(..alphabet.len())]));
            accepted += usize::from(agree(&value));
        }
        // Both kinds were met, so the agreement was not vacuous.
        assert!(
            (1_000..19_000).contains(&accepted),
            "{accepted} of 20000 accepted"
        );
    }

    #[test]
    fn errors_never_show_the_value() {
        let vars = [("HTTPS_PROXY", "ftp://user:hunter2@x")];
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let error = ProxyPolicy::from_env(&env).err().unwrap();
        assert!(error.starts_with("HTTPS_PROXY"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
