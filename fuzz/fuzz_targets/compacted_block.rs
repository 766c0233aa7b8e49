//! A compacted segment's compressed block: bounded zstd decompression into the length the
//! block table claims, then the packed rows expanded into frames; also the bytes as packed
//! rows and as a block filter. None may panic or allocate past the claim.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    selflog::fuzzing::expand_compressed_block(data);
});
