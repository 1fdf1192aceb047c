//! Timestamps as Sinch writes them: [`parse`] reads the `x-timestamp` header, the events'
//! `timestamp` fields and the admin API's `since` parameters (ISO-8601 / RFC 3339, leniently);
//! [`format()`] writes `x-timestamp` for signed requests.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Formats a timestamp for `x-timestamp`: UTC, millisecond precision, e.g.
/// `2014-09-24T10:59:41.000Z`. Accepted by [`parse`] and by Sinch's SDKs.
pub fn format(t: OffsetDateTime) -> String {
    match t.checked_to_offset(UtcOffset::UTC) {
        Some(u) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            u.year(),
            u8::from(u.month()),
            u.day(),
            u.hour(),
            u.minute(),
            u.second(),
            u.millisecond()
        ),
        // Only at the very edge of the representable range: keep the original offset.
        None => {
            let (oh, om, _) = t.offset().as_hms();
            let sign = if t.offset().is_negative() { '-' } else { '+' };
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{sign}{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond(),
                oh.unsigned_abs(),
                om.unsigned_abs()
            )
        }
    }
}

/// Parses an ISO-8601 / RFC 3339 timestamp as Sinch sends them, returned in UTC.
///
/// Accepted: `YYYY-MM-DDThh:mm:ss`, separator `T`, `t` or a space, an optional fraction of any
/// number of digits after `.` or `,` (digits beyond nanoseconds are truncated), then `Z`/`z`,
/// an offset `±hh:mm`/`±hhmm`/`±hh`, or nothing (= UTC, as Sinch documents for its offset-less
/// form). A leap second (`:60`) is read as `:59.999999999`. Surrounding whitespace is ignored.
/// Anything else (including a value prefixed with `x-timestamp:`) gives `None`.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    let mut p = Cursor {
        b: s.trim().as_bytes(),
        i: 0,
    };
    if p.b.len() > 64 {
        return None;
    }
    let date = parse_date(&mut p)?;
    match p.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let time = parse_time(&mut p)?;
    let offset = parse_offset(&mut p)?;
    if p.peek().is_some() {
        return None;
    }
    PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .checked_to_offset(UtcOffset::UTC)
}

/// `YYYY-MM-DD`, a valid calendar date.
fn parse_date(p: &mut Cursor<'_>) -> Option<Date> {
    let year = p.digits(4)?;
    p.eat(b'-')?;
    let month = p.digits(2)?;
    p.eat(b'-')?;
    let day = p.digits(2)?;
    Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()
}

/// `hh:mm:ss` with an optional fraction; a leap second reads as `:59.999999999`.
fn parse_time(p: &mut Cursor<'_>) -> Option<Time> {
    let hour = p.digits(2)?;
    p.eat(b':')?;
    let minute = p.digits(2)?;
    p.eat(b':')?;
    let mut second = p.digits(2)?;
    let mut nanos = parse_fraction(p)?;
    if second == 60 {
        second = 59;
        nanos = 999_999_999;
    }
    Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()
}

/// An optional `.`/`,` fraction of any number of digits (at least one), in nanoseconds;
/// digits beyond nanoseconds are truncated. No fraction gives 0.
fn parse_fraction(p: &mut Cursor<'_>) -> Option<u32> {
    let mut nanos: u32 = 0;
    if !matches!(p.peek(), Some(b'.' | b',')) {
        return Some(nanos);
    }
    p.i += 1;
    let mut n = 0usize;
    while let Some(d) = p.peek().filter(u8::is_ascii_digit) {
        if n < 9 {
            nanos = nanos * 10 + u32::from(d - b'0');
        }
        n += 1;
        p.i += 1;
    }
    if n == 0 {
        return None;
    }
    for _ in n..9 {
        nanos *= 10;
    }
    Some(nanos)
}

/// Nothing (UTC), `Z`/`z`, or `±hh:mm`/`±hhmm`/`±hh`.
fn parse_offset(p: &mut Cursor<'_>) -> Option<UtcOffset> {
    match p.next() {
        None | Some(b'Z' | b'z') => Some(UtcOffset::UTC),
        Some(sign @ (b'+' | b'-')) => {
            let oh = p.digits(2)?;
            let om = match p.peek() {
                Some(b':') => {
                    p.i += 1;
                    p.digits(2)?
                }
                Some(_) => p.digits(2)?,
                None => 0,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let (oh, om) = (i8::try_from(oh).ok()?, i8::try_from(om).ok()?);
            if sign == b'-' {
                UtcOffset::from_hms(-oh, -om, 0).ok()
            } else {
                UtcOffset::from_hms(oh, om, 0).ok()
            }
        }
        Some(_) => None,
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
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
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self.next().filter(u8::is_ascii_digit)?;
            v = v * 10 + u32::from(d - b'0');
        }
        Some(v)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn accepted_forms() {
        let base = datetime!(2014-09-24 10:59:41 UTC);
        let ok: &[(&str, OffsetDateTime)] = &[
            ("2014-09-24T10:59:41Z", base),
            ("2014-09-24T10:59:41z", base),
            ("2014-09-24t10:59:41Z", base),
            ("2014-09-24 10:59:41Z", base),
            ("2014-09-24T10:59:41", base),
            (" 2014-09-24T10:59:41Z ", base),
            (
                "2014-09-24T10:59:41.5Z",
                datetime!(2014-09-24 10:59:41.5 UTC),
            ),
            (
                "2014-06-02T15:39:31.2729234Z",
                datetime!(2014-06-02 15:39:31.2729234 UTC),
            ),
            (
                "2014-06-02T15:39:31.272923456789Z",
                datetime!(2014-06-02 15:39:31.272923456 UTC),
            ),
            (
                "2024-01-16T16:46:36.1234567891234Z",
                datetime!(2024-01-16 16:46:36.123456789 UTC),
            ),
            (
                "2014-09-24T10:59:41.123",
                datetime!(2014-09-24 10:59:41.123 UTC),
            ),
            (
                "2014-09-24T10:59:41,25Z",
                datetime!(2014-09-24 10:59:41.25 UTC),
            ),
            ("2014-09-24T12:59:41+02:00", base),
            ("2014-09-24T12:59:41+0200", base),
            ("2014-09-24T12:59:41+02", base),
            ("2014-09-24T05:29:41-05:30", base),
            (
                "2024-01-16T16:46:36.5-0130",
                datetime!(2024-01-16 16:46:36.5 -01:30),
            ),
            (
                "2024-01-16T16:46:36-05",
                datetime!(2024-01-16 16:46:36 -05:00),
            ),
            (" 2024-01-16 16:46:36z ", datetime!(2024-01-16 16:46:36 UTC)),
            (
                "2016-12-31T23:59:60Z",
                datetime!(2016-12-31 23:59:59.999999999 UTC),
            ),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Some(*want), "{s}");
            assert_eq!(parse(s).unwrap().offset(), UtcOffset::UTC, "{s}");
        }
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "",
            "2014-09-24",
            "2014-09-24T10:59Z",
            "2024-01-16T16:46",
            "2014-09-24T10:59:41.Z",
            "2024-01-16T16:46:36.",
            "2024-01-16T16:46:36X",
            "2014-13-24T10:59:41Z",
            "2014-02-30T10:59:41Z",
            "2014-09-24T24:00:00Z",
            "2024-01-16T25:46:36Z",
            "2014-09-24T10:61:41Z",
            "2014-09-24T10:59:41+24:00",
            "2024-01-16T16:46:36+2",
            "2014-09-24T10:59:41+02:",
            "2014-09-24T10:59:41ZZ",
            "2014-09-24T10:59:41 Z",
            "2024-01-16T16:46:36Z trailing",
            "x-timestamp:2014-09-24T10:59:41Z",
            "14-09-24T10:59:41Z",
            "+2014-09-24T10:59:41Z",
            "2014-09-24T10:59:41.9999999999999999999999999999999999999999999999999999999Z",
            "9999-12-31T23:59:59-01:00",
            "١٢٣٤-09-24T10:59:41Z",
            "２０２４-01-16T16:46:36Z",
            "1705423596",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn format_is_utc_millis() {
        let t = datetime!(2014-09-24 12:59:41.123456 +02:00);
        assert_eq!(format(t), "2014-09-24T10:59:41.123Z");
        assert_eq!(
            parse(&format(t)),
            Some(datetime!(2014-09-24 10:59:41.123 UTC))
        );
    }

    /// 2000-01-01 .. 2100-01-01, millisecond precision (what [`format`] keeps).
    pub(crate) fn any_now() -> impl Strategy<Value = OffsetDateTime> {
        (946_684_800_000i64..4_102_444_800_000i64).prop_map(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parser_never_panics(s in ".{0,80}", t in "\\PC{0,40}") {
            let _ = parse(&s);
            let _ = parse(&t);
        }

        #[test]
        fn format_parse_round_trip(now in any_now()) {
            prop_assert_eq!(parse(&format(now)), Some(now));
        }
    }
}
