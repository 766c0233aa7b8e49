//! Pure bytes <-> values for every on-disk structure; no I/O happens here.
//!
//! Each submodule mirrors a section of `format-spec/FORMAT.md`. Decoders assume hostile
//! bytes: they check the remaining length before every read, use checked arithmetic on
//! lengths read from disk, and return a [`DecodeError`] naming the field and its offset in
//! the buffer; the segment layer adds the file path and absolute offset.

mod footer;
mod frame;
mod header;
mod image;
mod manifest;
mod packed;
mod sections;

pub use footer::{
    Block, Deferred, Footer, FooterSize, PostingListAt, Summary, BLOCK_LEN, CHECKPOINT_SLOTS,
    CHECKPOINT_STRIDE, FOOTER_MAGIC,
};
pub(crate) use footer::{
    FOOTER_FIXED_LEN, SECTION_ACTION_COUNTS, SECTION_BLOCKS, SECTION_CHECKPOINTS,
    SECTION_HEADER_LEN, SECTION_POSTINGS, SECTION_SOURCE_COUNTS, SECTION_STRINGS, SECTION_SUMMARY,
    SECTION_TYPE_COUNTS, SUMMARY_LEN, TYPE_COUNT_LEN,
};
pub use frame::{
    checksum_matches, decode_frame, decode_frame_unchecked, encode_event, encode_string_def,
    frame_len_max, peek_compressed, peek_event, peek_frame, peek_head, EventFrame, Frame,
    FrameHead, FRAME_HEADER_LEN,
};
pub(crate) use frame::{
    FLAGS_KNOWN, FLAG_ACTION, FLAG_DATA, FLAG_LZ4, KIND_EVENT, KIND_MASK, KIND_STRING,
};
pub use header::{
    CommitSlot, SegmentHeader, StoreMeta, COMMIT_SLOT_LEN, META_LEN, SEGMENT_HEADER_LEN,
    SLOT_OFFSETS,
};
pub(crate) use header::{FIXED_HEADER_LEN, META_MAGIC, SEGMENT_MAGIC, SLOT_FLAG_SEALED};
pub use image::{decode_image, decode_image_deferred, encode_image, ImageHead};
pub(crate) use image::{IMAGE_FLAG_CLEAN, IMAGE_HEAD_LEN, IMAGE_MAGIC, IMAGE_VERSION};
pub use manifest::{Manifest, ManifestEntry};
pub(crate) use manifest::{
    ENTRY_FLAG_SEALED, MANIFEST_ENTRY_LEN, MANIFEST_FLAG_EXACT, MANIFEST_HEADER_LEN,
    MANIFEST_MAGIC, MANIFEST_VERSION,
};
pub use packed::{
    expand_block, pack_string_def, ExpandContext, FilterEntry, Layout, Packer, TableEntry,
    BLOCK_LEN_MAX, FILTER_ENTRY_LEN, LAYOUT_LEN, LAYOUT_OFFSET, PACKED_VERSION, TABLE_ENTRY_LEN,
};

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Room a segment keeps free for its footer in the worst case of a tiny segment; the writer
/// tracks the real footer length as it grows. `format-spec/FORMAT.md#footer`
pub const FOOTER_RESERVE_MIN: usize = 4096;

/// Why a structure failed to decode, relative to the start of the buffer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the decoded buffer where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub what: String,
    /// The kind of failure, for callers that act on it; `what` is only for people.
    pub kind: DecodeKind,
}

/// The failures of a decoder that its callers tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// The bytes are not a valid encoding of the structure.
    Malformed,
    /// The structure's checksum does not match its bytes.
    Checksum,
    /// The structure is of a format version newer than this build reads.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
}

impl DecodeError {
    pub(crate) fn new(offset: usize, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset,
            what: what.into(),
            kind: DecodeKind::Malformed,
        }
    }

    /// A checksum that does not match its bytes.
    pub(crate) fn checksum(offset: usize, what: impl Into<String>) -> DecodeError {
        DecodeError {
            kind: DecodeKind::Checksum,
            ..DecodeError::new(offset, what)
        }
    }
}

/// A bounds-checked reader over a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let Some(end) = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
        else {
            return Err(self.short(len, what));
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The error of a read of `len` bytes past the end: out of line, so that the reads
    /// that succeed (all of them, but in damaged data) stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn short(&self, len: usize, what: &str) -> DecodeError {
        DecodeError::new(
            self.pos,
            format!(
                "{what}: needs {len} bytes, {} remain",
                self.buf.len() - self.pos
            ),
        )
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let bytes = &self.buf[self.pos..];
        self.pos = self.buf.len();
        bytes
    }

    #[inline]
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    #[inline]
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(self.u64(what)?.cast_signed())
    }

    /// An unsigned LEB128 varint of at most 10 bytes. `format-spec/FORMAT.md#conventions`
    #[inline]
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        if let Some((v, n)) = self.buf.get(self.pos..).and_then(varint_fast) {
            self.pos += n;
            return Ok(v);
        }
        self.varint_bytewise(what)
    }

    /// [`Reader::varint`] byte by byte: the last few bytes of a buffer, values of 2^56 or
    /// more, and every malformed varint, which it names.
    #[cold]
    #[inline(never)]
    fn varint_bytewise(&mut self, what: &str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for (i, &byte) in self.buf[start..].iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == 9 && byte > 1 {
                    return Err(DecodeError::new(
                        start,
                        format!("{what}: varint overflows u64"),
                    ));
                }
                if i > 0 && byte == 0 {
                    return Err(DecodeError::new(
                        start,
                        format!("{what}: varint not minimal"),
                    ));
                }
                self.pos = start + i + 1;
                return Ok(value);
            }
        }
        if self.buf.len() - start < 10 {
            return Err(DecodeError::new(
                start,
                format!("{what}: needs 1 more byte, 0 remain"),
            ));
        }
        Err(DecodeError::new(
            start,
            format!("{what}: varint longer than 10 bytes"),
        ))
    }

    #[inline]
    pub(crate) fn zigzag(&mut self, what: &str) -> Result<i64, DecodeError> {
        let v = self.varint(what)?;
        Ok((v >> 1).cast_signed() ^ -((v & 1).cast_signed()))
    }
}

/// The varint at the start of `buf` by the quick ways: one byte (most references and
/// small deltas), else [`varint_in_word`]; `None` leaves it to a byte-by-byte decode.
#[inline]
pub(crate) fn varint_fast(buf: &[u8]) -> Option<(u64, usize)> {
    match buf.first() {
        Some(&b) if b < 0x80 => Some((u64::from(b), 1)),
        _ => varint_in_word(buf),
    }
}

/// The minimal unsigned LEB128 varint at the start of `buf` when it ends within `buf`'s
/// first 8 bytes (values below 2^56: every delta and reference of a frame), as its value
/// and length; `None` otherwise (fewer than 8 bytes, a longer varint, a non-minimal one),
/// which the byte-by-byte decode then takes or reports. Read as one word: the first byte
/// without its high bit ends the varint, and the 7-bit groups below it are packed together
/// in three shifts (pairs, then quads, then the two halves).
#[inline]
pub(crate) fn varint_in_word(buf: &[u8]) -> Option<(u64, usize)> {
    let word = u64::from_le_bytes(*buf.first_chunk::<8>()?);
    let stops = !word & 0x8080_8080_8080_8080;
    if stops == 0 {
        return None;
    }
    let bits = stops.trailing_zeros() + 1; // through the last byte's high bit
    let len = (bits / 8) as usize;
    let last = (word >> (8 * (len - 1))) & 0xff;
    if len > 1 && last == 0 {
        return None;
    }
    let kept = if bits == 64 {
        word
    } else {
        word & ((1u64 << bits) - 1)
    };
    let mut v = kept & 0x7f7f_7f7f_7f7f_7f7f;
    v = (v & 0x007f_007f_007f_007f) | ((v & 0x7f00_7f00_7f00_7f00) >> 1);
    v = (v & 0x0000_3fff_0000_3fff) | ((v & 0x3fff_0000_3fff_0000) >> 2);
    v = (v & 0x0000_0000_0fff_ffff) | ((v & 0x0fff_ffff_0000_0000) >> 4);
    Some((v, len))
}

/// Bytes an unsigned LEB128 varint of `v` takes.
pub(crate) fn varint_len(v: u64) -> usize {
    // Each byte holds 7 bits; zero still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes `v` as LEB128 at the start of `out`, returning the bytes written.
pub(crate) fn put_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Appends `v` as LEB128 to a vector.
pub(crate) fn push_varint(out: &mut Vec<u8>, v: u64) {
    let mut tmp = [0u8; 10];
    let n = put_varint(&mut tmp, v);
    out.extend_from_slice(&tmp[..n]);
}

pub(crate) fn zigzag_encode(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)).cast_unsigned()
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320: what `crc32fast` computes).
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        let mut values = vec![0u64, 1, 127, 128, 16_383, 16_384, u64::MAX, u64::MAX - 1];
        values.extend((0..64).map(|s| 1u64 << s));
        for v in values {
            let mut buf = [0u8; 10];
            let n = put_varint(&mut buf, v);
            assert_eq!(n, varint_len(v), "length of {v}");
            let mut r = Reader::new(&buf[..n]);
            assert_eq!(r.varint("v").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 10];
            let n = put_varint(&mut buf, zigzag_encode(v));
            assert_eq!(Reader::new(&buf[..n]).zigzag("v").unwrap(), v);
        }
    }

    /// The one-word decode agrees with the byte-by-byte one wherever it answers, answers
    /// for every minimal varint of up to 8 bytes with 8 bytes to read, and never for a
    /// non-minimal one.
    #[test]
    fn varint_in_word_agrees_with_the_bytewise_decode() {
        let mut state = 0x1234_5678_9abc_def0_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state
        };
        for _ in 0..200_000 {
            let mut buf = next().to_le_bytes().to_vec();
            buf.extend_from_slice(&next().to_le_bytes()[..(next() % 4) as usize]);
            // Bias towards short varints: clear high bits at a random byte.
            let stop = (next() % 9) as usize;
            if stop < buf.len() {
                buf[stop] &= 0x7f;
            }
            let bytewise = {
                let mut r = Reader::new(&buf);
                r.varint("v").ok().map(|v| (v, r.pos()))
            };
            match varint_in_word(&buf) {
                Some(got) => assert_eq!(Some(got), bytewise, "{buf:02x?}"),
                None => {
                    if let Some((v, n)) = bytewise {
                        assert!(n > 8 || buf.len() < 8, "{buf:02x?} -> {v} in {n}");
                    }
                }
            }
        }
        for v in [0, 1, 127, 128, 300, (1 << 56) - 1] {
            let mut buf = [0u8; 10];
            let n = put_varint(&mut buf, v);
            assert_eq!(varint_in_word(&buf), Some((v, n)), "{v}");
        }
        assert_eq!(varint_in_word(&[0x80, 0x00, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(varint_in_word(&[0x80; 8]), None);
        assert_eq!(varint_in_word(&[0x05; 7]), None);
    }

    #[test]
    fn rejects_overlong_and_truncated_varints() {
        assert!(Reader::new(&[0x80]).varint("v").is_err());
        assert!(Reader::new(&[0xff; 11]).varint("v").is_err());
        assert!(
            Reader::new(&[0x80, 0x00]).varint("v").is_err(),
            "non-minimal"
        );
        let mut over = [0xffu8; 10];
        over[9] = 0x02;
        assert!(Reader::new(&over).varint("v").is_err());
    }

    #[test]
    fn crc_is_ieee_crc32() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
    }
}
