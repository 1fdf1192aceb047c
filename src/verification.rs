//! Turning verification on without an outage, at run time: the signature mode of each request
//! (enforce or report, per application key), what report mode let through, the recent explanations
//! (for the canary and readiness), the refusal limiter ([`limiter`]) and the canary's last
//! result ([`canary_status`]).

pub mod canary_status;
pub mod limiter;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use canary_status::CanaryStatus;
use limiter::RefusalLimiter;

use crate::config::ServeArgs;
use crate::signature::settings::{ModePolicy, SignatureMode};
use crate::signature::{Explanation, RefusalReason};

/// Explanations kept for lookup by reference (the canary reads its own refusal's).
const RECENT: usize = 64;

/// How often the report-mode warning is repeated.
pub const REPORT_WARNING_EVERY: Duration = Duration::from_secs(3600);

/// The last signature failure report mode let through.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedFailure {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub at: OffsetDateTime,
    /// Reference of its error row.
    pub reference: String,
    /// The refusal reason it would have had.
    pub reason: String,
    /// The explanation, one line.
    pub explanation: Option<String>,
}

/// Run-time state of verification.
#[derive(Debug)]
pub struct Verification {
    /// The mode of each request.
    pub modes: ModePolicy,
    /// Refusals recorded one by one up to a rate per (peer, reason), then summarised.
    pub limiter: RefusalLimiter,
    /// The path of SVAMLGATE_PUBLIC_URL (helps explain signature failures).
    pub public_url_path: Option<String>,
    /// The canary's last result.
    pub canary: CanaryStatus,
    recent: Mutex<VecDeque<(String, Explanation)>>,
    reported: AtomicU64,
    last_reported: Mutex<Option<ReportedFailure>>,
    report_warnings: AtomicU64,
}

impl Verification {
    /// From the configuration (the per-key modes are checked here).
    pub fn new(config: &ServeArgs) -> anyhow::Result<Verification> {
        let v = &config.verification;
        let modes = ModePolicy::new(v.signature_mode, v.signature_mode_keys.as_deref())
            .map_err(anyhow::Error::msg)?;
        let public_url_path = v
            .public_url
            .as_deref()
            .map(|u| crate::signature::signed_path(u.trim(), None));
        Ok(Verification {
            modes,
            limiter: RefusalLimiter::new(v.refusal_window(), v.refusals_per_window),
            public_url_path,
            canary: CanaryStatus::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            reported: AtomicU64::new(0),
            last_reported: Mutex::new(None),
            report_warnings: AtomicU64::new(0),
        })
    }

    /// The mode for a request naming `key`.
    pub fn mode_for(&self, key: Option<&str>) -> SignatureMode {
        self.modes.for_key(key)
    }

    /// Keeps an explanation for lookup by its refusal's reference.
    pub fn note_explanation(&self, reference: &str, e: Explanation) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((reference.to_owned(), e));
    }

    /// The explanation of a recent refusal.
    pub fn explanation(&self, reference: &str) -> Option<Explanation> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .find(|(r, _)| r == reference)
            .map(|(_, e)| e.clone())
    }

    /// Counts a failure report mode let through.
    pub fn note_reported(
        &self,
        reference: &str,
        reason: RefusalReason,
        explanation: Option<&Explanation>,
    ) {
        self.reported.fetch_add(1, Ordering::Relaxed);
        *self.last_reported.lock().unwrap_or_else(|p| p.into_inner()) = Some(ReportedFailure {
            at: OffsetDateTime::now_utc(),
            reference: reference.to_owned(),
            reason: reason.as_str().to_owned(),
            explanation: explanation.map(Explanation::line),
        });
    }

    /// Failures report mode let through since start.
    pub fn reported(&self) -> u64 {
        self.reported.load(Ordering::Relaxed)
    }

    /// The readiness detail of verification.
    pub fn readiness(&self) -> SignatureReadiness {
        SignatureReadiness {
            mode: self.modes.summary(),
            reported_failures: self.reported(),
            last_reported: self
                .last_reported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// How many times the report-mode warning was logged.
    pub fn report_warnings(&self) -> u64 {
        self.report_warnings.load(Ordering::Relaxed)
    }

    /// Logs the report-mode warning, if any request may be answered despite a failed signature.
    pub fn warn_if_reporting(&self) {
        if self.modes.any_report() {
            self.report_warnings.fetch_add(1, Ordering::Relaxed);
        }
        match self.modes.report_keys() {
            None => tracing::warn!(
                reported_failures = self.reported(),
                "SVAMLGATE_SIGNATURE_MODE=report: callbacks whose signature fails are answered \
                 normally and only recorded. Watch the explanations (GET /admin/refusals, /readyz) \
                 reach zero, then set SVAMLGATE_SIGNATURE_MODE=enforce"
            ),
            Some(keys) if !keys.is_empty() => tracing::warn!(
                keys = %keys.join(","),
                reported_failures = self.reported(),
                "signature report mode for some application keys (SVAMLGATE_SIGNATURE_MODE_KEYS): \
                 their callbacks are answered even when the signature fails"
            ),
            Some(_) => {}
        }
    }
}

/// `checks.signature` of `/readyz`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureReadiness {
    /// `enforce`, `report`, or `mixed` (per-key modes differ from the default).
    pub mode: &'static str,
    /// Signature failures report mode answered anyway, since start.
    pub reported_failures: u64,
    /// The last of them.
    pub last_reported: Option<ReportedFailure>,
}

/// Warns at start and every hour while report mode is on; stops with the state.
pub fn spawn_report_warning(v: Weak<Verification>, every: Duration) {
    tokio::spawn(async move {
        loop {
            match v.upgrade() {
                Some(v) if v.modes.any_report() => v.warn_if_reporting(),
                Some(_) => return,
                None => return,
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Starts what runs beside verification: the report-mode warning and the refusal sweeper.
pub fn spawn(
    v: &Arc<Verification>,
    recorder: crate::recording::Recorder,
    metrics: Arc<crate::metrics::Metrics>,
    window: Duration,
) {
    spawn_report_warning(Arc::downgrade(v), REPORT_WARNING_EVERY);
    limiter::spawn_sweeper(Arc::downgrade(v), recorder, metrics, window);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_report_warning_repeats_while_report_mode_is_on() {
        let mut config = ServeArgs::for_tests();
        config.verification.signature_mode = SignatureMode::Report;
        let v = Arc::new(Verification::new(&config).unwrap());
        spawn_report_warning(Arc::downgrade(&v), Duration::from_millis(5));
        tokio::time::timeout(Duration::from_secs(10), async {
            while v.report_warnings() < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("warned at start and again every interval");

        let enforce = Arc::new(Verification::new(&ServeArgs::for_tests()).unwrap());
        spawn_report_warning(Arc::downgrade(&enforce), Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(enforce.report_warnings(), 0);
    }

    #[test]
    fn explanations_are_kept_by_reference_and_bounded() {
        let v = Verification::new(&ServeArgs::for_tests()).unwrap();
        let e = Explanation {
            cause: crate::signature::Cause::Unexplained,
            message: "m".into(),
            fix: None,
            certain: crate::signature::Certain {
                key_known: true,
                content_md5: "no_header".into(),
                body_bytes: 0,
                timestamp_in_window: None,
                clock_difference_secs: None,
                checked_path: "/".into(),
            },
        };
        for i in 0..(RECENT + 10) {
            v.note_explanation(&format!("r{i}"), e.clone());
        }
        assert!(v.explanation("r0").is_none());
        assert!(v.explanation(&format!("r{}", RECENT + 9)).is_some());
        v.note_reported("r1", RefusalReason::SignatureMismatch, Some(&e));
        let r = v.readiness();
        assert_eq!((r.mode, r.reported_failures), ("enforce", 1));
        assert_eq!(r.last_reported.unwrap().explanation.as_deref(), Some("m"));
    }
}
