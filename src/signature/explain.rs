//! Why a callback's signature was refused, in words an operator can act on.
//!
//! When a signature does not match, [`explain`] recomputes it over the likely variants of what the
//! sender signed and names the one that matches:
//!
//! - the path with or without a public prefix: the configured one, one named by
//!   `X-Forwarded-Prefix`, or the original path in `X-Forwarded-Uri` / `X-Original-URI`, or the path
//!   of `SVAMLGATE_PUBLIC_URL`;
//! - a trailing slash, percent-encoding, the query string;
//! - `content-type` without its parameters, with a charset, in another case, or missing;
//! - each configured credential, and each secret used as text without base64-decoding it;
//!
//! and, for a timestamp outside the window, by how much the clocks differ. When nothing matches it
//! says what is certainly right (the key is configured, Content-MD5, the timestamp's distance).
//!
//! The explanation goes to refusal records, logs, the admin API and a metrics label (its
//! [`Cause`], a fixed set), never to the requester. It never contains a secret or a signature:
//! it names paths, header values the request itself carried, and configured key names.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    content_md5, parse_authorization, signed_path, string_to_sign, AppCredential, AuthHeader,
    CallbackRequest, KeyRing, Refusal, RefusalReason, VerifyPolicy,
};

/// Most variants tried for one refusal (a few hundred at most in practice; the cap bounds the
/// work an unsigned flood could cause, on top of the refusal rate limit).
const MAX_CANDIDATES: usize = 4096;

/// Most characters of a request-supplied value quoted in an explanation.
const MAX_QUOTED: usize = 200;

/// What the refusal comes down to: the metrics label `cause` (a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The signed path has a prefix that a proxy strips (or the configured prefix is wrong).
    PathPrefix,
    /// A proxy rewrites the path into another one than a prefix change.
    PathRewritten,
    /// The signed path differs by a trailing slash.
    TrailingSlash,
    /// The signed path is percent-encoded differently.
    PercentEncoding,
    /// The query string was signed.
    QueryString,
    /// The `content-type` header was changed on the way.
    ContentType,
    /// Signed with another configured key's secret.
    OtherKey,
    /// Signed with the secret's text, not its base64-decoded bytes.
    SecretNotDecoded,
    /// The body differs from its `Content-MD5` header.
    BodyChanged,
    /// The signature is right, the timestamp is outside the window.
    ClockSkew,
    /// The key in the header is not configured.
    UnknownKey,
    /// No likely variant matches.
    Unexplained,
}

impl Cause {
    /// Every cause (for tests and the metrics documentation).
    pub const ALL: [Cause; 12] = [
        Cause::PathPrefix,
        Cause::PathRewritten,
        Cause::TrailingSlash,
        Cause::PercentEncoding,
        Cause::QueryString,
        Cause::ContentType,
        Cause::OtherKey,
        Cause::SecretNotDecoded,
        Cause::BodyChanged,
        Cause::ClockSkew,
        Cause::UnknownKey,
        Cause::Unexplained,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::PathPrefix => "path_prefix",
            Cause::PathRewritten => "path_rewritten",
            Cause::TrailingSlash => "trailing_slash",
            Cause::PercentEncoding => "percent_encoding",
            Cause::QueryString => "query_string",
            Cause::ContentType => "content_type",
            Cause::OtherKey => "other_key",
            Cause::SecretNotDecoded => "secret_not_decoded",
            Cause::BodyChanged => "body_changed",
            Cause::ClockSkew => "clock_skew",
            Cause::UnknownKey => "unknown_key",
            Cause::Unexplained => "unexplained",
        }
    }
}

/// What the request carried around the signed parts, to guess what the sender signed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Surroundings<'a> {
    /// The path as received (without the query string).
    pub received_path: &'a str,
    /// The query string as received (without `?`), if any.
    pub query: Option<&'a str>,
    /// SVAMLGATE_PUBLIC_PATH_PREFIX.
    pub public_prefix: Option<&'a str>,
    /// The path of SVAMLGATE_PUBLIC_URL.
    pub public_url_path: Option<&'a str>,
    /// `X-Forwarded-Prefix`.
    pub forwarded_prefix: Option<&'a str>,
    /// `X-Forwarded-Uri`.
    pub forwarded_uri: Option<&'a str>,
    /// `X-Original-URI`.
    pub original_uri: Option<&'a str>,
    /// `Content-MD5`, when the sender sent one.
    pub content_md5: Option<&'a str>,
}

/// What is certainly right about a refused request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certain {
    /// The key named by the request is configured here.
    pub key_known: bool,
    /// `matches_header` (the body's MD5 equals the Content-MD5 header), `differs_from_header`, or
    /// `no_header` (then it is computed over the bytes received, as always), or `not_read` (refused
    /// from its headers, before the body was read).
    pub content_md5: String,
    /// The body length the signature was checked over.
    pub body_bytes: usize,
    /// Whether the timestamp is inside the window (null when it did not parse).
    pub timestamp_in_window: Option<bool>,
    /// This host's clock minus `x-timestamp`, in seconds (positive: the timestamp is behind).
    pub clock_difference_secs: Option<f64>,
    /// The path the signature was checked over.
    pub checked_path: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The cause (the metrics label).
    pub cause: Cause,
    /// What matches, or what is certainly right when nothing does.
    pub message: String,
    /// What to change, when known.
    pub fix: Option<String>,
    /// What is certainly right.
    pub certain: Certain,
}

impl Explanation {
    /// One line for logs: the message and the fix.
    pub fn line(&self) -> String {
        match &self.fix {
            Some(fix) => format!("{}: {fix}", self.message),
            None => self.message.clone(),
        }
    }
}

/// One difference between what was checked and what the sender may have signed.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Prefix { path: String, fix: String },
    Rewritten { path: String, source: &'static str },
    TrailingSlash { path: String },
    Percent { path: String },
    Query { path: String },
    ContentType { signed: String },
    OtherKey { key: String },
    SecretNotDecoded { key: String },
}

impl Change {
    fn cause(&self) -> Cause {
        match self {
            Change::Prefix { .. } => Cause::PathPrefix,
            Change::Rewritten { .. } => Cause::PathRewritten,
            Change::TrailingSlash { .. } => Cause::TrailingSlash,
            Change::Percent { .. } => Cause::PercentEncoding,
            Change::Query { .. } => Cause::QueryString,
            Change::ContentType { .. } => Cause::ContentType,
            Change::OtherKey { .. } => Cause::OtherKey,
            Change::SecretNotDecoded { .. } => Cause::SecretNotDecoded,
        }
    }

    /// What matches under this change. `named_key` is the key the request named; `sent_ct` its
    /// `content-type`.
    fn message(&self, named_key: &str, sent_ct: Option<&str>) -> String {
        match self {
            Change::Prefix { path, .. } => format!("matches if the path is `{}`", quote(path)),
            Change::Rewritten { path, source } => format!(
                "matches if the path is `{}` (the path in {source})",
                quote(path)
            ),
            Change::TrailingSlash { path } => format!(
                "matches if the path is `{}` (a trailing slash differs)",
                quote(path)
            ),
            Change::Percent { path } => format!(
                "matches if the path is `{}` (percent-encoding differs)",
                quote(path)
            ),
            Change::Query { path } => format!(
                "matches if the query string is signed too (`{}`)",
                quote(path)
            ),
            Change::ContentType { signed } => format!(
                "matches if content-type is {} (the request has {})",
                shown_ct(Some(signed)),
                shown_ct(sent_ct)
            ),
            Change::OtherKey { key } => format!(
                "matches with the secret configured for key `{}`, not the one for `{}`",
                quote(key),
                quote(named_key)
            ),
            Change::SecretNotDecoded { key } => format!(
                "matches if the secret of key `{}` is used as text, without base64-decoding it \
                 (a known SDK mistake)",
                quote(key)
            ),
        }
    }

    /// What to change so that the signature matches.
    fn fix(&self) -> String {
        let fix = match self {
            Change::Prefix { fix, .. } => return fix.clone(),
            Change::Rewritten { .. } => {
                "a proxy rewrites the path: make it forward the public path unchanged, or serve \
                 svamlgate at it with SVAMLGATE_CALLBACK_PATH"
            }
            Change::TrailingSlash { .. } => {
                "register the callback URL at Sinch exactly as svamlgate serves it \
                 (SVAMLGATE_CALLBACK_PATH), without or with the same trailing slash"
            }
            Change::Percent { .. } => {
                "a proxy re-encodes the path: make it forward the path unchanged, or use a \
                 callback path without characters that need encoding"
            }
            Change::Query { .. } => {
                "remove the query string from the callback URL registered at Sinch"
            }
            Change::ContentType { .. } => {
                "make the proxy pass the content-type header through unchanged"
            }
            Change::OtherKey { .. } => {
                "pair each application key with its own secret (SINCH_APPLICATION_KEY and \
                 SINCH_APPLICATION_SECRET, or SINCH_APPLICATIONS)"
            }
            Change::SecretNotDecoded { .. } => {
                "the signer must base64-decode the application secret before using it as the \
                 HMAC key"
            }
        };
        fix.to_owned()
    }
}

fn quote(s: &str) -> String {
    let s: String = s.chars().take(MAX_QUOTED).collect();
    s.replace('`', "'")
}

fn shown_ct(ct: Option<&str>) -> String {
    match ct {
        None | Some("") => "missing".to_owned(),
        Some(ct) => format!("`{}`", quote(ct)),
    }
}

/// Explains a refusal, or `None` for reasons whose catalog message says it all (a malformed or
/// missing header, Basic auth, an unparseable timestamp). `req` is what was checked (its path is
/// the signed path, prefix included); `around` what the request carried besides.
pub fn explain(
    ring: &KeyRing,
    req: &CallbackRequest<'_>,
    around: &Surroundings<'_>,
    refusal: &Refusal,
    now: OffsetDateTime,
    policy: &VerifyPolicy,
) -> Option<Explanation> {
    let difference = req
        .x_timestamp
        .and_then(crate::timestamp::parse)
        .map(|t| (now - t).as_seconds_f64());
    let window = policy.window.as_secs_f64();
    let named = refusal.key.as_deref();
    let certain = certain_of(ring, req, around, named, difference, window);
    match refusal.reason {
        RefusalReason::TimestampTooOld | RefusalReason::TimestampInFuture => {
            Some(clock_skew(req, difference?, window, certain))
        }
        RefusalReason::UnknownKey => Some(unknown_key_searched(
            ring,
            req,
            around,
            named.unwrap_or(""),
            certain,
        )),
        RefusalReason::SignatureMismatch => {
            Some(mismatch(ring, req, around, named, window, certain))
        }
        _ => None,
    }
}

/// What is certainly right about the request: `difference` is this host's clock minus
/// `x-timestamp` in seconds, `window` the accepted distance.
fn certain_of(
    ring: &KeyRing,
    req: &CallbackRequest<'_>,
    around: &Surroundings<'_>,
    named: Option<&str>,
    difference: Option<f64>,
    window: f64,
) -> Certain {
    let md5 = content_md5(req.body);
    let content_md5 = match around.content_md5.map(str::trim) {
        None | Some("") => "no_header",
        Some(h) if h == md5 => "matches_header",
        Some(_) => "differs_from_header",
    };
    Certain {
        key_known: named.is_some_and(|k| ring.matching(k).next().is_some()),
        content_md5: content_md5.to_owned(),
        body_bytes: req.body.len(),
        timestamp_in_window: difference.map(|d| d.abs() <= window),
        clock_difference_secs: difference.map(|d| (d * 1000.0).round() / 1000.0),
        checked_path: quote(req.path),
    }
}

/// A right signature with a timestamp `d` seconds from this host's clock, outside the window.
fn clock_skew(req: &CallbackRequest<'_>, d: f64, window: f64, certain: Certain) -> Explanation {
    let (how, hint) = if d > 0.0 {
        (
            "behind",
            "the request is late or replayed, or this host's clock is ahead",
        )
    } else {
        (
            "ahead of",
            "this host's clock is behind, or the sender's is ahead",
        )
    };
    Explanation {
        cause: Cause::ClockSkew,
        message: format!(
            "the signature is right, but x-timestamp `{}` is {:.1} s {how} this host's \
             clock (the window is ±{window:.0} s): {hint}",
            quote(req.x_timestamp.unwrap_or("")),
            d.abs()
        ),
        fix: Some(
            "check time synchronisation (NTP) on this host; a replayed request stays \
             refused"
                .to_owned(),
        ),
        certain,
    }
}

/// A key that is not configured, the body read: the configured keys, and a configured secret
/// the request was signed with under the wrong key name, if any.
fn unknown_key_searched(
    ring: &KeyRing,
    req: &CallbackRequest<'_>,
    around: &Surroundings<'_>,
    named: &str,
    certain: Certain,
) -> Explanation {
    let mut e = unknown_key(ring, named, req.path);
    e.certain = Certain {
        key_known: false,
        ..certain
    };
    if let Some(changes) = search(ring, req, around, Some(named), true) {
        for c in changes {
            let _ = write!(e.message, "; {}", c.message(named, req.content_type));
        }
    }
    e
}

/// A signature that does not match: the changes under which it does, else a body changed on
/// the way, else what is certainly right.
fn mismatch(
    ring: &KeyRing,
    req: &CallbackRequest<'_>,
    around: &Surroundings<'_>,
    named: Option<&str>,
    window: f64,
    certain: Certain,
) -> Explanation {
    if let Some(changes) = search(ring, req, around, named, false) {
        return matched(&changes, named.unwrap_or(""), req.content_type, certain);
    }
    if certain.content_md5 == "differs_from_header" {
        return body_changed(certain);
    }
    nothing_matched(around, named.unwrap_or(""), window, certain)
}

/// The changes under which the signature matches, each described, the first one the cause.
fn matched(
    changes: &[Change],
    named: &str,
    sent_ct: Option<&str>,
    certain: Certain,
) -> Explanation {
    let cause = changes.first().map_or(Cause::Unexplained, Change::cause);
    let mut messages = Vec::new();
    let mut fixes = Vec::new();
    for c in changes {
        messages.push(c.message(named, sent_ct));
        fixes.push(c.fix());
    }
    Explanation {
        cause,
        message: messages.join(", and "),
        fix: Some(fixes.join("; ")),
        certain,
    }
}

/// The body's MD5 differs from its Content-MD5 header.
fn body_changed(certain: Certain) -> Explanation {
    Explanation {
        cause: Cause::BodyChanged,
        message: "the body's MD5 differs from the Content-MD5 header: the body was \
                  changed on the way (re-serialized, re-encoded or truncated)"
            .to_owned(),
        fix: Some("make every proxy pass the body through byte for byte".to_owned()),
        certain,
    }
}

/// No likely variant matches: what is certainly right, and how to have a stripped prefix named.
fn nothing_matched(
    around: &Surroundings<'_>,
    named: &str,
    window: f64,
    certain: Certain,
) -> Explanation {
    let mut message = unexplained(&certain, named, window);
    if around.forwarded_prefix.is_none()
        && around.forwarded_uri.is_none()
        && around.original_uri.is_none()
        && around.public_url_path.is_none()
    {
        message.push_str(
            ". If a proxy strips a path prefix, set SVAMLGATE_PUBLIC_URL to the callback \
             URL registered at Sinch (or have the proxy send X-Forwarded-Prefix) and the \
             prefix will be named",
        );
    }
    Explanation {
        cause: Cause::Unexplained,
        message,
        fix: Some(
            "check that the configured secret is the one the Sinch dashboard shows for \
             this key, and that nothing changes the body, path or headers in transit"
                .to_owned(),
        ),
        certain,
    }
}

/// The explanation of a key that is not configured, from the headers alone (a request refused
/// before its body is read): the configured keys.
pub fn unknown_key(ring: &KeyRing, named: &str, checked_path: &str) -> Explanation {
    let configured: Vec<String> = ring.keys().iter().map(|k| format!("`{k}`")).collect();
    Explanation {
        cause: Cause::UnknownKey,
        message: format!(
            "the key `{}` is not configured here (configured: {})",
            quote(named),
            configured.join(", ")
        ),
        fix: Some(
            "add this Sinch application's key and secret to the configuration, or point the \
             application's callback URL elsewhere"
                .to_owned(),
        ),
        certain: Certain {
            key_known: false,
            content_md5: "not_read".to_owned(),
            body_bytes: 0,
            timestamp_in_window: None,
            clock_difference_secs: None,
            checked_path: quote(checked_path),
        },
    }
}

fn unexplained(certain: &Certain, key: &str, window: f64) -> String {
    let mut out = format!(
        "no likely variant matches. Certainly right: the key `{}` is configured",
        quote(key)
    );
    match certain.content_md5.as_str() {
        "matches_header" => out.push_str("; Content-MD5 matches the body"),
        _ => {
            let _ = write!(
                out,
                "; Content-MD5 is computed over the {} bytes received",
                certain.body_bytes
            );
        }
    }
    match (certain.timestamp_in_window, certain.clock_difference_secs) {
        (Some(true), Some(d)) => {
            let _ = write!(
                out,
                "; the timestamp is in the window ({d:.1} s from this host's clock, window \
                 ±{window:.0} s)"
            );
        }
        (Some(false), Some(d)) => {
            let _ = write!(
                out,
                "; note the timestamp is {d:.1} s from this host's clock, outside the window"
            );
        }
        _ => {}
    }
    let _ = write!(
        out,
        "; the path checked is `{}`. So the secret differs from the sender's, or the body, path \
         or headers changed in a way not tried",
        certain.checked_path
    );
    out
}

/// A path the sender may have signed, with the changes it stands for.
type PathVariant = (String, Vec<Change>);

/// The variants of the path, each with the changes it stands for (none for the path checked):
/// first the base paths, then each one's trailing slash, percent-encoding and query string.
fn path_variants(checked: &str, around: &Surroundings<'_>) -> Vec<PathVariant> {
    let bases = base_paths(checked, around);
    let mut out: Vec<PathVariant> = Vec::new();
    for (base, changes) in &bases {
        push_new(&mut out, base.clone(), changes.clone());
    }
    for (base, changes) in &bases {
        push_neighbours(&mut out, base, changes, around.query);
    }
    out
}

/// The path checked, then the paths a public prefix or a proxy's header points to.
fn base_paths(checked: &str, around: &Surroundings<'_>) -> Vec<PathVariant> {
    let mut bases: Vec<PathVariant> = vec![(checked.to_owned(), Vec::new())];
    let bare = signed_path(around.received_path, None);
    bases.extend(without_configured_prefix(around, &bare));
    bases.extend(with_forwarded_prefix(around));
    for (source, uri) in [
        ("X-Forwarded-Uri", around.forwarded_uri),
        ("X-Original-URI", around.original_uri),
        ("SVAMLGATE_PUBLIC_URL", around.public_url_path),
    ] {
        if let Some(uri) = uri.map(str::trim).filter(|u| !u.is_empty()) {
            bases.push(original_path(source, uri, &bare));
        }
    }
    bases
}

/// The received path without the configured public prefix (when one is set).
fn without_configured_prefix(around: &Surroundings<'_>, bare: &str) -> Option<PathVariant> {
    around
        .public_prefix
        .is_some_and(|p| !p.trim().trim_matches('/').is_empty())
        .then(|| {
            (
                bare.to_owned(),
                vec![Change::Prefix {
                    path: bare.to_owned(),
                    fix: "unset SVAMLGATE_PUBLIC_PATH_PREFIX (the proxy does not strip it)"
                        .to_owned(),
                }],
            )
        })
}

/// The received path under the prefix named by `X-Forwarded-Prefix` (when one is sent).
fn with_forwarded_prefix(around: &Surroundings<'_>) -> Option<PathVariant> {
    let prefix = around
        .forwarded_prefix
        .map(str::trim)
        .filter(|p| !p.trim_matches('/').is_empty())?;
    let path = signed_path(around.received_path, Some(prefix));
    let prefix = format!("/{}", prefix.trim_matches('/'));
    Some((
        path.clone(),
        vec![Change::Prefix {
            path,
            fix: format!(
                "set SVAMLGATE_PUBLIC_PATH_PREFIX={} (sent as X-Forwarded-Prefix)",
                quote(&prefix)
            ),
        }],
    ))
}

/// The path of an original URI named by `source`: a prefix of the `bare` received path, or a
/// rewritten path.
fn original_path(source: &'static str, uri: &str, bare: &str) -> PathVariant {
    let path = signed_path(uri, None);
    let change = match path.strip_suffix(bare) {
        Some(prefix) if !prefix.is_empty() && bare != "/" => Change::Prefix {
            path: path.clone(),
            fix: format!(
                "set SVAMLGATE_PUBLIC_PATH_PREFIX={} (from {source})",
                quote(prefix)
            ),
        },
        _ => Change::Rewritten {
            path: path.clone(),
            source,
        },
    };
    (path, vec![change])
}

/// Adds `path` unless it is already there (the first, fewest-changes variant wins).
fn push_new(out: &mut Vec<PathVariant>, path: String, changes: Vec<Change>) {
    if !out.iter().any(|(p, _)| *p == path) {
        out.push((path, changes));
    }
}

/// Adds the variants of `base` (which stands for `changes`): the trailing slash toggled, each
/// percent-encoding variant, and the query string appended.
fn push_neighbours(
    out: &mut Vec<PathVariant>,
    base: &str,
    changes: &[Change],
    query: Option<&str>,
) {
    let with = |c: Change| {
        let mut v = changes.to_vec();
        v.push(c);
        v
    };
    let toggled = match base.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        Some(_) => base.to_owned(),
        None => format!("{base}/"),
    };
    if toggled != base {
        push_new(
            out,
            toggled.clone(),
            with(Change::TrailingSlash { path: toggled }),
        );
    }
    for variant in percent_variants(base) {
        push_new(
            out,
            variant.clone(),
            with(Change::Percent { path: variant }),
        );
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let path = format!("{base}?{q}");
        push_new(out, path.clone(), with(Change::Query { path }));
    }
}

/// The path percent-decoded, fully percent-encoded, and with its escapes' hex in the other case.
fn percent_variants(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if path.contains('%') {
        if let Some(decoded) = percent_decode(path) {
            out.push(decoded);
        }
        let bytes = path.as_bytes();
        let (mut upper, mut lower) = (String::new(), String::new());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit()
            {
                let hex = &path[i + 1..i + 3];
                upper.push('%');
                upper.push_str(&hex.to_ascii_uppercase());
                lower.push('%');
                lower.push_str(&hex.to_ascii_lowercase());
                i += 3;
            } else {
                let ch = path[i..].chars().next().unwrap_or('?');
                upper.push(ch);
                lower.push(ch);
                i += ch.len_utf8();
            }
        }
        out.push(upper);
        out.push(lower);
    }
    let encoded = percent_encode(path);
    out.push(encoded);
    out.retain(|v| v != path);
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@%".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The variants of `content-type` (none for the one received).
fn content_type_variants(sent: Option<&str>) -> Vec<(String, Vec<Change>)> {
    let sent_text = sent.unwrap_or("");
    let mut list: Vec<String> = vec![sent_text.to_owned()];
    let base = sent_text.split(';').next().unwrap_or("").trim();
    let bases: Vec<&str> = if base.is_empty() {
        vec!["application/json"]
    } else {
        vec![base]
    };
    for b in bases {
        list.push(b.to_owned());
        list.push(format!("{b}; charset=utf-8"));
        list.push(format!("{b}; charset=UTF-8"));
        list.push(format!("{b};charset=utf-8"));
        list.push(format!("{b};charset=UTF-8"));
    }
    list.push(sent_text.to_ascii_lowercase());
    list.push(sent_text.to_ascii_uppercase());
    list.push(String::new());
    let mut out: Vec<(String, Vec<Change>)> = Vec::new();
    for ct in list {
        if out.iter().any(|(c, _)| *c == ct) {
            continue;
        }
        let changes = if ct == sent_text {
            Vec::new()
        } else {
            vec![Change::ContentType { signed: ct.clone() }]
        };
        out.push((ct, changes));
    }
    out
}

/// The credentials to try: each with the changes it stands for (none for the named key's own).
fn credential_variants<'r>(
    ring: &'r KeyRing,
    named: Option<&str>,
) -> Vec<(&'r AppCredential, bool, Vec<Change>)> {
    let mut out = Vec::new();
    for cred in ring.all() {
        let own = named.is_some_and(|k| cred.key().eq_ignore_ascii_case(k));
        let key = cred.key().to_owned();
        let base: Vec<Change> = if own {
            Vec::new()
        } else {
            vec![Change::OtherKey { key: key.clone() }]
        };
        out.push((cred, true, base.clone()));
        let mut raw = base;
        raw.push(Change::SecretNotDecoded { key });
        out.push((cred, false, raw));
    }
    out
}

/// The smallest set of changes under which the presented signature matches, if any.
/// `any_key`: the named key is not configured, so every credential counts as "other" but
/// its change is not reported (the message already says the key is unknown).
fn search(
    ring: &KeyRing,
    req: &CallbackRequest<'_>,
    around: &Surroundings<'_>,
    named: Option<&str>,
    any_key: bool,
) -> Option<Vec<Change>> {
    let auth = parse_authorization(req.authorization?, false).ok()?;
    let AuthHeader::Application { signature, .. } = auth else {
        return None;
    };
    let presented = STANDARD.decode(signature).ok()?;
    let ts = req.x_timestamp?;
    let md5 = content_md5(req.body);
    let paths = path_variants(req.path, around);
    let cts = content_type_variants(req.content_type);
    let creds = credential_variants(ring, if any_key { None } else { named });
    let mut combos: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (pi, (_, pc)) in paths.iter().enumerate() {
        for (ci, (_, cc)) in cts.iter().enumerate() {
            for (ki, (_, _, kc)) in creds.iter().enumerate() {
                let kc_len = if any_key {
                    kc.iter()
                        .filter(|c| !matches!(c, Change::OtherKey { .. }))
                        .count()
                } else {
                    kc.len()
                };
                let score = pc.len() + cc.len() + kc_len;
                if score == 0 && !any_key {
                    continue;
                }
                combos.push((score, pi, ci, ki));
            }
        }
    }
    combos.sort_by_key(|c| c.0);
    for &(_, pi, ci, ki) in combos.iter().take(MAX_CANDIDATES) {
        let sts = string_to_sign(req.method, &md5, &cts[ci].0, ts, &paths[pi].0);
        let (cred, decoded, kc) = &creds[ki];
        let ok = if *decoded {
            cred.verify_signature(&sts, &presented)
        } else {
            cred.verify_signature_undecoded(&sts, &presented)
        };
        if ok {
            let mut changes = paths[pi].1.clone();
            changes.extend(cts[ci].1.iter().cloned());
            changes.extend(kc.iter().cloned());
            return Some(changes);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{sign, verify};
    use time::macros::datetime;

    const KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
    const SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";
    const OTHER: &str = "other-key";
    const OTHER_SECRET: &str = "bXkta2V5LXNlY3JldA==";
    const BODY: &[u8] = br#"{"event":"ice","callid":"c1"}"#;
    const TS: &str = "2024-05-01T12:00:00Z";
    const CT: &str = "application/json; charset=utf-8";

    fn now() -> OffsetDateTime {
        datetime!(2024-05-01 12:00:10 UTC)
    }

    fn ring() -> KeyRing {
        KeyRing::from_credentials([
            AppCredential::new(KEY, SECRET).unwrap(),
            AppCredential::new(OTHER, OTHER_SECRET).unwrap(),
        ])
    }

    /// Signs `signed_path`/`signed_ct` with `cred`, checks it against `checked_path`/`sent_ct`,
    /// and explains the refusal.
    fn case(
        cred: &AppCredential,
        signed_path: &str,
        signed_ct: Option<&str>,
        checked_path: &str,
        sent_ct: Option<&str>,
        around: Surroundings<'_>,
    ) -> (Explanation, String) {
        let auth = sign(cred, "POST", signed_path, signed_ct, TS, BODY);
        let req = CallbackRequest {
            method: "POST",
            path: checked_path,
            content_type: sent_ct,
            x_timestamp: Some(TS),
            authorization: Some(&auth),
            body: BODY,
        };
        let p = VerifyPolicy::default();
        let refusal = verify(&ring(), &req, now(), &p).unwrap_err();
        let around = Surroundings {
            received_path: if around.received_path.is_empty() {
                checked_path
            } else {
                around.received_path
            },
            ..around
        };
        let e = explain(&ring(), &req, &around, &refusal, now(), &p).expect("explained");
        (e, auth)
    }

    fn own() -> AppCredential {
        AppCredential::new(KEY, SECRET).unwrap()
    }

    fn assert_no_secret(e: &Explanation, auth: &str) {
        let text = serde_json::to_string(e).unwrap();
        let sig = auth.rsplit(':').next().unwrap();
        for secret in [SECRET, OTHER_SECRET, sig] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn forwarded_prefix_names_the_setting() {
        let around = Surroundings {
            forwarded_prefix: Some("/gw"),
            ..Surroundings::default()
        };
        let (e, auth) = case(
            &own(),
            "/gw/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            around,
        );
        assert_eq!(e.cause, Cause::PathPrefix);
        assert!(
            e.line().contains(
                "matches if the path is `/gw/sinch/callback`: set SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"
            ),
            "{}",
            e.line()
        );
        assert_no_secret(&e, &auth);
    }

    #[test]
    fn forwarded_uri_and_original_uri_and_public_url() {
        for (name, around) in [
            (
                "X-Forwarded-Uri",
                Surroundings {
                    forwarded_uri: Some("/gw/sinch/callback?x=1"),
                    ..Surroundings::default()
                },
            ),
            (
                "X-Original-URI",
                Surroundings {
                    original_uri: Some("/gw/sinch/callback"),
                    ..Surroundings::default()
                },
            ),
            (
                "SVAMLGATE_PUBLIC_URL",
                Surroundings {
                    public_url_path: Some("https://example.com/gw/sinch/callback"),
                    ..Surroundings::default()
                },
            ),
        ] {
            let (e, _) = case(
                &own(),
                "/gw/sinch/callback",
                Some(CT),
                "/sinch/callback",
                Some(CT),
                around,
            );
            assert_eq!(e.cause, Cause::PathPrefix, "{name}");
            let line = e.line();
            assert!(line.contains("SVAMLGATE_PUBLIC_PATH_PREFIX=/gw"), "{line}");
            assert!(line.contains(name), "{line}");
        }
        // Not a prefix: the path was rewritten.
        let around = Surroundings {
            original_uri: Some("/voice/in"),
            ..Surroundings::default()
        };
        let (e, _) = case(
            &own(),
            "/voice/in",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            around,
        );
        assert_eq!(e.cause, Cause::PathRewritten);
        assert!(e.message.contains("`/voice/in`"), "{}", e.message);
    }

    #[test]
    fn configured_prefix_that_the_proxy_does_not_strip() {
        let around = Surroundings {
            received_path: "/sinch/callback",
            public_prefix: Some("/gw"),
            ..Surroundings::default()
        };
        let (e, _) = case(
            &own(),
            "/sinch/callback",
            Some(CT),
            "/gw/sinch/callback",
            Some(CT),
            around,
        );
        assert_eq!(e.cause, Cause::PathPrefix);
        assert!(
            e.line().contains("unset SVAMLGATE_PUBLIC_PATH_PREFIX"),
            "{}",
            e.line()
        );
    }

    #[test]
    fn trailing_slash_percent_encoding_and_query() {
        let (e, _) = case(
            &own(),
            "/sinch/callback/",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::TrailingSlash);
        assert!(e.message.contains("`/sinch/callback/`"), "{}", e.message);

        let (e, _) = case(
            &own(),
            "/sinch/call back",
            Some(CT),
            "/sinch/call%20back",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::PercentEncoding);
        let (e, _) = case(
            &own(),
            "/sinch/call%3aback",
            Some(CT),
            "/sinch/call%3Aback",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::PercentEncoding);

        let around = Surroundings {
            query: Some("tenant=7"),
            ..Surroundings::default()
        };
        let (e, _) = case(
            &own(),
            "/sinch/callback?tenant=7",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            around,
        );
        assert_eq!(e.cause, Cause::QueryString);
        assert!(e.line().contains("remove the query string"), "{}", e.line());
    }

    #[test]
    fn content_type_charset_case_and_missing() {
        for (signed, sent) in [
            (Some("application/json"), Some(CT)),
            (Some(CT), Some("application/json")),
            (Some("application/json; charset=UTF-8"), Some(CT)),
            (Some("APPLICATION/JSON; CHARSET=UTF-8"), Some(CT)),
            (None, Some(CT)),
            (Some("application/json"), None),
        ] {
            let (e, _) = case(
                &own(),
                "/sinch/callback",
                signed,
                "/sinch/callback",
                sent,
                Surroundings::default(),
            );
            assert_eq!(e.cause, Cause::ContentType, "{signed:?} {sent:?}");
            assert!(
                e.message.contains("matches if content-type is"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn other_key_and_undecoded_secret() {
        // The header names KEY, but it was signed with OTHER's secret.
        let swapped = AppCredential::new(KEY, OTHER_SECRET).unwrap();
        let (e, auth) = case(
            &swapped,
            "/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::OtherKey);
        assert!(e.message.contains("`other-key`"), "{}", e.message);
        assert_no_secret(&e, &auth);

        // Signed with the base64 text of the secret as HMAC key.
        let text_key = STANDARD.encode(SECRET.as_bytes());
        let undecoded = AppCredential::new(KEY, &text_key).unwrap();
        let (e, auth) = case(
            &undecoded,
            "/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::SecretNotDecoded);
        assert!(
            e.message.contains("without base64-decoding"),
            "{}",
            e.message
        );
        assert_no_secret(&e, &auth);
    }

    #[test]
    fn two_changes_at_once_are_both_named() {
        let around = Surroundings {
            forwarded_prefix: Some("gw"),
            ..Surroundings::default()
        };
        let (e, _) = case(
            &own(),
            "/gw/sinch/callback",
            Some("application/json"),
            "/sinch/callback",
            Some(CT),
            around,
        );
        assert_eq!(e.cause, Cause::PathPrefix);
        assert!(e.message.contains("content-type"), "{}", e.message);
    }

    #[test]
    fn nothing_matches_says_what_is_right() {
        let stranger = AppCredential::new(KEY, "JViE5vDor0Sw3WllZka15Q==").unwrap();
        let (e, auth) = case(
            &stranger,
            "/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::Unexplained);
        assert!(e.certain.key_known);
        assert_eq!(e.certain.timestamp_in_window, Some(true));
        assert_eq!(e.certain.clock_difference_secs, Some(10.0));
        assert!(
            e.message.contains("Certainly right: the key"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("the timestamp is in the window"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("set SVAMLGATE_PUBLIC_URL"),
            "{}",
            e.message
        );
        assert_no_secret(&e, &auth);

        // A Content-MD5 header that matches is named; one that differs is the cause.
        let md5 = content_md5(BODY);
        let around = Surroundings {
            content_md5: Some(&md5),
            ..Surroundings::default()
        };
        let (e, _) = case(
            &stranger,
            "/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            around,
        );
        assert!(
            e.message.contains("Content-MD5 matches the body"),
            "{}",
            e.message
        );
        let around = Surroundings {
            content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA=="),
            ..Surroundings::default()
        };
        let (e, _) = case(
            &stranger,
            "/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            around,
        );
        assert_eq!(e.cause, Cause::BodyChanged);
    }

    #[test]
    fn stale_timestamp_gives_the_clock_difference() {
        let auth = sign(&own(), "POST", "/cb", Some(CT), TS, BODY);
        let req = CallbackRequest {
            method: "POST",
            path: "/cb",
            content_type: Some(CT),
            x_timestamp: Some(TS),
            authorization: Some(&auth),
            body: BODY,
        };
        let p = VerifyPolicy::default();
        let late = datetime!(2024-05-01 12:06:52.5 UTC);
        let refusal = verify(&ring(), &req, late, &p).unwrap_err();
        let around = Surroundings {
            received_path: "/cb",
            ..Surroundings::default()
        };
        let e = explain(&ring(), &req, &around, &refusal, late, &p).unwrap();
        assert_eq!(e.cause, Cause::ClockSkew);
        assert!(e.message.contains("412.5 s behind"), "{}", e.message);
        let early = datetime!(2024-05-01 11:50:00 UTC);
        let refusal = verify(&ring(), &req, early, &p).unwrap_err();
        let e = explain(&ring(), &req, &around, &refusal, early, &p).unwrap();
        assert!(e.message.contains("600.0 s ahead of"), "{}", e.message);
    }

    #[test]
    fn unknown_key_lists_the_configured_ones_and_a_matching_secret() {
        let wrong_name = AppCredential::new("typo-key", OTHER_SECRET).unwrap();
        let (e, auth) = case(
            &wrong_name,
            "/sinch/callback",
            Some(CT),
            "/sinch/callback",
            Some(CT),
            Surroundings::default(),
        );
        assert_eq!(e.cause, Cause::UnknownKey);
        assert!(
            e.message.contains("`typo-key` is not configured"),
            "{}",
            e.message
        );
        assert!(e.message.contains("`other-key`"), "{}", e.message);
        assert!(!e.certain.key_known);
        assert_no_secret(&e, &auth);
    }

    #[test]
    fn percent_helpers() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%2"), Some("/a%2".to_owned()));
        assert_eq!(percent_encode("/a b"), "/a%20b");
        assert!(percent_variants("/a%3ab").contains(&"/a%3Ab".to_owned()));
        assert!(percent_variants("/plain").is_empty());
    }
}
