//! A user whose cluster enforces signatures migrates with `--referrers`: signatures, SBOMs
//! and attestations travel with their images — OCI 1.1 referrers (the referrers API, or
//! the `sha256-<hex>` fallback tag that distribution 2.8 uses), cosign's `.sig` tags, the
//! per-platform SBOMs of an index's children, and referrers of referrers to a bounded
//! depth — to renamed targets, merged into what the target already has, and a no-op re-run
//! costs little and writes nothing. A referrer that cannot be copied fails its image.

use crate::support;

use std::collections::BTreeSet;

use support::fault_proxy::{Fault, FaultProxy, When};
use support::registry::TestRegistry;
use support::seed::{
    ImageSpec, Media, OCI_INDEX, OCI_MANIFEST, Pushed, SBOM_TYPE, SIGNATURE_TYPE, SeededReferrer,
    Seeder, deterministic_layer, fallback_tag,
};
use support::sync::{Access, SyncRun, access_log, assert_skopeo_digest, skopeo};

fn image(seeder: &Seeder, repo: &str, tag: &str, seed: u64, arch: &str) -> Pushed {
    seeder.push_image(
        repo,
        tag,
        &ImageSpec::new(
            Media::Oci,
            "linux",
            arch,
            vec![deterministic_layer(seed, 1_500)],
        ),
    )
}

/// The raw manifest skopeo reads from the target hashes to `digest`.
fn assert_skopeo_raw(image: &str, digest: &str) {
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{image}"),
    ]);
    assert_eq!(
        support::seed::sha256_digest(raw.as_bytes()),
        digest,
        "skopeo inspect --raw {image}"
    );
}

fn listed(seeder: &Seeder, repo: &str, subject: &str) -> BTreeSet<String> {
    seeder
        .fallback_referrers(repo, subject)
        .into_iter()
        .collect()
}

fn set(digests: &[&str]) -> BTreeSet<String> {
    digests.iter().map(|d| d.to_string()).collect()
}

/// The source of the main scenario, on registries without the referrers API.
struct Signed {
    app: Pushed,
    sig1: SeededReferrer,
    sig2: SeededReferrer,
    sbom: SeededReferrer,
    /// A signature on the SBOM (depth 2), and one on that signature (depth 3), and one
    /// on that (depth 4: beyond the bound).
    sbom_sig: SeededReferrer,
    sbom_sig_sig: SeededReferrer,
    too_deep: SeededReferrer,
    cosign: Pushed,
    children: Vec<Pushed>,
    child_sboms: Vec<SeededReferrer>,
    index: String,
}

fn referrer_of_referrer(
    seeder: &Seeder,
    repo: &str,
    subject: &SeededReferrer,
    payload: &[u8],
) -> SeededReferrer {
    let referrer = seeder.push_referrer(
        repo,
        (&subject.digest, OCI_MANIFEST, subject.bytes.len()),
        SIGNATURE_TYPE,
        payload,
    );
    seeder.push_fallback_index(repo, &subject.digest, &[&referrer]);
    referrer
}

fn seed_signed(source: &Seeder) -> Signed {
    let app = image(source, "team/app", "1.0", 1, "amd64");
    let sig1 = source.push_referrer_of("team/app", &app, SIGNATURE_TYPE, b"signature one");
    let sig2 = source.push_referrer_of("team/app", &app, SIGNATURE_TYPE, b"signature two");
    let sbom = source.push_referrer_of("team/app", &app, SBOM_TYPE, br#"{"spdxVersion":"2.3"}"#);
    source.push_fallback_index("team/app", &app.manifest_digest, &[&sig1, &sig2, &sbom]);
    let sbom_sig = referrer_of_referrer(source, "team/app", &sbom, b"sbom signature");
    let sbom_sig_sig = referrer_of_referrer(source, "team/app", &sbom_sig, b"countersignature");
    let too_deep = referrer_of_referrer(source, "team/app", &sbom_sig_sig, b"too deep");
    let cosign = source.push_cosign_signature("team/app", &app.manifest_digest, 7);

    let children: Vec<Pushed> = [("amd64", 11), ("arm64", 12)]
        .iter()
        .map(|(arch, seed)| image(source, "team/multi", &format!("c-{arch}"), *seed, arch))
        .collect();
    let index = source.push_index_of(
        "team/multi",
        "2.0",
        &children.iter().collect::<Vec<_>>(),
        Media::Oci,
    );
    let child_sboms: Vec<SeededReferrer> = children
        .iter()
        .map(|child| {
            let sbom = source.push_referrer_of(
                "team/multi",
                child,
                SBOM_TYPE,
                format!("sbom of {}", child.platform.1).as_bytes(),
            );
            source.push_fallback_index("team/multi", &child.manifest_digest, &[&sbom]);
            sbom
        })
        .collect();
    Signed {
        app,
        sig1,
        sig2,
        sbom,
        sbom_sig,
        sbom_sig_sig,
        too_deep,
        cosign,
        children,
        child_sboms,
        index,
    }
}

fn migrator_writes(log: &[Access]) -> Vec<&Access> {
    log.iter()
        .filter(|a| a.by_migrator() && a.is_write())
        .collect()
}

#[test]
fn signatures_sboms_and_cosign_tags_follow_images_into_a_renamed_target() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let target = Seeder::for_registry(&dst);
    let s = seed_signed(&source);

    // The target already has the image, one of its two signatures and a signature of
    // its own that the source does not have: the merge must keep it.
    let app_there = image(&target, "mirror/app", "1.0-signed", 1, "amd64");
    assert_eq!(app_there.manifest_digest, s.app.manifest_digest);
    let sig1_there =
        target.push_referrer_of("mirror/app", &app_there, SIGNATURE_TYPE, b"signature one");
    assert_eq!(sig1_there.digest, s.sig1.digest);
    let own = target.push_referrer_of("mirror/app", &app_there, SIGNATURE_TYPE, b"notation");
    target.push_fallback_index("mirror/app", &s.app.manifest_digest, &[&sig1_there, &own]);

    let sync = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/app:1.0", src.host),
            &format!("{}/mirror/app:1.0-signed", dst.host),
        )
        .rule(
            &format!("{}/team/multi:2.0", src.host),
            &format!("{}/mirror/multi:latest", dst.host),
        )
        .arg("--referrers");

    // A dry run lists what would be copied, and writes nothing.
    let dst_before = access_log(&dst).len();
    let dry = sync.arg_clone("--dry-run").run();
    dry.assert_code(0);
    assert_eq!(dry.report()["settings"]["referrers"], true);
    let app_dry = dry.result_for(&format!("{}/mirror/app:1.0-signed", dst.host));
    assert_eq!(app_dry["status"], "unchanged", "{}", dry.pretty());
    let would: BTreeSet<String> = app_dry["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        would,
        set(&[
            &s.sig2.digest,
            &s.sbom.digest,
            &s.sbom_sig.digest,
            &s.sbom_sig_sig.digest,
            &s.cosign.manifest_digest
        ]),
        "{}",
        dry.pretty()
    );
    assert!(
        dry.stderr.contains(&format!(
            "would copy referrer {} ({SIGNATURE_TYPE})",
            s.sig2.digest
        )),
        "{}",
        dry.stderr
    );
    assert!(dry.stderr.contains("as tag sha256-"), "{}", dry.stderr);
    assert!(
        dry.stderr.contains("; 7 referrer(s) to copy, 1 present;"),
        "{}",
        dry.stderr
    );
    let multi_dry = dry.result_for(&format!("{}/mirror/multi:latest", dst.host));
    assert_eq!(multi_dry["status"], "would-copy");
    assert_eq!(multi_dry["referrers_copied"], 2, "{}", dry.pretty());
    let dry_log = access_log(&dst);
    assert!(
        migrator_writes(&dry_log[dst_before..]).is_empty(),
        "a dry run writes nothing: {:#?}",
        migrator_writes(&dry_log[dst_before..])
    );

    let run = sync.run();
    run.assert_code(0);
    let app = run.result_for(&format!("{}/mirror/app:1.0-signed", dst.host));
    assert_eq!(app["status"], "unchanged");
    // sig2, the SBOM, its signature, that signature's countersignature, the cosign tag.
    assert_eq!(app["referrers_copied"], 5, "{}", run.pretty());
    assert_eq!(
        app["referrers_unchanged"],
        1,
        "sig1 was there: {}",
        run.pretty()
    );
    let multi = run.result_for(&format!("{}/mirror/multi:latest", dst.host));
    assert_eq!(multi["status"], "copied");
    assert_eq!(multi["referrers_copied"], 2, "{}", run.pretty());
    assert_eq!(run.count("referrers_copied"), 7);
    assert!(
        run.stderr.contains("; 7 referrer(s) copied, 1 present;"),
        "{}",
        run.stderr
    );

    // Every referrer is in the target by digest, bytes and blobs unchanged.
    for referrer in [&s.sig1, &s.sig2, &s.sbom, &s.sbom_sig, &s.sbom_sig_sig] {
        let (_, bytes) = target
            .get_manifest("mirror/app", &referrer.digest)
            .unwrap_or_else(|| panic!("{} missing", referrer.digest));
        assert_eq!(bytes, referrer.bytes);
        for blob in &referrer.blob_digests {
            assert!(target.blob_exists("mirror/app", blob), "{blob}");
        }
    }
    assert_skopeo_raw(
        &format!("{}/mirror/app@{}", dst.host, s.sig2.digest),
        &s.sig2.digest,
    );
    // The depth is bounded: a signature four levels down stays behind.
    assert!(
        target
            .get_manifest("mirror/app", &s.too_deep.digest)
            .is_none()
    );

    // The fallback index was merged: nothing the target had is dropped.
    assert_eq!(
        listed(&target, "mirror/app", &s.app.manifest_digest),
        set(&[&s.sig1.digest, &own.digest, &s.sig2.digest, &s.sbom.digest]),
    );
    assert_eq!(
        listed(&target, "mirror/app", &s.sbom.digest),
        set(&[&s.sbom_sig.digest])
    );
    assert_eq!(
        listed(&target, "mirror/app", &s.sbom_sig.digest),
        set(&[&s.sbom_sig_sig.digest])
    );
    // cosign's tag is copied as a tag; cosign finds it under the same name.
    let sig_tag = format!("{}.sig", fallback_tag(&s.app.manifest_digest));
    assert_eq!(
        target.manifest_digest("mirror/app", &sig_tag).as_deref(),
        Some(s.cosign.manifest_digest.as_str())
    );
    assert_skopeo_digest(
        &format!("{}/mirror/app:{sig_tag}", dst.host),
        &s.cosign.manifest_digest,
        None,
    );

    // The index's children carry their per-platform SBOMs.
    assert_skopeo_digest(&format!("{}/mirror/multi:latest", dst.host), &s.index, None);
    for (child, sbom) in s.children.iter().zip(&s.child_sboms) {
        assert_eq!(
            listed(&target, "mirror/multi", &child.manifest_digest),
            set(&[&sbom.digest])
        );
        assert_skopeo_raw(
            &format!("{}/mirror/multi@{}", dst.host, sbom.digest),
            &sbom.digest,
        );
    }

    // A no-op re-run: nothing written, every referrer found by digest (none fetched),
    // and few requests beyond the plain no-op.
    let plain = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/app:1.0", src.host),
            &format!("{}/mirror/app:1.0-signed", dst.host),
        )
        .rule(
            &format!("{}/team/multi:2.0", src.host),
            &format!("{}/mirror/multi:latest", dst.host),
        );
    let (src_mark, dst_mark) = (access_log(&src).len(), access_log(&dst).len());
    plain.run().assert_all("unchanged");
    let (src_plain, dst_plain) = (access_log(&src).len(), access_log(&dst).len());
    let again = sync.run();
    again.assert_all("unchanged");
    assert_eq!(again.count("referrers_copied"), 0, "{}", again.pretty());
    assert_eq!(again.count("referrers_unchanged"), 8, "{}", again.pretty());
    let src_log = access_log(&src);
    let dst_log = access_log(&dst);
    let src_again: Vec<&Access> = src_log[src_plain..]
        .iter()
        .filter(|a| a.by_migrator())
        .collect();
    let dst_again: Vec<&Access> = dst_log[dst_plain..]
        .iter()
        .filter(|a| a.by_migrator())
        .collect();
    assert!(
        migrator_writes(&dst_log[dst_plain..]).is_empty(),
        "{dst_again:#?}"
    );
    for referrer in [&s.sig1, &s.sig2, &s.sbom, &s.sbom_sig, &s.sbom_sig_sig] {
        assert!(
            !src_again.iter().chain(&dst_again).any(|a| a.method == "GET"
                && a.uri.ends_with(&format!("/manifests/{}", referrer.digest))),
            "referrer {} fetched again",
            referrer.digest
        );
    }
    // Manifests whose referrers are looked up: the image, its 4 referrers within the
    // depth (sig1, sig2, the SBOM, its signature; the countersignature is the last level),
    // the cosign signature, the index and its 2 children, their 2 SBOMs: 11. At most one
    // request per side for each, everything included (a tag list per repository, the
    // referrers API probe, the unchanged index read for its children): absent fallback
    // and cosign tags cost nothing.
    let src_extra = src_again.len() - (src_plain - src_mark);
    let dst_extra = dst_again.len() - (dst_plain - dst_mark);
    let bound = 11;
    assert!(
        src_extra <= bound,
        "source: {src_extra} extra requests: {src_again:#?}"
    );
    assert!(
        dst_extra <= bound,
        "target: {dst_extra} extra requests: {dst_again:#?}"
    );
}

/// The digests a registry's referrers API lists for `subject`.
fn api_listing(api: &FaultProxy, repo: &str, subject: &str) -> BTreeSet<String> {
    let text = ureq::get(&format!(
        "http://{}/v2/{repo}/referrers/{subject}",
        api.host
    ))
    .call()
    .expect("referrers API")
    .body_mut()
    .read_to_string()
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["mediaType"], OCI_INDEX);
    answer["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_referrers_api_is_used_on_either_side() {
    let src_registry = TestRegistry::start();
    let dst_registry = TestRegistry::start();
    // The source answers the referrers API and has no fallback tags.
    let api_source = FaultProxy::start_with_referrers_api(&src_registry.host);
    let source = Seeder::new(&api_source.host);
    let app = image(&source, "team/app", "1.0", 21, "amd64");
    let sig = source.push_referrer_of("team/app", &app, SIGNATURE_TYPE, b"api signature");
    let sbom = source.push_referrer_of("team/app", &app, SBOM_TYPE, b"api sbom");
    // A referrer that is an index (per-platform attestations): its child goes first.
    let attestation = image(&source, "team/app", "attestation-child", 23, "amd64");
    let attestation_index = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.in-toto+json",
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": attestation.manifest_digest,
            "size": attestation.manifest_bytes.len(),
        }],
        "subject": {
            "mediaType": OCI_MANIFEST,
            "digest": app.manifest_digest,
            "size": app.manifest_bytes.len(),
        },
    }))
    .unwrap();
    let attestation_digest = support::seed::sha256_digest(&attestation_index);
    source.push_manifest(
        "team/app",
        &attestation_digest,
        OCI_INDEX,
        &attestation_index,
    );
    assert!(
        !Seeder::for_registry(&src_registry)
            .tags("team/app")
            .iter()
            .any(|t| t.starts_with("sha256-"))
    );
    // A source without the API: its referrers under the fallback tag.
    let plain_source = Seeder::for_registry(&src_registry);
    let old = image(&plain_source, "team/old", "1", 22, "amd64");
    let old_sig = plain_source.push_referrer_of("team/old", &old, SIGNATURE_TYPE, b"old signature");
    plain_source.push_fallback_index("team/old", &old.manifest_digest, &[&old_sig]);
    // A target that answers the API too, for the other rules.
    let api_target = FaultProxy::start_with_referrers_api(&dst_registry.host);
    let target = Seeder::for_registry(&dst_registry);

    let run = SyncRun::new()
        .insecure(&api_source.host)
        .insecure(&dst_registry.host)
        .insecure(&api_target.host)
        .rule(
            &format!("{}/team/app:1.0", api_source.host),
            &format!("{}/fallback/app:1.0", dst_registry.host),
        )
        .rule(
            &format!("{}/team/app:1.0", api_source.host),
            &format!("{}/api/app:1.0", api_target.host),
        )
        .insecure(&src_registry.host)
        .rule(
            &format!("{}/team/old:1", src_registry.host),
            &format!("{}/api/old:1", api_target.host),
        )
        .arg("--referrers")
        .run();
    run.assert_all("copied");
    // Fallback source → API target: pushed with its subject, no fallback tag.
    assert_eq!(
        run.result_for(&format!("{}/api/old:1", api_target.host))["referrers_copied"],
        1,
        "{}",
        run.pretty()
    );
    assert_eq!(
        api_listing(&api_target, "api/old", &old.manifest_digest),
        set(&[&old_sig.digest])
    );
    assert_eq!(target.tags("api/old"), ["1"]);
    for target_name in [
        format!("{}/fallback/app:1.0", dst_registry.host),
        format!("{}/api/app:1.0", api_target.host),
    ] {
        assert_eq!(
            run.result_for(&target_name)["referrers_copied"],
            3,
            "{}",
            run.pretty()
        );
    }
    // API source → fallback target: the fallback index is created.
    assert_eq!(
        listed(&target, "fallback/app", &app.manifest_digest),
        set(&[&sig.digest, &sbom.digest, &attestation_digest])
    );
    // API target: the referrers are pushed with their subject, nothing more.
    assert!(
        !target
            .tags("api/app")
            .iter()
            .any(|t| t.starts_with("sha256-")),
        "no fallback tag on a target with the API: {:?}",
        target.tags("api/app")
    );
    assert_eq!(
        api_listing(&api_target, "api/app", &app.manifest_digest),
        set(&[&sig.digest, &sbom.digest, &attestation_digest])
    );
    for repo in ["fallback/app", "api/app"] {
        assert_eq!(
            target.get_manifest(repo, &sig.digest).map(|(_, b)| b),
            Some(sig.bytes.clone())
        );
        assert_eq!(
            target
                .get_manifest(repo, &attestation_digest)
                .map(|(_, b)| b),
            Some(attestation_index.clone())
        );
        assert_eq!(
            target
                .get_manifest(repo, &attestation.manifest_digest)
                .map(|(_, b)| b),
            Some(attestation.manifest_bytes.clone())
        );
    }

    // A re-run finds them by the API on both sides and writes nothing.
    let dst_mark = api_target.log().len();
    let again = SyncRun::new()
        .insecure(&api_source.host)
        .insecure(&api_target.host)
        .rule(
            &format!("{}/team/app:1.0", api_source.host),
            &format!("{}/api/app:1.0", api_target.host),
        )
        .arg("--referrers")
        .run();
    again.assert_all("unchanged");
    assert_eq!(again.count("referrers_unchanged"), 3, "{}", again.pretty());
    let writes: Vec<_> = api_target.log()[dst_mark..]
        .iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD")
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
}

#[test]
fn a_referrer_that_cannot_be_copied_fails_its_image_only() {
    let registry = TestRegistry::start();
    let dst = TestRegistry::start();
    let proxy = FaultProxy::start(&registry.host);
    let source = Seeder::for_registry(&registry);
    let bad = image(&source, "team/bad", "1", 31, "amd64");
    let first_sig = source.push_referrer_of("team/bad", &bad, SBOM_TYPE, b"copied before");
    let bad_sig =
        source.push_referrer_of("team/bad", &bad, SIGNATURE_TYPE, b"corrupted on the way");
    source.push_fallback_index("team/bad", &bad.manifest_digest, &[&first_sig, &bad_sig]);
    let good = image(&source, "team/good", "1", 32, "amd64");
    let good_sig = source.push_referrer_of("team/good", &good, SIGNATURE_TYPE, b"fine");
    source.push_fallback_index("team/good", &good.manifest_digest, &[&good_sig]);
    // The signature's payload blob arrives corrupted, every time.
    proxy.inject(
        Some("GET"),
        &format!("/blobs/{}", bad_sig.blob_digests[1]),
        When::Always,
        Fault::FlipByte,
    );

    let sync = SyncRun::new()
        .insecure(&proxy.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/bad:1", proxy.host),
            &format!("{}/mirror/bad:1", dst.host),
        )
        .rule(
            &format!("{}/team/good:1", proxy.host),
            &format!("{}/mirror/good:1", dst.host),
        )
        .arg("--referrers")
        .arg("--retries")
        .arg("0");
    let run = sync.run();
    run.assert_code(1);
    let failed = run.result_for(&format!("{}/mirror/bad:1", dst.host));
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "referrer", "{}", run.pretty());
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains(&bad_sig.digest), "{message}");
    assert!(message.contains(SIGNATURE_TYPE), "{message}");
    // Not listed in the target's fallback index (cosign would not find a broken one);
    // the one copied before it is.
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        listed(&target, "mirror/bad", &bad.manifest_digest),
        set(&[&first_sig.digest])
    );

    let ok = run.result_for(&format!("{}/mirror/good:1", dst.host));
    assert_eq!(ok["status"], "copied", "{}", run.pretty());
    assert_eq!(ok["referrers_copied"], 1);
    assert_eq!(
        listed(&target, "mirror/good", &good.manifest_digest),
        set(&[&good_sig.digest])
    );

    // Once the fault is gone, a re-run copies only what was missing.
    proxy.clear();
    let again = sync.run();
    again.assert_all("unchanged");
    let fixed = again.result_for(&format!("{}/mirror/bad:1", dst.host));
    assert_eq!(fixed["referrers_copied"], 1, "{}", again.pretty());
    assert_eq!(fixed["referrers_unchanged"], 1, "{}", again.pretty());
    assert_eq!(
        listed(&target, "mirror/bad", &bad.manifest_digest),
        set(&[&first_sig.digest, &bad_sig.digest])
    );
    assert_eq!(
        target
            .get_manifest("mirror/bad", &bad_sig.digest)
            .map(|(_, b)| b),
        Some(bad_sig.bytes.clone())
    );
}

#[test]
fn validate_shows_the_referrers_setting() {
    let run = SyncRun::new()
        .rule("registry.example/team/app:1", "mirror.example/team/app:1")
        .arg("validate")
        .arg("--referrers")
        .run();
    run.assert_code(0);
    assert!(run.stdout.contains("referrers: on"), "{}", run.stdout);
    let plain = SyncRun::new()
        .rule("registry.example/team/app:1", "mirror.example/team/app:1")
        .arg("validate")
        .run();
    assert!(!plain.stdout.contains("referrers"), "{}", plain.stdout);
}

#[test]
fn a_whole_repository_rule_leaves_referrer_tags_to_their_images() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let app = image(&source, "team/app", "1.0", 41, "amd64");
    let sig = source.push_referrer_of("team/app", &app, SIGNATURE_TYPE, b"whole repository");
    source.push_fallback_index("team/app", &app.manifest_digest, &[&sig]);
    let cosign = source.push_cosign_signature("team/app", &app.manifest_digest, 42);
    // Another tag of the same image: its referrers are handled once.
    source.push_manifest("team/app", "latest", &app.media_type, &app.manifest_bytes);
    let fallback = fallback_tag(&app.manifest_digest);
    let sig_tag = format!("{fallback}.sig");
    assert_eq!(
        source.tags("team/app"),
        ["1.0", "latest", fallback.as_str(), sig_tag.as_str()]
    );

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/app", src.host),
            &format!("{}/mirror/app", dst.host),
        )
        .arg("--referrers")
        .run();
    run.assert_all("copied");
    assert_eq!(
        run.count("total"),
        2,
        "only the image's tags are jobs: {}",
        run.pretty()
    );
    assert_eq!(
        run.count("referrers_copied"),
        2,
        "copied once: {}",
        run.pretty()
    );
    assert_eq!(run.count("referrers_unchanged"), 2, "{}", run.pretty());
    let target = Seeder::for_registry(&dst);
    assert_eq!(target.tags("mirror/app"), source.tags("team/app"));
    assert_eq!(
        listed(&target, "mirror/app", &app.manifest_digest),
        set(&[&sig.digest])
    );
    assert_eq!(
        target.manifest_digest("mirror/app", &sig_tag).as_deref(),
        Some(cosign.manifest_digest.as_str())
    );
}

#[test]
fn with_a_platform_filter_the_kept_children_keep_their_referrers() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let source = Seeder::for_registry(&src);
    let amd = image(&source, "team/multi", "c-amd64", 51, "amd64");
    let arm = image(&source, "team/multi", "c-arm64", 52, "arm64");
    let index = source.push_index_of("team/multi", "1", &[&amd, &arm], Media::Oci);
    let sboms: Vec<SeededReferrer> = [&amd, &arm]
        .iter()
        .map(|child| {
            let sbom = source.push_referrer_of(
                "team/multi",
                child,
                SBOM_TYPE,
                child.platform.1.as_bytes(),
            );
            source.push_fallback_index("team/multi", &child.manifest_digest, &[&sbom]);
            sbom
        })
        .collect();
    let (_, index_bytes) = source.get_manifest("team/multi", "1").unwrap();
    let index_sig = source.push_referrer(
        "team/multi",
        (&index, OCI_INDEX, index_bytes.len()),
        SIGNATURE_TYPE,
        b"of the whole index",
    );
    source.push_fallback_index("team/multi", &index, &[&index_sig]);

    let run = SyncRun::new()
        .insecure(&src.host)
        .insecure(&dst.host)
        .rule(
            &format!("{}/team/multi:1", src.host),
            &format!("{}/mirror/multi:1", dst.host),
        )
        .arg("--referrers")
        .arg("--platform")
        .arg("linux/arm64")
        .run();
    run.assert_all("copied");
    assert_eq!(run.count("referrers_copied"), 1, "{}", run.pretty());
    let target = Seeder::for_registry(&dst);
    assert_eq!(
        listed(&target, "mirror/multi", &arm.manifest_digest),
        set(&[&sboms[1].digest])
    );
    assert!(listed(&target, "mirror/multi", &amd.manifest_digest).is_empty());
    // The rewritten index has another digest: the source index's signature stays behind.
    assert!(listed(&target, "mirror/multi", &index).is_empty());
    assert!(
        target
            .get_manifest("mirror/multi", &index_sig.digest)
            .is_none()
    );
}
