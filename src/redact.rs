//! Masking of phone numbers and user identities for logs and debug output.
//!
//! * [`mask_number`] masks one value: a phone number keeps its `+`, a few leading and the last two
//!   digits; SIP addresses and `user@host` values have their user part masked; other identities are
//!   partially masked; placeholders such as `private` are left alone.
//! * [`mask_numbers_in`] masks every number of 6 or more digits inside free text (validation
//!   findings).
//! * [`Masked`] masks on display, for tracing fields: `tracing::info!(cli = %Masked(cli))`.
//!
//! One rule masks the digits of every number, wherever it is found (`mask_digits`).
//!
//! Masking is length-preserving (one `*` per hidden character) and never panics on any UTF-8.

use std::fmt;

/// Character used for hidden characters.
const MASK: char = '*';

/// Values that identify no one and stay readable (compared case-insensitively).
const PLACEHOLDERS: [&str; 8] = [
    "private",
    "anonymous",
    "unknown",
    "restricted",
    "withheld",
    "unavailable",
    "n/a",
    "null",
];

/// URI schemes kept in clear in front of a masked address.
const SCHEMES: [&str; 3] = ["sip:", "sips:", "tel:"];

/// Masks a phone number or user identity for logging.
///
/// * `"+46708168731"` → `"+467******31"`: `+` kept, first 3 (2 for 7–8 digits, 1 for 5–6) and last 2
///   (1 for 5–6) digits kept, separators (space, `-`, `.`, parentheses) kept; 4 digits or fewer
///   are masked completely.
/// * `"sip:46708000000@sip.foo.com"` → `"sip:467******00@sip.foo.com"`: scheme and host kept, user
///   part masked; likewise `alice@example.com`.
/// * other text (usernames) → first 2 and last 2 characters kept when longer than 7 characters,
///   only the first when 4–7, all masked when 3 or fewer.
/// * `""`, `"private"`, `"anonymous"`, … are returned unchanged.
pub fn mask_number(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() || PLACEHOLDERS.iter().any(|p| t.eq_ignore_ascii_case(p)) {
        return t.to_owned();
    }
    for scheme in SCHEMES {
        if let Some(prefix) = t.get(..scheme.len()) {
            if prefix.eq_ignore_ascii_case(scheme) {
                let rest = t.get(scheme.len()..).unwrap_or_default();
                return format!("{prefix}{}", mask_address(rest));
            }
        }
    }
    mask_address(t)
}

/// Masks `user@host` (user part only) or a bare identity.
fn mask_address(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((user, host)) => format!("{}@{host}", mask_identity(user)),
        None => mask_identity(s),
    }
}

fn mask_identity(s: &str) -> String {
    if is_phone_like(s) {
        mask_digits(s)
    } else {
        mask_text(s)
    }
}

/// Digits with an optional leading `+` and common separators, at least one digit.
fn is_phone_like(s: &str) -> bool {
    let body = s.strip_prefix('+').unwrap_or(s);
    body.chars().any(|c| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
}

/// The one rule for the digits of a number: keeps the first 3 (2 for 7–8 digits, 1 for 5–6) and
/// the last 2 (1 for 5–6) digits and masks the others; 4 digits or fewer are masked completely.
/// Other characters are kept: `"+46 70 816 87 31"` → `"+46 7* *** ** 31"`.
fn mask_digits(s: &str) -> String {
    let n = s.chars().filter(char::is_ascii_digit).count();
    let (head, tail) = match n {
        0..=4 => (0, 0),
        5..=6 => (1, 1),
        7..=8 => (2, 2),
        _ => (3, 2),
    };
    let mut k = 0;
    s.chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            let keep = k < head || k >= n - tail;
            k += 1;
            if keep {
                c
            } else {
                MASK
            }
        })
        .collect()
}

/// Masks, by `mask_digits`, every run of 6 or more ASCII digits in `text`; shorter runs (counts,
/// durations) and everything else are kept: `"to 46700000000 (12 s)"` → `"to 467******00 (12 s)"`.
pub fn mask_numbers_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let len = from
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(from.len());
        let (run, after) = from.split_at(len);
        if run.len() >= 6 {
            out.push_str(&mask_digits(run));
        } else {
            out.push_str(run);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn mask_text(s: &str) -> String {
    let n = s.chars().count();
    let (head, tail) = match n {
        0..=3 => (0, 0),
        4..=7 => (1, 0),
        _ => (2, 2),
    };
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { c } else { MASK })
        .collect()
}

/// Displays (and debug-prints) a phone number or identity masked by [`mask_number`].
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_number(self.0))
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&mask_number(self.0), f)
    }
}

/// JSON keys whose string values are ids or vocabulary: kept as they are (compared lower-case).
const JSON_KEEP: [&str; 34] = [
    "callid",
    "conferenceid",
    "applicationkey",
    "event",
    "type",
    "version",
    "timestamp",
    "domain",
    "reference",
    "id",
    "status",
    "code",
    "errorcode",
    "method",
    "name",
    "locale",
    "result",
    "reason",
    "originationtype",
    "menuid",
    "severity",
    "pointer",
    "path",
    "dedupkey",
    "reportid",
    "reportreference",
    "authorization",
    "bodysha256",
    "errorreference",
    "x-timestamp",
    "date",
    "createdat",
    "finishedat",
    "sentat",
];

/// JSON keys whose string values are phone numbers or user identities: masked whole by
/// [`mask_number`] (compared lower-case). Any other string goes through [`mask_numbers_in`].
const JSON_NUMBERS: [&str; 14] = [
    "cli",
    "endpoint",
    "number",
    "destination",
    "caller",
    "called",
    "from",
    "to",
    "identity",
    "user",
    "userid",
    "username",
    "callerid",
    "msisdn",
];

/// Masks phone numbers and identities in a JSON document, in place, with the rule the logs use:
/// the one walk behind stored-record redaction (retention) and the operator console.
pub fn mask_json(v: &mut serde_json::Value) {
    mask_json_under(v, None);
}

fn mask_json_under(v: &mut serde_json::Value, key: Option<&str>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                mask_json_under(child, Some(&k.to_ascii_lowercase()));
            }
        }
        Value::Array(items) => {
            for child in items {
                mask_json_under(child, key);
            }
        }
        Value::String(s) => {
            *s = match key {
                Some(k) if JSON_KEEP.contains(&k) => return,
                Some(k) if JSON_NUMBERS.contains(&k) => mask_number(s),
                _ => mask_numbers_in(s),
            };
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_e164_numbers() {
        assert_eq!(mask_number("+46708168731"), "+467******31");
        assert_eq!(mask_number("46708168731"), "467******31");
        assert_eq!(mask_number("+462010000188"), "+462*******88");
        assert_eq!(mask_number("123456789"), "123****89");
        assert_eq!(mask_number("+1234567"), "+12***67");
        assert_eq!(mask_number("123456"), "1****6");
        assert_eq!(mask_number("1234"), "****");
        assert_eq!(mask_number("+1"), "+*");
        assert_eq!(mask_number("  +46708168731 "), "+467******31");
    }

    #[test]
    fn keeps_separators() {
        assert_eq!(mask_number("+46 70-816 87 31"), "+46 7*-*** ** 31");
        assert_eq!(mask_number("(201) 555-5555"), "(201) ***-**55");
    }

    #[test]
    fn masks_long_digit_runs_in_text_only() {
        assert_eq!(mask_numbers_in("+46701234567"), "+467******67");
        assert_eq!(mask_numbers_in("46700000000"), "467******00");
        assert_eq!(mask_numbers_in("call 12345 ok"), "call 12345 ok");
        assert_eq!(mask_numbers_in("é123456"), "é1****6");
        assert_eq!(
            mask_numbers_in("to 46700000000 (12 s)"),
            "to 467******00 (12 s)"
        );
        assert_eq!(mask_numbers_in(""), "");
    }

    #[test]
    fn placeholders_unchanged() {
        assert_eq!(mask_number("private"), "private");
        assert_eq!(mask_number("Anonymous"), "Anonymous");
        assert_eq!(mask_number(""), "");
        assert_eq!(mask_number("   "), "");
    }

    #[test]
    fn masks_sip_and_addresses() {
        assert_eq!(
            mask_number("sip:46708000000@sip.foo.com"),
            "sip:467******00@sip.foo.com"
        );
        assert_eq!(
            mask_number("SIPS:alice.smith@example.com"),
            "SIPS:al*******th@example.com"
        );
        assert_eq!(mask_number("tel:+46708168731"), "tel:+467******31");
        assert_eq!(mask_number("bob@example.com"), "***@example.com");
    }

    #[test]
    fn masks_usernames() {
        assert_eq!(mask_number("alice"), "a****");
        assert_eq!(mask_number("alice.smith"), "al*******th");
        assert_eq!(mask_number("ab"), "**");
        assert_eq!(mask_number("cli number"), "cl******er");
    }

    #[test]
    fn non_ascii_is_safe() {
        assert_eq!(mask_number("användare"), "an*****re");
        assert_eq!(mask_number("日本語"), "***");
        assert_eq!(mask_number("ü@ö"), "*@ö");
    }

    #[test]
    fn masked_display_and_debug() {
        assert_eq!(Masked("+46708168731").to_string(), "+467******31");
        assert_eq!(format!("{:?}", Masked("+46708168731")), "\"+467******31\"");
        assert_eq!(format!("{}", Masked("private")), "private");
    }

    proptest! {
        #[test]
        fn mask_number_never_panics_and_hides_long_numbers(s in "\\PC{0,40}", n in "\\+?[0-9]{7,15}") {
            let _ = mask_number(&s);
            let masked = mask_number(&n);
            prop_assert_eq!(masked.chars().count(), n.chars().count());
            prop_assert!(masked.contains('*'));
            prop_assert_ne!(masked, n);
        }

        #[test]
        fn mask_numbers_in_never_panics_and_hides_long_numbers(s in "\\PC{0,40}", n in "[0-9]{6,15}") {
            let _ = mask_numbers_in(&s);
            let text = format!("number {n} here");
            let masked = mask_numbers_in(&text);
            prop_assert_eq!(masked.chars().count(), text.chars().count());
            prop_assert!(!masked.contains(&n));
        }
    }
}
