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

mod read;

pub(crate) use read::DedupImageRead;

use super::window::{
    buckets_for, displacement_of, table_len_for, DedupWindow, DISPLACEMENT_MAX, OFFSET_MASK,
};

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
    /// [`DedupWindow::write_image`] wrote, copying its table into a new window. `Err` says
    /// why the image cannot be used (damage, another capacity or layout version, entries
    /// that do not fit the header); the caller then rebuilds the window from the segments.
    /// A writable open maps the image instead ([`DedupWindow::map_image`]); this is the
    /// path for bytes that are not a file.
    pub fn read_image(
        capacity: usize,
        len: u64,
        input: &mut impl std::io::Read,
    ) -> std::result::Result<(DedupWindow, ImageHeader), String> {
        let mut w = DedupWindow::new(capacity);
        let io = |e: std::io::Error| format!("reading it failed: {e}");
        let mut h = [0u8; IMAGE_HEADER_LEN];
        check_len(capacity, len)?;
        input.read_exact(&mut h).map_err(io)?;
        let header = check_header(capacity, &h)?;
        let mut check = TableCheck::new(capacity, header);
        // One pass, a piece at a time: each piece is read straight into the table, and
        // summed and checked while it is still in the cache. Nothing of the table is
        // trusted before the whole sum matches.
        for piece in w.slots.map.chunks_mut(IMAGE_READ_PIECE_LEN) {
            input.read_exact(piece).map_err(io)?;
            check.piece(piece);
            to_native(piece);
        }
        let mut tail = vec![0u8; w.buckets() + 4];
        input.read_exact(&mut tail).map_err(io)?;
        let overflow = check.finish(tail)?;
        w.overflow = overflow;
        w.base = Some(header.base);
        w.newest = header.newest;
        Ok((w, header.fields()))
    }

    /// Reads a window of `capacity` ids from the image in `file` (`len` bytes), adopting
    /// its table where it lies: the table is mapped privately (copy-on-write) rather than
    /// copied into a new table, which spares the open zeroing and copying 16 MB (most of
    /// the time of a writable open after a clean close, issue 21); a page is copied only
    /// when an insert first writes to it. The checks are those of
    /// [`DedupWindow::read_image`], all made on the mapped bytes before the window is
    /// returned; nothing in the table is used before. A writable open shares the checks
    /// of the table's pieces between two threads (`image/read.rs`); this is the same on
    /// one (the tests' path).
    #[cfg(test)]
    pub(crate) fn map_image(
        capacity: usize,
        len: u64,
        file: std::fs::File,
    ) -> std::result::Result<(DedupWindow, ImageHeader), String> {
        let image = read::MappedImage::prepare(capacity, len, file)?;
        image.check_pieces();
        image.conclude()
    }
}

/// An image's length must be that of a window of `capacity` ids.
fn check_len(capacity: usize, len: u64) -> std::result::Result<(), String> {
    if capacity == 0 {
        return Err("deduplication is off".into());
    }
    let expected = IMAGE_HEADER_LEN + table_len_for(capacity) + buckets_for(capacity) + 4;
    if len != expected as u64 {
        return Err(format!(
            "it is {len} bytes, not the {expected} of a {capacity}-event window"
        ));
    }
    Ok(())
}

/// What an image's header says, once checked.
#[derive(Clone, Copy)]
struct CheckedHeader {
    base: u64,
    newest: u64,
    newest_hash: u64,
}

impl CheckedHeader {
    fn fields(self) -> ImageHeader {
        ImageHeader {
            newest: self.newest,
            newest_hash: self.newest_hash,
        }
    }
}

/// Checks an image's header `h` for a window of `capacity` ids: magic, checksum, layout
/// version, the window's shape, and ids the table's offsets can hold.
fn check_header(
    capacity: usize,
    h: &[u8; IMAGE_HEADER_LEN],
) -> std::result::Result<CheckedHeader, String> {
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
    if word(16) != capacity as u64 || word(24) != buckets_for(capacity) as u64 {
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
    Ok(CheckedHeader {
        base,
        newest,
        newest_hash: word(48),
    })
}

/// The checks of an image's table, made a piece at a time in one pass with its sum.
///
/// What the table relies on, which a checksum alone does not prove: no entry past the
/// newest id (an append would wait for an event that does not exist yet) or before the
/// base (no window writes one), no displacement beyond the table, no more live entries
/// than the window holds (an insert finds a free slot), and a bucket nothing overflows (a
/// walk along a chain ends; walks are bounded as well, for counts that drift from a
/// crafted start). In offsets (id - base + 1): a used entry's lies in 1..=`offset_max`,
/// and it is live above `live_above`. Displacements are checked only in a table of fewer
/// than 16 buckets: their 4 bits cannot name a bucket past a larger one.
struct TableCheck {
    capacity: u64,
    buckets: usize,
    offset_max: u64,
    live_above: u64,
    check_displacement: bool,
    body: crc32fast::Hasher,
    live: u64,
    out_of_range: bool,
    too_far: bool,
    base: u64,
    newest: u64,
}

impl TableCheck {
    fn new(capacity: usize, h: CheckedHeader) -> TableCheck {
        let buckets = buckets_for(capacity);
        TableCheck {
            capacity: capacity as u64,
            buckets,
            offset_max: h.newest - h.base + 1,
            live_above: (h.newest + 1).saturating_sub(h.base + capacity as u64),
            check_displacement: buckets <= DISPLACEMENT_MAX,
            body: crc32fast::Hasher::new(),
            live: 0,
            out_of_range: false,
            too_far: false,
            base: h.base,
            newest: h.newest,
        }
    }

    /// Sums and checks the next piece of the table (little-endian entries).
    fn piece(&mut self, piece: &[u8]) {
        self.body.update(piece);
        if self.check_displacement {
            self.piece_small(piece);
            return;
        }
        // In 32-bit lanes (an entry's low half is its offset and displacement, its high
        // half its tag), which the compiler turns into four entries per vector instruction
        // on any x86-64: 64-bit compares it cannot (~3 ms of a 16 MB table, issue 21).
        // The header's checks keep both bounds below 2^28.
        let offset_max = u32::try_from(self.offset_max).unwrap_or(u32::MAX);
        let live_above = u32::try_from(self.live_above).unwrap_or(u32::MAX);
        let mask = OFFSET_MASK as u32;
        let mut out_of_range = 0u32;
        // Counted in u32 per part of at most 8,192 entries.
        for part in piece.chunks(64 << 10) {
            let mut live = 0u32;
            for entry in part.chunks_exact(8) {
                let low = u32::from_le_bytes(entry[0..4].try_into().expect("4 bytes"));
                let high = u32::from_le_bytes(entry[4..8].try_into().expect("4 bytes"));
                let offset = low & mask;
                // A used entry (any bit set) must hold an offset in 1..=offset_max; one
                // whose offset lies above `live_above` (so not 0: used) is live.
                out_of_range |=
                    u32::from(offset.wrapping_sub(1) >= offset_max) & u32::from(low | high != 0);
                live += u32::from(offset > live_above);
            }
            self.live += u64::from(live);
        }
        self.out_of_range |= out_of_range != 0;
    }

    /// [`TableCheck::piece`]'s checks for a table of so few buckets that displacements
    /// can name one past its end.
    fn piece_small(&mut self, piece: &[u8]) {
        let (offset_max, live_above) = (self.offset_max, self.live_above);
        let (mut live, mut out_of_range, mut too_far) = (0u64, false, false);
        for entry in piece.chunks_exact(8) {
            let e = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
            let offset = e & OFFSET_MASK;
            // Branch-free: `used` leaves empty slots (0) out of the check and count.
            let used = e != 0;
            out_of_range |= used & (offset.wrapping_sub(1) >= offset_max);
            live += u64::from(used) & u64::from(offset > live_above);
            too_far |= used & (displacement_of(e) >= self.buckets);
        }
        self.live += live;
        self.out_of_range |= out_of_range;
        self.too_far |= too_far;
    }

    /// Adds the sums and findings of `later`, the check of the pieces right after this
    /// check's.
    fn merge(&mut self, later: &TableCheck) {
        self.body.combine(&later.body);
        self.live += later.live;
        self.out_of_range |= later.out_of_range;
        self.too_far |= later.too_far;
    }

    /// The verdict, given the bytes after the table (`tail`: the overflow counts and the
    /// checksum): the overflow counts when every check holds.
    fn finish(mut self, mut tail: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        let at = tail.len() - 4;
        let crc = u32::from_le_bytes(tail[at..].try_into().expect("4 bytes"));
        tail.truncate(at);
        self.body.update(&tail);
        if crc != self.body.finalize() {
            return Err("its entries fail their checksum".into());
        }
        if self.out_of_range {
            return Err(format!(
                "an entry holds an id outside {}..={}, the ids it covers",
                self.base, self.newest
            ));
        }
        if self.too_far {
            return Err("an entry lives further from its home than there are buckets".into());
        }
        if self.live > self.capacity || !tail.contains(&0) {
            return Err("its table is not one a window can hold".into());
        }
        Ok(tail)
    }
}

/// Turns checked little-endian entries into the table's native order (nothing to do on a
/// little-endian machine).
fn to_native(piece: &mut [u8]) {
    if cfg!(target_endian = "big") {
        for entry in piece.chunks_exact_mut(8) {
            let e = u64::from_le_bytes((&*entry).try_into().expect("8 bytes"));
            entry.copy_from_slice(&e.to_ne_bytes());
        }
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

    /// The image as a file, and the window mapped from it.
    fn mapped(
        image: &[u8],
        capacity: usize,
    ) -> (
        tempfile::NamedTempFile,
        std::result::Result<(DedupWindow, ImageHeader), String>,
    ) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(image).unwrap();
        file.flush().unwrap();
        let read = DedupWindow::map_image(
            capacity,
            image.len() as u64,
            file.as_file().try_clone().unwrap(),
        );
        (file, read)
    }

    /// The open's path: the table adopted from a private map of the file answers as the
    /// window that wrote it, goes on as it does, and its inserts never reach the file (the
    /// next open after a crash reads the image as the close left it).
    #[test]
    fn a_mapped_image_is_the_same_window_and_its_writes_stay_private() {
        let w = crowded_window(64, 500);
        let mut image = Vec::new();
        w.write_image(77, &mut image).unwrap();
        let (file, read) = mapped(&image, 64);
        let (mut r, header) = read.unwrap();
        assert_eq!((header.newest, header.newest_hash), (500, 77));
        for k in 0..200 {
            for low in 0..4 {
                let k = key(k) & !0xFFFF_FFF0 | low;
                assert_eq!(r.candidate(k), w.candidate(k), "key {k:x}");
            }
        }
        let mut a = w;
        for id in 501..900 {
            a.insert(key(id), id);
            r.insert(key(id), id);
            assert_eq!(a.candidate(key(id - 30)), r.candidate(key(id - 30)));
        }
        assert_eq!(
            std::fs::read(file.path()).unwrap(),
            image,
            "the file is unchanged"
        );
        let mut again = Vec::new();
        r.write_image(78, &mut again).unwrap();
        let mut expected = Vec::new();
        a.write_image(78, &mut expected).unwrap();
        assert_eq!(again, expected, "its image is the original's");
    }

    /// An adopted table copied into one of its own before many inserts (a killed writer's
    /// events after the image) answers and goes on as before, and the file stays as it was.
    #[test]
    fn an_adopted_table_moved_to_its_own_answers_the_same() {
        let w = crowded_window(64, 500);
        let mut image = Vec::new();
        w.write_image(7, &mut image).unwrap();
        let (file, read) = mapped(&image, 64);
        let (mut r, _) = read.unwrap();
        r.own_table_before(1);
        assert!(r.slots.adopted, "a few inserts keep the adopted table");
        r.own_table_before(super::super::window::tests::ADOPTED_INSERTS_MAX_FOR_TESTS + 1);
        assert!(!r.slots.adopted, "many inserts get a table of its own");
        let mut a = w;
        for id in 501..900 {
            assert_eq!(a.candidate(key(id - 300)), r.candidate(key(id - 300)));
            a.insert(key(id), id);
            r.insert(key(id), id);
        }
        assert_eq!(std::fs::read(file.path()).unwrap(), image);
    }

    /// Every byte of a mapped image is checked as a read one is: a changed byte, a short
    /// or long file, another window size are each refused.
    #[test]
    fn every_changed_byte_of_a_mapped_image_is_refused() {
        let w = crowded_window(64, 300);
        let mut image = Vec::new();
        w.write_image(5, &mut image).unwrap();
        assert!(mapped(&image, 64).1.is_ok());
        for at in 0..image.len() {
            let mut bad = image.clone();
            bad[at] ^= 0x10;
            assert!(mapped(&bad, 64).1.is_err(), "byte {at} changed");
        }
        assert!(mapped(&image[..image.len() - 1], 64).1.is_err(), "short");
        let mut long = image.clone();
        long.push(0);
        assert!(mapped(&long, 64).1.is_err(), "long");
        assert!(mapped(&image, 65).1.is_err(), "another window");
        assert!(mapped(&image, 0).1.is_err(), "deduplication off");
    }

    /// An image whose checksums hold but whose table no window could have written (the
    /// checks were folded into the read's single pass, issue 21): an entry past the
    /// newest id, an entry with no id, a displacement past a small table, more live
    /// entries than the window holds. Each is refused; the untouched image reads back.
    #[test]
    fn a_table_no_window_writes_is_refused_though_its_sums_hold() {
        // 10 buckets: displacements checked, 64-bit entries; 100 buckets: the check in
        // 32-bit lanes.
        refused_though_sums_hold(40);
        refused_though_sums_hold(400);
    }

    fn refused_though_sums_hold(capacity: usize) {
        let w = crowded_window(capacity, 300 + capacity as u64);
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
        let refused = |img: &Vec<u8>| {
            let read = DedupWindow::read_image(capacity, img.len() as u64, &mut &img[..]);
            assert_eq!(
                read.is_ok(),
                mapped(img, capacity).1.is_ok(),
                "both paths agree"
            );
            read
        };
        let mut same = image.clone();
        resum(&mut same);
        assert!(refused(&same).is_ok(), "re-summing alone changes nothing");
        // Past the newest id: the offset of the id after it from the header's base.
        let e = entry(&image, used);
        let base = u64::from_le_bytes(image[32..40].try_into().unwrap());
        let newest = u64::from_le_bytes(image[40..48].try_into().unwrap());
        let mut bad_entries = vec![
            (
                "past the newest",
                (e & !OFFSET_MASK) | (newest + 1 - base + 1),
            ),
            ("far past the newest", e | OFFSET_MASK),
            ("no id", e & !OFFSET_MASK),
            ("no id, a displacement only", 0x3 << 28),
            ("no id, a tag only", 1 << 32),
        ];
        if w.buckets() < 16 {
            bad_entries.push(("displaced 15 buckets in a 10-bucket table", e | 0xF << 28));
        }
        for (what, v) in bad_entries {
            // In the first and the last slot too: every lane of the check is reached.
            for at in [used, empty, 0, slots - 1] {
                let mut bad = image.clone();
                set(&mut bad, at, v);
                resum(&mut bad);
                assert!(refused(&bad).is_err(), "{what} in slot {at}");
            }
        }
        // The base id itself (offset 1, out of the window by now: not live), in an empty
        // slot, is an entry a window could hold.
        let mut fine = image.clone();
        set(&mut fine, empty, (e & !OFFSET_MASK) | 1);
        resum(&mut fine);
        assert!(refused(&fine).is_ok(), "the base id is in range");
        // Every empty slot filled with a live entry (the newest id): more than the
        // window holds.
        let live = (e & !OFFSET_MASK) | (newest - base + 1);
        let mut full = image.clone();
        for i in (0..slots).filter(|&i| entry(&image, i) == 0) {
            set(&mut full, i, live);
        }
        resum(&mut full);
        assert!(refused(&full).is_err(), "too many live entries");
        assert!(empty < slots, "the table had an empty slot to fill");
    }
}
