//! Sinch's Voice troubleshooting checklist, answered per call from svamlgate's own records:
//! the outbound requests and Sinch's answers (`outbound_requests`, `outbound_attempts`), the
//! callbacks (`callbacks`, `rejected_replies`) and signature refusals (`refusals`).
//!
//! Each step ([`StepId`]) is `pass`, `fail` or `unknown`, with the evidence read and the next
//! thing to check:
//!
//! 1. `authenticated`: Sinch accepted svamlgate's signed request (no 401xx/40301).
//! 2. `number_format`: the numbers were E.164 (local check, or Sinch's 40005).
//! 3. `rang`: the callout was accepted, then ACE, or DICE with its `reason` and `result`.
//! 4. `callback_arrived`: a callback arrived for the call, and its signature state.
//! 5. `svaml_valid`: the SVAML returned was valid and Sinch did not reject it.
//! 6. `credit_capacity`: no 40200, 42900 or 42901 (from Sinch or the local cap).
//!
//! [`diagnose`] is pure (tested without a database) over typed [`Facts`]; [`gather`] reads them
//! ([`facts`] holds the rows and their queries); `steps.rs` walks each step.

pub mod facts;
mod steps;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::db::outbound::{CallLimits, OutboundStore};
pub use facts::{Attempt, Callback, LocalCheck, RefusalCount, Request, RequestOutcome, Stored};

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DiagnosisStatus)]
pub enum Status {
    /// The records show the step went right.
    Pass,
    /// The records show the step went wrong.
    Fail,
    /// The records do not tell.
    Unknown,
}

impl Status {
    /// `pass`, `fail`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

/// The steps, in Sinch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepId {
    /// Sinch accepted svamlgate's request.
    Authenticated,
    /// The numbers were E.164.
    NumberFormat,
    /// The phone rang.
    Rang,
    /// A callback arrived.
    CallbackArrived,
    /// The SVAML was valid and executed.
    SvamlValid,
    /// Credit and capacity sufficed.
    CreditCapacity,
}

impl StepId {
    /// Every step, in Sinch's order.
    pub const ALL: [StepId; 6] = [
        StepId::Authenticated,
        StepId::NumberFormat,
        StepId::Rang,
        StepId::CallbackArrived,
        StepId::SvamlValid,
        StepId::CreditCapacity,
    ];

    /// The stable id (`authenticated`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            StepId::Authenticated => "authenticated",
            StepId::NumberFormat => "number_format",
            StepId::Rang => "rang",
            StepId::CallbackArrived => "callback_arrived",
            StepId::SvamlValid => "svaml_valid",
            StepId::CreditCapacity => "credit_capacity",
        }
    }

    /// What the step checks.
    pub fn title(self) -> &'static str {
        match self {
            StepId::Authenticated => "The request to Sinch was authenticated",
            StepId::NumberFormat => "The number was well formed (E.164: '+', country code, number)",
            StepId::Rang => {
                "The phone rang: the callout was accepted, then answered (ACE) or ended (DICE)"
            }
            StepId::CallbackArrived => "A callback arrived for the call, with a valid signature",
            StepId::SvamlValid => "The SVAML returned was valid, and Sinch executed it",
            StepId::CreditCapacity => "Credit and capacity were sufficient (40200, 42900, 42901)",
        }
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ids of the steps, in Sinch's order.
pub const STEP_IDS: [&str; 6] = [
    StepId::ALL[0].as_str(),
    StepId::ALL[1].as_str(),
    StepId::ALL[2].as_str(),
    StepId::ALL[3].as_str(),
    StepId::ALL[4].as_str(),
    StepId::ALL[5].as_str(),
];

/// The schema of a step id (one of [`STEP_IDS`]).
fn step_id_schema() -> utoipa::openapi::Object {
    crate::outcome::text_schema(STEP_IDS)
}

/// One step of the checklist.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DiagnosisStep)]
pub struct Step {
    /// Stable id.
    #[schema(schema_with = step_id_schema)]
    pub id: StepId,
    /// What the step checks.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// Verdict.
    pub status: Status,
    /// What was read (numbers masked).
    pub evidence: Vec<String>,
    /// What to check next.
    pub next: String,
}

impl Step {
    /// A step with its title.
    fn new(id: StepId, status: Status, evidence: Vec<String>, next: impl Into<String>) -> Step {
        Step {
            id,
            title: id.title(),
            status,
            evidence,
            next: next.into(),
        }
    }
}

/// The checklist for one call.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    description = "Sinch's troubleshooting checklist for one call, answered from the records."
)]
pub struct Diagnosis {
    /// The call id, when known (a callout refused before Sinch gave one has none).
    #[schema(required = true)]
    pub callid: Option<String>,
    /// The svamlgate reference asked for, when the diagnosis was asked by reference.
    #[schema(required = true)]
    pub reference: Option<String>,
    /// The id of the first failing step, if any.
    #[schema(required = true, value_type = Option<String>)]
    pub failing_step: Option<StepId>,
    /// One sentence.
    pub summary: String,
    /// The steps, in Sinch's order.
    #[schema(min_items = 6, max_items = 6)]
    pub steps: Vec<Step>,
}

/// What the diagnosis reads.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Call id, if known.
    pub callid: Option<String>,
    /// Reference asked for, if the lookup was by reference.
    pub reference: Option<String>,
    /// Outbound requests of the call, oldest first, with their attempts.
    pub requests: Vec<Request>,
    /// Callbacks of the call, in arrival order.
    pub callbacks: Vec<Callback>,
    /// Replies of the call the gate stopped.
    pub rejected_replies: i64,
    /// Signature refusals after the callout, per reason (only read when no callback arrived).
    pub refusals: Vec<RefusalCount>,
    /// Calls in progress now, if it could be counted.
    pub in_progress: Option<i64>,
    /// The cap.
    pub limits: CallLimits,
    /// Now.
    pub now: OffsetDateTime,
}

/// How long after a callout a missing callback counts as a failure rather than "not yet".
pub const CALLBACK_GRACE_SECS: i64 = 120;

/// Walks the checklist over the facts.
pub fn diagnose(f: &Facts) -> Diagnosis {
    let steps: Vec<Step> = StepId::ALL.iter().map(|&id| steps::walk(id, f)).collect();
    let failing = steps.iter().find(|s| s.status == Status::Fail);
    let summary = match failing {
        // The title says what the step expects ("The SVAML returned was valid, …"): quoted as
        // what did not hold, so it is not read as the finding.
        Some(s) => format!(
            "Failing step: {}. Not so for this call: \"{}\". Next: {}",
            s.id, s.title, s.next
        ),
        None if steps.iter().all(|s| s.status == Status::Pass) => {
            "Every step passed: the records show nothing wrong.".to_owned()
        }
        None => "No step failed; the steps marked unknown are not shown by the records.".to_owned(),
    };
    Diagnosis {
        callid: f.callid.clone(),
        reference: f.reference.clone(),
        failing_step: failing.map(|s| s.id),
        summary,
        steps,
    }
}

/// Reads the facts of a call id, or of a svamlgate reference (a callout refused before Sinch
/// gave it a call id). `None` when neither is known.
pub async fn gather(
    pool: &PgPool,
    id: &str,
    limits: CallLimits,
) -> Result<Option<Facts>, sqlx::Error> {
    gather_counting(pool, id, limits, true).await
}

/// [`gather`], counting the calls in progress only when `count_in_progress` (the count scans the
/// last hours of callbacks; the console passes a recent count of its own instead).
pub async fn gather_counting(
    pool: &PgPool,
    id: &str,
    limits: CallLimits,
    count_in_progress: bool,
) -> Result<Option<Facts>, sqlx::Error> {
    let mut requests = facts::requests_for_call(pool, id).await?;
    let mut callbacks = facts::callbacks_for_call(pool, id).await?;
    let mut callid = Some(id.to_owned());
    let mut reference = None;
    if requests.is_empty() && callbacks.is_empty() {
        let Some(r) = facts::request_by_reference(pool, id).await? else {
            return Ok(None);
        };
        reference = Some(id.to_owned());
        callid = r.callid.clone();
        match &callid {
            Some(c) => {
                requests = facts::requests_for_call(pool, c).await?;
                callbacks = facts::callbacks_for_call(pool, c).await?;
            }
            None => requests = vec![r],
        }
    }
    let rejected_replies = match &callid {
        Some(c) => facts::rejected_replies_for_call(pool, c).await?,
        None => 0,
    };
    let now = OffsetDateTime::now_utc();
    let accepted_callout = requests
        .iter()
        .find(|r| r.is_callout() && r.outcome.is(RequestOutcome::Success));
    let refusals = match accepted_callout {
        Some(r) if callbacks.is_empty() => facts::refusals_between(pool, r.created_at, now).await?,
        _ => Vec::new(),
    };
    let in_progress = if count_in_progress {
        OutboundStore::new(pool.clone())
            .count_in_progress(&limits)
            .await
            .ok()
    } else {
        None
    };
    Ok(Some(Facts {
        callid,
        reference,
        requests,
        callbacks,
        rejected_replies,
        refusals,
        in_progress,
        limits,
        now,
    }))
}

/// The diagnosis as the CLI reads it from the admin API: every member optional, so that an
/// answer of another version still prints what it has.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Answer {
    callid: Option<String>,
    reference: Option<String>,
    summary: Option<String>,
    steps: Vec<AnswerStep>,
}

/// One step of an [`Answer`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AnswerStep {
    status: Option<Status>,
    title: Option<String>,
    evidence: Vec<String>,
    next: Option<String>,
}

/// The diagnosis as text, for `svamlgate diagnose`.
pub fn render_text(d: &Value) -> String {
    let answer = Answer::deserialize(d).unwrap_or_default();
    let id = answer
        .callid
        .as_deref()
        .or(answer.reference.as_deref())
        .unwrap_or("?");
    let mut out = format!("Diagnosis of {id}\n");
    for st in &answer.steps {
        let mark = match st.status {
            Some(Status::Pass) => "PASS   ",
            Some(Status::Fail) => "FAIL   ",
            _ => "UNKNOWN",
        };
        out.push_str(&format!(
            "\n[{mark}] {}\n",
            st.title.as_deref().unwrap_or("?")
        ));
        for e in &st.evidence {
            out.push_str(&format!("          - {e}\n"));
        }
        if st.status != Some(Status::Pass) {
            out.push_str(&format!(
                "          next: {}\n",
                st.next.as_deref().unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!("\n{}\n", answer.summary.unwrap_or_default()));
    out
}

#[cfg(test)]
mod tests;
