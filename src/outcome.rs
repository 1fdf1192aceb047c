//! The fixed vocabulary of a callback's outcome: whether its signature was checked, what produced
//! its reply, why a fallback went out instead, and what the gate said. Each is an enum here, listed
//! once; it becomes text only at the edges (SQL columns, journal records, API bodies, metric
//! labels), always through `as_str`, and the column comments in `migrations/` list the same values
//! (a test holds them together). The outbound vocabulary is declared here the same way: of a
//! request to Sinch, its operation and HTTP method, a callout's method, what svamlgate's checks
//! said, how it ended; of each attempt, how it was authenticated, why no answer came, what
//! followed. They stay typed from the journal record to the row and back (their serde names are
//! the texts the records and columns have always held).
//!
//! Each vocabulary is also a PostgreSQL text column type: it binds as its text and reads back as
//! itself (a read of a value outside the vocabulary is a decode error naming the value). Where a
//! column may hold values written by another version, read it as [`Stored<T>`] instead, which
//! keeps unknown text as [`Stored::Other`]. The event kind (`EventKind`) reads and writes the same
//! way, through [`text_column`] (an unknown event keeps its name, so its read never fails).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::Postgres;

/// A fixed vocabulary of text values (what [`vocabulary!`] declares).
pub trait Vocabulary: Copy + 'static {
    /// The vocabulary's name (in error messages).
    const NAME: &'static str;
    /// The value as written.
    fn text(self) -> &'static str;
    /// Reads [`Vocabulary::text`] back.
    fn from_text(text: &str) -> Option<Self>;
}

/// Makes a type a PostgreSQL text column: bound as `$to(&self)`, read with `$from(&str)`, which
/// returns `Result<Self, String>`.
macro_rules! text_column {
    ($ty:ty, $to:expr, $from:expr) => {
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: &str = $to(self);
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(text, buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                $from(text).map_err(Into::into)
            }
        }
    };
}
pub(crate) use text_column;

macro_rules! vocabulary {
    (@schema_name $name:ident $schema:literal) => { $schema };
    (@schema_name $name:ident) => { stringify!($name) };
    (
        $(#[doc = $doc:literal])*
        $name:ident $(as $schema:literal)? { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in SQL, JSON and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// Reads [`Self::as_str`] back.
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl Vocabulary for $name {
            const NAME: &'static str = stringify!($name);
            fn text(self) -> &'static str {
                self.as_str()
            }
            fn from_text(text: &str) -> Option<Self> {
                Self::parse(text)
            }
        }

        text_column!($name, |v: &$name| v.as_str(), |t: &str| $name::parse(t)
            .ok_or_else(|| format!("unknown {} {t:?} in the database", stringify!($name))));

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let mut schema = text_schema(Self::ALL.iter().map(|v| v.as_str()));
                let doc: Vec<&str> = [$($doc),*].iter().map(|line| line.trim()).collect();
                schema.description = Some(doc.join("\n"));
                schema.into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(vocabulary!(@schema_name $name $($schema)?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} {text:?}",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

/// The schema of a text that is one of `values` (for the OpenAPI document).
pub fn text_schema<'a>(values: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .build()
}

vocabulary! {
    /// Why a callback was refused (`refusals.reason`): each is answered 401 with its catalog code
    /// (`RefusalReason::error_code`, in `crate::signature`).
    RefusalReason {
        /// No credentials configured at all (40108).
        NoKeysConfigured => "no_keys_configured",
        /// No `authorization` header, or an empty one (40100).
        AuthorizationMissing => "authorization_missing",
        /// `authorization` is not `<scheme> <key>:<credential>` (40100).
        AuthorizationMalformed => "authorization_malformed",
        /// Scheme other than `application` (or `Basic`) (40107).
        UnsupportedScheme => "unsupported_scheme",
        /// `Basic` scheme while [`VerifyPolicy::allow_basic`] is false (40107).
        BasicNotAllowed => "basic_not_allowed",
        /// The application key is not configured (40108).
        UnknownKey => "unknown_key",
        /// No `x-timestamp` header (40101).
        TimestampMissing => "timestamp_missing",
        /// `x-timestamp` is not a parseable ISO-8601 timestamp (40101).
        TimestampInvalid => "timestamp_invalid",
        /// The signature is not valid base64 (40102).
        SignatureNotBase64 => "signature_not_base64",
        /// The signature does not match the request (40102).
        SignatureMismatch => "signature_mismatch",
        /// Basic scheme with the wrong secret (40107).
        BasicSecretMismatch => "basic_secret_mismatch",
        /// `x-timestamp` older than the window (40105).
        TimestampTooOld => "timestamp_too_old",
        /// `x-timestamp` further ahead than the window (40105).
        TimestampInFuture => "timestamp_in_future",
    }
}

vocabulary! {
    /// Whether the callback's signature was checked (`callbacks.signature`). Refused requests are
    /// not callbacks: they are in `refusals`.
    SignatureState {
        /// Signed by a configured key.
        Verified => "verified",
        /// Signature checking is disabled by configuration.
        Unverified => "unverified",
        /// The signature failed and report mode answered anyway (the failure is in `refusals`).
        Reported => "reported",
    }
}

vocabulary! {
    /// What produced the reply that went out (`callbacks.reply_source`, the `source` label).
    ReplySource {
        /// A stored call flow.
        Flow => "flow",
        /// The customer's own app (proxy mode).
        Upstream => "upstream",
        /// The configured default reply (no route matched).
        Default => "default",
        /// The pre-validated fallback, instead of what was decided (see [`FallbackReason`]).
        Fallback => "fallback",
        /// A replay, answered with the original's reply.
        Duplicate => "duplicate",
        /// Nothing: an empty 200 (DICE, Notify, unknown events).
        None => "none",
        /// An error envelope (the body could not be read as an event).
        Error => "error",
    }
}

vocabulary! {
    /// Why the fallback went out instead of the decided reply (`callbacks.fallback_reason`, the
    /// `reason` label).
    FallbackReason {
        /// The gate refused the decided reply.
        Invalid => "invalid",
        /// No reply was decided before the event's deadline.
        Deadline => "deadline",
        /// The customer's app failed or answered something unusable.
        UpstreamError => "upstream_error",
        /// The flow could not be loaded or run.
        FlowError => "flow_error",
    }
}

vocabulary! {
    /// What the gate said about the decided reply (`callbacks.gate_verdict`, the `verdict` label).
    GateVerdict {
        /// Valid: it went out.
        Passed => "passed",
        /// Invalid, and sent as it was because the route (or the service) is in observe mode.
        Observed => "observed",
        /// Invalid: the fallback went out instead.
        Rejected => "rejected",
    }
}

vocabulary! {
    /// How a request to Sinch's Calling API ended (`outbound_requests.outcome`, the `outcome` label).
    RequestOutcome {
        /// Not finished yet.
        Pending => "pending",
        /// Sinch accepted it.
        Success => "success",
        /// Sinch answered with an error.
        SinchError => "sinch_error",
        /// Sinch never answered (connection failures).
        NoAnswer => "no_answer",
        /// Sinch may or may not have acted (timeouts after sending a callout).
        Unknown => "unknown",
        /// svamlgate's own checks refused it before sending.
        RefusedLocally => "refused_locally",
    }
}

vocabulary! {
    /// What svamlgate's checks said of a request before sending it (`outbound_requests.local_check`).
    LocalCheck {
        /// Every check passed.
        Passed => "passed",
        /// A number is not E.164.
        InvalidNumber => "invalid_number",
        /// The body is not what the operation takes.
        InvalidBody => "invalid_body",
        /// The SVAML did not pass the gate.
        InvalidSvaml => "invalid_svaml",
        /// Too many calls in progress.
        CapReached => "cap_reached",
        /// No Sinch credentials configured (or the client is disabled by its settings).
        NotConfigured => "not_configured",
        /// The calls in progress could not be counted; the callout went out unchecked.
        CapUnchecked => "cap_unchecked",
    }
}

vocabulary! {
    /// What followed one attempt of a request to Sinch (`outbound_attempts.decision`).
    AttemptDecision {
        /// The request ended with this attempt.
        Done => "done",
        /// Another attempt followed.
        Retry => "retry",
        /// Retrying stopped early (budget, or a callout that must not be sent twice).
        GiveUp => "give_up",
    }
}

/// A stored vocabulary value: one the code knows, or text it does not (written by another
/// version), kept so that it can still be shown. Reads as text from PostgreSQL and JSON, never
/// failing; writes as the text it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored<T> {
    /// A value of the vocabulary.
    Known(T),
    /// Text outside the vocabulary, as stored.
    Other(String),
}

impl<T: Vocabulary> Stored<T> {
    /// Reads stored text.
    pub fn read(text: &str) -> Self {
        match T::from_text(text) {
            Some(v) => Stored::Known(v),
            None => Stored::Other(text.to_owned()),
        }
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        match self {
            Stored::Known(v) => v.text(),
            Stored::Other(t) => t,
        }
    }

    /// The known value, if it is one.
    pub fn known(&self) -> Option<T> {
        match self {
            Stored::Known(v) => Some(*v),
            Stored::Other(_) => None,
        }
    }
}

impl<T: PartialEq> Stored<T> {
    /// Whether this is `v`.
    pub fn is(&self, v: T) -> bool {
        matches!(self, Stored::Known(k) if *k == v)
    }
}

impl<T> From<T> for Stored<T> {
    fn from(v: T) -> Self {
        Stored::Known(v)
    }
}

impl<T: Vocabulary> fmt::Display for Stored<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<T: Vocabulary> Serialize for Stored<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de, T: Vocabulary> Deserialize<'de> for Stored<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Stored::read(&text))
    }
}

impl<T: Vocabulary> sqlx::Type<Postgres> for Stored<T> {
    fn type_info() -> PgTypeInfo {
        <&str as sqlx::Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<T: Vocabulary> sqlx::Encode<'_, Postgres> for Stored<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as sqlx::Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

impl<'r, T: Vocabulary> sqlx::Decode<'r, Postgres> for Stored<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Stored::read(<&str as sqlx::Decode<Postgres>>::decode(
            value,
        )?))
    }
}

vocabulary! {
    /// Operations of the Calling API svamlgate performs (`outbound_requests.operation`).
    Operation as "SinchOperation" {
        /// `POST /calling/v1/callouts`.
        Callout => "callout",
        /// `GET /calling/v1/calls/id/{callId}`.
        GetCall => "get_call",
        /// `PATCH /calling/v1/calls/id/{callId}`.
        ManageCall => "manage_call",
        /// `PATCH /calling/v1/calls/id/{callId}/leg/{callLeg}`.
        ManageCallLeg => "manage_call_leg",
        /// `GET /calling/v1/conferences/id/{conferenceId}`.
        GetConference => "get_conference",
        /// `DELETE /calling/v1/conferences/id/{conferenceId}`.
        KickAll => "kick_all",
        /// `PATCH /calling/v1/conferences/id/{conferenceId}/{callId}`.
        ManageParticipant => "manage_participant",
        /// `DELETE /calling/v1/conferences/id/{conferenceId}/{callId}`.
        KickParticipant => "kick_participant",
    }
}

impl Operation {
    /// The HTTP method of the operation (`outbound_requests.method`).
    pub fn method(self) -> HttpMethod {
        match self {
            Operation::Callout => HttpMethod::Post,
            Operation::GetCall | Operation::GetConference => HttpMethod::Get,
            Operation::ManageCall | Operation::ManageCallLeg | Operation::ManageParticipant => {
                HttpMethod::Patch
            }
            Operation::KickAll | Operation::KickParticipant => HttpMethod::Delete,
        }
    }
}

vocabulary! {
    /// The HTTP method of a request to Sinch (`outbound_requests.method`): always the method of
    /// its operation ([`Operation::method`]).
    HttpMethod {
        /// Reads.
        Get => "GET",
        /// Callouts.
        Post => "POST",
        /// Call, leg and participant control.
        Patch => "PATCH",
        /// Kicks.
        Delete => "DELETE",
    }
}

vocabulary! {
    /// The method of a callout (`outbound_requests.callout_method`, the body's `method`).
    CalloutMethod {
        /// A text-to-speech call.
        Tts => "ttsCallout",
        /// A call into a conference.
        Conference => "conferenceCallout",
        /// A call whose ICE and ACE answers are given inline (or by the application's callback URL).
        Custom => "customCallout",
    }
}

vocabulary! {
    /// How a request to Sinch was authenticated (`outbound_attempts.auth_scheme`).
    AuthScheme {
        /// The application key and an HMAC signature with `x-timestamp`.
        Signed => "signed",
        /// Basic authentication (SINCH_API_BASIC_AUTH).
        Basic => "basic",
    }
}

vocabulary! {
    /// Why an attempt of a request to Sinch got no (usable) answer (`outbound_attempts.failure`,
    /// `outbound_requests.failure`).
    AttemptFailure {
        /// No connection was made: nothing was sent.
        Connect => "connect",
        /// No complete answer in time.
        Timeout => "timeout",
        /// The exchange broke after connecting.
        Io => "io",
        /// The answer body was over the limit (the status is known).
        TooLarge => "too_large",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The latest comment on `table.column` in `migrations/`.
    fn comment_on(table: &str, column: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let needle = format!("COMMENT ON COLUMN {table}.{column} IS '");
        let mut last = None;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices(&needle) {
                let rest = &text[i + needle.len()..];
                last = Some(rest[..rest.find("';").unwrap()].to_owned());
            }
        }
        last.unwrap_or_else(|| panic!("no comment on {table}.{column}"))
    }

    #[test]
    fn outbound_column_comments_name_every_value() {
        let cases = [
            (
                "outbound_requests",
                "outcome",
                texts(RequestOutcome::ALL, RequestOutcome::as_str),
            ),
            (
                "outbound_requests",
                "local_check",
                texts(LocalCheck::ALL, LocalCheck::as_str),
            ),
            (
                "outbound_attempts",
                "decision",
                texts(AttemptDecision::ALL, AttemptDecision::as_str),
            ),
            (
                "outbound_requests",
                "operation",
                texts(Operation::ALL, Operation::as_str),
            ),
            (
                "outbound_requests",
                "callout_method",
                texts(CalloutMethod::ALL, CalloutMethod::as_str),
            ),
            (
                "outbound_requests",
                "failure",
                texts(AttemptFailure::ALL, AttemptFailure::as_str),
            ),
            (
                "outbound_attempts",
                "auth_scheme",
                texts(AuthScheme::ALL, AuthScheme::as_str),
            ),
            (
                "outbound_attempts",
                "failure",
                texts(AttemptFailure::ALL, AttemptFailure::as_str),
            ),
            (
                "refusals",
                "reason",
                texts(RefusalReason::ALL, RefusalReason::as_str),
            ),
        ];
        for (table, column, values) in cases {
            let comment = comment_on(table, column);
            let words: Vec<&str> = comment
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .collect();
            for v in values {
                assert!(
                    words.contains(&v.as_str()),
                    "{table}.{column} does not name {v}"
                );
            }
        }
    }

    /// `outbound_requests.method` holds the HTTP method of the operation (its comment says so and
    /// lists no values): every method is one an operation uses, so a new method comes with a new
    /// operation, which the test above holds to the `operation` comment.
    #[test]
    fn every_http_method_is_the_method_of_an_operation() {
        for m in HttpMethod::ALL {
            assert!(
                Operation::ALL.iter().any(|o| o.method() == *m),
                "no operation is sent with {m}"
            );
        }
        assert!(comment_on("outbound_requests", "method").contains("HTTP method"));
    }

    #[test]
    fn the_operation_keeps_its_schema_name() {
        use utoipa::ToSchema;
        assert_eq!(Operation::name(), "SinchOperation");
        assert_eq!(HttpMethod::name(), "HttpMethod");
        assert_eq!(
            serde_json::to_string(&CalloutMethod::Custom).unwrap(),
            "\"customCallout\""
        );
    }

    #[test]
    fn stored_values_keep_text_of_other_versions() {
        let known: Stored<RequestOutcome> = Stored::read("success");
        assert!(known.is(RequestOutcome::Success));
        let other: Stored<RequestOutcome> = Stored::read("rerouted");
        assert_eq!(other, Stored::Other("rerouted".into()));
        assert_eq!(other.to_string(), "rerouted");
        assert_eq!(other.known(), None);
        assert_eq!(serde_json::to_string(&other).unwrap(), "\"rerouted\"");
        let back: Stored<RequestOutcome> = serde_json::from_str("\"pending\"").unwrap();
        assert_eq!(back, Stored::Known(RequestOutcome::Pending));
        assert!(serde_json::from_str::<RequestOutcome>("\"rerouted\"").is_err());
    }

    /// The values a column comment lists after "One of:" (in its latest migration).
    fn listed_in_migrations(column: &str) -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let needle = format!("COMMENT ON COLUMN callbacks.{column} IS '");
        let mut last = None;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices(&needle) {
                let rest = &text[i + needle.len()..];
                last = Some(rest[..rest.find("';").unwrap()].to_owned());
            }
        }
        let comment = last.unwrap_or_else(|| panic!("no comment on callbacks.{column}"));
        let list = comment
            .split_once("One of: ")
            .unwrap_or_else(|| panic!("callbacks.{column}: no 'One of:' list in {comment:?}"))
            .1;
        // Drop the explanations in parentheses, then read the list up to its full stop.
        let mut bare = String::new();
        let mut depth = 0;
        for ch in list.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => bare.push(ch),
                _ => {}
            }
        }
        let bare = &bare[..bare.find('.').unwrap_or(bare.len())];
        bare.split(',').map(|v| v.trim().to_owned()).collect()
    }

    fn texts<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| f(*v).to_owned()).collect()
    }

    #[test]
    fn migration_comments_list_exactly_the_values_the_code_writes() {
        let cases = [
            (
                "signature",
                texts(SignatureState::ALL, SignatureState::as_str),
            ),
            ("reply_source", texts(ReplySource::ALL, ReplySource::as_str)),
            (
                "fallback_reason",
                texts(FallbackReason::ALL, FallbackReason::as_str),
            ),
            ("gate_verdict", texts(GateVerdict::ALL, GateVerdict::as_str)),
        ];
        for (column, values) in cases {
            assert_eq!(listed_in_migrations(column), values, "callbacks.{column}");
        }
    }

    #[test]
    fn text_round_trips_through_serde_and_parse() {
        for v in ReplySource::ALL {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<ReplySource>(&json).unwrap(), *v);
        }
        for v in FallbackReason::ALL {
            assert_eq!(FallbackReason::parse(v.as_str()), Some(*v));
        }
        assert!(serde_json::from_str::<GateVerdict>("\"maybe\"").is_err());
        assert_eq!(
            serde_json::from_str::<SignatureState>("\"verified\"").unwrap(),
            SignatureState::Verified
        );
    }
}
