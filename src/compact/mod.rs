//! Compacted sealed segments: the pieces that rewrite a sealed segment as compressed blocks.
//! `filter` holds the trigram Bloom filters that let a text search skip a block unread.

pub(crate) mod filter;
