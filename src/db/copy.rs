//! PostgreSQL's `COPY … FROM STDIN` text format, written row by row: what the shipper sends instead
//! of multi-row `INSERT`s (no statement to parse and plan per batch, no parameter per value).
//!
//! Columns are separated by a tab, rows end with a newline, `\N` is NULL; a backslash, tab, newline
//! or carriage return inside a value is escaped. `bytea` goes as `\x` and hex, timestamps as UTC
//! with microseconds (the precision PostgreSQL keeps; truncated, as a bound parameter is).

use std::fmt::Write as _;

use time::OffsetDateTime;
use uuid::Uuid;

/// One COPY payload being written.
#[derive(Debug, Default)]
pub struct CopyText {
    buf: Vec<u8>,
    at_row_start: bool,
    rows: usize,
}

impl CopyText {
    /// An empty payload.
    pub fn new() -> CopyText {
        CopyText {
            buf: Vec::with_capacity(64 * 1024),
            at_row_start: true,
            rows: 0,
        }
    }

    /// Rows ended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The payload (complete rows only once [`CopyText::end_row`] was called for the last one).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn sep(&mut self) {
        if !self.at_row_start {
            self.buf.push(b'\t');
        }
        self.at_row_start = false;
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.at_row_start = true;
        self.rows += 1;
    }

    /// NULL.
    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    /// A text value (also what JSON, numbers and enums are written as).
    pub fn text(&mut self, v: &str) -> &mut Self {
        self.sep();
        for &b in v.as_bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                _ => self.buf.push(b),
            }
        }
        self
    }

    /// A text value or NULL.
    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// A value written with its `Display` (numbers, uuids): no escaping needed.
    fn display(&mut self, v: impl std::fmt::Display) -> &mut Self {
        self.sep();
        let _ = write!(Bytes(&mut self.buf), "{v}");
        self
    }

    /// An integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.display(v)
    }

    /// An integer or NULL.
    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf.push(if v { b't' } else { b'f' });
        self
    }

    /// A uuid.
    pub fn uuid(&mut self, v: Uuid) -> &mut Self {
        self.display(v.hyphenated())
    }

    /// A uuid or NULL.
    pub fn opt_uuid(&mut self, v: Option<Uuid>) -> &mut Self {
        match v {
            Some(v) => self.uuid(v),
            None => self.null(),
        }
    }

    /// A `timestamptz`, as UTC with microseconds.
    pub fn timestamp(&mut self, v: OffsetDateTime) -> &mut Self {
        let u = v.to_offset(time::UtcOffset::UTC);
        self.display(format_args!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
            u.year(),
            u8::from(u.month()),
            u.day(),
            u.hour(),
            u.minute(),
            u.second(),
            u.microsecond()
        ))
    }

    /// A `timestamptz` or NULL.
    pub fn opt_timestamp(&mut self, v: Option<OffsetDateTime>) -> &mut Self {
        match v {
            Some(v) => self.timestamp(v),
            None => self.null(),
        }
    }

    /// A `bytea`, hex-encoded (`\x…`, its backslash escaped for COPY).
    pub fn bytea(&mut self, v: &[u8]) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.sep();
        self.buf.reserve(3 + 2 * v.len());
        self.buf.extend_from_slice(b"\\\\x");
        for &b in v {
            self.buf.push(HEX[usize::from(b >> 4)]);
            self.buf.push(HEX[usize::from(b & 15)]);
        }
        self
    }
}

/// `fmt::Write` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_rows_delimited() {
        let mut c = CopyText::new();
        c.text("a\tb\nc\\d\re")
            .null()
            .opt_text(Some("x"))
            .int(-42)
            .bool(true)
            .bytea(&[0, 0xab, b'\n']);
        c.end_row();
        c.opt_int(None).bool(false);
        c.end_row();
        assert_eq!(
            std::str::from_utf8(c.bytes()).unwrap(),
            "a\\tb\\nc\\\\d\\re\t\\N\tx\t-42\tt\t\\\\x00ab0a\n\\N\tf\n"
        );
        assert_eq!(c.rows(), 2);
    }

    #[test]
    fn timestamps_are_utc_with_microseconds_truncated() {
        let t = time::macros::datetime!(2026-03-04 05:06:07.123456789 +02:00);
        let mut c = CopyText::new();
        c.timestamp(t).uuid(Uuid::nil());
        assert_eq!(
            std::str::from_utf8(c.bytes()).unwrap(),
            "2026-03-04 03:06:07.123456+00\t00000000-0000-0000-0000-000000000000"
        );
    }
}
