//! auth.json: loading any file content never panics (errors are fine).
#![no_main]

use image_migrator::config::AuthConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = std::env::temp_dir().join(format!("fuzz-auth-{}.json", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let _ = AuthConfig::load(&path, &|name| (name == "SET").then(|| "value".to_string()));
});
