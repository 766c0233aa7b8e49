//! Python values to JSON text, for an event's `data` and a pattern's `pattern_data`.
//!
//! The store keeps data as JSON text. Python callers hand over values (dicts, lists,
//! strings, numbers, booleans, `None`), which are written here directly as compact JSON,
//! several times faster than calling `json.dumps`. The text is what
//! `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` writes except in two
//! places: floats written with an exponent (ryu's `1e300`, not `1e+300`) and the control
//! characters `\u0008` and `\u000c` (not `\b`, `\f`). Since the content hash covers this
//! text, it must never change: the same event appended by another version would no longer
//! be recognised as a duplicate. Anything JSON cannot hold is refused with the
//! place it was found (`data['when']`): NaN and infinities, lone surrogates, objects of
//! other types, and nesting deeper than the library's JSON parser accepts.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deepest nesting accepted: the library validates data with `serde_json`, whose parser
/// stops at 128 levels; refusing here names the place instead, and bounds the recursion.
pub const DEPTH_MAX: usize = 127;

/// Why a value has no JSON form: where it was found (filled in while unwinding) and what
/// it was.
pub struct JsonError {
    /// Path segments from the inside out, e.g. `['when']`, `[3]`.
    path: Vec<String>,
    what: String,
}

impl JsonError {
    fn new(what: impl Into<String>) -> JsonError {
        JsonError {
            path: Vec::new(),
            what: what.into(),
        }
    }

    /// The message for an `InvalidEventError`: field `root` and the place inside it.
    pub fn message(&self, root: &str) -> String {
        let mut place = root.to_owned();
        for p in self.path.iter().rev() {
            place.push_str(p);
        }
        format!(
            "invalid event: field `{root}` cannot be stored as JSON: {place} {}",
            self.what
        )
    }
}

/// Writes `value` as compact JSON text to `out`.
///
/// # Errors
/// A [`JsonError`] naming the place and the reason when part of `value` has no JSON form.
pub fn write_value(value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    write(value, out, 0)
}

fn write(v: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
    // The exact built-in types first: each test is one comparison of type pointers, where
    // the tests below (which accept subclasses too) each call into Python under the
    // stable ABI. Both give the same text for the same value.
    if let Ok(s) = v.cast_exact::<PyString>() {
        return write_str(s, out);
    }
    if let Ok(d) = v.cast_exact::<PyDict>() {
        return write_dict(d, out, depth);
    }
    if let Ok(i) = v.cast_exact::<PyInt>() {
        return write_int(i, out);
    }
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        return write_float(f.value(), out);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return write_str(s, out);
    }
    if v.is_none() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    if let Ok(b) = v.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
        return Ok(());
    }
    if let Ok(i) = v.cast::<PyInt>() {
        return write_int(i, out);
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return write_float(f.value(), out);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        return write_dict(d, out, depth);
    }
    check_depth(depth)?;
    let items = |out: &mut Vec<u8>, iter: &mut dyn Iterator<Item = Bound<'_, PyAny>>| {
        out.push(b'[');
        for (n, item) in iter.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write(&item, out, depth + 1).map_err(|mut e| {
                e.path.push(format!("[{n}]"));
                e
            })?;
        }
        out.push(b']');
        Ok(())
    };
    if let Ok(l) = v.cast::<PyList>() {
        return items(out, &mut l.iter());
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return items(out, &mut t.iter());
    }
    let type_name = v
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    Err(JsonError::new(format!(
        "is a {type_name}, which JSON cannot hold: convert it to a str, number, bool, None, list or dict"
    )))
}

/// Refuses a container at `depth`, nested too deeply.
fn check_depth(depth: usize) -> Result<(), JsonError> {
    if depth >= DEPTH_MAX {
        return Err(JsonError::new(format!(
            "is nested more than {DEPTH_MAX} levels deep (or contains itself)"
        )));
    }
    Ok(())
}

fn write_dict(d: &Bound<'_, PyDict>, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
    check_depth(depth)?;
    out.push(b'{');
    for (n, (k, val)) in d.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_key(&k, out)?;
        out.push(b':');
        write(&val, out, depth + 1).map_err(|mut e| {
            let key = k
                .str()
                .map_or_else(|_| "?".to_owned(), |s| s.to_string_lossy().into_owned());
            e.path.push(format!("[{key:?}]"));
            e
        })?;
    }
    out.push(b'}');
    Ok(())
}

/// A dict key as JSON object keys are: a string. Like `json.dumps`, numbers, booleans and
/// `None` become their JSON text.
fn write_key(k: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    if let Ok(s) = k.cast::<PyString>() {
        return write_str(s, out);
    }
    let scalar = k.is_none()
        || k.cast::<PyBool>().is_ok()
        || k.cast::<PyInt>().is_ok()
        || k.cast::<PyFloat>().is_ok();
    if scalar {
        let mut text = Vec::new();
        write(k, &mut text, 0)?;
        out.push(b'"');
        out.extend_from_slice(&text);
        out.push(b'"');
        return Ok(());
    }
    let repr = k
        .repr()
        .map_or_else(|_| "?".to_owned(), |r| r.to_string_lossy().into_owned());
    Err(JsonError::new(format!(
        "has the key {repr}: JSON object keys are strings (numbers, booleans and None are converted)"
    )))
}

fn write_str(s: &Bound<'_, PyString>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    // Encoded by Python straight into a bytes object, escaped from there: one copy.
    let bytes = s.encode_utf8().map_err(|_| {
        JsonError::new(
            "is a str holding a lone surrogate, which UTF-8 (and so JSON text) cannot hold",
        )
    })?;
    write_escaped(bytes.as_bytes(), out);
    Ok(())
}

fn write_int(i: &Bound<'_, PyInt>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    if let Ok(n) = i.extract::<i64>() {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        return Ok(());
    }
    // Beyond 64 bits: Python's own decimal text (JSON numbers have no size limit, and
    // `json.loads` reads it back as the same int).
    let text = i
        .call_method0("__index__")
        .and_then(|n| n.str())
        .map_err(|e| JsonError::new(format!("is an int that cannot be written as decimal: {e}")))?;
    out.extend_from_slice(text.to_string_lossy().as_bytes());
    Ok(())
}

fn write_float(f: f64, out: &mut Vec<u8>) -> Result<(), JsonError> {
    if !f.is_finite() {
        return Err(JsonError::new(format!(
            "is the float {f}, which JSON cannot hold (only finite numbers)"
        )));
    }
    // The shortest text that reads back as the same float, always with a `.` or an
    // exponent, so that it is read back as a float and not an int.
    out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    Ok(())
}

/// Which bytes a JSON string must escape: 0 none, else the letter of a short escape or
/// `u` for `\u00XX`.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Bytes per block of [`clean_prefix_len`]: one `u64`.
const BLOCK_LEN: usize = 8;

/// Whether the eight bytes of `block` hold one to escape: a control character, `"` or
/// `\\`, each tested for all eight bytes at once with the carry tricks of "Bit Twiddling
/// Hacks" (a byte below n: `(x - n * ONES) & !x & HIGHS`; a zero byte: the same with n = 1).
#[inline]
fn escapes(block: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |x: u64, n: u64| x.wrapping_sub(n * ONES) & !x & HIGHS;
    let control = below(block, 0x20);
    let quote = below(block ^ (u64::from(b'"') * ONES), 1);
    let backslash = below(block ^ (u64::from(b'\\') * ONES), 1);
    control | quote | backslash != 0
}

/// The length of a prefix of `s` with no byte to escape: all of `s` when it has none,
/// else at least the whole [`BLOCK_LEN`]-byte blocks before the first such byte.
fn clean_prefix_len(s: &[u8]) -> usize {
    let mut blocks = s.chunks_exact(BLOCK_LEN);
    let mut len = 0;
    for block in &mut blocks {
        let block = u64::from_ne_bytes(block.try_into().expect("chunks_exact gives whole blocks"));
        if escapes(block) {
            return len;
        }
        len += BLOCK_LEN;
    }
    let rest = blocks.remainder();
    let rest_clean = if rest.is_empty() {
        true
    } else if let Some(last) = s.last_chunk::<BLOCK_LEN>() {
        // The last eight bytes, overlapping the blocks already tested.
        !escapes(u64::from_ne_bytes(*last))
    } else {
        // Shorter than a block, as most keys are.
        rest.iter().all(|&b| ESCAPE[b as usize] == 0)
    };
    if rest_clean {
        s.len()
    } else {
        len
    }
}

/// `s` (UTF-8) as a JSON string literal: quotes, backslashes and control characters
/// escaped, everything else copied in runs.
pub fn write_escaped(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    // Most strings need no escape at all: whole blocks are copied until the first that
    // holds a byte to escape, from which on the bytes are looked at one by one.
    let clean = clean_prefix_len(s);
    out.extend_from_slice(&s[..clean]);
    let mut start = clean;
    for (i, &b) in s.iter().enumerate().skip(clean) {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}
