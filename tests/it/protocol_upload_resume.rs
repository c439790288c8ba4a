//! `--chunk-size`: blobs go up in `PATCH` chunks of that size (`Content-Range`, each to the
//! `Location` the last answer gave) and a closing `PUT ?digest=`. A chunk that breaks on
//! the way is not sent again from the blob's start: the tool asks the registry how much
//! the session holds (`GET` on it, its `Range`), reads the source again from there (a
//! `Range` request) and goes on; the digest is still checked over the whole blob. Run
//! against `support::spec_registry`, which can break a chunk and keep half of it.

use crate::support;

use support::spec_registry::{HANG_UP, Logged, SpecRegistry, Switches};
use support::sync::SyncRun;

const MIB: usize = 1024 * 1024;

fn bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(seed) % 251) as u8)
        .collect()
}

fn content_range(request: &Logged) -> Option<String> {
    request.header("content-range").map(str::to_string)
}

#[test]
fn a_chunk_that_breaks_continues_from_what_the_registry_holds() {
    let source = SpecRegistry::start(Switches::default());
    let layer_size = 3 * MIB + MIB / 2;
    let image = source.push_image("src/app", "1", &[bytes(11, layer_size)]);
    let layer = image.blobs[1].clone();
    // The layer's second chunk breaks after half of it reached the registry.
    let target = SpecRegistry::start(Switches {
        break_patch_at: Some(MIB),
        ..Switches::default()
    });
    let run = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/src/app:1", source.host),
            &format!("{}/dst/app:1", target.host),
        )
        .arg("--chunk-size")
        .arg("1M")
        .arg("--proc")
        .arg("1")
        .run();
    run.assert_all("copied");
    assert_eq!(
        target.manifest("dst/app", "1"),
        Some(image.manifest.clone())
    );
    for blob in &image.blobs {
        assert_eq!(
            target.blob("dst/app", blob),
            source.blob("src/app", blob),
            "{blob}"
        );
    }
    let result = &run.results()[0];
    assert_eq!(
        result["attempts"],
        2,
        "one try to continue: {}",
        run.pretty()
    );
    assert_eq!(run.report()["settings"]["chunk_size_bytes"], MIB as u64);

    // The layer's session: chunk 1, chunk 2 broken (half kept), the status asked, then
    // on from 1.5 MiB in chunks of 1 MiB, and the closing PUT.
    let log = target.requests();
    let hung = log
        .iter()
        .position(|r| r.status == HANG_UP)
        .expect("a broken chunk");
    let session = log[hung].target.split('?').next().unwrap().to_string();
    let of_session: Vec<&Logged> = (log.iter())
        .filter(|r| r.target.starts_with(&session))
        .collect();
    let seen: Vec<(String, Option<String>, u16)> = (of_session.iter())
        .map(|r| (r.method.clone(), content_range(r), r.status))
        .collect();
    let half = MIB + MIB / 2;
    let range = |first: usize, last: usize| Some(format!("{first}-{last}"));
    assert_eq!(
        seen,
        vec![
            ("PATCH".into(), range(0, MIB - 1), 202),
            ("PATCH".into(), range(MIB, 2 * MIB - 1), HANG_UP),
            ("GET".into(), None, 204),
            ("PATCH".into(), range(half, half + MIB - 1), 202),
            ("PATCH".into(), range(half + MIB, layer_size - 1), 202),
            ("PUT".into(), None, 201),
        ],
        "{of_session:#?}"
    );
    // Every chunk no larger than asked; one session for each blob (a plain one, or the
    // one a mount from the repository itself opened).
    for patch in log.iter().filter(|r| r.method == "PATCH") {
        assert!(patch.body_len <= MIB, "{patch:#?}");
    }
    let sessions = (log.iter())
        .filter(|r| r.method == "POST" && r.status == 202)
        .count();
    assert_eq!(
        sessions, 2,
        "config and layer, neither started again: {log:#?}"
    );

    // The source was read from the registry's offset for the rest: not from the start.
    let layer_gets: Vec<Option<String>> = (source.requests().into_iter())
        .filter(|r| r.method == "GET" && r.target.ends_with(&layer))
        .map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(
        layer_gets,
        vec![None, Some(format!("bytes={half}-{}", layer_size - 1))]
    );
}
