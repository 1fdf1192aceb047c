//! Delivery of alerts to webhooks (`SVAMLGATE_ALERT_WEBHOOKS`), on the alerts thread.
//!
//! Each alert is one JSON body: `{"text": "...", "alert": {...}}`. `text` is what Slack's
//! incoming webhooks (and Mattermost's, and Rocket.Chat's) show, so such a URL works as it is;
//! `alert` is the [`super::Alert`] for machines. With `SVAMLGATE_ALERT_SECRET` set, the header
//! [`SIGNATURE_HEADER`] carries `t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">`
//! ([`sign`], [`verify`]).
//!
//! Alerts wait in a bounded queue ([`QUEUE`]; more are dropped and counted). Each delivery is
//! tried up to [`ATTEMPTS`] times, with exponential backoff and jitter between attempts (the
//! backoff of [`crate::sinch_api::retry`]), [`TIMEOUT`] each, at most [`CONCURRENT`] at once.
//! Outcomes are counted in `svamlgate_alert_deliveries_total{outcome}` (delivered, failed,
//! dropped); a failed delivery is logged with the webhook's host only (webhook URLs often carry
//! a secret token).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use crate::metrics::Metrics;
use crate::ops::OpsArgs;
use crate::secret::Secret;
use crate::sinch_api::retry::{self, RetryPolicy};

/// Header of the signature.
pub const SIGNATURE_HEADER: &str = "x-svamlgate-signature";
/// Alerts waiting for delivery; more are dropped.
pub const QUEUE: usize = 256;
/// Attempts per alert and webhook.
pub const ATTEMPTS: u32 = 5;
/// Longest one attempt may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Deliveries in progress at once.
pub const CONCURRENT: usize = 8;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where and how alerts are delivered.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Webhook URLs.
    pub webhooks: Vec<String>,
    /// Signing secret.
    pub secret: Option<Secret>,
    /// Backoff between attempts.
    pub policy: RetryPolicy,
}

impl Settings {
    /// From `SVAMLGATE_ALERT_WEBHOOKS` and `SVAMLGATE_ALERT_SECRET`; every URL must be http(s).
    pub fn from_args(args: &OpsArgs) -> anyhow::Result<Settings> {
        let webhooks: Vec<String> = args
            .alert_webhooks
            .as_ref()
            .map(|s| {
                s.expose()
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for (i, u) in webhooks.iter().enumerate() {
            let ok = u
                .parse::<awc::http::Uri>()
                .ok()
                .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
                .is_some_and(|uri| uri.host().is_some());
            if !ok {
                anyhow::bail!(
                    "SVAMLGATE_ALERT_WEBHOOKS: webhook {} is not an http(s) URL",
                    i + 1
                );
            }
        }
        Ok(Settings {
            webhooks,
            secret: args.alert_secret.clone().filter(|s| !s.is_empty()),
            policy: RetryPolicy {
                max_attempts: ATTEMPTS,
                base: Duration::from_millis(500),
                max_delay: Duration::from_secs(8),
            },
        })
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The signature header's value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a signature header (as a receiver would): the HMAC matches and `t` is within
/// `tolerance_secs` of `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = sign(secret, t, body);
    let given = format!("t={t},v1={v1}");
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
}

/// The body delivered for an alert.
pub fn body(alert: &super::Alert) -> Vec<u8> {
    serde_json::to_vec(&json!({"text": alert.text, "alert": alert})).unwrap_or_default()
}

/// The delivery queue (lives on the alerts thread).
pub struct Queue {
    tx: mpsc::Sender<Rc<Vec<u8>>>,
    metrics: Arc<Metrics>,
    empty: bool,
}

impl Queue {
    /// Starts the delivery loop on the current (actix) thread.
    pub fn start(settings: Settings, metrics: Arc<Metrics>) -> Queue {
        let (tx, rx) = mpsc::channel(QUEUE);
        let empty = settings.webhooks.is_empty();
        if !empty {
            actix_web::rt::spawn(deliver_all(rx, settings, metrics.clone()));
        }
        Queue { tx, metrics, empty }
    }

    /// Queues an alert; drops it (counted) when the queue is full.
    pub fn push(&self, alert: &super::Alert) {
        if self.empty {
            return;
        }
        if self.tx.try_send(Rc::new(body(alert))).is_err() {
            self.metrics.inc(
                "svamlgate_alert_deliveries_total",
                &[("outcome", "dropped")],
            );
            tracing::warn!(
                rule = alert.rule.as_str(),
                "alert delivery queue full; alert dropped"
            );
        }
    }
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Rc<Vec<u8>>>,
    settings: Settings,
    metrics: Arc<Metrics>,
) {
    let client = awc::Client::builder()
        .timeout(TIMEOUT)
        .disable_redirects()
        .finish();
    let permits = Arc::new(Semaphore::new(CONCURRENT));
    let settings = Rc::new(settings);
    while let Some(body) = rx.recv().await {
        for url in &settings.webhooks {
            let url = url.clone();
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (client, settings, metrics, body) = (
                client.clone(),
                settings.clone(),
                metrics.clone(),
                body.clone(),
            );
            actix_web::rt::spawn(async move {
                let delivered = deliver_one(&client, &settings, &url, &body).await;
                let outcome = if delivered { "delivered" } else { "failed" };
                metrics.inc("svamlgate_alert_deliveries_total", &[("outcome", outcome)]);
                drop(permit);
            });
        }
    }
}

/// The host of a URL, for logs (never the path or query, which may hold a token).
fn host(url: &str) -> String {
    url.parse::<awc::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .unwrap_or_default()
}

async fn deliver_one(client: &awc::Client, settings: &Settings, url: &str, body: &[u8]) -> bool {
    let mut last = String::new();
    for attempt in 1..=settings.policy.max_attempts {
        let mut req = client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("user-agent", crate::upstream::USER_AGENT));
        if let Some(secret) = &settings.secret {
            let t = time::OffsetDateTime::now_utc().unix_timestamp();
            req = req.insert_header((SIGNATURE_HEADER, sign(secret.expose(), t, body)));
        }
        match req.send_body(body.to_vec()).await {
            Ok(res) if res.status().is_success() => return true,
            Ok(res) => last = format!("HTTP {}", res.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
        if attempt < settings.policy.max_attempts {
            tokio::time::sleep(retry::backoff(&settings.policy, attempt, retry::jitter())).await;
        }
    }
    tracing::warn!(
        webhook_host = %host(url),
        attempts = settings.policy.max_attempts,
        error = %last,
        "alert not delivered"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_tampering_and_age() {
        let h = sign("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify("s3cret", &h, b"{\"a\":1}", 1_700_000_010, 300));
        assert!(!verify("s3cret", &h, b"{\"a\":2}", 1_700_000_010, 300));
        assert!(!verify("other", &h, b"{\"a\":1}", 1_700_000_010, 300));
        assert!(!verify("s3cret", &h, b"{\"a\":1}", 1_700_001_000, 300));
        assert!(!verify("s3cret", "v1=00", b"{\"a\":1}", 1_700_000_000, 300));
    }

    #[test]
    fn only_http_urls_are_accepted_and_logs_show_the_host_only() {
        let mut args = crate::config::ServeArgs::for_tests().ops;
        args.alert_webhooks = Some(Secret::new(
            "https://hooks.slack.com/services/T0/B0/XYZ, http://127.0.0.1:9/a",
        ));
        let s = Settings::from_args(&args).unwrap();
        assert_eq!(s.webhooks.len(), 2);
        assert_eq!(host(&s.webhooks[0]), "hooks.slack.com");
        args.alert_webhooks = Some(Secret::new("ftp://x/y"));
        assert!(Settings::from_args(&args).is_err());
    }
}
