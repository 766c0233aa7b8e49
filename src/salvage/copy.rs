//! Copying one segment file's intact events into the new store, with their ids and
//! timestamps recovered when the header that holds their bases is lost.
//!
//! Frames store `id − base_id` and `timestamp − base_timestamp_us`; only the header holds
//! the two bases. When its checksum fails they are recovered, in order of trust: the
//! footer (its summary's first id; its blocks' time ranges against the frames'
//! differences), a commit slot (its last id, when every committed event was found), the
//! neighbouring files (the previous file's last id, the next file's first), and for
//! timestamps a search near the neighbours' times. Every recovered timestamp base is
//! checked against the content hashes the frames store, which cover the timestamp; ids
//! are not hashed, so the report says where they came from, and when nothing tells them,
//! the frames get new ids that keep their stored differences.
//! `format-spec/FORMAT.md#salvage`

use std::collections::BTreeMap;
use std::path::Path;

use super::scan::{locate, scan, Found, Located};
use super::{FileReport, IdOrigin, TimeOrigin};
use crate::error::{Error, Result};
use crate::event::{content_hash, Event, EventId, Timestamp};
use crate::format::{EventFrame, SegmentHeader};
use crate::store::Store;

/// What the files already copied of a stream leave for the next one.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// The last id appended to the new stream, 0 before any.
    last_id: u64,
    /// The last id the files read so far held, as far as they tell (a cut file's commit
    /// slot names ids that were lost with its end): the next file's ids are above it.
    /// At least `last_id`.
    held_id: u64,
    /// The timestamp of the last event appended.
    last_ts: Option<i64>,
    /// Files of the stream read so far.
    files: usize,
}

/// A file's report and the regions it skipped.
pub(super) struct Copied {
    pub report: FileReport,
    pub skipped: Vec<(usize, usize)>,
}

/// Where the next file's ids and times start, when its header or footer says.
struct Anchor {
    base_id: u64,
    base_ts: Option<i64>,
}

/// Bases are searched this far (µs) on either side of each guess: 2^23 µs ≈ 8.4 s, some
/// 17 million content hashes per guess, well under a second.
const SEARCH_RADIUS_US: i64 = 1 << 23;

/// The neighbours' guesses are then searched this far (2^26 µs ≈ 67 s: events captured
/// seconds apart), some 130 million hashes each, a few seconds.
const SEARCH_RADIUS_FAR_US: i64 = 1 << 26;

/// Copies the file at `path` into `target`; `next` is the stream's following file, read
/// only when this file's bases must be recovered.
pub(super) fn copy_file(
    path: &Path,
    next: Option<&Path>,
    state: &mut StreamState,
    target: &Store,
    stream: &'static str,
) -> Result<Copied> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let (bytes, compacted) = as_version_1(bytes, path);
    let located = locate(&bytes);
    let first_file = state.files == 0;
    state.files += 1;
    let mut report = FileReport {
        path: path.to_path_buf(),
        stream,
        events_copied: 0,
        events_unreadable: 0,
        events_lost: 0,
        bytes_skipped: 0,
        bytes_missing: located.bytes_missing,
        ids_copied: None,
        ids: IdOrigin::NoEvents,
        timestamps: TimeOrigin::NoEvents,
        notes: Vec::new(),
    };
    if let Some(found) = located.newer_version {
        report.notes.push(format!(
            "format version {found} is newer than this selflog reads: the file was not read; upgrade selflog"
        ));
        return Ok(Copied {
            report,
            skipped: Vec::new(),
        });
    }
    report.notes.extend(damage_notes(&located));
    report.notes.extend(compacted_notes(compacted.as_ref()));
    let scanned = scan(&bytes, located.end, located.end_known);
    report.bytes_skipped = scanned.skipped.iter().map(|(s, e)| (e - s) as u64).sum();

    let strings = dictionary(&located, &scanned.frames);
    let mut unreadable: BTreeMap<&'static str, u64> = BTreeMap::new();
    // Event frames in file order; ids increase strictly within a segment, so a frame that
    // breaks that (found past damage, but from elsewhere) is set aside.
    let mut events: Vec<(usize, EventFrame<'_>)> = Vec::new();
    for f in &scanned.frames {
        if let Found::Event { offset, frame } = f {
            if events
                .last()
                .is_some_and(|(_, p)| frame.id_delta <= p.id_delta)
            {
                *unreadable.entry("its id does not increase").or_default() += 1;
                continue;
            }
            events.push((*offset, *frame));
        }
    }
    let intact = events.len() as u64 + unreadable.values().sum::<u64>();
    report.events_lost = known_lost(&located, &scanned.skipped, &events, intact);
    if events.is_empty() && located.footer.is_none() && located.slot.is_none() {
        neighbours_gap(next, state, &mut report);
    }

    if !events.is_empty() {
        let anchor = if located.header.is_some() {
            None
        } else {
            next.and_then(read_anchor)
        };
        let (first_id, ids) = resolve_ids(&located, &events, state, anchor.as_ref(), first_file);
        let decoded: Vec<std::result::Result<Event, &'static str>> =
            events.iter().map(|(_, f)| decode(f, &strings)).collect();
        let (base_ts, timestamps) = resolve_time(
            &bytes,
            &located,
            &events,
            &decoded,
            state,
            anchor.as_ref(),
            file_times(path),
        );
        report.ids = ids;
        report.timestamps = timestamps;
        let check_hash = !matches!(timestamps, TimeOrigin::Header | TimeOrigin::Guessed { .. });
        let first_delta = events[0].1.id_delta;
        let mapped = events.iter().zip(decoded).map(|((_, f), event)| {
            let id = first_id
                .checked_add(f.id_delta - first_delta)
                .filter(|&id| id <= EventId::MAX.0);
            (id, f, event)
        });
        append_all(
            mapped,
            base_ts,
            check_hash,
            state,
            target,
            &mut report,
            &mut unreadable,
        )?;
    }
    note_held(&located, state);
    for (why, n) in &unreadable {
        report
            .notes
            .push(format!("{n} intact frames not copied: {why}"));
    }
    report.events_unreadable = unreadable.values().sum();
    Ok(Copied {
        report,
        skipped: scanned.skipped,
    })
}

/// A compacted segment as the version-1 segment it stands for: its blocks that check out
/// expanded, the others zeroed (skipped as damage, their events counted from the footer as
/// lost), with what was damaged; any other file as it is.
#[expect(
    clippy::type_complexity,
    reason = "the two halves of one answer, used once"
)]
fn as_version_1(bytes: Vec<u8>, path: &Path) -> (Vec<u8>, Option<(Vec<(u64, String)>, usize)>) {
    match crate::compact::logical_image(&bytes, path) {
        Some(image) => (image.bytes, Some((image.damaged, image.blocks))),
        None => (bytes, None),
    }
}

/// What salvage says of a compacted segment: how many of its blocks were damaged, and
/// where each is in the file and what is wrong with it.
fn compacted_notes(compacted: Option<&(Vec<(u64, String)>, usize)>) -> Vec<String> {
    let Some((damaged, blocks)) = compacted else {
        return Vec::new();
    };
    std::iter::once(format!(
        "compacted segment: {} of {blocks} blocks damaged and skipped",
        damaged.len()
    ))
    .chain(
        damaged
            .iter()
            .map(|(offset, what)| format!("block at byte {offset}: {what}")),
    )
    .collect()
}

/// Raises the stream's `held_id` to the last id the file's slot or footer counts.
fn note_held(located: &Located, state: &mut StreamState) {
    // The slot and footer hold absolute ids: whatever became of the frames, the next
    // file's ids are above these.
    let counted_last = located
        .footer
        .as_ref()
        .map(|(_, f)| f.summary.last_id)
        .or(located.slot.map(|s| s.last_id))
        .filter(|&id| id <= EventId::MAX.0);
    state.held_id = state.held_id.max(counted_last.unwrap_or(0));
}

/// For a file of which nothing holds that says how many events it had: counts the ids
/// missing between its neighbours as lost.
fn neighbours_gap(next: Option<&Path>, state: &StreamState, report: &mut FileReport) {
    if state.held_id == 0 {
        return;
    }
    let Some(gap) = next
        .and_then(read_anchor)
        .and_then(|n| n.base_id.checked_sub(state.held_id + 1))
        .filter(|&g| g > 0)
    else {
        return;
    };
    report.events_lost = gap;
    report.notes.push(format!(
        "no intact event: ids {}..={} between the neighbouring files are missing",
        state.held_id + 1,
        state.held_id + gap
    ));
}

/// The file's creation and modification times, in µs since the epoch, where known.
fn file_times(path: &Path) -> (Option<i64>, Option<i64>) {
    let Ok(m) = std::fs::metadata(path) else {
        return (None, None);
    };
    let us = |t: std::io::Result<std::time::SystemTime>| {
        let since = t.ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_micros()).ok()
    };
    (us(m.created()), us(m.modified()))
}

/// What the file's header, slots and footer say about its damage, one sentence each.
fn damage_notes(located: &Located) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(why) = &located.header_damage {
        notes.push(format!("header unusable: {why}"));
    }
    if located.slot.is_none() {
        notes.push(if located.footer.is_some() {
            "commit slots unusable: frames end where the footer was found".into()
        } else {
            "commit slots unusable and no footer found: frames were looked for up to the end of the file".into()
        });
    } else if located.slot.is_some_and(|s| s.sealed) && located.footer.is_none() {
        notes.push("sealed, but its footer is lost or damaged".into());
    }
    if located.bytes_missing > 0 {
        notes.push(format!(
            "cut short: {} committed bytes are missing from the end",
            located.bytes_missing
        ));
    }
    notes
}

/// Appends each event under its id, timestamps on `base_ts`, counting in `report` what was
/// copied and in `unreadable` why the others were not.
fn append_all<'a>(
    events: impl Iterator<
        Item = (
            Option<u64>,
            &'a EventFrame<'a>,
            std::result::Result<Event, &'static str>,
        ),
    >,
    base_ts: i64,
    check_hash: bool,
    state: &mut StreamState,
    target: &Store,
    report: &mut FileReport,
    unreadable: &mut BTreeMap<&'static str, u64>,
) -> Result<()> {
    for (id, f, event) in events {
        let Some(id) = id else {
            *unreadable.entry("its id is out of range").or_default() += 1;
            continue;
        };
        let mut event = match event {
            Ok(e) => e,
            Err(why) => {
                *unreadable.entry(why).or_default() += 1;
                continue;
            }
        };
        let Some(ts) = base_ts.checked_add(f.ts_delta).filter(|&t| t >= 0) else {
            *unreadable
                .entry("its timestamp is out of range")
                .or_default() += 1;
            continue;
        };
        event.timestamp = Timestamp(ts);
        if check_hash && event.content_hash() != f.hash {
            *unreadable
                .entry("its content hash does not match the recovered timestamp")
                .or_default() += 1;
            continue;
        }
        if id <= state.last_id {
            *unreadable
                .entry("its id is not above the ids copied before it")
                .or_default() += 1;
            continue;
        }
        match target.append_with_id(EventId(id), event) {
            Ok(_) => {}
            Err(Error::InvalidEvent { .. } | Error::TooLarge { .. }) => {
                *unreadable
                    .entry("the new store refused it as invalid")
                    .or_default() += 1;
                continue;
            }
            Err(e) => return Err(e),
        }
        report.events_copied += 1;
        state.last_id = id;
        state.held_id = state.held_id.max(id);
        state.last_ts = Some(ts);
        let first = report.ids_copied.map_or(EventId(id), |(f, _)| f);
        report.ids_copied = Some((first, EventId(id)));
    }
    Ok(())
}

/// The segment's dictionary: the footer's when it survived, completed and checked by the
/// string definitions found.
fn dictionary<'a>(located: &'a Located, frames: &[Found<'a>]) -> Vec<Option<&'a str>> {
    let mut strings: Vec<Option<&str>> = located
        .footer
        .as_ref()
        .map(|(_, f)| f.strings.iter().map(|s| Some(s.as_str())).collect())
        .unwrap_or_default();
    for f in frames {
        if let Found::String { string_ref, text } = f {
            let i = *string_ref as usize;
            if strings.len() <= i {
                strings.resize(i + 1, None);
            }
            strings[i] = Some(text);
        }
    }
    strings
}

/// The event a frame holds, with a placeholder timestamp; why not, when its strings were
/// lost or its data does not decode.
fn decode(
    f: &EventFrame<'_>,
    strings: &[Option<&str>],
) -> std::result::Result<Event, &'static str> {
    const LOST: &str = "a string it refers to was lost with damaged frames";
    let name = |r: u32| strings.get(r as usize).copied().flatten().ok_or(LOST);
    let event_type = name(f.type_ref)?;
    let source = name(f.source_ref)?;
    let action = f.action_ref.map(name).transpose()?;
    let data = crate::stream::frame_data_bytes(f).map_err(|_| "its data does not decode")?;
    Event::new(Timestamp(0), event_type, action, source, data.as_deref())
        .map_err(|_| "its data is not JSON")
}

/// Events known lost in the file: what its footer or commit slot counted and no intact
/// frame holds; without either, the ids missing across each skipped region.
fn known_lost(
    located: &Located,
    skipped: &[(usize, usize)],
    events: &[(usize, EventFrame<'_>)],
    intact: u64,
) -> u64 {
    let counted = located
        .footer
        .as_ref()
        .map(|(_, f)| f.summary.event_count)
        .or(located.slot.map(|s| s.event_count));
    if let Some(n) = counted {
        return n.saturating_sub(intact);
    }
    let mut lost = 0;
    for &(start, _) in skipped {
        let after = events.iter().position(|(o, _)| *o > start);
        let before_delta = match after {
            Some(0) => None,
            Some(i) => Some(events[i - 1].1.id_delta),
            None => continue, // past the last event: nothing tells how many
        };
        let after_delta = events[after.unwrap_or(0)].1.id_delta;
        lost += match before_delta {
            // The first event of a segment has id delta 0.
            None => after_delta,
            Some(b) => after_delta.saturating_sub(b + 1),
        };
    }
    lost
}

/// Where the file at `path` starts, from its header or its footer.
fn read_anchor(path: &Path) -> Option<Anchor> {
    let bytes = std::fs::read(path).ok()?;
    let l = locate(&bytes);
    if let Some(h) = l.header {
        return Some(Anchor {
            base_id: h.base_id,
            base_ts: Some(h.base_timestamp_us),
        });
    }
    l.footer
        .filter(|(_, f)| f.summary.event_count > 0)
        .map(|(_, f)| Anchor {
            base_id: f.summary.first_id,
            base_ts: None,
        })
}

/// The id of the first event frame of `events`, and where it came from.
fn resolve_ids(
    located: &Located,
    events: &[(usize, EventFrame<'_>)],
    state: &StreamState,
    next: Option<&Anchor>,
    first_file: bool,
) -> (u64, IdOrigin) {
    let first_delta = events[0].1.id_delta;
    let last_delta = events[events.len() - 1].1.id_delta;
    let base = located
        .header
        .as_ref()
        .map(|h: &SegmentHeader| (h.base_id, IdOrigin::Header))
        .or_else(|| {
            let (_, f) = located.footer.as_ref()?;
            (f.summary.event_count > 0).then_some((f.summary.first_id, IdOrigin::Footer))
        })
        .or_else(|| {
            let s = located.slot?;
            (s.event_count == events.len() as u64 && s.event_count > 0)
                .then(|| s.last_id.checked_sub(last_delta))
                .flatten()
                .map(|b| (b, IdOrigin::CommitSlot))
        })
        .or_else(|| {
            let after_prev = (state.held_id > 0).then_some(state.held_id + 1);
            let before_next = next.and_then(|n| n.base_id.checked_sub(last_delta + 1));
            match (after_prev, before_next) {
                (Some(p), Some(n)) if p == n => Some((p, IdOrigin::Neighbours)),
                (Some(p), Some(n)) if p <= n => Some((p, IdOrigin::PreviousFile)),
                (Some(p), None) => Some((p, IdOrigin::PreviousFile)),
                (_, Some(n)) if n > state.held_id && n >= 1 => Some((n, IdOrigin::NextFile)),
                (None, None) if first_file => Some((1, IdOrigin::FirstFile)),
                _ => None,
            }
        });
    match base.and_then(|(b, o)| Some((b.checked_add(first_delta)?, o))) {
        Some((first, origin)) if first > state.held_id && first <= EventId::MAX.0 => {
            (first, origin)
        }
        _ => {
            let first = state.held_id + 1;
            (
                first,
                IdOrigin::Reassigned {
                    first: EventId(first),
                },
            )
        }
    }
}

/// The timestamp base the footer gives: from a block whose every event was found, its
/// smallest timestamp minus the smallest difference among them, if `holds` confirms it.
fn footer_base(
    located: &Located,
    events: &[(usize, EventFrame<'_>)],
    holds: &impl Fn(i64) -> bool,
) -> Option<i64> {
    let (_, footer) = located.footer.as_ref()?;
    footer.blocks.iter().find_map(|b| {
        let (lo, hi) = (b.offset, b.offset + u64::from(b.len));
        let deltas: Vec<i64> = events
            .iter()
            .filter(|(o, _)| (lo..hi).contains(&(*o as u64)))
            .map(|(_, f)| f.ts_delta)
            .collect();
        if deltas.len() != b.event_count as usize {
            return None;
        }
        let base = b.min_ts_us.checked_sub(*deltas.iter().min()?)?;
        holds(base).then_some(base)
    })
}

/// The timestamp base of the file, and where it came from.
fn resolve_time(
    bytes: &[u8],
    located: &Located,
    events: &[(usize, EventFrame<'_>)],
    decoded: &[std::result::Result<Event, &'static str>],
    state: &StreamState,
    next: Option<&Anchor>,
    (created_us, modified_us): (Option<i64>, Option<i64>),
) -> (i64, TimeOrigin) {
    if let Some(h) = &located.header {
        return (h.base_timestamp_us, TimeOrigin::Header);
    }
    // Up to three decodable events, the cheapest to hash first, to test a base against.
    let mut probes: Vec<(&EventFrame<'_>, &Event)> = events
        .iter()
        .zip(decoded)
        .filter_map(|((_, f), e)| Some((f, e.as_ref().ok()?)))
        .take(64)
        .collect();
    probes.sort_by_key(|(_, e)| {
        e.event_type.len() + e.source.len() + e.data_text().map_or(0, str::len)
    });
    probes.truncate(3);
    let holds = |base: i64| {
        !probes.is_empty()
            && probes.iter().all(|(f, e)| {
                base.checked_add(f.ts_delta).is_some_and(|t| {
                    content_hash(
                        Timestamp(t),
                        &e.event_type,
                        e.action.as_deref(),
                        &e.source,
                        e.data_text(),
                    ) == f.hash
                })
            })
    };
    if let Some(base) = footer_base(located, events, &holds) {
        return (base, TimeOrigin::Footer);
    }
    let field = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .filter(|&v| v != 0)
    };
    if let Some(base) = field(32).filter(|&b| holds(b)) {
        return (base, TimeOrigin::DamagedHeader);
    }
    let last_delta = events[events.len() - 1].1.ts_delta;
    let guesses: Vec<i64> = [
        state.last_ts,
        next.and_then(|n| n.base_ts?.checked_sub(last_delta)),
        located
            .slot
            .and_then(|s| s.commit_time_us.checked_sub(last_delta)),
        field(48),
        // A segment is created for its first event and last written for its last one:
        // with events captured as they happen, the file's times are close to theirs.
        created_us,
        modified_us.and_then(|m| m.checked_sub(last_delta)),
        located.footer.as_ref().and_then(|(_, f)| {
            let min = events.iter().map(|(_, e)| e.ts_delta).min()?;
            f.summary.min_ts_us.checked_sub(min)
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some((f, e)) = probes.first() {
        let try_base = |base: i64| {
            base.checked_add(f.ts_delta).is_some_and(|t| {
                content_hash(
                    Timestamp(t),
                    &e.event_type,
                    e.action.as_deref(),
                    &e.source,
                    e.data_text(),
                ) == f.hash
            }) && holds(base)
        };
        // Every guess near, then the neighbours' (the first two) farther out.
        let rounds = [
            (0, SEARCH_RADIUS_US, guesses.len()),
            (SEARCH_RADIUS_US + 1, SEARCH_RADIUS_FAR_US, 2),
        ];
        for (from, to, count) in rounds {
            for &g in guesses.iter().take(count) {
                for k in from..=to {
                    for base in [g.checked_add(k), g.checked_sub(k)].into_iter().flatten() {
                        if try_base(base) {
                            return (base, TimeOrigin::Searched);
                        }
                    }
                }
            }
        }
    }
    let base_us = guesses.first().copied().unwrap_or(0);
    (base_us, TimeOrigin::Guessed { base_us })
}
