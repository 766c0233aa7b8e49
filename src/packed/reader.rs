//! Reading a compacted segment: its layout, block table and dictionary, each checked once,
//! when the segment is opened or (for a stream's views) when first used, and its blocks decompressed and expanded into version-1 frames on
//! demand, through a cache shared by every reader of the stream.
//!
//! Every block is checked before any of its bytes is used: the stored bytes against their
//! CRC, the decompressed length against the table (zstd writes into a buffer of exactly
//! that size, so a hostile frame cannot make a reader allocate more), and the expanded
//! frames against their length and CRC.

use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::Arc;

use hashlink::LinkedHashMap;
use parking_lot::Mutex;
use rustc_hash::FxHasher;

use crate::error::{Error, Result};
use crate::format::{
    self, expand_block, ExpandContext, FilterEntry, Layout, SegmentHeader, TableEntry, LAYOUT_LEN,
    LAYOUT_OFFSET,
};

/// Bytes of expanded blocks the cache of one stream keeps at most.
pub(crate) const BLOCK_CACHE_BYTES: usize = 8 << 20;

/// The bytes of a whole compacted segment file: a map of it, or (salvage) a copy.
pub(crate) type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// An expanded block: its version-1 frames.
pub(crate) type Expanded = Arc<[u8]>;

/// One compacted segment, ready to expand its blocks.
pub(crate) struct Packed {
    map: Bytes,
    header: SegmentHeader,
    layout: Layout,
    /// The block and filter tables, checked and decoded on first use (or at
    /// [`Packed::open`]); the offset and description of their damage when they fail.
    tables: std::sync::OnceLock<std::result::Result<Tables, (u64, String)>>,
    /// The zstd dictionary (checked against its CRC first), made ready for decompression
    /// on the first block expanded: most opens (a count, the newest rows) expand no block
    /// of most compacted segments, and preparing one costs more than the open otherwise.
    dict: std::sync::OnceLock<
        std::result::Result<Option<zstd::dict::DecoderDictionary<'static>>, String>,
    >,
    strings: Arc<Vec<Arc<str>>>,
    path: Arc<Path>,
    cache: Arc<BlockCache>,
}

/// A compacted segment's block table and filter table, checked and decoded.
struct Tables {
    table: Vec<TableEntry>,
    filters: Vec<FilterEntry>,
}

/// Checks and decodes the block and filter tables of the compacted segment `whole` laid out
/// as `layout`; the file offset and description of the first damage found.
fn decode_tables(whole: &[u8], layout: &Layout) -> std::result::Result<Tables, (u64, String)> {
    let table_bytes = slice(
        whole,
        layout.table_offset,
        u64::from(layout.block_count) * format::TABLE_ENTRY_LEN as u64,
    )
    .ok_or_else(|| {
        (
            layout.table_offset,
            "block table outside the file".to_owned(),
        )
    })?;
    let table = TableEntry::decode_table(table_bytes, layout)
        .map_err(|e| (layout.table_offset + e.offset as u64, e.what))?;
    let filters = if layout.filter_count == 0 {
        Vec::new()
    } else {
        let bytes = slice(
            whole,
            layout.filter_table_offset,
            u64::from(layout.filter_count) * format::FILTER_ENTRY_LEN as u64,
        )
        .ok_or_else(|| {
            (
                layout.filter_table_offset,
                "filter table outside".to_owned(),
            )
        })?;
        FilterEntry::decode_table(bytes, layout)
            .map_err(|e| (layout.filter_table_offset + e.offset as u64, e.what))?
    };
    Ok(Tables { table, filters })
}

/// The content hash the spec defines, as [`expand_block`] takes it.
pub(crate) fn hash_fields(
    ts: i64,
    ty: &str,
    action: Option<&str>,
    source: &str,
    data: Option<&str>,
) -> u64 {
    crate::event::content_hash(crate::event::Timestamp(ts), ty, action, source, data)
}

impl Packed {
    /// Reads the layout, block table and dictionary of the compacted segment mapped whole
    /// in `map`, whose footer gave the dictionary `strings`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the part that does not check out.
    pub fn open(
        map: Bytes,
        header: SegmentHeader,
        strings: Arc<Vec<Arc<str>>>,
        path: Arc<Path>,
        cache: Arc<BlockCache>,
    ) -> Result<Packed> {
        let packed = Packed::open_deferred(map, header, strings, path, cache)?;
        packed.tables()?;
        packed.dictionary_bytes()?;
        Ok(packed)
    }

    /// [`Packed::open`] checking only the layout record: the block and filter tables are
    /// checked and decoded when first used, and the dictionary when the first block is
    /// expanded. A stream's view opens its compacted segments this way, since most commands
    /// expand no block of most of them (a count, the newest rows): at 10M events the tables
    /// were most of a read-only open. [`Packed::checked`] gives the tables' damage, which
    /// [`Packed::table`] and [`Packed::filters`] hide as empty tables (no block found, so no
    /// byte of the segment is read through them).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the layout record does not check out.
    pub fn open_deferred(
        map: Bytes,
        header: SegmentHeader,
        strings: Arc<Vec<Arc<str>>>,
        path: Arc<Path>,
        cache: Arc<BlockCache>,
    ) -> Result<Packed> {
        let corrupt = |at: u64, what: String| Error::corrupt(&path, at, what);
        let whole: &[u8] = (*map).as_ref();
        let record = whole
            .get(LAYOUT_OFFSET..LAYOUT_OFFSET + LAYOUT_LEN)
            .ok_or_else(|| corrupt(0, "compacted segment shorter than its header".into()))?;
        let layout = Layout::decode(record, whole.len() as u64)
            .map_err(|e| corrupt((LAYOUT_OFFSET + e.offset) as u64, e.what))?;
        Ok(Packed {
            map,
            header,
            layout,
            tables: std::sync::OnceLock::new(),
            dict: if layout.dict_len == 0 {
                std::sync::OnceLock::from(Ok(None))
            } else {
                std::sync::OnceLock::new()
            },
            strings,
            path,
            cache,
        })
    }

    /// The block and filter tables, checked and decoded on first use.
    fn tables(&self) -> Result<&Tables> {
        self.tables
            .get_or_init(|| decode_tables((*self.map).as_ref(), &self.layout))
            .as_ref()
            .map_err(|(at, what)| Error::corrupt(&self.path, *at, what.clone()))
    }

    /// Whether the block and filter tables check out; the damage when they do not.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the table and offset.
    pub fn checked(&self) -> Result<()> {
        self.tables().map(|_| ())
    }

    /// The dictionary's bytes, checked against their CRC; empty when there is none.
    fn dictionary_bytes(&self) -> Result<&[u8]> {
        let l = &self.layout;
        if l.dict_len == 0 {
            return Ok(&[]);
        }
        let corrupt = |what: &str| Error::corrupt(&self.path, l.dict_offset, what);
        let bytes = slice((*self.map).as_ref(), l.dict_offset, u64::from(l.dict_len))
            .ok_or_else(|| corrupt("dictionary outside the file"))?;
        if format::crc32(&[bytes]) != l.dict_crc {
            return Err(corrupt("dictionary checksum mismatch"));
        }
        Ok(bytes)
    }

    /// Blocks in the segment, as its layout record says.
    pub fn block_count(&self) -> usize {
        self.layout.block_count as usize
    }

    /// End of the logical frames.
    pub fn logical_len(&self) -> u64 {
        self.layout.logical_len
    }

    /// The block table; empty when it does not check out ([`Packed::checked`] says why).
    pub fn table(&self) -> &[TableEntry] {
        self.tables().map_or(&[], |t| &t.table)
    }

    /// The filter table; empty when the tables do not check out.
    pub fn filters(&self) -> &[FilterEntry] {
        self.tables().map_or(&[], |t| &t.filters)
    }

    /// The encoded filter of entry `f`, checked against its CRC; `None` when it fails it.
    pub fn filter_bytes(&self, f: &FilterEntry) -> Option<&[u8]> {
        slice((*self.map).as_ref(), f.offset, u64::from(f.len))
            .filter(|b| format::crc32(&[b]) == f.crc)
    }

    /// The block holding logical offset `at`.
    pub fn block_at(&self, at: u64) -> Option<usize> {
        let table = self.table();
        let i = table.partition_point(|e| e.logical_start <= at);
        let k = i.checked_sub(1)?;
        let e = &table[k];
        (at < e.logical_start + u64::from(e.logical_len)).then_some(k)
    }

    /// Block `k` expanded, from the cache or decompressed now.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the block does not check out.
    pub fn expand(&self, k: usize) -> Result<Expanded> {
        let key = (self.header.segment_id, k as u32, self.layout.table_crc);
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let bytes: Expanded = Arc::from(self.expand_uncached(k)?);
        self.cache.insert(key, Arc::clone(&bytes));
        Ok(bytes)
    }

    /// Block `k` decompressed and expanded, bypassing the cache (verify, compaction's own
    /// check, salvage).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the block does not check out.
    pub fn expand_uncached(&self, k: usize) -> Result<Vec<u8>> {
        let e = self
            .tables()?
            .table
            .get(k)
            .ok_or_else(|| Error::corrupt(&self.path, 0, format!("no block {k}")))?;
        let corrupt = |what: String| Error::corrupt(&self.path, e.stored_offset, what);
        let stored = slice(
            (*self.map).as_ref(),
            e.stored_offset,
            u64::from(e.stored_len),
        )
        .ok_or_else(|| corrupt(format!("block {k} outside the file")))?;
        if format::crc32(&[stored]) != e.stored_crc {
            return Err(corrupt(format!("block {k}: checksum mismatch")));
        }
        let dict = self
            .dict
            .get_or_init(|| {
                let bytes = self.dictionary_bytes().map_err(|e| match e {
                    Error::Corrupt { what, .. } => what,
                    e => e.to_string(),
                })?;
                zstd::dict::DecoderDictionary::try_copy(bytes)
                    .map(Some)
                    .map_err(|e| format!("dictionary does not load: {e}"))
            })
            .as_ref()
            .map_err(|what| Error::corrupt(&self.path, self.layout.dict_offset, what.clone()))?;
        let packed = decompress(stored, e.packed_len as usize, dict.as_ref())
            .map_err(|what| corrupt(format!("block {k}: {what}")))?;
        let cx = ExpandContext {
            base_id: self.header.base_id,
            base_timestamp_us: self.header.base_timestamp_us,
            strings: &self.strings,
            strings_before: e.strings_before,
            hash: hash_fields,
        };
        let mut out = Vec::with_capacity(e.logical_len as usize);
        expand_block(&packed, &cx, &mut out).map_err(|d| {
            corrupt(format!(
                "block {k}: packed row at {} does not expand: {}",
                d.offset, d.what
            ))
        })?;
        if out.len() != e.logical_len as usize || format::crc32(&[&out]) != e.logical_crc {
            return Err(corrupt(format!(
                "block {k}: expands to frames other than the table says"
            )));
        }
        Ok(out)
    }
}

/// `len` bytes of `map` at `offset`, if within it.
fn slice(map: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let a = usize::try_from(offset).ok()?;
    let b = a.checked_add(usize::try_from(len).ok()?)?;
    map.get(a..b)
}

/// Decompresses one zstd frame that must give exactly `len` bytes, into a buffer of that
/// size: the output can never grow past what the (checksummed) table allows. Each thread
/// keeps one decompression context (creating one per block was a tenth of a full scan).
pub(crate) fn decompress(
    stored: &[u8],
    len: usize,
    dict: Option<&zstd::dict::DecoderDictionary<'static>>,
) -> std::result::Result<Vec<u8>, String> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    if len > format::BLOCK_LEN_MAX as usize {
        return Err(format!("packed length {len} out of bounds"));
    }
    // Written into its spare capacity: zstd never writes past `len`.
    let mut out = Vec::with_capacity(len);
    let n = DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match &mut *slot {
            Some(d) => d,
            None => slot
                .insert(zstd::zstd_safe::DCtx::try_create().ok_or("no memory for a zstd context")?),
        };
        let done = match dict {
            Some(d) => dctx.decompress_using_ddict(&mut out, stored, d.as_ddict()),
            None => dctx.decompress(&mut out, stored),
        };
        done.map_err(|code| {
            format!(
                "does not decompress: {}",
                zstd::zstd_safe::get_error_name(code)
            )
        })
    })?;
    if n != len {
        return Err(format!("decompresses to {n} bytes, not {len}"));
    }
    Ok(out)
}

/// A block's place: segment number, block number, and the table's CRC (which tells one
/// compaction of a segment number from another, should a directory be made again).
type Key = (u32, u32, u32);

type BlockMap = LinkedHashMap<Key, Expanded, BuildHasherDefault<FxHasher>>;

/// Expanded blocks read recently, least recently used first out, within a byte budget.
pub(crate) struct BlockCache {
    budget: usize,
    /// The blocks, least recently used first, and their bytes in all.
    inner: Mutex<(BlockMap, usize)>,
}

impl BlockCache {
    /// A cache of at most `budget` bytes.
    pub fn new(budget: usize) -> BlockCache {
        BlockCache {
            budget,
            inner: Mutex::new((LinkedHashMap::default(), 0)),
        }
    }

    fn get(&self, key: Key) -> Option<Expanded> {
        self.inner.lock().0.to_back(&key).map(|b| Arc::clone(b))
    }

    fn insert(&self, key: Key, bytes: Expanded) {
        if bytes.len() > self.budget {
            return;
        }
        let mut inner = self.inner.lock();
        let (map, used) = &mut *inner;
        *used += bytes.len();
        if let Some(old) = map.insert(key, bytes) {
            *used -= old.len();
        }
        while *used > self.budget {
            let Some((_, old)) = map.pop_front() else {
                break;
            };
            *used -= old.len();
        }
    }

    /// Drops the blocks of segment `segment_id` (its file was replaced or deleted).
    pub fn forget(&self, segment_id: u32) {
        let mut inner = self.inner.lock();
        let (map, used) = &mut *inner;
        let keys: Vec<_> = map.keys().filter(|k| k.0 == segment_id).copied().collect();
        for k in keys {
            if let Some(old) = map.remove(&k) {
                *used -= old.len();
            }
        }
    }
}
