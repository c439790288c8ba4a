//! The "object storage" a registry redirects blob downloads to: a plain HTTP server on
//! another port that serves `GET /v2/<repo>/blobs/<digest>` by fetching the blob from
//! the registry itself (with its own credentials), and records every request's headers
//! so a test can assert that no `Authorization` arrived.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

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
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or_default().to_string();
    log.lock().unwrap().push(BlobRequest {
        method: method.clone(),
        path: target.clone(),
        headers,
    });
    // /v2/<repo>/blobs/<digest>
    let blob = path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.rsplit_once("/blobs/"))
        .and_then(|(repo, digest)| origin.get_blob(repo, digest));
    match blob {
        Some(bytes) => {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )?;
            if method != "HEAD" {
                writer.write_all(&bytes)?;
            }
        }
        None => write!(
            writer,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?,
    }
    writer.flush()
}
