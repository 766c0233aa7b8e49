//! Decoding the frames of a [`Snapshot`]: each checked against its CRC before use, names
//! resolved in the segment's dictionary, data decompressed and checked to be UTF-8.

use std::sync::Arc;

use crate::cache::DataCache;
use crate::error::{Error, Result};
use crate::event::{EventId, EventRef, StoredEvent, Timestamp};
use crate::format::{self, EventFrame, Frame};
use crate::segment::checked_frame;

use super::Snapshot;

/// Largest decompressed payload a reader will allocate for; larger claims are corruption.
const RAW_LEN_MAX: u32 = 1 << 30;

/// Decodes and checks the frame at `offset`. Returns the event frame (or `None` for a
/// string definition) and the offset of the next frame.
#[inline]
pub(crate) fn raw_frame(snap: &Snapshot, offset: u64) -> Result<(Option<EventFrame<'_>>, u64)> {
    let path = &snap.path;
    let (buf, base, end) = snap.frames_checked(offset)?;
    let (frame, len) =
        checked_frame(buf, offset - base, end - base, path).map_err(|e| e.shifted_by(base))?;
    let next = offset + len as u64;
    match frame {
        Frame::Event(f) => Ok((Some(f), next)),
        Frame::StringDef { .. } => Ok((None, next)),
    }
}

/// `bytes` as text, if they are UTF-8: the vectorised check of `simdutf8` (a few times
/// faster than the standard library's on the kilobytes a listing returns).
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// The data text of an event frame, decompressed when stored as LZ4.
pub(crate) fn frame_data<'a>(
    snap: &Snapshot,
    offset: u64,
    f: &EventFrame<'a>,
) -> Result<Option<std::borrow::Cow<'a, str>>> {
    use std::borrow::Cow;
    let not_utf8 = || Error::corrupt(&snap.path, offset, "event data is not UTF-8");
    match frame_data_bytes_raw(snap, offset, f)? {
        None => Ok(None),
        Some(Cow::Borrowed(b)) => utf8(b).map(|t| Some(Cow::Borrowed(t))).ok_or_else(not_utf8),
        Some(Cow::Owned(b)) => String::from_utf8(b)
            .map(|t| Some(Cow::Owned(t)))
            .map_err(|_| not_utf8()),
    }
}

/// The data of an event frame as bytes, decompressed when stored as LZ4 but not checked
/// to be UTF-8: for searching, which matches bytes (only what is returned is checked).
pub(crate) fn frame_data_bytes_raw<'a>(
    snap: &Snapshot,
    offset: u64,
    f: &EventFrame<'a>,
) -> Result<Option<std::borrow::Cow<'a, [u8]>>> {
    match (f.payload, f.raw_len) {
        (None, _) => Ok(None),
        (Some(p), None) => Ok(Some(std::borrow::Cow::Borrowed(p))),
        (Some(p), Some(raw)) => {
            let mut bytes = Vec::new();
            decompress_payload(snap, offset, p, raw, &mut bytes)?;
            Ok(Some(std::borrow::Cow::Owned(bytes)))
        }
    }
}

/// Decompresses the LZ4 payload `p` of the frame at `offset`, which must give exactly
/// `raw` bytes, into `out` (resized to `raw`; a reused buffer keeps its allocation).
pub(crate) fn decompress_payload(
    snap: &Snapshot,
    offset: u64,
    p: &[u8],
    raw: u32,
    out: &mut Vec<u8>,
) -> Result<()> {
    let path = &snap.path;
    if raw > RAW_LEN_MAX {
        return Err(Error::corrupt(
            path,
            offset,
            format!("decompressed length {raw} implausible"),
        ));
    }
    out.resize(raw as usize, 0);
    let n = lz4_flex::block::decompress_into(p, out).map_err(|e| {
        Error::corrupt(
            path,
            offset,
            format!("lz4 payload does not decompress: {e}"),
        )
    })?;
    if n != raw as usize {
        return Err(Error::corrupt(
            path,
            offset,
            format!("lz4 payload decompresses to {n} bytes, not {raw}"),
        ));
    }
    Ok(())
}

/// The data text of an event frame read outside any snapshot (salvage).
///
/// # Errors
/// What is wrong when the payload does not decompress or is not UTF-8.
pub(crate) fn frame_data_bytes(
    f: &EventFrame<'_>,
) -> std::result::Result<Option<String>, &'static str> {
    match (f.payload, f.raw_len) {
        (None, _) => Ok(None),
        (Some(p), None) => utf8(p).map(|t| Some(t.to_owned())).ok_or("not UTF-8"),
        (Some(p), Some(raw)) => {
            if raw > RAW_LEN_MAX {
                return Err("implausible length");
            }
            let bytes = lz4_flex::block::decompress(p, raw as usize).map_err(|_| "bad lz4")?;
            if bytes.len() != raw as usize {
                return Err("wrong length");
            }
            String::from_utf8(bytes).map(Some).map_err(|_| "not UTF-8")
        }
    }
}

/// The bytes of the `len`-byte frame at `offset` of `snap`, if they carry their checksum
/// ([`format::checksum_matches`]).
#[inline]
pub(crate) fn checksummed_frame(snap: &Snapshot, offset: u64, len: usize) -> Option<&[u8]> {
    frame_bytes(snap, offset, len).filter(|b| format::checksum_matches(b))
}

/// The bytes of the `len`-byte frame at `offset` of `snap`, unchecked: for a frame of a
/// block checked whole ([`CheckedBlocks`](crate::checked::CheckedBlocks)).
#[inline]
pub(crate) fn frame_bytes(snap: &Snapshot, offset: u64, len: usize) -> Option<&[u8]> {
    snap.frames(offset, offset.checked_add(len as u64)?)
}

/// Whether the frames from `from` to `end` (one block's) all pass the checked decode
/// (checksum and every format rule) and end exactly at `end`: what lets a block be marked
/// checked whole ([`CheckedBlocks`](crate::checked::CheckedBlocks)).
pub(crate) fn frames_check_out(snap: &Snapshot, from: u64, end: u64) -> bool {
    let mut at = from;
    while at < end {
        match format::decode_frame(snap.frames(at, end).unwrap_or_default()) {
            Ok(Some((_, len))) => at += len as u64,
            _ => return false,
        }
    }
    at == end
}

/// Dictionary string `r` of `snap`, named by the frame at `offset`.
#[inline]
pub(crate) fn frame_name(snap: &Snapshot, offset: u64, r: u32) -> Result<&str> {
    snap.strings
        .get(r as usize)
        .map(|s| &**s)
        .ok_or_else(|| Error::corrupt(&snap.path, offset, format!("string ref {r} undefined")))
}

/// The borrowed event of frame `f` at `offset` of `snap`, whose data text is `data`.
#[inline]
pub(crate) fn event_ref<'a>(
    snap: &'a Snapshot,
    offset: u64,
    f: &EventFrame<'_>,
    data: Option<&'a str>,
) -> Result<EventRef<'a>> {
    let name = |r: u32| frame_name(snap, offset, r);
    Ok(EventRef {
        id: EventId(snap.header.base_id.wrapping_add(f.id_delta)),
        timestamp: Timestamp(snap.header.base_timestamp_us.wrapping_add(f.ts_delta)),
        event_type: name(f.type_ref)?,
        action: f.action_ref.map(name).transpose()?,
        source: name(f.source_ref)?,
        data,
        hash: f.hash,
    })
}

/// The data text of frame `f` at `offset`: borrowed from the map when stored as is,
/// decompressed into `scratch` (reused from call to call) when stored as LZ4.
#[inline]
pub(crate) fn borrowed_data<'a>(
    snap: &Snapshot,
    offset: u64,
    f: &EventFrame<'a>,
    scratch: &'a mut Vec<u8>,
) -> Result<Option<&'a str>> {
    let not_utf8 = || Error::corrupt(&snap.path, offset, "event data is not UTF-8");
    match (f.payload, f.raw_len) {
        (None, _) => Ok(None),
        (Some(p), None) => utf8(p).map(Some).ok_or_else(not_utf8),
        (Some(p), Some(raw)) => {
            decompress_payload(snap, offset, p, raw, scratch)?;
            let scratch: &'a Vec<u8> = scratch;
            utf8(scratch).map(Some).ok_or_else(not_utf8)
        }
    }
}

/// Builds the stored event of a decoded frame; `data` is its text if already decoded.
pub(crate) fn materialize(
    snap: &Snapshot,
    offset: u64,
    f: &EventFrame<'_>,
    data: Option<String>,
) -> Result<StoredEvent> {
    materialize_cached(snap, offset, f, data, None)
}

/// [`materialize`], keeping decompressed data in `cache` and taking it from there.
pub(crate) fn materialize_cached(
    snap: &Snapshot,
    offset: u64,
    f: &EventFrame<'_>,
    data: Option<String>,
    cache: Option<&DataCache>,
) -> Result<StoredEvent> {
    let segment = snap.header.segment_id;
    let data = match (data, cache) {
        (Some(d), _) => Some(d),
        (None, Some(cache)) if f.raw_len.is_some() => {
            if let Some(text) = cache.get(segment, offset, f.hash) {
                Some(String::from(&*text))
            } else {
                let text = frame_data(snap, offset, f)?.map(std::borrow::Cow::into_owned);
                if let Some(t) = &text {
                    cache.insert(segment, offset, f.hash, Arc::from(t.as_str()));
                }
                text
            }
        }
        (None, _) => frame_data(snap, offset, f)?.map(std::borrow::Cow::into_owned),
    };
    // The data is moved in, not copied through the borrowed event.
    Ok(StoredEvent {
        data,
        ..event_ref(snap, offset, f, None)?.to_stored()
    })
}

/// Decodes the event frame at `offset`, or skips a string definition. Returns the event (if
/// the frame was one) and the offset of the next frame.
pub(crate) fn read_frame(snap: &Snapshot, offset: u64) -> Result<(Option<StoredEvent>, u64)> {
    let (frame, next) = raw_frame(snap, offset)?;
    match frame {
        Some(f) => Ok((Some(materialize(snap, offset, &f, None)?), next)),
        None => Ok((None, next)),
    }
}
