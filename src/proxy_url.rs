//! The grammar of a proxy URL, apart from the HTTP layer: reading auth.json checks its
//! `proxy` here (config never depends on the network code), and `http` reads every proxy
//! URL here before it builds a proxy from it, so both accept exactly the same URLs. A bare
//! `host:port` means `http://host:port`; only HTTP proxies (CONNECT for HTTPS targets) and
//! SOCKS are understood. An error never repeats the value, which may hold credentials.

/// The one message for a URL that is not a proxy URL.
pub const NOT_A_PROXY_URL: &str = "not a proxy URL (expected http://[user:password@]host:port)";

/// Schemes a proxy URL may have (case-insensitive): what the HTTP client's proxy accepts.
const SCHEMES: [&str; 7] = [
    "http", "https", "socks4", "socks4a", "socks", "socks5", "socks5h",
];

/// Checks a proxy URL; `""` (direct) is fine.
pub fn check(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Ok(());
    }
    normalize(value).map(|_| ())
}

/// The URL with its scheme (`http://` added to a bare `host:port`), once it is a proxy URL:
/// it parses as a URI with an authority, its user information percent-decodes to UTF-8,
/// and its scheme is one of [`SCHEMES`].
pub fn normalize(value: &str) -> Result<String, String> {
    let value = value.trim();
    let url = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let invalid = || NOT_A_PROXY_URL.to_string();
    let uri: ::http::Uri = url.parse().map_err(|_| invalid())?;
    let authority = uri.authority().ok_or_else(invalid)?;
    if let Some((userinfo, _)) = authority.as_str().rsplit_once('@') {
        let (username, password) = match userinfo.split_once(':') {
            Some((username, password)) => (username, Some(password)),
            None => (userinfo, None),
        };
        if !decodes_to_utf8(username) || !password.is_none_or(decodes_to_utf8) {
            return Err(invalid());
        }
    }
    let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(invalid());
    }
    Ok(url)
}

/// Whether `%XX` escapes decode to UTF-8 (a `%` without two hex digits stays as it is).
fn decodes_to_utf8(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_host_port_is_http_and_empty_is_direct() {
        assert_eq!(normalize(" proxy:3128 ").unwrap(), "http://proxy:3128");
        assert_eq!(
            normalize("SOCKS5://u:p@proxy:1080").unwrap(),
            "SOCKS5://u:p@proxy:1080"
        );
        assert_eq!(check(""), Ok(()));
        assert_eq!(check("  "), Ok(()));
    }

    #[test]
    fn what_is_not_a_proxy_url_is_refused_without_repeating_it() {
        for bad in [
            "ftp://user:hunter2@x",
            "http://",
            "http://u:%ff@proxy:1",
            "%ff@proxy:1",
            "http://pro xy:1",
        ] {
            let error = check(bad).expect_err(bad);
            assert_eq!(error, NOT_A_PROXY_URL, "{bad}");
        }
    }

    #[test]
    fn escapes_are_decoded_before_the_utf8_check() {
        assert!(decodes_to_utf8("us%65r"));
        assert!(decodes_to_utf8("%C3%A9"));
        assert!(decodes_to_utf8("100%"));
        assert!(decodes_to_utf8("%zz"));
        assert!(!decodes_to_utf8("%C3"));
        assert!(!decodes_to_utf8("%ff"));
    }
}
