//! Sinch Voice callback signatures: verifying the `authorization` header of incoming callbacks
//! (this file), and signing requests (`signing.rs`: tests, the `svamlgate sign` CLI, forwarded
//! requests to customer apps, the Calling API client) with the credentials of `keys.rs`.
//! Timestamps are read and written by [`crate::timestamp`].
//!
//! # Algorithm (Sinch "callback signed request", application scheme)
//!
//! ```text
//! authorization = "application " + key + ":" + Base64(HMAC-SHA256(Base64Decode(secret), StringToSign))
//! StringToSign  = VERB "\n" Content-MD5 "\n" content-type "\n" "x-timestamp:" x-timestamp "\n" path
//! Content-MD5   = Base64(MD5(raw body bytes)), or "" when the body is empty
//! ```
//! Header values are used verbatim (`content-type` is `""` when absent), the body is hashed as the
//! exact bytes received, the verb is upper-cased, and there is no trailing newline.
//!
//! # What [`verify`] does beyond Sinch's SDKs
//!
//! * compares the MAC in constant time (`Mac::verify_slice`); the SDKs use plain equality;
//! * enforces freshness of `x-timestamp` ([`VerifyPolicy::window`], default ±300 s, inclusive);
//!   no SDK checks the age, so they accept replays forever;
//! * accepts the scheme word in any case (the .NET SDK only accepts lower-case `application`);
//! * several credentials at once ([`KeyRing`]): several applications, or two secrets for one key
//!   while a secret is being rotated;
//! * decodes secrets strictly (see [`AppCredential::new`]) and says which check failed, with a
//!   catalog error code, without ever revealing the secret or the expected signature.
//!
//! # Order of checks
//!
//! 1. credentials configured at all (40108) — a deployment problem, reported first;
//! 2. `authorization` present, well-formed, supported scheme (40100, 40107);
//! 3. application key known (40108);
//! 4. `x-timestamp` present and parseable (40101);
//! 5. signature (40102), or the Basic secret (40107);
//! 6. freshness of `x-timestamp` (40105).
//!
//! Steps 1–4 are cheap syntax/lookup checks that reveal nothing secret. The signature is checked
//! *before* freshness on purpose: a client that cannot sign always gets 40102, whatever timestamp
//! it sends, so it cannot probe this server's clock or window; and a genuine Sinch request that
//! is merely late (or replayed) is reported accurately as 40105 instead of as a bad signature.

use crate::catalog::code;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use time::OffsetDateTime;

pub mod explain;
mod keys;
pub mod settings;
mod signing;

/// The form of `x-timestamp` that [`sign`] expects (see [`crate::timestamp::format`]).
pub use crate::timestamp::format as format_timestamp;
pub use explain::{explain, Cause, Certain, Explanation, Surroundings};
pub use keys::{AppCredential, CredentialError, KeyRing};
pub use signing::{body_digest, content_md5, sign, signed_path, string_to_sign};

/// Longest header-supplied key copied into a [`Refusal`] (keys are attacker-controlled there).
const MAX_REPORTED_KEY_CHARS: usize = 128;

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// The parts of an incoming callback that the signature covers. Header values must be passed
/// verbatim as received (no trimming, no re-encoding); `body` is the raw body bytes; `path` is
/// normally [`signed_path`] of the request path.
#[derive(Debug, Clone, Copy)]
pub struct CallbackRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The signed path (see [`signed_path`]).
    pub path: &'a str,
    /// `content-type` header value, if present.
    pub content_type: Option<&'a str>,
    /// `x-timestamp` header value, if present.
    pub x_timestamp: Option<&'a str>,
    /// `authorization` header value, if present.
    pub authorization: Option<&'a str>,
    /// Raw body bytes.
    pub body: &'a [u8],
}

/// Verification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Maximum distance between `x-timestamp` and now, applied in both directions and
    /// **inclusive**: exactly `window` old (or ahead) is accepted, one nanosecond more is refused.
    /// Default 300 s. Sinch publishes no tolerance; 5 minutes matches common practice.
    pub window: std::time::Duration,
    /// Accept `authorization: Basic <key>:<secret>` (as Sinch's Node SDK does) or
    /// `Basic base64(<key>:<secret>)` (RFC 7617), where `<secret>` is the base64 secret text.
    /// Default false: Sinch signs Voice callbacks with the `application` scheme.
    /// Basic requests still need a valid, fresh `x-timestamp`.
    pub allow_basic: bool,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            window: std::time::Duration::from_secs(300),
            allow_basic: false,
        }
    }
}

/// The authorization scheme of a verified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `application <key>:<signature>` (HMAC-SHA256 signature).
    Application,
    /// `Basic <key>:<secret>` (only with [`VerifyPolicy::allow_basic`]).
    Basic,
}

impl Scheme {
    /// `"application"` or `"basic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Application => "application",
            Scheme::Basic => "basic",
        }
    }
}

/// A successfully verified callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The application key, spelled as configured.
    pub key: String,
    /// The request's `x-timestamp`, in UTC.
    pub timestamp: OffsetDateTime,
    /// The scheme used.
    pub scheme: Scheme,
}

/// Why a callback was refused (a vocabulary: `refusals.reason`).
pub use crate::outcome::RefusalReason;

impl RefusalReason {
    /// The Sinch catalog error code for this refusal (all are HTTP 401).
    pub fn error_code(self) -> u32 {
        match self {
            RefusalReason::NoKeysConfigured | RefusalReason::UnknownKey => {
                code::INVALID_CREDENTIALS
            }
            RefusalReason::AuthorizationMissing | RefusalReason::AuthorizationMalformed => {
                code::AUTHORIZATION_HEADER
            }
            RefusalReason::UnsupportedScheme
            | RefusalReason::BasicNotAllowed
            | RefusalReason::BasicSecretMismatch => code::INVALID_AUTHORIZATION,
            RefusalReason::TimestampMissing | RefusalReason::TimestampInvalid => {
                code::TIMESTAMP_HEADER
            }
            RefusalReason::SignatureNotBase64 | RefusalReason::SignatureMismatch => {
                code::INVALID_SIGNATURE
            }
            RefusalReason::TimestampTooOld | RefusalReason::TimestampInFuture => code::EXPIRED,
        }
    }

    /// HTTP status to answer with: always 401 (every code above is a 401xx code).
    pub fn http_status(self) -> u16 {
        401
    }

    /// What is wrong and what to do, for the response body and logs. Never contains secrets or
    /// expected signatures (the texts are fixed).
    pub fn message(self) -> &'static str {
        match self {
            RefusalReason::NoKeysConfigured => {
                "No Sinch application credentials are configured, so no callback can be verified. \
                 Set SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET to the application key and \
                 secret shown in the Sinch dashboard, and restart."
            }
            RefusalReason::AuthorizationMissing => {
                "The authorization header is missing. Sinch signs callbacks with \
                 `authorization: application <key>:<signature>`; check that the request comes \
                 from Sinch and that no proxy removes the header."
            }
            RefusalReason::AuthorizationMalformed => {
                "The authorization header is malformed; expected \
                 `application <key>:<signature>`."
            }
            RefusalReason::UnsupportedScheme => {
                "The authorization scheme is not supported; Sinch Voice callbacks use the \
                 `application` scheme."
            }
            RefusalReason::BasicNotAllowed => {
                "Basic authorization is disabled here; Sinch Voice callbacks use the \
                 `application` signing scheme. Enable Basic only for clients that cannot sign."
            }
            RefusalReason::UnknownKey => {
                "The application key in the authorization header is not configured here. Add \
                 this Sinch application's key and secret to the configuration, or check the \
                 application's callback URL."
            }
            RefusalReason::TimestampMissing => {
                "The x-timestamp header is missing; it is part of the signed data and required."
            }
            RefusalReason::TimestampInvalid => {
                "The x-timestamp header is not an ISO-8601 UTC timestamp such as \
                 2014-09-24T10:59:41Z."
            }
            RefusalReason::SignatureNotBase64 => {
                "The signature in the authorization header is not valid base64."
            }
            RefusalReason::SignatureMismatch => {
                "The signature does not match the request. Check that the configured secret \
                 belongs to this application key, that the path checked here is the public \
                 callback path (configure the public path prefix if a proxy rewrites it), and \
                 that nothing alters the body or headers in transit."
            }
            RefusalReason::BasicSecretMismatch => {
                "The secret in the Basic authorization header is wrong for this application key."
            }
            RefusalReason::TimestampTooOld => {
                "The x-timestamp is older than the accepted window: the request is late or \
                 replayed, or a clock is wrong. Check time synchronisation (NTP) on this host."
            }
            RefusalReason::TimestampInFuture => {
                "The x-timestamp is further in the future than the accepted window. Check time \
                 synchronisation (NTP) on this host."
            }
        }
    }
}

/// A refused callback: the reason and, once the header has been parsed, the application key it
/// named (truncated to 128 characters; for [`RefusalReason::UnknownKey`] it is the unknown key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// The key named by the request, if any.
    pub key: Option<String>,
}

impl Refusal {
    fn new(reason: RefusalReason, key: Option<&str>) -> Self {
        Self {
            reason,
            key: key.map(|k| k.chars().take(MAX_REPORTED_KEY_CHARS).collect()),
        }
    }

    /// Shortcut for `reason.error_code()`.
    pub fn error_code(&self) -> u32 {
        self.reason.error_code()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.reason.as_str(),
            self.reason.error_code(),
            self.reason.message()
        )
    }
}

impl std::error::Error for Refusal {}

/// The parsed `authorization` header.
enum AuthHeader<'a> {
    Application { key: &'a str, signature: &'a str },
    Basic { key: String, secret: String },
}

impl AuthHeader<'_> {
    /// The application key it names.
    fn key(&self) -> &str {
        match self {
            AuthHeader::Application { key, .. } => key,
            AuthHeader::Basic { key, .. } => key,
        }
    }
}

fn parse_authorization(value: &str, allow_basic: bool) -> Result<AuthHeader<'_>, RefusalReason> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RefusalReason::AuthorizationMissing);
    }
    let (scheme, credentials) = value
        .split_once([' ', '\t'])
        .ok_or(RefusalReason::AuthorizationMalformed)?;
    let credentials = credentials.trim();
    if credentials.is_empty() || credentials.contains(|c: char| c.is_whitespace()) {
        return Err(RefusalReason::AuthorizationMalformed);
    }
    if scheme.eq_ignore_ascii_case("application") {
        let (key, signature) = credentials
            .split_once(':')
            .ok_or(RefusalReason::AuthorizationMalformed)?;
        if key.is_empty() || signature.is_empty() {
            return Err(RefusalReason::AuthorizationMalformed);
        }
        Ok(AuthHeader::Application { key, signature })
    } else if scheme.eq_ignore_ascii_case("basic") {
        if !allow_basic {
            return Err(RefusalReason::BasicNotAllowed);
        }
        // `key:secret` literally (Node SDK) or base64 of it (RFC 7617). ':' is not in the
        // base64 alphabet, so the two forms cannot be confused.
        let pair = if credentials.contains(':') {
            credentials.to_owned()
        } else {
            STANDARD
                .decode(credentials)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(RefusalReason::AuthorizationMalformed)?
        };
        let (key, secret) = pair
            .split_once(':')
            .ok_or(RefusalReason::AuthorizationMalformed)?;
        if key.is_empty() || secret.is_empty() {
            return Err(RefusalReason::AuthorizationMalformed);
        }
        Ok(AuthHeader::Basic {
            key: key.to_owned(),
            secret: secret.to_owned(),
        })
    } else {
        Err(RefusalReason::UnsupportedScheme)
    }
}

/// Verifies an incoming Sinch callback against the key ring. See the module documentation for
/// the order of checks; `now` is the current time (injected for testability).
pub fn verify(
    ring: &KeyRing,
    req: &CallbackRequest<'_>,
    now: OffsetDateTime,
    policy: &VerifyPolicy,
) -> Result<Verified, Refusal> {
    use RefusalReason as R;
    let auth = known_authorization(ring, req.authorization, policy)?;
    let refuse = |reason| Refusal::new(reason, Some(auth.key()));
    let raw_ts = req.x_timestamp.ok_or_else(|| refuse(R::TimestampMissing))?;
    let timestamp = crate::timestamp::parse(raw_ts).ok_or_else(|| refuse(R::TimestampInvalid))?;
    let (matched, scheme) = match_credential(ring, &auth, req, raw_ts).map_err(refuse)?;
    check_freshness(now - timestamp, policy.window).map_err(refuse)?;
    Ok(Verified {
        key: matched.key().to_owned(),
        timestamp,
        scheme,
    })
}

/// Steps 1–3 of [`verify`] (keys configured, header well-formed, key known), which need neither
/// the body nor the timestamp: a request that fails them is refused before its body is read.
pub fn precheck(
    ring: &KeyRing,
    authorization: Option<&str>,
    policy: &VerifyPolicy,
) -> Result<(), Refusal> {
    known_authorization(ring, authorization, policy).map(|_| ())
}

/// Steps 1–3: credentials configured, `authorization` present and well-formed, its key known.
fn known_authorization<'h>(
    ring: &KeyRing,
    authorization: Option<&'h str>,
    policy: &VerifyPolicy,
) -> Result<AuthHeader<'h>, Refusal> {
    use RefusalReason as R;
    if ring.is_empty() {
        return Err(Refusal::new(R::NoKeysConfigured, None));
    }
    let auth = authorization.ok_or_else(|| Refusal::new(R::AuthorizationMissing, None))?;
    let auth = parse_authorization(auth, policy.allow_basic).map_err(|r| Refusal::new(r, None))?;
    if ring.matching(auth.key()).next().is_none() {
        return Err(Refusal::new(R::UnknownKey, Some(auth.key())));
    }
    Ok(auth)
}

/// Step 5: the credential of the header's key whose secret the signature (or the Basic secret)
/// matches, over the string to sign of `req` with its raw `x-timestamp`.
fn match_credential<'a>(
    ring: &'a KeyRing,
    auth: &'a AuthHeader<'_>,
    req: &CallbackRequest<'_>,
    raw_ts: &str,
) -> Result<(&'a AppCredential, Scheme), RefusalReason> {
    match auth {
        AuthHeader::Application { key, signature } => {
            let presented = STANDARD
                .decode(signature)
                .map_err(|_| RefusalReason::SignatureNotBase64)?;
            let sts = string_to_sign(
                req.method,
                &content_md5(req.body),
                req.content_type.unwrap_or(""),
                raw_ts,
                req.path,
            );
            first_match(ring.matching(key), |c| c.verify_signature(&sts, &presented))
                .map(|c| (c, Scheme::Application))
                .ok_or(RefusalReason::SignatureMismatch)
        }
        AuthHeader::Basic { key, secret } => {
            first_match(ring.matching(key), |c| c.basic_secret_matches(secret))
                .map(|c| (c, Scheme::Basic))
                .ok_or(RefusalReason::BasicSecretMismatch)
        }
    }
}

/// The first credential that `matches`. Every candidate is tried (no early exit), so timing does
/// not depend on which of a rotated key's secrets matched.
fn first_match<'a>(
    creds: impl Iterator<Item = &'a AppCredential>,
    mut matches: impl FnMut(&AppCredential) -> bool,
) -> Option<&'a AppCredential> {
    let mut matched = None;
    for cred in creds {
        if matches(cred) && matched.is_none() {
            matched = Some(cred);
        }
    }
    matched
}

/// Step 6: `skew` (now minus `x-timestamp`) within `window` either way, the bound included.
fn check_freshness(skew: time::Duration, window: std::time::Duration) -> Result<(), RefusalReason> {
    if skew.unsigned_abs() <= window {
        Ok(())
    } else if skew.is_negative() {
        Err(RefusalReason::TimestampInFuture)
    } else {
        Err(RefusalReason::TimestampTooOld)
    }
}

/// Step 6 of [`verify`] alone: `Some` when `x-timestamp` parses and is outside the window. Report
/// mode applies it to requests whose signature failed, so a stale replay is still refused.
pub fn freshness(
    x_timestamp: Option<&str>,
    now: OffsetDateTime,
    policy: &VerifyPolicy,
) -> Option<RefusalReason> {
    let timestamp = crate::timestamp::parse(x_timestamp?)?;
    let skew = now - timestamp;
    (skew.unsigned_abs() > policy.window).then_some(if skew.is_negative() {
        RefusalReason::TimestampInFuture
    } else {
        RefusalReason::TimestampTooOld
    })
}

/// Builds a refusal (for callers outside this module, e.g. a freshness refusal in report mode).
pub fn refusal(reason: RefusalReason, key: Option<&str>) -> Refusal {
    Refusal::new(reason, key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    pub(super) const V1_KEY: &str = "669E367E-6BBA-48AB-AF15-266871C28135";
    pub(super) const V1_SECRET: &str = "BeIukql3pTKJ8RGL5zo0DA==";
    pub(super) const V1_PATH: &str = "/sinch/callback/ace";
    pub(super) const V1_TS: &str = "2014-09-24T10:59:41Z";
    pub(super) const V1_BODY: &[u8] = br#"{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257","timestamp":"2014-09-24T10:59:41Z","version":1}"#;
    pub(super) const V1_SIG: &str = "Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=";

    fn v1_ring() -> KeyRing {
        KeyRing::from_credentials([AppCredential::new(V1_KEY, V1_SECRET).unwrap()])
    }

    pub(super) fn v1_auth() -> String {
        format!("application {V1_KEY}:{V1_SIG}")
    }

    #[test]
    fn freshness_is_a_window_either_way_with_its_bounds_included() {
        use time::Duration as D;
        let window = std::time::Duration::from_secs(300);
        let cases = [
            (D::ZERO, Ok(())),
            (D::seconds(300), Ok(())),
            (D::seconds(-300), Ok(())),
            (
                D::seconds(300) + D::nanoseconds(1),
                Err(RefusalReason::TimestampTooOld),
            ),
            (
                D::seconds(-300) - D::nanoseconds(1),
                Err(RefusalReason::TimestampInFuture),
            ),
            (D::days(365 * 12), Err(RefusalReason::TimestampTooOld)),
            (D::days(-1), Err(RefusalReason::TimestampInFuture)),
        ];
        for (skew, want) in cases {
            assert_eq!(check_freshness(skew, window), want, "skew {skew}");
        }
        assert_eq!(
            check_freshness(D::seconds(1), std::time::Duration::ZERO),
            Err(RefusalReason::TimestampTooOld)
        );
    }

    fn v1_req(auth: &str) -> CallbackRequest<'_> {
        CallbackRequest {
            method: "POST",
            path: V1_PATH,
            content_type: Some("application/json"),
            x_timestamp: Some(V1_TS),
            authorization: Some(auth),
            body: V1_BODY,
        }
    }

    fn v1_now() -> OffsetDateTime {
        datetime!(2014-09-24 10:59:41 UTC)
    }

    fn reason(r: Result<Verified, Refusal>) -> RefusalReason {
        r.unwrap_err().reason
    }

    // ----- V1 -----

    #[test]
    fn v1_verifies() {
        let auth = v1_auth();
        let v = verify(
            &v1_ring(),
            &v1_req(&auth),
            v1_now(),
            &VerifyPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            v,
            Verified {
                key: V1_KEY.to_owned(),
                timestamp: v1_now(),
                scheme: Scheme::Application
            }
        );
    }

    #[test]
    fn v1_scheme_and_key_case_insensitive() {
        for scheme in ["Application", "APPLICATION", "aPpLiCaTiOn"] {
            let auth = format!("{scheme} {V1_KEY}:{V1_SIG}");
            let v = verify(
                &v1_ring(),
                &v1_req(&auth),
                v1_now(),
                &VerifyPolicy::default(),
            );
            assert_eq!(v.unwrap().scheme, Scheme::Application, "{scheme}");
        }
        let auth = format!("application {}:{V1_SIG}", V1_KEY.to_ascii_lowercase());
        let v = verify(
            &v1_ring(),
            &v1_req(&auth),
            v1_now(),
            &VerifyPolicy::default(),
        );
        assert_eq!(v.unwrap().key, V1_KEY, "reported as configured");
        let auth = format!("  application \t {V1_KEY}:{V1_SIG}  ");
        assert!(verify(
            &v1_ring(),
            &v1_req(&auth),
            v1_now(),
            &VerifyPolicy::default()
        )
        .is_ok());
    }

    #[test]
    fn v1_negative_variants_from_net_sdk() {
        let auth = v1_auth();
        let ring = v1_ring();
        let p = VerifyPolicy::default();
        let now = v1_now();

        let mut r = v1_req(&auth);
        r.path = "/not/that/path";
        assert_eq!(
            reason(verify(&ring, &r, now, &p)),
            RefusalReason::SignatureMismatch
        );

        let mut r = v1_req(&auth);
        r.method = "GET";
        assert_eq!(
            reason(verify(&ring, &r, now, &p)),
            RefusalReason::SignatureMismatch
        );

        // Another (parseable, far away) timestamp: the signature fails before freshness is
        // looked at, so this is 40102, not 40105.
        let mut r = v1_req(&auth);
        r.x_timestamp = Some("2019-11-03T10:59:41Z");
        let refusal = verify(&ring, &r, now, &p).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::SignatureMismatch);
        assert_eq!(refusal.error_code(), 40102);
        assert_eq!(refusal.key.as_deref(), Some(V1_KEY));

        let mut r = v1_req(&auth);
        r.content_type = Some("text/html");
        assert_eq!(
            reason(verify(&ring, &r, now, &p)),
            RefusalReason::SignatureMismatch
        );

        let mut r = v1_req(&auth);
        r.content_type = None;
        assert_eq!(
            reason(verify(&ring, &r, now, &p)),
            RefusalReason::SignatureMismatch
        );

        let mut r = v1_req(&auth);
        r.body = br#"{"hello":"world"}"#;
        assert_eq!(
            reason(verify(&ring, &r, now, &p)),
            RefusalReason::SignatureMismatch
        );

        let wrong_scheme = format!("authorization {V1_KEY}:{V1_SIG}");
        let refusal = verify(&ring, &v1_req(&wrong_scheme), now, &p).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::UnsupportedScheme);
        assert_eq!(refusal.error_code(), 40107);

        let wrong_sig = format!("application {V1_KEY}:bdJO/XUVvIsb5SlZAKmvfw==");
        assert_eq!(
            reason(verify(&ring, &v1_req(&wrong_sig), now, &p)),
            RefusalReason::SignatureMismatch
        );

        let mut r = v1_req(&auth);
        r.authorization = None;
        let refusal = verify(&ring, &r, now, &p).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::AuthorizationMissing);
        assert_eq!(refusal.error_code(), 40100);
        assert_eq!(refusal.key, None);
    }

    #[test]
    fn header_problems() {
        let ring = v1_ring();
        let p = VerifyPolicy::default();
        let now = v1_now();
        let cases: &[(&str, RefusalReason)] = &[
            ("", RefusalReason::AuthorizationMissing),
            ("   ", RefusalReason::AuthorizationMissing),
            ("application", RefusalReason::AuthorizationMalformed),
            ("application ", RefusalReason::AuthorizationMalformed),
            ("application nocolon", RefusalReason::AuthorizationMalformed),
            ("application :sig", RefusalReason::AuthorizationMalformed),
            ("application key:", RefusalReason::AuthorizationMalformed),
            ("application a:b c:d", RefusalReason::AuthorizationMalformed),
            ("Bearer abc", RefusalReason::UnsupportedScheme),
            ("Basic k:s", RefusalReason::BasicNotAllowed),
            ("application someone-else:abc=", RefusalReason::UnknownKey),
        ];
        for (header, expected) in cases {
            let got = reason(verify(&ring, &v1_req(header), now, &p));
            assert_eq!(got, *expected, "{header:?}");
            assert!(
                [40100, 40107, 40108].contains(&got.error_code()),
                "{header:?}"
            );
        }
        let unknown = verify(&ring, &v1_req("application someone-else:abc="), now, &p);
        let refusal = unknown.unwrap_err();
        assert_eq!(refusal.error_code(), 40108);
        assert_eq!(refusal.key.as_deref(), Some("someone-else"));

        let not_b64 = format!("application {V1_KEY}:not*base64!");
        let refusal = verify(&ring, &v1_req(&not_b64), now, &p).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::SignatureNotBase64);
        assert_eq!(refusal.error_code(), 40102);

        let long_key = format!("application {}:abc=", "k".repeat(1000));
        let refusal = verify(&ring, &v1_req(&long_key), now, &p).unwrap_err();
        assert_eq!(refusal.key.map(|k| k.len()), Some(128));
    }

    #[test]
    fn timestamp_header_problems() {
        let auth = v1_auth();
        let ring = v1_ring();
        let p = VerifyPolicy::default();
        let mut r = v1_req(&auth);
        r.x_timestamp = None;
        let refusal = verify(&ring, &r, v1_now(), &p).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::TimestampMissing);
        assert_eq!(refusal.error_code(), 40101);
        for bad in [
            "",
            "yesterday",
            "2014-09-24",
            "1411556381",
            "2014-09-24T10:59:41Q",
        ] {
            r.x_timestamp = Some(bad);
            let refusal = verify(&ring, &r, v1_now(), &p).unwrap_err();
            assert_eq!(refusal.reason, RefusalReason::TimestampInvalid, "{bad:?}");
            assert_eq!(refusal.error_code(), 40101);
        }
    }

    #[test]
    fn no_keys_configured() {
        let auth = v1_auth();
        let refusal = verify(
            &KeyRing::new(),
            &v1_req(&auth),
            v1_now(),
            &VerifyPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::NoKeysConfigured);
        assert_eq!(refusal.error_code(), 40108);
        assert!(refusal.reason.message().contains("SINCH_APPLICATION_KEY"));
        assert!(refusal
            .reason
            .message()
            .contains("SINCH_APPLICATION_SECRET"));
    }

    // ----- V2–V6: outgoing-request vectors, same algorithm -----

    struct Vector {
        key: &'static str,
        secret: &'static str,
        method: &'static str,
        content_type: &'static str,
        ts: &'static str,
        path: &'static str,
        body: &'static [u8],
        md5: &'static str,
        sig: &'static str,
    }

    fn check_vector(v: &Vector) {
        assert_eq!(content_md5(v.body), v.md5);
        let cred = AppCredential::new(v.key, v.secret).unwrap();
        let header = sign(&cred, v.method, v.path, Some(v.content_type), v.ts, v.body);
        assert_eq!(header, format!("application {}:{}", v.key, v.sig));
        let ring = KeyRing::from_credentials([cred]);
        let req = CallbackRequest {
            method: v.method,
            path: v.path,
            content_type: Some(v.content_type),
            x_timestamp: Some(v.ts),
            authorization: Some(&header),
            body: v.body,
        };
        let now = crate::timestamp::parse(v.ts).unwrap();
        let ok = verify(&ring, &req, now, &VerifyPolicy::default()).unwrap();
        assert_eq!(ok.key, v.key);
        // Sinch's outgoing form uses the capitalised scheme; it verifies too.
        let capitalised = format!("Application {}:{}", v.key, v.sig);
        let req = CallbackRequest {
            authorization: Some(&capitalised),
            ..req
        };
        assert!(verify(&ring, &req, now, &VerifyPolicy::default()).is_ok());
    }

    #[test]
    fn v2_sms_request() {
        check_vector(&Vector {
            key: "5F5C418A0F914BBC8234A9BF5EDDAD97",
            secret: "JViE5vDor0Sw3WllZka15Q==",
            method: "POST",
            content_type: "application/json",
            ts: "2014-06-04T13:41:58Z",
            path: "/v1/sms/+46700000000",
            body: br#"{"message":"Hello world"}"#,
            md5: "jANzQ+rgAHyf1MWQFSwvYw==",
            sig: "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=",
        });
    }

    #[test]
    fn v3_verification_request() {
        check_vector(&Vector {
            key: V1_KEY,
            secret: V1_SECRET,
            method: "POST",
            content_type: "application/json",
            ts: "2014-06-04T13:41:58Z",
            path: "/verification/v1/verifications",
            body:
                br#"{"identity": {"type": "number", "endpoint": "+46700000000"}, "method": "sms"}"#,
            md5: "c5jl2EZiU6BpQ2QiBOJ/gQ==",
            sig: "h6rXrFayOoggyHW4ymnLlfSDkZZPg6j98lHzvOXVjvw=",
        });
    }

    #[test]
    fn v4_empty_body() {
        assert_eq!(
            string_to_sign(
                "POST",
                &content_md5(b""),
                "application/json",
                "2014-06-04T13:41:58Z",
                "/verification/v1/verifications"
            ),
            "POST\n\napplication/json\nx-timestamp:2014-06-04T13:41:58Z\n/verification/v1/verifications"
        );
        check_vector(&Vector {
            key: V1_KEY,
            secret: V1_SECRET,
            method: "POST",
            content_type: "application/json",
            ts: "2014-06-04T13:41:58Z",
            path: "/verification/v1/verifications",
            body: b"",
            md5: "",
            sig: "srx3SkKXw/ryFJLfwFFzZTigPxR/1+9Ae+eB3olDIjM=",
        });
    }

    #[test]
    fn v5_charset_content_type_and_fraction() {
        check_vector(&Vector {
            key: "my-key-id",
            secret: "bXkta2V5LXNlY3JldA==",
            method: "POST",
            content_type: "application/json; charset=UTF-8",
            ts: "2023-11-22T09:10:11.999Z",
            path: "/path/pathParamValue",
            body: br#"{"identity":{"type":"number","endpoint":"+33444555666"},"method":"sms"}"#,
            md5: "RkD29EocJh6t7zr5QfKM4g==",
            sig: "QP3OzQZVzRZAEev6DBLvJkgpiqyZPuXYsc7oyjUV0K8=",
        });
    }

    #[test]
    fn v6_get_empty_body() {
        check_vector(&Vector {
            key: "my-key-id",
            secret: "bXkta2V5LXNlY3JldA==",
            method: "GET",
            content_type: "application/json",
            ts: "2023-11-22T09:10:11.999Z",
            path: "/path/pathParamValue",
            body: b"",
            md5: "",
            sig: "nsrLDvP6KVD/dAxb3IfAncdwjPFJVWSrseEFOcZge+A=",
        });
    }

    // ----- V7: Node's lenient-base64 quirk -----

    const V7_BODY: &[u8] =
        br#"{"id":"018d2104-aaa-bbbb-1234","price":{"amount":0.0308},"rate":{"amount":0.0}}"#;

    #[test]
    fn v7_algorithm_matches_with_the_bytes_node_derives() {
        // Node decodes "app-secret" to 6a 9a 7e b1 e7 2b 7a, canonically "app+secreg==".
        let cred = AppCredential::new("app-key", "app+secreg==").unwrap();
        assert_eq!(content_md5(V7_BODY), "zvgV0+i8tMaEPl5sArRgSg==");
        let ct = Some("application/json; charset=utf-8");
        assert_eq!(
            sign(
                &cred,
                "POST",
                "/webhook",
                ct,
                "2024-01-19T09:19:28.9372196Z",
                V7_BODY
            ),
            "application app-key:p7hUz20oz16Fhfogs4Z0X+VA/Nhuu505I1alXYqwlKw="
        );
        // (b): the header value itself carries an "x-timestamp:" prefix. The signature is what
        // Node accepts, but the value is not a timestamp: refused as 40101 before the signature.
        let ts_b = "x-timestamp:2024-01-19T09:19:28.9372196Z";
        let auth_b = sign(&cred, "POST", "/webhook", ct, ts_b, V7_BODY);
        assert_eq!(
            auth_b,
            "application app-key:wC8XcoLQ22cxrOsUqqbWk+LHJ82wtqR/IgeIp9NG8LY="
        );
        let req = CallbackRequest {
            method: "POST",
            path: "/webhook",
            content_type: ct,
            x_timestamp: Some(ts_b),
            authorization: Some(&auth_b),
            body: V7_BODY,
        };
        let refusal = verify(
            &KeyRing::from_credentials([cred]),
            &req,
            datetime!(2024-01-19 09:19:28 UTC),
            &VerifyPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::TimestampInvalid);
        assert_eq!(refusal.error_code(), 40101);
    }

    // ----- freshness -----

    #[test]
    fn freshness_window_edges_are_inclusive() {
        let cred = AppCredential::new(V1_KEY, V1_SECRET).unwrap();
        let ring = KeyRing::from_credentials([cred.clone()]);
        let ts = "2024-05-01T12:00:00Z";
        let t = datetime!(2024-05-01 12:00:00 UTC);
        let auth = sign(&cred, "POST", "/cb", Some("application/json"), ts, b"{}");
        let req = CallbackRequest {
            method: "POST",
            path: "/cb",
            content_type: Some("application/json"),
            x_timestamp: Some(ts),
            authorization: Some(&auth),
            body: b"{}",
        };
        let p = VerifyPolicy::default();
        let w = time::Duration::seconds(300);
        let ns = time::Duration::nanoseconds(1);
        assert!(verify(&ring, &req, t, &p).is_ok());
        assert!(verify(&ring, &req, t + w, &p).is_ok());
        assert!(verify(&ring, &req, t - w, &p).is_ok());
        let old = verify(&ring, &req, t + w + ns, &p).unwrap_err();
        assert_eq!(old.reason, RefusalReason::TimestampTooOld);
        assert_eq!(old.error_code(), 40105);
        let future = verify(&ring, &req, t - w - ns, &p).unwrap_err();
        assert_eq!(future.reason, RefusalReason::TimestampInFuture);
        assert_eq!(future.error_code(), 40105);

        let narrow = VerifyPolicy {
            window: std::time::Duration::from_secs(10),
            ..VerifyPolicy::default()
        };
        assert!(verify(&ring, &req, t + time::Duration::seconds(10), &narrow).is_ok());
        assert_eq!(
            reason(verify(
                &ring,
                &req,
                t + time::Duration::seconds(11),
                &narrow
            )),
            RefusalReason::TimestampTooOld
        );

        // A stale request with a forged signature reports the signature, not the clock.
        let forged = format!("application {V1_KEY}:{V1_SIG}");
        let req = CallbackRequest {
            authorization: Some(&forged),
            ..req
        };
        assert_eq!(
            reason(verify(&ring, &req, t + time::Duration::days(1), &p)),
            RefusalReason::SignatureMismatch
        );
    }

    // ----- Basic, rotation -----

    #[test]
    fn basic_scheme_when_allowed() {
        let ring = v1_ring();
        let p = VerifyPolicy {
            allow_basic: true,
            ..VerifyPolicy::default()
        };
        let mut req = v1_req("");
        let literal = format!("Basic {V1_KEY}:{V1_SECRET}");
        req.authorization = Some(&literal);
        let v = verify(&ring, &req, v1_now(), &p).unwrap();
        assert_eq!(v.scheme, Scheme::Basic);
        assert_eq!(v.key, V1_KEY);

        let rfc = format!("basic {}", STANDARD.encode(format!("{V1_KEY}:{V1_SECRET}")));
        req.authorization = Some(&rfc);
        assert_eq!(
            verify(&ring, &req, v1_now(), &p).unwrap().scheme,
            Scheme::Basic
        );

        let wrong = format!("Basic {V1_KEY}:JViE5vDor0Sw3WllZka15Q==");
        req.authorization = Some(&wrong);
        let refusal = verify(&ring, &req, v1_now(), &p).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::BasicSecretMismatch);
        assert_eq!(refusal.error_code(), 40107);

        let unknown = "Basic other:JViE5vDor0Sw3WllZka15Q==";
        req.authorization = Some(unknown);
        assert_eq!(
            reason(verify(&ring, &req, v1_now(), &p)),
            RefusalReason::UnknownKey
        );

        req.authorization = Some("Basic bm9jb2xvbg==");
        assert_eq!(
            reason(verify(&ring, &req, v1_now(), &p)),
            RefusalReason::AuthorizationMalformed
        );

        // Freshness applies to Basic too.
        req.authorization = Some(&literal);
        assert_eq!(
            reason(verify(&ring, &req, v1_now() + time::Duration::hours(1), &p)),
            RefusalReason::TimestampTooOld
        );
        // And disabled by default.
        assert_eq!(
            reason(verify(&ring, &req, v1_now(), &VerifyPolicy::default())),
            RefusalReason::BasicNotAllowed
        );
    }

    #[test]
    fn rotation_accepts_old_and_new_secret() {
        let old = AppCredential::new(V1_KEY, V1_SECRET).unwrap();
        let new = AppCredential::new(V1_KEY, "JViE5vDor0Sw3WllZka15Q==").unwrap();
        let other = AppCredential::new("other", "bXkta2V5LXNlY3JldA==").unwrap();
        let ring = KeyRing::from_credentials([old.clone(), new.clone(), other.clone()]);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.keys(), vec![V1_KEY, "other"]);
        for cred in [&old, &new, &other] {
            let auth = sign(
                cred,
                "POST",
                V1_PATH,
                Some("application/json"),
                V1_TS,
                V1_BODY,
            );
            let v = verify(&ring, &v1_req(&auth), v1_now(), &VerifyPolicy::default()).unwrap();
            assert_eq!(v.key, cred.key());
        }
        let stranger = AppCredential::new(V1_KEY, "bXkta2V5LXNlY3JldA==").unwrap();
        let auth = sign(
            &stranger,
            "POST",
            V1_PATH,
            Some("application/json"),
            V1_TS,
            V1_BODY,
        );
        assert_eq!(
            reason(verify(
                &ring,
                &v1_req(&auth),
                v1_now(),
                &VerifyPolicy::default()
            )),
            RefusalReason::SignatureMismatch
        );
    }

    // ----- reasons -----

    #[test]
    fn reasons_table() {
        let expected = [
            ("no_keys_configured", 40108),
            ("authorization_missing", 40100),
            ("authorization_malformed", 40100),
            ("unsupported_scheme", 40107),
            ("basic_not_allowed", 40107),
            ("unknown_key", 40108),
            ("timestamp_missing", 40101),
            ("timestamp_invalid", 40101),
            ("signature_not_base64", 40102),
            ("signature_mismatch", 40102),
            ("basic_secret_mismatch", 40107),
            ("timestamp_too_old", 40105),
            ("timestamp_in_future", 40105),
        ];
        for (r, (name, code)) in RefusalReason::ALL.iter().zip(expected) {
            assert_eq!(r.as_str(), name);
            assert_eq!(r.error_code(), code, "{name}");
            assert_eq!(r.http_status(), 401);
            let info = crate::catalog::lookup(code).unwrap();
            assert_eq!(info.http_status, 401);
            assert!(!r.message().is_empty());
            assert!(!r.message().contains(V1_SIG));
        }
        let r = Refusal::new(RefusalReason::SignatureMismatch, Some("k"));
        assert!(r
            .to_string()
            .starts_with("signature_mismatch (40102): The signature"));
    }

    // ----- properties -----

    #[derive(Debug)]
    struct Signed {
        ring: KeyRing,
        method: String,
        path: String,
        content_type: Option<String>,
        ts: String,
        auth: String,
        body: Vec<u8>,
        now: OffsetDateTime,
    }

    impl Signed {
        fn req(&self) -> CallbackRequest<'_> {
            CallbackRequest {
                method: &self.method,
                path: &self.path,
                content_type: self.content_type.as_deref(),
                x_timestamp: Some(&self.ts),
                authorization: Some(&self.auth),
                body: &self.body,
            }
        }
        fn verify(&self, req: &CallbackRequest<'_>) -> Result<Verified, Refusal> {
            verify(&self.ring, req, self.now, &VerifyPolicy::default())
        }
    }

    prop_compose! {
        fn signed()(
            secret in proptest::collection::vec(any::<u8>(), 1..80),
            key in "[A-Za-z0-9-]{1,40}",
            method in prop_oneof![Just("POST"), Just("GET"), Just("PUT"), Just("post")],
            path in "/[A-Za-z0-9/_.~%+@-]{0,60}",
            content_type in proptest::option::of("[ -~]{1,50}"),
            body in proptest::collection::vec(any::<u8>(), 1..400),
            now in crate::timestamp::tests::any_now(),
            skew_ms in -300_000i64..=300_000,
        ) -> Signed {
            let cred = AppCredential::new(&key, &STANDARD.encode(&secret)).unwrap();
            let t = now + time::Duration::milliseconds(skew_ms);
            let ts = format_timestamp(t);
            let auth = sign(&cred, method, &path, content_type.as_deref(), &ts, &body);
            Signed {
                ring: KeyRing::from_credentials([cred]),
                method: method.to_owned(),
                path,
                content_type,
                ts,
                auth,
                body,
                now,
            }
        }
    }

    /// Replaces byte `i` (mod len) of an ASCII string with a different printable ASCII byte.
    fn mutate_ascii(s: &str, i: usize, delta: u8) -> String {
        let mut b = s.as_bytes().to_vec();
        let i = i % b.len();
        let old = b[i];
        let mut new = b' ' + ((old.wrapping_sub(b' ')).wrapping_add(1 + delta % 94)) % 95;
        if new == old {
            new = if old == b'a' { b'b' } else { b'a' };
        }
        b[i] = new;
        String::from_utf8(b).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prop_sign_verify_round_trip(s in signed()) {
            let v = s.verify(&s.req()).unwrap();
            prop_assert_eq!(v.scheme, Scheme::Application);
            prop_assert_eq!(Some(v.timestamp), crate::timestamp::parse(&s.ts));
        }

        #[test]
        fn prop_body_change_refuses(s in signed(), i in any::<usize>(), x in 1u8..=255) {
            let mut body = s.body.clone();
            let i = i % body.len();
            body[i] ^= x;
            let req = CallbackRequest { body: &body, ..s.req() };
            prop_assert_eq!(s.verify(&req).unwrap_err().reason, RefusalReason::SignatureMismatch);
        }

        #[test]
        fn prop_path_change_refuses(s in signed(), i in any::<usize>(), d in any::<u8>()) {
            let path = mutate_ascii(&s.path, i, d);
            let req = CallbackRequest { path: &path, ..s.req() };
            prop_assert_eq!(s.verify(&req).unwrap_err().reason, RefusalReason::SignatureMismatch);
        }

        #[test]
        fn prop_content_type_change_refuses(s in signed(), i in any::<usize>(), d in any::<u8>()) {
            let ct = match &s.content_type {
                Some(ct) => mutate_ascii(ct, i, d),
                None => "a".to_owned(),
            };
            let req = CallbackRequest { content_type: Some(&ct), ..s.req() };
            prop_assert_eq!(s.verify(&req).unwrap_err().reason, RefusalReason::SignatureMismatch);
        }

        #[test]
        fn prop_timestamp_change_refuses(s in signed(), i in any::<usize>(), d in any::<u8>()) {
            let ts = mutate_ascii(&s.ts, i, d);
            let req = CallbackRequest { x_timestamp: Some(&ts), ..s.req() };
            let got = s.verify(&req).unwrap_err().reason;
            // Signature before freshness: a parseable change is always 40102, never 40105.
            let want = if crate::timestamp::parse(&ts).is_some() {
                RefusalReason::SignatureMismatch
            } else {
                RefusalReason::TimestampInvalid
            };
            prop_assert_eq!(got, want, "{:?}", ts);
        }

        #[test]
        fn prop_outside_window_is_expired(s in signed(), extra_ms in 300_001i64..10_000_000) {
            let t = crate::timestamp::parse(&s.ts).unwrap();
            let late = t + time::Duration::milliseconds(extra_ms);
            let early = t - time::Duration::milliseconds(extra_ms);
            let p = VerifyPolicy::default();
            prop_assert_eq!(verify(&s.ring, &s.req(), late, &p).unwrap_err().reason,
                RefusalReason::TimestampTooOld);
            prop_assert_eq!(verify(&s.ring, &s.req(), early, &p).unwrap_err().reason,
                RefusalReason::TimestampInFuture);
        }

        #[test]
        fn prop_verify_never_panics(
            auth in proptest::option::of(prop_oneof![
                ".{0,80}",
                "(application|Basic|basic|APPLICATION) [ -~]{0,60}",
                "application 669E367E-6BBA-48AB-AF15-266871C28135:.{0,60}",
                "Basic 669E367E-6BBA-48AB-AF15-266871C28135:.{0,60}",
            ]),
            ts in proptest::option::of(prop_oneof![".{0,40}", "[0-9T:.Z+ -]{0,40}"]),
            method in ".{0,10}",
            path in ".{0,40}",
            ct in proptest::option::of(".{0,40}"),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            allow_basic in any::<bool>(),
        ) {
            let req = CallbackRequest {
                method: &method,
                path: &path,
                content_type: ct.as_deref(),
                x_timestamp: ts.as_deref(),
                authorization: auth.as_deref(),
                body: &body,
            };
            let p = VerifyPolicy { allow_basic, ..VerifyPolicy::default() };
            let _ = verify(&v1_ring(), &req, v1_now(), &p);
            let _ = signed_path(&path, ct.as_deref());
        }

    }
}
