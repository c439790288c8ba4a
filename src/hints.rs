//! What to tell the user to do, phrased in one place. The layers below carry the facts (a
//! TLS failure, the pulls left, the registry that refused the credentials) and ask here for
//! the words, so that a hint reads the same wherever it is met and is changed once.

/// After a TLS handshake failed: where trust comes from.
pub fn tls_failed() -> &'static str {
    "TLS failed; trust the registry's CA through the system store, \
     /etc/docker/certs.d/<host:port>/ca.crt or --ca-file, or set \"insecure\": true for this \
     registry in auth.json if it is plain HTTP or self-signed"
}

/// After a request ran out of time.
pub fn no_answer_in_time() -> &'static str {
    "no answer in time: --request-timeout bounds each request"
}

/// After a 429 that may lift: what is left and what raises the limit.
pub fn rate_limited(pulls_remaining: Option<&str>) -> String {
    let left = pulls_remaining
        .map(|left| format!(" (pulls remaining in this window: {left})"))
        .unwrap_or_default();
    format!(
        "{left}; the registry is rate-limiting this client: credentials (auth.json or docker \
         login) usually raise the limit (Docker Hub: anonymous pulls are limited per IP)"
    )
}

/// After a 429 that says the quota of the window is gone.
pub fn quota_exhausted(registry: &str, allowance: Option<&str>) -> String {
    let allowance = match allowance {
        Some(allowance) => format!("the window allows {allowance}"),
        None => "the registry did not say how many the window allows".to_string(),
    };
    format!(
        "{registry}: pull quota exhausted (HTTP 429; {allowance}); no more manifests are \
         asked of it in this run. Credentials for {registry} (auth.json or docker login) \
         raise the limit; or run again when the window has passed"
    )
}

/// After the registry (or its token service) refused the credentials.
pub fn authentication_failed(registry: &str, detail: &str) -> String {
    format!(
        "{registry}: authentication failed ({detail}); check the credentials for this \
         registry (validate names where they come from)"
    )
}
