//! `Retry-After` values: never panic, never more than the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &str| {
    if let Some(wait) = image_migrator::http::parse_retry_after(value, std::time::SystemTime::now()) {
        assert!(wait <= std::time::Duration::from_secs(120));
    }
});
