//! URL arithmetic for the registry protocol: `Location` headers (absolute, absolute
//! path, or relative), origins (credentials stay on the registry's), `Link` pagination,
//! query values percent-encoded.

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// Resolves `location` (absolute URL, absolute path, or relative path) against `base`.
pub fn resolve_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin = origin_of(base);
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = &base[origin.len()..];
    let path = path.split('?').next().unwrap_or("");
    let dir = path.rfind('/').map_or("", |i| &path[..=i]);
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{origin}{dir}{location}")
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Same scheme, host and port.
pub(super) fn same_origin(a: &str, b: &str) -> bool {
    origin_of(a).eq_ignore_ascii_case(origin_of(b))
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub(super) fn percent_encode(value: &str) -> String {
    percent_encode_except(value, b"")
}

/// Percent-encodes every byte of `value` but RFC 3986's unreserved characters and `keep`.
pub(super) fn percent_encode_except(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_of_scopes() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn resolves_locations() {
        let base = "http://r:5000";
        assert_eq!(
            resolve_url(base, "/v2/a/blobs/uploads/x?_state=s"),
            "http://r:5000/v2/a/blobs/uploads/x?_state=s"
        );
        assert_eq!(
            resolve_url(base, "https://s3.example/b?sig=1"),
            "https://s3.example/b?sig=1"
        );
        assert_eq!(
            resolve_url("http://r:5000/v2/a/blobs/uploads/?x=1", "u1?_state=2"),
            "http://r:5000/v2/a/blobs/uploads/u1?_state=2"
        );
    }

    #[test]
    fn origins() {
        assert!(same_origin("https://r.io/v2/x", "https://r.io"));
        assert!(!same_origin("https://r.io:444/x", "https://r.io"));
        assert!(!same_origin("http://r.io/x", "https://r.io"));
        assert!(!same_origin("https://cdn.r.io/x", "https://r.io"));
    }

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
