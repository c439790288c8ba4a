//! What to tell the user to do, phrased in one place. The layers below carry the facts (a
//! TLS failure, the pulls left, the registry that refused the credentials) and ask here for
//! the words, so that a hint reads the same wherever it is met and is changed once.

/// After a TLS handshake failed: where trust comes from.
pub fn tls_failed() -> &'static str {
    "TLS failed; trust the registry's CA through the system store, \
     /etc/docker/certs.d/<host:port>/ca.crt or --ca-file, or set \"insecure\": true for this \
     registry in auth.json if it is plain HTTP or self-signed"
}

/// After the registry ended the TLS handshake over a client certificate (mTLS) when none
/// was sent: `alert` is the TLS alert it sent, `certain` false when that alert
/// (`handshake_failure`) may have another cause. `dir` is the registry's directory in
/// Docker's certs.d, where the certificate goes.
pub fn client_certificate_missing(dir: &str, alert: &str, certain: bool) -> String {
    let what = if certain {
        format!(
            "the registry requires a client certificate (mTLS) and none was sent (TLS alert: \
             {alert})"
        )
    } else {
        format!(
            "the registry ended the TLS handshake (TLS alert: {alert}); if it requires a \
             client certificate (mTLS), none was sent"
        )
    };
    format!(
        "{what}: put the certificate in {dir}/client.cert and its key in {dir}/client.key \
         (PEM), where Docker reads them too"
    )
}

/// After the registry refused the client certificate `sent` (mTLS) with `alert`;
/// `certain` as for [`client_certificate_missing`].
pub fn client_certificate_refused(dir: &str, sent: &str, alert: &str, certain: bool) -> String {
    let what = if certain {
        format!("the registry refused the client certificate {sent} (TLS alert: {alert})")
    } else {
        format!(
            "the registry ended the TLS handshake (TLS alert: {alert}) after the client \
             certificate {sent} was presented; it may refuse that certificate"
        )
    };
    format!(
        "{what}: it must be issued by a CA the registry trusts for clients and be valid now; \
         the certificate goes in {dir}/client.cert and its key in {dir}/client.key (PEM)"
    )
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

/// After a push was refused because its container is missing (Harbor's 401 `project p not
/// found`, ECR's `NAME_UNKNOWN`): `what` names it (`Harbor project "p"`).
pub fn missing_container(what: &str) -> String {
    format!(
        "{what} does not exist: create it, or run sync with --create-targets to have it \
         created before the copy"
    )
}

/// After a push was refused in a way that also means its container is missing (SWR answers
/// `DENIED` both for an organization that does not exist and for one the user may not
/// push to): `what` names it (`SWR organization "o"`).
pub fn maybe_missing_container(what: &str) -> String {
    format!(
        "{what} may not exist (or the credentials may not push there): create it, or run sync \
         with --create-targets to have it created before the copy"
    )
}

/// After a registry refused to delete a manifest (distribution's 405 `UNSUPPORTED`): the
/// copies stand, and deleting has to be allowed.
pub fn deletes_refused(registry: &str) -> String {
    format!(
        "{registry} refuses deletes: on a distribution registry (registry:2) set \
         REGISTRY_STORAGE_DELETE_ENABLED=true, elsewhere give the credentials the right to \
         delete; the copies stand, nothing was pruned after this"
    )
}

/// After a target refused to move a tag it keeps immutable.
pub fn immutable_tag() -> &'static str {
    "the target keeps this tag immutable and it names another image there: the target's \
     image stays; push the source under a new tag, or lift the immutability rule (Harbor) \
     or set the repository MUTABLE (ECR) if the tag should move"
}
