//! Every on-disk decoder (frame, segment header, commit slots, footer, store meta) over
//! arbitrary bytes: none may panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    selflog::fuzzing::decode_everything(data);
});
