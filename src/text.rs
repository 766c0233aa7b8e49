//! Text search: does a needle occur in a haystack, ASCII letters compared without case?
//! That is what `SQLite`'s `LIKE '%text%'` did for the old CLI's search (it folds ASCII only),
//! over the event type, action, source and the data's JSON text.
//!
//! One needle, searched in many short haystacks (a query builds one matcher, then tests
//! thousands of payloads of a few hundred bytes), so building must cost nothing: a
//! general multi-pattern automaton spent more time being built than searching in a query
//! that stops after ten rows. The search jumps (with `memchr2`, which is vectorised) to
//! each occurrence of the needle's rarest-looking byte in either case and compares the
//! needle around it.

/// A compiled search text.
#[derive(Debug, Clone)]
pub(crate) struct TextMatcher {
    /// The needle with ASCII letters lowercased.
    lower: Vec<u8>,
    /// Position in the needle of the byte searched for first.
    anchor: usize,
    /// That byte in lower and upper case (the same twice if it is not a letter).
    anchor_bytes: (u8, u8),
}

/// How common a byte is in desktop-activity JSON: higher is rarer. Letters follow their
/// English frequency; digits and JSON punctuation are common; anything else is rare.
fn rarity(b: u8) -> u32 {
    const LETTERS_COMMON_FIRST: &[u8] = b"etaoinsrhldcumfpgwybvkxjqz";
    let b = b.to_ascii_lowercase();
    if let Some(i) = LETTERS_COMMON_FIRST.iter().position(|&c| c == b) {
        return 10 + i as u32;
    }
    match b {
        b'"' | b':' | b',' | b' ' | b'/' | b'.' | b'_' | b'-' | b'0'..=b'9' => 0,
        _ => 40,
    }
}

impl TextMatcher {
    /// The needle, ASCII letters lowercased.
    pub fn needle(&self) -> &[u8] {
        &self.lower
    }

    /// A matcher for `text`.
    pub fn new(text: &str) -> TextMatcher {
        let lower = text.as_bytes().to_ascii_lowercase();
        let anchor = (0..lower.len())
            .max_by_key(|&i| (rarity(lower[i]), std::cmp::Reverse(i)))
            .unwrap_or(0);
        let b = lower.get(anchor).copied().unwrap_or(0);
        TextMatcher {
            anchor_bytes: (b, b.to_ascii_uppercase()),
            lower,
            anchor,
        }
    }

    /// Whether the text occurs in `hay` (an empty text occurs everywhere).
    pub fn is_match(&self, hay: &[u8]) -> bool {
        let n = self.lower.len();
        if n == 0 {
            return true;
        }
        if hay.len() < n {
            return false;
        }
        let (a, b) = self.anchor_bytes;
        // The anchor can only be at positions where the whole needle fits around it.
        let window = &hay[self.anchor..=hay.len() - n + self.anchor];
        let mut from = 0;
        while let Some(i) = memchr::memchr2(a, b, &window[from..]) {
            let start = from + i;
            if hay[start..start + n].eq_ignore_ascii_case(&self.lower) {
                return true;
            }
            from = start + 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::TextMatcher;

    /// The definition: some window of `hay` equals `text` ignoring ASCII case.
    fn naive(text: &str, hay: &[u8]) -> bool {
        let t = text.as_bytes();
        t.is_empty() || hay.windows(t.len()).any(|w| w.eq_ignore_ascii_case(t))
    }

    #[test]
    fn finds_text_anywhere_in_any_ascii_case() {
        let m = TextMatcher::new("Chrome");
        assert!(m.is_match(br#"{"app":"Google CHROME"}"#));
        assert!(m.is_match(b"chrome"));
        assert!(m.is_match(b"xxchromE"));
        assert!(!m.is_match(b"chrom"));
        assert!(!m.is_match(b"c h r o m e"));
        assert!(TextMatcher::new("").is_match(b""));
        assert!(!TextMatcher::new("a").is_match(b""));
    }

    #[test]
    fn non_ascii_is_compared_exactly() {
        let m = TextMatcher::new("ünï");
        assert!(m.is_match("xx ünïcødé".as_bytes()));
        assert!(
            !m.is_match("ÜNÏ".as_bytes()),
            "only ASCII letters fold, as in SQLite"
        );
    }

    proptest::proptest! {
        /// Agrees with the definition on texts and haystacks over a small alphabet (so
        /// that near misses and overlaps are common), whichever byte is the anchor.
        #[test]
        fn agrees_with_a_naive_search(
            text in "[aAbB\"é:]{0,5}",
            hay in "[aAbBcC\"é: ]{0,40}",
        ) {
            let m = TextMatcher::new(&text);
            proptest::prop_assert_eq!(m.is_match(hay.as_bytes()), naive(&text, hay.as_bytes()));
        }
    }
}
