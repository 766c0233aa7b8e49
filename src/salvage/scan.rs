//! Reading one segment file of a damaged store: what of its header, commit slots and footer
//! still holds, and every frame whose checksum holds, found without trusting the header.
//!
//! Nothing here trusts a length or an offset that no checksum covers. The fixed header, a
//! commit slot and the footer are each used only when their CRC holds; a footer is looked
//! for at the sealed slot's `committed_len`, or, when no slot holds, at every place its
//! magic appears, from the end of the file back. Frames are then found from offset 256 to
//! the committed end (the file's end when no slot holds): past a frame that fails, every
//! following offset is tried until a frame decodes and its checksum holds again.
//! `format-spec/FORMAT.md#salvage`

use crate::format::{
    decode_frame, CommitSlot, EventFrame, Footer, Frame, SegmentHeader, FLAGS_KNOWN, FOOTER_MAGIC,
    FRAME_HEADER_LEN, KIND_EVENT, KIND_MASK, KIND_STRING, SEGMENT_HEADER_LEN,
};

/// What of a segment's own records (header, slot, footer) still holds.
#[derive(Debug, Default)]
pub(super) struct Located {
    /// The fixed header, when its checksum and fields hold.
    pub header: Option<SegmentHeader>,
    /// Why the fixed header was not used, when it was not.
    pub header_damage: Option<String>,
    /// The header's format version, when it is newer than this build reads (CRC valid).
    pub newer_version: Option<u32>,
    /// The newest valid commit slot.
    pub slot: Option<CommitSlot>,
    /// The footer and its file offset, when one was found whose checksum holds.
    pub footer: Option<(usize, Footer)>,
    /// Where frames end: the slot's `committed_len` (cut to the file), the footer's offset,
    /// or the file's end.
    pub end: usize,
    /// Whether `end` is known (a slot or a footer said it) rather than the file's end.
    pub end_known: bool,
    /// Committed bytes the file no longer has (a valid slot's `committed_len` past its end).
    pub bytes_missing: u64,
}

/// Finds what of `bytes`' header, slots and footer holds, and where its frames end.
pub(super) fn locate(bytes: &[u8]) -> Located {
    let mut l = Located {
        end: bytes.len(),
        ..Located::default()
    };
    match SegmentHeader::decode(bytes) {
        Ok(h) => l.header = Some(h),
        Err(e) => {
            if let crate::format::DecodeKind::UnsupportedVersion { found } = e.kind {
                l.newer_version = Some(found);
            }
            l.header_damage = Some(format!("{} at byte {}", e.what, e.offset));
        }
    }
    l.slot = bytes
        .get(..SEGMENT_HEADER_LEN)
        .and_then(|h| CommitSlot::newest(h).ok())
        .filter(|s| s.committed_len >= SEGMENT_HEADER_LEN as u64);
    if let Some(s) = l.slot {
        let committed = usize::try_from(s.committed_len).unwrap_or(usize::MAX);
        l.end = committed.min(bytes.len());
        l.end_known = true;
        l.bytes_missing = s.committed_len.saturating_sub(bytes.len() as u64);
        if s.sealed {
            l.footer = footer_at(bytes, committed).map(|f| (committed, f));
        }
    } else if let Some((at, f)) = find_footer(bytes) {
        l.end = at;
        l.end_known = true;
        l.footer = Some((at, f));
    }
    l
}

/// The footer starting at `at`, if its checksum and structure hold.
fn footer_at(bytes: &[u8], at: usize) -> Option<Footer> {
    let rest = bytes.get(at..)?;
    let len = Footer::peek_len(rest).ok()?;
    Footer::decode(rest.get(..len)?).ok()
}

/// The last footer in `bytes` whose checksum holds, and its offset: for a segment whose
/// slots are lost. Its magic may also appear in event data; only the checksum decides.
fn find_footer(bytes: &[u8]) -> Option<(usize, Footer)> {
    let mut at = bytes.len().checked_sub(FOOTER_MAGIC.len())?;
    while at >= SEGMENT_HEADER_LEN {
        if bytes[at..].starts_with(FOOTER_MAGIC) {
            if let Some(f) = footer_at(bytes, at) {
                return Some((at, f));
            }
        }
        at -= 1;
    }
    None
}

/// A frame whose checksum holds, found by [`scan`].
#[derive(Debug)]
pub(super) enum Found<'a> {
    /// An event frame at file offset `offset`.
    Event {
        offset: usize,
        frame: EventFrame<'a>,
    },
    /// A string definition.
    String { string_ref: u32, text: &'a str },
}

/// Frames found in a segment and the regions skipped between them.
#[derive(Debug, Default)]
pub(super) struct Scanned<'a> {
    /// Frames whose checksum holds, in file order.
    pub frames: Vec<Found<'a>>,
    /// Regions `start..end` skipped because no frame there holds its checksum.
    pub skipped: Vec<(usize, usize)>,
}

/// Finds every frame of `bytes[256..end]` whose checksum holds. A region where none does is
/// skipped and recorded, unless it is the zero-filled, never-written end of a segment whose
/// committed end is unknown (`end_known` false).
pub(super) fn scan(bytes: &[u8], end: usize, end_known: bool) -> Scanned<'_> {
    let end = end.min(bytes.len());
    let mut out = Scanned::default();
    let mut at = SEGMENT_HEADER_LEN;
    let mut damaged_since: Option<usize> = None;
    while at < end {
        if let Some((frame, len)) = frame_at(&bytes[at..end]) {
            if let Some(start) = damaged_since.take() {
                out.skipped.push((start, at));
            }
            out.frames.push(match frame {
                Frame::Event(frame) => Found::Event { offset: at, frame },
                Frame::StringDef { string_ref, text } => Found::String { string_ref, text },
            });
            at += len;
            continue;
        }
        damaged_since.get_or_insert(at);
        // A frame's four length bytes are not all zero, so inside a run of zeros only the
        // last three offsets can start one.
        let zeros = bytes[at..end].iter().take_while(|&&b| b == 0).count();
        at += zeros.saturating_sub(3).max(1);
    }
    if let Some(start) = damaged_since {
        let unwritten = !end_known && bytes[start..end].iter().all(|&b| b == 0);
        if !unwritten {
            out.skipped.push((start, end));
        }
    }
    out
}

/// The frame at the start of `buf`, if it decodes and its checksum holds. Its length and
/// flags are looked at first, so most offsets of a damaged region cost no checksum.
fn frame_at(buf: &[u8]) -> Option<(Frame<'_>, usize)> {
    let body_len = u32::from_le_bytes(*buf.first_chunk::<4>()?) as usize;
    if body_len == 0 || body_len > buf.len().saturating_sub(FRAME_HEADER_LEN) {
        return None;
    }
    let flags = *buf.get(FRAME_HEADER_LEN)?;
    let kind = flags & KIND_MASK;
    if flags & !FLAGS_KNOWN != 0 || (kind != KIND_EVENT && kind != KIND_STRING) {
        return None;
    }
    decode_frame(buf).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode_string_def;

    #[test]
    fn finds_frames_past_garbage_and_records_the_region() {
        let mut bytes = vec![0u8; SEGMENT_HEADER_LEN];
        bytes.extend(encode_string_def(0, "a"));
        let garbage_at = bytes.len();
        bytes.extend([0xAB; 37]);
        bytes.extend(encode_string_def(1, "b"));
        let s = scan(&bytes, bytes.len(), true);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.skipped, vec![(garbage_at, garbage_at + 37)]);
    }

    #[test]
    fn an_unwritten_zero_end_is_not_damage_unless_the_end_is_known() {
        let mut bytes = vec![0u8; SEGMENT_HEADER_LEN];
        bytes.extend(encode_string_def(0, "a"));
        let tail = bytes.len();
        bytes.extend([0u8; 100]);
        assert!(scan(&bytes, bytes.len(), false).skipped.is_empty());
        assert_eq!(
            scan(&bytes, bytes.len(), true).skipped,
            vec![(tail, tail + 100)]
        );
    }

    #[test]
    fn a_frame_whose_length_starts_with_zero_bytes_is_found_after_zeros() {
        let mut bytes = vec![0u8; SEGMENT_HEADER_LEN + 50];
        let long = "x".repeat(300); // body_len 302 = 2e 01 00 00: no leading zero
        bytes.extend(encode_string_def(0, &long));
        let s = scan(&bytes, bytes.len(), true);
        assert_eq!(s.frames.len(), 1);
        let long = "y".repeat(254); // body_len 256 = 00 01 00 00
        let mut bytes = vec![0u8; SEGMENT_HEADER_LEN + 50];
        bytes.extend(encode_string_def(0, &long));
        assert_eq!(scan(&bytes, bytes.len(), true).frames.len(), 1);
    }
}
