//! Rewriting one sealed version-1 segment as a compacted one, crash-safely.
//!
//! The new file is written beside the old under a temporary name, synced, read back
//! block by block through the reader's own checks, and only then renamed over the old
//! file, after which the directory is synced: a crash at any point leaves the old segment
//! or the new one under the segment's name, never neither (a leftover temporary file is
//! removed by the next writable open). Readers that mapped the old file keep reading it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    self, CommitSlot, FilterEntry, Frame, Layout, Packer, SegmentHeader, TableEntry,
    PACKED_VERSION, SEGMENT_HEADER_LEN,
};
use crate::index::SegmentIndex;
use crate::segment::{checked_frame, create_private, map, read_header, sealed_len};

use super::Settings;
use crate::packed::{filter, BlockCache, Packed};

/// Logical bytes a compressed block grows to before it is closed (at the end of the
/// sparse-index block that reaches it). 16 KiB: with a dictionary trained on the segment,
/// larger blocks compress hardly better on desktop-activity events (benches/RESULTS.md),
/// and a lookup of an event whose block is not cached decompresses and expands only this
/// much (about 40 µs at 32 KiB was over the 50 µs target with the rest of a lookup).
pub(crate) const BLOCK_TARGET: u64 = 16 << 10;

/// Logical bytes one block filter covers at least (it covers whole blocks): at 1 MiB the
/// filters cost about 4 bytes per event and let 0.02% of runs through for a random 5-letter
/// text (`tools/filter_sizing.py`, benches/RESULTS.md).
pub(crate) const FILTER_SPAN: u64 = 1 << 20;

/// Size of the dictionary trained for each segment (at most 1/32 of its packed rows).
const DICT_LEN: usize = 112 << 10;

/// Samples the dictionary is trained on: about this many bytes, in pieces of 4 KiB spread
/// evenly over the segment.
const SAMPLE_BYTES: usize = 4 << 20;
const SAMPLE_LEN: usize = 4 << 10;

static ONE_AT_A_TIME: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// When a rewrite goes on: `stop` ends it between blocks; with `publications` (the
/// writer's counter), it waits between blocks while the writer keeps publishing, so that
/// compaction takes the gaps of a daemon's trickle of events and stays out of the way of a
/// bulk ingest (on 2 cores, running beside one thread's `append` cost it 11-14% even at
/// nice 19: benches/RESULTS.md).
pub(crate) struct Pace<'a> {
    /// Set to stop.
    pub stop: &'a AtomicBool,
    /// The writer's publication counter, to yield to it.
    pub publications: Option<&'a std::sync::atomic::AtomicU64>,
    /// Whether events wait for the writer (a batch's worth or more): a writer that has
    /// published nothing for a while may be busy (sealing, syncing, descheduled), not idle.
    pub backlog: Option<&'a Backlog>,
}

/// Says whether the writer has a batch's worth of events waiting ([`Pace::backlog`]).
pub(crate) type Backlog = dyn Fn() -> bool + Send + Sync;

impl Pace<'_> {
    /// Whether the writer has work waiting.
    fn writer_busy(&self) -> bool {
        self.backlog.is_some_and(|busy| busy())
    }

    /// Waits until the writer has published nothing for 100 ms and has no backlog (a bulk
    /// ingest whose writer paused to seal a segment is not quiet); false when asked to stop.
    pub(crate) fn until_quiet(&self) -> bool {
        let Some(counter) = self.publications else {
            return !self.stop.load(Ordering::Relaxed);
        };
        loop {
            let before = counter.load(Ordering::Acquire);
            std::thread::sleep(std::time::Duration::from_millis(100));
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            if counter.load(Ordering::Acquire) == before && !self.writer_busy() {
                return true;
            }
        }
    }

    /// Waits while the writer published since the last look (`seen`) or has a backlog;
    /// false when asked to stop.
    fn between_blocks(&self, seen: &mut Option<u64>) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let Some(counter) = self.publications else {
                return true;
            };
            let now = counter.load(Ordering::Acquire);
            if seen.is_some_and(|s| s == now) && !self.writer_busy() {
                return true;
            }
            *seen = Some(now);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// How compacting one segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The segment was rewritten: bytes before and after.
    Compacted {
        /// Its file's length before.
        before: u64,
        /// And after.
        after: u64,
        /// Its events.
        events: u64,
    },
    /// Already compacted, or not sealed yet: nothing to do.
    Skipped,
    /// The file changed under the compaction (retention deleted it): nothing was renamed.
    Gone,
    /// Asked to stop before it finished; the temporary file was removed.
    Stopped,
}

/// The temporary name of a compaction of `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Compacts segment file `path` if it is a sealed version-1 segment.
///
/// # Errors
/// What failed; the old file is untouched and any temporary file removed.
pub(crate) fn compact_file(path: &Path, settings: Settings, pace: &Pace<'_>) -> Result<Outcome> {
    // One rewrite at a time in a process: the thread and `Store::compact` share the
    // temporary name. The segment's version is read again under the lock.
    let _one = ONE_AT_A_TIME.lock();
    let tmp = temp_path(path);
    let result = compact_into(path, &tmp, settings, pace);
    if !matches!(result, Ok(Outcome::Compacted { .. })) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn compact_into(path: &Path, tmp: &Path, settings: Settings, pace: &Pace<'_>) -> Result<Outcome> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Gone),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    let identity = (meta.dev(), meta.ino());
    let (header, slot) = read_header(&file, path)?;
    if header.version != format::FORMAT_VERSION || !slot.sealed {
        return Ok(Outcome::Skipped);
    }
    // The frames as a compacted segment gives them back: every payload uncompressed, every
    // hash checked against the content it stands for.
    let (logical, index, footer) = read_original(&file, meta.len(), &header, &slot, path)?;
    // Training the dictionary is the longest step without a pause: it waits, as a block
    // does, for the writer to go quiet again.
    if !pace.between_blocks(&mut None) {
        return Ok(Outcome::Stopped);
    }
    let ranges = block_ranges(&index, logical.len() as u64);
    let dict = train(&logical, &ranges, path)?;

    let out = create_private(tmp)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &out);
    let io = |e| Error::io("write", tmp, e);
    w.write_all(&[0u8; SEGMENT_HEADER_LEN]).map_err(io)?;
    let mut at = SEGMENT_HEADER_LEN as u64;
    let dict_offset = at;
    w.write_all(&dict).map_err(io)?;
    at += dict.len() as u64;
    let mut compressor = if dict.is_empty() {
        zstd::bulk::Compressor::new(settings.level)
    } else {
        zstd::bulk::Compressor::with_dictionary(settings.level, &dict)
    }
    .map_err(|e| Error::io("start zstd for", tmp, e))?;
    let Some((table, mut filters, filter_table)) = write_blocks(
        &mut w,
        &mut at,
        &mut compressor,
        &Parts {
            logical: &logical,
            ranges: &ranges,
        },
        pace,
        path,
    )?
    else {
        return Ok(Outcome::Stopped);
    };
    for (f, bytes) in filters.iter_mut().zip(&filter_table) {
        f.offset = at;
        w.write_all(bytes).map_err(io)?;
        at += bytes.len() as u64;
    }
    let table_offset = at;
    w.write_all(&table).map_err(io)?;
    at += table.len() as u64;
    let mut ftable = Vec::with_capacity(filters.len() * format::FILTER_ENTRY_LEN);
    for f in &filters {
        f.encode_into(&mut ftable);
    }
    let filter_table_offset = if filters.is_empty() { 0 } else { at };
    w.write_all(&ftable).map_err(io)?;
    at += ftable.len() as u64;
    let footer_offset = at;
    let mut new_footer = index.to_footer();
    new_footer.summary.first_commit_us = footer.summary.first_commit_us;
    new_footer.summary.last_commit_us = footer.summary.last_commit_us;
    let footer_bytes = new_footer.encode();
    w.write_all(&footer_bytes).map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);

    let layout = Layout {
        logical_len: logical.len() as u64,
        dict_offset,
        dict_len: u32_of(dict.len() as u64, path)?,
        block_count: u32_of(ranges.len() as u64, path)?,
        table_offset,
        table_crc: format::crc32(&[&table]),
        dict_crc: format::crc32(&[&dict]),
        filter_table_offset,
        filter_count: u32_of(filters.len() as u64, path)?,
        filter_table_crc: format::crc32(&[&ftable]),
        level: settings.level,
    };
    write_head(&out, tmp, header, slot, &layout, footer_offset)?;
    out.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
    drop(logical);

    // Read back through the reader's checks before it replaces anything.
    check_written(tmp, &header, path)?;
    drop_cached(&[&out, &file]);

    if !replace(path, tmp, identity)? {
        return Ok(Outcome::Gone);
    }
    Ok(Outcome::Compacted {
        before: meta.len(),
        after: footer_offset + footer_bytes.len() as u64,
        events: slot.event_count,
    })
}

/// What the blocks are made of.
struct Parts<'a> {
    logical: &'a [u8],
    ranges: &'a [(u64, u64)],
}

/// Writes the compressed blocks at `*at` (advanced past them) and builds each run's
/// filter. Returns the block table and the filters (their offsets still to be set), or
/// `None` when asked to stop.
#[expect(clippy::type_complexity, reason = "three parts of one file, used once")]
fn write_blocks(
    w: &mut impl Write,
    at: &mut u64,
    compressor: &mut zstd::bulk::Compressor<'_>,
    p: &Parts<'_>,
    pace: &Pace<'_>,
    path: &Path,
) -> Result<Option<(Vec<u8>, Vec<FilterEntry>, Vec<Vec<u8>>)>> {
    let io = |e| Error::io("write", path, e);
    let mut table = Vec::with_capacity(p.ranges.len() * format::TABLE_ENTRY_LEN);
    let mut filters = Vec::new();
    let mut filter_table = Vec::new();
    let mut builder = filter::FilterBuilder::new();
    let mut filter_first = 0u32;
    let mut filter_start = SEGMENT_HEADER_LEN as u64;
    // Each block is packed just before it is compressed: the packed rows of the whole
    // segment are never held at once.
    let mut rows = Vec::with_capacity(2 * BLOCK_TARGET as usize);
    let mut strings = 0u32;
    let mut seen = None;
    for (k, range) in p.ranges.iter().enumerate() {
        if !pace.between_blocks(&mut seen) {
            return Ok(None);
        }
        rows.clear();
        let strings_before = strings;
        strings += pack_block(p.logical, *range, path, &mut rows)?;
        let stored = compressor
            .compress(&rows)
            .map_err(|e| Error::io("compress for", path, e))?;
        let logical_bytes = &p.logical[range.0 as usize..range.1 as usize];
        TableEntry {
            logical_start: range.0,
            stored_offset: *at,
            logical_len: u32_of(range.1 - range.0, path)?,
            packed_len: u32_of(rows.len() as u64, path)?,
            stored_len: u32_of(stored.len() as u64, path)?,
            strings_before,
            stored_crc: format::crc32(&[&stored]),
            logical_crc: format::crc32(&[logical_bytes]),
        }
        .encode_into(&mut table);
        w.write_all(&stored).map_err(io)?;
        *at += stored.len() as u64;
        add_payloads(&mut builder, logical_bytes);
        let last = k + 1 == p.ranges.len();
        if range.1 - filter_start >= FILTER_SPAN || last {
            let mut bytes = Vec::new();
            builder.finish_into(&mut bytes);
            filters.push(FilterEntry {
                first_block: filter_first,
                block_count: k as u32 + 1 - filter_first,
                offset: 0,
                len: u32_of(bytes.len() as u64, path)?,
                crc: format::crc32(&[&bytes]),
            });
            filter_table.push(bytes);
            filter_first = k as u32 + 1;
            filter_start = range.1;
        }
    }
    Ok(Some((table, filters, filter_table)))
}

/// Writes the header of the compacted file: the fixed part as version 2, a sealed slot
/// whose `committed_len` is where the footer starts, and the layout record.
fn write_head(
    out: &File,
    tmp: &Path,
    header: SegmentHeader,
    slot: CommitSlot,
    layout: &Layout,
    footer_offset: u64,
) -> Result<()> {
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    head[..format::FIXED_HEADER_LEN].copy_from_slice(
        &SegmentHeader {
            version: PACKED_VERSION,
            ..header
        }
        .encode(),
    );
    let sealed = CommitSlot {
        sequence: 1,
        committed_len: footer_offset,
        durable_len: footer_offset,
        ..slot
    };
    head[format::SLOT_OFFSETS[0]..format::SLOT_OFFSETS[0] + format::COMMIT_SLOT_LEN]
        .copy_from_slice(&sealed.encode());
    head[format::LAYOUT_OFFSET..].copy_from_slice(&layout.encode());
    std::os::unix::fs::FileExt::write_all_at(out, &head, 0).map_err(|e| Error::io("write", tmp, e))
}

/// Renames `tmp` over `path` if `path` is still the file compaction read (`identity`),
/// and syncs the directory; `false` when it is gone or another file.
fn replace(path: &Path, tmp: &Path, identity: (u64, u64)) -> Result<bool> {
    let _files = super::FILES.lock();
    match std::fs::metadata(path) {
        Ok(m) if (m.dev(), m.ino()) == identity => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("stat", path, e)),
    }
    std::fs::rename(tmp, path).map_err(|e| Error::io("rename", tmp, e))?;
    crate::segment::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(true)
}

/// Old data, rewritten and on the disk: it need not take page cache from programs that
/// use it (advice only; readers bring back what they read).
fn drop_cached(files: &[&File]) {
    for f in files {
        let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
    }
}

fn u32_of(v: u64, path: &Path) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::corrupt(path, 0, "segment too large to compact"))
}

/// The sealed version-1 segment in `file` (`file_len` bytes): its logical frames, their
/// index and its footer.
fn read_original(
    file: &File,
    file_len: u64,
    header: &SegmentHeader,
    slot: &CommitSlot,
    path: &Path,
) -> Result<(Vec<u8>, SegmentIndex, format::Footer)> {
    let len = sealed_len(file, slot, file_len, path)?;
    let m = map::map_read(file, len, path)?;
    let footer = crate::stream::read_footer(&m, slot, path)?;
    let expanded = expand_to_logical(&m, header, slot, &footer, path);
    // Read once, whatever comes of it: the pages need not stay.
    drop(m);
    drop_cached(&[file]);
    let (logical, index) = expanded?;
    Ok((logical, index, footer))
}

/// Rebuilds the frames of a sealed version-1 segment as a compacted one stores them (each
/// payload uncompressed, each content hash checked), and the index of those frames.
fn expand_to_logical(
    m: &[u8],
    header: &SegmentHeader,
    slot: &CommitSlot,
    footer: &format::Footer,
    path: &Path,
) -> Result<(Vec<u8>, SegmentIndex)> {
    let mut logical =
        Vec::with_capacity(slot.committed_len as usize + (slot.committed_len as usize >> 3));
    logical.resize(SEGMENT_HEADER_LEN, 0);
    let strings = &footer.strings;
    let mut at = SEGMENT_HEADER_LEN as u64;
    let mut raw = Vec::new();
    while at < slot.committed_len {
        let (frame, len) = checked_frame(m, at, slot.committed_len, path)?;
        match frame {
            Frame::StringDef { string_ref, text } => {
                logical.extend_from_slice(&format::encode_string_def(string_ref, text));
            }
            Frame::Event(f) => {
                let name = |r: u32| {
                    strings.get(r as usize).map(|s| &**s).ok_or_else(|| {
                        Error::corrupt(path, at, format!("string ref {r} undefined"))
                    })
                };
                let data: Option<&[u8]> = match (f.payload, f.raw_len) {
                    (None, _) => None,
                    (Some(p), None) => Some(p),
                    (Some(p), Some(n)) => {
                        raw.clear();
                        raw.resize(n as usize, 0);
                        let got = lz4_flex::block::decompress_into(p, &mut raw)
                            .map_err(|e| Error::corrupt(path, at, format!("lz4 payload: {e}")))?;
                        if got != n as usize {
                            return Err(Error::corrupt(path, at, "lz4 payload length"));
                        }
                        Some(&raw)
                    }
                };
                let text = data
                    .map(|d| {
                        crate::stream::utf8(d)
                            .ok_or_else(|| Error::corrupt(path, at, "event data is not UTF-8"))
                    })
                    .transpose()?;
                let ts = header.base_timestamp_us.wrapping_add(f.ts_delta);
                let want = crate::packed::hash_fields(
                    ts,
                    name(f.type_ref)?,
                    f.action_ref.map(name).transpose()?,
                    name(f.source_ref)?,
                    text,
                );
                if want != f.hash {
                    return Err(Error::corrupt(
                        path,
                        at,
                        "stored content hash disagrees with the event; not compacted",
                    ));
                }
                let e = format::EventFrame {
                    payload: data,
                    raw_len: None,
                    ..f
                };
                let start = logical.len();
                logical.resize(start + e.encoded_len(), 0);
                format::encode_event(&mut logical[start..], &e);
            }
        }
        at += len as u64;
    }
    let index = super::index_of(&logical, header, path)?;
    if index.summary.event_count != slot.event_count || index.summary.last_id != slot.last_id {
        return Err(Error::corrupt(
            path,
            0,
            "expanded frames disagree with the slot",
        ));
    }
    Ok((logical, index))
}

/// The logical ranges of the compressed blocks: each closes at the end of the sparse-index
/// block that brings it to [`BLOCK_TARGET`], so no sparse block spans two of them.
fn block_ranges(index: &SegmentIndex, logical_len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = SEGMENT_HEADER_LEN as u64;
    for b in index.all_blocks() {
        let end = b.offset + u64::from(b.len);
        if end - start >= BLOCK_TARGET {
            out.push((start, end));
            start = end;
        }
    }
    if start < logical_len {
        out.push((start, logical_len));
    }
    out
}

/// Appends the packed rows of the logical frames `range` to `out`; returns how many
/// string definitions they hold.
fn pack_block(logical: &[u8], range: (u64, u64), path: &Path, out: &mut Vec<u8>) -> Result<u32> {
    let (start, end) = range;
    let mut strings = 0u32;
    let mut packer = Packer::new();
    let mut at = start;
    while at < end {
        let (frame, len) = checked_frame(logical, at, end, path)?;
        match frame {
            Frame::StringDef { string_ref, text } => {
                format::pack_string_def(out, string_ref, text);
                strings += 1;
            }
            Frame::Event(f) => packer.event(
                out,
                f.id_delta,
                f.ts_delta,
                (f.type_ref, f.source_ref, f.action_ref),
                f.payload,
            ),
        }
        at += len as u64;
    }
    Ok(strings)
}

/// A dictionary trained on the packed rows of blocks spread evenly over the segment (about
/// [`SAMPLE_BYTES`] of them, in pieces of [`SAMPLE_LEN`]), or none when the segment is too
/// small for one to pay (zstd then compresses each block on its own).
fn train(logical: &[u8], ranges: &[(u64, u64)], path: &Path) -> Result<Vec<u8>> {
    let total = logical.len().saturating_sub(SEGMENT_HEADER_LEN);
    // A dictionary pays for itself only when it is small next to what it serves.
    let len = DICT_LEN.min(total / 32);
    if total < 16 * SAMPLE_LEN || len < 4 << 10 || ranges.is_empty() {
        return Ok(Vec::new());
    }
    let wanted = (SAMPLE_BYTES / BLOCK_TARGET as usize).clamp(1, ranges.len());
    let stride = ranges.len() / wanted;
    let mut rows = Vec::with_capacity(SAMPLE_BYTES + (64 << 10));
    for range in ranges.iter().step_by(stride.max(1)).take(wanted) {
        pack_block(logical, *range, path, &mut rows)?;
    }
    let samples: Vec<&[u8]> = rows.chunks(SAMPLE_LEN).collect();
    Ok(zstd::dict::from_samples(&samples, len).unwrap_or_default())
}

/// Adds the data text of every event frame of `frames` (whole frames) to `builder`.
fn add_payloads(builder: &mut filter::FilterBuilder, frames: &[u8]) {
    let mut at = 0;
    while at < frames.len() {
        match format::decode_frame_unchecked(&frames[at..]) {
            Ok(Some((f, len))) => {
                if let Frame::Event(e) = f {
                    if let Some(p) = e.payload {
                        builder.add(p);
                    }
                }
                at += len;
            }
            _ => break,
        }
    }
}

/// Opens the written file as readers will and expands every block, so that nothing
/// replaces a segment that does not read back.
fn check_written(tmp: &Path, header: &SegmentHeader, original: &Path) -> Result<()> {
    let file = File::open(tmp).map_err(|e| Error::io("open", tmp, e))?;
    let (h, slot) = read_header(&file, tmp)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", tmp, e))?
        .len();
    let len = sealed_len(&file, &slot, len, tmp)?;
    let m = Arc::new(map::map_read(&file, len, tmp)?);
    let footer = crate::stream::read_footer(&m, &slot, tmp)?;
    if h.base_id != header.base_id || h.segment_id != header.segment_id {
        return Err(Error::corrupt(
            original,
            0,
            "compacted header differs (bug)",
        ));
    }
    let packed = Packed::open(
        m,
        h,
        crate::packed::dictionary(&footer.strings),
        Arc::from(tmp),
        Arc::new(BlockCache::new(0)),
    )?;
    for k in 0..packed.table().len() {
        packed.expand_uncached(k)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use super::Pace;

    /// A writer that publishes nothing but has events waiting (sealing a segment in the
    /// middle of a bulk ingest) is not quiet: compaction waits until the backlog is gone.
    #[test]
    fn a_backlog_holds_compaction_back_even_without_publications() {
        static LOOKS: AtomicUsize = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let publications = AtomicU64::new(7);
        let looks = &LOOKS;
        // Busy for the first three looks after each reset.
        let busy = || LOOKS.fetch_add(1, Ordering::Relaxed) < 3;
        let pace = Pace {
            stop: &stop,
            publications: Some(&publications),
            backlog: Some(&busy),
        };
        assert!(pace.until_quiet());
        assert_eq!(
            looks.load(Ordering::Relaxed),
            4,
            "waited out three busy looks"
        );
        looks.store(0, Ordering::Relaxed);
        let mut seen = None;
        assert!(pace.between_blocks(&mut seen));
        assert!(
            looks.load(Ordering::Relaxed) >= 4,
            "between blocks it waits for the backlog too"
        );
        stop.store(true, Ordering::Relaxed);
        assert!(!pace.until_quiet(), "a stop ends the wait");
    }
}
