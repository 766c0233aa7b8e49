//! Reading committed events in id order: [`Scan`], and [`get_in`], the lookup of one id.
//!
//! Both step over frames by their length, checksum-checking each one they pass (a string
//! definition, an event before the one wanted), and decode the frame they return once,
//! checked against its CRC. A frame whose shape is off goes to the checked decode, which
//! reports the damage with the file and offset: a read never skips damage silently. Reads
//! take no lock the writer takes: they see the committed prefix of each segment through a
//! snapshot of its view.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::event::{EventId, EventRef, StoredEvent};
use crate::format::{EventFrame, SEGMENT_HEADER_LEN};
use crate::stream::{
    borrowed_data, checksummed_frame, event_ref, materialize, raw_frame, read_frame, SegmentView,
    Snapshot, Stream,
};
#[cfg(doc)]
use crate::Store;

/// The committed event with `id` in `stream` ([`Store::get`]).
pub(crate) fn get_in(stream: &Stream, id: EventId) -> Result<Option<StoredEvent>> {
    // Only the view holding `id` is loaded (`SegmentView::load`).
    stream.refresh_deferred()?;
    let Some(view) = stream.view_for(id.0) else {
        return Ok(None);
    };
    view.load()?;
    let Some((block, checkpoint)) = view.with_index(|ix, _| ix.locate(id.0)) else {
        return Ok(None);
    };
    let snap = view.snapshot();
    let end = (block.offset + u64::from(block.len)).min(snap.committed_len);
    let base = snap.header.base_id;
    // Start at the checkpoint when the frame there is the event it names; a checkpoint
    // that is off (a writer bug under the footer's CRC) costs a walk from the block's
    // start, never a wrong answer, and `verify` reports it.
    let start = checkpoint
        .filter(|&(at, want)| {
            at < end
                && matches!(peek_frame_at(&snap, at, end),
                    Some((Some(delta), _)) if base.wrapping_add(delta) == want)
        })
        .map_or(block.offset, |(at, _)| at);
    let found = find_in_block(&snap, start, end, id, false)?;
    if found.is_some() {
        return Ok(found);
    }
    // The block's ids say it holds `id`, but the walk that skips frames unchecked did
    // not find it: a damaged frame on the way lies about its id or length (or a foreign
    // writer left a gap). Walking again with every frame checked reports the damage.
    find_in_block(&snap, block.offset, end, id, true)
}

/// A streaming iterator over committed events in id order; see [`Store::scan`]. As an
/// [`Iterator`] it yields owned [`StoredEvent`]s; [`Scan::next_ref`] yields them borrowed.
pub struct Scan {
    views: Vec<Arc<SegmentView>>,
    next_view: usize,
    current: Option<(Snapshot, u64)>,
    from: EventId,
    done: bool,
    /// `next_ref`'s decompression buffer, reused from event to event.
    scratch: Vec<u8>,
}

impl Scan {
    /// A scan of the committed events of `stream` with id at least `from`
    /// ([`Store::scan_from`]).
    pub(crate) fn new(stream: &Stream, from: EventId) -> Result<Scan> {
        stream.refresh()?;
        let views = stream.views();
        let first = views
            .partition_point(|v| v.header.base_id <= from.0)
            .saturating_sub(1);
        Ok(Scan {
            views,
            next_view: first,
            current: None,
            from,
            done: false,
            scratch: Vec::new(),
        })
    }

    /// The next event, borrowed instead of copied: names from the segment's dictionary,
    /// data from the map or, when stored compressed, from one reused buffer. The borrow
    /// lasts until the next call; [`Iterator::next`] and this advance the same scan.
    ///
    /// # Errors
    /// As [`Iterator::next`]: a damaged frame ends the scan with its error.
    pub fn next_ref(&mut self) -> Option<Result<EventRef<'_>>> {
        if self.done {
            return None;
        }
        // Finds the next event's frame; only then are the snapshot and buffer borrowed.
        let offset = match self.advance() {
            Ok(Some(at)) => at,
            Ok(None) => return None,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let event = event_frame(self.current.as_ref(), offset).and_then(|(snap, f)| {
            let data = borrowed_data(snap, offset, &f, &mut self.scratch)?;
            event_ref(snap, offset, &f, data)
        });
        if event.is_err() {
            self.done = true;
        }
        Some(event)
    }

    /// Moves past the next event frame at or after `from`, returning its offset in the
    /// current segment (`None` at the end). Frames are stepped over by their length; each
    /// one passed over (a string definition, an event before `from`) has its checksum
    /// checked, and one whose shape or checksum is off goes to the checked decode, whose
    /// error this returns.
    fn advance(&mut self) -> Result<Option<u64>> {
        loop {
            if let Some((snap, offset)) = &mut self.current {
                let end = snap.committed_len;
                if *offset < end {
                    let at = *offset;
                    let base = snap.header.base_id;
                    match peek_frame_at(snap, at, end) {
                        Some((Some(delta), len)) if base.wrapping_add(delta) >= self.from.0 => {
                            *offset = at + len as u64;
                            return Ok(Some(at));
                        }
                        Some((_, len)) if checksummed_frame(snap, at, len).is_some() => {
                            *offset = at + len as u64;
                        }
                        _ => {
                            // Damage (or a shape the peek does not take): the checked decode
                            // reports it, or steps over the frame it finds.
                            let (f, next) = raw_frame(snap, at)?;
                            *offset = next;
                            if f.is_some_and(|f| base.wrapping_add(f.id_delta) >= self.from.0) {
                                return Ok(Some(at));
                            }
                        }
                    }
                    continue;
                }
                self.current = None;
            }
            let Some(view) = self.views.get(self.next_view) else {
                return Ok(None);
            };
            self.next_view += 1;
            let start = view
                .with_index(|ix, _| ix.block_of(self.from.0).map(|b| b.offset))
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            self.current = Some((view.snapshot(), start));
        }
    }
}

impl Iterator for Scan {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let event = match self.advance() {
            Ok(Some(offset)) => event_frame(self.current.as_ref(), offset)
                .and_then(|(snap, f)| materialize(snap, offset, &f, None)),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        if event.is_err() {
            self.done = true;
        }
        Some(event)
    }
}

/// The event frame at `offset` of the `current` segment of a scan, where
/// [`Scan::advance`] stopped, decoded with its checksum checked, and the snapshot it lies in.
fn event_frame(
    current: Option<&(Snapshot, u64)>,
    offset: u64,
) -> Result<(&Snapshot, EventFrame<'_>)> {
    let Some((snap, _)) = current else {
        unreachable!("advance leaves the frame's segment current");
    };
    match raw_frame(snap, offset)? {
        (Some(f), _) => Ok((snap, f)),
        (None, _) => Err(Error::corrupt(
            &snap.path,
            offset,
            "frame read as an event, decoded as a string",
        )),
    }
}

/// The id and length of the frame at `offset` (id `None` for a string definition), from its
/// first bytes alone, without its checksum; `None` when its shape is off.
fn peek_frame_at(snap: &Snapshot, offset: u64, end: u64) -> Option<(Option<u64>, usize)> {
    crate::format::peek_frame(snap.frames(offset, end)?)
}

/// Event `id` among the frames from `offset` to `end` of one block. Unless `checked`, frames
/// before it are skipped by their length and id alone; the frame returned, and any frame
/// whose shape is off, is decoded and checked against its CRC either way.
fn find_in_block(
    snap: &Snapshot,
    mut offset: u64,
    end: u64,
    id: EventId,
    checked: bool,
) -> Result<Option<StoredEvent>> {
    let base = snap.header.base_id;
    while offset < end {
        let peeked = if checked {
            None
        } else {
            peek_frame_at(snap, offset, end)
        };
        match peeked {
            Some((Some(delta), len)) if base.wrapping_add(delta) < id.0 => offset += len as u64,
            Some((None, len)) => offset += len as u64,
            _ => {
                let (ev, next) = read_frame(snap, offset)?;
                match ev {
                    Some(ev) if ev.id == id => return Ok(Some(ev)),
                    Some(ev) if ev.id > id => return Ok(None),
                    _ => offset = next,
                }
            }
        }
    }
    Ok(None)
}
