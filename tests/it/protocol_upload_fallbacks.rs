//! Blob upload fallbacks against `support::spec_registry`, without Docker: a monolithic
//! `PUT` answered 413 switches the registry to `PATCH` chunks (`Content-Range`, each to
//! the `Location` the last answer gave, then a closing `PUT ?digest=` without a body) for
//! every later blob of the run, in every repository of that registry; a cross-repository
//! mount answered 202 is uploaded into the session it opened, one refused with an error
//! is followed by a plain upload, one granted moves no bytes; a session `Location` that is
//! an absolute URL, an absolute path or a relative reference is resolved as RFC 3986 says
//! (against the URL of the request it answers); and a `201` without
//! `Docker-Content-Digest` is accepted. Every image arrives byte for byte.

use crate::support;

use support::spec_registry::{Image, LocationStyle, Logged, MountAnswer, SpecRegistry, Switches};
use support::sync::{RunResult, SyncRun};

/// One chunk of the tool's chunked uploads after a refusal (`DEFAULT_CHUNK_SIZE` in src/registry).
const CHUNK: usize = 64 * 1024 * 1024;

fn bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(seed) % 251) as u8)
        .collect()
}

/// Copies each `(source, target)` rule with `--proc 1`.
fn sync(registries: &[&SpecRegistry], rules: &[(String, String)]) -> RunResult {
    let mut run = SyncRun::new();
    for registry in registries {
        run = run.insecure(&registry.host);
    }
    for (source, target) in rules {
        run = run.rule(source, target);
    }
    run.arg("--proc").arg("1").arg("--retries").arg("1").run()
}

/// `repo:tag` of `target` holds `image` byte for byte, with every blob.
fn assert_holds(
    target: &SpecRegistry,
    repo: &str,
    tag: &str,
    source: &SpecRegistry,
    image: &Image,
) {
    assert_eq!(
        target.manifest(repo, tag),
        Some(image.manifest.clone()),
        "{repo}:{tag}"
    );
    for blob in &image.blobs {
        let copied = target.blob(repo, blob);
        assert!(copied.is_some(), "{repo} lacks {blob}");
        assert_eq!(copied, source.blob("src/app", blob), "{repo}: {blob}");
    }
}

fn uploads(registry: &SpecRegistry) -> Vec<Logged> {
    registry
        .requests()
        .into_iter()
        .filter(|r| r.target.contains("/blobs/uploads/"))
        .collect()
}

/// The `digest=` of an upload request's query.
fn digest_of(request: &Logged) -> Option<String> {
    request
        .target
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("digest="))
        .map(support::percent_decode)
}

#[test]
fn a_413_on_a_monolithic_put_switches_the_registry_to_chunks_for_the_rest_of_the_run() {
    let source = SpecRegistry::start(Switches::default());
    // Image `a`'s layer takes two chunks; `b` goes to another repository of the target.
    let a = source.push_image("src/app", "a", &[bytes(7, CHUNK + 1000)]);
    let b = source.push_image("src/app", "b", &[bytes(13, 40_000)]);
    let target = SpecRegistry::start(Switches {
        refuse_monolithic: Some(413),
        ..Switches::default()
    });
    let rule = |tag: &str, repo: &str| {
        (
            format!("{}/src/app:{tag}", source.host),
            format!("{}/{repo}:{tag}", target.host),
        )
    };
    let run = sync(
        &[&source, &target],
        &[rule("a", "dst/one"), rule("b", "dst/two")],
    );
    run.assert_all("copied");
    assert_holds(&target, "dst/one", "a", &source, &a);
    assert_holds(&target, "dst/two", "b", &source, &b);

    let log = uploads(&target);
    let refused: Vec<&Logged> = log.iter().filter(|r| r.status == 413).collect();
    assert_eq!(
        refused.len(),
        1,
        "one monolithic PUT refused, then chunks: {log:#?}"
    );
    assert!(refused[0].method == "PUT" && refused[0].body_len > 0);
    let after = log.iter().skip_while(|r| r.status != 413).skip(1);
    for request in after.clone() {
        assert!(
            !(request.method == "PUT" && request.body_len > 0),
            "a body in a PUT after the 413: {request:#?}"
        );
        assert!(matches!(request.status, 201 | 202), "{request:#?}");
    }
    // Every blob of both images went in chunks: PATCHes with contiguous ranges, each to the
    // Location the answer before gave (its `_state`), then a PUT with `?digest=` alone.
    let mut blobs: Vec<&String> = a.blobs.iter().chain(&b.blobs).collect();
    blobs.dedup();
    let closing: Vec<&Logged> = after.clone().filter(|r| r.method == "PUT").collect();
    assert_eq!(closing.len(), blobs.len(), "{log:#?}");
    for put in &closing {
        let digest = digest_of(put).unwrap();
        let id = put
            .target
            .split('?')
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let patches: Vec<&Logged> = after
            .clone()
            .filter(|r| r.method == "PATCH" && r.target.contains(&format!("/uploads/{id}?")))
            .collect();
        let size = source.blob("src/app", &digest).unwrap().len();
        let mut offset = 0;
        for (state, patch) in patches.iter().enumerate() {
            let end = (offset + CHUNK).min(size) - 1;
            assert_eq!(
                patch.header("content-range"),
                Some(format!("{offset}-{end}").as_str())
            );
            assert_eq!(patch.body_len, end + 1 - offset);
            assert!(
                patch.target.ends_with(&format!("?_state={state}")),
                "{patch:#?}"
            );
            offset = end + 1;
        }
        assert_eq!(offset, size, "{digest}: {patches:#?}");
        assert!(
            put.target.contains(&format!("_state={}", patches.len())),
            "{put:#?}"
        );
    }
    // The session whose PUT was refused is left to the registry to purge; no other.
    assert_eq!(target.open_uploads(), 1);
}

/// Copies `src/app:v1` to `dst/app:v1` of the same registry, whose mounts answer `mount`.
fn same_registry_copy(mount: MountAnswer) -> (SpecRegistry, Image, RunResult) {
    let registry = SpecRegistry::start(Switches {
        mount,
        ..Switches::default()
    });
    let image = registry.push_image("src/app", "v1", &[bytes(3, 30_000)]);
    let run = sync(
        &[&registry],
        &[(
            format!("{}/src/app:v1", registry.host),
            format!("{}/dst/app:v1", registry.host),
        )],
    );
    run.assert_all("copied");
    assert_holds(&registry, "dst/app", "v1", &registry, &image);
    assert_eq!(registry.open_uploads(), 0, "no session left open");
    (registry, image, run)
}

#[test]
fn a_mount_answered_202_is_uploaded_into_the_session_it_opened() {
    let (registry, image, _) = same_registry_copy(MountAnswer::OpenUpload);
    let log = uploads(&registry);
    for blob in &image.blobs {
        // POST ?mount= → 202 with session u<N>, then PUT u<N>?_state=0&digest=<blob>.
        let mount = log
            .iter()
            .find(|r| r.method == "POST" && r.target.contains(&format!("mount={blob}")))
            .unwrap_or_else(|| panic!("no mount of {blob}: {log:#?}"));
        assert_eq!(mount.status, 202);
        assert!(mount.target.contains("from=src%2Fapp"), "{mount:#?}");
        let puts: Vec<&Logged> = log
            .iter()
            .filter(|r| r.method == "PUT" && digest_of(r).as_deref() == Some(blob.as_str()))
            .collect();
        assert_eq!(puts.len(), 1, "{log:#?}");
        assert!(puts[0].target.starts_with("/v2/dst/app/blobs/uploads/u"));
        assert_eq!(puts[0].status, 201);
        assert!(puts[0].body_len > 0, "the monolithic body");
    }
    // Each session came from a mount: no plain POST opened another.
    let plain_posts = log
        .iter()
        .filter(|r| r.method == "POST" && !r.target.contains("mount="));
    assert_eq!(plain_posts.count(), 0, "{log:#?}");
    let sessions: Vec<String> = log
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.target.split('?').next().unwrap().to_string())
        .collect();
    let mut unique = sessions.clone();
    unique.dedup();
    assert_eq!(sessions.len(), image.blobs.len());
    assert_eq!(unique, sessions);
}

#[test]
fn a_refused_mount_is_followed_by_a_plain_upload() {
    for status in [403, 404, 405] {
        let (registry, image, _) = same_registry_copy(MountAnswer::Refuse(status));
        let log = uploads(&registry);
        for blob in &image.blobs {
            let sequence: Vec<(String, u16)> = log
                .iter()
                .filter(|r| {
                    r.target.contains(&format!("mount={blob}"))
                        || digest_of(r).as_deref() == Some(blob.as_str())
                })
                .map(|r| (r.method.clone(), r.status))
                .collect();
            assert_eq!(
                sequence,
                [("POST".to_string(), status), ("PUT".to_string(), 201)],
                "{status}: {log:#?}"
            );
        }
        let plain_posts = log
            .iter()
            .filter(|r| r.method == "POST" && !r.target.contains("mount=") && r.status == 202);
        assert_eq!(plain_posts.count(), image.blobs.len(), "{status}: {log:#?}");
    }
}

#[test]
fn a_granted_mount_moves_no_bytes() {
    let (registry, image, run) = same_registry_copy(MountAnswer::Spec);
    let mounts = registry.lines(|r| r.method == "POST" && r.status == 201);
    assert_eq!(mounts.len(), image.blobs.len(), "{mounts:#?}");
    assert!(
        registry
            .lines(|r| r.method == "PUT" && r.target.contains("/uploads/"))
            .is_empty()
    );
    assert!(
        registry
            .lines(|r| r.method == "GET" && r.target.contains("/blobs/"))
            .is_empty()
    );
    assert_eq!(run.results()[0]["status"], "copied");
}

/// Copies two images to a target whose session `Location`s are written as `style`, first
/// monolithic, then (once a 413 is set) in chunks; every upload request must reach
/// `/v2/dst/app/blobs/uploads/<id>`.
fn uploads_follow_locations(style: LocationStyle) {
    let source = SpecRegistry::start(Switches::default());
    let target = SpecRegistry::start(Switches {
        location: style,
        ..Switches::default()
    });
    let one = source.push_image("src/app", "one", &[bytes(5, 20_000)]);
    let rule = |tag: &str| {
        (
            format!("{}/src/app:{tag}", source.host),
            format!("{}/dst/app:{tag}", target.host),
        )
    };
    let misplaced = || -> Vec<String> {
        target
            .requests()
            .iter()
            .filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE"))
            .filter(|r| !r.target.contains("/manifests/"))
            .filter(|r| !r.target.starts_with("/v2/dst/app/blobs/uploads/u"))
            .map(|r| format!("{} → {}", r.line(), r.status))
            .collect()
    };
    let run = sync(&[&source, &target], &[rule("one")]);
    assert_eq!(misplaced(), Vec::<String>::new(), "{style:?}, monolithic");
    run.assert_all("copied");
    assert_holds(&target, "dst/app", "one", &source, &one);
    assert_eq!(target.open_uploads(), 0);

    let two = source.push_image("src/app", "two", &[bytes(11, 20_000)]);
    target.switches().refuse_monolithic = Some(413);
    let run = sync(&[&source, &target], &[rule("two")]);
    assert_eq!(misplaced(), Vec::<String>::new(), "{style:?}, chunked");
    run.assert_all("copied");
    assert_holds(&target, "dst/app", "two", &source, &two);
    let log = target.requests();
    assert!(
        log.iter().any(|r| r.method == "PATCH" && r.status == 202),
        "{log:#?}"
    );
    // The session whose PUT was refused is left to the registry to purge; no other.
    assert_eq!(target.open_uploads(), 1);
}

#[test]
fn an_absolute_upload_location_is_followed() {
    uploads_follow_locations(LocationStyle::Absolute);
}

#[test]
fn an_absolute_path_upload_location_is_resolved_against_the_registry() {
    uploads_follow_locations(LocationStyle::AbsolutePath);
}

#[test]
fn a_relative_upload_location_is_resolved_against_the_request_url() {
    // `Location: u1?_state=0` answering `POST /v2/dst/app/blobs/uploads/` names
    // `/v2/dst/app/blobs/uploads/u1?_state=0` (RFC 3986 §5.2; the distribution spec defers
    // to RFC 7231 for `Location`).
    uploads_follow_locations(LocationStyle::Relative);
}

#[test]
fn a_201_without_docker_content_digest_is_accepted() {
    let source = SpecRegistry::start(Switches::default());
    let target = SpecRegistry::start(Switches {
        omit_digest_header: true,
        ..Switches::default()
    });
    let image = source.push_image("src/app", "v1", &[bytes(17, 25_000)]);
    let rule = (
        format!("{}/src/app:v1", source.host),
        format!("{}/dst/app:v1", target.host),
    );
    let run = sync(&[&source, &target], std::slice::from_ref(&rule));
    run.assert_all("copied");
    assert_holds(&target, "dst/app", "v1", &source, &image);
    let created = target.requests();
    let puts: Vec<&Logged> = created
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 201)
        .collect();
    assert_eq!(
        puts.len(),
        image.blobs.len() + 1,
        "the blobs and the manifest: {puts:#?}"
    );
    // The next run finds the copy as it is (a HEAD with the digest) and leaves it.
    let again = sync(&[&source, &target], &[rule]);
    again.assert_all("unchanged");
}
