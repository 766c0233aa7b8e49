//! A dedup window image read from arbitrary bytes (checksums made to match, so the checks
//! behind them are what is fuzzed), then used for lookups and inserts: it may be refused,
//! and nothing may panic or loop forever.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    selflog::fuzzing::read_dedup_image(data);
});
