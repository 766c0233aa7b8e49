//! The index image beside an unsealed segment (`events-DDDDDDDD.idx`): the segment's index
//! as of a frame boundary, written by the writer after a sync and at a clean close, read by
//! every open so that it scans only the frames after that boundary.
//!
//! An image is a cache. It covers only frames a completed `fdatasync` made durable, it is
//! never synced itself, and it is used only after checks against the segment it describes
//! (its header, the newest commit slot, the frame it ends at): a missing, stale, torn,
//! foreign or mismatched image costs a longer scan, never a wrong index.
//! `format-spec/FORMAT.md#segment-index-image`

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    self, decode_image, decode_image_deferred, encode_image, CommitSlot, Frame, ImageHead,
    SegmentHeader, IMAGE_HEAD_LEN, SEGMENT_HEADER_LEN,
};
use crate::index::{FooterSource, SegmentIndex};

use super::{checked_frame, create_private};

/// The image file of the segment at `segment_path`.
pub(crate) fn image_path(segment_path: &Path) -> PathBuf {
    segment_path.with_extension("idx")
}

/// The `header_crc` of a segment's fixed header part, which an image records to name its
/// segment.
fn header_crc(header: &SegmentHeader) -> u32 {
    let b = header.encode();
    u32::from_le_bytes([b[60], b[61], b[62], b[63]])
}

/// Writes the image of `index`, which covers the segment's frames up to `covered_len`, the
/// last of them starting at `last_frame_offset`: to a temporary file renamed over the old
/// image, so a crash leaves the old image or the new one (or, after a power loss, a torn
/// one that fails its checks). Not synced: it is a cache. The caller guarantees that an
/// `fdatasync` of the segment covering `covered_len` completed before this.
pub(crate) fn write(
    segment_path: &Path,
    header: &SegmentHeader,
    index: &SegmentIndex,
    covered_len: u64,
    last_frame_offset: u64,
    last_frame_crc: u32,
    clean: bool,
) -> Result<()> {
    let bytes = encode_image(
        ImageHead {
            clean,
            segment_id: header.segment_id,
            segment_header_crc: header_crc(header),
            covered_len,
            last_frame_offset,
            last_frame_crc,
            index_len: 0,
            index_crc: 0,
        },
        &index.to_footer(),
    );
    let path = image_path(segment_path);
    let tmp = segment_path.with_extension("idx.tmp");
    let result = create_private(&tmp).and_then(|mut f| {
        f.write_all(&bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An image that passed every check.
#[derive(Debug)]
pub(crate) struct LoadedImage {
    /// The index it holds, ready to go on building.
    pub index: SegmentIndex,
    /// File offset just past the last frame it covers: scanning goes on from here.
    pub covered_len: u64,
    /// File offset of that frame (0 when it covers none).
    pub last_frame_offset: u64,
    /// A clean close wrote it: nothing was written past `covered_len` since.
    pub clean: bool,
}

/// Reads and checks the image of the segment at `segment_path`, whose header is `header`,
/// newest commit slot `slot`, and whose file `map` maps from offset 0 over at least
/// `slot.committed_len` bytes. `Ok(None)` when there is no image; `Err` says why an image
/// that is there cannot be used.
pub(crate) fn load(
    segment_path: &Path,
    header: &SegmentHeader,
    slot: &CommitSlot,
    map: &[u8],
) -> std::result::Result<Option<LoadedImage>, String> {
    load_with(segment_path, header, slot, map, false)
}

/// [`load`] for a reader: the image's blocks, checkpoints and postings are left in its
/// bytes, which the index keeps and reads in place ([`SegmentIndex::resumed`]).
pub(crate) fn load_reading(
    segment_path: &Path,
    header: &SegmentHeader,
    slot: &CommitSlot,
    map: &[u8],
) -> std::result::Result<Option<LoadedImage>, String> {
    load_with(segment_path, header, slot, map, true)
}

fn load_with(
    segment_path: &Path,
    header: &SegmentHeader,
    slot: &CommitSlot,
    map: &[u8],
    reading: bool,
) -> std::result::Result<Option<LoadedImage>, String> {
    let path = image_path(segment_path);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    // An index is a small fraction of the frames it indexes: anything as long as the
    // segment is not one, and is not read into memory.
    if len > header.segment_len {
        return Err(format!("{len} bytes, longer than its segment"));
    }
    // A reader maps the image (no copy into a zeroed buffer: a third of a 10M-event
    // store's `inspect list` was reading a 318 KB image, issue 21) and keeps the map for
    // the blocks, checkpoints and postings it reads later; the writer's recovery decodes it
    // whole and keeps nothing, so it reads it.
    let bytes: Arc<dyn AsRef<[u8]> + Send + Sync> = if reading && len > 0 {
        Arc::new(super::map::map_image(&file, len, &path).map_err(|e| e.to_string())?)
    } else {
        let mut bytes = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| format!("cannot read it: {e}"))?;
        Arc::new(bytes)
    };
    let image = (*bytes).as_ref();
    let (head, footer, deferred) = if reading {
        decode_image_deferred(image).map(|(h, f, d)| (h, f, Some(d)))
    } else {
        decode_image(image).map(|(h, f)| (h, f, None))
    }
    .map_err(|e| format!("{} at offset {}", e.what, e.offset))?;
    check_head(&head, header, slot)?;
    let s = footer.summary;
    if s.event_count > slot.event_count || s.last_id > slot.last_id {
        return Err("it counts more events than the commit slot".into());
    }
    if head.covered_len == slot.committed_len
        && (s.event_count != slot.event_count || s.last_id != slot.last_id)
    {
        return Err("it covers the committed frames but disagrees with the commit slot".into());
    }
    // A reader's blocks are still in the image's bytes.
    let last_block = match &deferred {
        Some(d) => d
            .blocks
            .count
            .checked_sub(1)
            .and_then(|i| d.blocks.get(&image[IMAGE_HEAD_LEN..], i)),
        None => footer.blocks.last().copied(),
    };
    if last_block.is_some_and(|b| {
        b.offset
            .checked_add(u64::from(b.len))
            .is_none_or(|end| end > head.covered_len)
    }) {
        return Err("its blocks reach past the frames it covers".into());
    }
    check_last_frame(&head, header, &footer, map, segment_path)?;
    let index = match deferred {
        None => SegmentIndex::resumed(footer, None),
        Some(deferred) => {
            let source = FooterSource {
                bytes: Arc::clone(&bytes),
                footer_at: IMAGE_HEAD_LEN,
                deferred,
            };
            SegmentIndex::resumed(footer, Some(source))
        }
    }
    .ok_or_else(|| "its index lacks postings, counts or checkpoints".to_owned())?;
    Ok(Some(LoadedImage {
        index,
        covered_len: head.covered_len,
        last_frame_offset: head.last_frame_offset,
        clean: head.clean,
    }))
}

/// The head names this segment and covers only frames the slot says are durable.
fn check_head(
    head: &ImageHead,
    header: &SegmentHeader,
    slot: &CommitSlot,
) -> std::result::Result<(), String> {
    if head.segment_id != header.segment_id || head.segment_header_crc != header_crc(header) {
        return Err("it was written for another segment".into());
    }
    if head.covered_len < SEGMENT_HEADER_LEN as u64 {
        return Err(format!("covered length {} below 256", head.covered_len));
    }
    if head.covered_len > slot.durable_len {
        return Err(format!(
            "it covers {} bytes, past the durable length {}",
            head.covered_len, slot.durable_len
        ));
    }
    Ok(())
}

/// The frame the image says it ends at is there, ends exactly at `covered_len`, has the
/// recorded checksum, and is the index's last event or last string.
fn check_last_frame(
    head: &ImageHead,
    header: &SegmentHeader,
    footer: &format::Footer,
    map: &[u8],
    segment_path: &Path,
) -> std::result::Result<(), String> {
    let s = &footer.summary;
    if head.covered_len == SEGMENT_HEADER_LEN as u64 {
        let empty = head.last_frame_offset == 0
            && head.last_frame_crc == 0
            && s.event_count == 0
            && footer.strings.is_empty();
        return if empty {
            Ok(())
        } else {
            Err("it covers no frame but is not empty".into())
        };
    }
    let at = head.last_frame_offset;
    if at < SEGMENT_HEADER_LEN as u64 || at >= head.covered_len {
        return Err(format!(
            "last frame offset {at} outside the frames it covers"
        ));
    }
    let (frame, len) = checked_frame(map, at, head.covered_len, segment_path)
        .map_err(|e| format!("its last frame does not decode: {e}"))?;
    if at + len as u64 != head.covered_len {
        return Err(format!(
            "its last frame at {at} does not end at the covered length {}",
            head.covered_len
        ));
    }
    let stored_crc = usize::try_from(at)
        .ok()
        .and_then(|a| map.get(a + 4..a + 8))
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    if stored_crc != Some(head.last_frame_crc) {
        return Err(format!("the frame at {at} is not the one it recorded"));
    }
    let matches = match frame {
        Frame::Event(e) => {
            s.event_count > 0 && header.base_id.checked_add(e.id_delta) == Some(s.last_id)
        }
        Frame::StringDef { string_ref, .. } => {
            (string_ref as usize).checked_add(1) == Some(footer.strings.len())
        }
    };
    if matches {
        Ok(())
    } else {
        Err(format!("the frame at {at} is not its index's last"))
    }
}

/// Clears the clean flag of the segment's image, durably, before a writer writes anything
/// past what it covers: a later crash must not find a clean image over a torn tail. An
/// image that cannot be rewritten is removed (and the removal made durable).
pub(crate) fn mark_not_clean(segment_path: &Path) -> Result<()> {
    let path = image_path(segment_path);
    let rewritten = (|| {
        let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        let mut b = [0u8; IMAGE_HEAD_LEN];
        file.read_exact_at(&mut b, 0).ok()?;
        let head = ImageHead::decode(&b).ok()?;
        if head.clean {
            let head = ImageHead {
                clean: false,
                ..head
            };
            file.write_all_at(&head.encode(), 0).ok()?;
            file.sync_data().ok()?;
        }
        Some(())
    })();
    if rewritten.is_none() {
        remove(segment_path, true)?;
    }
    Ok(())
}

/// Removes the segment's image (a sealed segment has its footer; a segment whose frames
/// recovery discarded must not be described by an older image), with `durable` also
/// syncing the directory so that a power loss cannot bring it back.
pub(crate) fn remove(segment_path: &Path, durable: bool) -> Result<()> {
    let path = image_path(segment_path);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|_| durable) {
                super::sync_dir(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &path, e)),
    }
}

/// The `frame_crc` of the frame at `offset` of `file`, read from the file.
pub(crate) fn frame_crc_at(file: &std::fs::File, offset: u64, path: &Path) -> Result<u32> {
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, offset + 4)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(u32::from_le_bytes(b))
}
