//! Calls in progress, in memory: for each call id, the route and flow version pinned at its first
//! event and the node it is at. Every change is journaled with the callback that caused it (and so
//! reaches the `call_state` table, stamped with that event's arrival time); at start the map is
//! rebuilt from the journal.
//!
//! A call this instance does not know (it started before a restart, longer ago than the journal
//! keeps, or another instance answered it) is read from PostgreSQL once, within 50 ms. Several
//! instances may share one database and see events of the same call: with
//! `SVAMLGATE_PEER_STATE_WAIT_MS` set, an unknown call is asked for again every 50 ms (at most that
//! long in all) while the other instance's shipper catches up, and a known call still takes a newer
//! state from PostgreSQL if one is there within 50 ms. With it 0 (one instance), a known call is
//! decided from memory alone. When PostgreSQL is known to be unreachable, nothing waits for it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::db::store::Store;
use crate::flows::state::{CallState, IDLE_LIMIT};
use crate::outcome::ReplySource;
use crate::shards::ShardedMap;
use crate::svaml::Target;

/// Longest the check for a newer state of a known call may take.
const FRESHNESS_BUDGET: Duration = Duration::from_millis(50);

/// What is known of one call: its flow state (when it has a route) and the last reply sent on it.
#[derive(Default)]
struct Entry {
    state: Option<(CallState, OffsetDateTime)>,
    reply: Option<LastReply>,
}

/// A call's entry in the map, with when it was last touched beside it: a sweep reads the time
/// from the table itself, without following each entry's pointer into the heap.
struct Slot {
    touched: Instant,
    entry: Box<Entry>,
}

/// The reply this instance last sent on a call, for linking Sinch's verdicts to it.
#[derive(Debug, Clone)]
pub struct LastReply {
    /// Reference of the callback whose reply it was.
    pub reference: String,
    /// The event it answered.
    pub event: Target,
    /// What produced it.
    pub source: ReplySource,
    /// Whether the gate passed it (or it was a pre-validated fallback).
    pub gate_passed: bool,
    /// Cookies the call's replies have set so far: the last value of each key (Sinch keeps them
    /// for the whole call, within 1,024 bytes).
    pub cookies: BTreeMap<String, String>,
}

/// Calls in progress, one entry per call id. Entries are boxed: a table that grows (one entry per
/// new call) moves and zeroes a pointer and a time per call, not the entries' few hundred bytes.
#[derive(Default)]
pub struct Calls {
    map: ShardedMap<String, Slot>,
}

/// Updates the entry of a call, created when it is not there yet (the call id is copied only then).
fn upsert(
    map: &mut HashMap<String, Slot>,
    callid: &str,
    touched: Instant,
    update: impl FnOnce(&mut Entry),
) {
    match map.get_mut(callid) {
        Some(slot) => {
            update(&mut slot.entry);
            slot.touched = touched;
        }
        None => {
            let mut entry = Box::<Entry>::default();
            update(&mut entry);
            map.insert(callid.to_owned(), Slot { touched, entry });
        }
    }
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls").field("len", &self.len()).finish()
    }
}

impl Calls {
    /// The state of a call known here, with the arrival time of the event that set it.
    pub fn get(&self, callid: &str) -> Option<(CallState, OffsetDateTime)> {
        self.map
            .shard(callid)
            .get(callid)
            .and_then(|e| e.entry.state.clone())
    }

    /// The current state of a call, from memory and, when the database is up, PostgreSQL (see the
    /// module documentation).
    pub async fn current(
        &self,
        store: &Store,
        callid: &str,
        db_up: bool,
        wait: Duration,
    ) -> Option<CallState> {
        let known = self.get(callid);
        if !db_up {
            return known.map(|(s, _)| s);
        }
        if let Some((state, at)) = known {
            if wait.is_zero() {
                return Some(state);
            }
            if let Ok(Ok(Some((stored, stored_at)))) =
                tokio::time::timeout(FRESHNESS_BUDGET, store.call_state(callid)).await
            {
                if stored_at > at {
                    self.set(callid, stored.clone(), stored_at);
                    return Some(stored);
                }
            }
            return Some(state);
        }
        // Not known here: started before a restart (older than the journal keeps), or answered
        // by another instance. One bounded read, or several while another instance ships.
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.max(FRESHNESS_BUDGET), store.call_state(callid)).await {
                Ok(Ok(Some((s, at)))) => {
                    self.set(callid, s.clone(), at);
                    return Some(s);
                }
                Ok(Ok(None)) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
            if Instant::now() + Duration::from_millis(50) > until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets a call's state, caused by an event that arrived at `at`.
    pub fn set(&self, callid: &str, state: CallState, at: OffsetDateTime) {
        let touched = Instant::now();
        upsert(&mut self.map.shard(callid), callid, touched, |entry| {
            entry.state = Some((state, at));
        });
    }

    /// Applies a journaled change.
    pub fn apply(&self, change: &crate::recording::CallStateChange, at: OffsetDateTime) {
        match change {
            crate::recording::CallStateChange::Set { callid, state } => {
                self.set(callid, (**state).clone(), at)
            }
            crate::recording::CallStateChange::Ended { callid } => self.end(callid),
        }
    }

    /// Forgets a call (it ended).
    pub fn end(&self, callid: &str) {
        self.map.shard(callid).remove(callid);
    }

    /// Notes the reply just sent on a call, and the cookies it set.
    pub fn note_reply(
        &self,
        callid: &str,
        reference: &str,
        event: Target,
        source: ReplySource,
        gate_passed: bool,
        cookies: BTreeMap<String, String>,
    ) {
        // Everything that allocates or reads the clock is done before the shard is locked.
        let reference = reference.to_owned();
        let touched = Instant::now();
        upsert(&mut self.map.shard(callid), callid, touched, |entry| {
            let mut all = entry.reply.take().map(|r| r.cookies).unwrap_or_default();
            if all.is_empty() {
                all = cookies;
            } else {
                all.extend(cookies);
            }
            entry.reply = Some(LastReply {
                reference,
                event,
                source,
                gate_passed,
                cookies: all,
            });
        });
    }

    /// The cookies a call's replies have set so far (last value of each key).
    pub fn cookies(&self, callid: &str) -> BTreeMap<String, String> {
        self.map
            .shard(callid)
            .get(callid)
            .and_then(|e| e.entry.reply.as_ref())
            .map(|r| r.cookies.clone())
            .unwrap_or_default()
    }

    /// The reply this instance last sent on a call.
    pub fn last_reply(&self, callid: &str) -> Option<LastReply> {
        self.map
            .shard(callid)
            .get(callid)
            .and_then(|e| e.entry.reply.clone())
    }

    /// The calls held here that are pinned to a version of `flow_id`: `(callid, version)`.
    pub fn pinned_to_flow(&self, flow_id: i64) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        self.map.retain(|callid, e| {
            if let Some((s, _)) = &e.entry.state {
                if let (Some(f), Some(v)) = (s.flow_id, s.flow_version) {
                    if f == flow_id {
                        out.push((callid.clone(), v));
                    }
                }
            }
            true
        });
        out
    }

    /// Shards of the map, for [`Calls::prune_shard`].
    pub fn shards(&self) -> usize {
        self.map.shard_count()
    }

    /// Forgets the calls of shard `i` idle for longer than [`IDLE_LIMIT`] as of `now`; returns
    /// how many calls that shard holds after. The sweep (`app::spawn_pruning`) calls it for every
    /// shard in turn.
    pub fn prune_shard(&self, i: usize, now: Instant) -> usize {
        self.map.retain_shard(i, |_, e| {
            now.saturating_duration_since(e.touched) < IDLE_LIMIT
        })
    }

    /// The call ids held: this instance's calls in progress (a DICE removes its call).
    pub fn open_callids(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.map.retain(|k, _| {
            out.push(k.clone());
            true
        });
        out
    }

    /// Calls held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no call is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::render::EventContext;

    fn state(node: &str) -> CallState {
        CallState {
            route_id: Some(1),
            flow_id: Some(2),
            flow_version: Some(3),
            node: Some(node.to_owned()),
            context: EventContext::default(),
        }
    }

    fn cookies(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_call_keeps_its_state_its_last_reply_and_every_cookie_set_on_it() {
        let calls = Calls::default();
        let at = OffsetDateTime::UNIX_EPOCH;
        // A reply noted before any state, then the state: one entry holds both.
        calls.note_reply(
            "c1",
            "ref-1",
            Target::Ice,
            ReplySource::Flow,
            true,
            cookies(&[("a", "1"), ("b", "1")]),
        );
        calls.set("c1", state("welcome"), at);
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls.get("c1").map(|(s, _)| s.node),
            Some(Some("welcome".into()))
        );
        // A later reply: its cookies win key by key, the others stay; the reply is the last one.
        calls.note_reply(
            "c1",
            "ref-2",
            Target::Pie,
            ReplySource::Fallback,
            false,
            cookies(&[("b", "2"), ("c", "2")]),
        );
        assert_eq!(
            calls.cookies("c1"),
            cookies(&[("a", "1"), ("b", "2"), ("c", "2")])
        );
        let last = calls.last_reply("c1").expect("a reply");
        assert_eq!(
            (
                last.reference.as_str(),
                last.event,
                last.source,
                last.gate_passed
            ),
            ("ref-2", Target::Pie, ReplySource::Fallback, false)
        );
        // A reply without cookies keeps the call's.
        calls.note_reply(
            "c1",
            "ref-3",
            Target::Pie,
            ReplySource::Flow,
            true,
            BTreeMap::new(),
        );
        assert_eq!(calls.cookies("c1").len(), 3);
        assert_eq!(
            calls.get("c1").map(|(s, _)| s.node),
            Some(Some("welcome".into()))
        );
        // Another call is apart; an ended call is forgotten.
        calls.set("c2", state("pin"), at);
        assert_eq!(calls.pinned_to_flow(2).len(), 2);
        assert!(calls.cookies("c2").is_empty() && calls.last_reply("c2").is_none());
        calls.end("c1");
        assert_eq!(calls.open_callids(), vec!["c2".to_owned()]);
        assert!(calls.cookies("c1").is_empty());
    }

    /// A sweep of every shard as of `at`, as the service's does; the calls left.
    fn sweep(calls: &Calls, at: Instant) -> usize {
        (0..calls.shards()).map(|i| calls.prune_shard(i, at)).sum()
    }

    #[test]
    fn a_sweep_forgets_calls_idle_past_the_limit_and_a_touched_call_stays() {
        let calls = Calls::default();
        calls.set("old", state("welcome"), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(sweep(&calls, Instant::now()), 1);
        std::thread::sleep(Duration::from_millis(20));
        let before_new = Instant::now();
        calls.note_reply(
            "new",
            "ref-9",
            Target::Ice,
            ReplySource::Flow,
            true,
            cookies(&[]),
        );
        // As of a moment when "old" has been idle past the limit (by 10 ms at least) and "new" not
        // yet (by 10 ms at least, however slow this machine).
        let at = before_new + IDLE_LIMIT - Duration::from_millis(10);
        assert_eq!(sweep(&calls, at), 1);
        assert!(calls.get("old").is_none());
        assert_eq!(
            calls.last_reply("new").map(|r| r.reference),
            Some("ref-9".into())
        );
        // Touching a call moves its idle time: a reply noted 20 ms on keeps it past that moment.
        std::thread::sleep(Duration::from_millis(20));
        calls.note_reply(
            "new",
            "ref-10",
            Target::Ace,
            ReplySource::Flow,
            true,
            cookies(&[]),
        );
        assert_eq!(sweep(&calls, at + Duration::from_millis(15)), 1);
        assert_eq!(sweep(&calls, Instant::now()), 1);
    }
}
