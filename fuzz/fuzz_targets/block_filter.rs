//! A block filter read from arbitrary bytes and probed with a search text taken from them,
//! and a filter built from the same bytes as payloads: the readers may refuse, must agree,
//! must not panic, and a built filter must let through every text its payloads contain.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    selflog::fuzzing::read_block_filter(data);
});
