//! Finding the non-zero bytes past a segment's committed end: what a killed writer may
//! have left there (a torn tail), which recovery zeroes before new frames go there and
//! `verify` reports.
//!
//! The unwritten part of a preallocated segment (up to 64 MiB) is not read: the file
//! system is asked where data may be (`lseek` with `SEEK_DATA` and `SEEK_HOLE`). A hole, or
//! on ext4 and XFS an allocated but unwritten extent with no page-cache page over it, reads
//! as zeros by definition of `SEEK_HOLE`, so it cannot hold a torn frame; everything the
//! file system calls data (written extents, and pages of unwritten extents a writer wrote
//! into the page cache, dirty or not) is read and tested byte by byte. A file system
//! without the two seeks reports the whole file as data, and where the seek fails the
//! rest is read in full: both cost time, never a missed byte.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// Bytes read at a time.
const READ_LEN: usize = 1 << 20;

/// The offset of the last non-zero byte of `file` in `from..end`, or `None` when every
/// byte there reads as zero. Reads only the ranges the file system reports as data.
///
/// # Errors
/// An I/O error reading the file.
pub(crate) fn last_nonzero(file: &File, from: u64, end: u64) -> std::io::Result<Option<u64>> {
    let mut buf = Vec::new();
    let mut last = None;
    let mut at = from;
    while at < end {
        let (data, hole) = match data_range(file, at) {
            Ok(Some(range)) => range,
            Ok(None) => break,
            // Not answered: read everything from here on.
            Err(_) => (at, end),
        };
        let (data, hole) = (data.max(at), hole.min(end));
        if data >= end {
            break;
        }
        if let Some(p) = last_nonzero_in(file, data, hole, &mut buf)? {
            last = Some(p);
        }
        at = hole.max(data + 1);
    }
    Ok(last)
}

/// The data range of `file` that starts at or after `at`: its start and the start of the
/// hole after it (the file's end at most). `None` when only holes follow `at`.
fn data_range(file: &File, at: u64) -> Result<Option<(u64, u64)>, Errno> {
    let data = match rustix::fs::seek(file, SeekFrom::Data(at)) {
        Ok(d) => d,
        Err(Errno::NXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    let hole = rustix::fs::seek(file, SeekFrom::Hole(data))?;
    Ok(Some((data, hole.max(data))))
}

/// The last non-zero byte in `from..to` of `file`, read with plain reads into `buf`.
fn last_nonzero_in(
    file: &File,
    from: u64,
    to: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<u64>> {
    buf.resize(READ_LEN, 0);
    let mut last = None;
    let mut at = from;
    while at < to {
        let want = usize::try_from((to - at).min(READ_LEN as u64)).unwrap_or(READ_LEN);
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(p) = last_nonzero_byte(&buf[..n]) {
            last = Some(at + p as u64);
        }
        at += n as u64;
    }
    Ok(last)
}

/// The position of the last non-zero byte of `buf`. Tests whole 64-byte chunks first.
pub(crate) fn last_nonzero_byte(buf: &[u8]) -> Option<usize> {
    const CHUNK: usize = 64;
    let is_zero = |c: &[u8]| c.iter().fold(0u8, |acc, &b| acc | b) == 0;
    let split = buf.len() - buf.len() % CHUNK;
    if let Some(p) = buf[split..].iter().rposition(|&b| b != 0) {
        return Some(split + p);
    }
    let chunk = buf[..split]
        .chunks_exact(CHUNK)
        .rposition(|c| !is_zero(c))?;
    let at = chunk * CHUNK;
    buf[at..at + CHUNK]
        .iter()
        .rposition(|&b| b != 0)
        .map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt as _;

    use super::{last_nonzero, last_nonzero_byte};

    #[test]
    fn last_nonzero_byte_is_found_anywhere() {
        for len in [0usize, 1, 63, 64, 65, 200, 4096] {
            assert_eq!(last_nonzero_byte(&vec![0; len]), None, "len {len}");
            for at in 0..len {
                let mut buf = vec![0u8; len];
                buf[at] = 0x10;
                if at > 0 {
                    buf[0] = 1;
                }
                assert_eq!(last_nonzero_byte(&buf), Some(at), "len {len}, at {at}");
            }
        }
    }

    /// In a preallocated file, bytes written anywhere past `from` (in the page cache only,
    /// or written back), into unwritten extents or over zeros written earlier, are found;
    /// those before `from` are not looked at.
    #[test]
    fn nonzero_bytes_are_found_in_a_preallocated_file() {
        const LEN: u64 = 8 << 20;
        let tmp = tempfile::tempdir().unwrap();
        for (i, (writes, synced)) in [
            (vec![], false),
            (vec![100u64], false),
            (vec![4096 * 3 + 7], true),
            (vec![1 << 20, (5 << 20) + 4095], false),
            (vec![LEN - 1], false),
            (vec![LEN - 1], true),
            (vec![200, 3 << 20], true),
        ]
        .into_iter()
        .enumerate()
        {
            let path = tmp.path().join(format!("f{i}"));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, LEN).unwrap();
            // Zeros written over a part: data to the file system, zeros to the reader.
            file.write_all_at(&[0u8; 8192], 1 << 16).unwrap();
            file.write_all_at(&[9u8; 10], 0).unwrap();
            for &w in &writes {
                file.write_all_at(&[0x5a], w).unwrap();
            }
            if synced {
                file.sync_all().unwrap();
            }
            let want = writes.iter().copied().filter(|&w| w >= 50).max();
            assert_eq!(last_nonzero(&file, 50, LEN).unwrap(), want, "case {i}");
            let before = writes.iter().copied().filter(|&w| w >= 50).min();
            if let Some(b) = before {
                assert_eq!(last_nonzero(&file, 50, b).unwrap(), None, "case {i} before");
            }
        }
    }
}
