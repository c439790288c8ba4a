//! images.json: loading any file content never panics (errors are fine).
#![no_main]

use image_migrator::config::{Defaults, images};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = std::env::temp_dir().join(format!("fuzz-images-{}.json", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let _ = images::load(&path, &Defaults::default(), &|_| None);
});
