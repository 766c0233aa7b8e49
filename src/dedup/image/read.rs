//! A writable open's read of the dedup window's image: mapped by the opening thread, its
//! table's pieces summed and checked by a helper thread while the open recovers the
//! segments, and by the opening thread too once it has nothing else to do, each piece by
//! whichever thread takes it first (issue 21: the check of 16 MB is the longest part of
//! the open, and the opener used to wait for it idle). The pieces' sums are combined in
//! order and every check of `image.rs` is made before anything in the table is used.

use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::{
    check_header, check_len, to_native, CheckedHeader, ImageHeader, TableCheck, IMAGE_HEADER_LEN,
    IMAGE_READ_PIECE_LEN,
};
use crate::dedup::window::{buckets_for, table_len_for, DedupWindow, Slots};
use crate::event::EventId;
use crate::scan::get_in;
use crate::stream::Stream;

/// What reading an image gave before it is checked against the store: `Ok(None)` when
/// there is none, `Err` saying why it cannot be used.
type ImageRead = std::result::Result<Option<(DedupWindow, ImageHeader)>, String>;

/// An image whose header was checked and whose table is mapped privately, its pieces
/// checked by whichever thread calls [`MappedImage::check_pieces`] and takes each first.
pub(super) struct MappedImage {
    file: std::fs::File,
    capacity: usize,
    header: CheckedHeader,
    map: memmap2::MmapMut,
    /// The next piece to take.
    next: AtomicUsize,
    /// Each piece's sums and findings, once checked.
    pieces: Vec<OnceLock<TableCheck>>,
}

impl MappedImage {
    /// Checks an image's length (`len`) and header for a window of `capacity` ids and maps
    /// its table privately; nothing of the table is read yet.
    pub(super) fn prepare(
        capacity: usize,
        len: u64,
        file: std::fs::File,
    ) -> std::result::Result<MappedImage, String> {
        let io = |e: std::io::Error| format!("reading it failed: {e}");
        check_len(capacity, len)?;
        let mut h = [0u8; IMAGE_HEADER_LEN];
        file.read_exact_at(&mut h, 0).map_err(io)?;
        let header = check_header(capacity, &h)?;
        let table_len = table_len_for(capacity);
        // No `MADV_POPULATE_READ`: entering the 4,096 pages one by one cost more (~1.4 ms
        // of the open's profile, issue 21) than the faults of the reads, each of which maps
        // the 16 pages around it.
        let map = crate::segment::map::map_private(&file, IMAGE_HEADER_LEN as u64, table_len)
            .map_err(|e| format!("mapping it failed: {e}"))?;
        let pieces = (0..table_len.div_ceil(IMAGE_READ_PIECE_LEN))
            .map(|_| OnceLock::new())
            .collect();
        Ok(MappedImage {
            file,
            capacity,
            header,
            map,
            next: AtomicUsize::new(0),
            pieces,
        })
    }

    /// Sums and checks the pieces no thread has taken yet, one at a time, until none is
    /// left (others may still be checking theirs).
    pub(super) fn check_pieces(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.pieces.get(i) else {
                return;
            };
            let start = i * IMAGE_READ_PIECE_LEN;
            let end = (start + IMAGE_READ_PIECE_LEN).min(self.map.len());
            let mut check = TableCheck::new(self.capacity, self.header);
            check.piece(&self.map[start..end]);
            let _ = slot.set(check);
        }
    }

    /// The window, once every piece is checked (a piece a thread took and never finished,
    /// one that panicked, is checked here): the pieces' sums combined in order, the bytes
    /// after the table read, and every check's verdict.
    pub(super) fn conclude(self) -> std::result::Result<(DedupWindow, ImageHeader), String> {
        let io = |e: std::io::Error| format!("reading it failed: {e}");
        let mut check = TableCheck::new(self.capacity, self.header);
        for (i, slot) in self.pieces.iter().enumerate() {
            if let Some(piece) = slot.get() {
                check.merge(piece);
            } else {
                let start = i * IMAGE_READ_PIECE_LEN;
                let end = (start + IMAGE_READ_PIECE_LEN).min(self.map.len());
                let mut piece = TableCheck::new(self.capacity, self.header);
                piece.piece(&self.map[start..end]);
                check.merge(&piece);
            }
        }
        let mut tail = vec![0u8; buckets_for(self.capacity) + 4];
        let at = (IMAGE_HEADER_LEN + self.map.len()) as u64;
        self.file.read_exact_at(&mut tail, at).map_err(io)?;
        let overflow = check.finish(tail)?;
        let mut map = self.map;
        if cfg!(target_endian = "big") {
            // Copies every page: correct, only not the fast path.
            to_native(&mut map);
        }
        let w = DedupWindow::from_parts(
            self.capacity,
            Slots::adopt(map),
            overflow,
            self.header.base,
            self.header.newest,
        );
        Ok((w, self.header.fields()))
    }
}

/// A writable open's read of the dedup image: started before the segments are recovered
/// (the header checked and the table mapped on the opening thread, the pieces checked on
/// a helper thread meanwhile) and finished after ([`DedupImageRead::finish`]), where the
/// opening thread checks what pieces are left beside the helper and then checks the image
/// against the store. Nothing in the table is used before.
pub(crate) struct DedupImageRead {
    started: Started,
}

enum Started {
    /// No image (or deduplication off).
    Nothing,
    /// An image that cannot be used, and why.
    Refused(String),
    /// An image being checked, and the helper thread checking it (none when one could not
    /// be started: the opening thread checks every piece).
    Checking(Arc<MappedImage>, Option<std::thread::JoinHandle<()>>),
}

impl DedupImageRead {
    /// Starts reading the image at `path` for a window of `capacity` ids (nothing is read
    /// for a disabled window, and no thread started when there is no image: a sidecar's
    /// window is too small to have one). Reading it before the segments are recovered is
    /// safe: an image is only ever replaced whole (renamed over), and whichever one is read
    /// is then checked against the recovered store, and brought up to date with the events
    /// after it.
    pub(crate) fn start(path: &Path, capacity: usize) -> DedupImageRead {
        let started = match open(path, capacity) {
            Ok(None) => Started::Nothing,
            Err(why) => Started::Refused(why),
            Ok(Some(image)) => {
                let image = Arc::new(image);
                let helper = Arc::clone(&image);
                let thread = std::thread::Builder::new()
                    .name("selflog-dedup-image".into())
                    .spawn(move || helper.check_pieces())
                    .ok();
                Started::Checking(image, thread)
            }
        };
        DedupImageRead { started }
    }

    /// The window in the image, checked against the store (`last_id` is its last event):
    /// `Ok(None)` when there is none, `Err` saying why one cannot be used.
    pub(crate) fn finish(
        self,
        stream: &Stream,
        last_id: u64,
    ) -> std::result::Result<Option<DedupWindow>, String> {
        let read: ImageRead = match self.started {
            Started::Nothing => Ok(None),
            Started::Refused(why) => Err(why),
            Started::Checking(image, thread) => {
                image.check_pieces();
                let joined = thread.map_or(Ok(()), std::thread::JoinHandle::join);
                match (joined, Arc::try_unwrap(image)) {
                    (Ok(()), Ok(image)) => image.conclude().map(Some),
                    _ => Err("reading it panicked".into()),
                }
            }
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

/// The image at `path` opened, its header checked and its table mapped for a window of
/// `capacity` ids: `Ok(None)` when there is none or deduplication is off.
fn open(
    path: &std::path::Path,
    capacity: usize,
) -> std::result::Result<Option<MappedImage>, String> {
    if capacity == 0 {
        return Ok(None);
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    MappedImage::prepare(capacity, len, file).map(Some)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::dedup::window::tests::key;

    /// The image of a window of `capacity` ids, as a file.
    fn image_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file.flush().unwrap();
        file
    }

    /// Checked by two threads taking pieces, by one, or by none before the conclusion
    /// (every piece then checked there): the same verdict, for an intact image and for one
    /// changed in its first, a middle or its last piece, or after the table.
    #[test]
    fn pieces_checked_by_any_thread_give_one_verdict() {
        let capacity = 60_000;
        let mut w = DedupWindow::new(capacity);
        for id in 1..=100_000u64 {
            w.insert(key(id), id);
        }
        let mut image = Vec::new();
        assert!(w.write_image(3, &mut image).unwrap());
        let table = table_len_for(capacity);
        assert!(table > 3 * IMAGE_READ_PIECE_LEN, "several pieces");
        let verdict = |bytes: &[u8], threads: usize| {
            let file = image_file(bytes);
            let f = file.as_file().try_clone().unwrap();
            let image = Arc::new(MappedImage::prepare(capacity, bytes.len() as u64, f)?);
            std::thread::scope(|s| {
                let helpers: Vec<_> = (1..threads)
                    .map(|_| s.spawn(|| image.check_pieces()))
                    .collect();
                if threads > 0 {
                    image.check_pieces();
                }
                for h in helpers {
                    h.join().unwrap();
                }
            });
            Arc::try_unwrap(image).ok().unwrap().conclude()
        };
        for threads in [0, 1, 2] {
            let (r, header) = verdict(&image, threads).unwrap();
            assert_eq!(header.newest, 100_000);
            for id in 40_001..=100_000 {
                assert_eq!(r.candidate(key(id)), w.candidate(key(id)), "id {id}");
            }
            for at in [
                IMAGE_HEADER_LEN + 5,
                IMAGE_HEADER_LEN + 2 * IMAGE_READ_PIECE_LEN + 11,
                IMAGE_HEADER_LEN + table - 3,
                image.len() - 2,
            ] {
                let mut bad = image.clone();
                bad[at] ^= 0x20;
                assert!(
                    verdict(&bad, threads).is_err(),
                    "byte {at}, {threads} threads"
                );
            }
        }
    }
}
