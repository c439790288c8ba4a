//! Image references: never panic; a parsed reference prints to text that parses to it.
#![no_main]

use image_migrator::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(parsed) = Reference::parse(text) {
        let printed = parsed.to_string();
        assert_eq!(Reference::parse(&printed).as_ref(), Ok(&parsed), "{printed}");
    }
    let _ = Reference::parse_normalized(text);
    let _ = image_migrator::reference::Location::parse(text);
    let _ = image_migrator::reference::is_valid_tag(text);
});
