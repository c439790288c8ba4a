//! How the tool's TLS connections are made and kept: counted by a TLS front (rustls, the
//! test CA's certificate, two tickets per handshake) before a plain registry, through
//! which each run copies `src/…` repositories into that same registry's `dst/…`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support;

use support::apiserver::Certs;
use support::migrator::{seed_images, text};
use support::registry::TestRegistry;
use support::seed::{Pushed, Seeder};
use support::sync::SyncRun;
use support::tls_front::TlsFront;

/// A registry, a TLS front before it, and the test CA in a file.
struct Fronted {
    registry: TestRegistry,
    seeder: Seeder,
    certs: Certs,
    front: TlsFront,
    dir: tempfile::TempDir,
}

impl Fronted {
    fn start() -> Fronted {
        let registry = TestRegistry::start();
        let seeder = Seeder::for_registry(&registry);
        let certs = Certs::generate();
        let front = TlsFront::start(&registry.host, &certs);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &certs.ca_pem).unwrap();
        Fronted {
            registry,
            seeder,
            certs,
            front,
            dir,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `run` on `proc` workers, trusting the front's CA; it must end with exit code 0.
    fn sync(&self, run: &SyncRun, proc: &str) {
        let output = (run.command())
            .arg("--ca-file")
            .arg(self.ca_file())
            .args(["--proc", proc])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    }

    /// A run copying each `src/…` repository through the front to `dst/…`.
    fn run(&self, repos: &[String]) -> SyncRun {
        let rules: serde_json::Map<String, serde_json::Value> = (repos.iter())
            .map(|repo| {
                let source = format!("{}/{repo}", self.front.host);
                let target = format!("{}/{}", self.registry.host, target_of(repo));
                (source, serde_json::json!(target))
            })
            .collect();
        SyncRun::ci(
            &serde_json::json!({ self.registry.host.as_str(): { "insecure": true } }),
            &serde_json::Value::Object(rules),
        )
    }

    /// Whether every image arrived in its `dst/…` repository, unchanged.
    fn assert_copied(&self, repo: &str, tags: &[&str], images: &[Pushed]) {
        for (tag, image) in tags.iter().zip(images) {
            assert_eq!(
                self.seeder.manifest_digest(&target_of(repo), tag),
                Some(image.manifest_digest.clone())
            );
        }
    }
}

fn target_of(repo: &str) -> String {
    repo.replace("src/", "dst/")
}

/// One TLS configuration per agent: connections after the first resume the TLS session
/// (no certificate chain sent, signed or verified again). With a configuration per
/// connection, as ureq builds them for requests with their own settings, no handshake
/// could resume.
#[test]
fn connections_after_the_first_resume_the_tls_session() {
    let fronted = Fronted::start();
    let tags = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"];
    let images = seed_images(&fronted.seeder, "src/app", &tags, 33, 3000);
    fronted.sync(&fronted.run(&["src/app".to_string()]), "4");
    fronted.assert_copied("src/app", &tags, &images);
    let (full, resumed) = fronted.front.handshakes();
    assert!(full >= 1, "the first connection cannot resume");
    assert!(
        resumed >= 1,
        "{full} connections, none resumed an earlier TLS session"
    );
}

/// The ping's answer (`{}`) is read to its end, so its connection goes back to the pool: a
/// run on one worker talks to the source over one TLS connection, ping, tag list, manifests
/// and blobs alike. (A response dropped unread closes its connection: before, the ping's
/// was, and the tag list paid a second handshake.)
#[test]
fn one_worker_talks_to_the_source_over_one_connection() {
    let fronted = Fronted::start();
    let tags = ["v1", "v2"];
    let images = seed_images(&fronted.seeder, "src/one", &tags, 41, 2000);
    let work = fronted.run(&["src/one".to_string()]);
    for _cold_then_no_op in 0..2 {
        fronted.sync(&work, "1");
    }
    fronted.assert_copied("src/one", &tags, &images);
    assert_eq!(
        fronted.front.handshakes(),
        (2, 0),
        "two runs of one worker: one connection each, the ping's kept for what follows"
    );
}

/// The first ClientHello does not wait for the system's roots: they are needed only when
/// the server's certificate arrives, and are read meanwhile. Here `SSL_CERT_FILE` is a FIFO
/// that gives its bytes only once the front has seen a ClientHello (before, the tool read
/// every root before its first ClientHello, and none came while the FIFO was silent); the
/// certificate is still verified (against `--ca-file`) once the roots are in.
#[test]
fn the_first_client_hello_does_not_wait_for_the_system_roots() {
    let fronted = Fronted::start();
    let images = seed_images(&fronted.seeder, "src/hello", &["v1"], 43, 2000);
    let no_certs = fronted.dir.path().join("no-certs");
    std::fs::create_dir(&no_certs).unwrap();
    let roots = fronted.dir.path().join("roots.pem");
    let path = std::ffi::CString::new(roots.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let work = fronted.run(&["src/hello".to_string()]);
    let mut command = work.std_command();
    command
        .arg("--ca-file")
        .arg(fronted.ca_file())
        .args(["--proc", "1"])
        .env("SSL_CERT_FILE", &roots)
        .env("SSL_CERT_DIR", &no_certs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    let waited = Instant::now();
    while fronted.front.hellos() == 0 && waited.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let hello_before_roots = fronted.front.hellos() > 0;
    // The roots arrive (opening the FIFO waits for its reader, the tool).
    let (pem, fifo) = (fronted.certs.ca_pem.clone(), roots.clone());
    let writer = std::thread::spawn(move || std::fs::write(&fifo, pem));
    let mut status = None;
    for _ in 0..600 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        child.kill().unwrap();
    }
    // A reader of our own, should the tool have ended without opening the FIFO.
    let _unblock = {
        use std::os::unix::fs::OpenOptionsExt;
        let mut open = std::fs::OpenOptions::new();
        open.read(true).custom_flags(libc::O_NONBLOCK).open(&roots)
    };
    writer.join().unwrap().unwrap();
    assert!(
        hello_before_roots,
        "no ClientHello in 20 s while the system's roots could not be read"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    fronted.assert_copied("src/hello", &["v1"], &images);
    assert_eq!(
        fronted.front.handshakes(),
        (1, 0),
        "one connection, verified"
    );
}

/// Connections opened at once wait for the ticket of the handshake under way and resume
/// it: 32 workers listing and copying 32 repositories make one full handshake with the
/// source (the first), every later connection resumes. (Without the wait the connections
/// opened together share the ping's tickets and the rest make full handshakes: 3 to 18
/// in each of nine runs here.) The wait lasts while tickets keep coming, each
/// within 20 ms of the last; a debug build on cores busy with the other tests can stall
/// longer than that, and then the waiters rightly give up and make full handshakes. So the
/// run is made up to three times (the first copies, the others are no-ops that list and
/// ask the same): one of them must open 16 connections or more, all resumed but one or two.
#[test]
fn connections_opened_together_resume_one_after_another() {
    let fronted = Fronted::start();
    let repos: Vec<String> = (0..32).map(|i| format!("src/r{i}")).collect();
    let images: Vec<Vec<Pushed>> = (repos.iter().zip(50u64..))
        .map(|(repo, seed)| seed_images(&fronted.seeder, repo, &["v1"], seed, 1500))
        .collect();
    let run = fronted.run(&repos);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let before = fronted.front.handshakes();
        fronted.sync(&run, "32");
        for (repo, images) in repos.iter().zip(&images) {
            fronted.assert_copied(repo, &["v1"], images);
        }
        let after = fronted.front.handshakes();
        let (full, resumed) = (after.0 - before.0, after.1 - before.1);
        seen.push((full, resumed));
        // Enough connections at once to tell (a run on busy cores may open fewer), and
        // all full but the first (and one more, should a handshake outlast the wait).
        if full + resumed >= 16 && full <= 2 {
            return;
        }
    }
    panic!(
        "(full, resumed) handshakes in each run, none with 16 connections and at most 2 full: {seen:?}"
    );
}
