//! Salvage: copying the intact events of a damaged store into a new one.
//!
//! Readers stop at a damaged frame; salvage is the explicit way past damage. It reads every
//! segment of the damaged store without modifying it, and past a frame that fails tries
//! every following offset until a frame decodes and passes its checksum again, copying
//! every intact event with its original id into a new store and reporting each skipped
//! region. Strings whose definition frames were lost come from the sealed segment's footer
//! when it survived; events whose strings cannot be recovered are counted, not copied.
//! It writes through a [`Store`], so it sits above the store, apart from `recovery`, which
//! the store's open uses. `format-spec/FORMAT.md#salvage`

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::recovery::Problem;
use crate::segment::StreamKind;
use crate::store::Store;
use crate::stream::{read_footer, Stream};

/// What [`salvage`] copied and what it had to leave behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Events copied into the new store, with their original ids.
    pub events_copied: u64,
    /// Events whose frames were intact but whose strings were lost with damaged frames.
    pub events_unreadable: u64,
    /// Damaged regions skipped, each with the file and offset where it starts.
    pub skipped: Vec<Problem>,
    /// Bytes skipped in those regions.
    pub bytes_skipped: u64,
}

/// Copies every event whose frame still passes its checksum from the damaged store at
/// `from` into a new store at `to`, keeping ids. Past a damaged frame it resynchronises by
/// trying every following offset until a frame decodes and passes its checksum again (a
/// false match needs a CRC-32 collision on bytes shaped like a frame). Reads `from` without
/// modifying it; `to` must be new or empty.
///
/// # Errors
/// [`Error::NotAStore`] for `from`; errors opening or writing `to`.
pub fn salvage(from: &Path, to: &Path) -> Result<SalvageReport> {
    crate::layout::check_store(from)?;
    let kind = StreamKind::Events;
    let target = Store::open(to, Config::default())?;
    let mut report = SalvageReport::default();
    for id in Stream::list(from, kind)? {
        let path = from.join(kind.file_name(id));
        salvage_segment(&path, &target, &mut report)?;
    }
    target.close()?;
    Ok(report)
}

fn salvage_segment(path: &Path, target: &Store, report: &mut SalvageReport) -> Result<()> {
    use crate::format::{decode_frame, Frame, SegmentHeader};
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let Some(header) = bytes.get(..64).and_then(|h| SegmentHeader::decode(h).ok()) else {
        report.skipped.push(Problem {
            path: path.to_path_buf(),
            offset: 0,
            what: "segment header unreadable: the whole segment is lost".into(),
        });
        report.bytes_skipped += bytes.len() as u64;
        return Ok(());
    };
    // The footer's dictionary, if it survived, covers strings whose frames did not.
    let footer_strings: Vec<String> = crate::format::CommitSlot::newest(&bytes)
        .ok()
        .filter(|s| s.sealed)
        .and_then(|s| read_footer(&bytes, &s, path).ok())
        .map(|f| f.strings)
        .unwrap_or_default();
    let mut strings: Vec<Option<String>> = footer_strings.into_iter().map(Some).collect();
    let end = crate::format::CommitSlot::newest(&bytes)
        .ok()
        .map_or(bytes.len(), |s| {
            usize::try_from(s.committed_len)
                .unwrap_or(bytes.len())
                .min(bytes.len())
        });
    let mut at = SEGMENT_HEADER_LEN;
    let mut damaged_since: Option<usize> = None;
    while at < end {
        if let Ok(Some((frame, len))) = decode_frame(&bytes[at..end]) {
            if let Some(start) = damaged_since.take() {
                report.bytes_skipped += (at - start) as u64;
            }
            match frame {
                Frame::StringDef { string_ref, text } => {
                    let i = string_ref as usize;
                    if strings.len() <= i {
                        strings.resize(i + 1, None);
                    }
                    strings[i] = Some(text.to_owned());
                }
                Frame::Event(f) => {
                    let name = |r: u32| strings.get(r as usize).cloned().flatten();
                    let event = (|| {
                        let data = crate::stream::frame_data_bytes(&f).ok()?;
                        crate::event::Event::new(
                            crate::event::Timestamp(
                                header.base_timestamp_us.wrapping_add(f.ts_delta),
                            ),
                            name(f.type_ref)?,
                            f.action_ref
                                .map(name)
                                .map_or(Some(None), |a| a.map(Some))?
                                .as_deref(),
                            name(f.source_ref)?,
                            data.as_deref(),
                        )
                        .ok()
                    })();
                    match event {
                        Some(e) => {
                            let id = crate::event::EventId(header.base_id.wrapping_add(f.id_delta));
                            if target.append_with_id(id, e).is_ok() {
                                report.events_copied += 1;
                            } else {
                                report.events_unreadable += 1;
                            }
                        }
                        None => report.events_unreadable += 1,
                    }
                }
            }
            at += len;
        } else {
            if damaged_since.is_none() {
                damaged_since = Some(at);
                report.skipped.push(Problem {
                    path: path.to_path_buf(),
                    offset: at as u64,
                    what: "damaged frames skipped".into(),
                });
            }
            at += 1;
        }
    }
    if let Some(start) = damaged_since {
        report.bytes_skipped += (end - start) as u64;
    }
    Ok(())
}
