//! Any text as a manifest: the parser reports problems, never panics, and
//! every problem it places points inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let report = caxton::agents::Manifest::parse_report(text, Path::new("/agents/fuzz.toml"));
    let lines = text.lines().count().max(1) + 1;
    for problem in report.problems.iter().chain(&report.warnings) {
        assert!(problem.line <= lines, "{problem} is past the end of the text");
    }
    assert_eq!(report.manifest.is_some(), report.problems.is_empty());
});
