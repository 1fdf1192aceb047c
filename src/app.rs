//! The application core: everything a request needs, built once from configuration. The HTTP layer,
//! the CLI and the tests all drive svamlgate through [`AppState`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::calls::Calls;
use crate::config::ServeArgs;
use crate::db::store::Store;
use crate::gate::Gate;
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::recording::replay::ReplayIndex;
use crate::recording::shipper::{self, ShipperConfig};
use crate::recording::{Journal, Record, Recorder, ShipStatus};
use crate::signature::{AppCredential, KeyRing, VerifyPolicy};
use crate::svaml::Validator;

/// Shared state of a running svamlgate.
#[derive(Debug)]
pub struct AppState {
    /// Configuration.
    pub config: ServeArgs,
    /// Storage.
    pub store: Store,
    /// The reply gate.
    pub gate: Gate,
    /// Application keys accepted on callbacks.
    pub keys: KeyRing,
    /// Signature policy (window, Basic auth).
    pub verify_policy: VerifyPolicy,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Where every record goes: the journal, shipped to PostgreSQL.
    pub recorder: Recorder,
    /// Recent dedup keys and their replies.
    pub replays: Arc<ReplayIndex>,
    /// Calls in progress.
    pub calls: Arc<Calls>,
    /// Routes and flows, in memory.
    pub live: Arc<LiveConfig>,
    /// SHA-256 of the admin token (compared in constant time), None = admin API disabled.
    pub admin_token_digest: Option<[u8; 32]>,
    /// The embedded cluster's supervisor, when svamlgate runs its own PostgreSQL.
    pub cluster: Option<Arc<crate::db::cluster::Health>>,
    /// Tells the shipper to finish (with the instant its grace period ends).
    ship_stop: tokio::sync::watch::Sender<Option<Instant>>,
    /// Ends when the shipper has finished.
    shipper: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Client settings for Sinch's Calling API (callouts, call and conference control).
    pub sinch: crate::sinch_api::SinchApi,
    /// Signature mode, refusal limiter, explanations, canary status.
    pub verification: Arc<crate::verification::Verification>,
    /// Shadow evaluation of candidate flow versions (off the reply path).
    pub shadow: crate::live::shadow::Shadow,
    /// Alerts: what the reply path notes, the rules, the webhooks.
    pub alerts: Arc<crate::alerts::Alerts>,
}

/// How long past the freshness window a dedup key (and the journal segment holding it) is kept.
const REPLAY_MARGIN: Duration = Duration::from_secs(60);

/// Builds the key ring from SINCH_APPLICATION_KEY/SECRET and SINCH_APPLICATIONS.
pub fn key_ring(config: &ServeArgs) -> anyhow::Result<KeyRing> {
    let mut ring = match &config.applications {
        Some(list) => {
            KeyRing::parse_list(list.expose()).context("SINCH_APPLICATIONS is invalid")?
        }
        None => KeyRing::new(),
    };
    match (&config.application_key, &config.application_secret) {
        (Some(key), Some(secret)) => {
            let cred = AppCredential::new(key, secret.expose())
                .context("SINCH_APPLICATION_SECRET is invalid")?;
            ring.add(cred);
        }
        (Some(_), None) => {
            anyhow::bail!("SINCH_APPLICATION_KEY is set but SINCH_APPLICATION_SECRET is not")
        }
        (None, Some(_)) => {
            anyhow::bail!("SINCH_APPLICATION_SECRET is set but SINCH_APPLICATION_KEY is not")
        }
        (None, None) => {}
    }
    Ok(ring)
}

impl AppState {
    /// Builds the state: validates the configuration (keys, fallbacks), opens the journal (cutting a
    /// torn tail), rebuilds the replay index and the calls in progress from it, loads routes and flows
    /// (from PostgreSQL, else from the local snapshot) and starts the shipper.
    pub async fn build(
        config: ServeArgs,
        store: Store,
        validator: Arc<Validator>,
    ) -> anyhow::Result<AppState> {
        let keys = key_ring(&config)?;
        let verification = Arc::new(crate::verification::Verification::new(&config)?);
        let sinch = crate::sinch_api::SinchApi::from_config_or_disabled(&config);
        let gate = Gate::new(validator, &config)?;
        let metrics = Arc::new(Metrics::new());
        let (journal, recovery) = open_journal(&config, &metrics)?;
        let window = Duration::from_secs(config.timestamp_window_secs) + REPLAY_MARGIN;
        let (replays, calls) = restore_journaled(&recovery, window);
        let recording = start_recording(&config, journal, &store, &metrics, window)?;
        let live = load_live(&config, &store).await;
        crate::retention::spawn_hourly(&config, store.clone(), metrics.clone());
        spawn_pruning(&replays, &calls);
        let verify_policy = VerifyPolicy {
            window: Duration::from_secs(config.timestamp_window_secs),
            allow_basic: config.allow_basic_auth,
        };
        let admin_token_digest = config
            .admin_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.expose().as_bytes()).into());
        log_verification_mode(&config, &keys);
        crate::verification::spawn(
            &verification,
            recording.recorder.clone(),
            metrics.clone(),
            config.verification.refusal_window(),
        );
        if admin_token_digest.is_none() {
            tracing::info!("SVAMLGATE_ADMIN_TOKEN not set: the admin API is disabled");
        }
        let shadow = crate::live::shadow::Shadow::spawn(live.clone(), store.clone(), gate.clone());
        Ok(AppState {
            shadow,
            config,
            store,
            gate,
            keys,
            verify_policy,
            metrics,
            recorder: recording.recorder,
            replays,
            calls,
            live,
            admin_token_digest,
            cluster: None,
            ship_stop: recording.ship_stop,
            shipper: Mutex::new(Some(recording.shipper)),
            sinch,
            verification,
            alerts: recording.alerts,
        })
    }

    /// Ships what PostgreSQL takes within `grace`; the rest stays in the journal for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let summaries = self.verification.limiter.drain();
        crate::verification::limiter::record_summaries(&self.recorder, &self.metrics, summaries)
            .await;
        self.ship_stop.send_replace(Some(Instant::now() + grace));
        let handle = self
            .shipper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), h).await;
        }
        self.recorder.journal().release();
        let lag = self.recorder.status.lag_records();
        if lag > 0 {
            tracing::warn!(
                records = lag,
                "shutdown: records not yet in PostgreSQL stay in the journal and are shipped at the next start"
            );
        } else {
            tracing::info!("shutdown: every record is in PostgreSQL");
        }
    }
}

/// Opens the journal in `<data dir>/journal` (creating the data directory), counting what
/// opening had to cut.
fn open_journal(
    config: &ServeArgs,
    metrics: &Metrics,
) -> anyhow::Result<(Journal, crate::recording::journal::Recovery)> {
    std::fs::create_dir_all(&config.db.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            config.db.data_dir.display()
        )
    })?;
    let journal_dir = config.db.data_dir.join("journal");
    let options = crate::recording::journal::Options {
        max_bytes: config.journal_max_bytes,
        preallocate: config.journal_preallocate,
        spares: config
            .journal_spares
            .map(|n| usize::try_from(n).unwrap_or(1)),
    };
    let (journal, recovery) = Journal::open_with(&journal_dir, options)
        .with_context(|| format!("opening the journal in {}", journal_dir.display()))?;
    if recovery.cut_segments > 0 {
        metrics.add("svamlgate_journal_cut_bytes_total", &[], recovery.cut_bytes);
        metrics.add(
            "svamlgate_journal_cut_records_total",
            &[],
            recovery.cut_records,
        );
    }
    Ok((journal, recovery))
}

/// The replay index (keys kept for `window`) and the calls in progress, rebuilt from the
/// journaled records.
fn restore_journaled(
    recovery: &crate::recording::journal::Recovery,
    window: Duration,
) -> (Arc<ReplayIndex>, Arc<Calls>) {
    let replays = Arc::new(ReplayIndex::new(window));
    let calls = Arc::new(Calls::default());
    restore(&recovery.records, &replays, &calls);
    let unshipped = recovery
        .records
        .iter()
        .filter(|(seq, _)| *seq > recovery.shipped)
        .count();
    tracing::info!(
        records = recovery.records.len(),
        unshipped,
        replay_keys = replays.len(),
        calls = calls.len(),
        "journal opened"
    );
    (replays, calls)
}

/// What records: the recorder, the alerts watching it, and the shipper with its stop signal.
struct Recording {
    recorder: Recorder,
    alerts: Arc<crate::alerts::Alerts>,
    ship_stop: tokio::sync::watch::Sender<Option<Instant>>,
    shipper: tokio::sync::oneshot::Receiver<()>,
}

/// Starts recording: the recorder over `journal`, the alerts thread and the shipper (which keeps
/// shipped segments for `retention`).
fn start_recording(
    config: &ServeArgs,
    journal: Journal,
    store: &Store,
    metrics: &Arc<Metrics>,
    retention: Duration,
) -> anyhow::Result<Recording> {
    let status = Arc::new(ShipStatus::new(&journal));
    status.memory.set_capacity(config.journal_memory_bytes);
    let recorder = Recorder::new(journal.clone(), metrics.clone(), status.clone());
    let bytes_of = journal.clone();
    let alerts = Arc::new(
        crate::alerts::Alerts::new(
            &config.ops,
            metrics.clone(),
            status.clone(),
            Box::new(move || bytes_of.bytes()),
            config.journal_max_bytes,
        )
        .context("alert settings")?,
    );
    alerts.start().context("starting the alerts thread")?;
    let (ship_stop, stop_rx) = tokio::sync::watch::channel(None);
    let shipper = shipper::spawn(
        journal,
        store.clone(),
        metrics.clone(),
        status,
        ShipperConfig {
            retention,
            disk_limit_bytes: config.journal_max_bytes,
            defer_max: config.ship_defer_max(),
            commit: ship_commit(config),
        },
        stop_rx,
    )
    .context("starting the shipper thread")?;
    Ok(Recording {
        recorder,
        alerts,
        ship_stop,
        shipper,
    })
}

/// Routes and flows: from PostgreSQL when it answers within 3 s, else from the local snapshot;
/// then kept fresh by the refresher.
async fn load_live(config: &ServeArgs, store: &Store) -> Arc<LiveConfig> {
    let live = Arc::new(LiveConfig::new(
        &config.db.data_dir.join("config-snapshot.json"),
    ));
    match tokio::time::timeout(Duration::from_secs(3), live.refresh(store)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not load routes and flows from PostgreSQL; using the local snapshot")
        }
        Err(_) => tracing::warn!(
            "PostgreSQL did not answer within 3 s; routes and flows come from the local snapshot"
        ),
    }
    live.clone().spawn_refresher(store.clone());
    live
}

/// Says at start how callbacks are verified: not at all, refused for want of keys, or with keys.
fn log_verification_mode(config: &ServeArgs, keys: &KeyRing) {
    if !config.verify_signatures {
        tracing::warn!(
            "SVAMLGATE_VERIFY_SIGNATURES=false: callback signatures are NOT checked; every stored event is \
             marked unverified. Never run like this in production."
        );
    } else if keys.is_empty() {
        tracing::warn!(
            "no Sinch application key configured (SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET, or \
             SINCH_APPLICATIONS): every callback will be refused with 40108 until one is set"
        );
    } else {
        tracing::info!(keys = keys.len(), "callback signature verification on");
    }
}

/// Forgets dedup keys past the window and calls idle for hours, every 10 s. A sweep goes one
/// shard at a time and lets the runtime's other tasks run between two: it holds one shard's lock
/// at once, for a 64th of the entries (docs/benchmarks.md, session 12).
fn spawn_pruning(replays: &Arc<ReplayIndex>, calls: &Arc<Calls>) {
    let (replays, calls) = (Arc::downgrade(replays), Arc::downgrade(calls));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (Some(r), Some(c)) = (replays.upgrade(), calls.upgrade()) else {
                return;
            };
            let now = std::time::Instant::now();
            for i in 0..r.shards().max(c.shards()) {
                r.prune_shard(i, now);
                c.prune_shard(i, now);
                tokio::task::yield_now().await;
            }
        }
    });
}

/// Rebuilds the replay index and the calls in progress from the journal's records.
fn restore(records: &[(u64, Vec<u8>)], replays: &ReplayIndex, calls: &Calls) {
    let now = time::OffsetDateTime::now_utc();
    for (_, payload) in records {
        let Ok(Record::Callback(r)) = crate::recording::decode(payload) else {
            continue;
        };
        let key = r
            .callback
            .dedup_key
            .as_deref()
            .and_then(crate::recording::replay::unhex);
        if let (Some(key), None) = (key, r.duplicate_of) {
            let age = (now - r.callback.received_at).max(time::Duration::ZERO);
            let age = Duration::from_secs_f64(age.as_seconds_f64());
            let body = r
                .outcome
                .reply
                .as_ref()
                .map(|v| actix_web::web::Bytes::from(v.get().to_owned()));
            replays.restore(
                key,
                r.callback.id,
                r.callback.reference.clone(),
                age,
                (r.outcome.http_status, body),
            );
        }
        if let Some(change) = &r.call_state {
            calls.apply(change, r.callback.received_at);
        }
        let reply = r
            .outcome
            .reply
            .as_ref()
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v.get()).ok());
        let target = r.callback.event_type.reply_target();
        if let (Some(callid), Some(reply), Some(target), None) =
            (&r.callback.callid, &reply, target, r.duplicate_of)
        {
            calls.note_reply(
                callid,
                &r.callback.reference,
                target,
                r.outcome.reply_source,
                r.outcome.gate_passed(),
                crate::svaml::cookies_set(reply),
            );
        }
    }
}

/// How the shipper commits (`SVAMLGATE_SHIP_COMMIT`), given whether DATABASE_URL is set; a
/// deferred commit carries this process's mark (`ship_marks`, migration 0016).
fn ship_commit(config: &ServeArgs) -> crate::recording::ship::Commit {
    use crate::config::ShipCommit;
    use crate::recording::ship::Commit;
    match (config.ship_commit, config.db.database_url.is_some()) {
        (ShipCommit::Deferred, _) | (ShipCommit::Auto, false) => {
            Commit::Deferred(uuid::Uuid::new_v4())
        }
        (ShipCommit::Flushed, _) | (ShipCommit::Auto, true) => Commit::Flushed,
    }
}
