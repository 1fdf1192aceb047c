//! The Sinch Voice (v1 Calling API) error catalog as code, and a lenient parser for the error
//! bodies Sinch returns.
//!
//! Sinch reports errors as `{"status": "400 MissingParameter", "errorCode": 40002, "message": "...",
//! "reference": "..."}`. The five-digit `errorCode` starts with the HTTP status it travels with
//! (40002 → HTTP 400). svamlgate uses the same envelope for the errors it emits itself, with the
//! codes from [`code`], so a customer who knows Sinch's error page knows ours.
//!
//! Sinch's published error page contains copy-paste mistakes in its examples. This catalog records
//! what the page's *descriptions* mean, not what its examples show:
//!
//! * 40004 and 40005: the examples carry `errorCode: 40002`; the codes are 40004 and 40005.
//! * 40102 and 40104: the examples are labelled `401 MissingParameter`. 40102 is described as
//!   "invalid signature" and 40104 as "not signed with the application secret", so they are named
//!   `InvalidSignature` and `SignatureRequired` here.
//! * 40302 and 40303: the examples say `401`; they are listed under 403 Forbidden and their codes
//!   start with 403, so they are HTTP 403.
//! * The section "420 - Unprocessable Entity" is HTTP **422**: 420 is not a standard HTTP status,
//!   "Unprocessable Entity" is the name of 422, and the codes 42200–42202 begin with 422. Its three
//!   examples are copies of the 40108 example; 42200 and 42201 have no description at all and are
//!   marked as undocumented.
//! * 50300: the example carries `errorCode: 50500`; the code is 50300.
//! * The field table types `errorCode` as a string while every example sends a number;
//!   [`parse_sinch_error`] accepts both. svamlgate emits a JSON number.
//!
//! # Statuses the catalog does not cover
//!
//! Sinch's catalog has no 405, 413 or 415 entries. When svamlgate must refuse a request for those
//! reasons it should keep the envelope self-consistent (code digits = HTTP status) and answer with
//! the closest catalog entry, as returned by [`closest_for_http_status`]:
//!
//! * **413 Payload Too Large → HTTP 400, 40003 `InvalidRequest`.** An oversized body is a defect
//!   of the request itself and will fail again when resent unchanged. 42900 `CapacityExceeded` was
//!   rejected: it is a 429, which tells clients (and Sinch's fallback logic) to retry later, and
//!   it describes request *rate*, not request *size*.
//! * **415 Unsupported Media Type → HTTP 400, 40003 `InvalidRequest`**, for the same reason.
//! * **405 Method Not Allowed → HTTP 400, 40001 `ParameterValidation`.** Sinch's own description
//!   of 40001 is "you have used the wrong method for the request". Add an `Allow` header anyway.
//!
//! The `message` field then says precisely what was wrong (e.g. "body exceeds 64 KiB").

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::fmt;

/// One entry of the Sinch Voice error catalog.
///
/// Its JSON (see the `Serialize` impl) writes `status` as the status line; the schema says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(
    rename_all = "camelCase",
    description = "One entry of the error catalog."
)]
pub struct ErrorCodeInfo {
    /// Five-digit Sinch error code, e.g. 40002.
    #[schema(example = 40002)]
    pub code: u32,
    /// HTTP status the code travels with (the code's first three digits).
    #[schema(example = 400)]
    pub http_status: u16,
    /// Status name, e.g. `"InvalidRequest"`; JSON's `status` carries the status line
    /// (`"400 InvalidRequest"`).
    #[schema(rename = "status", value_type = String, example = "400 MissingParameter")]
    pub status_name: &'static str,
    /// What the error means.
    #[schema(value_type = String)]
    pub meaning: &'static str,
    /// What the receiver of the error should do about it.
    #[schema(value_type = String)]
    pub remedy: &'static str,
    /// Whether resending the same request later may succeed.
    pub retryable: bool,
}

impl ErrorCodeInfo {
    /// The `status` field value, e.g. `"400 InvalidRequest"`.
    pub fn status_line(&self) -> String {
        format!("{} {}", self.http_status, self.status_name)
    }
}

impl fmt::Display for ErrorCodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {})",
            self.code, self.http_status, self.status_name
        )
    }
}

/// Serialized for `GET /admin/error-codes` as
/// `{"code", "httpStatus", "status", "meaning", "remedy", "retryable"}`.
impl Serialize for ErrorCodeInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ErrorCodeInfo", 6)?;
        s.serialize_field("code", &self.code)?;
        s.serialize_field("httpStatus", &self.http_status)?;
        s.serialize_field("status", &self.status_line())?;
        s.serialize_field("meaning", self.meaning)?;
        s.serialize_field("remedy", self.remedy)?;
        s.serialize_field("retryable", &self.retryable)?;
        s.end()
    }
}

/// Named error codes. Every constant has an entry in [`all`].
///
/// 42200 and 42201 have no constant: Sinch documents neither, and svamlgate never emits them.
pub mod code {
    /// 40001, 400 ParameterValidation.
    pub const PARAMETER_VALIDATION: u32 = 40001;
    /// 40002, 400 MissingParameter.
    pub const MISSING_PARAMETER: u32 = 40002;
    /// 40003, 400 InvalidRequest.
    pub const INVALID_REQUEST: u32 = 40003;
    /// 40004, 400 InvalidAuthorizationKey.
    pub const INVALID_AUTHORIZATION_KEY: u32 = 40004;
    /// 40005, 400 NumberMissingLeadingPlus.
    pub const NUMBER_MISSING_LEADING_PLUS: u32 = 40005;
    /// 40100, 401 AuthorizationHeader.
    pub const AUTHORIZATION_HEADER: u32 = 40100;
    /// 40101, 401 TimestampHeader.
    pub const TIMESTAMP_HEADER: u32 = 40101;
    /// 40102, 401 InvalidSignature.
    pub const INVALID_SIGNATURE: u32 = 40102;
    /// 40103, 401 AlreadyAuthorized.
    pub const ALREADY_AUTHORIZED: u32 = 40103;
    /// 40104, 401 SignatureRequired.
    pub const SIGNATURE_REQUIRED: u32 = 40104;
    /// 40105, 401 Expired.
    pub const EXPIRED: u32 = 40105;
    /// 40107, 401 InvalidAuthorization.
    pub const INVALID_AUTHORIZATION: u32 = 40107;
    /// 40108, 401 InvalidCredentials.
    pub const INVALID_CREDENTIALS: u32 = 40108;
    /// 40200, 402 PaymentRequired.
    pub const PAYMENT_REQUIRED: u32 = 40200;
    /// 40300, 403 ForbiddenRequest.
    pub const FORBIDDEN: u32 = 40300;
    /// 40301, 403 InvalidScheme.
    pub const INVALID_SCHEME: u32 = 40301;
    /// 40302, 403 InsufficientPrivileges.
    pub const INSUFFICIENT_PRIVILEGES: u32 = 40302;
    /// 40303, 403 RestrictedAction.
    pub const RESTRICTED_ACTION: u32 = 40303;
    /// 40400, 404 ResourceNotFound.
    pub const NOT_FOUND: u32 = 40400;
    /// 40900, 409 RequestConflict.
    pub const CONFLICT: u32 = 40900;
    /// 42202, 422 InvalidCallbackResponse.
    pub const INVALID_CALLBACK_RESPONSE: u32 = 42202;
    /// 42900, 429 CapacityExceeded.
    pub const CAPACITY_EXCEEDED: u32 = 42900;
    /// 42901, 429 VelocityConstraint.
    pub const VELOCITY_CONSTRAINT: u32 = 42901;
    /// 50000, 500 InternalError.
    pub const INTERNAL_ERROR: u32 = 50000;
    /// 50300, 503 TemporaryDown.
    pub const TEMPORARY_DOWN: u32 = 50300;
    /// 50301, 503 ConfigurationError.
    pub const CONFIGURATION_ERROR: u32 = 50301;
}

const fn entry(
    code: u32,
    status_name: &'static str,
    meaning: &'static str,
    remedy: &'static str,
    retryable: bool,
) -> ErrorCodeInfo {
    ErrorCodeInfo {
        code,
        // Five-digit codes: the first three digits are the HTTP status (checked by a unit test).
        http_status: (code / 100) as u16,
        status_name,
        meaning,
        remedy,
        retryable,
    }
}

/// Sorted by code (lookup uses binary search; a unit test checks the order).
static CATALOG: [ErrorCodeInfo; 28] = [
    entry(
        40001,
        "ParameterValidation",
        "Parameter validation error: a parameter has a wrong value, for example an unsupported \
         `method`. Sinch also reports illegal SVAML in a callback reply with this code.",
        "Correct the parameter named in the message (for callbacks: fix the SVAML) and resend.",
        false,
    ),
    entry(
        40002,
        "MissingParameter",
        "A required parameter is missing from the request; the message usually names it.",
        "Add the missing parameter and resend.",
        false,
    ),
    entry(
        40003,
        "InvalidRequest",
        "The request is invalid, for example the request data is missing or cannot be read.",
        "Check the request body, its size and its content-type against the API reference, \
         then resend.",
        false,
    ),
    entry(
        40004,
        "InvalidAuthorizationKey",
        "The application key used for the request is invalid.",
        "Use the application key shown for the application in the Sinch dashboard.",
        false,
    ),
    entry(
        40005,
        "NumberMissingLeadingPlus",
        "A phone number in the request is not in E.164 format: the leading plus sign is missing.",
        "Send phone numbers in E.164 format with a leading '+' and the country code.",
        false,
    ),
    entry(
        40100,
        "AuthorizationHeader",
        "The authorization header is missing, illegal or invalid.",
        "Send `authorization: application <key>:<signature>` signed with the application secret.",
        false,
    ),
    entry(
        40101,
        "TimestampHeader",
        "The x-timestamp request header is missing or invalid.",
        "Send an x-timestamp header with the current UTC time in ISO-8601 format, e.g. \
         2014-09-24T10:59:41Z, and sign it.",
        false,
    ),
    entry(
        40102,
        "InvalidSignature",
        "The request signature is invalid or missing (Sinch's page labels its example \
         'MissingParameter').",
        "Recompute the signature over the exact method, body, content-type, x-timestamp and path \
         with the base64-decoded application secret.",
        false,
    ),
    entry(
        40103,
        "AlreadyAuthorized",
        "The user is already authorized.",
        "Do not authorize again; continue with the existing authorization.",
        false,
    ),
    entry(
        40104,
        "SignatureRequired",
        "The request was not authorized and signed with the application secret (Sinch's page \
         labels its example 'MissingParameter').",
        "Sign the request with the application key and secret (the `application` scheme).",
        false,
    ),
    entry(
        40105,
        "Expired",
        "The request for authorization has expired: its x-timestamp is too far from the \
         receiver's clock.",
        "Synchronise the sender's clock (NTP) and sign with the current time; a new request with \
         a fresh timestamp may succeed.",
        false,
    ),
    entry(
        40107,
        "InvalidAuthorization",
        "Wrong type of authorization used, or invalid password or key.",
        "Use the `application` signing scheme with a valid application key.",
        false,
    ),
    entry(
        40108,
        "InvalidCredentials",
        "The credentials provided are invalid: the application key is unknown to the receiver.",
        "Check that the application key and secret configured on both sides belong to the same \
         Sinch application.",
        false,
    ),
    entry(
        40200,
        "PaymentRequired",
        "Not enough credit on the account to perform the action.",
        "Add credit to the Sinch account, then resend.",
        false,
    ),
    entry(
        40300,
        "ForbiddenRequest",
        "The resource or destination is forbidden for this account or application.",
        "Check the account's permissions and destination restrictions with Sinch.",
        false,
    ),
    entry(
        40301,
        "InvalidScheme",
        "Invalid authorization scheme for this resource.",
        "Use the authorization scheme the endpoint requires (`application` signing or Basic).",
        false,
    ),
    entry(
        40302,
        "InsufficientPrivileges",
        "Privileges are insufficient to access the resource (HTTP 403; Sinch's example wrongly \
         says 401).",
        "Use credentials of an application that has access to the resource.",
        false,
    ),
    entry(
        40303,
        "RestrictedAction",
        "The requested action is restricted (HTTP 403; Sinch's example wrongly says 401).",
        "Ask Sinch support to lift the restriction, or do not use the action.",
        false,
    ),
    entry(
        40400,
        "ResourceNotFound",
        "The requested resource was not found.",
        "Check the identifier and path of the resource (for example a call id that has ended).",
        false,
    ),
    entry(
        40900,
        "RequestConflict",
        "The request conflicts with the current state of the resource (race condition or \
         unexpected state).",
        "Re-read the resource state and decide whether the request still makes sense before \
         resending.",
        false,
    ),
    entry(
        42200,
        "UnprocessableEntity",
        "Unprocessable entity (undocumented by Sinch: the errors page lists the code without a \
         description).",
        "Read the message for details; contact Sinch support with the reference if it is unclear.",
        false,
    ),
    entry(
        42201,
        "UnprocessableEntity",
        "Unprocessable entity (undocumented by Sinch: the errors page lists the code without a \
         description).",
        "Read the message for details; contact Sinch support with the reference if it is unclear.",
        false,
    ),
    entry(
        42202,
        "InvalidCallbackResponse",
        "The response to a callback event is not a valid response for that event type.",
        "Return SVAML that is valid for the event (ICE, ACE, PIE) or an empty 200 (DICE, \
         Notify); check the callback API reference.",
        false,
    ),
    entry(
        42900,
        "CapacityExceeded",
        "The number of requests has exceeded capacity.",
        "Retry later with exponential backoff; reduce concurrency.",
        true,
    ),
    entry(
        42901,
        "VelocityConstraint",
        "The number of requests has exceeded a velocity (rate) constraint.",
        "Retry later with exponential backoff; spread requests over time.",
        true,
    ),
    entry(
        50000,
        "InternalError",
        "General internal error on the server.",
        "Retry later with backoff; contact support with the reference if it persists.",
        true,
    ),
    entry(
        50300,
        "TemporaryDown",
        "The service is temporarily unavailable.",
        "Retry later with backoff; contact support if it persists.",
        true,
    ),
    // Retryable although it is a "configuration" error: it is the *server's* configuration,
    // which the client cannot fix, and Sinch's own message says "try submitting request again".
    // A retry budget bounds the cost if it persists.
    entry(
        50301,
        "ConfigurationError",
        "Server configuration error.",
        "Retry later with backoff; contact support with the reference if it persists.",
        true,
    ),
];

/// The whole catalog, sorted by code.
pub fn all() -> &'static [ErrorCodeInfo] {
    &CATALOG
}

/// The catalog entry for `code`, if Sinch documents it.
pub fn lookup(code: u32) -> Option<&'static ErrorCodeInfo> {
    CATALOG
        .binary_search_by_key(&code, |e| e.code)
        .ok()
        .and_then(|i| CATALOG.get(i))
}

/// The catalog entry that best describes a bare HTTP status, used
/// * to classify Sinch error responses that carry no (known) `errorCode`, and
/// * to pick the envelope when svamlgate refuses a request for a reason the catalog lacks
///   (405, 413, 415: see the module documentation).
///
/// Note that the returned entry's `http_status` may differ from `status` (405/413/415 → 400).
/// Returns `None` for statuses without a sensible equivalent (2xx, 3xx, 408, 410, ...).
pub fn closest_for_http_status(status: u16) -> Option<&'static ErrorCodeInfo> {
    let code = match status {
        400 | 413 | 415 => code::INVALID_REQUEST,
        405 => code::PARAMETER_VALIDATION,
        401 => code::AUTHORIZATION_HEADER,
        402 => code::PAYMENT_REQUIRED,
        403 => code::FORBIDDEN,
        404 => code::NOT_FOUND,
        409 => code::CONFLICT,
        422 => 42200,
        429 => code::CAPACITY_EXCEEDED,
        502..=504 => code::TEMPORARY_DOWN,
        500..=599 => code::INTERNAL_ERROR,
        _ => return None,
    };
    lookup(code)
}

/// Longest `message`/`status`/`reference` kept from a Sinch error body, in characters.
pub const MAX_TEXT_CHARS: usize = 512;

/// An error response received from Sinch, parsed leniently by [`parse_sinch_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinchError {
    /// HTTP status of the response.
    pub http_status: u16,
    /// `errorCode` from the body, whether sent as a number or as a numeric string.
    pub error_code: Option<u32>,
    /// `status` from the body, e.g. `"400 MissingParameter"`.
    pub status: Option<String>,
    /// `message` from the body; for a non-JSON body, the body as (lossy, truncated) text.
    pub message: Option<String>,
    /// `reference` from the body (support reference id).
    pub reference: Option<String>,
    /// Best catalog classification: the entry of `error_code` when it is known and consistent
    /// with the HTTP status; otherwise the entry named by `status` for this HTTP status;
    /// otherwise [`closest_for_http_status`].
    pub info: Option<&'static ErrorCodeInfo>,
    /// True when the parts of the response disagree: the code's first three digits differ from
    /// the HTTP status or from the status string's digits, the status string's digits differ
    /// from the HTTP status, or the status name belongs to another code of the same HTTP status
    /// (all of which occur in Sinch's published examples).
    pub code_mismatch: bool,
    /// Whether resending the same request later may succeed: the entry's `retryable` when
    /// classified, else true for 408, 429 and 5xx.
    pub retryable: bool,
}

impl fmt::Display for SinchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sinch returned HTTP {}", self.http_status)?;
        if let Some(c) = self.error_code {
            write!(f, ", errorCode {c}")?;
        }
        if let Some(s) = &self.status {
            write!(f, " ({s})")?;
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        if let Some(r) = &self.reference {
            write!(f, " [reference {r}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for SinchError {}

fn truncate_chars(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((idx, _)) => {
            let mut out = s.get(..idx).unwrap_or_default().to_owned();
            out.push('…');
            out
        }
        None => s.to_owned(),
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// A JSON value as text: strings verbatim, numbers/bools as JSON, null as absent.
fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => non_empty(truncate_chars(s)),
        other => non_empty(truncate_chars(&other.to_string())),
    }
}

/// `errorCode` as a number (`40002`, `40002.0`) or a numeric string (`"40002"`, `" 40002 "`).
fn value_code(v: &serde_json::Value) -> Option<u32> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
                    .map(|f| f as u64)
            })
            .and_then(|c| u32::try_from(c).ok()),
        serde_json::Value::String(s) => s.trim().parse::<u32>().ok(),
        _ => None,
    }
}

/// Splits `"400 MissingParameter"` into `(Some(400), Some("MissingParameter"))`; tolerates a
/// missing number or name.
fn split_status(status: &str) -> (Option<u16>, Option<&str>) {
    let s = status.trim();
    let digits_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = s.split_at(digits_len);
    let num = if digits_len == 3 {
        num.parse::<u16>().ok()
    } else {
        None
    };
    let name = if num.is_some() || digits_len == 0 {
        Some(rest.trim()).filter(|n| !n.is_empty())
    } else {
        None
    };
    (num, name)
}

/// The unique catalog entry of `http_status` called `name` (case-insensitive).
fn entry_by_name(http_status: u16, name: &str) -> Option<&'static ErrorCodeInfo> {
    let mut found = CATALOG
        .iter()
        .filter(|e| e.http_status == http_status && e.status_name.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (Some(e), None) => Some(e),
        _ => None,
    }
}

fn code_class(code: u32) -> Option<u16> {
    if (10_000..100_000).contains(&code) {
        u16::try_from(code / 100).ok()
    } else {
        None
    }
}

/// Parses an error response from Sinch. Never panics; accepts any bytes.
///
/// JSON object bodies are read field by field (`errorCode` as number or numeric string, also
/// accepted as `error_code`); anything else becomes `message` as lossy UTF-8 text, truncated to
/// [`MAX_TEXT_CHARS`] characters.
pub fn parse_sinch_error(http_status: u16, body: &[u8]) -> SinchError {
    let (error_code, status, message, reference) =
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => (
                map.get("errorCode")
                    .or_else(|| map.get("error_code"))
                    .and_then(value_code),
                map.get("status").and_then(value_text),
                map.get("message").and_then(value_text),
                map.get("reference").and_then(value_text),
            ),
            Ok(serde_json::Value::String(s)) => (None, None, non_empty(truncate_chars(&s)), None),
            _ => (
                None,
                None,
                non_empty(truncate_chars(&String::from_utf8_lossy(body))),
                None,
            ),
        };

    let (status_num, status_name) = status.as_deref().map(split_status).unwrap_or((None, None));
    let code_info = error_code.and_then(lookup);
    let code_cls = error_code.and_then(code_class);

    let mut code_mismatch = false;
    if let Some(cls) = code_cls {
        code_mismatch |= cls != http_status;
        code_mismatch |= status_num.is_some_and(|n| n != cls);
    } else if error_code.is_some() {
        // Not a five-digit code at all.
        code_mismatch = true;
    }
    code_mismatch |= status_num.is_some_and(|n| n != http_status);
    if let (Some(ci), Some(name)) = (code_info, status_name) {
        if !ci.status_name.eq_ignore_ascii_case(name) {
            code_mismatch |= entry_by_name(ci.http_status, name).is_some();
        }
    }

    let info = code_info
        .filter(|ci| ci.http_status == http_status)
        .or_else(|| status_name.and_then(|n| entry_by_name(http_status, n)))
        .or_else(|| closest_for_http_status(http_status));

    let retryable = match info {
        Some(i) => i.retryable,
        None => matches!(http_status, 408 | 429 | 500..=599),
    };

    SinchError {
        http_status,
        error_code,
        status,
        message,
        reference,
        info,
        code_mismatch,
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_unique_and_complete() {
        let codes: Vec<u32> = all().iter().map(|e| e.code).collect();
        let expected = [
            40001, 40002, 40003, 40004, 40005, 40100, 40101, 40102, 40103, 40104, 40105, 40107,
            40108, 40200, 40300, 40301, 40302, 40303, 40400, 40900, 42200, 42201, 42202, 42900,
            42901, 50000, 50300, 50301,
        ];
        assert_eq!(codes, expected);
        for e in all() {
            assert_eq!(u32::from(e.http_status), e.code / 100, "{}", e.code);
            assert!(!e.status_name.is_empty() && !e.status_name.contains(' '));
            assert!(!e.meaning.is_empty() && !e.remedy.is_empty());
            assert_eq!(e.retryable, e.http_status >= 429, "{}", e.code);
        }
    }

    #[test]
    fn lookup_finds_every_code_and_nothing_else() {
        for e in all() {
            assert_eq!(lookup(e.code), Some(e));
        }
        for c in [0, 40000, 40006, 40106, 42203, 50500, u32::MAX] {
            assert_eq!(lookup(c), None, "{c}");
        }
    }

    #[test]
    fn named_constants_resolve() {
        use code::*;
        let cases = [
            (PARAMETER_VALIDATION, "400 ParameterValidation"),
            (MISSING_PARAMETER, "400 MissingParameter"),
            (INVALID_REQUEST, "400 InvalidRequest"),
            (INVALID_AUTHORIZATION_KEY, "400 InvalidAuthorizationKey"),
            (NUMBER_MISSING_LEADING_PLUS, "400 NumberMissingLeadingPlus"),
            (AUTHORIZATION_HEADER, "401 AuthorizationHeader"),
            (TIMESTAMP_HEADER, "401 TimestampHeader"),
            (INVALID_SIGNATURE, "401 InvalidSignature"),
            (ALREADY_AUTHORIZED, "401 AlreadyAuthorized"),
            (SIGNATURE_REQUIRED, "401 SignatureRequired"),
            (EXPIRED, "401 Expired"),
            (INVALID_AUTHORIZATION, "401 InvalidAuthorization"),
            (INVALID_CREDENTIALS, "401 InvalidCredentials"),
            (PAYMENT_REQUIRED, "402 PaymentRequired"),
            (FORBIDDEN, "403 ForbiddenRequest"),
            (INVALID_SCHEME, "403 InvalidScheme"),
            (INSUFFICIENT_PRIVILEGES, "403 InsufficientPrivileges"),
            (RESTRICTED_ACTION, "403 RestrictedAction"),
            (NOT_FOUND, "404 ResourceNotFound"),
            (CONFLICT, "409 RequestConflict"),
            (INVALID_CALLBACK_RESPONSE, "422 InvalidCallbackResponse"),
            (CAPACITY_EXCEEDED, "429 CapacityExceeded"),
            (VELOCITY_CONSTRAINT, "429 VelocityConstraint"),
            (INTERNAL_ERROR, "500 InternalError"),
            (TEMPORARY_DOWN, "503 TemporaryDown"),
            (CONFIGURATION_ERROR, "503 ConfigurationError"),
        ];
        for (c, line) in cases {
            assert_eq!(
                lookup(c).map(ErrorCodeInfo::status_line).as_deref(),
                Some(line)
            );
        }
    }

    #[test]
    fn corrected_seed_mistakes() {
        assert_eq!(lookup(42200).map(|e| e.http_status), Some(422));
        assert_eq!(lookup(42202).map(|e| e.http_status), Some(422));
        assert_eq!(lookup(40302).map(|e| e.http_status), Some(403));
        assert_eq!(lookup(40303).map(|e| e.http_status), Some(403));
        assert!(lookup(42200).is_some_and(|e| e.meaning.contains("undocumented by Sinch")));
        assert!(lookup(42201).is_some_and(|e| e.meaning.contains("undocumented by Sinch")));
    }

    #[test]
    fn serializes_camel_case_with_status_line() {
        let v = serde_json::to_value(lookup(code::INVALID_CALLBACK_RESPONSE)).unwrap();
        assert_eq!(v["code"], 42202);
        assert_eq!(v["httpStatus"], 422);
        assert_eq!(v["status"], "422 InvalidCallbackResponse");
        assert_eq!(v["retryable"], false);
        assert!(v["meaning"].as_str().unwrap().contains("callback"));
        assert!(v["remedy"].is_string());
        assert_eq!(v.as_object().unwrap().len(), 6);
        let whole = serde_json::to_value(all()).unwrap();
        assert_eq!(whole.as_array().unwrap().len(), 28);
    }

    #[test]
    fn closest_for_unlisted_statuses() {
        let c = |s| closest_for_http_status(s).map(|e| (e.code, e.http_status));
        assert_eq!(c(413), Some((40003, 400)));
        assert_eq!(c(415), Some((40003, 400)));
        assert_eq!(c(405), Some((40001, 400)));
        assert_eq!(c(401), Some((40100, 401)));
        assert_eq!(c(422), Some((42200, 422)));
        assert_eq!(c(502), Some((50300, 503)));
        assert_eq!(c(599), Some((50000, 500)));
        assert_eq!(c(200), None);
        assert_eq!(c(408), None);
    }

    // --- parse_sinch_error with the seed's example bodies (mistakes included) ---

    fn info_code(e: &SinchError) -> Option<u32> {
        e.info.map(|i| i.code)
    }

    #[test]
    fn parses_consistent_example() {
        let e = parse_sinch_error(
            400,
            br#"{"status": "400 ParameterValidation", "errorCode": 40001,
                "message": "Method needs to be `ttsCallout`, `conferenceCallout`, or `customCallout`"}"#,
        );
        assert_eq!(e.error_code, Some(40001));
        assert_eq!(e.status.as_deref(), Some("400 ParameterValidation"));
        assert!(e
            .message
            .as_deref()
            .unwrap()
            .starts_with("Method needs to be"));
        assert_eq!(e.reference, None);
        assert_eq!(info_code(&e), Some(40001));
        assert!(!e.code_mismatch);
        assert!(!e.retryable);
    }

    #[test]
    fn example_40004_with_wrong_code_40002() {
        let e = parse_sinch_error(
            400,
            br#"{"status": "400 InvalidAuthorizationKey", "errorCode": 40002,
                "message": "Invalid authorization key"}"#,
        );
        assert_eq!(e.error_code, Some(40002));
        // The code is consistent with HTTP 400, so it stays authoritative; the disagreement with
        // the status name is flagged.
        assert_eq!(info_code(&e), Some(40002));
        assert!(e.code_mismatch);
        assert!(!e.retryable);
    }

    #[test]
    fn example_40005_with_wrong_code_40002() {
        let e = parse_sinch_error(
            400,
            br#"{"status": "400 NumberMissingLeadingPlus", "errorCode": 40002,
                "message": "Phone number missing leading plus sign"}"#,
        );
        assert!(e.code_mismatch);
        assert_eq!(info_code(&e), Some(40002));
    }

    #[test]
    fn example_50300_with_unknown_code_50500() {
        let e = parse_sinch_error(
            503,
            br#"{"status": "503 TemporaryDown", "errorCode": 50500,
                "message": "Service temporarily unavailable"}"#,
        );
        assert_eq!(e.error_code, Some(50500));
        assert_eq!(info_code(&e), Some(50300));
        assert!(e.code_mismatch);
        assert!(e.retryable);
    }

    #[test]
    fn example_40302_with_status_401() {
        let e = parse_sinch_error(
            403,
            br#"{"status": "401 InsufficientPrivileges", "errorCode": 40302,
                "message": "Privileges are insufficient to access the resource"}"#,
        );
        assert_eq!(info_code(&e), Some(40302));
        assert!(e.code_mismatch);
        assert!(!e.retryable);
    }

    #[test]
    fn example_42202_copied_from_40108() {
        // The page's 42202 example is a copy of the 40108 one; received with HTTP 422.
        let e = parse_sinch_error(
            422,
            br#"{"status": "401 InvalidCredentials", "errorCode": 40108,
                "message": "Credentials provided are invalid"}"#,
        );
        assert_eq!(e.error_code, Some(40108));
        // 40108 disagrees with HTTP 422, the status name is not a 422 name: classify by status.
        assert_eq!(info_code(&e), Some(42200));
        assert!(e.code_mismatch);
        assert!(!e.retryable);
    }

    #[test]
    fn example_40102_labelled_missing_parameter() {
        let e = parse_sinch_error(
            401,
            br#"{"status": "401 MissingParameter", "errorCode": 40102,
                "message": "Request has invalid signature"}"#,
        );
        assert_eq!(info_code(&e), Some(40102));
        // "MissingParameter" is not a 401 name in the catalog, so no name conflict is reported.
        assert!(!e.code_mismatch);
    }

    #[test]
    fn string_code_and_reference() {
        let e = parse_sinch_error(
            429,
            br#"{"status":"429 VelocityConstraint","errorCode":"42901","message":"slow down","reference":"abc-123"}"#,
        );
        assert_eq!(e.error_code, Some(42901));
        assert_eq!(info_code(&e), Some(42901));
        assert_eq!(e.reference.as_deref(), Some("abc-123"));
        assert!(e.retryable);
        assert!(!e.code_mismatch);
        let e = parse_sinch_error(500, br#"{"errorCode":" 50000 ","reference":12345}"#);
        assert_eq!(e.error_code, Some(50000));
        assert_eq!(e.reference.as_deref(), Some("12345"));
        let e = parse_sinch_error(500, br#"{"errorCode":50000.0}"#);
        assert_eq!(e.error_code, Some(50000));
        let e = parse_sinch_error(500, br#"{"errorCode":"fifty"}"#);
        assert_eq!(e.error_code, None);
        assert_eq!(info_code(&e), Some(50000));
        let e = parse_sinch_error(500, br#"{"errorCode":-1}"#);
        assert_eq!(e.error_code, None);
    }

    #[test]
    fn status_name_rescues_missing_code() {
        let e = parse_sinch_error(401, br#"{"status":"401 Expired","message":"old"}"#);
        assert_eq!(e.error_code, None);
        assert_eq!(info_code(&e), Some(40105));
        assert!(!e.code_mismatch);
    }

    #[test]
    fn configuration_error_is_retryable() {
        let e = parse_sinch_error(
            503,
            br#"{"status":"503 ConfigurationError","errorCode":50301}"#,
        );
        assert_eq!(info_code(&e), Some(50301));
        assert!(e.retryable);
    }

    #[test]
    fn non_json_and_garbage() {
        let e = parse_sinch_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(e.message.as_deref(), Some("<html>Bad Gateway</html>"));
        assert_eq!(e.error_code, None);
        assert_eq!(info_code(&e), Some(50300));
        assert!(e.retryable);
        assert!(!e.code_mismatch);

        let e = parse_sinch_error(400, &[0xff, 0xfe, b'x', 0x00]);
        assert_eq!(e.message.as_deref(), Some("\u{fffd}\u{fffd}x\u{0}"));
        assert_eq!(info_code(&e), Some(40003));

        let e = parse_sinch_error(504, b"");
        assert_eq!(e.message, None);
        assert!(e.retryable);

        let e = parse_sinch_error(418, b"[1,2,3]");
        assert_eq!(e.message.as_deref(), Some("[1,2,3]"));
        assert_eq!(e.info, None);
        assert!(!e.retryable);

        let e = parse_sinch_error(408, b"timeout");
        assert_eq!(e.info, None);
        assert!(e.retryable);

        let long = "é".repeat(5000);
        let e = parse_sinch_error(500, long.as_bytes());
        let m = e.message.unwrap();
        assert_eq!(m.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(m.ends_with('…'));

        let e = parse_sinch_error(400, br#""just a string""#);
        assert_eq!(e.message.as_deref(), Some("just a string"));
    }

    #[test]
    fn odd_field_types_do_not_panic() {
        let e = parse_sinch_error(
            400,
            br#"{"status":400,"errorCode":[1],"message":{"a":1},"reference":null}"#,
        );
        assert_eq!(e.status.as_deref(), Some("400"));
        assert_eq!(e.error_code, None);
        assert_eq!(e.message.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(e.reference, None);
        assert!(!e.code_mismatch);
        let e = parse_sinch_error(400, br#"{"errorCode":123}"#);
        assert!(e.code_mismatch, "a code that is not five digits is flagged");
        let shown = parse_sinch_error(
            401,
            br#"{"status":"401 Expired","errorCode":40105,"message":"m","reference":"r"}"#,
        )
        .to_string();
        assert_eq!(
            shown,
            "Sinch returned HTTP 401, errorCode 40105 (401 Expired): m [reference r]"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(status in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..300))| {
            let e = parse_sinch_error(status, &body);
            prop_assert_eq!(e.http_status, status);
        });
        proptest!(|(status in 100u16..600, code in proptest::option::of(any::<i64>()),
                    st in proptest::option::of(".{0,40}"), as_str in any::<bool>())| {
            let mut m = serde_json::Map::new();
            if let Some(c) = code {
                m.insert("errorCode".into(), if as_str { c.to_string().into() } else { c.into() });
            }
            if let Some(s) = st { m.insert("status".into(), s.into()); }
            let body = serde_json::to_vec(&m).unwrap();
            let e = parse_sinch_error(status, &body);
            prop_assert_eq!(e.error_code, code.and_then(|c| u32::try_from(c).ok()));
        });
    }
}
