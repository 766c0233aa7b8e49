//! Trigram Bloom filters over the data payloads of a group of events, so that a text search
//! can rule out a compressed block without decompressing it.
//!
//! A filter records every trigram (three consecutive bytes, ASCII letters lowercased) of the
//! payloads of its group. A search text matches a payload only if each of the text's
//! trigrams occurs in that payload, so a filter missing any one of them proves that no
//! payload of the group matches. The filter may wrongly claim a trigram (a false positive);
//! it never misses one that was added, which is the property everything here protects.
//! The encoding, the hash and the bit order are specified in
//! `format-spec/filter-section.md#block-filter`; [`FILTER_HEADER_LEN`], [`HASHES_MAX`] and
//! [`FILTER_BITS_MAX`] are its constants.
//!
//! Building is part of compaction and sees every payload byte, so [`FilterBuilder::add`]
//! collects trigram values in a reusable bitmap of all 2^24 of them rather than a hash
//! set; [`may_contain`] reads the filter in place, with no allocation, and refuses bytes
//! that are not a well-formed filter instead of panicking.

/// Bytes of a filter before its bit array.
pub(crate) const FILTER_HEADER_LEN: usize = 8;
/// Most hash functions (bits per trigram) a filter may use.
pub(crate) const HASHES_MAX: u8 = 16;
/// Most bits a filter may have: 16 bits for each of the 2^24 possible trigrams, more than a
/// writer ever needs.
pub(crate) const FILTER_BITS_MAX: u32 = 1 << 28;
/// Bits of filter per distinct trigram the builder allocates at most (before rounding up to
/// a multiple of 64). With [`BITS_PER_PAYLOAD`] and one filter per 1 MiB of frame bytes, the
/// bench workload's groups get about 9 bits per trigram and 6 hashes, and a random 5-letter
/// text passes 0.03% to 0.1% of them (`tools/filter_sizing.py`, results in
/// `format-spec/filter-section.md`).
pub(crate) const BITS_PER_TRIGRAM: usize = 10;
/// Bits of filter per payload added the builder allocates at most: the budget of 4 bytes per
/// stored event. Groups of many distinct trigrams per payload (large or varied payloads)
/// get fewer bits per trigram, and so more false positives, instead of a larger filter.
pub(crate) const BITS_PER_PAYLOAD: usize = 32;
/// Bits per distinct trigram the builder allocates at least, whatever the budget says: with
/// fewer, most bits are set and the filter rules out almost nothing, so it would cost bytes
/// for no skipped block. At 4 bits and 3 hashes a random 5-letter text passes ~1% of groups.
pub(crate) const BITS_PER_TRIGRAM_MIN: usize = 4;
/// Most distinct trigrams of a search text that are probed. Any subset of a text's trigrams
/// gives a correct answer, so a long text is cut here to bound the cost of each filter.
pub(crate) const PROBE_TRIGRAMS_MAX: usize = 64;

const _: () = assert!(BITS_PER_TRIGRAM_MIN >= 1 && BITS_PER_TRIGRAM_MIN <= BITS_PER_TRIGRAM);
const _: () = assert!(BITS_PER_TRIGRAM * (1 << 24) <= FILTER_BITS_MAX as usize);

/// The number of distinct trigram values: three bytes.
const TRIGRAM_VALUES: usize = 1 << 24;

/// The 64-bit finaliser of `MurmurHash3`: spreads a trigram value over all 64 bits.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The two halves double hashing derives a trigram's bit positions from: position `i` is
/// `(h1 + i * h2) mod m_bits`. `h2` is odd so consecutive positions never coincide when
/// `m_bits` is a power of two.
fn hash_pair(trigram: u32) -> (u64, u64) {
    let x = fmix64(u64::from(trigram));
    (x & 0xffff_ffff, (x >> 32) | 1)
}

/// Collects the trigrams of many payload texts, then encodes one filter.
pub(crate) struct FilterBuilder {
    /// Bit `t` is set when trigram value `t` has been added since the last finish.
    seen: Vec<u64>,
    /// The values whose bits are set in `seen`, each once.
    distinct: Vec<u32>,
    /// Payloads added since the last finish (calls of `add`).
    payloads: usize,
}

impl FilterBuilder {
    /// An empty builder. It holds a 2 MiB bitmap, reused for every group it encodes.
    pub(crate) fn new() -> FilterBuilder {
        FilterBuilder {
            seen: vec![0; TRIGRAM_VALUES / 64],
            distinct: Vec::new(),
            payloads: 0,
        }
    }

    /// Adds every trigram of `text` (one event's data JSON text), ASCII letters lowercased.
    /// Call it once per payload: the filter's size budget counts the calls.
    pub(crate) fn add(&mut self, text: &[u8]) {
        self.payloads += 1;
        let [a, b, rest @ ..] = text else {
            return;
        };
        // The trigram ending at the current byte, first byte lowest.
        let mut t =
            u32::from(a.to_ascii_lowercase()) << 8 | u32::from(b.to_ascii_lowercase()) << 16;
        let seen = &mut self.seen[..TRIGRAM_VALUES / 64];
        for &c in rest {
            t = t >> 8 | u32::from(c.to_ascii_lowercase()) << 16;
            // `t` < 2^24, so the word index is below 2^18, the length of `seen`.
            let word = &mut seen[(t >> 6) as usize];
            let bit = 1u64 << (t & 63);
            if *word & bit == 0 {
                *word |= bit;
                self.distinct.push(t);
            }
        }
    }

    /// Number of distinct trigrams added so far.
    pub(crate) fn distinct(&self) -> usize {
        self.distinct.len()
    }

    /// Appends the encoded filter to `out` and resets the builder for the next group.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<u8>) {
        let (hashes, m_bits) = sizing(self.distinct.len(), self.payloads);
        out.push(hashes);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&m_bits.to_le_bytes());
        let start = out.len();
        out.resize(start + (m_bits / 8) as usize, 0);
        let bits = &mut out[start..];
        for &t in &self.distinct {
            for p in positions(t, hashes, u64::from(m_bits)) {
                bits[p / 8] |= 1 << (p % 8);
            }
            self.seen[(t >> 6) as usize] &= !(1u64 << (t & 63));
        }
        self.distinct.clear();
        self.payloads = 0;
    }
}

/// The hash count and bit count of the filter of `distinct` trigrams from `payloads`
/// payloads: bits per trigram [`BITS_PER_TRIGRAM`], cut to [`BITS_PER_PAYLOAD`] per payload
/// but never below [`BITS_PER_TRIGRAM_MIN`], rounded up to a multiple of 64; hashes ln 2
/// times the bits per trigram, rounded (the count that makes false positives rarest), 1 to
/// 16. No trigram, no bits (and 1 hash, which nothing reads).
fn sizing(distinct: usize, payloads: usize) -> (u8, u32) {
    if distinct == 0 {
        return (1, 0);
    }
    let wanted = (distinct * BITS_PER_TRIGRAM).min(payloads.saturating_mul(BITS_PER_PAYLOAD));
    let bits = wanted.max(distinct * BITS_PER_TRIGRAM_MIN).div_ceil(64) * 64;
    let m_bits = u32::try_from(bits).expect("2^24 trigrams at most, within FILTER_BITS_MAX");
    // k = round(ln 2 * m / n) in integers: ln 2 ~ 0.693147 = 693_147 / 10^6; the product
    // stays below 2^53 as m < 2^29 and the factor < 2^20.
    let hashes =
        (u64::from(m_bits) * 693_147 + distinct as u64 * 500_000) / (distinct as u64 * 1_000_000);
    (hashes.clamp(1, u64::from(HASHES_MAX)) as u8, m_bits)
}

/// The bit positions of a trigram in a filter of `m_bits` (> 0) bits with `k` hashes.
fn positions(trigram: u32, k: u8, m_bits: u64) -> impl Iterator<Item = usize> {
    pair_positions(hash_pair(trigram), k, m_bits)
}

/// The bit positions of a hash pair; `h1 + i * h2` cannot overflow (both below 2^32, i < 16).
fn pair_positions((h1, h2): (u64, u64), k: u8, m_bits: u64) -> impl Iterator<Item = usize> {
    (0..u64::from(k)).map(move |i| ((h1 + i * h2) % m_bits) as usize)
}

/// The trigram probes of a search text (None when the text is shorter than 3 bytes: no
/// filter can rule a block out).
pub(crate) struct FilterProbe {
    /// Hash pairs of the text's distinct trigrams, at most [`PROBE_TRIGRAMS_MAX`].
    pairs: Vec<(u64, u64)>,
}

impl FilterProbe {
    /// The probes of `needle`, ASCII letters lowercased as the filters' trigrams are.
    pub(crate) fn new(needle: &[u8]) -> Option<FilterProbe> {
        let lower = needle.to_ascii_lowercase();
        let mut trigrams: Vec<u32> = lower
            .windows(3)
            .map(|w| u32::from(w[0]) | u32::from(w[1]) << 8 | u32::from(w[2]) << 16)
            .collect();
        if trigrams.is_empty() {
            return None;
        }
        // Duplicates would be probed twice for nothing; order does not change the answer.
        trigrams.sort_unstable();
        trigrams.dedup();
        trigrams.truncate(PROBE_TRIGRAMS_MAX);
        Some(FilterProbe {
            pairs: trigrams.into_iter().map(hash_pair).collect(),
        })
    }
}

/// The fields of a filter's header once they are known to describe `filter` exactly.
struct Parsed<'a> {
    hashes: u8,
    m_bits: u32,
    bits: &'a [u8],
}

fn parse(filter: &[u8]) -> Result<Parsed<'_>, &'static str> {
    let Some((header, bits)) = filter.split_first_chunk::<FILTER_HEADER_LEN>() else {
        return Err("filter shorter than its header");
    };
    let [hashes, r0, r1, r2, m0, m1, m2, m3] = *header;
    if hashes == 0 || hashes > HASHES_MAX {
        return Err("filter hash count not 1 to 16");
    }
    if (r0, r1, r2) != (0, 0, 0) {
        return Err("filter reserved bytes not zero");
    }
    let m_bits = u32::from_le_bytes([m0, m1, m2, m3]);
    if m_bits % 64 != 0 {
        return Err("filter bit count not a multiple of 64");
    }
    if m_bits > FILTER_BITS_MAX {
        return Err("filter bit count over 2^28");
    }
    if bits.len() != (m_bits / 8) as usize {
        return Err("filter length does not match its bit count");
    }
    Ok(Parsed {
        hashes,
        m_bits,
        bits,
    })
}

/// Whether the group encoded in `filter` may hold a payload containing the needle; `Err`
/// with a short reason when the bytes are not a well-formed filter (never panics, never
/// allocates based on untrusted lengths).
pub(crate) fn may_contain(filter: &[u8], probe: &FilterProbe) -> Result<bool, &'static str> {
    let f = parse(filter)?;
    if f.m_bits == 0 {
        // No payload of the group had a trigram; a probe has at least one.
        return Ok(false);
    }
    let all = probe.pairs.iter().all(|&pair| {
        pair_positions(pair, f.hashes, u64::from(f.m_bits)).all(|p| {
            f.bits
                .get(p / 8)
                .is_some_and(|byte| byte >> (p % 8) & 1 == 1)
        })
    });
    Ok(all)
}

/// Checks an encoded filter's structure (used by verify): Ok(()) or what is wrong.
pub(crate) fn check(filter: &[u8]) -> Result<(), &'static str> {
    let f = parse(filter)?;
    // A filter has bits only when a trigram was added, and every added trigram sets a bit.
    if f.m_bits > 0 && f.bits.iter().all(|&b| b == 0) {
        return Err("filter has bits but none set");
    }
    Ok(())
}

/// The length of the filter that starts `bytes` (its header says), so filters can be stored
/// back to back; `Err` as [`check`] when the header is not a filter's or the bytes end early.
pub(crate) fn filter_len(bytes: &[u8]) -> Result<usize, &'static str> {
    let Some(header) = bytes.first_chunk::<FILTER_HEADER_LEN>() else {
        return Err("filter shorter than its header");
    };
    let m_bits = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let len = FILTER_HEADER_LEN + (m_bits / 8) as usize;
    let filter = bytes
        .get(..len)
        .ok_or("filter length does not match its bit count")?;
    parse(filter)?;
    Ok(len)
}

#[cfg(test)]
mod tests;
