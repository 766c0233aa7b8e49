//! Deduplication: the rolling window of content-hash keys, its image, and its rebuild.
//!
//! The window (`window.rs`) answers "which of the last `capacity` ids holds an event with
//! this key?". A hit is only a candidate: the store confirms it by comparing the candidate
//! event's content before calling the new event a duplicate, so a key collision never
//! drops a distinct event. The window is derived from the events and never the only copy
//! of anything: a writable open reads the image a clean close wrote (`image.rs`), checked
//! against the store's last event, and brings it up to date with the events after it; or,
//! without a usable image, rebuilds it from the newest segments' frames (`rebuild.rs`).
//! Either way the window after an open answers as one built by appending every stored
//! event in order.
//!
//! This module does no locking: the window lives in the writer's queue state, and the
//! queue lock guards it. [`BucketHint`] alone is read without that lock, to prefetch.

mod image;
mod rebuild;
mod window;

pub(crate) use image::{
    save_dedup_image, DedupImageRead, DEDUP_IMAGE_FILE, IMAGE_HEADER_LEN, IMAGE_MAGIC,
};
pub(crate) use rebuild::rebuild_dedup;
pub(crate) use window::{BucketHint, DedupWindow, DEDUP_TOUCH_AHEAD};
