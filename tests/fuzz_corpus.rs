//! Replays every saved fuzz input (seed corpus and crash inputs under `fuzz/corpus/`)
//! through the same `selflog::fuzzing` functions the fuzz targets call, so a decoder bug
//! found by the fuzzer stays fixed without a nightly toolchain.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus for {target}");
    out
}

#[test]
fn decoders_corpus_replays_without_panic() {
    for (name, bytes) in inputs("decoders") {
        let accepted = selflog::fuzzing::decode_everything(&bytes);
        assert!(accepted <= 5, "{name}");
    }
}

#[test]
fn ingest_line_corpus_replays_without_panic() {
    let mut parsed = 0;
    for (_, bytes) in inputs("ingest_line") {
        parsed += usize::from(selflog::fuzzing::parse_ingest_line(&bytes));
    }
    assert!(parsed > 0, "the seed corpus includes valid lines");
}

#[test]
fn segment_corpus_replays_without_panic() {
    for (_, bytes) in inputs("segment") {
        selflog::fuzzing::open_arbitrary_segment(&bytes);
    }
}

#[test]
fn dedup_image_corpus_replays_without_panic() {
    let accepted = inputs("dedup_image")
        .iter()
        .filter(|(_, bytes)| selflog::fuzzing::read_dedup_image(bytes))
        .count();
    assert!(
        accepted >= 2,
        "the seed corpus includes images a store wrote"
    );
}

/// Every single changed byte of a store's image either is refused or leaves a window that
/// works (the fuzz target's promise, checked exhaustively on one image).
#[test]
fn every_changed_byte_of_a_dedup_image_is_refused_or_harmless() {
    let (_, image) = inputs("dedup_image")
        .into_iter()
        .find(|(name, _)| name.ends_with("window-64-crowded"))
        .unwrap();
    for at in 0..image.len() {
        for bit in [0x01, 0x10, 0x80] {
            let mut b = image.clone();
            b[at] ^= bit;
            selflog::fuzzing::read_dedup_image(&b);
        }
    }
}

#[test]
fn compacted_block_corpus_replays_without_panic() {
    let expanded = inputs("compacted_block")
        .iter()
        .filter(|(_, bytes)| selflog::fuzzing::expand_compressed_block(bytes))
        .count();
    assert!(
        expanded >= 1,
        "the seed corpus includes a block that expands"
    );
}

#[test]
fn block_filter_corpus_replays_without_panic() {
    let accepted = inputs("block_filter")
        .iter()
        .filter(|(_, bytes)| selflog::fuzzing::read_block_filter(bytes))
        .count();
    assert!(
        accepted >= 3,
        "the seed corpus includes well-formed filters"
    );
}

/// Every flipped bit of a well-formed filter (header, bits and probe text) is refused or
/// answered, never a panic, and the readers agree (the fuzz target's promise, checked
/// exhaustively on one filter).
#[test]
fn every_flipped_bit_of_a_block_filter_is_refused_or_harmless() {
    let (_, seed) = inputs("block_filter")
        .into_iter()
        .find(|(name, _)| name.ends_with("filter-chrome"))
        .unwrap();
    assert!(selflog::fuzzing::read_block_filter(&seed));
    for at in 0..seed.len() {
        for bit in 0..8 {
            let mut b = seed.clone();
            b[at] ^= 1 << bit;
            selflog::fuzzing::read_block_filter(&b);
        }
    }
}
