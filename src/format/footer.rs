//! The footer written when a segment is sealed: summary, dictionary, sparse block index and
//! per-type counts, in checksummed sections. `format-spec/FORMAT.md#footer`

use super::{crc32, push_varint, DecodeError, Reader};

pub use super::sections::{
    Deferred, EncodedBlocks, EncodedCheckpoints, EncodedPostings, PostingListAt,
};

/// First eight bytes of a footer.
pub const FOOTER_MAGIC: &[u8; 8] = b"SLOGFOOT";

pub(crate) const SECTION_SUMMARY: u16 = 1;
pub(crate) const SECTION_STRINGS: u16 = 2;
pub(crate) const SECTION_BLOCKS: u16 = 3;
pub(crate) const SECTION_TYPE_COUNTS: u16 = 4;
pub(crate) const SECTION_POSTINGS: u16 = 5;
pub(crate) const SECTION_SOURCE_COUNTS: u16 = 6;
pub(crate) const SECTION_ACTION_COUNTS: u16 = 7;
pub(crate) const SECTION_CHECKPOINTS: u16 = 8;
const SECTION_KINDS: usize = 9;
/// Event frames from one checkpoint of a block to the next.
pub const CHECKPOINT_STRIDE: u32 = 4;
/// Checkpoints per block: where its event frames 4, 8, .., 28 start (frame 0 starts at the
/// block's offset). `format-spec/FORMAT.md#checkpoints`
pub const CHECKPOINT_SLOTS: usize = 7;
pub(crate) const SUMMARY_LEN: usize = 80;
/// Encoded length of one block entry.
pub const BLOCK_LEN: usize = 48;
pub(crate) const TYPE_COUNT_LEN: usize = 12;
pub(crate) const FOOTER_FIXED_LEN: usize = 16 + 4;
pub(crate) const SECTION_HEADER_LEN: usize = 8;

/// Counts and ranges of a segment's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Events in the segment.
    pub event_count: u64,
    /// First event id, 0 if none.
    pub first_id: u64,
    /// Last event id, 0 if none.
    pub last_id: u64,
    /// Smallest event timestamp (`i64::MAX` if none).
    pub min_ts_us: i64,
    /// Largest event timestamp (`i64::MIN` if none).
    pub max_ts_us: i64,
    /// Append clock of the first commit with events, 0 if none.
    pub first_commit_us: i64,
    /// Append clock of the last commit with events, 0 if none.
    pub last_commit_us: i64,
    /// Events whose data is stored LZ4-compressed.
    pub compressed_count: u64,
    /// Bytes of event data as appended (JSON text).
    pub data_raw_bytes: u64,
    /// Bytes of event data as stored (after compression).
    pub data_stored_bytes: u64,
}

/// One entry of the sparse index: a run of consecutive frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Id of the first event in the block.
    pub first_id: u64,
    /// Id of the last event in the block.
    pub last_id: u64,
    /// File offset of the block's first event frame (string definitions may follow it).
    pub offset: u64,
    /// Bytes of frames in the block.
    pub len: u32,
    /// Events in the block.
    pub event_count: u32,
    /// Smallest event timestamp in the block.
    pub min_ts_us: i64,
    /// Largest event timestamp in the block.
    pub max_ts_us: i64,
}

/// Sizes that bound a footer's encoded length; see [`Footer::len_bound`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FooterSize {
    /// Bytes of dictionary strings.
    pub string_bytes: usize,
    /// Dictionary strings.
    pub strings: usize,
    /// Blocks.
    pub blocks: usize,
    /// Entries of the type, source and action count sections together.
    pub counts: usize,
    /// Strings with postings.
    pub posting_strings: usize,
    /// Block indices in all postings.
    pub posting_entries: usize,
}

/// A decoded footer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footer {
    /// Counts and ranges.
    pub summary: Summary,
    /// The segment's dictionary, indexed by string reference.
    pub strings: Vec<String>,
    /// The sparse index, in file order.
    pub blocks: Vec<Block>,
    /// Events per type, as (string reference, count), ordered by reference.
    pub type_counts: Vec<(u32, u64)>,
    /// For each string reference used by an event (as type, source or action), the
    /// ascending indices of the blocks holding such events. `None` when the footer predates
    /// the section: every block is then a candidate.
    pub postings: Option<Vec<(u32, Vec<u32>)>>,
    /// Events per source, as (string reference, count); `None` when absent.
    pub source_counts: Option<Vec<(u32, u64)>>,
    /// Events per action, as (string reference, count); `None` when absent.
    pub action_counts: Option<Vec<(u32, u64)>>,
    /// [`CHECKPOINT_SLOTS`] entries per block, in block order: entry `s` (from 0) of a
    /// block is where its event frame `(s + 1) * CHECKPOINT_STRIDE` starts, relative to the
    /// block's offset, or 0 for none. `None` when the footer has no such section (or one of
    /// another stride): a lookup then walks its block from the start.
    pub checkpoints: Option<Vec<u16>>,
}

fn encode_counts(out: &mut Vec<u8>, kind: u16, counts: &[(u32, u64)]) {
    let mut body = Vec::with_capacity(4 + counts.len() * TYPE_COUNT_LEN);
    let count = u32::try_from(counts.len()).expect("string refs are u32");
    body.extend_from_slice(&count.to_le_bytes());
    for (r, n) in counts {
        body.extend_from_slice(&r.to_le_bytes());
        body.extend_from_slice(&n.to_le_bytes());
    }
    section(out, kind, &body);
}

fn section(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let len = u32::try_from(body.len()).expect("footer sections are bounded by segment_len");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
}

impl Footer {
    /// An upper bound of the encoded length, cheap to keep up to date while appending.
    pub fn len_bound(n: &FooterSize) -> usize {
        const COUNT_SECTIONS: usize = 3;
        FOOTER_FIXED_LEN
            + 8 * SECTION_HEADER_LEN
            + SUMMARY_LEN
            + 4
            + n.string_bytes
            + n.strings * 5
            + 4
            + n.blocks * BLOCK_LEN
            + COUNT_SECTIONS * 4
            + n.counts * TYPE_COUNT_LEN
            + 4
            + n.posting_strings * 8
            + n.posting_entries * 5
            + 8
            + n.blocks * CHECKPOINT_SLOTS * 2
    }

    /// Encodes the footer.
    ///
    /// # Panics
    /// Only for counts or lengths past `u32`, which no segment (at most 2 GiB) can hold.
    pub fn encode(&self) -> Vec<u8> {
        let s = &self.summary;
        let mut out = Vec::with_capacity(Footer::len_bound(&self.size()));
        out.extend_from_slice(FOOTER_MAGIC);
        out.extend_from_slice(&[0u8; 4]); // footer_len, patched below
        let sections = 4
            + u32::from(self.postings.is_some())
            + u32::from(self.source_counts.is_some())
            + u32::from(self.action_counts.is_some())
            + u32::from(self.checkpoints.is_some());
        out.extend_from_slice(&sections.to_le_bytes());

        let mut body = Vec::with_capacity(SUMMARY_LEN);
        for v in [s.event_count, s.first_id, s.last_id] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            s.min_ts_us,
            s.max_ts_us,
            s.first_commit_us,
            s.last_commit_us,
        ] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        for v in [s.compressed_count, s.data_raw_bytes, s.data_stored_bytes] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        section(&mut out, SECTION_SUMMARY, &body);

        body.clear();
        let count = u32::try_from(self.strings.len()).expect("string refs are u32");
        body.extend_from_slice(&count.to_le_bytes());
        for text in &self.strings {
            push_varint(&mut body, text.len() as u64);
            body.extend_from_slice(text.as_bytes());
        }
        section(&mut out, SECTION_STRINGS, &body);

        body.clear();
        let count = u32::try_from(self.blocks.len()).expect("block count fits u32");
        body.extend_from_slice(&count.to_le_bytes());
        for b in &self.blocks {
            body.extend_from_slice(&b.first_id.to_le_bytes());
            body.extend_from_slice(&b.last_id.to_le_bytes());
            body.extend_from_slice(&b.offset.to_le_bytes());
            body.extend_from_slice(&b.len.to_le_bytes());
            body.extend_from_slice(&b.event_count.to_le_bytes());
            body.extend_from_slice(&b.min_ts_us.to_le_bytes());
            body.extend_from_slice(&b.max_ts_us.to_le_bytes());
        }
        section(&mut out, SECTION_BLOCKS, &body);

        encode_counts(&mut out, SECTION_TYPE_COUNTS, &self.type_counts);
        if let Some(postings) = &self.postings {
            body.clear();
            let count = u32::try_from(postings.len()).expect("string refs are u32");
            body.extend_from_slice(&count.to_le_bytes());
            for (r, blocks) in postings {
                body.extend_from_slice(&r.to_le_bytes());
                let n = u32::try_from(blocks.len()).expect("block count fits u32");
                body.extend_from_slice(&n.to_le_bytes());
                let mut prev = 0u32;
                for (k, &b) in blocks.iter().enumerate() {
                    push_varint(&mut body, u64::from(if k == 0 { b } else { b - prev }));
                    prev = b;
                }
            }
            section(&mut out, SECTION_POSTINGS, &body);
        }
        if let Some(c) = &self.source_counts {
            encode_counts(&mut out, SECTION_SOURCE_COUNTS, c);
        }
        if let Some(c) = &self.action_counts {
            encode_counts(&mut out, SECTION_ACTION_COUNTS, c);
        }
        if let Some(points) = &self.checkpoints {
            body.clear();
            body.extend_from_slice(&CHECKPOINT_STRIDE.to_le_bytes());
            let count =
                u32::try_from(points.len() / CHECKPOINT_SLOTS).expect("block count fits u32");
            body.extend_from_slice(&count.to_le_bytes());
            for p in points {
                body.extend_from_slice(&p.to_le_bytes());
            }
            section(&mut out, SECTION_CHECKPOINTS, &body);
        }

        let total = u32::try_from(out.len() + 4).expect("footer fits u32");
        out[8..12].copy_from_slice(&total.to_le_bytes());
        let crc = crc32(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The sizes that bound this footer's encoded length.
    pub fn size(&self) -> FooterSize {
        FooterSize {
            string_bytes: self.strings.iter().map(String::len).sum(),
            strings: self.strings.len(),
            blocks: self.blocks.len(),
            counts: self.type_counts.len()
                + self.source_counts.as_ref().map_or(0, Vec::len)
                + self.action_counts.as_ref().map_or(0, Vec::len),
            posting_strings: self.postings.as_ref().map_or(0, Vec::len),
            posting_entries: self
                .postings
                .as_ref()
                .map_or(0, |p| p.iter().map(|(_, b)| b.len()).sum()),
        }
    }

    /// Reads the footer length from its first 12 bytes, so the caller can slice it.
    ///
    /// # Errors
    /// A `DecodeError` when the magic is wrong or the length is impossible.
    pub fn peek_len(b: &[u8]) -> Result<usize, DecodeError> {
        let mut r = Reader::new(b);
        if r.take(8, "footer magic")? != FOOTER_MAGIC {
            return Err(DecodeError::new(0, "footer magic missing"));
        }
        let len = r.u32("footer length")? as usize;
        if len < FOOTER_FIXED_LEN {
            return Err(DecodeError::new(
                8,
                format!("footer length {len} too small"),
            ));
        }
        Ok(len)
    }

    /// The footer `b` without its checksum, once its length and checksum are checked.
    fn checked_content(b: &[u8]) -> Result<&[u8], DecodeError> {
        let len = Footer::peek_len(b)?;
        if len != b.len() {
            return Err(DecodeError::new(
                8,
                format!("footer length {len}, {} bytes given", b.len()),
            ));
        }
        let (content, crc_bytes) = b.split_at(len - 4);
        let crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
        if crc != crc32(&[content]) {
            return Err(DecodeError::checksum(len - 4, "footer checksum mismatch"));
        }
        Ok(content)
    }

    /// Decodes a whole footer, `b` being exactly its bytes.
    ///
    /// # Errors
    /// A `DecodeError` naming the failing section or field.
    pub fn decode(b: &[u8]) -> Result<Footer, DecodeError> {
        let (mut footer, deferred) = Footer::decode_deferred(b)?;
        footer.blocks = deferred.blocks.decode_all(b)?;
        footer.postings = deferred.postings.map(|p| p.decode(b)).transpose()?;
        footer.checkpoints = deferred.checkpoints.map(|c| c.decode_all(b)).transpose()?;
        Ok(footer)
    }

    /// Decodes a footer except its blocks, postings and checkpoints, which are returned as
    /// where they are (most of a footer's bytes: a reader reads them in place, a block at a
    /// time, and a query needs postings for few segments). The footer's checksum, which
    /// covers them, is checked; the postings' structure is checked when they are decoded.
    /// `blocks`, `postings` and `checkpoints` of the returned footer are empty.
    ///
    /// # Errors
    /// A `DecodeError` naming the failing section or field.
    pub fn decode_deferred(b: &[u8]) -> Result<(Footer, Deferred), DecodeError> {
        let mut r = Reader::new(Footer::checked_content(b)?);
        r.take(12, "footer head")?;
        let sections = r.u32("section count")?;
        let mut footer = Footer::default();
        let mut postings = None;
        let mut blocks = EncodedBlocks::default();
        let mut checkpoints = None;
        let mut seen = [false; SECTION_KINDS];
        for _ in 0..sections {
            let at = r.pos();
            let kind = r.u16("section kind")?;
            let flags = r.u16("section flags")?;
            let body_len = r.u32("section length")? as usize;
            let body = r.take(body_len, "section body")?;
            let base = r.pos() - body_len;
            if flags != 0 {
                return Err(DecodeError::new(at + 2, "reserved section flags set"));
            }
            let mut sr = Reader::new(body);
            let rebase = |e: DecodeError| DecodeError::new(base + e.offset, e.what);
            match kind {
                SECTION_SUMMARY => {
                    footer.summary = decode_summary(&mut sr).map_err(rebase)?;
                }
                SECTION_STRINGS => {
                    footer.strings = decode_strings(&mut sr).map_err(rebase)?;
                }
                SECTION_BLOCKS => {
                    let count = sr.u32("block count").map_err(rebase)?;
                    let count = capped(count, sr.remaining(), BLOCK_LEN).map_err(rebase)?;
                    sr.take(count * BLOCK_LEN, "blocks").map_err(rebase)?;
                    blocks = EncodedBlocks {
                        offset: base + 4,
                        count,
                    };
                }
                SECTION_TYPE_COUNTS => {
                    footer.type_counts = decode_type_counts(&mut sr).map_err(rebase)?;
                }
                SECTION_POSTINGS => {
                    if !seen[usize::from(SECTION_BLOCKS)] {
                        return Err(DecodeError::new(at, "postings before blocks"));
                    }
                    postings = Some(EncodedPostings {
                        offset: base,
                        len: sr.rest().len(),
                        blocks: blocks.count,
                    });
                }
                SECTION_SOURCE_COUNTS => {
                    footer.source_counts = Some(decode_type_counts(&mut sr).map_err(rebase)?);
                }
                SECTION_ACTION_COUNTS => {
                    footer.action_counts = Some(decode_type_counts(&mut sr).map_err(rebase)?);
                }
                SECTION_CHECKPOINTS => {
                    if !seen[usize::from(SECTION_BLOCKS)] {
                        return Err(DecodeError::new(at, "checkpoints before blocks"));
                    }
                    // Another stride is a later revision's choice: skip it like an unknown
                    // section (lookups walk their blocks from the start).
                    let Some(at) =
                        EncodedCheckpoints::find(&mut sr, base, blocks.count).map_err(rebase)?
                    else {
                        continue;
                    };
                    checkpoints = Some(at);
                }
                // Unknown sections are additions of a later minor revision: skip them.
                _ => continue,
            }
            if sr.remaining() != 0 {
                return Err(DecodeError::new(
                    base + sr.pos(),
                    "trailing bytes in footer section",
                ));
            }
            let slot = &mut seen[usize::from(kind)];
            if *slot {
                return Err(DecodeError::new(
                    at,
                    format!("footer section {kind} repeated"),
                ));
            }
            *slot = true;
        }
        if r.remaining() != 0 {
            return Err(DecodeError::new(
                r.pos(),
                "trailing bytes after footer sections",
            ));
        }
        if !seen[1..=4].iter().all(|&s| s) {
            return Err(DecodeError::new(12, "footer section missing"));
        }
        Ok((
            footer,
            Deferred {
                blocks,
                postings,
                checkpoints,
            },
        ))
    }
}

fn decode_summary(r: &mut Reader<'_>) -> Result<Summary, DecodeError> {
    Ok(Summary {
        event_count: r.u64("event_count")?,
        first_id: r.u64("first_id")?,
        last_id: r.u64("last_id")?,
        min_ts_us: r.i64("min_ts")?,
        max_ts_us: r.i64("max_ts")?,
        first_commit_us: r.i64("first_commit")?,
        last_commit_us: r.i64("last_commit")?,
        compressed_count: r.u64("compressed_count")?,
        data_raw_bytes: r.u64("data_raw_bytes")?,
        data_stored_bytes: r.u64("data_stored_bytes")?,
    })
}

/// Caps a count read from disk by what the remaining bytes could hold, before allocating.
pub(super) fn capped(count: u32, remaining: usize, each_min: usize) -> Result<usize, DecodeError> {
    let count = count as usize;
    if count > remaining / each_min {
        return Err(DecodeError::new(
            0,
            format!("count {count} exceeds the section"),
        ));
    }
    Ok(count)
}

fn decode_strings(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let count = r.u32("string count")?;
    let count = capped(count, r.remaining(), 1)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.pos();
        let len = usize::try_from(r.varint("string length")?)
            .map_err(|_| DecodeError::new(at, "string length overflows"))?;
        let bytes = r.take(len, "string")?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| DecodeError::new(at, "string is not UTF-8"))?;
        out.push(text.to_owned());
    }
    Ok(out)
}

/// Postings must follow the blocks section: their indices are checked against it.
pub(super) fn decode_postings(
    r: &mut Reader<'_>,
    blocks: usize,
) -> Result<Vec<(u32, Vec<u32>)>, DecodeError> {
    let count = r.u32("posting count")?;
    let count = capped(count, r.remaining(), 8)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let string_ref = r.u32("posting string ref")?;
        let n = r.u32("posting length")?;
        out.push((string_ref, decode_posting_list(r, n, blocks)?));
    }
    Ok(out)
}

/// One string's list of `n` block indices: the first, then the increments.
pub(super) fn decode_posting_list(
    r: &mut Reader<'_>,
    n: u32,
    blocks: usize,
) -> Result<Vec<u32>, DecodeError> {
    let n = capped(n, r.remaining(), 1)?;
    let mut list = Vec::with_capacity(n);
    let mut prev: Option<u32> = None;
    for _ in 0..n {
        let at = r.pos();
        let v = u32::try_from(r.varint("posting block")?)
            .map_err(|_| DecodeError::new(at, "posting block out of range"))?;
        let b = match prev {
            None => v,
            Some(p) if v > 0 => p
                .checked_add(v)
                .ok_or_else(|| DecodeError::new(at, "posting block overflows"))?,
            Some(_) => return Err(DecodeError::new(at, "posting blocks must increase")),
        };
        if b as usize >= blocks {
            return Err(DecodeError::new(
                at,
                format!("posting block {b} past the {blocks} blocks"),
            ));
        }
        list.push(b);
        prev = Some(b);
    }
    Ok(list)
}

fn decode_type_counts(r: &mut Reader<'_>) -> Result<Vec<(u32, u64)>, DecodeError> {
    let count = r.u32("type count")?;
    let count = capped(count, r.remaining(), TYPE_COUNT_LEN)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push((r.u32("type ref")?, r.u64("type count")?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Footer {
        Footer {
            summary: Summary {
                event_count: 3,
                first_id: 10,
                last_id: 12,
                min_ts_us: 5,
                max_ts_us: 900,
                first_commit_us: 1000,
                last_commit_us: 2000,
                compressed_count: 1,
                data_raw_bytes: 5000,
                data_stored_bytes: 1700,
            },
            strings: vec!["file_op".into(), "Finder".into(), "é".into()],
            blocks: vec![Block {
                first_id: 10,
                last_id: 12,
                offset: 256,
                len: 300,
                event_count: 3,
                min_ts_us: 5,
                max_ts_us: 900,
            }],
            type_counts: vec![(0, 3)],
            postings: Some(vec![(0, vec![0]), (1, vec![0]), (2, vec![0])]),
            source_counts: Some(vec![(1, 3)]),
            action_counts: Some(vec![(2, 1)]),
            checkpoints: Some(vec![0; CHECKPOINT_SLOTS]),
        }
    }

    #[test]
    fn footer_round_trips_within_its_bound() {
        let f = sample();
        let b = f.encode();
        assert_eq!(Footer::peek_len(&b).unwrap(), b.len());
        assert_eq!(Footer::decode(&b).unwrap(), f);
        let bound = Footer::len_bound(&f.size());
        assert!(b.len() <= bound, "{} > {bound}", b.len());
    }

    #[test]
    fn footer_without_optional_sections_still_decodes() {
        let f = Footer {
            postings: None,
            source_counts: None,
            action_counts: None,
            checkpoints: None,
            ..sample()
        };
        assert_eq!(Footer::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn checkpoints_are_read_in_place_and_must_cover_every_block() {
        let mut points = vec![0u16; 2 * CHECKPOINT_SLOTS];
        points[0] = 400;
        points[CHECKPOINT_SLOTS + 6] = 7000;
        let f = Footer {
            blocks: vec![sample().blocks[0]; 2],
            checkpoints: Some(points),
            ..sample()
        };
        let bytes = f.encode();
        assert_eq!(Footer::decode(&bytes).unwrap(), f);
        let (_, parts) = Footer::decode_deferred(&bytes).unwrap();
        let at = parts.checkpoints.unwrap();
        assert_eq!(at.get(&bytes, 0, 0), Some(400));
        assert_eq!(at.get(&bytes, 1, 6), Some(7000));
        assert_eq!(at.get(&bytes, 1, 7), None);
        assert_eq!(at.get(&bytes, 2, 0), None);

        // A writer bug: checkpoints for fewer blocks than there are, under a valid CRC.
        let short = Footer {
            checkpoints: Some(vec![0; CHECKPOINT_SLOTS]),
            ..f
        };
        let err = Footer::decode(&short.encode()).unwrap_err();
        assert!(err.what.contains("checkpoints for 1 blocks"), "{err:?}");
    }

    /// `sample()`'s footer with `extra` sections (kind, flags, body) put before the section
    /// at each given position, with its length, count and CRC made to match.
    fn with_sections(extra: &[(usize, u16, u16, &[u8])]) -> Vec<u8> {
        let b = sample().encode();
        let mut sections = Vec::new();
        let mut at = FOOTER_FIXED_LEN - 4;
        while at < b.len() - 4 {
            let len = SECTION_HEADER_LEN
                + u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
            sections.push(b[at..at + len].to_vec());
            at += len;
        }
        for &(pos, kind, flags, body) in extra.iter().rev() {
            let mut s = kind.to_le_bytes().to_vec();
            s.extend_from_slice(&flags.to_le_bytes());
            s.extend_from_slice(&(body.len() as u32).to_le_bytes());
            s.extend_from_slice(body);
            sections.insert(pos, s);
        }
        let body: Vec<u8> = sections.concat();
        let mut out = FOOTER_MAGIC.to_vec();
        out.extend_from_slice(&((FOOTER_FIXED_LEN + body.len()) as u32).to_le_bytes());
        out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// More than 8 sections, unknown kinds (0, 9, 65535) anywhere and repeated, empty or
    /// not, and a checkpoints section of another stride are skipped; flags on an unknown
    /// section are still refused (`format-spec/FORMAT.md#footer`, issue 26).
    #[test]
    fn unknown_sections_any_number_are_skipped_but_their_flags_checked() {
        let stride_5 = [5u8, 0, 0, 0, 1, 0, 0, 0, 9, 9];
        let extra: [(usize, u16, u16, &[u8]); 5] = [
            (0, 0, 0, b"abc"),
            (1, 9, 0, b""),
            (3, 8, 0, &stride_5),
            (3, 9, 0, b"xyz"),
            (8, 65535, 0, &[0xFF; 40]),
        ];
        let b = with_sections(&extra);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 13);
        assert_eq!(Footer::decode(&b).unwrap(), sample());
        let flagged = with_sections(&[(2, 9, 1, b"")]);
        assert!(Footer::decode(&flagged).is_err());
        let no_stride = with_sections(&[(3, 8, 0, b"")]);
        assert!(Footer::decode(&no_stride).is_err());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = sample().encode();
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x04;
            assert!(Footer::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn deferred_postings_decode_to_the_same_footer() {
        let f = sample();
        let bytes = f.encode();
        let (mut deferred, parts) = Footer::decode_deferred(&bytes).unwrap();
        assert_eq!(
            (deferred.postings.as_ref(), deferred.blocks.len()),
            (None, 0)
        );
        deferred.blocks = parts.blocks.decode_all(&bytes).unwrap();
        assert_eq!(parts.blocks.get(&bytes, 0), Some(f.blocks[0]));
        assert_eq!(parts.blocks.get(&bytes, 1), None);
        deferred.postings = Some(parts.postings.unwrap().decode(&bytes).unwrap());
        assert_eq!(deferred.checkpoints, None);
        deferred.checkpoints = Some(parts.checkpoints.unwrap().decode_all(&bytes).unwrap());
        assert_eq!(deferred, f);
    }

    #[test]
    fn posting_lists_found_through_the_directory_equal_the_decoded_ones() {
        let f = Footer {
            blocks: vec![sample().blocks[0]; 300],
            postings: Some(vec![
                (0, vec![0, 1, 299]),
                (1, (0..300).collect()),
                (2, vec![]),
            ]),
            checkpoints: None,
            ..sample()
        };
        let bytes = f.encode();
        let (_, parts) = Footer::decode_deferred(&bytes).unwrap();
        let encoded = parts.postings.unwrap();
        let dir = encoded.directory(&bytes).unwrap();
        let lists: Vec<(u32, Vec<u32>)> = dir
            .iter()
            .map(|&(r, at)| (r, encoded.list(&bytes, at).unwrap()))
            .collect();
        assert_eq!(Some(lists), f.postings);
    }

    #[test]
    fn checksummed_but_malformed_postings_fail_only_when_decoded() {
        // A writer bug: a posted block index past the block count, under a valid CRC.
        let f = Footer {
            postings: Some(vec![(0, vec![0, 5])]),
            ..sample()
        };
        let b = f.encode();
        let err = Footer::decode(&b).unwrap_err();
        assert!(err.what.contains("past the 1 blocks"), "{err:?}");
        let (_, parts) = Footer::decode_deferred(&b).unwrap();
        assert_eq!(parts.postings.unwrap().decode(&b).unwrap_err(), err);
    }
}
