//! A real forward proxy from Debian (tinyproxy) on loopback, with HTTP basic proxy
//! credentials, logging every CONNECT: what corporate runners reach registries through.
//! Stopped (its own process, by pid) when dropped.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "proxyuser";
pub const PASSWORD: &str = "Pr0xy-Secret-Word";

pub struct ForwardProxy {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 120\nLogFile \"{}\"\nLogLevel Connect\n\
                 MaxClients 100\nBasicAuth {USER} {PASSWORD}\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian package tinyproxy; ci/test installs it)");
        let proxy = ForwardProxy { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    /// `http://user:password@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }

    /// The `CONNECT host:port` requests the proxy has served so far.
    pub fn connects(&self) -> Vec<String> {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.log_path()) {
            let _ = file.read_to_string(&mut text);
        }
        text.lines()
            .filter_map(|line| line.split("Request (file descriptor ").nth(1))
            .filter_map(|rest| rest.split("): ").nth(1))
            .filter_map(|request| request.strip_prefix("CONNECT "))
            .map(|rest| rest.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
