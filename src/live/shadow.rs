//! Shadow evaluation: a route may name a candidate version of its flow (`shadowVersion`). For every
//! live ICE, ACE and PIE on that route, once the live reply is out, the callback hands a copy of the
//! event and of the reply sent to a bounded queue ([`Shadow::offer`] never waits: when the queue is
//! full the event is not shadowed and counted). One task, away from the HTTP workers, answers the
//! event with the candidate ([`crate::flows::replay::Session`], so a PIE is read as the key the
//! caller pressed), gates the answer, compares it with the reply sent, and stores the difference
//! (`shadow_differences`, the latest [`crate::db::flow_changes::SHADOW_KEEP`] per version) and the
//! totals (`shadow_totals`). The candidate's reply is never sent; the live call's latency and outcome
//! do not depend on anything here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::OffsetDateTime;

use super::LiveConfig;
use crate::db::flow_changes::ShadowDifference;
use crate::db::store::Store;
use crate::events::EventKind;
use crate::flows::replay::{Judge, Session, StepResult};
use crate::gate::Gate;

/// Events waiting to be shadowed; more are dropped (and counted).
pub const QUEUE: usize = 4_096;

/// Calls followed at once; an ICE beyond it is not shadowed.
const MAX_CALLS: usize = 20_000;

/// A call not heard of for this long is no longer followed (an IVR's menus are over long before;
/// a later PIE of it is then not shadowed).
const FOLLOW_FOR: Duration = Duration::from_secs(2 * 3600);

/// A live event to shadow, with the reply that went out.
#[derive(Debug, Clone)]
pub struct ShadowJob {
    /// The route it came in on.
    pub route_id: i64,
    /// The route's flow.
    pub flow_id: i64,
    /// The candidate version.
    pub version: i32,
    /// Sinch call id.
    pub callid: String,
    /// ice, ace or pie.
    pub event_type: EventKind,
    /// The event as received.
    pub event: Value,
    /// The live callback's reference.
    pub reference: String,
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// The reply sent.
    pub live_reply: Value,
    /// The version that answered live.
    pub live_version: Option<i32>,
    /// The node that answered live.
    pub live_node: Option<String>,
}

/// The sending side, held in the application state.
#[derive(Debug, Clone)]
pub struct Shadow {
    tx: tokio::sync::mpsc::Sender<ShadowJob>,
    dropped: Arc<AtomicU64>,
}

impl Shadow {
    /// Starts the shadow task on the current runtime.
    pub fn spawn(live: Arc<LiveConfig>, store: Store, gate: Gate) -> Shadow {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        tokio::spawn(run(rx, live, store, gate));
        Shadow {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues a job; never waits. A full queue drops it (see [`Shadow::dropped`]).
    pub fn offer(&self, job: ShadowJob) {
        if self.tx.try_send(job).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events not shadowed because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The job for a callback just answered, when its route shadows a version (cheap otherwise: one
/// look-up of the route by id). `body` is the callback's body, read as JSON only for a job.
pub fn job(
    routes: &[crate::flows::routes::Route],
    event: &crate::events::ParsedEvent,
    body: &[u8],
    outcome: &crate::recording::CallbackOutcome,
    reference: &str,
    received_at: OffsetDateTime,
    reply: &Value,
) -> Option<ShadowJob> {
    let route_id = outcome.route_id?;
    let route = routes.iter().find(|r| r.id == route_id)?;
    let version = route.shadow_version?;
    let crate::flows::routes::RouteTarget::Flow { flow_id } = route.target else {
        return None;
    };
    Some(ShadowJob {
        route_id,
        flow_id,
        version,
        callid: event.callid.clone()?,
        event_type: event.kind.clone(),
        event: crate::events::body_json(body)?,
        reference: reference.to_owned(),
        received_at,
        live_reply: reply.clone(),
        live_version: outcome.flow_version,
        live_node: outcome.flow_node.clone(),
    })
}

/// The calls being followed: the candidate's session of each, and when it last had an event.
type Calls = HashMap<String, (Session, Instant)>;

async fn run(
    mut rx: tokio::sync::mpsc::Receiver<ShadowJob>,
    live: Arc<LiveConfig>,
    store: Store,
    gate: Gate,
) {
    let mut calls = Calls::new();
    let mut failing = false;
    let mut handled: u64 = 0;
    while let Some(job) = rx.recv().await {
        handled += 1;
        if calls.len() >= MAX_CALLS || handled.is_multiple_of(1024) {
            calls.retain(|_, (_, t)| t.elapsed() < FOLLOW_FOR);
        }
        let flow = match live
            .flow_or_load(&store, job.flow_id, Some(job.version))
            .await
        {
            Ok(Some((_, f))) => f,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "shadow version not loaded");
                continue;
            }
        };
        let Some(session) = follow(&mut calls, &job) else {
            continue;
        };
        let fallback = |t: crate::svaml::Target| gate.fallback(t).clone();
        let judge = Judge {
            validator: gate.validator(),
            mode: gate.mode(),
            fallback: &fallback,
        };
        let Some(step) = session.step(&flow, &judge, &job.event, Some(&job.live_reply)) else {
            continue;
        };
        if step.meaningless.is_some() {
            calls.remove(&job.callid);
        }
        let diff = difference(&job, &step);
        let stored = tokio::time::timeout(
            Duration::from_secs(5),
            store.record_shadow(
                job.flow_id,
                job.version,
                diff.is_some(),
                !step.passed,
                diff.as_ref(),
            ),
        )
        .await;
        failing = note_stored(stored, failing);
    }
}

/// The candidate's session of the job's call: a new one for an ICE (unless too many calls are
/// followed), none for a call that started before the route shadowed this version.
fn follow<'a>(calls: &'a mut Calls, job: &ShadowJob) -> Option<&'a mut Session> {
    if job.event_type == EventKind::Ice {
        if calls.len() >= MAX_CALLS {
            return None;
        }
        calls.insert(job.callid.clone(), (Session::default(), Instant::now()));
    }
    let (session, touched) = calls.get_mut(&job.callid)?;
    *touched = Instant::now();
    Some(session)
}

/// How the candidate's step differs from what went out live (`None`: it does not): another node,
/// another reply, or an input that means nothing in the candidate.
fn difference(job: &ShadowJob, step: &StepResult) -> Option<ShadowDifference> {
    let meaningless = step.meaningless.is_some();
    let node_differs = !meaningless && step.node != job.live_node;
    let differed = meaningless || node_differs || step.reply != job.live_reply;
    differed.then(|| ShadowDifference {
        id: 0,
        route_id: Some(job.route_id),
        callid: Some(job.callid.clone()),
        callback_reference: Some(job.reference.clone()),
        event_type: job.event_type.clone(),
        received_at: job.received_at,
        live_version: job.live_version,
        live_node: job.live_node.clone(),
        candidate_node: step.node.clone(),
        input: step
            .input
            .as_ref()
            .and_then(|i| serde_json::to_value(i).ok()),
        live_reply: Some(job.live_reply.clone()),
        candidate_reply: (!meaningless).then(|| step.reply.clone()),
        candidate_passed: step.passed,
        note: step.meaningless.clone().or_else(|| {
            Some(if node_differs {
                format!("the candidate answers from another node ({})", step.via)
            } else if !step.passed {
                "the gate refuses the candidate's reply; its fallback would go out".to_owned()
            } else {
                "same node, another reply".to_owned()
            })
        }),
    })
}

/// Whether storing comparisons fails now (`stored`: the last attempt); warns once when it starts.
fn note_stored(
    stored: Result<Result<(), sqlx::Error>, tokio::time::error::Elapsed>,
    failing: bool,
) -> bool {
    match stored {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            if !failing {
                tracing::warn!(error = %e, "could not store a shadow comparison; shadow results are lost while this lasts");
            }
            true
        }
        Err(_) => {
            if !failing {
                tracing::warn!("storing a shadow comparison took over 5 s; shadow results are lost while this lasts");
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a_job(n: usize) -> ShadowJob {
        ShadowJob {
            route_id: 1,
            flow_id: 1,
            version: 2,
            callid: format!("c-{n}"),
            event_type: "ice".into(),
            event: json!({"event": "ice"}),
            reference: format!("r-{n}"),
            received_at: OffsetDateTime::UNIX_EPOCH,
            live_reply: json!({"action": {"name": "hangup"}}),
            live_version: Some(1),
            live_node: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // Nobody reads the queue: offering never blocks the reply path, the excess is counted.
        let (tx, _rx) = tokio::sync::mpsc::channel(QUEUE);
        let shadow = Shadow {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let started = Instant::now();
        for n in 0..QUEUE + 25 {
            shadow.offer(a_job(n));
        }
        assert_eq!(shadow.dropped(), 25);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn only_a_shadowed_flow_route_makes_a_job() {
        let mut route: crate::flows::routes::Route = serde_json::from_value(
            json!({"id": 7, "name": "r", "target": {"kind": "flow", "flowId": 3}}),
        )
        .unwrap();
        let body = br#"{"event": "ice", "callid": "c"}"#;
        let event = crate::events::parse_event(body).unwrap();
        let mut outcome =
            crate::recording::CallbackOutcome::answered(crate::outcome::ReplySource::Flow);
        outcome.route_id = Some(7);
        let reply = json!({"action": {"name": "hangup"}});
        let at = OffsetDateTime::UNIX_EPOCH;
        let job_for = |routes: &[crate::flows::routes::Route]| {
            job(routes, &event, body, &outcome, "ref", at, &reply)
        };
        assert!(job_for(std::slice::from_ref(&route)).is_none());
        route.shadow_version = Some(2);
        let j = job_for(std::slice::from_ref(&route)).unwrap();
        assert_eq!((j.flow_id, j.version, j.callid.as_str()), (3, 2, "c"));
        assert_eq!(j.event, json!({"event": "ice", "callid": "c"}));
        assert!(job_for(&[]).is_none());
    }
}
