//! The "object storage" a registry redirects blob downloads to: a plain HTTP server on
//! another port that serves `GET /v2/<repo>/blobs/<digest>` by fetching the blob from
//! the registry itself (with its own credentials), and records every request's headers
//! so a test can assert that no `Authorization` arrived.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::http1::{Request, respond};
use super::seed::Seeder;

/// One request as the blob server saw it.
#[derive(Clone, Debug)]
pub struct BlobRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl BlobRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct BlobServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<Vec<BlobRequest>>>,
}

impl BlobServer {
    /// Serves blobs read through `origin` (a seeder with the registry's credentials).
    pub fn start(origin: Seeder) -> BlobServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let server_log = log.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = server_log.clone();
                let origin = origin.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &origin, &log);
                });
            }
        });
        BlobServer { base, log }
    }

    pub fn requests(&self) -> Vec<BlobRequest> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, origin: &Seeder, log: &Mutex<Vec<BlobRequest>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(request) = Request::read(&mut reader)? else {
        return Ok(());
    };
    log.lock().unwrap().push(BlobRequest {
        method: request.method.clone(),
        path: request.target.clone(),
        headers: request.headers.clone(),
    });
    // /v2/<repo>/blobs/<digest>
    let blob = request
        .path()
        .strip_prefix("/v2/")
        .and_then(|rest| rest.rsplit_once("/blobs/"))
        .and_then(|(repo, digest)| origin.get_blob(repo, digest));
    let with_body = request.method != "HEAD";
    match blob {
        Some(bytes) => respond(
            &mut writer,
            200,
            &[("Content-Type", "application/octet-stream")],
            &bytes,
            with_body,
        ),
        None => respond(&mut writer, 404, &[], b"", with_body),
    }
}
