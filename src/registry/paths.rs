//! Every `/v2/` path of the distribution API, built here and nowhere else, so that each
//! route is spelt once and every name that goes into one is escaped by the same rules:
//! a repository keeps its `/`, a tag or digest its `:`, anything outside the URL's
//! unreserved characters is percent-encoded (names read from the grammar never need it;
//! the rule keeps a stray byte from changing the path), and query values are encoded
//! whole (`from=a%2Fb`).

use super::url::{percent_encode, percent_encode_except};
use crate::digest::Digest;
use crate::reference::TagOrDigest;

/// The API's root, which a ping `GET`s.
pub(super) const ROOT: &str = "/v2/";

/// `/v2/_catalog?n=<page>`: the first page of the registry's repositories.
pub(super) fn catalog(page: usize) -> String {
    format!("{ROOT}_catalog?n={page}")
}

/// `/v2/<name>/tags/list?n=<page>`: the first page of the tag list.
pub(super) fn tags(repository: &str, page: usize) -> String {
    format!("{}/tags/list?n={page}", repo(repository))
}

/// `/v2/<name>/manifests/<tag or digest>`.
pub(super) fn manifest(repository: &str, reference: &TagOrDigest) -> String {
    format!(
        "{}/manifests/{}",
        repo(repository),
        segment(reference.as_str(), b":")
    )
}

/// `/v2/<name>/blobs/<digest>`.
pub(super) fn blob(repository: &str, digest: &Digest) -> String {
    format!(
        "{}/blobs/{}",
        repo(repository),
        segment(digest.as_str(), b":")
    )
}

/// `/v2/<name>/blobs/uploads/`: opens an upload session.
pub(super) fn uploads(repository: &str) -> String {
    format!("{}/blobs/uploads/", repo(repository))
}

/// `/v2/<name>/blobs/uploads/?mount=<digest>&from=<other name>`: a cross-repository
/// mount (`from` may be the repository itself).
pub(super) fn mount(repository: &str, digest: &Digest, from: &str) -> String {
    format!(
        "{}?mount={}&from={}",
        uploads(repository),
        segment(digest.as_str(), b":"),
        percent_encode(from)
    )
}

/// `/v2/<name>/referrers/<digest>`: the OCI 1.1 referrers API.
pub(super) fn referrers(repository: &str, subject: &Digest) -> String {
    format!(
        "{}/referrers/{}",
        repo(repository),
        segment(subject.as_str(), b":")
    )
}

/// The upload session's URL (as the registry gave it, query kept) with `digest=` added:
/// the `PUT` that closes the upload.
pub(super) fn closing_upload(session_url: &str, digest: &Digest) -> String {
    let separator = if session_url.contains('?') { '&' } else { '?' };
    format!(
        "{session_url}{separator}digest={}",
        segment(digest.as_str(), b":")
    )
}

/// `/v2/<name>`.
fn repo(repository: &str) -> String {
    format!("/v2/{}", segment(repository, b"/"))
}

/// `value` as one path segment (or several, for a name that keeps its `/`).
fn segment(value: &str, keep: &[u8]) -> String {
    percent_encode_except(value, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"")
    }

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn every_route_as_the_spec_spells_it() {
        assert_eq!(
            tags("library/nginx", 1000),
            "/v2/library/nginx/tags/list?n=1000"
        );
        let tag = TagOrDigest::parse("1.27-alpine").unwrap();
        assert_eq!(manifest("a/b", &tag), "/v2/a/b/manifests/1.27-alpine");
        let by_digest = TagOrDigest::parse(EMPTY).unwrap();
        assert_eq!(
            manifest("a/b", &by_digest),
            format!("/v2/a/b/manifests/{EMPTY}")
        );
        assert_eq!(blob("a/b", &digest()), format!("/v2/a/b/blobs/{EMPTY}"));
        assert_eq!(uploads("a/b"), "/v2/a/b/blobs/uploads/");
        assert_eq!(
            referrers("a/b", &digest()),
            format!("/v2/a/b/referrers/{EMPTY}")
        );
        assert_eq!(ROOT, "/v2/");
    }

    #[test]
    fn a_mount_names_its_source_as_one_query_value() {
        assert_eq!(
            mount("team/app", &digest(), "team/base"),
            format!("/v2/team/app/blobs/uploads/?mount={EMPTY}&from=team%2Fbase")
        );
        // From the repository itself: the self-mount probe.
        assert_eq!(
            mount("x", &digest(), "x"),
            format!("/v2/x/blobs/uploads/?mount={EMPTY}&from=x")
        );
    }

    #[test]
    fn the_closing_put_keeps_the_session_query() {
        assert_eq!(
            closing_upload("https://r.io/v2/a/blobs/uploads/u1?_state=s%3D", &digest()),
            format!("https://r.io/v2/a/blobs/uploads/u1?_state=s%3D&digest={EMPTY}")
        );
        assert_eq!(
            closing_upload("https://r.io/v2/a/blobs/uploads/u1", &digest()),
            format!("https://r.io/v2/a/blobs/uploads/u1?digest={EMPTY}")
        );
    }

    #[test]
    fn names_are_escaped_by_one_rule() {
        // The grammar's names pass as they are: lowercase, digits, `._-`, `/` in names.
        assert_eq!(repo("a.b/c_d/e--f/g__h"), "/v2/a.b/c_d/e--f/g__h");
        assert_eq!(segment("V1.2_x-y~", b":"), "V1.2_x-y~");
        // Anything else cannot change the route: no new segment, query or fragment.
        assert_eq!(repo("a b?c#d%e"), "/v2/a%20b%3Fc%23d%25e");
        assert_eq!(segment("x/y", b":"), "x%2Fy", "a tag has no `/`");
        assert_eq!(segment("é", b""), "%C3%A9", "bytes, not characters");
        let mount_from = mount("a", &digest(), "b&mount=x");
        assert!(mount_from.ends_with("&from=b%26mount%3Dx"), "{mount_from}");
    }
}
