//! `Link` headers of tag-list pages: never panic; a next link is part of the header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    if let Some(next) = image_migrator::registry::next_link(header) {
        assert!(header.contains(next));
    }
});
