//! Entry points for fuzz targets and format tests. Hidden from the docs: not a stable API.
//!
//! Each fuzz target in `fuzz/` is a thin wrapper over one function here, so `cargo test`
//! can replay the saved corpus through exactly the code the fuzzer ran.

use crate::dedup::{DedupWindow, IMAGE_HEADER_LEN};
use crate::format;

/// The format's structures and public constants, for tests that check the encoders against
/// the byte tables of `format-spec/FORMAT.md` (`tests/tidy.rs`).
pub use crate::format::{
    decode_image, encode_image, Block, CommitSlot, EventFrame, Footer, ImageHead, Manifest,
    ManifestEntry, SegmentHeader, StoreMeta, Summary, BLOCK_LEN, CHECKPOINT_SLOTS,
    CHECKPOINT_STRIDE, COMMIT_SLOT_LEN, FOOTER_MAGIC, FORMAT_VERSION, FRAME_HEADER_LEN, META_LEN,
    SEGMENT_HEADER_LEN, SLOT_OFFSETS,
};

// The format constants that are private to `format`, copied out for `tests/tidy.rs`, which
// checks them against the byte tables of `format-spec/FORMAT.md`.
/// First eight bytes of `selflog.meta`.
pub const META_MAGIC: &[u8; 8] = format::META_MAGIC;
/// First eight bytes of a segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = format::SEGMENT_MAGIC;
/// Length of the segment header's fixed part.
pub const FIXED_HEADER_LEN: usize = format::FIXED_HEADER_LEN;
/// Commit slot flag: sealed.
pub const SLOT_FLAG_SEALED: u32 = format::SLOT_FLAG_SEALED;
/// Bits of a frame's flags byte that hold its kind.
pub const KIND_MASK: u8 = format::KIND_MASK;
/// Frame kind: event.
pub const KIND_EVENT: u8 = format::KIND_EVENT;
/// Frame kind: string definition.
pub const KIND_STRING: u8 = format::KIND_STRING;
/// Frame flag: the payload is LZ4.
pub const FLAG_LZ4: u8 = format::FLAG_LZ4;
/// Frame flag: `action_ref` is present.
pub const FLAG_ACTION: u8 = format::FLAG_ACTION;
/// Frame flag: a payload is present.
pub const FLAG_DATA: u8 = format::FLAG_DATA;
/// Every frame flag bit version 1 gives a meaning.
pub const FLAGS_KNOWN: u8 = format::FLAGS_KNOWN;
/// Footer bytes outside its sections.
pub const FOOTER_FIXED_LEN: usize = format::FOOTER_FIXED_LEN;
/// Bytes of a footer section before its body.
pub const SECTION_HEADER_LEN: usize = format::SECTION_HEADER_LEN;
/// Length of the summary section's body.
pub const SUMMARY_LEN: usize = format::SUMMARY_LEN;
/// Length of one entry of a counts section.
pub const TYPE_COUNT_LEN: usize = format::TYPE_COUNT_LEN;
/// First eight bytes of a segment manifest.
pub const MANIFEST_MAGIC: &[u8; 8] = format::MANIFEST_MAGIC;
/// The segment manifest's own version.
pub const MANIFEST_VERSION: u32 = format::MANIFEST_VERSION;
/// Bytes of the manifest before its first entry.
pub const MANIFEST_HEADER_LEN: usize = format::MANIFEST_HEADER_LEN;
/// Bytes of one manifest entry.
pub const MANIFEST_ENTRY_LEN: usize = format::MANIFEST_ENTRY_LEN;
/// Manifest header flag: the high-water is exact.
pub const MANIFEST_FLAG_EXACT: u32 = format::MANIFEST_FLAG_EXACT;
/// Manifest entry flag: sealed.
pub const ENTRY_FLAG_SEALED: u32 = format::ENTRY_FLAG_SEALED;
/// First eight bytes of a segment's index image.
pub const IMAGE_MAGIC: &[u8; 8] = format::IMAGE_MAGIC;
/// The index image's own version.
pub const IMAGE_VERSION: u32 = format::IMAGE_VERSION;
/// Bytes of an index image before its index.
pub const IMAGE_HEAD_LEN: usize = format::IMAGE_HEAD_LEN;
/// Index image flag: written by a clean close.
pub const IMAGE_FLAG_CLEAN: u32 = format::IMAGE_FLAG_CLEAN;
/// File name of the segment manifest in a store directory.
pub const MANIFEST_FILE: &str = crate::manifest::MANIFEST_FILE;
/// Footer section kinds, with the names `format-spec/FORMAT.md#footer` gives them.
pub const SECTION_KINDS: [(u16, &str); 8] = [
    (format::SECTION_SUMMARY, "summary"),
    (format::SECTION_STRINGS, "strings"),
    (format::SECTION_BLOCKS, "blocks"),
    (format::SECTION_TYPE_COUNTS, "type counts"),
    (format::SECTION_POSTINGS, "postings"),
    (format::SECTION_SOURCE_COUNTS, "source counts"),
    (format::SECTION_ACTION_COUNTS, "action counts"),
    (format::SECTION_CHECKPOINTS, "checkpoints"),
];

/// Encodes any event frame, compressed ones included.
pub fn encode_event_frame_with(f: &EventFrame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; f.encoded_len()];
    format::encode_event(&mut out, f);
    out
}

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
    let checked = format::decode_frame(bytes);
    accepted += usize::from(matches!(checked, Ok(Some(_))));
    // The unchecked peeks that skip and filter frames agree with the checked decode on
    // every frame it accepts.
    if let Ok(Some((frame, len))) = checked {
        let head = match &frame {
            format::Frame::Event(f) => Some(format::FrameHead::from(f)),
            format::Frame::StringDef { .. } => None,
        };
        assert_eq!(format::peek_head(bytes), Some((head, len)));
        assert_eq!(format::peek_frame(bytes).map(|(_, l)| l), Some(len));
        let compressed = matches!(&frame, format::Frame::Event(f) if f.raw_len.is_some());
        assert_eq!(format::peek_compressed(bytes), Some((compressed, len)));
    } else {
        let _ = format::peek_head(bytes);
        let _ = format::peek_frame(bytes);
        let _ = format::peek_compressed(bytes);
    }
    // A query matches on the lean decode and releases after checking the checksum alone:
    // wherever the lean decode answers, the full unchecked decode gives the same frame,
    // and a matching checksum makes it the checked decode's.
    if let Some((f, len)) = format::peek_event(bytes) {
        let full = format::decode_frame_unchecked(bytes).ok().flatten();
        assert_eq!(full, Some((format::Frame::Event(f), len)));
        if format::checksum_matches(bytes) {
            assert_eq!(
                format::decode_frame(bytes).ok().flatten(),
                Some((format::Frame::Event(f), len))
            );
        }
    }
    // The checksum test alone agrees with the checked decode's.
    let crc_ok = format::checksum_matches(bytes);
    match format::decode_frame(bytes) {
        Ok(Some(_)) => assert!(crc_ok, "a frame the checked decode accepts"),
        Err(e) if e.kind == format::DecodeKind::Checksum => assert!(!crc_ok),
        _ => {}
    }
    accepted += usize::from(SegmentHeader::decode(bytes).is_ok());
    accepted += usize::from(format::CommitSlot::newest(bytes).is_ok());
    accepted += usize::from(Footer::decode(bytes).is_ok());
    accepted += usize::from(format::StoreMeta::decode(bytes).is_ok());
    accepted
}

/// Rewrites the checkpoints in the footer of the sealed segment `segment` (a whole file's
/// bytes) through `edit`, under a valid checksum: what a writer bug would leave, for tests
/// of what readers and `verify` make of it. Returns false (and changes nothing) unless the
/// segment is sealed, its footer has checkpoints and `edit` keeps their number.
pub fn rewrite_checkpoints(segment: &mut [u8], edit: impl FnOnce(&mut Vec<u16>)) -> bool {
    let Ok(slot) = format::CommitSlot::newest(segment) else {
        return false;
    };
    let Ok(start) = usize::try_from(slot.committed_len) else {
        return false;
    };
    let Some(rest) = segment.get(start..) else {
        return false;
    };
    let Ok(len) = Footer::peek_len(rest) else {
        return false;
    };
    let Some(Ok(mut footer)) = rest.get(..len).map(Footer::decode) else {
        return false;
    };
    if !slot.sealed {
        return false;
    }
    let Some(points) = footer.checkpoints.as_mut() else {
        return false;
    };
    edit(points);
    let bytes = footer.encode();
    if bytes.len() != len {
        return false;
    }
    segment[start..start + len].copy_from_slice(&bytes);
    true
}

/// Parses one JSON Lines input line; never panics.
pub fn parse_ingest_line(bytes: &[u8]) -> bool {
    crate::jsonl::parse_line(bytes).is_ok()
}

/// Puts `bytes` as the only segment of an otherwise valid store, then opens it read-only
/// (scan, get, stats), verifies it, opens it for writing (recovery), appends, and verifies
/// again. Each step may report damage; none may panic.
pub fn open_arbitrary_segment(bytes: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "selflog-fuzz-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let meta = format::StoreMeta {
        version: format::FORMAT_VERSION,
        created_us: 0,
    };
    let _ = std::fs::write(dir.join(crate::META_FILE), meta.encode());
    let _ = std::fs::write(dir.join("events-00000001.seg"), bytes);
    exercise(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn exercise(dir: &std::path::Path) {
    use crate::{Config, Event, EventId, Store, Timestamp};
    if let Ok(store) = Store::open_read_only(dir) {
        if let Ok(scan) = store.scan() {
            for e in scan.take(10_000) {
                if e.is_err() {
                    break;
                }
            }
        }
        let _ = store.get(EventId(1));
        let _ = store.stats();
    }
    let _ = crate::verify(dir);
    let config = Config {
        segment_len: crate::SEGMENT_LEN_MIN,
        data_len_max: 1024,
        ..Config::default()
    };
    if let Ok(store) = Store::open(dir, config) {
        if let Ok(event) = Event::new(Timestamp(1_732_460_000_000_000), "t", None, "s", None) {
            let _ = store.append(event);
            let _ = store.flush();
        }
        if let Ok(scan) = store.scan() {
            for e in scan.take(10_000) {
                if e.is_err() {
                    break;
                }
            }
        }
        let _ = store.close();
    }
    let _ = crate::verify(dir);
}

/// Reads arbitrary bytes as a dedup window image and uses an accepted window; nothing may
/// panic or loop forever. `bytes` is taken as the image of a 64-event window, resized to
/// its length and with both checksums made to match, so that the checks behind them are
/// reached; an accepted window is then used as a store uses it. Returns whether it was
/// accepted.
pub fn read_dedup_image(bytes: &[u8]) -> bool {
    const CAPACITY: usize = 64;
    let len = DedupWindow::new(CAPACITY).image_len();
    let mut b = bytes.to_vec();
    b.resize(len, 0);
    let crc = crate::format::crc32(&[&b[0..60]]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    let crc = crate::format::crc32(&[&b[IMAGE_HEADER_LEN..len - 4]]);
    b[len - 4..].copy_from_slice(&crc.to_le_bytes());
    let Ok((mut w, header)) = DedupWindow::read_image(CAPACITY, len as u64, &mut &b[..]) else {
        return false;
    };
    // Keys from the image's own entries (they hit) and others (they miss), looked up and
    // inserted under new ids: every walk must end, nothing may panic.
    let keys: Vec<u64> = b[IMAGE_HEADER_LEN..len - 4]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    for (i, &k) in keys.iter().enumerate() {
        let _ = w.candidate(k);
        w.insert(k.rotate_left(32), header.newest + 1 + i as u64);
        let _ = w.candidate(k.rotate_left(32));
    }
    true
}

/// A compressed block of a compacted segment, from arbitrary bytes: the first 4 bytes
/// (little-endian, modulo 2^20) are the packed length the block table claims, the rest the
/// stored zstd frame. It is decompressed into a buffer of exactly that length (never more,
/// whatever the frame declares) and its rows expanded; the rest is also expanded directly
/// as packed rows, and read as a block filter. Nothing may panic or allocate beyond the
/// claim. Returns whether the block decompressed and expanded.
pub fn expand_compressed_block(bytes: &[u8]) -> bool {
    let Some((claim, rest)) = bytes.split_first_chunk::<4>() else {
        return false;
    };
    let packed_len = (u32::from_le_bytes(*claim) % (1 << 20)) as usize;
    let strings: Vec<std::sync::Arc<str>> = ["file_op", "Finder", "modified"]
        .into_iter()
        .map(std::sync::Arc::from)
        .collect();
    let cx = format::ExpandContext {
        base_id: 1,
        base_timestamp_us: 1_732_460_000_000_000,
        strings: &strings,
        strings_before: 0,
        hash: crate::packed::hash_fields,
    };
    let mut out = Vec::new();
    let _ = format::expand_block(rest, &cx, &mut out);
    if let Some(probe) = crate::packed::filter::FilterProbe::new(b"zqxjv") {
        let _ = crate::packed::filter::may_contain(rest, &probe);
    }
    let _ = crate::packed::filter::check(rest);
    let Ok(packed) = crate::packed::decompress(rest, packed_len, None) else {
        return false;
    };
    out.clear();
    format::expand_block(&packed, &cx, &mut out).is_ok()
}

/// The block filter's builder (`packed::filter`), reachable from benchmarks of compaction's
/// per-payload cost.
pub struct BlockFilterBuilder(crate::packed::filter::FilterBuilder);

impl BlockFilterBuilder {
    /// An empty builder.
    pub fn new() -> BlockFilterBuilder {
        BlockFilterBuilder(crate::packed::filter::FilterBuilder::new())
    }

    /// Adds the trigrams of one payload.
    pub fn add(&mut self, text: &[u8]) {
        self.0.add(text);
    }

    /// Distinct trigrams added since the last finish.
    pub fn distinct(&self) -> usize {
        self.0.distinct()
    }

    /// Appends the encoded filter to `out` and starts the next group.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        self.0.finish_into(out);
    }
}

impl Default for BlockFilterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The trigram probes of a search text (`packed::filter`), for benchmarks of the reader.
pub struct BlockFilterProbe(crate::packed::filter::FilterProbe);

impl BlockFilterProbe {
    /// The probes of `needle`; None for a needle under three bytes.
    pub fn new(needle: &[u8]) -> Option<BlockFilterProbe> {
        crate::packed::filter::FilterProbe::new(needle).map(BlockFilterProbe)
    }

    /// Whether `filter` may hold a payload containing the needle, or why its bytes are
    /// refused.
    pub fn may_contain(&self, filter: &[u8]) -> Result<bool, &'static str> {
        crate::packed::filter::may_contain(filter, &self.0)
    }
}

/// Reads arbitrary bytes as a block filter, and builds one from them: nothing may panic, the
/// readers must agree, and a filter must let through every text its own payloads contain.
///
/// The first byte, modulo 16, is the length of a search text taken from the bytes after it;
/// the remaining bytes are read as an encoded filter (`check`, `may_contain`, `filter_len`)
/// and, split at newlines, used as the payloads of a group whose filter is then built and
/// probed. Returns whether the bytes were accepted as a filter.
pub fn read_block_filter(bytes: &[u8]) -> bool {
    use crate::packed::filter::{check, filter_len, may_contain, FilterBuilder, FilterProbe};
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    let needle_len = usize::from(first % 16).min(rest.len());
    let (needle, filter) = rest.split_at(needle_len);
    let checked = check(filter);
    let len = filter_len(filter);
    if checked.is_ok() {
        assert_eq!(
            len,
            Ok(filter.len()),
            "a checked filter's header gives its length"
        );
    }
    let probe = FilterProbe::new(needle);
    if let Some(probe) = &probe {
        let answer = may_contain(filter, probe);
        match checked {
            Ok(()) => assert!(answer.is_ok(), "check and may_contain agree"),
            Err("filter has bits but none set") => assert_eq!(answer, Ok(false)),
            Err(reason) => assert_eq!(answer, Err(reason), "check and may_contain agree"),
        }
    }
    let mut builder = FilterBuilder::new();
    let payloads: Vec<&[u8]> = filter.split(|&b| b == b'\n').collect();
    for p in &payloads {
        builder.add(p);
    }
    let mut built = Vec::new();
    builder.finish_into(&mut built);
    assert_eq!(
        check(&built),
        Ok(()),
        "the builder's own filter is well formed"
    );
    if let Some(probe) = &probe {
        let matcher = crate::text::TextMatcher::new(&String::from_utf8_lossy(needle));
        let exact = String::from_utf8_lossy(needle).as_bytes() == needle;
        if exact && payloads.iter().any(|p| matcher.is_match(p)) {
            assert_eq!(may_contain(&built, probe), Ok(true), "no false negative");
        }
    }
    checked.is_ok()
}

/// The layout record of a compacted segment's header (bytes 176..256) with these fields in
/// the spec's order: `logical_len`, `dict_offset`, `dict_len`, `block_count`,
/// `table_offset`, `table_crc`, `dict_crc`, `filter_table_offset`, `filter_count`,
/// `filter_table_crc`, `level` (values are truncated to each field's width).
#[expect(
    clippy::cast_possible_truncation,
    reason = "test values, truncated by design"
)]
pub fn encode_layout_record(v: [u64; 11]) -> Vec<u8> {
    format::Layout {
        logical_len: v[0],
        dict_offset: v[1],
        dict_len: v[2] as u32,
        block_count: v[3] as u32,
        table_offset: v[4],
        table_crc: v[5] as u32,
        dict_crc: v[6] as u32,
        filter_table_offset: v[7],
        filter_count: v[8] as u32,
        filter_table_crc: v[9] as u32,
        level: v[10] as i32,
    }
    .encode()
    .to_vec()
}

/// One block table entry of a compacted segment, fields in the spec's order.
#[expect(
    clippy::cast_possible_truncation,
    reason = "test values, truncated by design"
)]
pub fn encode_block_table_entry(v: [u64; 8]) -> Vec<u8> {
    let mut out = Vec::new();
    format::TableEntry {
        logical_start: v[0],
        stored_offset: v[1],
        logical_len: v[2] as u32,
        packed_len: v[3] as u32,
        stored_len: v[4] as u32,
        strings_before: v[5] as u32,
        stored_crc: v[6] as u32,
        logical_crc: v[7] as u32,
    }
    .encode_into(&mut out);
    out
}

/// One filter table entry of a compacted segment, fields in the spec's order.
#[expect(
    clippy::cast_possible_truncation,
    reason = "test values, truncated by design"
)]
pub fn encode_filter_table_entry(v: [u64; 5]) -> Vec<u8> {
    let mut out = Vec::new();
    format::FilterEntry {
        first_block: v[0] as u32,
        block_count: v[1] as u32,
        offset: v[2],
        len: v[3] as u32,
        crc: v[4] as u32,
    }
    .encode_into(&mut out);
    out
}
