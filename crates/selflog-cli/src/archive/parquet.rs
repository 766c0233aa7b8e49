//! The Parquet side of `selflog archive`: the three tables' schemas, the writer settings,
//! column batches built from records, and [`PartFile`], one Parquet file written under a
//! temporary name (`publish.rs` puts complete files in place).
//!
//! Integers are signed 64-bit (Parquet INT64, no unsigned annotation): Spark reads an
//! unsigned 64-bit column as a decimal and some Trino versions refuse it, while every id
//! and count selflog stores fits. A value past `i64::MAX` fails the run, never wraps.
//!
//! Every file is zstd-compressed and holds exactly one row group, however many rows it has
//! (a file is at most one segment's events of one day, so its row group is bounded by the
//! segment length): a file of 122,880 rows or more (`DuckDB`'s row-group size) never has a
//! smaller row group. Low-cardinality strings (type, action, source) are dictionary-encoded;
//! the `data` JSON and the `hash` are nearly unique per row, where a dictionary only costs
//! time before the writer falls back to plain pages. Ids and timestamps grow with the row
//! and are delta-encoded.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder as _, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::extension::Json;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use selflog::{EventRef, Pattern, SystemStats};

use crate::Failure;

/// Permissions of every file of the archive: the owner's alone, like the store's files.
pub const FILE_MODE: u32 = 0o600;

/// The zstd level: 1, the fastest (benches/RESULTS.md, "Archive", compares it with 3,
/// `DuckDB`'s default).
const ZSTD_LEVEL: i32 = 1;

/// Rows gathered in memory before they are handed to the Parquet encoder. The encoder
/// keeps the row group's encoded, compressed pages; the rows themselves are held only
/// this long.
pub const BATCH_ROWS: usize = 8192;

/// Suffix of a file being written; readers' `*.parquet` globs do not match it, and its
/// leading `.` hides it from Spark and Hive.
pub const TMP_SUFFIX: &str = ".tmp";

/// The time zone of every timestamp column: timestamps are UTC instants.
const UTC: &str = "UTC";

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// A string column holding JSON text, marked with the JSON logical type.
fn json_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable).with_extension_type(Json::default())
}

/// The events table: `id`, `timestamp`, `event_type`, `action`, `source`, `data`, `hash`.
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("timestamp", timestamp_type(), false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
            json_field("data", true),
            Field::new("hash", DataType::Utf8, false),
        ]))
    }))
}

/// The patterns table, with the old `patterns` table's columns.
pub fn pattern_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("event_id", DataType::Int64, true),
            Field::new("pattern_type", DataType::Utf8, false),
            Field::new("confidence", DataType::Float64, false),
            json_field("pattern_data", false),
            Field::new("embryo_id", DataType::Utf8, true),
            Field::new("created", timestamp_type(), false),
        ]))
    }))
}

/// The system stats table, with the old `system_stats` table's columns.
pub fn stats_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("timestamp", timestamp_type(), false),
            Field::new("total_events", DataType::Int64, false),
            Field::new("events_per_second", DataType::Float64, false),
            Field::new("active_embryos", DataType::Int64, false),
            Field::new("avg_fitness", DataType::Float64, false),
            Field::new("storage_mb", DataType::Float64, false),
        ]))
    }))
}

/// The writer settings of every file (see the module doc).
fn properties() -> Result<WriterProperties, Failure> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(parquet_err)?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None);
    for name in ["id", "timestamp"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    for name in ["data", "hash", "pattern_data"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None);
    }
    Ok(b.build())
}

/// A Parquet library error as a failure.
pub fn parquet_err(e: impl std::fmt::Display) -> Failure {
    Failure::hinted(
        format!("cannot write Parquet: {e}"),
        "this is a bug in selflog archive; nothing was published under the file's final name",
    )
}

/// An I/O error on `path` as a failure that names the path. What is in the archive stays
/// sound: only complete files have final names, and the manifest lists what they hold.
pub fn io_err(what: &str, path: &Path, e: &io::Error) -> Failure {
    Failure::hinted(
        format!("cannot {what} {}: {e}", path.display()),
        "the archive keeps every file completed so far; fix the cause (space, permissions) \
         and run again to finish it",
    )
}

/// `value` as a signed 64-bit integer, or a failure naming `what`.
fn int64(what: &str, value: u64) -> Result<i64, Failure> {
    i64::try_from(value).map_err(|_| {
        Failure::hinted(
            format!("{what} {value} does not fit the archive's signed 64-bit column"),
            "nothing of the segment or day holding it was archived",
        )
    })
}

/// The 16 lowercase hex digits of `h`, as `inspect get` and exports print a hash.
pub fn hex16(h: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((h >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Rows of the events table being gathered.
pub struct EventColumns {
    id: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    event_type: StringBuilder,
    action: StringBuilder,
    source: StringBuilder,
    data: StringBuilder,
    hash: StringBuilder,
}

impl EventColumns {
    /// No rows, with room for [`BATCH_ROWS`].
    pub fn new() -> EventColumns {
        let n = BATCH_ROWS;
        EventColumns {
            id: Int64Builder::with_capacity(n),
            timestamp: TimestampMicrosecondBuilder::with_capacity(n),
            event_type: StringBuilder::with_capacity(n, n * 12),
            action: StringBuilder::with_capacity(n, n * 8),
            source: StringBuilder::with_capacity(n, n * 16),
            data: StringBuilder::with_capacity(n, n * 256),
            hash: StringBuilder::with_capacity(n, n * 16),
        }
    }

    /// Adds `e` as a row.
    pub fn push(&mut self, e: &EventRef<'_>) -> Result<(), Failure> {
        self.id.append_value(int64("id", e.id.0)?);
        self.timestamp.append_value(e.timestamp.micros());
        self.event_type.append_value(e.event_type);
        self.action.append_option(e.action);
        self.source.append_value(e.source);
        self.data.append_option(e.data);
        let hex = hex16(e.hash);
        self.hash
            .append_value(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
        Ok(())
    }

    /// Rows gathered since the last [`EventColumns::take`].
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// The rows gathered as a batch; the columns are empty again.
    pub fn take(&mut self) -> Result<RecordBatch, Failure> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.timestamp.finish().with_timezone(UTC)),
            Arc::new(self.event_type.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.data.finish()),
            Arc::new(self.hash.finish()),
        ];
        RecordBatch::try_new(event_schema(), columns).map_err(parquet_err)
    }
}

/// `patterns` as one batch of the patterns table.
pub fn pattern_batch(patterns: &[&Pattern]) -> Result<RecordBatch, Failure> {
    let n = patterns.len();
    let mut id = Int64Builder::with_capacity(n);
    let mut event_id = Int64Builder::with_capacity(n);
    let mut pattern_type = StringBuilder::new();
    let mut confidence = Float64Builder::with_capacity(n);
    let mut pattern_data = StringBuilder::new();
    let mut embryo_id = StringBuilder::new();
    let mut created = TimestampMicrosecondBuilder::with_capacity(n);
    for p in patterns {
        id.append_value(int64("pattern id", p.id)?);
        event_id.append_option(p.event_id.map(|e| int64("event_id", e.0)).transpose()?);
        pattern_type.append_value(&p.pattern_type);
        confidence.append_value(p.confidence);
        pattern_data.append_value(&p.pattern_data);
        embryo_id.append_option(p.embryo_id.as_deref());
        created.append_value(p.created.micros());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(event_id.finish()),
        Arc::new(pattern_type.finish()),
        Arc::new(confidence.finish()),
        Arc::new(pattern_data.finish()),
        Arc::new(embryo_id.finish()),
        Arc::new(created.finish().with_timezone(UTC)),
    ];
    RecordBatch::try_new(pattern_schema(), columns).map_err(parquet_err)
}

/// `stats` as one batch of the system stats table.
pub fn stats_batch(stats: &[&SystemStats]) -> Result<RecordBatch, Failure> {
    let n = stats.len();
    let mut timestamp = TimestampMicrosecondBuilder::with_capacity(n);
    let mut total_events = Int64Builder::with_capacity(n);
    let mut events_per_second = Float64Builder::with_capacity(n);
    let mut active_embryos = Int64Builder::with_capacity(n);
    let mut avg_fitness = Float64Builder::with_capacity(n);
    let mut storage_mb = Float64Builder::with_capacity(n);
    for s in stats {
        timestamp.append_value(s.timestamp.micros());
        total_events.append_value(int64("total_events", s.total_events)?);
        events_per_second.append_value(s.events_per_second);
        active_embryos.append_value(int64("active_embryos", s.active_embryos)?);
        avg_fitness.append_value(s.avg_fitness);
        storage_mb.append_value(s.storage_mb);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(timestamp.finish().with_timezone(UTC)),
        Arc::new(total_events.finish()),
        Arc::new(events_per_second.finish()),
        Arc::new(active_embryos.finish()),
        Arc::new(avg_fitness.finish()),
        Arc::new(storage_mb.finish()),
    ];
    RecordBatch::try_new(stats_schema(), columns).map_err(parquet_err)
}

/// One Parquet file being written, under the temporary name `.NAME.PID.tmp` beside its
/// final name; [`PartFile::finish`] completes it, and `publish::commit` puts it in place.
/// Dropped unfinished, it removes its temporary file.
pub struct PartFile {
    writer: Option<ArrowWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

/// The temporary name of `path` for this process.
pub fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()))
}

impl PartFile {
    /// Starts the file that will be `path` (its directory exists), with `schema`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<PartFile, Failure> {
        let tmp = tmp_name(path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| io_err("create", &tmp, &e))?;
        // The mode above is filtered by the umask, which may take the owner's bits too.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| io_err("set the mode of", &tmp, &e))?;
        // From here on, drop removes the temporary file if the writer cannot start.
        let mut part = PartFile {
            writer: None,
            tmp,
            path: path.to_path_buf(),
            rows: 0,
        };
        // Without the embedded Arrow schema, readers take the types from the Parquet schema
        // alone, as every engine does.
        let options = ArrowWriterOptions::new()
            .with_properties(properties()?)
            .with_skip_arrow_metadata(true);
        part.writer =
            Some(ArrowWriter::try_new_with_options(file, schema, options).map_err(parquet_err)?);
        Ok(part)
    }

    /// Encodes `batch` into the file's row group.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), Failure> {
        let Some(w) = self.writer.as_mut() else {
            return Err(parquet_err("write after finish"));
        };
        w.write(batch).map_err(|e| self.write_err(&e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn write_err(&self, e: &parquet::errors::ParquetError) -> Failure {
        match e {
            parquet::errors::ParquetError::External(inner) => {
                io_err("write", &self.tmp, &io::Error::other(inner.to_string()))
            }
            other => parquet_err(other),
        }
    }

    /// Writes the row group and the footer and closes the file, still under its temporary
    /// name and not yet synced.
    pub fn finish(mut self) -> Result<Finished, Failure> {
        let Some(w) = self.writer.take() else {
            return Err(parquet_err("finished twice"));
        };
        let file = w.into_inner().map_err(|e| self.write_err(&e))?;
        let bytes = file
            .metadata()
            .map_err(|e| io_err("stat", &self.tmp, &e))?
            .len();
        drop(file);
        Ok(Finished {
            tmp: std::mem::take(&mut self.tmp),
            path: std::mem::take(&mut self.path),
            rows: self.rows,
            bytes,
        })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A complete file under its temporary name, waiting for `publish::commit`. Dropped
/// uncommitted, it removes its temporary file.
pub struct Finished {
    /// The temporary name; empty once renamed.
    pub tmp: PathBuf,
    /// The final name.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: u64,
    /// Its length.
    pub bytes: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex16_prints_sixteen_lowercase_digits() {
        assert_eq!(&hex16(0xab), b"00000000000000ab");
        assert_eq!(&hex16(u64::MAX), b"ffffffffffffffff");
        assert_eq!(
            std::str::from_utf8(&hex16(0x0123_4567_89ab_cdef)).unwrap(),
            format!("{:016x}", 0x0123_4567_89ab_cdef_u64)
        );
    }

    #[test]
    fn temporary_names_are_hidden_and_not_parquet() {
        let t = tmp_name(Path::new("/a/date=2024-01-02/segment-00000001.parquet"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".segment-00000001.parquet."));
        assert!(name.ends_with(TMP_SUFFIX));
        assert_eq!(t.parent(), Some(Path::new("/a/date=2024-01-02")));
    }
}
