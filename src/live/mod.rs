//! The flows in service: routes and flows held in memory, so that deciding a reply never waits for
//! PostgreSQL, and candidate versions shadowed beside them ([`shadow`]). [`crate::flows`] is the
//! pure model these load and run; this module is its I/O (PostgreSQL, the snapshot file).
//!
//! The routing table and each flow's current version are loaded at start and refreshed every
//! [`REFRESH_EVERY`] (and at once after a change made through this instance's admin API), so a change
//! made through another instance sharing the database takes effect here within that time. Every
//! loaded set is also written to `<data dir>/config-snapshot.json` (mode 0600: it holds upstream
//! secrets), which is read at start: a restart while PostgreSQL is down still routes calls.
//! Older versions pinned by calls in progress are loaded on demand and kept.

pub mod shadow;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::store::Store;
use crate::flows::model::FlowDoc;
use crate::flows::routes::Route;

/// How often routes and flows are re-read from PostgreSQL.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Longest an on-demand load of a pinned flow version may take on the reply path.
const LOAD_BUDGET: Duration = Duration::from_millis(200);

type Versions = HashMap<(i64, i32), (Arc<FlowDoc>, Value)>;

/// The in-memory configuration.
#[derive(Debug)]
pub struct LiveConfig {
    routes: RwLock<Arc<Vec<Route>>>,
    current: RwLock<HashMap<i64, i32>>,
    versions: Mutex<Versions>,
    snapshot: PathBuf,
    refresh_lock: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize, Default)]
struct Snapshot {
    routes: Vec<Value>,
    flows: Vec<SnapshotFlow>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFlow {
    id: i64,
    version: i32,
    document: Value,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_doc(doc: &Value) -> Result<FlowDoc, String> {
    let bytes = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
    FlowDoc::from_json(&bytes).map_err(|e| e.to_string())
}

impl LiveConfig {
    /// An empty configuration backed by `snapshot`; what the snapshot holds is loaded now.
    pub fn new(snapshot: &Path) -> LiveConfig {
        let live = LiveConfig {
            routes: RwLock::new(Arc::new(Vec::new())),
            current: RwLock::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            snapshot: snapshot.to_path_buf(),
            refresh_lock: tokio::sync::Mutex::new(()),
        };
        match std::fs::read(snapshot) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) => live.install_snapshot(s),
                Err(e) => {
                    tracing::warn!(error = %e, path = %snapshot.display(), "unreadable config snapshot ignored")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %snapshot.display(), "config snapshot could not be read")
            }
        }
        live
    }

    fn install_snapshot(&self, s: Snapshot) {
        let routes: Vec<Route> = s
            .routes
            .into_iter()
            .filter_map(|r| serde_json::from_value(r).ok())
            .collect();
        let mut current = HashMap::new();
        let mut versions = lock(&self.versions);
        for f in s.flows {
            if let Ok(doc) = parse_doc(&f.document) {
                current.insert(f.id, f.version);
                versions.insert((f.id, f.version), (Arc::new(doc), f.document));
            }
        }
        drop(versions);
        tracing::info!(
            routes = routes.len(),
            flows = current.len(),
            "routes and flows loaded from the local snapshot"
        );
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = current;
    }

    /// The routing table.
    pub fn routes(&self) -> Arc<Vec<Route>> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A flow version held in memory (the current one when `version` is None).
    pub fn flow(&self, id: i64, version: Option<i32>) -> Option<(i32, Arc<FlowDoc>)> {
        let v = match version {
            Some(v) => v,
            None => *self
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)?,
        };
        lock(&self.versions)
            .get(&(id, v))
            .map(|(d, _)| (v, d.clone()))
    }

    /// A flow version from memory, else from PostgreSQL (bounded; kept once loaded).
    pub async fn flow_or_load(
        &self,
        store: &Store,
        id: i64,
        version: Option<i32>,
    ) -> Result<Option<(i32, Arc<FlowDoc>)>, String> {
        if let Some(f) = self.flow(id, version) {
            return Ok(Some(f));
        }
        let loaded = tokio::time::timeout(LOAD_BUDGET, store.flow_document(id, version))
            .await
            .map_err(|_| "the database did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        let Some((v, doc)) = loaded else {
            return Ok(None);
        };
        let flow = Arc::new(parse_doc(&doc)?);
        lock(&self.versions).insert((id, v), (flow.clone(), doc));
        Ok(Some((v, flow)))
    }

    /// Re-reads routes and current flow versions; saves the snapshot when something changed.
    pub async fn refresh(&self, store: &Store) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let routes = store.list_routes().await?;
        let flows = store.list_flows().await?;
        let mut changed = *self.routes() != routes;
        let mut current = HashMap::new();
        for f in &flows {
            let known = lock(&self.versions).contains_key(&(f.id, f.current_version));
            if !known {
                if let Some((v, doc)) = store.flow_document(f.id, Some(f.current_version)).await? {
                    match parse_doc(&doc) {
                        Ok(parsed) => {
                            lock(&self.versions).insert((f.id, v), (Arc::new(parsed), doc));
                        }
                        Err(e) => {
                            tracing::error!(flow = f.id, version = v, error = %e, "stored flow version cannot be parsed");
                            continue;
                        }
                    }
                }
            }
            current.insert(f.id, f.current_version);
        }
        {
            let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
            if *cur != current {
                changed = true;
                *cur = current;
            }
        }
        if changed {
            *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
            if let Err(e) = self.save_snapshot() {
                tracing::warn!(error = %e, path = %self.snapshot.display(), "could not write the config snapshot");
            }
        }
        Ok(())
    }

    fn save_snapshot(&self) -> std::io::Result<()> {
        let routes: Vec<Value> = self
            .routes()
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                if let Some(map) = v.as_object_mut() {
                    map.insert("target".into(), r.target.to_storage_json());
                }
                v
            })
            .collect();
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let versions = lock(&self.versions);
        let flows = current
            .iter()
            .filter_map(|(id, v)| {
                versions.get(&(*id, *v)).map(|(_, doc)| SnapshotFlow {
                    id: *id,
                    version: *v,
                    document: doc.clone(),
                })
            })
            .collect();
        drop(versions);
        let bytes =
            serde_json::to_vec(&Snapshot { routes, flows }).map_err(std::io::Error::other)?;
        let tmp = self.snapshot.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &self.snapshot)
    }

    /// Refreshes every [`REFRESH_EVERY`] until the process ends.
    pub fn spawn_refresher(self: Arc<Self>, store: Store) {
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let refreshed = tokio::time::timeout(Duration::from_secs(5), self.refresh(&store))
                    .await
                    .unwrap_or(Err(sqlx::Error::PoolTimedOut));
                match refreshed {
                    Ok(()) => failing = false,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "could not refresh routes and flows; the ones in memory keep answering");
                        }
                        failing = true;
                    }
                }
            }
        });
    }
}
