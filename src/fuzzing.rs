//! Entry points for fuzz targets and format tests. Hidden from the docs: not a stable API.
//!
//! Each fuzz target in `fuzz/` is a thin wrapper over one function here, so `cargo test`
//! can replay the saved corpus through exactly the code the fuzzer ran.

use crate::format::{self, EventFrame, Footer, SegmentHeader};

/// Encodes a string-definition frame.
pub fn encode_string_frame(string_ref: u32, text: &str) -> Vec<u8> {
    format::encode_string_def(string_ref, text)
}

/// Encodes an uncompressed event frame from its fields.
pub fn encode_event_frame(
    id_delta: u64,
    ts_delta: i64,
    refs: (u32, u32, Option<u32>),
    hash: u64,
    data: Option<&[u8]>,
) -> Vec<u8> {
    let f = EventFrame {
        id_delta,
        ts_delta,
        type_ref: refs.0,
        source_ref: refs.1,
        action_ref: refs.2,
        hash,
        payload: data,
        raw_len: None,
    };
    let mut out = vec![0u8; f.encoded_len()];
    format::encode_event(&mut out, &f);
    out
}

/// Runs every decoder over arbitrary bytes; none may panic. Returns how many accepted.
pub fn decode_everything(bytes: &[u8]) -> usize {
    let mut accepted = 0;
    accepted += usize::from(matches!(format::decode_frame(bytes), Ok(Some(_))));
    accepted += usize::from(SegmentHeader::decode(bytes).is_ok());
    accepted += usize::from(format::CommitSlot::newest(bytes).is_ok());
    accepted += usize::from(Footer::decode(bytes).is_ok());
    accepted += usize::from(format::StoreMeta::decode(bytes).is_ok());
    accepted
}

/// Parses one JSON Lines input line; never panics.
pub fn parse_ingest_line(bytes: &[u8]) -> bool {
    crate::jsonl::parse_line(bytes).is_ok()
}
