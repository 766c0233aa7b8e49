//! Reading candidate blocks: decoding their frames and testing them against the filter.
//!
//! Frames are matched on their fields without paying for their checksums; what is released
//! is decoded again with the checksum checked ([`Events`]), so nothing unchecked is ever
//! returned. A block with a match is checked whole once, and its releases then skip their
//! checksums. A text search first looks for the text in a block's bytes at once and decodes
//! frame by frame only where it may be.

use crate::error::Result;
use crate::format::{Block, EventFrame, FrameHead};
use crate::stream::{decompress_payload, frames_check_out, raw_frame, utf8, Snapshot};

use super::events::{Events, Unchecked};
use super::merge::{order_key, Match, Pending};
use super::parallel::{SCAN_BATCH_BLOCKS, SCAN_SERIAL_BLOCKS};
use super::plan::{plan_segment, Plan, SegmentPlan, Visit};
use super::Order;

/// A frame that passed the filter, with its data text if matching decoded it.
enum Matched {
    Plain,
    WithData(String),
}

/// The filter fields of the frame at `offset` (none for a string definition) and its
/// length, without its checksum; `None` when they do not decode (the checked decode then
/// reports why).
fn peek_head(snap: &Snapshot, offset: u64) -> Option<(Option<FrameHead>, usize)> {
    crate::format::peek_head(snap.frames_from(offset)?)
}

/// The fields of the frame at `offset` without checking its checksum, for ruling it out;
/// `None` when they do not decode (the checked decode then reports why).
#[inline]
pub(super) fn peek_fields(snap: &Snapshot, offset: u64) -> Option<(EventFrame<'_>, usize)> {
    let bytes = snap.frames_from(offset)?;
    crate::format::peek_event(bytes).or_else(|| {
        match crate::format::decode_frame_unchecked(bytes) {
            Ok(Some((crate::format::Frame::Event(f), len))) => Some((f, len)),
            _ => None,
        }
    })
}

/// Where the event frames with compressed payloads start among the frames of `bytes`
/// (offsets in `bytes`), from each frame's length and flags alone; `None` when a frame's
/// shape is off or the frames do not end exactly with `bytes`.
fn compressed_frames(bytes: &[u8]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (compressed, len) = crate::format::peek_compressed(&bytes[at..])?;
        if compressed {
            out.push(at);
        }
        at += len;
    }
    Some(out)
}

impl Events {
    /// Expands a pending segment into its candidate blocks, or decodes the next candidate
    /// block of an expanded one, pushing its matching events onto the heap.
    pub(super) fn load(&mut self, plan_index: usize) -> Result<()> {
        if let Plan::Pending { view, snap, .. } = &self.plans[plan_index] {
            let snap = if let Some(snap) = snap {
                snap.clone()
            } else {
                view.load()?;
                view.snapshot()
            };
            let plan = plan_segment(
                view,
                snap,
                &self.filter,
                self.matcher.as_ref(),
                self.after,
                self.order,
            );
            self.plans[plan_index] = plan.map_or(Plan::Done, |p| Plan::Expanded(Box::new(p)));
            return Ok(());
        }
        let (order, after) = (self.order, self.after);
        // A text search that has already read many blocks is most likely a long scan: it
        // takes a batch of this plan's next blocks and reads them on every core.
        let batch_max = if self.matcher.is_some() && self.visited >= SCAN_SERIAL_BLOCKS {
            SCAN_BATCH_BLOCKS
        } else {
            1
        };
        let Plan::Expanded(plan) = &mut self.plans[plan_index] else {
            return Ok(());
        };
        // The blocks this plan visits next, in the order single loads would take them: the
        // frontier moves on while what lies beyond it may sort before the queued blocks.
        let mut batch = Vec::new();
        while batch.len() < batch_max {
            let top = plan.blocks.peek().map(|c| c.key);
            if let Some(bound) = plan.frontier_bound(order, &self.filter) {
                if top.is_none_or(|t| bound >= t) {
                    plan.advance(order, &self.filter, after);
                    if batch.is_empty() && batch_max == 1 {
                        // The candidates behind the frontier share its bound's time until
                        // the one holding it is passed (an event of a newer time early in a
                        // segment, e.g. before an import of older events): the merge would
                        // come straight back here for each of them, ranking every plan each
                        // time, so they are queued in one go. (Queueing a candidate is
                        // always safe; it is read only when its own bound comes first.)
                        while plan
                            .frontier_bound(order, &self.filter)
                            .is_some_and(|b| b.0 == bound.0)
                        {
                            plan.advance(order, &self.filter, after);
                        }
                        return Ok(());
                    }
                    continue;
                }
            }
            let Some(candidate) = plan.blocks.pop() else {
                break;
            };
            batch.push(candidate);
        }
        self.visited += batch.len() as u64;
        if batch.len() <= 1 {
            if let Some(c) = batch.first() {
                let found = self.scan_block(plan_index, &c.item, &mut Vec::new())?;
                self.hold_blocks(plan_index, &[c.item], &found);
                self.merge.push(found);
            }
            return Ok(());
        }
        let blocks: Vec<Visit> = batch.iter().map(|c| c.item).collect();
        let results = self.scan_blocks_parallel(plan_index, &blocks);
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(found) => {
                    self.hold_blocks(plan_index, &blocks[i..=i], &found);
                    self.merge.push(found);
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => {
                    // A damaged block fails the query where a visit in order would: the
                    // blocks from it on go back unvisited, so what sorts before them is
                    // released first, and the next load reports the damage.
                    if let Plan::Expanded(plan) = &mut self.plans[plan_index] {
                        plan.blocks.extend(batch.drain(i..));
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The matches of one block of plan `plan_index`.
    ///
    /// A block with a match is checked whole once ([`crate::checked::CheckedBlocks`]; the
    /// open block as far as the snapshot holds it): its bytes are in the cache now, and the
    /// releases of its events, by this query and every later one, then skip their
    /// checksums.
    pub(super) fn scan_block(
        &self,
        plan_index: usize,
        visit: &Visit,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Pending>> {
        let Plan::Expanded(plan) = &self.plans[plan_index] else {
            return Ok(Vec::new());
        };
        let block = &visit.block;
        let end = (block.offset + u64::from(block.len)).min(plan.snap.committed_len);
        let mut found = self.block_matches(plan_index, plan, block, end, scratch)?;
        if found.is_empty() {
            return Ok(found);
        }
        let marks = &plan.snap.checked;
        let n = visit.number;
        let checked = if visit.closed {
            // A block closed after the snapshot was taken may reach past its committed
            // end: what the snapshot holds of it is not the whole block.
            let whole = end == block.offset + u64::from(block.len);
            marks.contains(n)
                || (whole && frames_check_out(&plan.snap, block.offset, end) && {
                    marks.insert(n);
                    true
                })
        } else {
            // The open block grows: what an earlier listing checked of it is kept, and only
            // the frames after that are checked now.
            let len = u32::try_from(end.saturating_sub(block.offset)).unwrap_or(u32::MAX);
            let done = marks.open_checked(n).min(len);
            done == len
                || (frames_check_out(&plan.snap, block.offset + u64::from(done), end) && {
                    marks.insert_open(n, len);
                    true
                })
        };
        if checked {
            for p in &mut found {
                p.item.checked = true;
            }
        }
        Ok(found)
    }

    /// The matches among the frames of `block`, which end at `end`.
    fn block_matches(
        &self,
        plan_index: usize,
        plan: &SegmentPlan,
        block: &Block,
        end: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Pending>> {
        // Without a filter on names or text every frame in range matches: room for a
        // whole block at once instead of growing (and copying) the matches as they come.
        let unfiltered = self.matcher.is_none() && !plan.filters_names();
        let mut found = Vec::with_capacity(if unfiltered {
            crate::index::BLOCK_EVENTS_MAX as usize
        } else {
            0
        });
        // A text search first looks for the text in the block's bytes at once. Where it is
        // not there, no uncompressed payload of the block holds it (each is a slice of those
        // bytes), and when no name in the segment holds it either, only the block's
        // compressed payloads can: the frames are stepped over by their length and flags
        // alone, which the search has just brought into the cache. A frame whose shape is
        // off sends the block to the full walk, which reports it.
        if let Some(m) = self.matcher.as_ref().filter(|_| plan.text_refs.is_empty()) {
            let bytes = plan.snap.frames(block.offset, end);
            let compressed = bytes.filter(|b| !m.is_match(b)).and_then(compressed_frames);
            if let Some(compressed) = compressed {
                for at in compressed {
                    let offset = block.offset + at as u64;
                    found.extend(self.scan_frame(plan_index, plan, offset, scratch)?.0);
                }
                return Ok(found);
            }
        }
        let mut offset = block.offset;
        while offset < end {
            let (matched, next) = self.scan_frame(plan_index, plan, offset, scratch)?;
            found.extend(matched);
            offset = next;
        }
        Ok(found)
    }

    /// The frame at `offset` of plan `plan_index` as a match, if it is one, and the offset
    /// of the next frame.
    fn scan_frame(
        &self,
        plan_index: usize,
        plan: &SegmentPlan,
        offset: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<(Option<Pending>, u64)> {
        // Match on the frame's fields without paying for its checksum: what is released
        // is decoded again with the checksum checked (Events::materialize), so nothing
        // unchecked is ever returned. A frame whose shape is off goes to the checked
        // decode, which reports the damage. Without a text search only the fields
        // before the hash are read; with one, `matches` also checks the fields.
        //
        // Where every frame in range matches (no name filter, no text), most of what is
        // scanned is released: the frame is decoded whole here and kept, so that its
        // release only checks the checksum. Elsewhere the scan reads only the head.
        let whole = self.matcher.is_some() || !plan.filters_names();
        let (head, data, unchecked, next) = if whole {
            let (frame, unchecked, next) = if let Some((f, len)) = peek_fields(&plan.snap, offset) {
                (Some(f), Unchecked::of(&f, len), offset + len as u64)
            } else {
                let (f, next) = raw_frame(&plan.snap, offset)?;
                (f, None, next)
            };
            match frame {
                Some(f) => match self.matches(plan, offset, &f, scratch)? {
                    Some(Matched::Plain) => (Some(FrameHead::from(&f)), None, unchecked, next),
                    Some(Matched::WithData(d)) => {
                        (Some(FrameHead::from(&f)), Some(d), unchecked, next)
                    }
                    None => (None, None, None, next),
                },
                None => (None, None, None, next),
            }
        } else if let Some((h, len)) = peek_head(&plan.snap, offset) {
            (h, None, None, offset + len as u64)
        } else {
            let (f, next) = raw_frame(&plan.snap, offset)?;
            (f.as_ref().map(FrameHead::from), None, None, next)
        };
        let passes = |h: &FrameHead| whole || self.fields_match(plan, h);
        let matched = head.filter(passes).map(|f| {
            let id = plan.snap.header.base_id.wrapping_add(f.id_delta);
            let ts = plan.snap.header.base_timestamp_us.wrapping_add(f.ts_delta);
            Pending {
                key: order_key(self.order, ts, id),
                item: Match {
                    plan: plan_index,
                    offset,
                    data,
                    frame: unchecked,
                    checked: false,
                },
            }
        });
        Ok((matched, next))
    }

    /// Whether frame `f` passes the filter: `Some` with its data text if matching decoded it.
    fn matches(
        &self,
        plan: &SegmentPlan,
        offset: u64,
        f: &EventFrame<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Matched>> {
        if !self.fields_match(plan, &FrameHead::from(f)) {
            return Ok(None);
        }
        self.text_matches(plan, offset, f, scratch)
    }

    /// Whether `f`'s id, timestamp and strings pass the filter (not the text).
    fn fields_match(&self, plan: &SegmentPlan, f: &FrameHead) -> bool {
        let fl = &self.filter;
        let id = plan.snap.header.base_id.wrapping_add(f.id_delta);
        let ts = plan.snap.header.base_timestamp_us.wrapping_add(f.ts_delta);
        if fl.since.is_some_and(|t| ts < t.0) || fl.until.is_some_and(|t| ts >= t.0) {
            return false;
        }
        if fl.id_from.is_some_and(|i| id < i) || fl.id_until.is_some_and(|i| id >= i) {
            return false;
        }
        if let Some(p) = self.after {
            let past = match self.order {
                Order::NewestFirst => (ts, id) < (p.timestamp.0, p.id.0),
                Order::OldestFirst => (ts, id) > (p.timestamp.0, p.id.0),
            };
            if !past {
                return false;
            }
        }
        if plan
            .types
            .as_ref()
            .is_some_and(|t| !t.contains(&f.type_ref))
            || plan
                .sources
                .as_ref()
                .is_some_and(|s| !s.contains(&f.source_ref))
            || plan.action.is_some_and(|a| f.action_ref != Some(a))
        {
            return false;
        }
        true
    }

    /// Whether `f` passes the text filter: `Some` with its data text if that was decoded.
    fn text_matches(
        &self,
        plan: &SegmentPlan,
        offset: u64,
        f: &EventFrame<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Matched>> {
        let Some(m) = &self.matcher else {
            return Ok(Some(Matched::Plain));
        };
        let in_names = plan.text_refs.contains(&f.type_ref)
            || plan.text_refs.contains(&f.source_ref)
            || f.action_ref.is_some_and(|a| plan.text_refs.contains(&a));
        if in_names {
            return Ok(Some(Matched::Plain));
        }
        // Bytes are matched as they are; only a match is checked to be UTF-8 (and every
        // released event is decoded again with its checksum checked). A compressed payload
        // is decompressed into the scanning thread's buffer, reused from frame to frame.
        let bytes: &[u8] = match (f.payload, f.raw_len) {
            (None, _) => return Ok(None),
            (Some(p), None) => p,
            (Some(p), Some(raw)) => {
                decompress_payload(&plan.snap, offset, p, raw, scratch)?;
                scratch
            }
        };
        if !m.is_match(bytes) {
            return Ok(None);
        }
        let text = utf8(bytes).map(str::to_owned).ok_or_else(|| {
            crate::Error::corrupt(&plan.snap.path, offset, "event data is not UTF-8")
        })?;
        Ok(Some(Matched::WithData(text)))
    }
}
