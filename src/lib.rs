//! selflog: an embedded, append-only, log-structured event store for desktop activity
//! capture.
//!
//! A store is a directory of memory-mapped segment files. Many threads [`Store::append`]
//! events; each gets its id at once and is written by one background writer thread in
//! batches (group commit), framed, checksummed (CRC-32) and, above 1 KiB, LZ4-compressed.
//! [`Store::flush`] is the durability barrier. Readers, in this process or another one
//! ([`Store::open_read_only`]), see exactly the committed prefix and never block the writer.
//!
//! ```
//! use selflog::{Config, Event, EventId, Store, Timestamp};
//!
//! # fn main() -> selflog::Result<()> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let store = Store::open(dir.path().join("store"), Config::default())?;
//! let event = Event::new(
//!     Timestamp::from_secs_f64(1_732_460_000.123_456).expect("in range"),
//!     "app_launch",
//!     Some("launched"),
//!     "Google Chrome",
//!     Some(r#"{"pid": 4242, "bundle": "com.google.Chrome"}"#),
//! )?;
//! let id = store.append(event)?.id();
//! store.flush()?; // committed: survives the process being killed
//! let back = store.get(id)?.expect("committed");
//! assert_eq!(back.source, "Google Chrome");
//! assert_eq!(back.data.as_deref(), Some(r#"{"pid": 4242, "bundle": "com.google.Chrome"}"#));
//! assert_eq!(id, EventId(1));
//! store.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//! - Ids start at 1 and increase by one per stored event, in append order.
//! - After `flush` returns, the events appended before it survive the process being killed
//!   ([`Durability::Buffered`], the default) or a power loss ([`Durability::Sync`]).
//! - Every frame is checked against its CRC on every read; damage is reported with the file
//!   and byte offset, never silently skipped. A torn tail left by a crash is discarded on
//!   open and reported in [`Store::open_report`].
//! - One writer per store across processes (a lock file); any number of readers.
//! - Store directories are created 0700 and files 0600.
//!
//! The on-disk format is specified byte by byte in `format-spec/FORMAT.md`.
#![deny(unsafe_code)]

mod cache;
mod checked;
mod compact;
mod config;
mod cursor;
mod dedup;
mod error;
mod event;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod index;
pub mod jsonl;
mod layout;
mod lock;
mod maintenance;
mod manifest;
mod query;
mod recovery;
mod retention;
mod salvage;
mod scan;
mod segment;
mod store;
mod stream;
mod text;
mod writer;

pub use config::{Config, Durability, DEDUP_WINDOW_MAX, SEGMENT_LEN_MAX, SEGMENT_LEN_MIN};
pub use cursor::{Cursor, CursorList, DamagedCursor, CURSOR_DIR, CURSOR_NAME_LEN_MAX};
pub use error::{Error, Result};
pub use event::{Appended, Event, EventId, EventRef, StoredEvent, Timestamp, NAME_LEN_MAX};
pub use format::FORMAT_VERSION;
pub use layout::META_FILE;
pub use maintenance::{NewPattern, Pattern, SystemStats, PATTERNS_DIR, STATS_DIR};
pub use query::{Events, Field, Order, Position, Query};
pub use recovery::{verify, OpenReport, Problem, VerifyReport};
pub use retention::{plan as retention_plan, Deletion, Keep, Kept, Reason};
pub use salvage::{salvage, FileReport, IdOrigin, SalvageReport, TimeOrigin};
pub use scan::Scan;
pub use store::{PatternFilter, Store, StoreStats};
pub use stream::SegmentInfo;
