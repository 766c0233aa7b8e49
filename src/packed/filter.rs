//! Block filters: a Bloom filter of the trigrams of a run of blocks' payload texts, so a
//! text search skips the blocks that cannot hold its text. (Interim version; the tuned one
//! replaces it.)

use rustc_hash::FxHashSet;

const K: u32 = 3;
const BITS_PER_TRIGRAM: usize = 5;

/// Collects the trigrams of many payload texts, then encodes one filter.
pub(crate) struct FilterBuilder {
    seen: FxHashSet<u32>,
}

fn trigram(w: &[u8]) -> u32 {
    u32::from(w[0].to_ascii_lowercase())
        | u32::from(w[1].to_ascii_lowercase()) << 8
        | u32::from(w[2].to_ascii_lowercase()) << 16
}

fn positions(t: u32, m: u64) -> impl Iterator<Item = u64> {
    let h = u64::from(t).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (h1, h2) = (h >> 32, (h & 0xffff_ffff) | 1);
    (0..u64::from(K)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
}

impl FilterBuilder {
    /// An empty builder.
    pub(crate) fn new() -> FilterBuilder {
        FilterBuilder {
            seen: FxHashSet::default(),
        }
    }

    /// Adds every trigram of `text`.
    pub(crate) fn add(&mut self, text: &[u8]) {
        for w in text.windows(3) {
            self.seen.insert(trigram(w));
        }
    }

    /// Appends the encoded filter to `out` and empties the builder.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<u8>) {
        let m = (self.seen.len() * BITS_PER_TRIGRAM)
            .max(64)
            .next_multiple_of(64) as u64;
        let mut bits = vec![0u8; (m / 8) as usize];
        for &t in &self.seen {
            for p in positions(t, m) {
                bits[(p / 8) as usize] |= 1 << (p % 8);
            }
        }
        out.push(K as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&u32::try_from(m).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&bits);
        self.seen.clear();
    }
}

/// The trigrams of a search text.
pub(crate) struct FilterProbe {
    trigrams: Vec<u32>,
}

impl FilterProbe {
    /// The probe of `needle`; `None` under 3 bytes.
    pub(crate) fn new(needle: &[u8]) -> Option<FilterProbe> {
        (needle.len() >= 3).then(|| FilterProbe {
            trigrams: needle.windows(3).map(trigram).collect(),
        })
    }
}

/// Checks an encoded filter's structure.
pub(crate) fn check(filter: &[u8]) -> Result<(), &'static str> {
    let head = filter.get(..8).ok_or("filter shorter than its header")?;
    if head[0] == 0 || head[0] > 16 || head[1..4] != [0, 0, 0] {
        return Err("bad filter header");
    }
    let m = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if m == 0 || !m.is_multiple_of(64) || filter.len() != 8 + m / 8 {
        return Err("filter length disagrees with its bit count");
    }
    Ok(())
}

/// Whether the run the filter covers may hold a payload containing the probe's text.
pub(crate) fn may_contain(filter: &[u8], probe: &FilterProbe) -> Result<bool, &'static str> {
    check(filter)?;
    let m = u64::from(u32::from_le_bytes([
        filter[4], filter[5], filter[6], filter[7],
    ]));
    let bits = &filter[8..];
    Ok(probe
        .trigrams
        .iter()
        .all(|&t| positions(t, m).all(|p| bits[(p / 8) as usize] & (1 << (p % 8)) != 0)))
}
