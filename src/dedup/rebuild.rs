//! Rebuilding the dedup window from the segments at a writable open.
//!
//! The newest segments' frames are walked on every core, reading each event's dedup key
//! without checking each frame's checksum: the window is only a hint (a hit is confirmed
//! by content), and a frame whose shape is off gets the checked decode, which reports the
//! damage. This is most of the time of opening a large store for writing without an
//! image. A daemon that re-sends its in-flight events after a crash thus stores each once.

use crate::error::Result;
use crate::format::SEGMENT_HEADER_LEN;
use crate::stream::{raw_frame, Stream};

use super::window::{DedupWindow, DEDUP_TOUCH_AHEAD};

/// Brings the deduplication window (`capacity` > 0: `recovery::open_dedup` handles a
/// disabled one) up to the newest `capacity` stored events, reading the segments that hold
/// the events after `from`'s newest (every one of the window when `from` is `None`), on
/// every core: this is most of the time of opening a large store for writing without an
/// image. Returns the window and how many events it read. A daemon that re-sends its
/// in-flight events after a crash thus stores each once.
pub(crate) fn rebuild_dedup(
    stream: &Stream,
    capacity: usize,
    from: Option<DedupWindow>,
) -> Result<(DedupWindow, u64)> {
    let after = from.as_ref().and_then(DedupWindow::newest).unwrap_or(0);
    let mut window = from.unwrap_or_else(|| DedupWindow::new(capacity));
    stream.refresh_deferred()?;
    // The newest segments, back to the one holding the window's oldest event or the
    // image's newest: only those are loaded (`SegmentView::load`).
    let mut snaps = Vec::new();
    let mut covered = 0u64;
    for view in stream.views().iter().rev() {
        if covered >= capacity as u64 {
            break;
        }
        let (events, last) = view.with_summary(|s, _| (s.event_count, s.last_id));
        if events == 0 {
            continue;
        }
        if last <= after {
            break;
        }
        view.load()?;
        // From the first block holding an event after the image's newest: the events
        // before it are in the image already (a writer killed after a clean close leaves
        // its image behind the active segment by what it appended since).
        let (snap, (events, last, start)) = view.snapshot_and(|ix, _| {
            let start = ix
                .all_blocks()
                .find(|b| b.last_id > after)
                .map_or(SEGMENT_HEADER_LEN as u64, |b| b.offset);
            (ix.summary.event_count, ix.summary.last_id, start)
        });
        if last <= after {
            break;
        }
        covered += events;
        snaps.push((snap, start));
    }
    if snaps.is_empty() {
        // Nothing stored after the image (a clean close): no walk, and no asking the
        // system for its cores (a read of cgroup files, ~0.4 ms of an open).
        return Ok((window, 0));
    }
    snaps.reverse();
    // One segment is walked by one thread whatever the cores: the system is not asked
    // (a read of cgroup files, ~0.1 ms of each sidecar's open).
    let threads = if snaps.len() == 1 {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(snaps.len())
    };
    let per_thread = snaps.len().div_ceil(threads.max(1));
    let walk = |chunk: &[(crate::stream::Snapshot, u64)]| -> Result<Vec<(u64, u64)>> {
        let mut entries = Vec::new();
        for (snap, start) in chunk {
            segment_hashes(snap, *start, &mut entries)?;
        }
        Ok(entries)
    };
    let walked: Vec<Result<Vec<(u64, u64)>>> = if threads <= 1 {
        // On this thread: no thread started for one walk.
        vec![walk(&snaps)]
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = snaps
                .chunks(per_thread.max(1))
                .map(|chunk| scope.spawn(move || walk(chunk)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a dedup rebuild thread panicked"))
                .collect()
        })
    };
    let mut all = Vec::with_capacity(usize::try_from(covered).unwrap_or(capacity));
    for entries in walked {
        all.extend(entries?.into_iter().filter(|&(_, id)| id > after));
    }
    let all = &all[all.len().saturating_sub(capacity)..];
    window.own_table_before(all.len());
    // Each insert is a cache miss in a large table: the buckets of the next few are loaded
    // together first, so that their misses overlap.
    for chunk in all.chunks(DEDUP_TOUCH_AHEAD) {
        for &(hash, _) in chunk {
            window.touch(hash);
        }
        for &(hash, id) in chunk {
            window.insert(hash, id);
        }
    }
    Ok((window, all.len() as u64))
}

/// The dedup window key of a stored event frame: what `append` computed for the event
/// (`Event::dedup_home`, from the frame's names and data, and its stored content hash).
/// `None` for a frame too damaged to tell (a name undefined, a short payload that does not
/// decompress): such an event could not be confirmed as an original anyway.
fn frame_dedup_key(
    snap: &crate::stream::Snapshot,
    offset: u64,
    f: &crate::format::EventFrame<'_>,
) -> Option<u64> {
    let name_len = |r: u32| snap.strings.get(r as usize).map(|s| s.len());
    let data_len = f.raw_len.map(|n| n as usize).or(f.payload.map(<[u8]>::len));
    // Short data stored compressed (only when `compress_len_min` was set below the edge
    // limit) is decompressed for its edges.
    let small = match data_len {
        Some(n) if n <= crate::event::HOME_EDGES_LEN_MAX => {
            Some(crate::stream::frame_data_bytes_raw(snap, offset, f).ok()??)
        }
        _ => None,
    };
    let action_len = match f.action_ref {
        Some(r) => Some(name_len(r)?),
        None => None,
    };
    let home = crate::event::dedup_home(
        crate::event::Timestamp(snap.header.base_timestamp_us.wrapping_add(f.ts_delta)),
        name_len(f.type_ref)?,
        action_len,
        name_len(f.source_ref)?,
        data_len,
        small.as_deref(),
    );
    Some(crate::event::dedup_key(home, f.hash))
}

/// Appends (dedup window key, id) of every event frame of a segment snapshot from offset
/// `start` (a frame's) on to `out`.
fn segment_hashes(
    snap: &crate::stream::Snapshot,
    start: u64,
    out: &mut Vec<(u64, u64)>,
) -> Result<()> {
    let mut offset = start;
    while offset < snap.committed_len {
        // The window is only a hint (a hit is confirmed by content), so the hashes are
        // read without checking each frame's checksum; a frame whose shape is off gets the
        // checked decode, which reports the damage.
        let unchecked = snap
            .frames_from(offset)
            .and_then(|w| crate::format::decode_frame_unchecked(w).ok().flatten());
        let (frame, next) = match unchecked {
            Some((crate::format::Frame::Event(f), len)) => (Some(f), offset + len as u64),
            Some((_, len)) => (None, offset + len as u64),
            None => raw_frame(snap, offset)?,
        };
        if let Some(f) = frame {
            if let Some(key) = frame_dedup_key(snap, offset, &f) {
                out.push((key, snap.header.base_id.wrapping_add(f.id_delta)));
            }
        }
        offset = next;
    }
    Ok(())
}
