//! The segment manifest: which segments a stream must have, and the ids it has used.
//! `format-spec/FORMAT.md#segment-manifest`

use super::{crc32, DecodeError, DecodeKind, Reader};

/// First eight bytes of a manifest.
pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"SLOGMANI";
/// The manifest layout this build writes and the newest it reads.
pub(crate) const MANIFEST_VERSION: u32 = 1;
/// Bytes before the first entry.
pub(crate) const MANIFEST_HEADER_LEN: usize = 40;
/// Bytes of one entry.
pub(crate) const MANIFEST_ENTRY_LEN: usize = 48;
/// Header flag: `id_high_water` is exactly the highest id handed out (a clean close wrote
/// it), not a lease ahead of it.
pub(crate) const MANIFEST_FLAG_EXACT: u32 = 1;
/// Entry flag: the segment is sealed and the entry holds its final summary.
pub(crate) const ENTRY_FLAG_SEALED: u32 = 1;
/// Most entries a manifest may hold: one per possible segment number.
pub(crate) const MANIFEST_ENTRIES_MAX: u32 = 99_999_999;

/// One segment the stream must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Its number.
    pub segment_id: u32,
    /// Sealed: the counts below are final. Otherwise it is the newest segment, still
    /// appended to, and only `first_id` and `min_ts_us` are known.
    pub sealed: bool,
    /// Its `base_id`: the id of its first event.
    pub first_id: u64,
    /// Id of its last event (sealed only; 0 otherwise).
    pub last_id: u64,
    /// Events in it (sealed only; 0 otherwise).
    pub event_count: u64,
    /// Smallest timestamp (for an unsealed segment: its `base_timestamp_us`).
    pub min_ts_us: i64,
    /// Largest timestamp (for an unsealed segment: its `base_timestamp_us`).
    pub max_ts_us: i64,
}

/// The manifest of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// No event id at or below this is ever handed out again: every id a segment of the
    /// stream ever committed is at most this.
    pub id_high_water: u64,
    /// The stream is known to hold an event with this id (its last event when a writer last
    /// closed cleanly, everything before it synced); 0 if unknown. A log that ends before it
    /// lost its tail.
    pub durable_last_id: u64,
    /// `id_high_water` is exactly the highest id handed out (written by a clean close), not
    /// a lease ahead of what the writer published: the next id is then above it in any case.
    pub exact: bool,
    /// The segments the stream must have, by consecutive numbers, oldest first.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Bytes of the encoded manifest.
    pub fn encoded_len(&self) -> usize {
        MANIFEST_HEADER_LEN + MANIFEST_ENTRY_LEN * self.entries.len() + 4
    }

    /// Encodes the whole file.
    ///
    /// # Panics
    /// If the entries are not numbered consecutively (a bug of the writer).
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].segment_id.checked_add(1) == Some(w[1].segment_id)),
            "manifest entries are numbered consecutively"
        );
        let count = u32::try_from(self.entries.len()).expect("at most 99,999,999 segments");
        let mut b = Vec::with_capacity(self.encoded_len());
        b.extend_from_slice(MANIFEST_MAGIC);
        b.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&self.id_high_water.to_le_bytes());
        b.extend_from_slice(&self.durable_last_id.to_le_bytes());
        let flags = if self.exact { MANIFEST_FLAG_EXACT } else { 0 };
        b.extend_from_slice(&flags.to_le_bytes());
        let crc = crc32(&[&b[0..36]]);
        b.extend_from_slice(&crc.to_le_bytes());
        for e in &self.entries {
            b.extend_from_slice(&e.segment_id.to_le_bytes());
            let flags = if e.sealed { ENTRY_FLAG_SEALED } else { 0 };
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&e.first_id.to_le_bytes());
            b.extend_from_slice(&e.last_id.to_le_bytes());
            b.extend_from_slice(&e.event_count.to_le_bytes());
            b.extend_from_slice(&e.min_ts_us.to_le_bytes());
            b.extend_from_slice(&e.max_ts_us.to_le_bytes());
        }
        let crc = crc32(&[&b[MANIFEST_HEADER_LEN..]]);
        b.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(b.len(), self.encoded_len());
        b
    }

    /// Decodes and checks a manifest: magic, header CRC, version, reserved flags, length,
    /// entries CRC, then every entry (flags, consecutive numbers, ids).
    ///
    /// # Errors
    /// A `DecodeError` naming the failing field and its offset.
    pub fn decode(b: &[u8]) -> Result<Manifest, DecodeError> {
        let mut r = Reader::new(b);
        if r.take(8, "manifest magic")? != MANIFEST_MAGIC {
            return Err(DecodeError::new(0, "not a selflog manifest (bad magic)"));
        }
        let version = r.u32("version")?;
        let count = r.u32("entry_count")?;
        let id_high_water = r.u64("id_high_water")?;
        let durable_last_id = r.u64("durable_last_id")?;
        let flags = r.u32("flags")?;
        let crc = r.u32("header_crc")?;
        if crc != crc32(&[&b[0..36]]) {
            return Err(DecodeError::checksum(
                36,
                "manifest header checksum mismatch",
            ));
        }
        if version == 0 {
            return Err(DecodeError::new(8, "manifest version 0 is invalid"));
        }
        if version > MANIFEST_VERSION {
            return Err(DecodeError {
                kind: DecodeKind::UnsupportedVersion { found: version },
                ..DecodeError::new(8, format!("unsupported manifest version {version}"))
            });
        }
        if flags & !MANIFEST_FLAG_EXACT != 0 {
            return Err(DecodeError::new(32, "reserved manifest flags set"));
        }
        if count > MANIFEST_ENTRIES_MAX {
            return Err(DecodeError::new(
                12,
                format!("{count} entries is implausible"),
            ));
        }
        let want = MANIFEST_HEADER_LEN + MANIFEST_ENTRY_LEN * count as usize + 4;
        if b.len() != want {
            return Err(DecodeError::new(
                b.len().min(want),
                format!(
                    "manifest of {count} entries is {want} bytes, not {}",
                    b.len()
                ),
            ));
        }
        let body = &b[MANIFEST_HEADER_LEN..want - 4];
        let body_crc = Reader::new(&b[want - 4..]).u32("entries_crc")?;
        if body_crc != crc32(&[body]) {
            return Err(DecodeError::checksum(
                want - 4,
                "manifest entries checksum mismatch",
            ));
        }
        if durable_last_id > id_high_water {
            return Err(DecodeError::new(24, "durable_last_id above id_high_water"));
        }
        let mut entries: Vec<ManifestEntry> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let e = decode_entry(&mut r, entries.last(), id_high_water)?;
            entries.push(e);
        }
        Ok(Manifest {
            id_high_water,
            durable_last_id,
            exact: flags & MANIFEST_FLAG_EXACT != 0,
            entries,
        })
    }
}

/// Decodes and checks the entry at `r`'s position, which follows `prev`.
fn decode_entry(
    r: &mut Reader<'_>,
    prev: Option<&ManifestEntry>,
    id_high_water: u64,
) -> Result<ManifestEntry, DecodeError> {
    let at = r.pos();
    let segment_id = r.u32("segment_id")?;
    let flags = r.u32("flags")?;
    let e = ManifestEntry {
        segment_id,
        sealed: flags & ENTRY_FLAG_SEALED != 0,
        first_id: r.u64("first_id")?,
        last_id: r.u64("last_id")?,
        event_count: r.u64("event_count")?,
        min_ts_us: r.i64("min_ts_us")?,
        max_ts_us: r.i64("max_ts_us")?,
    };
    if flags & !ENTRY_FLAG_SEALED != 0 {
        return Err(DecodeError::new(at + 4, "reserved entry flags set"));
    }
    if segment_id == 0 {
        return Err(DecodeError::new(at, "segment 0 is invalid"));
    }
    if let Some(prev) = prev {
        if prev.segment_id.checked_add(1) != Some(segment_id) {
            return Err(DecodeError::new(at, "entries are not consecutive"));
        }
        if !prev.sealed {
            return Err(DecodeError::new(at, "only the last entry may be unsealed"));
        }
        if prev.event_count > 0 && e.first_id <= prev.last_id {
            return Err(DecodeError::new(at + 8, "ids overlap the entry before"));
        }
    }
    let ids_ok = if e.sealed && e.event_count > 0 {
        e.first_id >= 1 && e.first_id <= e.last_id && e.last_id <= id_high_water
    } else {
        e.first_id >= 1 && e.last_id == 0 && e.event_count == 0
    };
    if !ids_ok {
        return Err(DecodeError::new(at + 8, "entry ids out of range"));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            id_high_water: 1_000_000,
            durable_last_id: 250,
            exact: true,
            entries: vec![
                ManifestEntry {
                    segment_id: 4,
                    sealed: true,
                    first_id: 100,
                    last_id: 199,
                    event_count: 100,
                    min_ts_us: 10,
                    max_ts_us: 20,
                },
                ManifestEntry {
                    segment_id: 5,
                    sealed: false,
                    first_id: 200,
                    last_id: 0,
                    event_count: 0,
                    min_ts_us: 21,
                    max_ts_us: 21,
                },
            ],
        }
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        let b = m.encode();
        assert_eq!(b.len(), m.encoded_len());
        assert_eq!(Manifest::decode(&b).unwrap(), m);
        let empty = Manifest::default();
        assert_eq!(Manifest::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn every_flipped_byte_of_a_manifest_is_refused() {
        let b = sample().encode();
        for i in 0..b.len() {
            for bit in [0x01, 0x80] {
                let mut d = b.clone();
                d[i] ^= bit;
                assert!(Manifest::decode(&d).is_err(), "byte {i} bit {bit:#x}");
            }
        }
        for len in 0..b.len() {
            assert!(Manifest::decode(&b[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn rejects_a_newer_manifest_version() {
        let mut b = sample().encode();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32(&[&b[0..36]]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        let e = Manifest::decode(&b).unwrap_err();
        assert_eq!(e.kind, DecodeKind::UnsupportedVersion { found: 2 });
    }
}
