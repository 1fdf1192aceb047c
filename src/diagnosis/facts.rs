//! The records the diagnosis reads, as typed rows: the outbound requests of a call with their
//! attempts (`outbound_requests`, `outbound_attempts`, read by [`OutboundStore`], the admin API's
//! read of them), its callbacks (`callbacks`), the replies the gate stopped (`rejected_replies`)
//! and the signature refusals (`refusals`). Each table is read with `query_as` into a row struct
//! of its columns, whose vocabulary columns decode as their types ([`EventKind`], and [`Stored`]
//! [`SignatureState`], [`FallbackReason`], [`RequestOutcome`], [`LocalCheck`], [`Operation`], …,
//! declared in [`crate::outcome`], which keep text written by another version).

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::outbound::{OutboundAttempt, OutboundRequest, OutboundStore};
use crate::events::EventKind;
pub use crate::outcome::{
    AttemptFailure, AuthScheme, CalloutMethod, HttpMethod, LocalCheck, Operation, RequestOutcome,
    Stored,
};
use crate::outcome::{FallbackReason, RefusalReason, SignatureState};

/// Reads a JSON member as text when it is a string, and as absent otherwise (so that one member
/// of an unexpected type does not hide the others).
fn lenient_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// Reads a JSON member as an integer when it is one, and as absent otherwise.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Value::deserialize(d)?.as_i64())
}

/// What a local check reported (`outbound_requests.local_report`), as far as the diagnosis reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalReport {
    /// The field that is not E.164 (`invalid_number`).
    #[serde(default, deserialize_with = "lenient_str")]
    pub field: Option<String>,
    /// Calls in progress when the cap refused the callout (`cap_reached`).
    #[serde(default, deserialize_with = "lenient_i64")]
    pub in_progress: Option<i64>,
}

/// One HTTP exchange with Sinch (`outbound_attempts`), as far as the diagnosis reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The request it belongs to.
    pub request_id: Uuid,
    /// 1, 2, 3, …
    pub attempt: i16,
    /// How it was authenticated.
    pub auth_scheme: Stored<AuthScheme>,
    /// HTTP status Sinch answered; none when it did not answer.
    pub http_status: Option<i16>,
    /// Sinch's errorCode.
    pub error_code: Option<i32>,
    /// The catalog's reading of the answer.
    pub classified_code: Option<i32>,
    /// Sinch's message.
    pub error_message: Option<String>,
    /// Sinch's reference.
    pub error_reference: Option<String>,
}

impl From<OutboundAttempt> for Attempt {
    fn from(a: OutboundAttempt) -> Self {
        Attempt {
            request_id: a.request_id,
            attempt: a.attempt,
            auth_scheme: a.auth_scheme,
            http_status: a.http_status,
            error_code: a.error_code,
            classified_code: a.classified_code,
            error_message: a.error_message,
            error_reference: a.error_reference,
        }
    }
}

/// A request svamlgate sent (or refused to send) to Sinch, with its attempts.
#[derive(Debug, Clone)]
pub struct Request {
    /// Row id.
    pub id: Uuid,
    /// svamlgate's reference.
    pub reference: String,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
    /// The Calling API operation (`callout`, `manage_call`, …).
    pub operation: Stored<Operation>,
    /// HTTP method.
    pub method: Stored<HttpMethod>,
    /// JSON body sent.
    pub body: Option<Value>,
    /// Call id, when known.
    pub callid: Option<String>,
    /// Callout method (`ttsCallout`, `customCallout`, …).
    pub callout_method: Option<Stored<CalloutMethod>>,
    /// Callout destination.
    pub destination: Option<String>,
    /// Whether a DICE will come.
    pub dice_expected: Option<bool>,
    /// What the local checks said.
    pub local_check: Stored<LocalCheck>,
    /// Details of a failed check.
    pub local_report: LocalReport,
    /// How the request ended.
    pub outcome: Stored<RequestOutcome>,
    /// Last failure (`connect`, `timeout`, …).
    pub failure: Option<Stored<AttemptFailure>>,
    /// Every HTTP exchange, in order.
    pub attempts: Vec<Attempt>,
}

impl Request {
    /// Whether this is a callout.
    pub fn is_callout(&self) -> bool {
        self.operation.is(Operation::Callout)
    }

    /// Whether the callout body sets `flag` (`enableAce`, …) to true under its method's member.
    pub fn callout_flag(&self, flag: &str) -> bool {
        let method = self.callout_method.as_ref().map_or("-", Stored::as_str);
        self.body
            .as_ref()
            .and_then(|b| b.get(method))
            .and_then(|m| m.get(flag))
            .and_then(Value::as_bool)
            == Some(true)
    }
}

impl From<OutboundRequest> for Request {
    fn from(r: OutboundRequest) -> Self {
        Request {
            id: r.id,
            reference: r.reference,
            created_at: r.created_at,
            operation: r.operation,
            method: r.method,
            body: r.body,
            callid: r.callid,
            callout_method: r.callout_method,
            destination: r.destination,
            dice_expected: r.dice_expected,
            local_check: r.local_check,
            local_report: r
                .local_report
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            outcome: r.outcome,
            failure: r.failure,
            attempts: r.attempts.into_iter().map(Attempt::from).collect(),
        }
    }
}

/// The members of a callback body the diagnosis reads (ICE `cli` and `to`, DICE `reason` and
/// `result`, Notify `type` and `errorMsg`); any member may be absent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BodyFields {
    /// Caller (ICE).
    #[serde(default, deserialize_with = "lenient_str")]
    pub cli: Option<String>,
    /// Callee (ICE).
    #[serde(default, deserialize_with = "to_endpoint")]
    pub to: Option<String>,
    /// Why the call ended (DICE).
    #[serde(default, deserialize_with = "lenient_str")]
    pub reason: Option<String>,
    /// How the call ended (DICE).
    #[serde(default, deserialize_with = "lenient_str")]
    pub result: Option<String>,
    /// Notify type.
    #[serde(default, rename = "type", deserialize_with = "lenient_str")]
    pub kind: Option<String>,
    /// Notify errorCode, as sent (`null` included).
    #[serde(default, deserialize_with = "any_value")]
    pub error_code: Option<Value>,
    /// Notify errorMsg.
    #[serde(default, deserialize_with = "lenient_str")]
    pub error_msg: Option<String>,
}

/// Any JSON value, `null` included, as present.
fn any_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `to.endpoint`, when it is text.
fn to_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Value::deserialize(d)?
        .get("endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// The columns of `callbacks` the diagnosis reads.
#[derive(Debug, Clone, sqlx::FromRow)]
struct CallbackRow {
    received_at: OffsetDateTime,
    event_type: EventKind,
    signature: Stored<SignatureState>,
    duplicate: bool,
    fallback_reason: Option<Stored<FallbackReason>>,
    body: Option<Value>,
}

/// A callback of the call.
#[derive(Debug, Clone)]
pub struct Callback {
    /// Arrival.
    pub received_at: OffsetDateTime,
    /// The event.
    pub kind: EventKind,
    /// Whether its signature was checked.
    pub signature: Stored<SignatureState>,
    /// Replay of an earlier callback.
    pub duplicate: bool,
    /// Why the fallback went out, if it did.
    pub fallback_reason: Option<Stored<FallbackReason>>,
    /// The body as received, when it was read.
    pub body: Option<Value>,
    /// The members of the body the steps read.
    pub fields: BodyFields,
}

impl Callback {
    /// A callback read from its parts (the body's members are read here).
    pub fn new(
        received_at: OffsetDateTime,
        kind: EventKind,
        signature: Stored<SignatureState>,
        duplicate: bool,
        fallback_reason: Option<Stored<FallbackReason>>,
        body: Option<Value>,
    ) -> Self {
        let fields = body
            .as_ref()
            .and_then(|b| BodyFields::deserialize(b).ok())
            .unwrap_or_default();
        Callback {
            received_at,
            kind,
            signature,
            duplicate,
            fallback_reason,
            body,
            fields,
        }
    }
}

impl From<CallbackRow> for Callback {
    fn from(r: CallbackRow) -> Self {
        Callback::new(
            r.received_at,
            r.event_type,
            r.signature,
            r.duplicate,
            r.fallback_reason,
            r.body,
        )
    }
}

/// Signature refusals of one reason.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefusalCount {
    /// Why they were refused (a reason another version wrote is kept as text).
    pub reason: Stored<RefusalReason>,
    /// How many.
    pub n: i64,
}

/// The requests of a call, oldest first, with their attempts.
pub async fn requests_for_call(pool: &PgPool, callid: &str) -> Result<Vec<Request>, sqlx::Error> {
    let rows = OutboundStore::new(pool.clone())
        .requests_for_call(callid)
        .await?;
    Ok(rows.into_iter().map(Request::from).collect())
}

/// One request by svamlgate's reference, with its attempts.
pub async fn request_by_reference(
    pool: &PgPool,
    reference: &str,
) -> Result<Option<Request>, sqlx::Error> {
    let row = OutboundStore::new(pool.clone())
        .request_by_reference(reference)
        .await?;
    Ok(row.map(Request::from))
}

/// The callbacks of a call, in arrival order.
pub async fn callbacks_for_call(pool: &PgPool, callid: &str) -> Result<Vec<Callback>, sqlx::Error> {
    let rows: Vec<CallbackRow> = sqlx::query_as(
        "SELECT received_at, event_type, signature, duplicate_of IS NOT NULL AS duplicate, \
         fallback_reason, callbacks.body AS body FROM callbacks WHERE callid = $1 ORDER BY received_at, id",
    )
    .bind(callid)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Callback::from).collect())
}

/// How many replies of the call the gate stopped.
pub async fn rejected_replies_for_call(pool: &PgPool, callid: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM rejected_replies r JOIN callbacks c ON c.id = r.callback_id \
         WHERE c.callid = $1",
    )
    .bind(callid)
    .fetch_one(pool)
    .await
}

/// Signature refusals between two instants, per reason, most frequent first.
pub async fn refusals_between(
    pool: &PgPool,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<RefusalCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reason, count(*) AS n FROM refusals WHERE received_at BETWEEN $1 AND $2 \
         GROUP BY reason ORDER BY n DESC",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}
