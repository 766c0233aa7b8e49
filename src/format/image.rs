//! The index image of an unsealed segment: its index as of a frame boundary, so that an
//! open reads the image and scans only the frames after it.
//! `format-spec/FORMAT.md#segment-index-image`

use super::footer::Deferred;
use super::{crc32, DecodeError, DecodeKind, Footer, Reader};

/// First eight bytes of an index image.
pub(crate) const IMAGE_MAGIC: &[u8; 8] = b"SLOGSIDX";
/// The image layout this build writes and the only one it reads.
pub(crate) const IMAGE_VERSION: u32 = 1;
/// Bytes before the index.
pub(crate) const IMAGE_HEAD_LEN: usize = 56;
/// Head flag: a clean close wrote the image, nothing was written past `covered_len`.
pub(crate) const IMAGE_FLAG_CLEAN: u32 = 1;

/// The head of an index image: what the index was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageHead {
    /// Written by a clean close: the segment holds nothing past `covered_len`.
    pub clean: bool,
    /// The segment's number.
    pub segment_id: u32,
    /// The `header_crc` of the segment's fixed header part.
    pub segment_header_crc: u32,
    /// File offset just past the last frame the index covers.
    pub covered_len: u64,
    /// File offset of that last frame; 0 when the index covers no frame.
    pub last_frame_offset: u64,
    /// That frame's `frame_crc`; 0 when the index covers no frame.
    pub last_frame_crc: u32,
    /// Bytes of the index that follows the head.
    pub index_len: u32,
    /// The index's `footer_crc` (its last four bytes).
    pub index_crc: u32,
}

impl ImageHead {
    /// Encodes the 56-byte head.
    pub fn encode(&self) -> [u8; IMAGE_HEAD_LEN] {
        let mut b = [0u8; IMAGE_HEAD_LEN];
        b[0..8].copy_from_slice(IMAGE_MAGIC);
        b[8..12].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
        let flags = if self.clean { IMAGE_FLAG_CLEAN } else { 0 };
        b[12..16].copy_from_slice(&flags.to_le_bytes());
        b[16..20].copy_from_slice(&self.segment_id.to_le_bytes());
        b[20..24].copy_from_slice(&self.segment_header_crc.to_le_bytes());
        b[24..32].copy_from_slice(&self.covered_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.last_frame_offset.to_le_bytes());
        b[40..44].copy_from_slice(&self.last_frame_crc.to_le_bytes());
        b[44..48].copy_from_slice(&self.index_len.to_le_bytes());
        b[48..52].copy_from_slice(&self.index_crc.to_le_bytes());
        let crc = crc32(&[&b[0..52]]);
        b[52..56].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the head: magic, CRC, version, reserved flags.
    ///
    /// # Errors
    /// A `DecodeError` naming the failing field.
    pub fn decode(b: &[u8]) -> Result<ImageHead, DecodeError> {
        let mut r = Reader::new(b);
        if r.take(8, "index image magic")? != IMAGE_MAGIC {
            return Err(DecodeError::new(0, "not a selflog index image (bad magic)"));
        }
        let version = r.u32("version")?;
        let flags = r.u32("flags")?;
        let segment_id = r.u32("segment_id")?;
        let segment_header_crc = r.u32("segment_header_crc")?;
        let covered_len = r.u64("covered_len")?;
        let last_frame_offset = r.u64("last_frame_offset")?;
        let last_frame_crc = r.u32("last_frame_crc")?;
        let index_len = r.u32("index_len")?;
        let index_crc = r.u32("index_crc")?;
        let crc = r.u32("head_crc")?;
        if crc != crc32(&[&b[0..52]]) {
            return Err(DecodeError::checksum(52, "index image checksum mismatch"));
        }
        if version != IMAGE_VERSION {
            return Err(DecodeError {
                offset: 8,
                what: format!("index image version {version}, this build reads 1"),
                kind: DecodeKind::Malformed,
            });
        }
        if flags & !IMAGE_FLAG_CLEAN != 0 {
            return Err(DecodeError::new(12, "reserved index image flags set"));
        }
        Ok(ImageHead {
            clean: flags & IMAGE_FLAG_CLEAN != 0,
            segment_id,
            segment_header_crc,
            covered_len,
            last_frame_offset,
            last_frame_crc,
            index_len,
            index_crc,
        })
    }
}

/// Encodes a whole image file: the head, then `index` (a footer's encoding).
///
/// # Panics
/// If the index's encoding exceeds 4 GiB (an index is smaller than its segment, at most
/// 2 GiB).
pub fn encode_image(head: ImageHead, index: &Footer) -> Vec<u8> {
    let body = index.encode();
    let head = ImageHead {
        index_len: u32::try_from(body.len()).expect("an index is smaller than its segment"),
        index_crc: footer_crc(&body),
        ..head
    };
    let mut out = Vec::with_capacity(IMAGE_HEAD_LEN + body.len());
    out.extend_from_slice(&head.encode());
    out.extend_from_slice(&body);
    out
}

/// Decodes and checks a whole image file: the head, the file's length, that the head names
/// the index that follows, and the index (a footer, with its own CRC).
///
/// # Errors
/// A `DecodeError` naming the failing field and its offset in the file.
pub fn decode_image(b: &[u8]) -> Result<(ImageHead, Footer), DecodeError> {
    let (head, mut footer, deferred) = decode_image_deferred(b)?;
    let body = &b[IMAGE_HEAD_LEN..];
    let rebase = |e: DecodeError| DecodeError {
        offset: e.offset + IMAGE_HEAD_LEN,
        ..e
    };
    footer.blocks = deferred.blocks.decode_all(body).map_err(rebase)?;
    footer.checkpoints = deferred
        .checkpoints
        .map(|c| c.decode_all(body))
        .transpose()
        .map_err(rebase)?;
    footer.postings = deferred
        .postings
        .map(|p| p.decode(body))
        .transpose()
        .map_err(rebase)?;
    Ok((head, footer))
}

/// [`decode_image`], leaving the blocks, checkpoints and postings where they are in the
/// index (which starts at [`IMAGE_HEAD_LEN`] in `b`; the returned [`Deferred`] says where):
/// a reader reads the blocks and checkpoints a query visits in place, and decodes the
/// posting lists a query asks for, or all of them once it indexes further frames.
/// Everything is checked (the index's CRC covers those sections) but the postings'
/// structure, which their decode checks.
///
/// # Errors
/// As [`decode_image`].
pub fn decode_image_deferred(b: &[u8]) -> Result<(ImageHead, Footer, Deferred), DecodeError> {
    let head = ImageHead::decode(b)?;
    let body = &b[IMAGE_HEAD_LEN..];
    if body.len() != head.index_len as usize {
        return Err(DecodeError::new(
            44,
            format!(
                "index image holds {} index bytes, its head says {}",
                body.len(),
                head.index_len
            ),
        ));
    }
    if footer_crc(body) != head.index_crc {
        return Err(DecodeError::checksum(
            48,
            "index image head names another index",
        ));
    }
    let (footer, deferred) = Footer::decode_deferred(body).map_err(|e| DecodeError {
        offset: e.offset + IMAGE_HEAD_LEN,
        ..e
    })?;
    Ok((head, footer, deferred))
}

/// The last four bytes of an encoded footer (its CRC), 0 for fewer than four bytes.
fn footer_crc(body: &[u8]) -> u32 {
    body.len()
        .checked_sub(4)
        .and_then(|at| body.get(at..))
        .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Summary;

    fn sample() -> (ImageHead, Footer) {
        let head = ImageHead {
            clean: true,
            segment_id: 7,
            segment_header_crc: 0xdead_beef,
            covered_len: 1000,
            last_frame_offset: 900,
            last_frame_crc: 0x1234_5678,
            index_len: 0,
            index_crc: 0,
        };
        let footer = Footer {
            summary: Summary {
                event_count: 0,
                min_ts_us: i64::MAX,
                max_ts_us: i64::MIN,
                ..Summary::default()
            },
            postings: Some(Vec::new()),
            source_counts: Some(Vec::new()),
            action_counts: Some(Vec::new()),
            checkpoints: Some(Vec::new()),
            ..Footer::default()
        };
        (head, footer)
    }

    #[test]
    fn an_image_round_trips() {
        let (head, footer) = sample();
        let bytes = encode_image(head, &footer);
        let (h, f) = decode_image(&bytes).unwrap();
        assert_eq!(f, footer);
        assert_eq!(h.covered_len, 1000);
        assert!(h.clean);
        assert_eq!(h.index_len as usize, bytes.len() - IMAGE_HEAD_LEN);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let (head, footer) = sample();
        let bytes = encode_image(head, &footer);
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                assert!(decode_image(&b).is_err(), "byte {i} bit {bit:#x}");
            }
        }
        for len in 0..bytes.len() {
            assert!(decode_image(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_image(&longer).is_err());
    }

    #[test]
    fn a_head_of_another_index_is_refused() {
        let (head, footer) = sample();
        let a = encode_image(head, &footer);
        let mut other = footer.clone();
        other.summary.data_raw_bytes = 5;
        let b = encode_image(head, &other);
        assert_eq!(a.len(), b.len());
        let mut mixed = a[..IMAGE_HEAD_LEN].to_vec();
        mixed.extend_from_slice(&b[IMAGE_HEAD_LEN..]);
        assert!(decode_image(&mixed).is_err());
    }
}
