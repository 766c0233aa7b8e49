//! The store's identity file and the segment header with its two commit slots.
//! `format-spec/FORMAT.md#store-meta`, `#segment-header`, `#commit-slot`

use super::{crc32, DecodeError, DecodeKind, Reader, FORMAT_VERSION};

/// Length of `selflog.meta`.
pub const META_LEN: usize = 32;
/// Length of a segment header; the first frame starts here.
pub const SEGMENT_HEADER_LEN: usize = 256;
/// Length of one commit slot.
pub const COMMIT_SLOT_LEN: usize = 56;
/// Offsets of commit slots A and B in the segment header.
pub const SLOT_OFFSETS: [usize; 2] = [64, 120];

/// First eight bytes of `selflog.meta`.
pub(crate) const META_MAGIC: &[u8; 8] = b"SLOGSTOR";
/// First eight bytes of a segment file.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"SLOGSEG\0";
/// Length of the segment header's fixed part, which slot A follows.
pub(crate) const FIXED_HEADER_LEN: usize = 64;

const _: () = assert!(SLOT_OFFSETS[0] >= FIXED_HEADER_LEN);
const _: () = assert!(SLOT_OFFSETS[1] >= SLOT_OFFSETS[0] + COMMIT_SLOT_LEN);
const _: () = assert!(SLOT_OFFSETS[1] + COMMIT_SLOT_LEN <= SEGMENT_HEADER_LEN);

fn check_version(found: u32) -> Result<(), DecodeError> {
    if found == 0 {
        return Err(DecodeError::new(8, "format version 0 is invalid"));
    }
    if found > FORMAT_VERSION {
        return Err(DecodeError {
            kind: DecodeKind::UnsupportedVersion { found },
            ..DecodeError::new(8, format!("unsupported format version {found}"))
        });
    }
    Ok(())
}

/// The contents of `selflog.meta`, which marks a directory as a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMeta {
    /// Format version the store was created with.
    pub version: u32,
    /// Creation time, microseconds since the epoch.
    pub created_us: i64,
}

impl StoreMeta {
    /// Encodes the 32-byte file.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..8].copy_from_slice(META_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        // 12..16 flags and 24..28 reserved stay zero.
        b[16..24].copy_from_slice(&self.created_us.to_le_bytes());
        let crc = crc32(&[&b[0..28]]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks magic, checksum, version and reserved fields.
    ///
    /// # Errors
    /// A `DecodeError` naming the failing field; a version error has offset 8.
    pub fn decode(b: &[u8]) -> Result<StoreMeta, DecodeError> {
        let mut r = Reader::new(b);
        if r.take(8, "store magic")? != META_MAGIC {
            return Err(DecodeError::new(0, "not a selflog store (bad magic)"));
        }
        if b.len() > META_LEN {
            return Err(DecodeError::new(
                META_LEN,
                "store meta is longer than 32 bytes",
            ));
        }
        let version = r.u32("version")?;
        let flags = r.u32("flags")?;
        let created_us = r.i64("created_us")?;
        let reserved = r.u32("reserved")?;
        let crc = r.u32("crc")?;
        if crc != crc32(&[&b[0..28]]) {
            return Err(DecodeError::checksum(28, "store meta checksum mismatch"));
        }
        check_version(version)?;
        if flags != 0 || reserved != 0 {
            return Err(DecodeError::new(12, "reserved bits set in store meta"));
        }
        Ok(StoreMeta {
            version,
            created_us,
        })
    }
}

/// The fixed part of a segment header, written once when the segment is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version.
    pub version: u32,
    /// Which stream the segment belongs to (1 = events).
    pub stream_kind: u8,
    /// The segment's number in its stream, from 1.
    pub segment_id: u32,
    /// Every event id in the segment is at least this; frames store `id - base_id`.
    pub base_id: u64,
    /// Frames store `timestamp - base_timestamp_us`.
    pub base_timestamp_us: i64,
    /// Length the file was allocated with.
    pub segment_len: u64,
    /// Append-clock time of creation.
    pub created_us: i64,
}

impl SegmentHeader {
    /// Encodes the 64-byte fixed part (bytes 0..64 of the file).
    pub fn encode(&self) -> [u8; FIXED_HEADER_LEN] {
        let mut b = [0u8; FIXED_HEADER_LEN];
        b[0..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12] = self.stream_kind;
        b[16..20].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.base_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.base_timestamp_us.to_le_bytes());
        b[40..48].copy_from_slice(&self.segment_len.to_le_bytes());
        b[48..56].copy_from_slice(&self.created_us.to_le_bytes());
        let crc = crc32(&[&b[0..60]]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the fixed part from the first 64 bytes of `b`.
    ///
    /// # Errors
    /// A `DecodeError` naming the failing field.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, DecodeError> {
        let mut r = Reader::new(b);
        if r.take(8, "segment magic")? != SEGMENT_MAGIC {
            return Err(DecodeError::new(0, "not a selflog segment (bad magic)"));
        }
        let version = r.u32("version")?;
        let stream_kind = r.u8("stream_kind")?;
        let reserved_a = r.take(3, "reserved")?;
        let segment_id = r.u32("segment_id")?;
        let reserved_b = r.u32("reserved")?;
        let base_id = r.u64("base_id")?;
        let base_timestamp_us = r.i64("base_timestamp_us")?;
        let segment_len = r.u64("segment_len")?;
        let created_us = r.i64("created_us")?;
        let reserved_c = r.u32("reserved")?;
        let crc = r.u32("header crc")?;
        if crc != crc32(&[&b[0..60]]) {
            return Err(DecodeError::checksum(
                60,
                "segment header checksum mismatch",
            ));
        }
        // Version 2 is a compacted segment: the same header, a layout record in the
        // reserved bytes. `format-spec/FORMAT.md#compacted-segments`
        if version != super::PACKED_VERSION {
            check_version(version)?;
        }
        if reserved_a != [0, 0, 0] || reserved_b != 0 || reserved_c != 0 {
            return Err(DecodeError::new(13, "reserved bytes set in segment header"));
        }
        if stream_kind == 0 {
            return Err(DecodeError::new(12, "stream kind 0 is invalid"));
        }
        if base_id == 0 {
            return Err(DecodeError::new(
                24,
                "base_id 0 is invalid (ids start at 1)",
            ));
        }
        Ok(SegmentHeader {
            version,
            stream_kind,
            segment_id,
            base_id,
            base_timestamp_us,
            segment_len,
            created_us,
        })
    }
}

/// One of the two alternating records that publish how far a segment is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitSlot {
    /// Increases by one per publication; the valid slot with the higher value wins.
    pub sequence: u64,
    /// Offset just past the last committed frame.
    pub committed_len: u64,
    /// Frames before this offset are known to have reached the device (synced). After a
    /// power loss in `Buffered` mode, frames between it and `committed_len` may be missing.
    pub durable_len: u64,
    /// Events committed in the segment.
    pub event_count: u64,
    /// Id of the last committed event, 0 if none.
    pub last_id: u64,
    /// Append-clock time of this commit.
    pub commit_time_us: i64,
    /// The segment is sealed: its footer starts at `committed_len`.
    pub sealed: bool,
}

/// Commit slot flag: the segment is sealed.
pub(crate) const SLOT_FLAG_SEALED: u32 = 1;

impl CommitSlot {
    /// The slot this publication is written to: sequences alternate between A and B, so
    /// the previous publication stays intact while this one is written.
    pub fn offset(&self) -> usize {
        SLOT_OFFSETS[usize::from(self.sequence.is_multiple_of(2))]
    }

    /// Encodes the 56-byte slot.
    pub fn encode(&self) -> [u8; COMMIT_SLOT_LEN] {
        let mut b = [0u8; COMMIT_SLOT_LEN];
        b[0..8].copy_from_slice(&self.sequence.to_le_bytes());
        b[8..16].copy_from_slice(&self.committed_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.durable_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.event_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.last_id.to_le_bytes());
        b[40..48].copy_from_slice(&self.commit_time_us.to_le_bytes());
        let flags = if self.sealed { SLOT_FLAG_SEALED } else { 0 };
        b[48..52].copy_from_slice(&flags.to_le_bytes());
        let crc = crc32(&[&b[0..52]]);
        b[52..56].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes one slot; `Ok(None)` for a slot never written (all zero).
    ///
    /// # Errors
    /// A `DecodeError` when the checksum or flags are wrong.
    pub fn decode(b: &[u8]) -> Result<Option<CommitSlot>, DecodeError> {
        let mut r = Reader::new(b);
        let raw = r.take(COMMIT_SLOT_LEN, "commit slot")?;
        if raw.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        let mut r = Reader::new(raw);
        let sequence = r.u64("sequence")?;
        let committed_len = r.u64("committed_len")?;
        let durable_len = r.u64("durable_len")?;
        let event_count = r.u64("event_count")?;
        let last_id = r.u64("last_id")?;
        let commit_time_us = r.i64("commit_time_us")?;
        let flags = r.u32("flags")?;
        let crc = r.u32("slot crc")?;
        if crc != crc32(&[&raw[0..52]]) {
            return Err(DecodeError::checksum(52, "commit slot checksum mismatch"));
        }
        if flags & !SLOT_FLAG_SEALED != 0 {
            return Err(DecodeError::new(48, "reserved commit slot flags set"));
        }
        if durable_len > committed_len {
            return Err(DecodeError::new(
                16,
                "durable length past the committed length",
            ));
        }
        if sequence == 0 {
            return Err(DecodeError::new(0, "commit slot sequence 0 is invalid"));
        }
        Ok(Some(CommitSlot {
            sequence,
            committed_len,
            durable_len,
            event_count,
            last_id,
            commit_time_us,
            sealed: flags & SLOT_FLAG_SEALED != 0,
        }))
    }

    /// Picks the newest valid slot from a whole segment header. A slot that fails its
    /// checksum is a publication torn by a crash (or a reader racing the writer); the other
    /// slot then holds the previous publication.
    ///
    /// # Errors
    /// A `DecodeError` when neither slot is valid.
    pub fn newest(header: &[u8]) -> Result<CommitSlot, DecodeError> {
        let mut best: Option<CommitSlot> = None;
        let mut first_err = None;
        for off in SLOT_OFFSETS {
            let slot = header
                .get(off..off + COMMIT_SLOT_LEN)
                .ok_or_else(|| DecodeError::new(off, "segment header too short"))
                .and_then(CommitSlot::decode);
            match slot {
                Ok(Some(s)) if best.is_none_or(|b| s.sequence > b.sequence) => best = Some(s),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(DecodeError {
                        offset: off + e.offset,
                        ..e
                    });
                }
            }
        }
        best.ok_or_else(|| {
            first_err.unwrap_or_else(|| DecodeError::new(SLOT_OFFSETS[0], "no commit slot written"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            stream_kind: 1,
            segment_id: 7,
            base_id: 1001,
            base_timestamp_us: 1_732_460_000_000_000,
            segment_len: 1 << 20,
            created_us: 1_732_460_000_500_000,
        }
    }

    #[test]
    fn header_round_trips_and_rejects_each_flipped_byte() {
        let h = header();
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn rejects_newer_version() {
        // Version 2 is a compacted segment; the next one is unknown.
        let mut h = header();
        h.version = super::super::PACKED_VERSION + 1;
        let err = SegmentHeader::decode(&h.encode()).unwrap_err();
        assert!(err.what.contains("version"), "{err:?}");
        assert_eq!(
            err.kind,
            DecodeKind::UnsupportedVersion {
                found: super::super::PACKED_VERSION + 1
            }
        );
    }

    #[test]
    fn newest_slot_wins_and_torn_slot_falls_back() {
        let mut hdr = vec![0u8; SEGMENT_HEADER_LEN];
        let a = CommitSlot {
            sequence: 3,
            committed_len: 900,
            durable_len: 600,
            event_count: 5,
            last_id: 5,
            commit_time_us: 1,
            sealed: false,
        };
        let b = CommitSlot {
            sequence: 4,
            committed_len: 1200,
            ..a
        };
        hdr[a.offset()..a.offset() + COMMIT_SLOT_LEN].copy_from_slice(&a.encode());
        hdr[b.offset()..b.offset() + COMMIT_SLOT_LEN].copy_from_slice(&b.encode());
        assert_ne!(a.offset(), b.offset());
        assert_eq!(CommitSlot::newest(&hdr).unwrap(), b);
        hdr[b.offset() + 9] ^= 1; // torn write of the newer slot
        assert_eq!(CommitSlot::newest(&hdr).unwrap(), a);
        hdr[a.offset() + 9] ^= 1;
        assert!(CommitSlot::newest(&hdr).is_err());
    }

    /// Readers do not check a slot's parity (`format-spec/FORMAT.md#commit-slot`): an even
    /// sequence in slot A or an odd one in B is used like any valid slot, the higher
    /// sequence wins, and a tie goes to slot A. Issue 26: a reader from the spec alone had
    /// to guess this.
    #[test]
    fn slot_parity_is_not_checked_and_a_tie_goes_to_slot_a() {
        let slot = |sequence, committed_len| CommitSlot {
            sequence,
            committed_len,
            durable_len: 256,
            event_count: 0,
            last_id: 0,
            commit_time_us: 1,
            sealed: false,
        };
        let write = |a: CommitSlot, b: CommitSlot| {
            let mut hdr = vec![0u8; SEGMENT_HEADER_LEN];
            hdr[SLOT_OFFSETS[0]..SLOT_OFFSETS[0] + COMMIT_SLOT_LEN].copy_from_slice(&a.encode());
            hdr[SLOT_OFFSETS[1]..SLOT_OFFSETS[1] + COMMIT_SLOT_LEN].copy_from_slice(&b.encode());
            CommitSlot::newest(&hdr).unwrap()
        };
        // Wrong parity in both places: the higher sequence still wins, wherever it is.
        assert_eq!(write(slot(4, 300), slot(3, 200)), slot(4, 300));
        assert_eq!(write(slot(2, 200), slot(5, 300)), slot(5, 300));
        // Equal sequences: slot A.
        assert_eq!(write(slot(6, 300), slot(6, 200)), slot(6, 300));
        // A slot of wrong parity alone, the other never written.
        let mut hdr = vec![0u8; SEGMENT_HEADER_LEN];
        hdr[SLOT_OFFSETS[1]..SLOT_OFFSETS[1] + COMMIT_SLOT_LEN]
            .copy_from_slice(&slot(7, 400).encode());
        assert_eq!(CommitSlot::newest(&hdr).unwrap(), slot(7, 400));
    }

    #[test]
    fn meta_round_trips_and_rejects_foreign_bytes() {
        let m = StoreMeta {
            version: 1,
            created_us: 42,
        };
        assert_eq!(StoreMeta::decode(&m.encode()).unwrap(), m);
        assert!(StoreMeta::decode(b"SQLite format 3\0 and more bytes here").is_err());
        assert!(StoreMeta::decode(&[]).is_err());
    }
}
