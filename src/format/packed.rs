//! The compacted (version 2) segment's own structures: the layout record in the header's
//! last 80 bytes, the block table, and the packed rows a compressed block holds, with their
//! expansion back into version-1 frames. `format-spec/FORMAT.md#compacted-segments`
//!
//! A compacted segment stores the same frames as the sealed segment it replaced, but
//! without what can be recomputed: the per-frame length and CRC, and the content hash.
//! Ids and timestamps are stored as steps from the previous event of the block, which
//! compresses far better than offsets from the segment's base. Expanding a block gives
//! back exactly the bytes of version-1 frames (with every payload uncompressed), so every
//! reader of frames works on them unchanged.

use super::{
    crc32, push_varint, zigzag_encode, DecodeError, Reader, FLAGS_KNOWN, FLAG_ACTION, FLAG_DATA,
    FLAG_LZ4, KIND_EVENT, KIND_MASK, KIND_STRING, SEGMENT_HEADER_LEN,
};

/// The segment version of a compacted segment.
pub const PACKED_VERSION: u32 = 2;
/// Where the layout record starts in the segment header.
pub const LAYOUT_OFFSET: usize = 176;
/// Length of the layout record, its CRC included.
pub const LAYOUT_LEN: usize = 80;
/// Length of one block table entry.
pub const TABLE_ENTRY_LEN: usize = 40;
/// Length of one filter table entry.
pub const FILTER_ENTRY_LEN: usize = 24;
/// Largest logical or packed length of one block a reader accepts: it bounds what a
/// reader allocates for a block before checking anything inside it.
pub const BLOCK_LEN_MAX: u32 = 1 << 26;
/// Largest dictionary a reader accepts.
pub const DICT_LEN_MAX: u32 = 1 << 20;
/// A string definition's text is at most this long (as in version 1).
const STRING_LEN_MAX: u64 = 1024;

/// Where the parts of a compacted segment are, from the header's layout record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// End of the logical frames: the committed length of the expanded segment.
    pub logical_len: u64,
    /// File offset of the zstd dictionary.
    pub dict_offset: u64,
    /// Its length in bytes.
    pub dict_len: u32,
    /// Number of compressed blocks.
    pub block_count: u32,
    /// File offset of the block table (`block_count` entries).
    pub table_offset: u64,
    /// CRC of the block table.
    pub table_crc: u32,
    /// CRC of the dictionary.
    pub dict_crc: u32,
    /// File offset of the filter table (`filter_count` entries); 0 when there is none.
    pub filter_table_offset: u64,
    /// Number of block filters.
    pub filter_count: u32,
    /// CRC of the filter table.
    pub filter_table_crc: u32,
    /// The zstd level the blocks were compressed with (information only).
    pub level: i32,
}

impl Layout {
    /// Encodes the record (bytes 176..256 of the header).
    pub fn encode(&self) -> [u8; LAYOUT_LEN] {
        let mut b = [0u8; LAYOUT_LEN];
        b[0..8].copy_from_slice(&self.logical_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.dict_offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.dict_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.block_count.to_le_bytes());
        b[24..32].copy_from_slice(&self.table_offset.to_le_bytes());
        b[32..36].copy_from_slice(&self.table_crc.to_le_bytes());
        b[36..40].copy_from_slice(&self.dict_crc.to_le_bytes());
        b[40..48].copy_from_slice(&self.filter_table_offset.to_le_bytes());
        b[48..52].copy_from_slice(&self.filter_count.to_le_bytes());
        b[52..56].copy_from_slice(&self.filter_table_crc.to_le_bytes());
        b[56..60].copy_from_slice(&self.level.to_le_bytes());
        let crc = crc32(&[&b[..76]]);
        b[76..80].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the record from the 80 bytes at header offset 176, checking its CRC, its
    /// reserved bytes and that every part lies within `file_len` bytes after the header.
    ///
    /// # Errors
    /// A [`DecodeError`] with offsets relative to the record.
    pub fn decode(b: &[u8], file_len: u64) -> Result<Layout, DecodeError> {
        let mut r = Reader::new(b);
        let logical_len = r.u64("logical_len")?;
        let dict_offset = r.u64("dict_offset")?;
        let dict_len = r.u32("dict_len")?;
        let block_count = r.u32("block_count")?;
        let table_offset = r.u64("table_offset")?;
        let table_crc = r.u32("table_crc")?;
        let dict_crc = r.u32("dict_crc")?;
        let filter_table_offset = r.u64("filter_table_offset")?;
        let filter_count = r.u32("filter_count")?;
        let filter_table_crc = r.u32("filter_table_crc")?;
        let level = r.u32("level")?.cast_signed();
        let reserved = r.take(16, "reserved")?;
        let crc = r.u32("layout_crc")?;
        if crc != crc32(&[&b[..76]]) {
            return Err(DecodeError::checksum(76, "layout record checksum mismatch"));
        }
        if reserved.iter().any(|&x| x != 0) {
            return Err(DecodeError::new(60, "reserved bytes set in layout record"));
        }
        let header = SEGMENT_HEADER_LEN as u64;
        let within = |offset: u64, len: u64| {
            offset >= header && offset.checked_add(len).is_some_and(|end| end <= file_len)
        };
        if logical_len < header {
            return Err(DecodeError::new(0, "logical length inside the header"));
        }
        if dict_len > DICT_LEN_MAX || !within(dict_offset, u64::from(dict_len)) {
            return Err(DecodeError::new(8, "dictionary outside the file"));
        }
        if !within(
            table_offset,
            u64::from(block_count) * TABLE_ENTRY_LEN as u64,
        ) {
            return Err(DecodeError::new(24, "block table outside the file"));
        }
        if filter_count > 0
            && !within(
                filter_table_offset,
                u64::from(filter_count) * FILTER_ENTRY_LEN as u64,
            )
        {
            return Err(DecodeError::new(40, "filter table outside the file"));
        }
        Ok(Layout {
            logical_len,
            dict_offset,
            dict_len,
            block_count,
            table_offset,
            table_crc,
            dict_crc,
            filter_table_offset,
            filter_count,
            filter_table_crc,
            level,
        })
    }
}

/// One compressed block: where its logical frames are and where its bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableEntry {
    /// Logical offset of the block's first frame.
    pub logical_start: u64,
    /// File offset of the stored (compressed) bytes.
    pub stored_offset: u64,
    /// Bytes of the block's expanded frames.
    pub logical_len: u32,
    /// Bytes of its packed rows (what the stored bytes decompress to).
    pub packed_len: u32,
    /// Bytes stored.
    pub stored_len: u32,
    /// String definitions before the block in the segment.
    pub strings_before: u32,
    /// CRC of the stored bytes.
    pub stored_crc: u32,
    /// CRC of the expanded frames.
    pub logical_crc: u32,
}

impl TableEntry {
    /// Appends the 40-byte entry to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.logical_start.to_le_bytes());
        out.extend_from_slice(&self.stored_offset.to_le_bytes());
        out.extend_from_slice(&self.logical_len.to_le_bytes());
        out.extend_from_slice(&self.packed_len.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.strings_before.to_le_bytes());
        out.extend_from_slice(&self.stored_crc.to_le_bytes());
        out.extend_from_slice(&self.logical_crc.to_le_bytes());
    }

    /// Decodes the whole block table `b` of `layout`, checking its CRC, that the blocks
    /// tile the logical frames `256..logical_len` in order, that every stored range lies
    /// in the file before the table, and every length bound.
    ///
    /// # Errors
    /// A [`DecodeError`] with offsets relative to the table.
    pub fn decode_table(b: &[u8], layout: &Layout) -> Result<Vec<TableEntry>, DecodeError> {
        let count = layout.block_count as usize;
        if b.len() != count * TABLE_ENTRY_LEN {
            return Err(DecodeError::new(
                0,
                "block table length disagrees with its count",
            ));
        }
        if crc32(&[b]) != layout.table_crc {
            return Err(DecodeError::checksum(0, "block table checksum mismatch"));
        }
        let mut r = Reader::new(b);
        let mut out = Vec::with_capacity(count);
        let mut logical = SEGMENT_HEADER_LEN as u64;
        for i in 0..count {
            let at = i * TABLE_ENTRY_LEN;
            let e = TableEntry {
                logical_start: r.u64("logical_start")?,
                stored_offset: r.u64("stored_offset")?,
                logical_len: r.u32("logical_len")?,
                packed_len: r.u32("packed_len")?,
                stored_len: r.u32("stored_len")?,
                strings_before: r.u32("strings_before")?,
                stored_crc: r.u32("stored_crc")?,
                logical_crc: r.u32("logical_crc")?,
            };
            if e.logical_start != logical {
                return Err(DecodeError::new(at, "blocks do not follow each other"));
            }
            if e.logical_len == 0 || e.logical_len > BLOCK_LEN_MAX || e.packed_len > BLOCK_LEN_MAX {
                return Err(DecodeError::new(at + 16, "block length out of bounds"));
            }
            let stored_end = e.stored_offset.checked_add(u64::from(e.stored_len));
            if e.stored_offset < SEGMENT_HEADER_LEN as u64
                || stored_end.is_none_or(|end| end > layout.table_offset)
            {
                return Err(DecodeError::new(at + 8, "stored block outside the file"));
            }
            logical += u64::from(e.logical_len);
            out.push(e);
        }
        if logical != layout.logical_len {
            return Err(DecodeError::new(
                b.len(),
                "blocks do not end at the logical length",
            ));
        }
        Ok(out)
    }
}

/// One block filter's place: it covers blocks `first_block..first_block + block_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterEntry {
    /// First block covered.
    pub first_block: u32,
    /// Blocks covered.
    pub block_count: u32,
    /// File offset of the encoded filter.
    pub offset: u64,
    /// Its length.
    pub len: u32,
    /// CRC of the encoded filter.
    pub crc: u32,
}

impl FilterEntry {
    /// Appends the 24-byte entry to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_block.to_le_bytes());
        out.extend_from_slice(&self.block_count.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }

    /// Decodes the filter table `b` of `layout`: CRC checked, filters covering the blocks in
    /// order without overlap, each within the file before the block table.
    ///
    /// # Errors
    /// A [`DecodeError`] with offsets relative to the table.
    pub fn decode_table(b: &[u8], layout: &Layout) -> Result<Vec<FilterEntry>, DecodeError> {
        let count = layout.filter_count as usize;
        if b.len() != count * FILTER_ENTRY_LEN {
            return Err(DecodeError::new(
                0,
                "filter table length disagrees with its count",
            ));
        }
        if crc32(&[b]) != layout.filter_table_crc {
            return Err(DecodeError::checksum(0, "filter table checksum mismatch"));
        }
        let mut r = Reader::new(b);
        let mut out = Vec::with_capacity(count);
        let mut next_block = 0u64;
        for i in 0..count {
            let at = i * FILTER_ENTRY_LEN;
            let e = FilterEntry {
                first_block: r.u32("first_block")?,
                block_count: r.u32("block_count")?,
                offset: r.u64("filter offset")?,
                len: r.u32("filter len")?,
                crc: r.u32("filter crc")?,
            };
            let end = u64::from(e.first_block) + u64::from(e.block_count);
            if u64::from(e.first_block) < next_block
                || e.block_count == 0
                || end > u64::from(layout.block_count)
            {
                return Err(DecodeError::new(at, "filters overlap or cover no block"));
            }
            let stored_end = e.offset.checked_add(u64::from(e.len));
            if e.offset < SEGMENT_HEADER_LEN as u64
                || stored_end.is_none_or(|x| x > layout.table_offset)
            {
                return Err(DecodeError::new(at + 8, "filter outside the file"));
            }
            next_block = end;
            out.push(e);
        }
        Ok(out)
    }
}

/// What expanding a block needs from the segment: its base id and timestamp, the
/// dictionary strings in reference order, and the string definitions before the block.
pub struct ExpandContext<'a> {
    /// The header's `base_id`.
    pub base_id: u64,
    /// The header's `base_timestamp_us`.
    pub base_timestamp_us: i64,
    /// The segment's dictionary (the footer's strings section).
    pub strings: &'a [std::sync::Arc<str>],
    /// The block's `strings_before`.
    pub strings_before: u32,
    /// The content hash of (timestamp, type, action, source, data): the caller's, so that
    /// this module stays below the event module. `format-spec/FORMAT.md#content-hash`
    pub hash: ContentHash,
}

/// The content hash function [`expand_block`] recomputes stored hashes with.
pub type ContentHash = fn(i64, &str, Option<&str>, &str, Option<&str>) -> u64;

/// Appends the packed row of a string definition.
pub fn pack_string_def(out: &mut Vec<u8>, string_ref: u32, text: &str) {
    out.push(KIND_STRING);
    push_varint(out, u64::from(string_ref));
    push_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// The packing state of one block: the previous event's id and timestamp offsets.
#[derive(Debug, Default)]
pub struct Packer {
    prev_id_delta: u64,
    prev_ts_delta: i64,
    first: bool,
}

impl Packer {
    /// A packer at the start of a block.
    pub fn new() -> Packer {
        Packer {
            first: true,
            ..Packer::default()
        }
    }

    /// Appends the packed row of an event whose data (if any) is the uncompressed `data`.
    pub fn event(
        &mut self,
        out: &mut Vec<u8>,
        id_delta: u64,
        ts_delta: i64,
        refs: (u32, u32, Option<u32>),
        data: Option<&[u8]>,
    ) {
        let mut flags = KIND_EVENT;
        if refs.2.is_some() {
            flags |= FLAG_ACTION;
        }
        if data.is_some() {
            flags |= FLAG_DATA;
        }
        out.push(flags);
        let (prev_id, prev_ts) = if self.first {
            (0, 0)
        } else {
            (self.prev_id_delta, self.prev_ts_delta)
        };
        push_varint(out, id_delta.wrapping_sub(prev_id));
        push_varint(out, zigzag_encode(ts_delta.wrapping_sub(prev_ts)));
        push_varint(out, u64::from(refs.0));
        push_varint(out, u64::from(refs.1));
        if let Some(a) = refs.2 {
            push_varint(out, u64::from(a));
        }
        if let Some(d) = data {
            push_varint(out, d.len() as u64);
            out.extend_from_slice(d);
        }
        self.first = false;
        self.prev_id_delta = id_delta;
        self.prev_ts_delta = ts_delta;
    }
}

/// Expands the packed rows `packed` of one block into version-1 frames appended to `out`
/// (every payload uncompressed, every hash recomputed, every CRC computed), checking each
/// rule a frame scan checks that the packed form can break. Returns the number of string
/// definitions the block holds.
///
/// # Errors
/// A [`DecodeError`] with an offset into `packed`.
pub fn expand_block(
    packed: &[u8],
    cx: &ExpandContext<'_>,
    out: &mut Vec<u8>,
) -> Result<u32, DecodeError> {
    let mut r = Reader::new(packed);
    let mut strings_seen = 0u32;
    let mut prev: Option<(u64, i64)> = None;
    while r.remaining() > 0 {
        let at = r.pos();
        let flags = r.u8("flags")?;
        let defined = cx.strings_before.saturating_add(strings_seen);
        if flags == KIND_STRING {
            let string_ref = r.varint("string_ref")?;
            let len = r.varint("string length")?;
            if string_ref != u64::from(defined) {
                return Err(DecodeError::new(at, "string definition out of order"));
            }
            if len > STRING_LEN_MAX {
                return Err(DecodeError::new(
                    at,
                    "string definition longer than 1024 bytes",
                ));
            }
            let text = r.take(len as usize, "string text")?;
            let known = cx.strings.get(string_ref as usize);
            if known.is_none_or(|s| s.as_bytes() != text) {
                return Err(DecodeError::new(
                    at,
                    "string definition disagrees with the footer's dictionary",
                ));
            }
            let text = std::str::from_utf8(text)
                .map_err(|_| DecodeError::new(at, "string definition is not UTF-8"))?;
            out.extend_from_slice(&super::encode_string_def(string_ref as u32, text));
            strings_seen += 1;
            continue;
        }
        if flags & !FLAGS_KNOWN != 0 || flags & KIND_MASK != KIND_EVENT || flags & FLAG_LZ4 != 0 {
            return Err(DecodeError::new(
                at,
                format!("bad packed row flags {flags:#04x}"),
            ));
        }
        let frame = event_row(&mut r, at, flags, &mut prev, defined, cx)?;
        let start = out.len();
        out.resize(start + frame.encoded_len(), 0);
        super::encode_event(&mut out[start..], &frame);
    }
    Ok(strings_seen)
}

/// The event frame of the packed event row being read by `r` (its flags byte, at `at`,
/// already read), `prev` the ids and timestamps of the block's previous event.
fn event_row<'p>(
    r: &mut Reader<'p>,
    at: usize,
    flags: u8,
    prev: &mut Option<(u64, i64)>,
    defined: u32,
    cx: &ExpandContext<'_>,
) -> Result<super::EventFrame<'p>, DecodeError> {
    let id_step = r.varint("id step")?;
    let ts_step = r.zigzag("timestamp step")?;
    let (id_delta, ts_delta) = match *prev {
        None => (id_step, ts_step),
        Some((pid, pts)) => {
            if id_step == 0 {
                return Err(DecodeError::new(at, "event ids do not increase"));
            }
            let id = pid
                .checked_add(id_step)
                .ok_or_else(|| DecodeError::new(at, "event id overflows"))?;
            let ts = pts
                .checked_add(ts_step)
                .ok_or_else(|| DecodeError::new(at, "timestamp overflows"))?;
            (id, ts)
        }
    };
    *prev = Some((id_delta, ts_delta));
    let mut name = |what: &str| -> Result<(u32, &str), DecodeError> {
        let v = r.varint(what)?;
        match u32::try_from(v) {
            Ok(v) if v < defined => Ok((v, &*cx.strings[v as usize])),
            _ => Err(DecodeError::new(at, format!("{what} {v} undefined"))),
        }
    };
    let ty = name("type_ref")?;
    let src = name("source_ref")?;
    let action = if flags & FLAG_ACTION != 0 {
        Some(name("action_ref")?)
    } else {
        None
    };
    let data = if flags & FLAG_DATA != 0 {
        let len = r.varint("data length")?;
        let bytes = r.take(
            usize::try_from(len).map_err(|_| DecodeError::new(at, "data too long"))?,
            "data",
        )?;
        Some(
            simdutf8::basic::from_utf8(bytes)
                .map_err(|_| DecodeError::new(at, "event data is not UTF-8"))?,
        )
    } else {
        None
    };
    if cx.base_id.checked_add(id_delta).is_none() {
        return Err(DecodeError::new(at, "event id overflows"));
    }
    let ts = cx
        .base_timestamp_us
        .checked_add(ts_delta)
        .ok_or_else(|| DecodeError::new(at, "timestamp overflows"))?;
    let hash = (cx.hash)(ts, ty.1, action.map(|a| a.1), src.1, data);
    let frame = super::EventFrame {
        id_delta,
        ts_delta,
        type_ref: ty.0,
        source_ref: src.0,
        action_ref: action.map(|a| a.0),
        hash,
        payload: data.map(str::as_bytes),
        raw_len: None,
    };
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn test_hash(ts: i64, ty: &str, a: Option<&str>, src: &str, d: Option<&str>) -> u64 {
        crate::event::content_hash(crate::event::Timestamp(ts), ty, a, src, d)
    }

    fn strings() -> Vec<Arc<str>> {
        vec![
            Arc::from("file_op"),
            Arc::from("Finder"),
            Arc::from("created"),
        ]
    }

    #[test]
    fn a_block_expands_to_the_frames_it_was_packed_from() {
        let strings = strings();
        let mut packed = Vec::new();
        let mut p = Packer::new();
        pack_string_def(&mut packed, 0, "file_op");
        pack_string_def(&mut packed, 1, "Finder");
        p.event(&mut packed, 0, 5, (0, 1, None), Some(br#"{"a":1}"#));
        pack_string_def(&mut packed, 2, "created");
        p.event(&mut packed, 3, -2, (0, 1, Some(2)), None);
        let cx = ExpandContext {
            base_id: 10,
            base_timestamp_us: 1_000,
            strings: &strings,
            strings_before: 0,
            hash: test_hash,
        };
        let mut out = Vec::new();
        assert_eq!(expand_block(&packed, &cx, &mut out).unwrap(), 3);
        let mut at = 0;
        let mut events = Vec::new();
        while at < out.len() {
            let (f, len) = crate::format::decode_frame(&out[at..]).unwrap().unwrap();
            if let crate::format::Frame::Event(e) = f {
                events.push(e);
            }
            at += len;
        }
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].id_delta, events[0].ts_delta), (0, 5));
        assert_eq!((events[1].id_delta, events[1].ts_delta), (3, -2));
        let want = crate::event::content_hash(
            crate::event::Timestamp(1_005),
            "file_op",
            None,
            "Finder",
            Some(r#"{"a":1}"#),
        );
        assert_eq!(events[0].hash, want);
        assert_eq!(events[1].action_ref, Some(2));
    }

    #[test]
    fn damaged_packed_rows_are_refused_without_panicking() {
        let strings = strings();
        let mut packed = Vec::new();
        let mut p = Packer::new();
        pack_string_def(&mut packed, 0, "file_op");
        pack_string_def(&mut packed, 1, "Finder");
        p.event(&mut packed, 0, 5, (0, 1, None), Some(br#"{"a":1}"#));
        p.event(&mut packed, 1, 5, (0, 1, None), None);
        let cx = ExpandContext {
            base_id: 1,
            base_timestamp_us: 0,
            strings: &strings,
            strings_before: 0,
            hash: test_hash,
        };
        for i in 0..packed.len() {
            for bit in 0..8 {
                let mut bad = packed.clone();
                bad[i] ^= 1 << bit;
                let _ = expand_block(&bad, &cx, &mut Vec::new());
            }
            let _ = expand_block(&packed[..i], &cx, &mut Vec::new());
        }
        // A reference to a string not yet defined is refused.
        let mut early = Vec::new();
        Packer::new().event(&mut early, 0, 0, (0, 1, None), None);
        assert!(expand_block(&early, &cx, &mut Vec::new()).is_err());
    }

    #[test]
    fn the_layout_record_round_trips_and_checks_its_bounds() {
        let l = Layout {
            logical_len: 5000,
            dict_offset: 256,
            dict_len: 100,
            block_count: 2,
            table_offset: 1000,
            table_crc: 7,
            dict_crc: 9,
            filter_table_offset: 0,
            filter_count: 0,
            filter_table_crc: 0,
            level: 9,
        };
        let b = l.encode();
        assert_eq!(Layout::decode(&b, 2000).unwrap(), l);
        assert!(Layout::decode(&b, 1050).is_err(), "table past the end");
        let mut bad = b;
        bad[3] ^= 1;
        assert!(Layout::decode(&bad, 2000).is_err());
    }
}
