//! Calls in progress, in memory: for each call id, the route and flow version pinned at its first
//! event and the node it is at. Every change is journaled with the callback that caused it (and so
//! reaches the `call_state` table); at start the map is rebuilt from the journal.
//!
//! An instance that gets an event of a call it does not know (the ICE went to another instance
//! sharing the database) reads the state from PostgreSQL, retrying briefly while the other instance's
//! shipper catches up. When PostgreSQL is not reachable it does not wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::flows::CallState;
use crate::db::store::Store;

/// A call not heard of for this long is forgotten (longer than any call Sinch keeps up).
pub const IDLE_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// Calls in progress.
#[derive(Debug, Default)]
pub struct Calls {
    map: Mutex<HashMap<String, (Instant, CallState)>>,
}

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, CallState)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of a call known here.
    pub fn get(&self, callid: &str) -> Option<CallState> {
        self.lock().get(callid).map(|(_, s)| s.clone())
    }

    /// The state of a call: from memory, else from PostgreSQL. When `db_up`, a missing row is asked
    /// for again (every 50 ms, at most `wait` in all) in case another instance has not shipped it yet.
    pub async fn get_or_load(
        &self,
        store: &Store,
        callid: &str,
        db_up: bool,
        wait: Duration,
    ) -> Option<CallState> {
        if let Some(s) = self.get(callid) {
            return Some(s);
        }
        if !db_up {
            return None;
        }
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let budget = left.max(Duration::from_millis(50));
            match tokio::time::timeout(budget, store.call_state(callid)).await {
                Ok(Ok(Some(s))) => {
                    self.set(callid, s.clone());
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

    /// Sets a call's state.
    pub fn set(&self, callid: &str, state: CallState) {
        self.lock()
            .insert(callid.to_owned(), (Instant::now(), state));
    }

    /// Forgets a call (it ended).
    pub fn end(&self, callid: &str) {
        self.lock().remove(callid);
    }

    /// Forgets calls idle for longer than [`IDLE_LIMIT`]; returns how many are left.
    pub fn prune(&self) -> usize {
        let mut map = self.lock();
        map.retain(|_, (at, _)| at.elapsed() < IDLE_LIMIT);
        map.len()
    }

    /// Calls held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no call is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
