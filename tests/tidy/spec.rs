//! The byte tables of `format-spec/FORMAT.md` against the code. Each layout table
//! (`| offset | size | type | field | meaning |`) is walked over bytes that the code's
//! encoder produced, or that a real store wrote: every row must start where the previous
//! one ended, hold the value the test put in that field, and the last row must end where
//! the structure does. Magics, versions and the bytes each CRC covers are read from the
//! rows too, and the lengths, offsets and kinds the code keeps as constants (through the
//! hidden `selflog::fuzzing` module) are compared with the tables and the prose around
//! them. Every layout table of the spec must be walked by one of these tests.

use std::collections::BTreeMap;
use std::ops::Range;

use selflog::fuzzing as f;

use super::root;

/// One row of a layout table: `| offset | size | type | field | meaning |`.
#[derive(Debug, Clone)]
struct Row {
    offset: String,
    size: String,
    ty: String,
    field: String,
    meaning: String,
    line: usize,
}

/// A table of the spec with the heading it sits under and the paragraph just before it.
#[derive(Debug, Clone)]
struct Table {
    heading: String,
    before: String,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    lines: Vec<usize>,
    line: usize,
}

impl Table {
    fn is_layout(&self) -> bool {
        self.columns == ["offset", "size", "type", "field", "meaning"]
    }

    fn layout_rows(&self) -> Vec<Row> {
        self.rows
            .iter()
            .zip(&self.lines)
            .map(|(cells, &line)| Row {
                offset: cells[0].clone(),
                size: cells[1].clone(),
                ty: cells[2].clone(),
                field: cells[3].trim_matches('`').to_owned(),
                meaning: cells[4].clone(),
                line,
            })
            .collect()
    }

    fn name(&self) -> String {
        format!("FORMAT.md:{} ({})", self.line, self.heading)
    }
}

fn spec() -> String {
    std::fs::read_to_string(root().join("format-spec/FORMAT.md")).unwrap()
}

fn cells(line: &str) -> Vec<String> {
    let line = line.trim().replace("\\|", "\u{1}");
    let inner = line
        .strip_prefix('|')
        .and_then(|l| l.strip_suffix('|'))
        .unwrap_or(&line);
    inner
        .split('|')
        .map(|c| c.trim().replace('\u{1}', "|"))
        .collect()
}

fn tables(spec: &str) -> Vec<Table> {
    let lines: Vec<&str> = spec.lines().collect();
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with('#') {
            l.trim_start_matches('#').trim().clone_into(&mut heading);
        }
        let starts = l.starts_with('|')
            && lines
                .get(i + 1)
                .is_some_and(|n| n.starts_with("|---") || n.starts_with("| ---"));
        if !starts {
            i += 1;
            continue;
        }
        let mut before = Vec::new();
        let mut k = i;
        while k > 0 && lines[k - 1].trim().is_empty() {
            k -= 1;
        }
        while k > 0 && !lines[k - 1].trim().is_empty() {
            k -= 1;
            before.push(lines[k]);
        }
        before.reverse();
        let mut table = Table {
            heading: heading.clone(),
            before: before.join(" "),
            columns: cells(l),
            rows: Vec::new(),
            lines: Vec::new(),
            line: i + 1,
        };
        i += 2;
        while i < lines.len() && lines[i].starts_with('|') {
            table.rows.push(cells(lines[i]));
            table.lines.push(i + 1);
            i += 1;
        }
        out.push(table);
    }
    out
}

/// The layout table under `heading` whose first row is `first_field`.
fn layout<'a>(all: &'a [Table], heading: &str, first_field: &str) -> &'a Table {
    all.iter()
        .filter(|t| t.is_layout() && t.heading == heading)
        .find(|t| {
            t.layout_rows()
                .first()
                .is_some_and(|r| r.field == first_field)
        })
        .unwrap_or_else(|| {
            panic!("FORMAT.md has no table under {heading:?} opening with {first_field:?}")
        })
}

/// Evaluates a size or offset such as `64 + 64 × buckets`, `footer_len − 4` or
/// `` `body_len` ``; `None` for `…`, `rest`, ranges and anything else.
fn eval(expr: &str, vars: &[(&str, usize)]) -> Option<usize> {
    let expr = expr.replace('`', "").replace('−', "-").replace('×', "*");
    let mut terms = vec![(true, String::new())];
    for c in expr.chars() {
        match c {
            '+' => terms.push((true, String::new())),
            '-' => terms.push((false, String::new())),
            c => terms.last_mut()?.1.push(c),
        }
    }
    let mut sum = 0usize;
    for (plus, term) in terms {
        let mut product = 1usize;
        for factor in term.split('*').map(str::trim) {
            let value = factor
                .parse::<usize>()
                .ok()
                .or_else(|| vars.iter().find(|(n, _)| *n == factor).map(|&(_, v)| v))?;
            product *= value;
        }
        sum = if plus {
            sum + product
        } else {
            sum.checked_sub(product)?
        };
    }
    Some(sum)
}

/// A range of byte counts such as `1–10`.
fn range(size: &str) -> Option<(usize, usize)> {
    let (a, b) = size.split_once('–')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The first integer in `text`.
fn first_integer(text: &str) -> Option<u64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A varint at the start of `b`: its value and length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// A test's own check of a field's bytes.
type FieldCheck<'a> = Box<dyn Fn(&[u8]) -> Result<(), String> + 'a>;

/// What a test expects in one field of a structure.
enum Want<'a> {
    /// The field's number, read as the row's type says.
    N(i128),
    /// Every byte zero.
    Zero,
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// Anything (checked by the walk's generic rules or elsewhere).
    Any,
    /// A field whose size the table gives as `…`: this many bytes.
    Span(usize),
    /// A CRC-32 of this range of the structure, which must be the range the row names, if
    /// it names one.
    Crc(Range<usize>),
    /// A CRC-32 of these two ranges, the first as for `Crc`.
    CrcOf(Range<usize>, Range<usize>),
    /// A check of the field's bytes.
    Check(FieldCheck<'a>),
    /// The encoding has no such field: the row must say when it is present ("only if").
    Absent,
}

/// Field name -> where the walk found it.
type Found = BTreeMap<String, Range<usize>>;

/// Walks `bytes`, one encoded structure, along the rows of `table`, checking every row
/// against `wants` and the rules that hold for every table; returns where each field is.
/// Problems are added to `errors`.
fn walk(
    table: &Table,
    bytes: &[u8],
    vars: &[(&str, usize)],
    wants: &[(&str, Want<'_>)],
    errors: &mut Vec<String>,
) -> Found {
    let rows = table.layout_rows();
    let mut found = Found::new();
    let mut pos = 0usize;
    let mut variable = false;
    for (n, row) in rows.iter().enumerate() {
        let at = format!(
            "FORMAT.md:{} ({}, field `{}`)",
            row.line, table.heading, row.field
        );
        let mut err = |m: String| errors.push(format!("{at}: {m}"));
        let Some((_, want)) = wants.iter().find(|(f, _)| *f == row.field) else {
            err("the test does not know this field".into());
            return found;
        };
        if matches!(want, Want::Absent) {
            if !row.meaning.contains("only if") {
                err("absent from an encoding, but the row does not say when it is present".into());
            }
            continue;
        }
        match eval(&row.offset, vars) {
            Some(o) if o != pos => err(if row.offset == o.to_string() {
                format!("starts at {o}, but the field before it ends at {pos}")
            } else {
                format!(
                    "starts at {} = {o}, but the field before it ends at {pos}",
                    row.offset
                )
            }),
            Some(_) => {}
            None if row.offset == "…" && !variable => {
                err("offset `…` though every size before it is fixed".into());
            }
            None if row.offset == "…" => {}
            None => err(format!("cannot read offset {:?}", row.offset)),
        }
        let last = n + 1 == rows.len();
        let rest = bytes.get(pos..).unwrap_or_default();
        let Some((len, variable_len)) = field_len(row, want, rest, last, vars, &mut err) else {
            return found;
        };
        variable |= variable_len;
        let Some(field) = bytes.get(pos..pos + len) else {
            err(format!(
                "{len} bytes at {pos} run past the end of the {}-byte structure",
                bytes.len()
            ));
            return found;
        };
        check_value(row, want, field, bytes, vars, &mut err);
        check_rules(row, want, field, &mut err);
        found.entry(row.field.clone()).or_insert(pos..pos + len);
        pos += len;
    }
    if pos != bytes.len() {
        errors.push(format!(
            "{}: the rows end at {pos}, the encoded structure at {}",
            table.name(),
            bytes.len()
        ));
    }
    for (name, want) in wants {
        if !matches!(want, Want::Absent) && !rows.iter().any(|r| r.field == *name) {
            errors.push(format!("{}: no row for field `{name}`", table.name()));
        }
    }
    found
}

/// Bytes of a fixed-size type.
fn width(ty: &str) -> Option<usize> {
    match ty {
        "u8" => Some(1),
        "u16" => Some(2),
        "u32" => Some(4),
        "u64" | "i64" => Some(8),
        _ => None,
    }
}

/// The length of `row`'s field at the start of `rest` (the structure from the field on),
/// and whether that length varies; `None` when it cannot be told.
fn field_len(
    row: &Row,
    want: &Want<'_>,
    rest: &[u8],
    last: bool,
    vars: &[(&str, usize)],
    err: &mut dyn FnMut(String),
) -> Option<(usize, bool)> {
    if let Some(len) = eval(&row.size, vars) {
        if width(&row.ty).is_some_and(|w| w != len) {
            err(format!("size {len} for a {}", row.ty));
        }
        return Some((len, false));
    }
    if let Some((lo, hi)) = range(&row.size) {
        let type_range = if row.ty.contains("(u32)") {
            (1, 5)
        } else {
            (1, 10)
        };
        if !row.ty.contains("varint") || (lo, hi) != type_range {
            err(format!(
                "size {} for a {}: a varint takes {}–{} bytes",
                row.size, row.ty, type_range.0, type_range.1
            ));
        }
        let Some((_, len)) = varint(rest) else {
            err("no varint here".into());
            return None;
        };
        return Some((len, true));
    }
    if row.size == "rest" {
        if !last {
            err("size `rest` on a row that is not the last".into());
        }
        return Some((rest.len(), true));
    }
    if let Want::Span(len) = want {
        return Some((*len, true));
    }
    err(format!("cannot read size {:?}", row.size));
    None
}

/// The field's number, read as the row's type says.
fn number(row: &Row, field: &[u8]) -> Option<i128> {
    if row.ty.contains("varint") {
        let (v, _) = varint(field)?;
        if row.ty.contains("zigzag") {
            Some(i128::from(
                (v >> 1).cast_signed() ^ -((v & 1).cast_signed()),
            ))
        } else {
            Some(i128::from(v))
        }
    } else if row.ty == "i64" {
        Some(i128::from(le(field).cast_signed()))
    } else {
        width(&row.ty).map(|_| i128::from(le(field)))
    }
}

/// Checks a field against what the test wants in it.
fn check_value(
    row: &Row,
    want: &Want<'_>,
    field: &[u8],
    bytes: &[u8],
    vars: &[(&str, usize)],
    err: &mut dyn FnMut(String),
) {
    let crc = |ranges: &[&Range<usize>], err: &mut dyn FnMut(String)| {
        let mut h = crc32fast::Hasher::new();
        for &r in ranges {
            h.update(&bytes[r.clone()]);
        }
        if le(field) != u64::from(h.finalize()) {
            err(format!("is not the CRC-32 of bytes {ranges:?}"));
        }
        if let Some(named) = named_range(&row.meaning, vars) {
            if ranges.first() != Some(&&named) {
                err(format!(
                    "the row names bytes {named:?}, the encoder covers {ranges:?}"
                ));
            }
        }
    };
    match want {
        Want::N(v) => {
            if number(row, field) != Some(*v) {
                err(format!(
                    "holds {:?}, the encoder wrote {v}",
                    number(row, field)
                ));
            }
        }
        Want::Zero => {
            if let Some(i) = field.iter().position(|&b| b != 0) {
                err(format!(
                    "not zero: byte {i} of the field is {:#04x}",
                    field[i]
                ));
            }
        }
        Want::Bytes(b) => {
            if field != b.as_slice() {
                err(format!("holds {field:02x?}, expected {b:02x?}"));
            }
        }
        Want::Crc(r) => crc(&[r], err),
        Want::CrcOf(a, b) => crc(&[a, b], err),
        Want::Check(check) => {
            if let Err(m) = check(field) {
                err(m);
            }
        }
        Want::Any | Want::Span(_) | Want::Absent => {}
    }
}

/// The rules every table keeps: a magic is the bytes its row gives (twice: as text and in
/// hex); a version or stride is the number its row gives; a reserved field is zero.
fn check_rules(row: &Row, want: &Want<'_>, field: &[u8], err: &mut dyn FnMut(String)) {
    if row.field == "magic" {
        let (spec_magic, spec_hex) = magic_of(&row.meaning);
        if spec_magic != field {
            err(format!(
                "the row says {spec_magic:02x?}, the encoder wrote {field:02x?}"
            ));
        }
        if spec_hex.as_ref().is_some_and(|h| h != &spec_magic) {
            err(format!("the row's hex {spec_hex:02x?} is not its magic"));
        }
    }
    if row.field == "version" || row.field == "stride" {
        let said = first_integer(&row.meaning).map(i128::from);
        if said != number(row, field) {
            err(format!(
                "the row says {said:?}, the encoder wrote {:?}",
                number(row, field)
            ));
        }
    }
    let reserved = row.field == "reserved"
        || row.meaning.starts_with("reserved")
        || row.meaning == "0"
        || row.meaning.starts_with("MUST be 0");
    if reserved && !matches!(want, Want::Zero) && field.iter().any(|&b| b != 0) {
        err(format!("reserved, but the encoder wrote {field:02x?}"));
    }
}

/// The range a CRC row names: `bytes 0..28`, `` `0..footer_len − 4` ``.
fn named_range(meaning: &str, vars: &[(&str, usize)]) -> Option<Range<usize>> {
    let dots = meaning.find("..")?;
    let start_at = meaning[..dots]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let start = meaning[start_at..dots].parse().ok()?;
    let rest = &meaning[dots + 2..];
    let end_text = match rest.find('`') {
        Some(p)
            if meaning[..dots].ends_with(|c: char| c.is_ascii_digit())
                && meaning[..start_at].ends_with('`') =>
        {
            &rest[..p]
        }
        _ => rest.split_whitespace().next()?,
    };
    Some(start..eval(end_text, vars)?)
}

/// A magic as the row gives it: the first `code` span (with `\0` for a zero byte), and the
/// hex bytes in parentheses after it, if any.
fn magic_of(meaning: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut spans = meaning.split('`').skip(1).step_by(2);
    let magic = spans.next().unwrap_or("").replace("\\0", "\0").into_bytes();
    let hex = spans.next().and_then(|h| {
        h.split_whitespace()
            .map(|x| u8::from_str_radix(x, 16).ok())
            .collect::<Option<Vec<u8>>>()
    });
    (magic, hex)
}

fn finish(errors: &[String]) {
    assert!(
        errors.is_empty(),
        "FORMAT.md disagrees with the code:\n  {}",
        errors.join("\n  ")
    );
}

fn expect(errors: &mut Vec<String>, ok: bool, what: impl Into<String>) {
    if !ok {
        errors.push(what.into());
    }
}

#[test]
fn spec_title_and_crc_agree_with_the_code() {
    let spec = spec();
    let title = spec.lines().next().unwrap();
    assert_eq!(
        title,
        format!("# selflog on-disk format, version {}", f::FORMAT_VERSION)
    );
    assert_eq!(selflog::FORMAT_VERSION, f::FORMAT_VERSION);
    assert!(
        spec.contains("`123456789`"),
        "the CRC check input is stated"
    );
    assert!(
        spec.contains("is `0xCBF43926`"),
        "the CRC check value is stated"
    );
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
}

#[test]
fn store_meta_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let t = layout(&all, "Store meta", "magic");
    let meta = f::StoreMeta {
        version: f::FORMAT_VERSION,
        created_us: 0x0102_0304_0506_0708,
    };
    let bytes = meta.encode();
    let mut errors = Vec::new();
    expect(&mut errors, bytes.len() == f::META_LEN, "META_LEN");
    let found = walk(
        t,
        &bytes,
        &[],
        &[
            ("magic", Want::Bytes(f::META_MAGIC.to_vec())),
            ("version", Want::N(f::FORMAT_VERSION.into())),
            ("flags", Want::Zero),
            ("created_us", Want::N(0x0102_0304_0506_0708)),
            ("reserved", Want::Zero),
            ("crc", Want::Crc(0..28)),
        ],
        &mut errors,
    );
    expect(&mut errors, found.len() == 6, "six fields");
    let section = section_text(&spec(), "Store meta");
    expect(
        &mut errors,
        section.contains(&format!("exactly {} bytes", f::META_LEN)),
        format!(
            "Store meta: does not say it is exactly {} bytes",
            f::META_LEN
        ),
    );
    finish(&errors);
}

/// The text under a `##` heading, up to the next one.
fn section_text(spec: &str, heading: &str) -> String {
    let start = spec
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("FORMAT.md has no section {heading:?}"));
    let rest = &spec[start + 4..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

#[test]
fn segment_header_fixed_part_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    // A distinct value in every field.
    let header = f::SegmentHeader {
        version: f::FORMAT_VERSION,
        stream_kind: 1,
        segment_id: 0x0A0B_0C0D,
        base_id: 0x1112_1314_1516_1718,
        base_timestamp_us: 0x2122_2324_2526_2728,
        segment_len: 0x3132_3334_3536_3738,
        created_us: 0x4142_4344_4546_4748,
    };
    let fixed = header.encode();
    walk(
        layout(&all, "Segment header", "magic"),
        &fixed,
        &[],
        &[
            ("magic", Want::Bytes(f::SEGMENT_MAGIC.to_vec())),
            ("version", Want::N(f::FORMAT_VERSION.into())),
            ("stream_kind", Want::N(1)),
            ("reserved", Want::Zero),
            ("segment_id", Want::N(0x0A0B_0C0D)),
            ("base_id", Want::N(0x1112_1314_1516_1718)),
            ("base_timestamp_us", Want::N(0x2122_2324_2526_2728)),
            ("segment_len", Want::N(0x3132_3334_3536_3738)),
            ("created_us", Want::N(0x4142_4344_4546_4748)),
            ("header_crc", Want::Crc(0..60)),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        fixed.len() == f::FIXED_HEADER_LEN,
        "FIXED_HEADER_LEN is the encoded fixed part's length",
    );

    finish(&errors);
}

/// The whole header, as a real store wrote it: slot A holds the segment's creation (and
/// later odd sequences), slot B its first publication.
#[test]
fn segment_header_table_agrees_with_the_constants_and_a_real_segment() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = selflog::Config::default();
    config.sidecars = false;
    let store = selflog::Store::open(dir.path(), config).unwrap();
    store.append(sample_event(0)).unwrap();
    store.flush().unwrap();
    store.close().unwrap();
    let file = std::fs::read(dir.path().join("events-00000001.seg")).unwrap();
    let slot = |odd: bool| {
        move |b: &[u8]| match f::CommitSlot::decode(b) {
            Ok(Some(s)) if s.sequence % 2 == u64::from(odd) => Ok(()),
            other => Err(format!(
                "not a slot with an {} sequence: {other:?}",
                if odd { "odd" } else { "even" }
            )),
        }
    };
    let t = layout(&all, "Segment header", "fixed part");
    let found = walk(
        t,
        &file[..f::SEGMENT_HEADER_LEN],
        &[],
        &[
            (
                "fixed part",
                Want::Check(Box::new(|b| {
                    f::SegmentHeader::decode(b)
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}"))
                })),
            ),
            ("slot A", Want::Check(Box::new(slot(true)))),
            ("slot B", Want::Check(Box::new(slot(false)))),
            ("reserved", Want::Zero),
        ],
        &mut errors,
    );
    let rows = t.layout_rows();
    expect(
        &mut errors,
        rows[1].meaning.contains("odd") && rows[2].meaning.contains("even"),
        "slot A is said to take odd sequences, slot B even ones",
    );
    expect(
        &mut errors,
        found.get("fixed part") == Some(&(0..f::FIXED_HEADER_LEN)),
        format!(
            "fixed part at {:?}, FIXED_HEADER_LEN {}",
            found.get("fixed part"),
            f::FIXED_HEADER_LEN
        ),
    );
    for (name, offset) in [
        ("slot A", f::SLOT_OFFSETS[0]),
        ("slot B", f::SLOT_OFFSETS[1]),
    ] {
        expect(
            &mut errors,
            found.get(name) == Some(&(offset..offset + f::COMMIT_SLOT_LEN)),
            format!(
                "{}: {name} at {:?}, SLOT_OFFSETS and COMMIT_SLOT_LEN say {:?}",
                t.name(),
                found.get(name),
                offset..offset + f::COMMIT_SLOT_LEN
            ),
        );
    }
    let prose = section_text(&spec(), "Segment header");
    expect(
        &mut errors,
        prose.contains(&format!(
            "The first {} bytes of every segment file",
            f::SEGMENT_HEADER_LEN
        )) && prose.contains(&format!(
            "The first frame starts at file offset {}.",
            f::SEGMENT_HEADER_LEN
        )),
        "Segment header: the prose gives SEGMENT_HEADER_LEN",
    );
    let slots = section_text(&spec(), "Commit slot");
    expect(
        &mut errors,
        slots.contains(&format!(
            "A at file offset {} and B at file offset {}",
            f::SLOT_OFFSETS[0],
            f::SLOT_OFFSETS[1]
        )),
        "Commit slot: the prose gives SLOT_OFFSETS",
    );
    finish(&errors);
}

fn sample_event(i: i64) -> selflog::Event {
    selflog::Event::new(
        selflog::Timestamp(1_732_460_000_000_000 + i),
        "file_op",
        Some("modified"),
        "Finder",
        Some(&format!(r#"{{"i":{i}}}"#)),
    )
    .unwrap()
}

#[test]
fn commit_slot_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let slot = f::CommitSlot {
        sequence: 0x0102_0304_0506_0708,
        committed_len: 0x1112_1314_1516_1718,
        durable_len: 0x0112_1314_1516_1718,
        event_count: 0x3132_3334_3536_3738,
        last_id: 0x4142_4344_4546_4748,
        commit_time_us: 0x5152_5354_5556_5758,
        sealed: true,
    };
    let bytes = slot.encode();
    let mut errors = Vec::new();
    let t = layout(&all, "Commit slot", "sequence");
    walk(
        t,
        &bytes,
        &[],
        &[
            ("sequence", Want::N(0x0102_0304_0506_0708)),
            ("committed_len", Want::N(0x1112_1314_1516_1718)),
            ("durable_len", Want::N(0x0112_1314_1516_1718)),
            ("event_count", Want::N(0x3132_3334_3536_3738)),
            ("last_id", Want::N(0x4142_4344_4546_4748)),
            ("commit_time_us", Want::N(0x5152_5354_5556_5758)),
            ("flags", Want::N(f::SLOT_FLAG_SEALED.into())),
            ("slot_crc", Want::Crc(0..52)),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        bytes.len() == f::COMMIT_SLOT_LEN,
        "COMMIT_SLOT_LEN",
    );
    let flags = t
        .layout_rows()
        .into_iter()
        .find(|r| r.field == "flags")
        .unwrap();
    let bit = flags
        .meaning
        .split_once(": sealed")
        .and_then(|(b, _)| first_integer(b));
    expect(
        &mut errors,
        bit.is_some_and(|b| 1u32 << b == f::SLOT_FLAG_SEALED),
        format!(
            "{}: sealed is bit {bit:?}, SLOT_FLAG_SEALED is {}",
            t.name(),
            f::SLOT_FLAG_SEALED
        ),
    );
    finish(&errors);
}

#[test]
fn frame_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let full = full_event_frame();
    let frame = f::encode_event_frame_with(&full);
    let len = frame.len();
    let found = walk(
        layout(&all, "Frame", "body_len"),
        &frame,
        &[("body_len", len - 8)],
        &[
            ("body_len", Want::N((len - 8) as i128)),
            ("frame_crc", Want::CrcOf(0..4, 8..len)),
            (
                "body",
                Want::Check(Box::new(|b| {
                    (b[0] & f::KIND_MASK == f::KIND_EVENT)
                        .then_some(())
                        .ok_or_else(|| "not an event body".to_owned())
                })),
            ),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        found.get("body").map(|r| r.start) == Some(f::FRAME_HEADER_LEN),
        "FRAME_HEADER_LEN is where the body starts",
    );

    finish(&errors);
}

/// An event frame with every optional field.
fn full_event_frame() -> f::EventFrame<'static> {
    f::EventFrame {
        id_delta: 300,
        ts_delta: -5000,
        type_ref: 7,
        source_ref: 130,
        action_ref: Some(9),
        hash: 0x0123_4567_89ab_cdef,
        payload: Some(b"\x01\x02 an lz4 block, as far as the encoder cares"),
        raw_len: Some(4321),
    }
}

/// The event body: with every optional field, with data but no compression, and bare.
#[test]
fn event_frame_body_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let full = full_event_frame();
    let body_table = layout(&all, "Event frame body", "flags");
    let plain = f::EventFrame {
        raw_len: None,
        payload: Some(b"{}"),
        ..full
    };
    let bare = f::EventFrame {
        action_ref: None,
        payload: None,
        raw_len: None,
        ..full
    };
    for (frame, flags) in [
        (
            full,
            f::KIND_EVENT | f::FLAG_ACTION | f::FLAG_DATA | f::FLAG_LZ4,
        ),
        (plain, f::KIND_EVENT | f::FLAG_ACTION | f::FLAG_DATA),
        (bare, f::KIND_EVENT),
    ] {
        let bytes = f::encode_event_frame_with(&frame);
        let opt = |v: Option<u32>| v.map_or(Want::Absent, |v| Want::N(v.into()));
        walk(
            body_table,
            &bytes[f::FRAME_HEADER_LEN..],
            &[],
            &[
                ("flags", Want::N(flags.into())),
                ("id_delta", Want::N(frame.id_delta.into())),
                ("ts_delta", Want::N(frame.ts_delta.into())),
                ("type_ref", Want::N(frame.type_ref.into())),
                ("source_ref", Want::N(frame.source_ref.into())),
                ("action_ref", opt(frame.action_ref)),
                ("hash", Want::N(frame.hash.into())),
                ("raw_len", opt(frame.raw_len)),
                (
                    "payload",
                    frame
                        .payload
                        .map_or(Want::Absent, |p| Want::Bytes(p.to_vec())),
                ),
            ],
            &mut errors,
        );
    }

    finish(&errors);
}

#[test]
fn string_definition_body_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let string = f::encode_string_frame(200, "Finder");
    let t = layout(&all, "String definition frame body", "flags");
    walk(
        t,
        &string[f::FRAME_HEADER_LEN..],
        &[],
        &[
            ("flags", Want::N(f::KIND_STRING.into())),
            ("string_ref", Want::N(200)),
            ("text", Want::Bytes(b"Finder".to_vec())),
        ],
        &mut errors,
    );
    let said = t.layout_rows()[0]
        .meaning
        .split("`0x")
        .nth(1)
        .and_then(|h| u8::from_str_radix(&h[..2], 16).ok());
    expect(
        &mut errors,
        said == Some(f::KIND_STRING),
        format!("{}: flags said to be {said:?}", t.name()),
    );

    finish(&errors);
}

/// The flags byte, bit by bit.
#[test]
fn frame_flags_table_agrees_with_the_constants() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let bits = all
        .iter()
        .find(|t| t.heading == "Frame" && t.columns == ["bits", "name", "meaning"])
        .expect("the frame's flags table");
    let mask = |bits: &str| -> u8 {
        let (lo, hi) = range(bits).unwrap_or_else(|| {
            let b = bits.parse().unwrap();
            (b, b)
        });
        (lo..=hi).fold(0, |m, b| m | 1 << b)
    };
    let mut seen = 0u8;
    for (row, line) in bits.rows.iter().zip(&bits.lines) {
        let m = mask(&row[0]);
        expect(
            &mut errors,
            seen & m == 0,
            format!("FORMAT.md:{line}: bits overlap"),
        );
        seen |= m;
        let want = match row[1].as_str() {
            "kind" => f::KIND_MASK,
            "lz4" => f::FLAG_LZ4,
            "action" => f::FLAG_ACTION,
            "data" => f::FLAG_DATA,
            "reserved" => !f::FLAGS_KNOWN,
            other => {
                errors.push(format!("FORMAT.md:{line}: unknown flag {other}"));
                continue;
            }
        };
        expect(
            &mut errors,
            m == want,
            format!(
                "FORMAT.md:{line}: `{}` is bits {:#010b}, the code {want:#010b}",
                row[1], m
            ),
        );
        if row[1] == "kind" {
            expect(
                &mut errors,
                row[2].contains(&format!("{} = event", f::KIND_EVENT))
                    && row[2].contains(&format!("{} = string definition", f::KIND_STRING)),
                format!("FORMAT.md:{line}: kinds disagree with KIND_EVENT, KIND_STRING"),
            );
        }
    }
    expect(&mut errors, seen == 0xff, "the flags table covers bits 0–7");
    finish(&errors);
}

#[test]
fn footer_and_section_tables_agree_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let footer = sample_footer();
    let bytes = footer.encode();
    let len = bytes.len();
    let sections_len = len - f::FOOTER_FIXED_LEN;
    let t = layout(&all, "Footer", "magic");
    let found = walk(
        t,
        &bytes,
        &[("footer_len", len)],
        &[
            ("magic", Want::Bytes(f::FOOTER_MAGIC.to_vec())),
            ("footer_len", Want::N(len as i128)),
            ("section_count", Want::N(f::SECTION_KINDS.len() as i128)),
            ("sections", Want::Span(sections_len)),
            ("footer_crc", Want::Crc(0..len - 4)),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        found.get("sections").map(|r| r.start) == Some(f::FOOTER_FIXED_LEN - 4),
        "FOOTER_FIXED_LEN: the sections follow 16 bytes and the CRC's 4",
    );
    let rows = t.layout_rows();
    expect(
        &mut errors,
        rows[1]
            .meaning
            .contains(&format!("≥ {}", f::FOOTER_FIXED_LEN))
            && rows[2]
                .meaning
                .contains(&format!("writes 4 to {}", f::SECTION_KINDS.len())),
        format!(
            "{}: footer_len ≥ FOOTER_FIXED_LEN, a writer writes up to 8 sections",
            t.name()
        ),
    );

    // Each section, in kind order; the kinds' names as the spec gives them.
    let section_table = layout(&all, "Footer", "kind");
    let named: Vec<(u16, String)> = section_table.layout_rows()[0]
        .meaning
        .split(", ")
        .map(|p| {
            let (n, name) = p.split_once(' ').unwrap_or((p, ""));
            (n.parse().unwrap_or(0), name.to_owned())
        })
        .collect();
    let code: Vec<(u16, String)> = f::SECTION_KINDS
        .iter()
        .map(|&(k, n)| (k, n.to_owned()))
        .collect();
    expect(
        &mut errors,
        named == code,
        format!(
            "{}: section kinds {named:?}, the code's {code:?}",
            section_table.name()
        ),
    );
    let mut bodies = BTreeMap::new();
    let mut pos = 16;
    for &(kind, name) in &f::SECTION_KINDS {
        let body_len = le(&bytes[pos + 4..pos + 8]) as usize;
        let end = pos + f::SECTION_HEADER_LEN + body_len;
        let found = walk(
            section_table,
            &bytes[pos..end],
            &[("body_len", body_len)],
            &[
                ("kind", Want::N(kind.into())),
                ("flags", Want::Zero),
                ("body_len", Want::N(body_len as i128)),
                ("body", Want::Any),
            ],
            &mut errors,
        );
        expect(
            &mut errors,
            found.get("body").map(|r| r.start) == Some(f::SECTION_HEADER_LEN),
            "SECTION_HEADER_LEN",
        );
        bodies.insert(name, &bytes[pos + f::SECTION_HEADER_LEN..end]);
        pos = end;
    }
    expect(&mut errors, pos == len - 4, "the sections fill the footer");
    finish(&errors);
}

/// A footer with every section and a distinct value in every field.
fn sample_footer() -> f::Footer {
    let summary = f::Summary {
        event_count: 0x0101_0101_0101_0101,
        first_id: 0x0202_0202_0202_0202,
        last_id: 0x0303_0303_0303_0303,
        min_ts_us: 0x0404_0404_0404_0404,
        max_ts_us: 0x0505_0505_0505_0505,
        first_commit_us: 0x0606_0606_0606_0606,
        last_commit_us: 0x0707_0707_0707_0707,
        compressed_count: 0x0808_0808_0808_0808,
        data_raw_bytes: 0x0909_0909_0909_0909,
        data_stored_bytes: 0x0a0a_0a0a_0a0a_0a0a,
    };
    let block = |i: u8| f::Block {
        first_id: u64::from_le_bytes([0x10 + i; 8]),
        last_id: u64::from_le_bytes([0x20 + i; 8]),
        offset: u64::from_le_bytes([0x30 + i; 8]),
        len: u32::from_le_bytes([0x40 + i; 4]),
        event_count: u32::from_le_bytes([0x50 + i; 4]),
        min_ts_us: i64::from_le_bytes([0x60 + i; 8]),
        max_ts_us: i64::from_le_bytes([0x70 + i; 8]),
    };
    let points: Vec<u16> = (1..=14).map(|p| p * 0x0101).collect();
    f::Footer {
        summary,
        strings: vec!["file_op".into(), "Finder".into()],
        blocks: vec![block(1), block(2)],
        type_counts: vec![(0, 5)],
        postings: Some(vec![(0, vec![0, 1]), (1, vec![1])]),
        source_counts: Some(vec![(1, 5)]),
        action_counts: Some(vec![(1, 3), (2, 2)]),
        checkpoints: Some(points),
    }
}

/// The body of each section of an encoded footer, by kind name.
fn section_bodies(footer: &[u8]) -> BTreeMap<&'static str, &[u8]> {
    let mut bodies = BTreeMap::new();
    let mut pos = 16;
    while pos + 4 < footer.len() {
        let kind = le(&footer[pos..pos + 2]) as u16;
        let body_len = le(&footer[pos + 4..pos + 8]) as usize;
        let body = &footer[pos + f::SECTION_HEADER_LEN..pos + f::SECTION_HEADER_LEN + body_len];
        let (_, name) = f::SECTION_KINDS.iter().find(|(k, _)| *k == kind).unwrap();
        bodies.insert(*name, body);
        pos += f::SECTION_HEADER_LEN + body_len;
    }
    bodies
}

/// The summary, a block entry, the type counts and the checkpoints, inside their sections.
#[test]
fn footer_section_body_tables_agree_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let footer = sample_footer();
    let bytes = footer.encode();
    let bodies = section_bodies(&bytes);
    let s = &footer.summary;
    let t = layout(&all, "Footer", "event_count");
    walk(
        t,
        bodies["summary"],
        &[],
        &[
            ("event_count", Want::N(s.event_count.into())),
            ("first_id", Want::N(s.first_id.into())),
            ("last_id", Want::N(s.last_id.into())),
            ("min_ts_us", Want::N(s.min_ts_us.into())),
            ("max_ts_us", Want::N(s.max_ts_us.into())),
            ("first_commit_us", Want::N(s.first_commit_us.into())),
            ("last_commit_us", Want::N(s.last_commit_us.into())),
            ("compressed_count", Want::N(s.compressed_count.into())),
            ("data_raw_bytes", Want::N(s.data_raw_bytes.into())),
            ("data_stored_bytes", Want::N(s.data_stored_bytes.into())),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        bodies["summary"].len() == f::SUMMARY_LEN
            && t.before.contains(&format!(
                "(kind {}), {} bytes",
                f::SECTION_KINDS[0].0,
                f::SUMMARY_LEN
            )),
        format!("{}: the summary is SUMMARY_LEN bytes", t.name()),
    );

    let t = layout(&all, "Footer", "first_id");
    let blocks = bodies["blocks"];
    expect(
        &mut errors,
        blocks.len() == 4 + 2 * f::BLOCK_LEN && le(&blocks[..4]) == 2,
        "blocks: a count, then BLOCK_LEN bytes per block",
    );
    for (i, b) in footer.blocks.iter().enumerate() {
        let entry = &blocks[4 + i * f::BLOCK_LEN..4 + (i + 1) * f::BLOCK_LEN];
        walk(
            t,
            entry,
            &[],
            &[
                ("first_id", Want::N(b.first_id.into())),
                ("last_id", Want::N(b.last_id.into())),
                ("offset", Want::N(b.offset.into())),
                ("len", Want::N(b.len.into())),
                ("event_count", Want::N(b.event_count.into())),
                ("min_ts_us", Want::N(b.min_ts_us.into())),
                ("max_ts_us", Want::N(b.max_ts_us.into())),
            ],
            &mut errors,
        );
    }
    expect(
        &mut errors,
        t.before
            .contains(&format!("one {}-byte entry", f::BLOCK_LEN)),
        format!("{}: the prose gives BLOCK_LEN", t.name()),
    );

    let counts = section_text(&spec(), "Footer");
    expect(
        &mut errors,
        counts.contains(&format!(
            "one {}-byte entry per event type",
            f::TYPE_COUNT_LEN
        )) && bodies["type counts"].len() == 4 + f::TYPE_COUNT_LEN,
        "type counts: TYPE_COUNT_LEN bytes per entry",
    );

    finish(&errors);
}

#[test]
fn checkpoints_table_agrees_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let footer = sample_footer();
    let bytes = footer.encode();
    let bodies = section_bodies(&bytes);
    let t = layout(&all, "Footer", "stride");
    let points = footer.checkpoints.as_ref().unwrap();
    let le_points: Vec<u8> = points.iter().flat_map(|p| p.to_le_bytes()).collect();
    walk(
        t,
        bodies["checkpoints"],
        &[("block_count", 2)],
        &[
            ("stride", Want::N(f::CHECKPOINT_STRIDE.into())),
            ("block_count", Want::N(2)),
            ("points", Want::Bytes(le_points)),
        ],
        &mut errors,
    );
    let points_row = t
        .layout_rows()
        .into_iter()
        .find(|r| r.field == "points")
        .unwrap();
    expect(
        &mut errors,
        points_row.ty == format!("u16 × {} per block", f::CHECKPOINT_SLOTS)
            && points_row
                .meaning
                .contains(&format!("{} entries", f::CHECKPOINT_SLOTS)),
        format!("{}: CHECKPOINT_SLOTS entries per block", t.name()),
    );
    finish(&errors);
}

#[test]
fn cursor_counters_and_dedup_image_tables_agree_with_files_a_store_writes() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = selflog::Config::default();
    config.sidecars = false;
    config.dedup_window = 8;
    // A full window of 8, and a duplicate so that `counters` is written.
    let store = selflog::Store::open(dir.path().join("a"), config.clone()).unwrap();
    for i in 0..20 {
        store.append(sample_event(i)).unwrap();
    }
    store.append(sample_event(19)).unwrap();
    store.flush().unwrap();
    let newest_hash = store.get(selflog::EventId(20)).unwrap().unwrap().hash;
    store.close().unwrap();
    // A cursor at a distinctive id.
    let store = selflog::Store::open(dir.path().join("b"), config).unwrap();
    let id = selflog::EventId(0x0011_2233_4455_6677);
    store.append_with_id(id, sample_event(100)).unwrap();
    store.flush().unwrap();
    store.cursor("tidy").unwrap().commit(id).unwrap();
    store.close().unwrap();

    let t = layout(&all, "Cursors", "magic");
    let cursor = std::fs::read(dir.path().join("b/cursors/tidy")).unwrap();
    let counters = std::fs::read(dir.path().join("a/counters")).unwrap();
    for (bytes, position) in [(&cursor, id.0), (&counters, 1)] {
        walk(
            t,
            bytes,
            &[],
            &[
                ("magic", Want::Any),
                ("version", Want::Any),
                ("reserved", Want::Zero),
                ("position", Want::N(position.into())),
                ("crc", Want::Crc(0..28)),
            ],
            &mut errors,
        );
    }
    expect(
        &mut errors,
        section_text(&spec(), "Cursors").contains(&format!("exactly {} bytes", cursor.len())),
        "Cursors: the prose gives the file's length",
    );
    let counters_text = section_text(&spec(), "Counters");
    let count_at = t
        .layout_rows()
        .iter()
        .find(|r| r.field == "position")
        .map(|r| r.offset.clone());
    expect(
        &mut errors,
        counters_text.contains(&format!(
            "the count at offset {}",
            count_at.unwrap_or_default()
        )),
        "Counters: the count is where a cursor's position is",
    );

    let t = layout(&all, "Dedup window image", "magic");
    let image = std::fs::read(dir.path().join("a/dedup.window")).unwrap();
    let len = image.len();
    let buckets = 8usize.div_ceil(4);
    walk(
        t,
        &image,
        &[("buckets", buckets), ("end", len)],
        &[
            ("magic", Want::Any),
            ("version", Want::Any),
            ("reserved", Want::Zero),
            ("capacity", Want::N(8)),
            ("buckets", Want::N(buckets as i128)),
            (
                "base_id",
                Want::Check(Box::new(|b| {
                    (le(b) >= 1)
                        .then_some(())
                        .ok_or_else(|| "base_id 0".to_owned())
                })),
            ),
            ("newest_id", Want::N(20)),
            ("newest_hash", Want::N(newest_hash.into())),
            ("header_crc", Want::Crc(0..60)),
            ("entries", Want::Any),
            ("overflow", Want::Any),
            ("body_crc", Want::Crc(64..len - 4)),
        ],
        &mut errors,
    );
    let prose = section_text(&spec(), "Dedup window image");
    let stated = prose
        .split_once("The file is exactly `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .and_then(|(expr, _)| eval(expr, &[("buckets", buckets)]));
    expect(
        &mut errors,
        stated == Some(len),
        format!("Dedup window image: the stated length is {stated:?}, the file {len} bytes"),
    );
    finish(&errors);
}

/// The index image table against the image a clean close left beside a real segment: the
/// head names that segment and the frame it ends at, and the index is a footer of the
/// segment's frames.
#[test]
fn segment_index_image_table_agrees_with_a_file_a_store_writes() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = selflog::Config::default();
    config.sidecars = false;
    let store = selflog::Store::open(dir.path(), config).unwrap();
    for i in 0..40 {
        store.append(sample_event(i)).unwrap();
    }
    store.close().unwrap();
    let segment = std::fs::read(dir.path().join("events-00000001.seg")).unwrap();
    let image = std::fs::read(dir.path().join("events-00000001.idx")).unwrap();
    let len = image.len();
    let (head, index) = f::decode_image(&image).unwrap();
    let committed = usize::try_from(u64::from_le_bytes(
        segment[64 + 8..64 + 16].try_into().unwrap(),
    ))
    .unwrap()
    .max(
        usize::try_from(u64::from_le_bytes(
            segment[120 + 8..120 + 16].try_into().unwrap(),
        ))
        .unwrap(),
    );
    let last_frame = usize::try_from(head.last_frame_offset).unwrap();
    let t = layout(&all, "Segment index image", "magic");
    walk(
        t,
        &image,
        &[("index_len", len - f::IMAGE_HEAD_LEN)],
        &[
            ("magic", Want::Bytes(f::IMAGE_MAGIC.to_vec())),
            ("version", Want::N(f::IMAGE_VERSION.into())),
            ("flags", Want::N(f::IMAGE_FLAG_CLEAN.into())),
            ("segment_id", Want::N(1)),
            ("segment_header_crc", Want::Bytes(segment[60..64].to_vec())),
            ("covered_len", Want::N(committed as i128)),
            ("last_frame_offset", Want::Any),
            (
                "last_frame_crc",
                Want::Bytes(segment[last_frame + 4..last_frame + 8].to_vec()),
            ),
            ("index_len", Want::N((len - f::IMAGE_HEAD_LEN) as i128)),
            ("index_crc", Want::Bytes(image[len - 4..].to_vec())),
            ("head_crc", Want::Crc(0..52)),
            ("index", Want::Span(len - f::IMAGE_HEAD_LEN)),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        index.summary.event_count == 40 && index.postings.is_some(),
        "Segment index image: the index is the segment's, with postings",
    );
    let body_len = u32::from_le_bytes(segment[last_frame..last_frame + 4].try_into().unwrap());
    expect(
        &mut errors,
        last_frame + 8 + body_len as usize == committed,
        "Segment index image: the last frame ends at covered_len",
    );
    let prose = section_text(&spec(), "Segment index image");
    let stated = prose
        .split_once("The file is exactly `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .and_then(|(expr, _)| eval(expr, &[("index_len", len - f::IMAGE_HEAD_LEN)]));
    expect(
        &mut errors,
        stated == Some(len),
        format!("Segment index image: the stated length is {stated:?}, the file {len} bytes"),
    );
    finish(&errors);
}

/// The manifest a closed store of three small segments wrote, and those segments.
fn a_written_manifest() -> (Vec<u8>, Vec<selflog::SegmentInfo>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = selflog::Config::default();
    config.sidecars = false;
    config.segment_len = 64 << 10;
    config.data_len_max = 16 << 10;
    let store = selflog::Store::open(dir.path(), config).unwrap();
    let mut i = 0;
    while store.stats().unwrap().segments < 3 {
        for _ in 0..100 {
            i += 1;
            store.append(sample_event(i)).unwrap();
        }
        store.flush().unwrap();
    }
    store.close().unwrap();
    let segments = selflog::Store::open_read_only(dir.path())
        .unwrap()
        .segments()
        .unwrap();
    let bytes = std::fs::read(dir.path().join(f::MANIFEST_FILE)).unwrap();
    (bytes, segments)
}

#[test]
fn segment_manifest_tables_agree_with_a_file_a_store_writes() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let (bytes, segments) = a_written_manifest();
    let last_id = segments.last().unwrap().ids.unwrap().1 .0;
    let len = bytes.len();
    let count = segments.len();

    let t = layout(&all, "Segment manifest", "magic");
    let found = walk(
        t,
        &bytes,
        &[("entry_count", count), ("end", len)],
        &[
            ("magic", Want::Bytes(f::MANIFEST_MAGIC.to_vec())),
            ("version", Want::N(f::MANIFEST_VERSION.into())),
            ("entry_count", Want::N(count as i128)),
            // A clean close lowers the high-water to the last id and records it.
            ("id_high_water", Want::N(last_id.into())),
            ("durable_last_id", Want::N(last_id.into())),
            ("flags", Want::N(f::MANIFEST_FLAG_EXACT.into())),
            ("header_crc", Want::Crc(0..36)),
            ("entries", Want::Any),
            ("entries_crc", Want::Crc(f::MANIFEST_HEADER_LEN..len - 4)),
        ],
        &mut errors,
    );
    expect(
        &mut errors,
        found.get("entries").map(|r| r.start) == Some(f::MANIFEST_HEADER_LEN),
        "Segment manifest: entries start at MANIFEST_HEADER_LEN",
    );
    let prose = section_text(&spec(), "Segment manifest");
    let stated = prose
        .split_once("The file is exactly `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .and_then(|(expr, _)| eval(expr, &[("entry_count", count)]));
    expect(
        &mut errors,
        stated == Some(len),
        format!("Segment manifest: the stated length is {stated:?}, the file {len} bytes"),
    );

    let t = layout(&all, "Segment manifest", "segment_id");
    for (k, s) in segments.iter().enumerate() {
        let at = f::MANIFEST_HEADER_LEN + k * f::MANIFEST_ENTRY_LEN;
        let entry = &bytes[at..at + f::MANIFEST_ENTRY_LEN];
        let (first, last) = s.ids.unwrap();
        let (lo, hi) = s.time_range.unwrap();
        let sealed = s.sealed;
        walk(
            t,
            entry,
            &[],
            &[
                ("segment_id", Want::N(s.segment_id.into())),
                (
                    "flags",
                    Want::N(if sealed {
                        f::ENTRY_FLAG_SEALED.into()
                    } else {
                        0
                    }),
                ),
                ("first_id", Want::N(first.0.into())),
                ("last_id", Want::N(if sealed { last.0.into() } else { 0 })),
                (
                    "event_count",
                    Want::N(if sealed { s.events.into() } else { 0 }),
                ),
                (
                    "min_ts_us",
                    if sealed {
                        Want::N(lo.0.into())
                    } else {
                        Want::Any
                    },
                ),
                (
                    "max_ts_us",
                    if sealed {
                        Want::N(hi.0.into())
                    } else {
                        Want::Any
                    },
                ),
            ],
            &mut errors,
        );
    }
    finish(&errors);
}

/// The block filter's table walked over the encoder's filter of the section's worked
/// example. The section lives in `format-spec/filter-section.md` until it is pasted into
/// FORMAT.md (then add `("Block filter", "hashes")` to the list of checked tables below).
#[test]
fn block_filter_table_agrees_with_the_encoder() {
    let in_spec = spec().contains("### Block filter");
    let text = if in_spec {
        spec()
    } else {
        std::fs::read_to_string(root().join("format-spec/filter-section.md")).unwrap()
    };
    let all = tables(&text);
    let mut errors = Vec::new();
    let mut builder = f::BlockFilterBuilder::new();
    builder.add(br#"{"a":"Hi"}"#);
    builder.add(b"hi!");
    let mut filter = Vec::new();
    builder.finish_into(&mut filter);
    let t = layout(&all, "Block filter", "hashes");
    walk(
        t,
        &filter,
        &[("m_bits", 64)],
        &[
            ("hashes", Want::N(5)),
            ("reserved", Want::Zero),
            ("m_bits", Want::N(64)),
            ("bits", Want::Span(8)),
        ],
        &mut errors,
    );
    // The worked example's hex dump is the encoder's filter.
    let dump: Vec<u8> = text
        .split("**Worked example.** The group of the two payloads")
        .nth(1)
        .and_then(|example| example.split("```").nth(1))
        .map(|dump| {
            dump.split_whitespace()
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .collect()
        })
        .unwrap_or_default();
    expect(
        &mut errors,
        dump == filter,
        format!("worked example {dump:02x?}, encoder {filter:02x?}"),
    );
    finish(&errors);
}

/// The compacted segment's layout record, block table and filter table walked over the
/// encoder's bytes. `format-spec/FORMAT.md#compacted-segments`
#[test]
fn compacted_segment_tables_agree_with_the_encoder() {
    let all = tables(&spec());
    let mut errors = Vec::new();
    let v: [u64; 11] = [
        0x0102_0304_0506_0708,
        0x1112_1314_1516_1718,
        0x2122_2324,
        0x3132_3334,
        0x4142_4344_4546_4748,
        0x5152_5354,
        0x6162_6364,
        0x7172_7374_7576_7778,
        0x8182_8384,
        0x9192_9394,
        9,
    ];
    let record = f::encode_layout_record(v);
    walk(
        layout(&all, "Header", "logical_len"),
        &record,
        &[],
        &[
            ("logical_len", Want::N(v[0].into())),
            ("dict_offset", Want::N(v[1].into())),
            ("dict_len", Want::N(v[2].into())),
            ("block_count", Want::N(v[3].into())),
            ("table_offset", Want::N(v[4].into())),
            ("table_crc", Want::N(v[5].into())),
            ("dict_crc", Want::N(v[6].into())),
            ("filter_table_offset", Want::N(v[7].into())),
            ("filter_count", Want::N(v[8].into())),
            ("filter_table_crc", Want::N(v[9].into())),
            ("level", Want::N(9)),
            ("reserved", Want::Zero),
            ("layout_crc", Want::Crc(0..76)),
        ],
        &mut errors,
    );
    let e: [u64; 8] = [
        0x0102_0304_0506_0708,
        0x1112_1314_1516_1718,
        0x2122_2324,
        0x3132_3334,
        0x4142_4344,
        0x5152_5354,
        0x6162_6364,
        0x7172_7374,
    ];
    let entry = f::encode_block_table_entry(e);
    let names = [
        "logical_start",
        "stored_offset",
        "logical_len",
        "packed_len",
        "stored_len",
        "strings_before",
        "stored_crc",
        "logical_crc",
    ];
    let wants: Vec<(&str, Want<'_>)> = names
        .iter()
        .zip(e)
        .map(|(n, x)| (*n, Want::N(x.into())))
        .collect();
    walk(
        layout(&all, "Block table", "logical_start"),
        &entry,
        &[],
        &wants,
        &mut errors,
    );
    let fe: [u64; 5] = [
        0x0102_0304,
        0x1112_1314,
        0x2122_2324_2526_2728,
        0x3132_3334,
        0x4142_4344,
    ];
    let fentry = f::encode_filter_table_entry(fe);
    let names = ["first_block", "block_count", "offset", "len", "crc"];
    let wants: Vec<(&str, Want<'_>)> = names
        .iter()
        .zip(fe)
        .map(|(n, x)| (*n, Want::N(x.into())))
        .collect();
    walk(
        layout(&all, "Filter table", "first_block"),
        &fentry,
        &[],
        &wants,
        &mut errors,
    );
    finish(&errors);
}

/// Every layout table of the spec is one the tests above walk, so a new structure cannot
/// be specified without being checked.
#[test]
fn every_layout_table_of_the_spec_is_checked() {
    let checked = [
        ("Store meta", "magic"),
        ("Cursors", "magic"),
        ("Dedup window image", "magic"),
        ("Segment index image", "magic"),
        ("Segment manifest", "magic"),
        ("Segment manifest", "segment_id"),
        ("Segment header", "fixed part"),
        ("Segment header", "magic"),
        ("Commit slot", "sequence"),
        ("Frame", "body_len"),
        ("Event frame body", "flags"),
        ("String definition frame body", "flags"),
        ("Footer", "magic"),
        ("Footer", "kind"),
        ("Footer", "event_count"),
        ("Footer", "first_id"),
        ("Footer", "stride"),
        ("Header", "logical_len"),
        ("Block table", "logical_start"),
        ("Filter table", "first_block"),
        ("Block filter", "hashes"),
    ];
    let all = tables(&spec());
    let layouts: Vec<(String, String)> = all
        .iter()
        .filter(|t| t.is_layout())
        .map(|t| (t.heading.clone(), t.layout_rows()[0].field.clone()))
        .collect();
    let unchecked: Vec<&(String, String)> = layouts
        .iter()
        .filter(|(h, f)| !checked.contains(&(h.as_str(), f.as_str())))
        .collect();
    assert!(unchecked.is_empty(), "tables no test walks: {unchecked:?}");
    assert_eq!(layouts.len(), checked.len(), "{layouts:?}");
    // A layout table with another header would escape the checks.
    for t in &all {
        let looks_like_layout = t.columns.first().is_some_and(|c| c == "offset");
        assert!(
            !looks_like_layout || t.is_layout(),
            "{}: columns {:?}",
            t.name(),
            t.columns
        );
    }
}

/// The expression reader and the walk's own rules, on a made-up table.
#[test]
fn the_table_walk_catches_gaps_and_wrong_values() {
    assert_eq!(eval("64 + 64 × buckets", &[("buckets", 2)]), Some(192));
    assert_eq!(eval("`footer_len − 4`", &[("footer_len", 100)]), Some(96));
    assert_eq!(eval("end − 4", &[("end", 10)]), Some(6));
    assert_eq!(eval("…", &[]), None);
    assert_eq!(named_range("CRC of bytes 0..28", &[]), Some(0..28));
    assert_eq!(
        named_range(
            "CRC of footer bytes `0..footer_len − 4`",
            &[("footer_len", 50)]
        ),
        Some(0..46)
    );
    let spec = "## T\n\n| offset | size | type | field | meaning |\n|---|---|---|---|---|\n\
                | 0 | 4 | u32 | a | x |\n| 6 | 2 | u16 | b | y |\n";
    let all = tables(spec);
    let mut errors = Vec::new();
    walk(
        &all[0],
        &[1, 0, 0, 0, 2, 0],
        &[],
        &[("a", Want::N(2)), ("b", Want::N(2))],
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("holds Some(1)"), "{errors:?}");
    assert!(errors[1].contains("starts at 6, but the field before it ends at 4"));
}
