//! `WWW-Authenticate` headers: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    let _ = image_migrator::registry::auth::parse_challenge(header);
});
