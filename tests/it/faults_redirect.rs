//! Blob downloads redirected to another host (as registries do to object storage): the
//! copy follows the redirect and the other host never receives the registry's
//! `Authorization` header.

use crate::support;

use support::blob_server::BlobServer;
use support::fault_proxy::{Fault, FaultProxy, When};
use support::migrator::{seed_images, tag_rules, text};
use support::registry::TestRegistry;
use support::seed::{Seeder, sha256_digest};
use support::sync::SyncRun;

#[test]
fn redirected_blob_downloads_carry_no_credentials() {
    let registry = TestRegistry::start_with_htpasswd("robot", "redirect-pass-4411");
    let seeder = Seeder::for_registry(&registry);
    let images = seed_images(&seeder, "src/app", &["one", "two"], 41, 30_000);
    let storage = BlobServer::start(seeder.clone());
    let source = FaultProxy::start(&registry.host);
    let target = FaultProxy::start(&registry.host);
    source.inject(
        Some("GET"),
        "/blobs/sha256:",
        When::Always,
        Fault::Redirect(format!("{}?X-Signature=abc123", storage.base)),
    );
    let creds = serde_json::json!({
        "username": "robot", "password": "redirect-pass-4411", "insecure": true
    });
    let work = SyncRun::ci(
        &serde_json::json!({ source.host.clone(): creds, target.host.clone(): creds }),
        &tag_rules(
            &source.host,
            "src/app",
            &target.host,
            "dst/app",
            &["one", "two"],
        ),
    );
    let output = work.command().output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    for (tag, image) in ["one", "two"].iter().zip(&images) {
        assert_eq!(
            seeder.manifest_digest("dst/app", tag),
            Some(image.manifest_digest.clone())
        );
        for blob in &image.blob_digests {
            let bytes = seeder.get_blob("dst/app", blob).expect("blob copied");
            assert_eq!(&sha256_digest(&bytes), blob);
        }
    }
    // The registry asked for credentials, and got them…
    let redirected = source.faulted();
    assert_eq!(redirected.len(), 6, "every blob download was redirected");
    for r in &redirected {
        assert_eq!(r.status, Some(307));
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic ")),
            "{r:?}"
        );
    }
    // …the storage host served every blob and never saw them.
    let served = storage.requests();
    assert_eq!(served.len(), 6, "{served:#?}");
    for r in &served {
        assert_eq!(r.method, "GET");
        assert!(
            r.path.ends_with("?X-Signature=abc123"),
            "query kept: {}",
            r.path
        );
        assert_eq!(r.header("authorization"), None, "credentials leaked: {r:?}");
        assert!(
            r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("image-migrator/"))
        );
    }
}
