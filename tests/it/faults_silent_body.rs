//! A source registry whose layer download goes silent part-way: the response head and
//! part of the body arrive, then not one byte more while the connection stays open. The
//! speed floor is a timer, so the read is cut once `--min-speed-window` passes without the
//! floor being met — long before `--request-timeout`, which bounds each read otherwise —
//! and the image fails with the speed-floor error after its retry. A pause shorter than
//! the window is not cut.
//!
//! The source is a small registry in this file (std only, one request per connection)
//! serving one image, `src/slow:v1`; the target is a real registry.

use crate::support;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use support::http1::{Request, respond};
use support::migrator::{insecure, result_for, text};
use support::registry::TestRegistry;
use support::seed::Seeder;
use support::sync::SyncRun;

const REPO: &str = "src/slow";
const TAG: &str = "v1";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The layer's size; [`LayerServer`] sends [`SENT_BEFORE_STALL`] of it, then stalls.
const LAYER_BYTES: usize = 200_000;
const SENT_BEFORE_STALL: usize = 50_000;

/// How the layer's `GET` is answered after its first [`SENT_BEFORE_STALL`] bytes.
#[derive(Clone, Copy)]
enum Stall {
    /// Nothing more, the connection held open this long (longer than the run may take).
    Silent(Duration),
    /// Nothing for this long, then the rest.
    Pause(Duration),
}

struct Image {
    manifest: Vec<u8>,
    manifest_digest: String,
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn image() -> Image {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer: Vec<u8> = (0..LAYER_BYTES as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (config_digest, layer_digest) = (sha256(&config), sha256(&layer));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    Image {
        manifest_digest: sha256(&manifest),
        manifest,
        config,
        config_digest,
        layer,
        layer_digest,
    }
}

/// The source registry: `src/slow:v1` over plain HTTP on 127.0.0.1, the layer served as
/// [`Stall`] says. Counts the layer's `GET`s and when each one stalled.
struct LayerServer {
    host: String,
    image: Arc<Image>,
    layer_gets: Arc<AtomicUsize>,
    stalls: Arc<Mutex<Vec<Instant>>>,
}

impl LayerServer {
    fn start(stall: Stall) -> LayerServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let image = Arc::new(image());
        let layer_gets = Arc::new(AtomicUsize::new(0));
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let (thread_image, gets, thread_stalls) =
            (image.clone(), layer_gets.clone(), stalls.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (image, gets, stalls) =
                    (thread_image.clone(), gets.clone(), thread_stalls.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &image, stall, &gets, &stalls);
                });
            }
        });
        LayerServer {
            host,
            image,
            layer_gets,
            stalls,
        }
    }
}

fn serve(
    stream: std::net::TcpStream,
    image: &Image,
    stall: Stall,
    layer_gets: &AtomicUsize,
    stalls: &Mutex<Vec<Instant>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let Some(request) = Request::read(&mut reader)? else {
        return Ok(());
    };
    let mut out = reader.into_inner();
    let with_body = request.method != "HEAD";
    let path = request.path().to_string();
    if path == "/v2/" || path == "/v2" {
        return respond(&mut out, 200, &[], b"{}", with_body);
    }
    let Some(rest) = path.strip_prefix(&format!("/v2/{REPO}/")) else {
        return respond(&mut out, 404, &[], b"", with_body);
    };
    if let Some(reference) = rest.strip_prefix("manifests/") {
        if reference != TAG && reference != image.manifest_digest {
            return respond(&mut out, 404, &[], b"", with_body);
        }
        let headers = [
            ("Content-Type", OCI_MANIFEST),
            ("Docker-Content-Digest", image.manifest_digest.as_str()),
        ];
        return respond(&mut out, 200, &headers, &image.manifest, with_body);
    }
    match rest.strip_prefix("blobs/") {
        Some(digest) if digest == image.config_digest => {
            respond(&mut out, 200, &[], &image.config, with_body)
        }
        Some(digest) if digest == image.layer_digest && with_body => {
            layer_gets.fetch_add(1, Ordering::SeqCst);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                image.layer.len()
            )?;
            out.write_all(&image.layer[..SENT_BEFORE_STALL])?;
            out.flush()?;
            stalls.lock().unwrap().push(Instant::now());
            match stall {
                Stall::Silent(hold) => {
                    thread::sleep(hold);
                    Ok(())
                }
                Stall::Pause(pause) => {
                    thread::sleep(pause);
                    out.write_all(&image.layer[SENT_BEFORE_STALL..])?;
                    out.flush()
                }
            }
        }
        Some(digest) if digest == image.layer_digest => {
            respond(&mut out, 200, &[], &image.layer, false)
        }
        _ => respond(&mut out, 404, &[], b"", with_body),
    }
}

/// `src/slow:v1` from `source` to `dst/slow:v1` on `target`, both plain HTTP.
fn workdir(source: &LayerServer, target: &TestRegistry) -> SyncRun {
    let images = json!({
        format!("{}/{REPO}:{TAG}", source.host): format!("{}/dst/slow:{TAG}", target.host),
    });
    SyncRun::ci(&insecure(&[&source.host, &target.host]), &images)
}

#[test]
fn a_layer_that_goes_silent_is_cut_after_the_speed_window_not_the_request_timeout() {
    let source = LayerServer::start(Stall::Silent(Duration::from_secs(300)));
    let target = TestRegistry::start();
    let seeder = Seeder::for_registry(&target);
    let work = workdir(&source, &target);

    let started = Instant::now();
    let output = work
        .command()
        .args(["--retries", "1", "--request-timeout", "60s"])
        .args(["--min-speed", "1024", "--min-speed-window", "2s"])
        .timeout(Duration::from_secs(200))
        .output()
        .unwrap();
    let wall = started.elapsed();
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");

    let report = work.report();
    let result = result_for(&report, &format!("{}/{REPO}:{TAG}", source.host));
    assert_eq!(result["status"], "failed", "{result:#}");
    assert_eq!(result["error"]["kind"], "network", "{result:#}");
    let message = result["error"]["message"].as_str().unwrap();
    eprintln!("message: {message}");
    assert!(
        message.contains("slower than the floor of 1024 B/s")
            && message.contains("--min-speed-window"),
        "the speed-floor error: {message}"
    );
    // Silent: nothing arrived after the stall, so the window's bytes cannot be more than
    // what came before it.
    assert!(
        message.contains(" 0 byte(s) in "),
        "no byte after the stall: {message}"
    );
    assert_eq!(result["attempts"], 2, "transient, retried once: {result:#}");
    assert_eq!(source.layer_gets.load(Ordering::SeqCst), 2);
    assert_eq!(seeder.manifest_digest("dst/slow", TAG), None);

    // Each attempt stalled for about one window; a read waiting for the per-read timeout
    // would have taken 60 s per attempt. The bound is loose on purpose (slow CI machines).
    let stalls = source.stalls.lock().unwrap().clone();
    assert_eq!(stalls.len(), 2);
    let between = stalls[1] - stalls[0];
    assert!(
        between >= Duration::from_secs(2) && between < Duration::from_secs(20),
        "the retry began {between:?} after the first stall"
    );
    assert!(wall < Duration::from_secs(30), "took {wall:?}: {log}");
}

#[test]
fn a_pause_shorter_than_the_speed_window_is_not_cut() {
    let source = LayerServer::start(Stall::Pause(Duration::from_secs(1)));
    let target = TestRegistry::start();
    let seeder = Seeder::for_registry(&target);
    let work = workdir(&source, &target);

    let output = work
        .command()
        .args(["--retries", "0", "--request-timeout", "60s"])
        .args(["--min-speed", "1024", "--min-speed-window", "4s"])
        .timeout(Duration::from_secs(200))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        seeder.manifest_digest("dst/slow", TAG),
        Some(source.image.manifest_digest.clone())
    );
    assert_eq!(source.layer_gets.load(Ordering::SeqCst), 1, "not retried");
}
