//! The JSON Lines ingest parser over arbitrary bytes: it may reject, never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    selflog::fuzzing::parse_ingest_line(data);
});
