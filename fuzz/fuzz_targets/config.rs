//! Any text as a config file: parsing and validation report errors, never
//! panic; an accepted config prints and reads back the same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = caxton::config::Config::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = config.validate();
    let _ = caxton::config::Config::resolve(None, [("CAXTON_SERVER__PORT".to_owned(), text.chars().take(8).collect())]);
});
