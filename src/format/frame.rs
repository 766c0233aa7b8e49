//! Record frames: one event, or one string definition of the segment's dictionary.
//! `format-spec/FORMAT.md#frame`

use super::{crc32, put_varint, varint_len, zigzag_encode, DecodeError, Reader};

/// Bytes before a frame's body: `body_len` and `crc`.
pub const FRAME_HEADER_LEN: usize = 8;

// The flags byte that opens every frame body. `format-spec/FORMAT.md#frame`
pub(crate) const KIND_MASK: u8 = 0b11;
pub(crate) const KIND_EVENT: u8 = 1;
pub(crate) const KIND_STRING: u8 = 2;
pub(crate) const FLAG_LZ4: u8 = 1 << 2;
pub(crate) const FLAG_ACTION: u8 = 1 << 3;
pub(crate) const FLAG_DATA: u8 = 1 << 4;
pub(crate) const FLAGS_KNOWN: u8 = KIND_MASK | FLAG_LZ4 | FLAG_ACTION | FLAG_DATA;

/// Longest possible event frame for data of `data_len_max` bytes: header, flags, six
/// varints of at most 10 bytes, the hash, and the data (compressed data is only stored when
/// it is shorter than the raw data).
pub fn frame_len_max(data_len_max: usize) -> usize {
    FRAME_HEADER_LEN + 1 + 6 * 10 + 8 + data_len_max
}

/// An event frame's fields, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFrame<'a> {
    /// `id - base_id`.
    pub id_delta: u64,
    /// `timestamp - base_timestamp_us`.
    pub ts_delta: i64,
    /// Dictionary reference of the event type.
    pub type_ref: u32,
    /// Dictionary reference of the source.
    pub source_ref: u32,
    /// Dictionary reference of the action, if any.
    pub action_ref: Option<u32>,
    /// The content hash.
    pub hash: u64,
    /// The data bytes as stored: raw JSON text, or an LZ4 block when `raw_len` is set.
    pub payload: Option<&'a [u8]>,
    /// Length of the JSON text before compression, when the payload is LZ4.
    pub raw_len: Option<u32>,
}

/// A decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An event.
    Event(EventFrame<'a>),
    /// The definition of dictionary string `string_ref`.
    StringDef {
        /// Its reference; equals the number of definitions before it in the segment.
        string_ref: u32,
        /// Its text.
        text: &'a str,
    },
}

fn finish(out: &mut [u8], body_len: usize) -> usize {
    let len_field =
        u32::try_from(body_len).expect("frame bodies are bounded by segment_len < 4 GiB");
    out[0..4].copy_from_slice(&len_field.to_le_bytes());
    let crc = crc32(&[
        &out[0..4],
        &out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len],
    ]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    FRAME_HEADER_LEN + body_len
}

impl EventFrame<'_> {
    /// Exact encoded length of this frame.
    pub fn encoded_len(&self) -> usize {
        let mut n = FRAME_HEADER_LEN + 1;
        n += varint_len(self.id_delta);
        n += varint_len(zigzag_encode(self.ts_delta));
        n += varint_len(u64::from(self.type_ref));
        n += varint_len(u64::from(self.source_ref));
        if let Some(a) = self.action_ref {
            n += varint_len(u64::from(a));
        }
        n += 8;
        if let Some(payload) = self.payload {
            if let Some(raw) = self.raw_len {
                n += varint_len(u64::from(raw));
            }
            n += payload.len();
        }
        n
    }
}

/// Encodes an event frame at the start of `out`, which must hold `f.encoded_len()` bytes.
/// Returns the bytes written.
pub fn encode_event(out: &mut [u8], f: &EventFrame<'_>) -> usize {
    let mut flags = KIND_EVENT;
    if f.action_ref.is_some() {
        flags |= FLAG_ACTION;
    }
    if f.payload.is_some() {
        flags |= FLAG_DATA;
        if f.raw_len.is_some() {
            flags |= FLAG_LZ4;
        }
    }
    let mut p = FRAME_HEADER_LEN;
    out[p] = flags;
    p += 1;
    p += put_varint(&mut out[p..], f.id_delta);
    p += put_varint(&mut out[p..], zigzag_encode(f.ts_delta));
    p += put_varint(&mut out[p..], u64::from(f.type_ref));
    p += put_varint(&mut out[p..], u64::from(f.source_ref));
    if let Some(a) = f.action_ref {
        p += put_varint(&mut out[p..], u64::from(a));
    }
    out[p..p + 8].copy_from_slice(&f.hash.to_le_bytes());
    p += 8;
    if let Some(payload) = f.payload {
        if let Some(raw) = f.raw_len {
            p += put_varint(&mut out[p..], u64::from(raw));
        }
        out[p..p + payload.len()].copy_from_slice(payload);
        p += payload.len();
    }
    finish(out, p - FRAME_HEADER_LEN)
}

/// Encodes a string-definition frame into a new vector.
pub fn encode_string_def(string_ref: u32, text: &str) -> Vec<u8> {
    let body_len = 1 + varint_len(u64::from(string_ref)) + text.len();
    let mut out = vec![0u8; FRAME_HEADER_LEN + body_len];
    let mut p = FRAME_HEADER_LEN;
    out[p] = KIND_STRING;
    p += 1;
    p += put_varint(&mut out[p..], u64::from(string_ref));
    out[p..].copy_from_slice(text.as_bytes());
    finish(&mut out, body_len);
    out
}

#[inline]
fn to_u32(v: u64, at: usize, what: &str) -> Result<u32, DecodeError> {
    u32::try_from(v).map_err(|_| out_of_range(v, at, what))
}

#[cold]
#[inline(never)]
fn out_of_range(v: u64, at: usize, what: &str) -> DecodeError {
    DecodeError::new(at, format!("{what} {v} out of range"))
}

/// Reads a frame's total length and, for an event frame, its id delta, without checking the
/// checksum: for skipping over frames to the one wanted, which is then decoded in full.
/// `None` when the bytes do not even have that shape (the full decode reports why).
pub fn peek_frame(buf: &[u8]) -> Option<(Option<u64>, usize)> {
    let mut r = Reader::new(buf);
    let body_len = r.u32("frame length").ok()? as usize;
    if body_len == 0 || body_len > buf.len().saturating_sub(FRAME_HEADER_LEN) {
        return None;
    }
    r.u32("frame crc").ok()?;
    let flags = r.u8("frame flags").ok()?;
    let id_delta = match flags & KIND_MASK {
        KIND_EVENT => Some(r.varint("id delta").ok()?),
        _ => None,
    };
    Some((id_delta, FRAME_HEADER_LEN + body_len))
}

/// Whether the frame at the start of `buf` is an event frame with an LZ4 payload, and its
/// whole length, from its length and flags alone (its checksum is not checked); `None`
/// when those are off.
pub fn peek_compressed(buf: &[u8]) -> Option<(bool, usize)> {
    let len_bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let body_len = u32::from_le_bytes(len_bytes) as usize;
    if body_len == 0 || body_len > buf.len().saturating_sub(FRAME_HEADER_LEN) {
        return None;
    }
    let flags = buf[FRAME_HEADER_LEN];
    match flags & KIND_MASK {
        _ if flags & !FLAGS_KNOWN != 0 => None,
        KIND_EVENT => Some((flags & FLAG_LZ4 != 0, FRAME_HEADER_LEN + body_len)),
        KIND_STRING => Some((false, FRAME_HEADER_LEN + body_len)),
        _ => None,
    }
}

/// The fields of an event frame a query filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// `id - base_id`.
    pub id_delta: u64,
    /// `timestamp - base_timestamp_us`.
    pub ts_delta: i64,
    /// Dictionary reference of the event type.
    pub type_ref: u32,
    /// Dictionary reference of the source.
    pub source_ref: u32,
    /// Dictionary reference of the action, if any.
    pub action_ref: Option<u32>,
}

impl From<&EventFrame<'_>> for FrameHead {
    fn from(f: &EventFrame<'_>) -> FrameHead {
        FrameHead {
            id_delta: f.id_delta,
            ts_delta: f.ts_delta,
            type_ref: f.type_ref,
            source_ref: f.source_ref,
            action_ref: f.action_ref,
        }
    }
}

/// Reads an event frame's filter fields and the frame's total length, without the checksum
/// and without looking past the action reference: for ruling frames out while scanning a
/// block (most of a selective query's work). `Some((None, len))` for a string definition;
/// `None` when the bytes do not have the shape of a frame (the checked decode then says
/// why). Frames that pass are decoded again in full, checksum checked, before anything of
/// them is returned.
pub fn peek_head(buf: &[u8]) -> Option<(Option<FrameHead>, usize)> {
    fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let byte = *b.get(*pos + i)?;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                *pos += i + 1;
                return Some(v);
            }
        }
        None
    }
    let len_bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let body_len = u32::from_le_bytes(len_bytes) as usize;
    if body_len == 0 || body_len > buf.len().saturating_sub(FRAME_HEADER_LEN) {
        return None;
    }
    let total = FRAME_HEADER_LEN + body_len;
    let body = &buf[FRAME_HEADER_LEN..total];
    let flags = body[0];
    if flags & KIND_MASK != KIND_EVENT {
        return Some((None, total));
    }
    let (head, _) = event_head(body, flags, varint)?;
    Some((Some(head), total))
}

/// The head fields of an event frame's `body` (whose first byte is `flags`) read with
/// `varint`, and where they end; `None` when they do not decode.
#[inline]
fn event_head(
    body: &[u8],
    flags: u8,
    varint: impl Fn(&[u8], &mut usize) -> Option<u64>,
) -> Option<(FrameHead, usize)> {
    let mut pos = 1;
    let id_delta = varint(body, &mut pos)?;
    let ts = varint(body, &mut pos)?;
    let ts_delta = (ts >> 1).cast_signed() ^ -((ts & 1).cast_signed());
    let type_ref = u32::try_from(varint(body, &mut pos)?).ok()?;
    let source_ref = u32::try_from(varint(body, &mut pos)?).ok()?;
    let action_ref = if flags & FLAG_ACTION != 0 {
        Some(u32::try_from(varint(body, &mut pos)?).ok()?)
    } else {
        None
    };
    let head = FrameHead {
        id_delta,
        ts_delta,
        type_ref,
        source_ref,
        action_ref,
    };
    Some((head, pos))
}

/// Decodes the frame at the start of `buf` and checks its checksum.
///
/// Returns `Ok(None)` when the first four bytes are zero: the unwritten, zero-filled part of
/// a segment, which is never a frame. Otherwise returns the frame and its total length.
///
/// # Errors
/// A [`DecodeError`] when the frame is truncated, fails its checksum, or breaks a rule.
#[inline]
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    decode(buf, true)
}

/// Like [`decode_frame`] but without checking the checksum: for deciding cheaply that a
/// frame cannot match a query. Whatever is returned to a caller MUST come from
/// [`decode_frame`].
///
/// # Errors
/// A [`DecodeError`] when the frame is truncated or breaks a structural rule.
pub fn decode_frame_unchecked(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    decode(buf, false)
}

/// The event frame at the start of `buf`, decoded without its checksum, when it has the
/// shape every writer gives one (minimal varints, each ending within 8 bytes); `None` for
/// anything else (a string definition, a zero length, a cut frame, any rule broken), which
/// [`decode_frame_unchecked`] then decodes or reports. Where it answers it agrees with that
/// decode; it is the lean version a scan runs on every frame it matches on.
#[inline]
pub fn peek_event(buf: &[u8]) -> Option<(EventFrame<'_>, usize)> {
    #[inline]
    fn varint(body: &[u8], pos: &mut usize) -> Option<u64> {
        let (v, n) = super::varint_fast(body.get(*pos..)?)?;
        *pos += n;
        Some(v)
    }
    let body_len = u32::from_le_bytes(*buf.first_chunk::<4>()?) as usize;
    let total = FRAME_HEADER_LEN.checked_add(body_len)?;
    let body = buf.get(FRAME_HEADER_LEN..total)?;
    let flags = *body.first()?;
    if flags & !FLAGS_KNOWN != 0 || flags & KIND_MASK != KIND_EVENT {
        return None;
    }
    let (head, mut pos) = event_head(body, flags, varint)?;
    let hash = u64::from_le_bytes(*body.get(pos..)?.first_chunk::<8>()?);
    pos += 8;
    let (payload, raw_len) = if flags & FLAG_DATA != 0 {
        let raw_len = if flags & FLAG_LZ4 != 0 {
            Some(u32::try_from(varint(body, &mut pos)?).ok()?)
        } else {
            None
        };
        (Some(body.get(pos..)?), raw_len)
    } else {
        if flags & FLAG_LZ4 != 0 || pos != body.len() {
            return None;
        }
        (None, None)
    };
    let frame = EventFrame {
        id_delta: head.id_delta,
        ts_delta: head.ts_delta,
        type_ref: head.type_ref,
        source_ref: head.source_ref,
        action_ref: head.action_ref,
        hash,
        payload,
        raw_len,
    };
    Some((frame, total))
}

/// Whether the frame at the start of `buf` carries the checksum of its bytes. A frame that
/// [`decode_frame_unchecked`] decoded and that passes this decodes the same through
/// [`decode_frame`], so a query that matched on the unchecked decode checks only this
/// before returning the frame.
pub fn checksum_matches(buf: &[u8]) -> bool {
    let Some(head) = buf.get(..FRAME_HEADER_LEN) else {
        return false;
    };
    let body_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len)
        .is_some_and(|body| body_len > 0 && crc == crc32(&[&buf[0..4], body]))
}

fn decode(buf: &[u8], check_crc: bool) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    let mut r = Reader::new(buf);
    let body_len = r.u32("frame length")? as usize;
    if body_len == 0 {
        return Ok(None);
    }
    let crc = r.u32("frame crc")?;
    let body = r.take(body_len, "frame body")?;
    if check_crc && crc != crc32(&[&buf[0..4], body]) {
        return Err(DecodeError::checksum(0, "frame checksum mismatch"));
    }
    let total = FRAME_HEADER_LEN + body_len;
    let at = |r: &Reader<'_>| FRAME_HEADER_LEN + r.pos();
    let mut r = Reader::new(body);
    let flags = r.u8("frame flags")?;
    if flags & !FLAGS_KNOWN != 0 {
        return Err(DecodeError::new(
            FRAME_HEADER_LEN,
            "reserved frame flags set",
        ));
    }
    match flags & KIND_MASK {
        KIND_EVENT => {
            let id_delta = r.varint("id delta")?;
            let ts_delta = r.zigzag("timestamp delta")?;
            let p = at(&r);
            let type_ref = to_u32(r.varint("type ref")?, p, "type ref")?;
            let p = at(&r);
            let source_ref = to_u32(r.varint("source ref")?, p, "source ref")?;
            let action_ref = if flags & FLAG_ACTION != 0 {
                let p = at(&r);
                Some(to_u32(r.varint("action ref")?, p, "action ref")?)
            } else {
                None
            };
            let hash = r.u64("content hash")?;
            let (payload, raw_len) = if flags & FLAG_DATA != 0 {
                let raw_len = if flags & FLAG_LZ4 != 0 {
                    let p = at(&r);
                    Some(to_u32(r.varint("raw length")?, p, "raw length")?)
                } else {
                    None
                };
                (Some(r.rest()), raw_len)
            } else {
                if flags & FLAG_LZ4 != 0 {
                    return Err(DecodeError::new(FRAME_HEADER_LEN, "lz4 flag without data"));
                }
                if r.remaining() != 0 {
                    return Err(DecodeError::new(at(&r), "trailing bytes after event"));
                }
                (None, None)
            };
            Ok(Some((
                Frame::Event(EventFrame {
                    id_delta,
                    ts_delta,
                    type_ref,
                    source_ref,
                    action_ref,
                    hash,
                    payload,
                    raw_len,
                }),
                total,
            )))
        }
        KIND_STRING => {
            if flags != KIND_STRING {
                return Err(DecodeError::new(
                    FRAME_HEADER_LEN,
                    "flags set on string frame",
                ));
            }
            let p = at(&r);
            let string_ref = to_u32(r.varint("string ref")?, p, "string ref")?;
            let p = at(&r);
            let text = std::str::from_utf8(r.rest())
                .map_err(|_| DecodeError::new(p, "string is not UTF-8"))?;
            Ok(Some((Frame::StringDef { string_ref, text }, total)))
        }
        _ => Err(DecodeError::new(FRAME_HEADER_LEN, "invalid frame kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: Option<&[u8]>, raw_len: Option<u32>) -> EventFrame<'_> {
        EventFrame {
            id_delta: 300,
            ts_delta: -5_000_000,
            type_ref: 0,
            source_ref: 130,
            action_ref: Some(2),
            hash: 0x0123_4567_89ab_cdef,
            payload,
            raw_len,
        }
    }

    fn encode(f: &EventFrame<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; f.encoded_len()];
        assert_eq!(encode_event(&mut buf, f), buf.len());
        buf
    }

    /// Wherever the lean `peek_event` answers, the full unchecked decode gives the same
    /// frame: checked on encoded frames of every shape and on each with any one byte
    /// changed (which covers cut varints, stray flags, wrong lengths).
    #[test]
    fn peek_event_agrees_with_the_full_decode() {
        let data = br#"{"path":"/tmp/x","size":12345}"#;
        let shapes = [
            sample(Some(data), None),
            sample(Some(data), Some(4000)),
            sample(None, None),
            EventFrame {
                id_delta: 1 << 40,
                ts_delta: i64::MIN / 4,
                action_ref: None,
                ..sample(Some(b""), None)
            },
        ];
        let mut answered = 0;
        for (i, f) in shapes.iter().enumerate() {
            let buf = encode(f);
            // The last shape's timestamp delta takes 9 bytes: the full decode's to read.
            let lean = (i < 3).then_some((*f, buf.len()));
            assert_eq!(peek_event(&buf), lean, "{f:?}");
            for i in 0..buf.len() {
                for x in [0x01, 0x80, 0xff] {
                    let mut bad = buf.clone();
                    bad[i] ^= x;
                    if let Some(got) = peek_event(&bad) {
                        answered += 1;
                        let full = decode_frame_unchecked(&bad).ok().flatten();
                        assert_eq!(
                            full,
                            Some((Frame::Event(got.0), got.1)),
                            "byte {i} ^ {x:#x}"
                        );
                    }
                }
            }
        }
        assert!(
            answered > 100,
            "most single changes still decode: {answered}"
        );
        assert_eq!(peek_event(&[0u8; 16]), None);
    }

    /// `checksum_matches` holds exactly where the checked decode succeeds: any flipped
    /// byte, a cut frame or a zero length fails it.
    #[test]
    fn checksum_matches_where_the_checked_decode_succeeds() {
        let data = br#"{"path":"/tmp/x"}"#;
        let buf = encode(&sample(Some(data), None));
        assert!(checksum_matches(&buf));
        assert!(decode_frame(&buf).is_ok());
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(!checksum_matches(&bad), "flipped byte {i}");
            assert!(decode_frame(&bad).is_err(), "flipped byte {i}");
        }
        for n in 0..buf.len() {
            assert!(!checksum_matches(&buf[..n]), "cut at {n}");
        }
        assert!(!checksum_matches(&[0u8; 16]));
    }

    #[test]
    fn peeked_head_equals_the_decoded_fields() {
        for (payload, raw_len) in [
            (None, None),
            (Some(&b"{}"[..]), None),
            (Some(&[1u8, 2, 3][..]), Some(9)),
        ] {
            for action_ref in [None, Some(300)] {
                let f = EventFrame {
                    action_ref,
                    ts_delta: -123_456_789,
                    id_delta: 70_000,
                    ..sample(payload, raw_len)
                };
                let b = encode(&f);
                assert_eq!(peek_head(&b), Some((Some(FrameHead::from(&f)), b.len())));
            }
        }
        let s = encode_string_def(7, "finder");
        assert_eq!(peek_head(&s), Some((None, s.len())));
        assert_eq!(peek_head(&[0, 0, 0, 0, 0, 0, 0, 0]), None);
        let b = encode(&sample(None, None));
        for cut in 0..b.len() {
            assert_eq!(peek_head(&b[..cut]), None, "cut at {cut}");
            assert_eq!(peek_frame(&b[..cut]), None, "peek_frame, cut at {cut}");
        }
    }

    #[test]
    fn event_frames_round_trip() {
        for f in [
            sample(Some(br#"{"path":"/tmp/x"}"#), None),
            sample(Some(b"\x10\x20lz4"), Some(4000)),
            sample(None, None),
            EventFrame {
                action_ref: None,
                ..sample(None, None)
            },
        ] {
            let buf = encode(&f);
            let (got, len) = decode_frame(&buf).unwrap().unwrap();
            assert_eq!(len, buf.len());
            assert_eq!(got, Frame::Event(f));
        }
    }

    #[test]
    fn string_frames_round_trip() {
        let buf = encode_string_def(9, "Google Chrome ✓");
        let (got, len) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!(len, buf.len());
        assert_eq!(
            got,
            Frame::StringDef {
                string_ref: 9,
                text: "Google Chrome ✓"
            }
        );
    }

    #[test]
    fn zero_bytes_are_end_of_segment_never_a_frame() {
        assert_eq!(decode_frame(&[0u8; 64]).unwrap(), None);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = encode(&sample(Some(br#"{"a":1}"#), None));
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                match decode_frame(&bad) {
                    Err(_) => {}
                    Ok(None) => assert!(i < 4, "zero length only from the length field"),
                    Ok(Some(_)) => panic!("flip of bit {bit} at byte {i} accepted"),
                }
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let buf = encode(&sample(Some(br#"{"a":1}"#), None));
        for cut in 0..buf.len() {
            assert!(decode_frame(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
