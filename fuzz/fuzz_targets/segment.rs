//! Recovery, reading and verify over an arbitrary segment file: each may report damage,
//! none may panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    selflog::fuzzing::open_arbitrary_segment(data);
});
