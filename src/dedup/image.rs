//! The dedup window's image: the table as bytes, written by a clean close and read by the
//! next writable open instead of the segments (`format-spec/FORMAT.md#dedup-window-image`).
//!
//! The image is a cache: it can only cost a missed duplicate, never an event, since
//! candidates are confirmed by content. It is checked against the store's last event, so a
//! stale or foreign image is refused and `OpenReport` says why; then the window is rebuilt
//! from the segments. `read_image` checks what the walks rely on (no id past the newest,
//! at most `capacity` live entries, a bucket nothing overflows), since a checksum proves
//! no more than that the bytes are unchanged.

use std::io::Write as _;
use std::path::Path;

use crate::event::EventId;
use crate::scan::get_in;
use crate::stream::Stream;

use super::window::{displacement_of, DedupWindow, DISPLACEMENT_MAX, OFFSET_MASK};

/// Magic of a window image (`format-spec/FORMAT.md#dedup-window-image`).
pub(crate) const IMAGE_MAGIC: &[u8; 8] = b"SLOGDWIN";
/// Version of the image layout, bumped whenever the table's layout or a key's home changes.
const IMAGE_VERSION: u32 = 1;
/// Bytes of the image header.
pub(crate) const IMAGE_HEADER_LEN: usize = 64;
/// Bytes of the table read, summed and checked at a time: small enough to stay in the
/// cache between the three, large enough that a read is not mostly system call.
const IMAGE_READ_PIECE_LEN: usize = 256 << 10;

/// What an image's header says about the window it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ImageHeader {
    /// The newest id in the window: the store's last event when the image was written.
    pub newest: u64,
    /// That event's content hash, so that an image is never applied to other events.
    pub newest_hash: u64,
}

/// The dedup window's image, written by a clean close and read by the next writable open
/// (`format-spec/FORMAT.md#dedup-window-image`).
pub(crate) const DEDUP_IMAGE_FILE: &str = "dedup.window";

/// What reading an image gave before it is checked against the store: `Ok(None)` when
/// there is none, `Err` saying why it cannot be used.
type ImageRead = std::result::Result<Option<(DedupWindow, ImageHeader)>, String>;

/// The image at `path` read for a window of `capacity` ids, with its own checks (its
/// checksums, its table's shape) but not yet against the store.
fn read_dedup_image(path: &Path, capacity: usize) -> ImageRead {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    // Unbuffered: the table is read in large pieces straight into the window.
    DedupWindow::read_image(capacity, len, &mut file).map(Some)
}

/// A writable open's read of the dedup image, on a helper thread while the open recovers
/// the segments (each takes a few milliseconds, and neither needs the other), so that the
/// open waits for the longer of the two rather than both. Nothing the thread reads is used
/// before [`DedupImageRead::finish`] checks it against the store.
pub(crate) struct DedupImageRead {
    path: std::path::PathBuf,
    capacity: usize,
    thread: Option<std::thread::JoinHandle<ImageRead>>,
}

impl DedupImageRead {
    /// Starts reading the image at `path` for a window of `capacity` ids (nothing is read
    /// for a disabled window, and no thread started when there is no image: a sidecar's
    /// window is too small to have one). Reading it before the segments are recovered is safe: an
    /// image is only ever replaced whole (renamed over), and whichever one is read is then
    /// checked against the recovered store, and brought up to date with the events after
    /// it.
    pub(crate) fn start(path: std::path::PathBuf, capacity: usize) -> DedupImageRead {
        let thread = (capacity > 0 && path.exists())
            .then(|| {
                let (path, capacity) = (path.clone(), capacity);
                std::thread::Builder::new()
                    .name("selflog-dedup-image".into())
                    .spawn(move || read_dedup_image(&path, capacity))
                    .ok()
            })
            .flatten();
        DedupImageRead {
            path,
            capacity,
            thread,
        }
    }

    /// The window in the image, checked against the store (`last_id` is its last event):
    /// `Ok(None)` when there is none, `Err` saying why one cannot be used. Reads the image
    /// here if the helper thread could not be started.
    pub(crate) fn finish(
        self,
        stream: &Stream,
        last_id: u64,
    ) -> std::result::Result<Option<DedupWindow>, String> {
        let read = match self.thread {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("reading it panicked".into())),
            None => read_dedup_image(&self.path, self.capacity),
        };
        let Some((window, header)) = read? else {
            return Ok(None);
        };
        if header.newest > last_id {
            return Err(format!(
                "it covers events up to {}, past the store's last ({last_id})",
                header.newest
            ));
        }
        match get_in(stream, EventId(header.newest)) {
            Ok(Some(e)) if e.hash == header.newest_hash => Ok(Some(window)),
            Ok(_) => Err(format!(
                "event {} is not the one it was written after",
                header.newest
            )),
            Err(e) => Err(format!("event {} cannot be read: {e}", header.newest)),
        }
    }
}

/// Below this many ids in the window (unless it is full), reading the window's events is
/// no slower than reading a 16 MB image, and no image is written.
const DEDUP_IMAGE_IDS_MIN: u64 = 50_000;

/// Writes the image of `window` for the next writable open to read instead of the
/// segments: to a temporary file, renamed over the old image. Not synced: an image a crash
/// damaged fails its checksum and the window is rebuilt. Best effort: a failure costs the
/// next open time, nothing else, so the temporary file is removed and nothing reported.
pub(crate) fn save_dedup_image(dir: &Path, stream: &Stream, window: &DedupWindow) {
    let path = dir.join(DEDUP_IMAGE_FILE);
    let Some(newest) = window
        .newest()
        .filter(|_| window.ids_covered() >= DEDUP_IMAGE_IDS_MIN.min(window.capacity()))
    else {
        // Too few events for the image to beat reading them: an older image would still
        // be right (the open reads the events after it), but it would be dead weight.
        let _ = std::fs::remove_file(&path);
        return;
    };
    let Ok(Some(event)) = get_in(stream, EventId(newest)) else {
        return;
    };
    let tmp = dir.join(format!("{DEDUP_IMAGE_FILE}.tmp"));
    let written = crate::segment::create_private(&tmp).ok().and_then(|f| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        let ok = window.write_image(event.hash, &mut out).ok()? && out.flush().is_ok();
        ok.then_some(())
    });
    if written.is_none() || std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

impl DedupWindow {
    /// Bytes of this window's image.
    pub(crate) fn image_len(&self) -> usize {
        IMAGE_HEADER_LEN + self.slots.len() * 8 + self.buckets() + 4
    }

    /// Writes the window's image to `out`: a header naming the newest event (whose content
    /// hash is `newest_hash`), the table's entries as little-endian u64s, the overflow
    /// counts, and a CRC-32 of the entries and counts. Nothing is written for a disabled or
    /// empty window; returns whether an image was written.
    pub fn write_image(
        &self,
        newest_hash: u64,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<bool> {
        let Some(base) = self.base.filter(|_| !self.is_disabled()) else {
            return Ok(false);
        };
        let mut h = [0u8; IMAGE_HEADER_LEN];
        h[0..8].copy_from_slice(IMAGE_MAGIC);
        h[8..12].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
        h[16..24].copy_from_slice(&self.capacity.to_le_bytes());
        h[24..32].copy_from_slice(&(self.buckets() as u64).to_le_bytes());
        h[32..40].copy_from_slice(&base.to_le_bytes());
        h[40..48].copy_from_slice(&self.newest.to_le_bytes());
        h[48..56].copy_from_slice(&newest_hash.to_le_bytes());
        let crc = crate::format::crc32(&[&h[0..60]]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        out.write_all(&h)?;
        let mut body = crc32fast::Hasher::new();
        let mut chunk = Vec::with_capacity(64 << 10);
        for i in 0..self.slots.len() {
            chunk.extend_from_slice(&self.slots.get(i).to_le_bytes());
            if chunk.len() == chunk.capacity() {
                body.update(&chunk);
                out.write_all(&chunk)?;
                chunk.clear();
            }
        }
        body.update(&chunk);
        out.write_all(&chunk)?;
        body.update(&self.overflow);
        out.write_all(&self.overflow)?;
        out.write_all(&body.finalize().to_le_bytes())?;
        Ok(true)
    }

    /// Reads a window of `capacity` ids back from an image of `len` bytes that
    /// [`DedupWindow::write_image`] wrote. `Err` says why the image cannot be used (damage,
    /// another capacity or layout version, entries that do not fit the header); the caller
    /// then rebuilds the window from the segments.
    pub fn read_image(
        capacity: usize,
        len: u64,
        input: &mut impl std::io::Read,
    ) -> std::result::Result<(DedupWindow, ImageHeader), String> {
        let mut w = DedupWindow::new(capacity);
        if w.is_disabled() {
            return Err("deduplication is off".into());
        }
        if len != w.image_len() as u64 {
            return Err(format!(
                "it is {len} bytes, not the {} of a {capacity}-event window",
                w.image_len()
            ));
        }
        let io = |e: std::io::Error| format!("reading it failed: {e}");
        let mut h = [0u8; IMAGE_HEADER_LEN];
        input.read_exact(&mut h).map_err(io)?;
        let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"));
        let half = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
        if &h[0..8] != IMAGE_MAGIC {
            return Err("it is not a dedup window image".into());
        }
        if half(60) != crate::format::crc32(&[&h[0..60]]) {
            return Err("its header fails its checksum".into());
        }
        if half(8) != IMAGE_VERSION || half(12) != 0 || half(56) != 0 {
            return Err(format!(
                "it has layout version {} (this build: {IMAGE_VERSION})",
                half(8)
            ));
        }
        let (base, newest) = (word(32), word(40));
        if word(16) != w.capacity || word(24) != w.buckets() as u64 {
            return Err(format!(
                "it holds a window of {} events, not {capacity}",
                word(16)
            ));
        }
        if base == 0 || newest < base || newest - base >= OFFSET_MASK || newest > EventId::MAX.0 {
            return Err(format!(
                "its ids are out of range (base {base}, newest {newest})"
            ));
        }
        // One pass, a piece at a time: each piece is read straight into the table, summed
        // and checked while it is still in the cache (three passes over 16 MB, reading,
        // summing and checking, cost the open twice as much). Nothing of the table is
        // trusted before the whole sum matches below.
        //
        // What the table relies on, which a checksum alone does not prove: no entry past
        // the newest id (an append would wait for an event that does not exist yet) or
        // before the base (no window writes one), no
        // displacement beyond the table, no more live entries than the window holds (an
        // insert finds a free slot), and a bucket nothing overflows (a walk along a chain
        // ends; walks are bounded as well, for counts that drift from a crafted start).
        // In offsets (id - base + 1): a used entry's lies in 1..=`offset_max`, and it is
        // live above `live_above`. Displacements are checked only in a table of fewer than
        // 16 buckets: their 4 bits cannot name a bucket past a larger one.
        let offset_max = newest - base + 1;
        let live_above = (newest + 1).saturating_sub(base + w.capacity);
        let check_displacement = w.buckets() <= DISPLACEMENT_MAX;
        let buckets = w.buckets();
        let mut body = crc32fast::Hasher::new();
        let (mut live, mut out_of_range, mut too_far) = (0u64, false, false);
        for piece in w.slots.map.chunks_mut(IMAGE_READ_PIECE_LEN) {
            input.read_exact(piece).map_err(io)?;
            body.update(piece);
            for entry in piece.chunks_exact_mut(8) {
                let e = u64::from_le_bytes((&*entry).try_into().expect("8 bytes"));
                let offset = e & OFFSET_MASK;
                // Branch-free: `used` leaves empty slots (0) out of the check and count.
                let used = e != 0;
                out_of_range |= used & (offset.wrapping_sub(1) >= offset_max);
                live += u64::from(used) & u64::from(offset > live_above);
                if check_displacement {
                    too_far |= used & (displacement_of(e) >= buckets);
                }
                if cfg!(target_endian = "big") {
                    entry.copy_from_slice(&e.to_ne_bytes());
                }
            }
        }
        input.read_exact(&mut w.overflow).map_err(io)?;
        let mut crc = [0u8; 4];
        input.read_exact(&mut crc).map_err(io)?;
        body.update(&w.overflow);
        if u32::from_le_bytes(crc) != body.finalize() {
            return Err("its entries fail their checksum".into());
        }
        if out_of_range {
            return Err(format!(
                "an entry holds an id outside {base}..={newest}, the ids it covers"
            ));
        }
        if too_far {
            return Err("an entry lives further from its home than there are buckets".into());
        }
        if live > w.capacity || !w.overflow.contains(&0) {
            return Err("its table is not one a window can hold".into());
        }
        w.base = Some(base);
        w.newest = newest;
        Ok((
            w,
            ImageHeader {
                newest,
                newest_hash: word(48),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::window::tests::key;

    /// A window filled past several generations, crowded into few buckets.
    fn crowded_window(capacity: usize, inserts: u64) -> DedupWindow {
        let mut w = DedupWindow::new(capacity);
        for id in 1..=inserts {
            w.insert(key(id % 97) & !0xFFFF_FFF0 | (id % 3), id);
        }
        w
    }

    #[test]
    fn an_image_reads_back_as_the_same_window() {
        let w = crowded_window(64, 500);
        let mut image = Vec::new();
        assert!(w.write_image(77, &mut image).unwrap());
        assert_eq!(image.len(), w.image_len());
        let (r, header) = DedupWindow::read_image(64, image.len() as u64, &mut &image[..]).unwrap();
        assert_eq!(
            header,
            ImageHeader {
                newest: 500,
                newest_hash: 77
            }
        );
        for k in 0..200 {
            for low in 0..4 {
                let k = key(k) & !0xFFFF_FFF0 | low;
                assert_eq!(r.candidate(k), w.candidate(k), "key {k:x}");
            }
        }
        // It goes on as the original does.
        let (mut a, mut b) = (w, r);
        for id in 501..700 {
            a.insert(key(id), id);
            b.insert(key(id), id);
            assert_eq!(a.candidate(key(id - 30)), b.candidate(key(id - 30)));
        }
    }

    #[test]
    fn every_changed_byte_of_an_image_is_refused() {
        let w = crowded_window(64, 300);
        let mut image = Vec::new();
        w.write_image(5, &mut image).unwrap();
        for at in 0..image.len() {
            let mut bad = image.clone();
            bad[at] ^= 0x04;
            assert!(
                DedupWindow::read_image(64, bad.len() as u64, &mut &bad[..]).is_err(),
                "byte {at} changed"
            );
        }
        assert!(DedupWindow::read_image(65, image.len() as u64, &mut &image[..]).is_err());
        assert!(DedupWindow::read_image(0, image.len() as u64, &mut &image[..]).is_err());
        assert!(DedupWindow::read_image(0, image.len() as u64, &mut &image[..]).is_err());
        let mut empty = Vec::new();
        assert!(!DedupWindow::new(64).write_image(0, &mut empty).unwrap());
        assert!(empty.is_empty(), "an empty window writes nothing");
    }

    /// An image whose checksums hold but whose table no window could have written (the
    /// checks were folded into the read's single pass, issue 21): an entry past the
    /// newest id, an entry with no id, a displacement past a small table, more live
    /// entries than the window holds. Each is refused; the untouched image reads back.
    #[test]
    fn a_table_no_window_writes_is_refused_though_its_sums_hold() {
        let w = crowded_window(40, 300);
        let mut image = Vec::new();
        w.write_image(9, &mut image).unwrap();
        let slots = w.slots.len();
        let body = IMAGE_HEADER_LEN..image.len() - 4;
        let resum = |img: &mut Vec<u8>| {
            let crc = crate::format::crc32(&[&img[body.clone()]]);
            let at = img.len() - 4;
            img[at..].copy_from_slice(&crc.to_le_bytes());
        };
        let entry = |img: &[u8], i: usize| {
            let at = IMAGE_HEADER_LEN + i * 8;
            u64::from_le_bytes(img[at..at + 8].try_into().unwrap())
        };
        let set = |img: &mut Vec<u8>, i: usize, v: u64| {
            let at = IMAGE_HEADER_LEN + i * 8;
            img[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        let used = (0..slots).find(|&i| entry(&image, i) != 0).unwrap();
        let empty = (0..slots).find(|&i| entry(&image, i) == 0).unwrap();
        let refused = |img: &Vec<u8>| DedupWindow::read_image(40, img.len() as u64, &mut &img[..]);
        let mut same = image.clone();
        resum(&mut same);
        assert!(refused(&same).is_ok(), "re-summing alone changes nothing");
        // Past the newest id (300): the offset of id 301 from the header's base.
        let e = entry(&image, used);
        let base = u64::from_le_bytes(image[32..40].try_into().unwrap());
        for (what, v) in [
            ("past the newest", (e & !OFFSET_MASK) | (301 - base + 1)),
            ("no id", e & !OFFSET_MASK),
            ("displaced 15 buckets in a 10-bucket table", e | 0xF << 28),
        ] {
            let mut bad = image.clone();
            set(&mut bad, used, v);
            resum(&mut bad);
            assert!(refused(&bad).is_err(), "{what}");
        }
        // Every empty slot filled with a live entry: more than the window holds.
        let mut full = image.clone();
        for i in (0..slots).filter(|&i| entry(&image, i) == 0) {
            set(&mut full, i, e);
        }
        resum(&mut full);
        assert!(refused(&full).is_err(), "too many live entries");
        assert!(empty < slots, "the table had an empty slot to fill");
    }
}
