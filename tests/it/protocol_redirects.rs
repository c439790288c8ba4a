//! Redirected blob downloads and where credentials go, without Docker: a source
//! `support::spec_registry` answers blob `GET`s with 301/302/303/307/308 to an
//! `ObjectStore` on another port (a signed query, as S3 presigned URLs, which refuses any
//! `Authorization`). The redirect target gets the query untouched and no credentials; a
//! `Location` that is a path is resolved against the registry; a chain of redirects
//! without end fails after 10 hops with a clear error; basic credentials go only to the
//! registry, and with a bearer challenge the password goes only to the token realm and the
//! token only to the registry, never to the storage or the other registry of the run. A
//! download broken at the storage, which ignores ranges, is read again from the start.

use crate::support;

use serde_json::json;
use support::fault_proxy::{Fault, FaultProxy, When};
use support::spec_registry::{Auth, Image, ObjectStore, SpecRegistry, Switches, signature};
use support::sync::{RunResult, SyncRun};
use support::token_server::TokenServer;

const PASSWORD: &str = "redirect-secret-7731";

fn layer() -> Vec<u8> {
    (0..50_000u32).map(|i| (i * 31 % 253) as u8).collect()
}

/// `source/src/app:v1` → `target/dst/app:v1`; `source_auth` is the source's auth.json entry.
fn sync_one(
    source: &SpecRegistry,
    target: &SpecRegistry,
    source_auth: serde_json::Value,
) -> RunResult {
    SyncRun::new()
        .auth(&source.host, source_auth)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/app:v1", source.host),
            &format!("{}/dst/app:v1", target.host),
        )
        .arg("--retries")
        .arg("1")
        .run()
}

/// The image arrived whole and byte for byte.
fn assert_copied(source: &SpecRegistry, target: &SpecRegistry, image: &Image, run: &RunResult) {
    run.assert_all("copied");
    assert_eq!(
        target.manifest("dst/app", "v1"),
        Some(image.manifest.clone())
    );
    for blob in &image.blobs {
        assert_eq!(
            target.blob("dst/app", blob),
            source.blob("src/app", blob),
            "{blob}"
        );
    }
}

fn basic_auth() -> Auth {
    Auth::Basic {
        user: "robot".into(),
        password: PASSWORD.into(),
    }
}

/// No request `logged` carries `Authorization`, or the password anywhere.
fn assert_no_credentials(who: &str, logged: &[support::spec_registry::Logged]) {
    for request in logged {
        assert_eq!(request.header("authorization"), None, "{who}: {request:#?}");
        let text = format!("{request:?}");
        assert!(!text.contains(PASSWORD), "{who}: {request:#?}");
    }
}

#[test]
fn a_blob_redirected_to_another_host_keeps_its_query_and_gets_no_credentials() {
    for status in [301, 302, 303, 307, 308] {
        let source = SpecRegistry::start(Switches {
            auth: basic_auth(),
            ..Switches::default()
        });
        let image = source.push_image("src/app", "v1", &[layer()]);
        let storage = ObjectStore::start(&source, false);
        source.switches().blob_redirect = Some((status, storage.base.clone()));
        let target = SpecRegistry::start(Switches::default());
        let run = sync_one(
            &source,
            &target,
            json!({"username": "robot", "password": PASSWORD, "insecure": true}),
        );
        assert_copied(&source, &target, &image, &run);

        // Each blob: one GET to the registry, with its credentials, answered `status`;
        // then one GET of exactly the signed URL on the storage, without them.
        let blob_gets: Vec<_> = source
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.target.contains("/blobs/"))
            .collect();
        assert_eq!(
            blob_gets.len(),
            image.blobs.len(),
            "{status}: {blob_gets:#?}"
        );
        for get in &blob_gets {
            assert_eq!(get.status, status);
            assert!(
                get.header("authorization")
                    .is_some_and(|a| a.starts_with("Basic "))
            );
        }
        let mut fetched: Vec<String> = storage.requests().iter().map(|r| r.line()).collect();
        fetched.sort();
        let mut expected: Vec<String> = image
            .blobs
            .iter()
            .map(|d| {
                format!(
                    "GET /bucket/{d}?X-Amz-Signature={}&X-Amz-Expires=300",
                    signature(d)
                )
            })
            .collect();
        expected.sort();
        assert_eq!(fetched, expected, "{status}");
        assert!(storage.requests().iter().all(|r| r.status == 200));
        assert_no_credentials("storage", &storage.requests());
        assert_no_credentials("target", &target.requests());
    }
}

#[test]
fn a_location_that_is_a_path_is_resolved_against_the_registry() {
    let source = SpecRegistry::start(Switches {
        blob_redirect: Some((307, "/_storage".into())),
        ..Switches::default()
    });
    let image = source.push_image("src/app", "v1", &[layer()]);
    let target = SpecRegistry::start(Switches::default());
    let run = sync_one(&source, &target, json!({"insecure": true}));
    assert_copied(&source, &target, &image, &run);
    let mut fetched = source.lines(|r| r.target.starts_with("/_storage/") && r.status == 200);
    fetched.sort();
    let mut expected: Vec<String> = image
        .blobs
        .iter()
        .map(|d| {
            format!(
                "GET /_storage/{d}?X-Amz-Signature={}&X-Amz-Expires=300",
                signature(d)
            )
        })
        .collect();
    expected.sort();
    assert_eq!(fetched, expected);
}

#[test]
fn redirects_without_end_fail_after_10_hops_with_a_clear_error() {
    let source = SpecRegistry::start(Switches::default());
    // No layers: the config is the one blob, so the counts below are exact.
    let image = source.push_image("src/app", "v1", &[]);
    let storage = ObjectStore::start(&source, true);
    source.switches().blob_redirect = Some((307, storage.base.clone()));
    let target = SpecRegistry::start(Switches::default());
    let run = sync_one(&source, &target, json!({"insecure": true}));
    run.assert_code(1);
    let result = run.result_for(&format!("{}/dst/app:v1", target.host));
    assert_eq!(result["status"], "failed", "{}", run.pretty());
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("more than 10 redirects"), "{message}");
    assert!(
        message.contains(&format!("/v2/src/app/blobs/{}", image.blobs[0])),
        "names the blob URL: {message}"
    );
    assert!(
        !message.contains(&signature(&image.blobs[0])),
        "the signed query is not shown: {message}"
    );
    // The registry's answer and 10 hops, once: a redirect loop is not retried.
    let gets = source.lines(|r| r.target.contains("/blobs/"));
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert_eq!(storage.requests().len(), 10, "{:#?}", storage.requests());
    assert_eq!(
        target.manifest("dst/app", "v1"),
        None,
        "no tag without its blobs"
    );
}

#[test]
fn bearer_credentials_go_to_the_realm_and_the_token_only_to_the_registry() {
    let tokens = TokenServer::start(&[("robot", PASSWORD, &[("src/", &["pull"])])]);
    let source = SpecRegistry::start(Switches {
        auth: Auth::Bearer {
            realm: tokens.realm.clone(),
            service: tokens.service.clone(),
            issuer: tokens.issuer.clone(),
        },
        ..Switches::default()
    });
    let image = source.push_image("src/app", "v1", &[layer()]);
    let storage = ObjectStore::start(&source, false);
    source.switches().blob_redirect = Some((307, storage.base.clone()));
    let target = SpecRegistry::start(Switches::default());
    let run = sync_one(
        &source,
        &target,
        json!({"username": "robot", "password": PASSWORD, "insecure": true}),
    );
    assert_copied(&source, &target, &image, &run);

    // The realm: the password, in basic credentials, for pull on the one repository.
    let issued = tokens.requests();
    assert!(!issued.is_empty());
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("robot:{PASSWORD}")
        )
    );
    for request in &issued {
        assert_eq!(request.status, 200, "{request:#?}");
        assert_eq!(request.authorization.as_deref(), Some(basic.as_str()));
        assert_eq!(request.scopes, ["repository:src/app:pull"]);
        assert_eq!(request.service.as_deref(), Some(tokens.service.as_str()));
    }
    // The registry: a token it accepted on every request but the first ping, never the
    // password.
    let requests = source.requests();
    let issued_tokens: Vec<String> = issued
        .iter()
        .map(|r| format!("Bearer {}", r.token))
        .collect();
    for request in &requests {
        let text = format!("{request:?}");
        assert!(
            !text.contains(PASSWORD) && !text.contains(&basic),
            "{request:#?}"
        );
        match request.header("authorization") {
            Some(token) => assert!(issued_tokens.iter().any(|t| t == token), "{request:#?}"),
            None => assert_eq!(
                (request.target.as_str(), request.status),
                ("/v2/", 401),
                "only the ping goes without a token"
            ),
        }
        assert_ne!(request.status, 403, "{request:#?}");
    }
    // Neither the storage nor the other registry of the run saw a credential.
    assert_eq!(storage.requests().len(), image.blobs.len());
    assert_no_credentials("storage", &storage.requests());
    assert_no_credentials("target", &target.requests());
    for token in &issued_tokens {
        let everywhere = format!("{:?}{:?}", storage.requests(), target.requests());
        assert!(!everywhere.contains(token.trim_start_matches("Bearer ")));
    }
}

#[test]
fn a_download_broken_at_a_redirect_target_that_ignores_ranges_is_read_again_from_the_start() {
    // The storage sits behind a fault proxy that cuts the layer's first body at half; the
    // continuation asks the registry for the rest (`Range`), is sent to the storage
    // again, which ignores the range and sends the whole: read from the start, the bytes
    // already sent dropped.
    let source = SpecRegistry::start(Switches::default());
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let image = source.push_image("src/app", "v1", std::slice::from_ref(&big));
    let storage = ObjectStore::start(&source, false);
    let upstream = storage
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/bucket");
    let cut = FaultProxy::start(upstream);
    let layer = image.blobs[1].clone();
    cut.inject(
        Some("GET"),
        &layer,
        When::Nth(vec![1]),
        Fault::CutAtPercent(50),
    );
    source.switches().blob_redirect = Some((307, format!("http://{}/bucket", cut.host)));
    let target = SpecRegistry::start(Switches::default());
    let run = sync_one(&source, &target, json!({"insecure": true}));
    assert_copied(&source, &target, &image, &run);

    let ranges: Vec<Option<String>> = (source.requests().into_iter())
        .filter(|r| r.target.ends_with(&layer))
        .map(|r| r.header("range").map(str::to_string))
        .collect();
    let rest = format!("bytes={}-{}", big.len() / 2, big.len() - 1);
    assert_eq!(
        ranges,
        vec![None, Some(rest.clone())],
        "the registry was asked for the rest"
    );
    let at_storage: Vec<(Option<String>, u16)> = (storage.requests().into_iter())
        .filter(|r| r.target.contains(&layer))
        .map(|r| (r.header("range").map(str::to_string), r.status))
        .collect();
    assert_eq!(
        at_storage,
        vec![(None, 200), (Some(rest), 200)],
        "the range reached the storage, which sent the whole"
    );
    let served: u64 = (cut.log().iter())
        .filter(|r| r.path.contains(&layer))
        .map(|r| r.body_sent)
        .sum();
    assert_eq!(served, big.len() as u64 * 3 / 2);
    assert_no_credentials("storage", &storage.requests());
}
