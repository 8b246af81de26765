//! A fast path from JSON record values to Arrow columns, for the shape most
//! topics have: one object per record, read into scalar columns (integers,
//! floats, booleans, strings, timestamps).
//!
//! arrow-json tokenizes every value of a record onto its tape, the ones
//! the statement does not read included, before it builds the columns it
//! does. This reads each record once: a wanted key's value goes straight
//! into its column, any other value is skipped (validated, not kept).
//!
//! It is only a fast path. It takes the inputs arrow-json takes and gives
//! the same columns, for a strict subset: anything else (a value of another
//! JSON type than its column's, an escaped key, a duplicate key, a number
//! out of range, a malformed record) makes [`FastJson::decode`] return
//! `None`, and the caller decodes the poll with arrow-json, which applies
//! its coercions and finds the bad records with their reasons. A test
//! compares the two on generated records.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder,
    PrimitiveBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};

/// Nesting deeper than this in a skipped value falls back to arrow-json.
const MAX_DEPTH: usize = 64;

/// How a column's values are read.
#[derive(Debug, Clone)]
enum Kind {
    /// An integer column of this range; built as `Int64`, then cast.
    Int {
        min: i64,
        max: i64,
    },
    Float32,
    Float64,
    Boolean,
    Utf8,
    /// A timestamp from its text, as arrow-json parses it (in this zone
    /// when the string has no offset).
    Timestamp(TimeUnit, Option<arrow::array::timezone::Tz>),
}

/// The fast decoder of one physical schema.
#[derive(Debug)]
pub(crate) struct FastJson {
    schema: SchemaRef,
    names: Vec<Box<[u8]>>,
    kinds: Vec<Kind>,
}

enum Builder {
    Int(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    Timestamp(PrimitiveBuilder<arrow::datatypes::Int64Type>),
}

impl Builder {
    fn append_null(&mut self) {
        match self {
            Builder::Int(b) | Builder::Timestamp(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
        }
    }
}

impl FastJson {
    /// A fast decoder for `schema`, or `None` when a column's type is not
    /// one it reads.
    pub fn new(schema: &SchemaRef) -> Option<FastJson> {
        let mut kinds = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            kinds.push(match f.data_type() {
                DataType::Int8 => Kind::Int {
                    min: i8::MIN as i64,
                    max: i8::MAX as i64,
                },
                DataType::Int16 => Kind::Int {
                    min: i16::MIN as i64,
                    max: i16::MAX as i64,
                },
                DataType::Int32 => Kind::Int {
                    min: i32::MIN as i64,
                    max: i32::MAX as i64,
                },
                DataType::Int64 => Kind::Int {
                    min: i64::MIN,
                    max: i64::MAX,
                },
                DataType::Float32 => Kind::Float32,
                DataType::Float64 => Kind::Float64,
                DataType::Boolean => Kind::Boolean,
                DataType::Utf8 => Kind::Utf8,
                DataType::Timestamp(u, tz) => Kind::Timestamp(
                    *u,
                    match tz {
                        Some(tz) => Some(tz.parse().ok()?),
                        None => None,
                    },
                ),
                _ => return None,
            });
        }
        let names: Vec<Box<[u8]>> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_bytes().into())
            .collect();
        Some(FastJson {
            schema: schema.clone(),
            names,
            kinds,
        })
    }

    /// The columns of `values`, one row each, or `None` to fall back to
    /// arrow-json for them all.
    pub fn decode(&self, values: &[&[u8]]) -> Option<RecordBatch> {
        let n = values.len();
        let mut builders: Vec<Builder> = self
            .kinds
            .iter()
            .map(|k| match k {
                Kind::Int { .. } => Builder::Int(Int64Builder::with_capacity(n)),
                Kind::Float32 => Builder::Float32(Float32Builder::with_capacity(n)),
                Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(n)),
                Kind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(n)),
                Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(n, n * 16)),
                Kind::Timestamp(..) => Builder::Timestamp(Int64Builder::with_capacity(n)),
            })
            .collect();
        let mut seen = vec![false; self.kinds.len()];
        let mut scratch = String::new();
        for v in values {
            seen.iter_mut().for_each(|s| *s = false);
            // Validated once: every string in it is then UTF-8, as quotes
            // and backslashes cannot fall inside a multi-byte character.
            let text = std::str::from_utf8(v).ok()?;
            let mut c = Cursor {
                b: v,
                s: text,
                i: 0,
            };
            self.record(&mut c, &mut builders, &mut seen, &mut scratch)?;
            for (s, b) in seen.iter().zip(builders.iter_mut()) {
                if !*s {
                    b.append_null();
                }
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(builders.len());
        for (b, f) in builders.into_iter().zip(self.schema.fields()) {
            let a: ArrayRef = match b {
                Builder::Int(mut b) => {
                    let a: ArrayRef = Arc::new(b.finish());
                    if f.data_type() == &DataType::Int64 {
                        a
                    } else {
                        // Every value is in range: checked as it was read.
                        arrow::compute::cast(&a, f.data_type()).ok()?
                    }
                }
                Builder::Float32(mut b) => Arc::new(b.finish()),
                Builder::Float64(mut b) => Arc::new(b.finish()),
                Builder::Boolean(mut b) => Arc::new(b.finish()),
                Builder::Utf8(mut b) => Arc::new(b.finish()),
                Builder::Timestamp(mut b) => {
                    let values = b.finish();
                    arrow::array::make_array(
                        values
                            .into_data()
                            .into_builder()
                            .data_type(f.data_type().clone())
                            .build()
                            .ok()?,
                    )
                }
            };
            columns.push(a);
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .ok()
    }

    /// One record: an object and nothing after it.
    fn record(
        &self,
        c: &mut Cursor<'_>,
        builders: &mut [Builder],
        seen: &mut [bool],
        scratch: &mut String,
    ) -> Option<()> {
        c.ws();
        c.eat(b'{')?;
        c.ws();
        // Records of a topic mostly list their keys in one order: the key
        // after the last one found is tried first.
        let mut expected = 0;
        if c.peek()? == b'}' {
            c.i += 1;
        } else {
            loop {
                c.eat(b'"')?;
                let (start, end, escaped) = c.string()?;
                if escaped {
                    return None;
                }
                let key = &c.b[start..end];
                c.ws();
                c.eat(b':')?;
                c.ws();
                let found = match self.names.get(expected) {
                    Some(n) if n.as_ref() == key => Some(expected),
                    _ => self.names.iter().position(|n| n.as_ref() == key),
                };
                match found {
                    Some(j) => {
                        expected = j + 1;
                        if seen[j] {
                            return None;
                        }
                        seen[j] = true;
                        self.value(c, j, &mut builders[j], scratch)?;
                    }
                    None => c.skip(0)?,
                }
                c.ws();
                match c.next()? {
                    b',' => c.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        c.ws();
        (c.i == c.b.len()).then_some(())
    }

    /// A wanted key's value into its column.
    fn value(
        &self,
        c: &mut Cursor<'_>,
        j: usize,
        b: &mut Builder,
        scratch: &mut String,
    ) -> Option<()> {
        if c.peek()? == b'n' {
            c.literal(b"null")?;
            b.append_null();
            return Some(());
        }
        match (&self.kinds[j], b) {
            (Kind::Int { min, max }, Builder::Int(b)) => {
                let (start, end, integer) = c.number()?;
                if !integer {
                    return None;
                }
                let v = parse_int(&c.b[start..end])?;
                if v < *min || v > *max {
                    return None;
                }
                b.append_value(v);
            }
            (Kind::Float64, Builder::Float64(b)) => {
                let (start, end, _) = c.number()?;
                b.append_value(c.s.get(start..end)?.parse().ok()?);
            }
            (Kind::Float32, Builder::Float32(b)) => {
                let (start, end, _) = c.number()?;
                b.append_value(c.s.get(start..end)?.parse().ok()?);
            }
            (Kind::Boolean, Builder::Boolean(b)) => match c.peek()? {
                b't' => {
                    c.literal(b"true")?;
                    b.append_value(true);
                }
                b'f' => {
                    c.literal(b"false")?;
                    b.append_value(false);
                }
                _ => return None,
            },
            (Kind::Utf8, Builder::Utf8(b)) => {
                c.eat(b'"')?;
                b.append_value(c.text(scratch)?);
            }
            (Kind::Timestamp(unit, tz), Builder::Timestamp(b)) => {
                c.eat(b'"')?;
                let s = c.text(scratch)?;
                let v = match tz {
                    Some(tz) => timestamp(*unit, tz, s)?,
                    None => match utc_timestamp(*unit, s.as_bytes()) {
                        Some(v) => v,
                        None => timestamp(*unit, &chrono::Utc, s)?,
                    },
                };
                b.append_value(v);
            }
            _ => return None,
        }
        Some(())
    }
}

/// A timestamp as arrow-json reads one from a string.
fn timestamp<T: chrono::TimeZone>(unit: TimeUnit, tz: &T, s: &str) -> Option<i64> {
    let d = arrow::compute::kernels::cast_utils::string_to_datetime(tz, s).ok()?;
    match unit {
        TimeUnit::Second => Some(d.timestamp()),
        TimeUnit::Millisecond => Some(d.timestamp_millis()),
        TimeUnit::Microsecond => Some(d.timestamp_micros()),
        TimeUnit::Nanosecond => d.timestamp_nanos_opt(),
    }
}

/// The common shape of a timestamp, `YYYY-MM-DD[ T]hh:mm:ss[.f{1,9}][Z]`,
/// read without chrono (a tenth of decoding a record went to parsing
/// it): the same value as [`timestamp`] in UTC, or `None` for any other
/// text, which [`timestamp`] then reads.
fn utc_timestamp(unit: TimeUnit, s: &[u8]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        s.get(r)?.iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b' ' | b'T') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > month_days || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let len = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = num(20..20 + len)? * 10i64.pow(9 - len as u32);
        rest = &frac[len..];
    }
    if !(rest.is_empty() || rest == b"Z") {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    match unit {
        TimeUnit::Second => Some(secs),
        TimeUnit::Millisecond => Some(secs * 1_000 + nanos / 1_000_000),
        TimeUnit::Microsecond => Some(secs * 1_000_000 + nanos / 1_000),
        TimeUnit::Nanosecond => secs.checked_mul(1_000_000_000)?.checked_add(nanos),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A JSON integer token as an `i64`, `None` on overflow.
fn parse_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let mut v: i64 = 0;
    for &d in digits {
        let d = (d - b'0') as i64;
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// A position in one record's bytes (`b`, and `s`: the same, checked to
/// be UTF-8).
struct Cursor<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// The rest of a string whose opening quote was read: the span of its
    /// raw contents and whether it has escapes. Escapes are checked to be
    /// well-formed, the contents to be without control characters (the
    /// record was checked to be UTF-8).
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.i;
        let mut escaped = false;
        loop {
            let at = self.i + memchr::memchr2(b'"', b'\\', &self.b[self.i..])?;
            if self.b[at] == b'"' {
                let raw = &self.b[start..at];
                if raw.iter().any(|&c| c < 0x20) {
                    return None;
                }
                self.i = at + 1;
                return Some((start, at, escaped));
            }
            escaped = true;
            match self.b.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i = at + 2,
                b'u' => {
                    let hex = self.b.get(at + 2..at + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i = at + 6;
                }
                _ => return None,
            }
        }
    }

    /// The rest of a string whose opening quote was read, unescaped.
    fn text<'s>(&mut self, scratch: &'s mut String) -> Option<&'s str>
    where
        'a: 's,
    {
        let (start, end, escaped) = self.string()?;
        let raw = self.s.get(start..end)?;
        if !escaped {
            return Some(raw);
        }
        scratch.clear();
        unescape(raw, scratch)?;
        Some(scratch.as_str())
    }

    /// A number token: its span and whether it is an integer.
    fn number(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            let digits = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let digits = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == digits {
                return None;
            }
        }
        // A number runs up to a delimiter.
        if !matches!(
            b.get(i),
            None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
        ) {
            return None;
        }
        self.i = i;
        Some((start, i, integer))
    }

    /// Skips one value, checking that it is well-formed.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|_| ())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.eat(b'"')?;
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }
}

/// A string's raw contents with its escapes (checked to be well-formed)
/// decoded into `out`; `None` for a lone surrogate.
fn unescape(raw: &str, out: &mut String) -> Option<()> {
    let (text, raw) = (raw, raw.as_bytes());
    let mut i = 0;
    while i < raw.len() {
        let next = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |p| i + p);
        out.push_str(text.get(i..next)?);
        if next == raw.len() {
            break;
        }
        let hex =
            |at: usize| -> Option<u32> { u32::from_str_radix(text.get(at..at + 4)?, 16).ok() };
        match raw[next + 1] {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let u = hex(next + 2)?;
                let c = if (0xD800..0xDC00).contains(&u) {
                    // A high surrogate must be followed by a low one.
                    if raw.get(next + 6..next + 8)? != b"\\u" {
                        return None;
                    }
                    let lo = hex(next + 8)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i = next + 12;
                    char::from_u32(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    i = next + 6;
                    char::from_u32(u)?
                };
                out.push(c);
                continue;
            }
            _ => return None,
        }
        i = next + 2;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use arrow::json::ReaderBuilder;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("small", DataType::Int16, true),
            Field::new("who", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("ratio", DataType::Float32, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]))
    }

    /// What arrow-json makes of the same values, as Weir's decoder sets it
    /// up; `None` when it refuses them.
    fn arrow_json(schema: &SchemaRef, values: &[&[u8]]) -> Option<RecordBatch> {
        let mut d = ReaderBuilder::new(schema.clone())
            .with_batch_size(values.len().max(1))
            .with_strict_mode(false)
            .with_coerce_primitive(true)
            .build_decoder()
            .ok()?;
        for v in values {
            let mut buf = *v;
            while !buf.is_empty() {
                let n = d.decode(buf).ok()?;
                if n == 0 {
                    return None;
                }
                buf = &buf[n..];
            }
            if d.has_partial_record() {
                return None;
            }
        }
        if d.len() != values.len() {
            return None;
        }
        d.flush().ok()?
    }

    /// A small deterministic generator of JSON records: well-formed ones
    /// of many shapes, and some broken ones.
    fn records(n: usize) -> Vec<String> {
        let mut state = 0x2545F4914F6CDD1Du64;
        let mut rnd = move |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        // Per column: values it takes, and values the fast path must
        // leave to arrow-json (another type, out of range, malformed).
        let ints = [
            "0",
            "-7",
            "42",
            "9223372036854775807",
            "-9223372036854775808",
            "null",
            "-0",
        ];
        let small = ["0", "-7", "42", "32767", "-32768", "null"];
        let floats = [
            "0",
            "-7",
            "1.5",
            "-0.25",
            "1e3",
            "2.5E-3",
            "3.4028236e38",
            "0.1",
            "null",
            "123456789012345678901234567890",
        ];
        let strings = [
            r#""plain""#,
            r#""with \"quotes\" and \\ slash""#,
            r#""tab\tnew\nline""#,
            r#""unicode \u00e9 \ud83d\ude00 é""#,
            r#""""#,
            "null",
        ];
        let times = [
            r#""2024-01-01 00:00:01""#,
            r#""2024-01-01T00:00:01.123Z""#,
            r#""2024-01-01 08:00:01+08:00""#,
            "null",
        ];
        let bad = [
            "9223372036854775808",
            "1.5",
            "01",
            "1.",
            "-",
            "40000",
            "\"17\"",
            "true",
            r#""lone \ud800 surrogate""#,
            r#""bad \x escape""#,
            r#""not a time""#,
            "1700000000000",
            "12",
            "[1]",
            "{}",
        ];
        let extras = [
            r#""note": "a long note that nobody reads, placed through the web shop""#,
            r#""tags": ["a", "b", {"deep": [1, 2, {"x": null}]}]"#,
            r#""nested": {"a": {"b": [true, false, null]}}"#,
            r#""empty": {}"#,
            r#""list": []"#,
            r#""n": -0.5e+7"#,
            r#""esc": "\u0041\n""#,
            r#""broken": [1, 2"#,
            r#""weird": tru"#,
        ];
        (0..n)
            .map(|_| {
                let mut parts: Vec<String> = vec![];
                for (key, pool) in [
                    ("id", &ints[..]),
                    ("small", &small[..]),
                    ("who", &strings[..]),
                    ("amount", &floats[..]),
                    ("ratio", &floats[..]),
                    ("ts", &times[..]),
                    ("at", &times[..]),
                ] {
                    let v = if rnd(40) == 0 {
                        bad[rnd(bad.len() as u64) as usize]
                    } else {
                        pool[rnd(pool.len() as u64) as usize]
                    };
                    if rnd(8) > 0 {
                        parts.push(format!("\"{key}\": {v}"));
                    }
                }
                match rnd(12) {
                    0..=3 => parts.push(r#""ok": true"#.into()),
                    4..=6 => parts.push(r#""ok": false"#.into()),
                    7 => parts.push(r#""ok": 1"#.into()),
                    _ => {}
                }
                for _ in 0..rnd(3) {
                    parts.push(extras[rnd(extras.len() as u64 - 2) as usize].into());
                }
                if rnd(40) == 0 {
                    parts.push(extras[7 + rnd(2) as usize].into());
                }
                if rnd(30) == 0 {
                    parts.push(r#""id": 1"#.into());
                }
                let body = parts.join(if rnd(2) == 0 { "," } else { " ,\n " });
                match rnd(100) {
                    0 => format!("[{body}]"),
                    1 => format!("{{{body}}} {{}}"),
                    2 => format!("{{{body}"),
                    3 => format!("{{{body}}}x"),
                    _ => format!(" {{{body}}} "),
                }
            })
            .collect()
    }

    #[test]
    fn it_agrees_with_arrow_json_whenever_it_decodes() {
        let schema = schema();
        let fast = FastJson::new(&schema).unwrap();
        let all = records(20_000);
        let (mut taken, mut fell_back) = (0, 0);
        for one in &all {
            let v: &[u8] = one.as_bytes();
            match fast.decode(&[v]) {
                Some(got) => {
                    taken += 1;
                    let want = arrow_json(&schema, &[v]).unwrap_or_else(|| {
                        panic!("arrow-json refuses what the fast path took: {one}")
                    });
                    assert_eq!(got, want, "{one}");
                }
                None => fell_back += 1,
            }
        }
        // The generator makes both kinds, so both paths are exercised.
        assert!(
            taken > 2_000 && fell_back > 2_000,
            "{taken} taken, {fell_back} fell back"
        );
        // A whole poll decodes as its records do one by one.
        let good: Vec<&[u8]> = all
            .iter()
            .map(|s| s.as_bytes())
            .filter(|v| fast.decode(&[*v]).is_some())
            .collect();
        assert_eq!(fast.decode(&good), arrow_json(&schema, &good));
    }

    #[test]
    fn a_schema_with_nested_columns_is_not_taken() {
        let s = Arc::new(Schema::new(vec![Field::new(
            "l",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        )]));
        assert!(FastJson::new(&s).is_none());
    }

    #[test]
    fn the_quick_timestamp_reader_agrees_with_arrows() {
        let units = [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ];
        let mut texts: Vec<String> = vec![];
        // Every month's edges, leap and common years, both separators,
        // fractions of every length, a trailing Z.
        for y in [
            1, 1600, 1899, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 2262, 9999,
        ] {
            for m in 1..=12 {
                for d in [1, 28, 29, 30, 31] {
                    for (sep, time) in [(' ', "00:00:00"), ('T', "23:59:59"), (' ', "12:34:56")] {
                        let base = format!("{y:04}-{m:02}-{d:02}{sep}{time}");
                        for frac in ["", ".5", ".123", ".000001", ".123456789", "Z", ".25Z"] {
                            texts.push(format!("{base}{frac}"));
                        }
                    }
                }
            }
        }
        // Not the shape: arrow's parser reads them (or refuses them).
        for t in [
            "2024-01-01",
            "2024-01-01 24:00:00",
            "2024-01-01 23:60:00",
            "2024-01-01 23:59:60",
            "2024-00-10 00:00:00",
            "2024-13-10 00:00:00",
            "2024-01-01 00:00:00.",
            "2024-01-01 00:00:00.1234567890",
            "2024-01-01 00:00:00+02:00",
            "2024-01-01 00:00:00 ",
            "2024-1-01 00:00:00",
            "+2024-01-01 00:00:00",
            "2024-01-01x00:00:00",
        ] {
            texts.push(t.to_string());
        }
        for t in &texts {
            for unit in units {
                let quick = utc_timestamp(unit, t.as_bytes());
                let arrow = timestamp(unit, &chrono::Utc, t);
                if quick.is_some() {
                    assert_eq!(quick, arrow, "{t} in {unit:?}");
                }
            }
        }
        // The common shape does take the quick path.
        assert_eq!(
            utc_timestamp(TimeUnit::Millisecond, b"2024-01-01 00:00:00.000"),
            Some(1_704_067_200_000)
        );
    }
}
