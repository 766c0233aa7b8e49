//! Tests of the block filter: what is added is always found (in any ASCII case), malformed
//! bytes are refused without a panic, and the false-positive rate is near what the sizing
//! promises.

use proptest::prelude::*;

use super::{
    check, filter_len, may_contain, sizing, FilterBuilder, FilterProbe, FILTER_BITS_MAX,
    FILTER_HEADER_LEN,
};
use crate::text::TextMatcher;

/// The filter of one group of payloads.
fn filter_of<T: AsRef<[u8]>>(payloads: &[T]) -> Vec<u8> {
    let mut b = FilterBuilder::new();
    for p in payloads {
        b.add(p.as_ref());
    }
    let mut out = Vec::new();
    b.finish_into(&mut out);
    out
}

fn may(filter: &[u8], needle: &[u8]) -> bool {
    let probe = FilterProbe::new(needle).expect("needle of 3 bytes or more");
    may_contain(filter, &probe).expect("well-formed filter")
}

#[test]
fn every_substring_of_every_payload_may_be_contained() {
    let payloads = [
        &br#"{"app":"Google Chrome","title":"Inbox (3) - alice@example.com","pid":4242}"#[..],
        br#"{"path":"/Users/alice/Projects/selflog/src/query.rs","size":48213}"#,
        br#"{"url":"https://example.com/a/b?q=zstd+dictionary","tab":7}"#,
    ];
    let filter = filter_of(&payloads);
    assert_eq!(check(&filter), Ok(()));
    assert_eq!(filter_len(&filter), Ok(filter.len()));
    for p in payloads {
        for start in 0..p.len() {
            for end in start + 3..=p.len() {
                let needle = &p[start..end];
                assert!(
                    may(&filter, needle),
                    "{:?}",
                    String::from_utf8_lossy(needle)
                );
                let upper = needle.to_ascii_uppercase();
                assert!(
                    may(&filter, &upper),
                    "{:?}",
                    String::from_utf8_lossy(&upper)
                );
            }
        }
    }
}

#[test]
fn rules_out_texts_whose_trigrams_are_absent() {
    let filter = filter_of(&[br#"{"app":"Google Chrome","pid":4242}"#]);
    // The hash is fixed by the format, so these answers are too: each needle has a trigram
    // whose bits are not all set in this filter.
    for needle in ["zqxjv", "ZQXJV", "Firefox", "qqq", "chromium"] {
        assert!(!may(&filter, needle.as_bytes()), "{needle}");
    }
}

#[test]
fn non_ascii_and_json_escapes_are_found_as_search_matches_them() {
    let payloads = [
        r#"{"title":"Café – naïve \"quoted\" text","esc":"\u00e9\n\t\\","jp":"日本語のテキスト"}"#,
        r#"{"emoji":"🦀 rust","mixed":"ÄÖÜ äöü ß","ctl":"\u0001"}"#,
    ];
    let filter = filter_of(&payloads);
    let needles = [
        "Café",
        "CAFé",
        "naïve",
        "NAïVE",
        r#"\"quoted\""#,
        r"\U00E9",
        r"\N\T\\",
        "日本語",
        "本語の",
        "🦀",
        "🦀 RUST",
        "ÄÖÜ",
        "äöü ß",
        r#""\u0001""#,
        "é",
    ];
    for needle in needles {
        let matcher = TextMatcher::new(needle);
        let found = payloads.iter().any(|p| matcher.is_match(p.as_bytes()));
        assert!(found, "{needle} is a match by the search's own rule");
        if let Some(probe) = FilterProbe::new(needle.as_bytes()) {
            assert_eq!(may_contain(&filter, &probe), Ok(true), "{needle}");
        }
    }
    // Only ASCII letters fold, as in the search: an upper-case non-ASCII letter is another
    // byte sequence, which the filter may rule out.
    assert!(!TextMatcher::new("ÇAFÉ").is_match(payloads[0].as_bytes()));
}

#[test]
fn needles_shorter_than_a_trigram_have_no_probe() {
    assert!(FilterProbe::new(b"").is_none());
    assert!(FilterProbe::new(b"ab").is_none());
    assert!(FilterProbe::new("é".as_bytes()).is_none(), "two bytes");
    assert!(FilterProbe::new(b"abc").is_some());
}

#[test]
fn trigrams_do_not_span_payloads_and_case_folds() {
    let mut b = FilterBuilder::new();
    b.add(b"ab");
    b.add(b"c");
    assert_eq!(b.distinct(), 0, "no payload has three bytes");
    b.add(b"xab");
    b.add(b"cyz");
    assert_eq!(b.distinct(), 2, "xab and cyz only");
    b.add(b"XAB");
    b.add(b"abcABC");
    assert_eq!(b.distinct(), 5, "xab, cyz, abc, bca, cab");
    b.add("éé".as_bytes());
    assert_eq!(b.distinct(), 7, "c3 a9 c3 and a9 c3 a9");
}

#[test]
fn an_empty_group_rules_out_every_needle() {
    let filter = filter_of(&[&b""[..], b"{}", b"ab"]);
    assert_eq!(filter.len(), FILTER_HEADER_LEN);
    assert_eq!(filter, [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(check(&filter), Ok(()));
    assert!(!may(&filter, b"{}\""));
}

#[test]
fn finishing_resets_the_builder_for_the_next_group() {
    let second: [&[u8]; 2] = [br#"{"pid":1}"#, br#"{"title":"Terminal"}"#];
    let mut b = FilterBuilder::new();
    b.add(br#"{"app":"zqxjv Chrome Firefox Safari"}"#);
    let mut out = Vec::new();
    b.finish_into(&mut out);
    let first_len = out.len();
    for p in second {
        b.add(p);
    }
    let mut fresh = FilterBuilder::new();
    for p in second {
        fresh.add(p);
    }
    assert_eq!(b.distinct(), fresh.distinct());
    b.finish_into(&mut out);
    assert_eq!(
        filter_len(&out),
        Ok(first_len),
        "filters can be stored back to back"
    );
    assert_eq!(
        out[first_len..],
        filter_of(&second)[..],
        "nothing of the first group is left"
    );
    assert!(!may(&out[first_len..], b"zqxjv"));
}

#[test]
fn the_worked_example_of_the_spec_is_encoded_byte_for_byte() {
    // format-spec/filter-section.md, "Worked example": computed there by
    // tools/filter_sizing.py, an independent implementation of the section.
    let filter = filter_of(&[&br#"{"a":"Hi"}"#[..], b"hi!"]);
    let hex: String = filter.iter().fold(String::new(), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    });
    assert_eq!(hex, EXAMPLE_HEX);
}

/// The worked example's filter in hex (see the test above).
const EXAMPLE_HEX: &str = "05000000400000009be4543ab268ab81";

/// A valid filter of a few payloads, for the malformed-filter tests.
fn sample() -> Vec<u8> {
    filter_of(&[
        &br#"{"app":"Google Chrome","title":"Inbox"}"#[..],
        b"hello world",
    ])
}

#[test]
fn every_malformed_header_is_refused_by_both_readers() {
    let good = sample();
    let probe = FilterProbe::new(b"chrome").expect("probe");
    let with = |i: usize, v: u8| {
        let mut f = good.clone();
        f[i] = v;
        f
    };
    let m_bits = |v: u32| {
        let mut f = good.clone();
        f[4..8].copy_from_slice(&v.to_le_bytes());
        f
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with(0, 0), "filter hash count not 1 to 16"),
        (with(0, 17), "filter hash count not 1 to 16"),
        (with(0, 255), "filter hash count not 1 to 16"),
        (with(1, 1), "filter reserved bytes not zero"),
        (with(2, 0x80), "filter reserved bytes not zero"),
        (with(3, 1), "filter reserved bytes not zero"),
        (m_bits(65), "filter bit count not a multiple of 64"),
        (m_bits(8), "filter bit count not a multiple of 64"),
        (m_bits(FILTER_BITS_MAX + 64), "filter bit count over 2^28"),
        (m_bits(!63), "filter bit count over 2^28"),
        (m_bits(0), "filter length does not match its bit count"),
        (m_bits(64), "filter length does not match its bit count"),
        (
            [&good[..], &[0]].concat(),
            "filter length does not match its bit count",
        ),
    ];
    for (bytes, reason) in cases {
        assert_eq!(may_contain(&bytes, &probe), Err(reason), "{bytes:?}");
        assert_eq!(check(&bytes), Err(reason), "{bytes:?}");
    }
    // Any hash count from 1 to 16 is valid, whatever this writer uses.
    for k in 1..=16 {
        assert_eq!(check(&with(0, k)), Ok(()));
        assert!(may_contain(&with(0, k), &probe).is_ok());
    }
    let mut blank = good.clone();
    blank[FILTER_HEADER_LEN..].fill(0);
    assert_eq!(check(&blank), Err("filter has bits but none set"));
    assert_eq!(may_contain(&blank, &probe), Ok(false));
}

#[test]
fn every_truncation_is_refused() {
    let good = sample();
    let probe = FilterProbe::new(b"hello").expect("probe");
    assert_eq!(may_contain(&good, &probe), Ok(true));
    for len in 0..good.len() {
        let cut = &good[..len];
        let reason = if len < FILTER_HEADER_LEN {
            "filter shorter than its header"
        } else {
            "filter length does not match its bit count"
        };
        assert_eq!(may_contain(cut, &probe), Err(reason), "{len}");
        assert_eq!(check(cut), Err(reason), "{len}");
        assert_eq!(filter_len(cut), Err(reason), "{len}");
    }
}

#[test]
fn filters_get_ten_bits_per_trigram_within_four_bytes_per_payload() {
    // (distinct trigrams, payloads) -> (hashes, bits): 10 bits per trigram when the budget
    // allows, the budget of 32 bits per payload when it binds, 4 bits per trigram at least.
    assert_eq!(sizing(0, 0), (1, 0));
    assert_eq!(sizing(0, 1_000), (1, 0));
    assert_eq!(
        sizing(1, 1),
        (16, 64),
        "64 bits for one trigram: hashes capped at 16"
    );
    assert_eq!(sizing(1_000, 10_000), (7, 10_048));
    assert_eq!(
        sizing(9_516, 2_696),
        (6, 86_272),
        "the bench workload's 1 MiB group"
    );
    assert_eq!(sizing(1_000, 200), (4, 6_400));
    assert_eq!(
        sizing(1_000, 100),
        (3, 4_032),
        "the floor of 4 bits per trigram"
    );
    assert_eq!(sizing(1 << 24, 1), (3, 1 << 26));
    assert_eq!(sizing(1 << 24, usize::MAX), (7, 10 << 24));
}

#[test]
fn false_positive_rate_is_near_the_sizing() {
    // 2,000 distinct random trigrams in (one per payload, so 10 bits and 7 hashes each), 20,000
    // others probed. A lone trigram passes with probability (1 - e^(-7/10))^7 = 0.82%; a
    // 5-letter needle's three trigrams all pass with ~6e-7. The bounds are loose enough
    // that a correct filter fails them with negligible probability (the count passing is
    // ~164 +- 13), and tight enough to catch one that sets too many bits or probes too few.
    let mut rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    let mut inserted = std::collections::HashSet::new();
    let mut b = FilterBuilder::new();
    while inserted.len() < 2_000 {
        let t: [u8; 3] = [rng.random(), rng.random(), rng.random()];
        if inserted.insert(t.map(|c| c.to_ascii_lowercase())) {
            b.add(&t);
        }
    }
    let mut filter = Vec::new();
    b.finish_into(&mut filter);
    assert_eq!(filter[0], 7, "hashes");
    let (mut tried, mut passed) = (0u32, 0u32);
    while tried < 20_000 {
        let t: [u8; 3] = [rng.random(), rng.random(), rng.random()];
        if inserted.contains(&t.map(|c| c.to_ascii_lowercase())) {
            continue;
        }
        tried += 1;
        passed += u32::from(may(&filter, &t));
    }
    let rate = f64::from(passed) / f64::from(tried);
    assert!(
        (0.005..0.013).contains(&rate),
        "trigram false-positive rate {rate}"
    );
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let passed5 = (0..20_000)
        .filter(|_| {
            let n: Vec<u8> = (0..5).map(|_| letters[rng.random_range(0..26)]).collect();
            may(&filter, &n)
        })
        .count();
    assert!(
        passed5 < 10,
        "{passed5} of 20,000 five-letter needles passed"
    );
}

/// A payload over an alphabet small enough that near misses and overlaps are common, with
/// both cases, JSON punctuation, escapes and multi-byte UTF-8.
fn payload() -> impl Strategy<Value = String> {
    "[aAbBcCzZ\"\\\\:{}é日 ]{0,40}"
}

proptest! {
    /// No false negatives: a needle cut from one payload of a random group, its ASCII letters'
    /// case flipped at random, may always be contained, and the search's own matcher agrees
    /// that it matches.
    #[test]
    fn no_false_negatives(
        payloads in prop::collection::vec(payload(), 1..20),
        pick in any::<prop::sample::Index>(),
        start in any::<prop::sample::Index>(),
        len in 3usize..12,
        flips in prop::collection::vec(any::<bool>(), 12),
    ) {
        let filter = filter_of(&payloads);
        prop_assert_eq!(check(&filter), Ok(()));
        let p = payloads[pick.index(payloads.len())].as_bytes();
        prop_assume!(p.len() >= 3);
        let len = len.min(p.len());
        let start = start.index(p.len() - len + 1);
        let needle: Vec<u8> = p[start..start + len]
            .iter()
            .zip(&flips)
            .map(|(&c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let text = String::from_utf8_lossy(&needle).into_owned();
        if text.as_bytes() == needle.as_slice() {
            prop_assert!(TextMatcher::new(&text).is_match(p));
        }
        let probe = FilterProbe::new(&needle).expect("3 bytes or more");
        prop_assert_eq!(may_contain(&filter, &probe), Ok(true));
    }

    /// Whatever the search matches in a group, the group's filter lets through.
    #[test]
    fn agrees_with_the_search_matcher(
        payloads in prop::collection::vec(payload(), 1..8),
        needle in "[aAbBcCzZ\"\\\\:é ]{3,6}",
    ) {
        let filter = filter_of(&payloads);
        let matcher = TextMatcher::new(&needle);
        if payloads.iter().any(|p| matcher.is_match(p.as_bytes())) {
            let probe = FilterProbe::new(needle.as_bytes()).expect("3 bytes or more");
            prop_assert_eq!(may_contain(&filter, &probe), Ok(true));
        }
    }

    /// Arbitrary bytes are refused or answered; never a panic, and both readers agree on
    /// whether the header is well formed.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let probe = FilterProbe::new(b"abcd").expect("probe");
        let answer = may_contain(&bytes, &probe);
        match check(&bytes) {
            Ok(()) => prop_assert!(answer.is_ok()),
            Err("filter has bits but none set") => prop_assert_eq!(answer, Ok(false)),
            Err(reason) => prop_assert_eq!(answer, Err(reason)),
        }
    }
}
