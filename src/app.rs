//! The application core: everything a request needs, built once from configuration. The HTTP layer,
//! the CLI and the tests all drive svamlgate through [`AppState`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::ServeArgs;
use crate::db::store::Store;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::recorder::ErrorSink;
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
    /// Error recorder.
    pub errors: ErrorSink,
    /// Records waiting for the database.
    pub spool: crate::spool::Spool,
    /// SHA-256 of the admin token (compared in constant time), None = admin API disabled.
    pub admin_token_digest: Option<[u8; 32]>,
    /// Parsed flow versions and current versions.
    pub flows: crate::sources::FlowCache,
    /// The routing table.
    pub routes: crate::sources::RouteCache,
    /// Client settings for Sinch's Calling API (callouts, call and conference control).
    pub sinch: crate::sinch_api::SinchApi,
}

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
    /// Builds the state; validates the configuration (keys, fallbacks) and starts the error writer.
    /// Must be called inside a Tokio runtime.
    pub fn build(
        config: ServeArgs,
        store: Store,
        validator: Arc<Validator>,
    ) -> anyhow::Result<AppState> {
        let keys = key_ring(&config)?;
        let sinch = crate::sinch_api::SinchApi::from_config_or_disabled(&config);
        let gate = Gate::new(validator, &config)?;
        let metrics = Arc::new(Metrics::new());
        let spool_dir = config.db.data_dir.join("spool");
        let spool = crate::spool::Spool::start(&spool_dir, store.clone(), metrics.clone())
            .with_context(|| format!("creating the spool directory {}", spool_dir.display()))?;
        let errors = ErrorSink::spawn(store.clone(), metrics.clone(), spool.clone());
        let verify_policy = VerifyPolicy {
            window: Duration::from_secs(config.timestamp_window_secs),
            allow_basic: config.allow_basic_auth,
        };
        let admin_token_digest = config
            .admin_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(|t| Sha256::digest(t.expose().as_bytes()).into());
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
        if admin_token_digest.is_none() {
            tracing::info!("SVAMLGATE_ADMIN_TOKEN not set: the admin API is disabled");
        }
        Ok(AppState {
            config,
            store,
            gate,
            keys,
            verify_policy,
            metrics,
            errors,
            spool,
            admin_token_digest,
            flows: Default::default(),
            routes: Default::default(),
            sinch,
        })
    }
}
