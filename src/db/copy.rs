//! PostgreSQL's binary `COPY … FROM STDIN` format, written row by row: what the shipper sends
//! instead of multi-row `INSERT`s (no statement to parse and plan per batch, no parameter per
//! value), and instead of `COPY`'s text format (no escaping and hex here, no parsing of every
//! character, timestamp and uuid in PostgreSQL: about a fifth less of its CPU per callback row,
//! docs/benchmarks.md).
//!
//! The payload is the format's header, then per row the number of fields (16 bits) and per field
//! its length (32 bits, -1 for NULL) and its bytes, in network order, then the trailer. The
//! payload is kept whole (the trailer after the last row ended) so that it goes out in one
//! write: a second small write right after it (a trailer of its own, then `CopyDone`) waited for
//! the first one's delayed acknowledgement (Nagle's algorithm; the driver does not set
//! `TCP_NODELAY`), 40 ms per batch. Each
//! value is written in its type's binary form, so every method is typed, and a column's writer
//! must use the method of the column's type ([`PgType`]): a `bigint` written into an `integer`
//! column is refused by PostgreSQL. The shipper declares each column's type beside its writer and
//! checks both against each other in debug builds, and against the tables in the tests.

use time::OffsetDateTime;
use uuid::Uuid;

/// The format's signature, flags (none) and header extension length (none).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// What ends a binary COPY payload (a field count of -1).
const TRAILER: &[u8] = &[0xff, 0xff];

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The PostgreSQL types the shipper writes, each with its binary form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    /// 16 bytes.
    Uuid,
    /// UTF-8 bytes (also `jsonb`'s text after its version byte).
    Text,
    /// Microseconds since 2000-01-01 UTC, 64 bits.
    Timestamptz,
    /// One byte.
    Bool,
    /// The bytes.
    Bytea,
    /// A version byte (1), then the JSON text; PostgreSQL parses it as `jsonb`'s text input does.
    Jsonb,
    /// 16 bits.
    Int2,
    /// 32 bits.
    Int4,
    /// 64 bits.
    Int8,
}

impl PgType {
    /// The type's name as `information_schema.columns.data_type` gives it.
    pub fn sql_name(self) -> &'static str {
        match self {
            PgType::Uuid => "uuid",
            PgType::Text => "text",
            PgType::Timestamptz => "timestamp with time zone",
            PgType::Bool => "boolean",
            PgType::Bytea => "bytea",
            PgType::Jsonb => "jsonb",
            PgType::Int2 => "smallint",
            PgType::Int4 => "integer",
            PgType::Int8 => "bigint",
        }
    }
}

/// `COPY table (columns) FROM STDIN` in the binary format [`CopyRows`] writes.
pub fn copy_statement<'a>(table: &str, columns: impl IntoIterator<Item = &'a str>) -> String {
    let columns: Vec<&str> = columns.into_iter().collect();
    format!(
        "COPY {table} ({}) FROM STDIN WITH (FORMAT binary)",
        columns.join(", ")
    )
}

/// One COPY payload being written (binary format).
#[derive(Debug)]
pub struct CopyRows {
    buf: Vec<u8>,
    /// Where the current row's field count is, None between rows.
    row_start: Option<usize>,
    fields: u16,
    rows: usize,
    /// The type of the last value written (None for a NULL): what the shipper's debug check reads.
    last: Option<PgType>,
}

impl Default for CopyRows {
    fn default() -> Self {
        CopyRows::new()
    }
}

impl CopyRows {
    /// An empty payload (the header and the trailer).
    pub fn new() -> CopyRows {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(HEADER);
        buf.extend_from_slice(TRAILER);
        CopyRows {
            buf,
            row_start: None,
            fields: 0,
            rows: 0,
            last: None,
        }
    }

    /// Rows ended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The payload, whole between rows: the header, the rows ended, the trailer. While a row is
    /// being written, the rows ended before it without the trailer.
    pub fn bytes(&self) -> &[u8] {
        match self.row_start {
            Some(at) => self.buf.get(..at).unwrap_or(&self.buf),
            None => &self.buf,
        }
    }

    /// The type of the value written last, None when it was NULL.
    pub fn last_type(&self) -> Option<PgType> {
        self.last
    }

    /// Starts a field of `len` bytes (-1: NULL), opening the row at its first field.
    fn field(&mut self, len: i32, ty: Option<PgType>) {
        if self.row_start.is_none() {
            // The trailer goes; end_row puts it back after the row.
            self.buf
                .truncate(self.buf.len().saturating_sub(TRAILER.len()));
            self.row_start = Some(self.buf.len());
            self.buf.extend_from_slice(&[0, 0]);
            self.fields = 0;
        }
        self.fields = self.fields.saturating_add(1);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.last = ty;
    }

    /// A field of these bytes.
    fn bytes_field(&mut self, ty: PgType, parts: &[&[u8]]) -> &mut Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // A value over 1 GB is beyond what PostgreSQL stores in a field; it refuses the row.
        self.field(i32::try_from(len).unwrap_or(i32::MAX), Some(ty));
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        match self.row_start.take() {
            Some(at) => {
                let count = self.fields.to_be_bytes();
                if let Some(slot) = self.buf.get_mut(at..at + 2) {
                    slot.copy_from_slice(&count);
                }
            }
            // A row of no field.
            None => {
                self.buf
                    .truncate(self.buf.len().saturating_sub(TRAILER.len()));
                self.buf.extend_from_slice(&[0, 0]);
            }
        }
        self.buf.extend_from_slice(TRAILER);
        self.fields = 0;
        self.rows += 1;
    }

    /// NULL (of any type).
    pub fn null(&mut self) -> &mut Self {
        self.field(-1, None);
        self
    }

    /// A `text` value.
    pub fn text(&mut self, v: &str) -> &mut Self {
        self.bytes_field(PgType::Text, &[v.as_bytes()])
    }

    /// A `text` value or NULL.
    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null_of(PgType::Text),
        }
    }

    /// A `jsonb` value, from its JSON text.
    pub fn jsonb(&mut self, json: &str) -> &mut Self {
        self.bytes_field(PgType::Jsonb, &[&[1], json.as_bytes()])
    }

    /// A `jsonb` value or NULL.
    pub fn opt_jsonb(&mut self, json: Option<&str>) -> &mut Self {
        match json {
            Some(v) => self.jsonb(v),
            None => self.null_of(PgType::Jsonb),
        }
    }

    /// A `smallint`.
    pub fn int2(&mut self, v: i16) -> &mut Self {
        self.bytes_field(PgType::Int2, &[&v.to_be_bytes()])
    }

    /// An `integer`.
    pub fn int4(&mut self, v: i32) -> &mut Self {
        self.bytes_field(PgType::Int4, &[&v.to_be_bytes()])
    }

    /// An `integer` or NULL.
    pub fn opt_int4(&mut self, v: Option<i32>) -> &mut Self {
        match v {
            Some(v) => self.int4(v),
            None => self.null_of(PgType::Int4),
        }
    }

    /// A `bigint`.
    pub fn int8(&mut self, v: i64) -> &mut Self {
        self.bytes_field(PgType::Int8, &[&v.to_be_bytes()])
    }

    /// A `bigint` or NULL.
    pub fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null_of(PgType::Int8),
        }
    }

    /// A `boolean`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.bytes_field(PgType::Bool, &[&[u8::from(v)]])
    }

    /// A `uuid`.
    pub fn uuid(&mut self, v: Uuid) -> &mut Self {
        self.bytes_field(PgType::Uuid, &[v.as_bytes()])
    }

    /// A `uuid` or NULL.
    pub fn opt_uuid(&mut self, v: Option<Uuid>) -> &mut Self {
        match v {
            Some(v) => self.uuid(v),
            None => self.null_of(PgType::Uuid),
        }
    }

    /// A `timestamptz`: microseconds since PostgreSQL's epoch, truncated toward the past (as
    /// PostgreSQL keeps microseconds; the text format wrote the same instant).
    pub fn timestamp(&mut self, v: OffsetDateTime) -> &mut Self {
        let us = v.unix_timestamp_nanos().div_euclid(1000);
        let pg = i64::try_from(us)
            .unwrap_or(i64::MAX)
            .saturating_sub(PG_EPOCH_US);
        self.bytes_field(PgType::Timestamptz, &[&pg.to_be_bytes()])
    }

    /// A `timestamptz` or NULL.
    pub fn opt_timestamp(&mut self, v: Option<OffsetDateTime>) -> &mut Self {
        match v {
            Some(v) => self.timestamp(v),
            None => self.null_of(PgType::Timestamptz),
        }
    }

    /// A `bytea`.
    pub fn bytea(&mut self, v: &[u8]) -> &mut Self {
        self.bytes_field(PgType::Bytea, &[v])
    }

    /// NULL written by a typed method: its type is noted for the debug check.
    fn null_of(&mut self, ty: PgType) -> &mut Self {
        self.field(-1, Some(ty));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_fields_and_values_in_network_order() {
        let mut c = CopyRows::new();
        c.text("a\tb").null().int2(-2).int4(7).int8(-42).bool(true);
        assert_eq!(
            c.bytes(),
            HEADER,
            "an unfinished row is not part of the payload"
        );
        let mut empty = HEADER.to_vec();
        empty.extend_from_slice(TRAILER);
        assert_eq!(
            CopyRows::new().bytes(),
            empty.as_slice(),
            "no row: header and trailer"
        );
        c.end_row();
        c.opt_int8(None).bytea(&[0, 0xab]);
        c.end_row();
        let mut want = HEADER.to_vec();
        want.extend_from_slice(&[0, 6]);
        want.extend_from_slice(&[0, 0, 0, 3, b'a', b'\t', b'b']);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 2, 0xff, 0xfe]);
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
        want.extend_from_slice(&[0, 0, 0, 8]);
        want.extend_from_slice(&(-42i64).to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 1, 1]);
        want.extend_from_slice(&[0, 2]);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 2, 0, 0xab]);
        want.extend_from_slice(TRAILER);
        assert_eq!(c.bytes(), want.as_slice());
        assert_eq!(c.rows(), 2);
    }

    #[test]
    fn timestamps_are_microseconds_since_2000_truncated_toward_the_past() {
        let t = time::macros::datetime!(2000-01-01 00:00:01.000001999 +00:00);
        let mut c = CopyRows::new();
        c.timestamp(t);
        assert_eq!(c.last_type(), Some(PgType::Timestamptz));
        let before = time::macros::datetime!(1999-12-31 23:59:59.9999995 +00:00);
        c.timestamp(before).uuid(Uuid::nil()).jsonb("{}");
        c.end_row();
        let b = c.bytes();
        let f = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().unwrap());
        let start = HEADER.len() + 2 + 4;
        assert_eq!(f(start), 1_000_001);
        assert_eq!(f(start + 12), -1, "floor, as the text format's fields were");
        assert_eq!(
            &b[b.len() - 5..],
            &[1, b'{', b'}', 0xff, 0xff],
            "jsonb: version 1, text"
        );
    }
}
