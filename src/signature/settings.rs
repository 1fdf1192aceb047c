//! The settings of turning verification on safely: enforce or report (per application key too),
//! the canary through the public URL, and how many refusals are recorded one by one.

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

/// What a failed signature does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMode {
    /// Refuse the callback (401).
    #[default]
    Enforce,
    /// Process and answer it normally; record, count and show the failure with its explanation.
    /// Freshness and replays still apply.
    Report,
}

impl SignatureMode {
    /// `enforce` or `report`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMode::Enforce => "enforce",
            SignatureMode::Report => "report",
        }
    }
}

/// Settings of `svamlgate serve` (and `doctor`) for verification, the canary and refusals.
#[derive(Clone, Debug, Args)]
pub struct VerificationArgs {
    /// What a failed signature does: enforce (refuse, 401) or report (answer normally, record the
    /// failure with its explanation). Start with report, watch the explanations reach zero, enforce.
    #[arg(long, env = "SVAMLGATE_SIGNATURE_MODE", value_enum, default_value_t = SignatureMode::Enforce)]
    pub signature_mode: SignatureMode,

    /// The mode per application key, overriding SVAMLGATE_SIGNATURE_MODE for requests that name
    /// that key: `key1:report,key2:enforce`.
    #[arg(long, env = "SVAMLGATE_SIGNATURE_MODE_KEYS")]
    pub signature_mode_keys: Option<String>,

    /// The public callback URL Sinch posts to (through proxies, load balancers, TLS), e.g.
    /// `https://voice.example.com/gw/sinch/callback`. Enables the canary; its path also helps
    /// explain signature failures.
    #[arg(long, env = "SVAMLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Seconds between two canary posts.
    #[arg(long, env = "SVAMLGATE_CANARY_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub canary_interval_secs: u64,

    /// A canary answer slower than this many milliseconds is an alert.
    #[arg(long, env = "SVAMLGATE_CANARY_SLOW_MS", default_value_t = 2000)]
    pub canary_slow_ms: u64,

    /// A certificate of the public URL expiring within this many days is an alert.
    #[arg(long, env = "SVAMLGATE_CANARY_CERT_DAYS", default_value_t = 14)]
    pub canary_cert_days: u64,

    /// Refusals recorded one by one per peer address and reason in each window; the rest of the
    /// window is one summary row (count, first, last, one sample).
    #[arg(long, env = "SVAMLGATE_REFUSALS_PER_WINDOW", default_value_t = 5)]
    pub refusals_per_window: u32,

    /// The refusal summary window, in seconds.
    #[arg(long, env = "SVAMLGATE_REFUSAL_WINDOW_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub refusal_window_secs: u64,
}

impl VerificationArgs {
    /// The refusal summary window.
    pub fn refusal_window(&self) -> Duration {
        Duration::from_secs(self.refusal_window_secs)
    }
}

/// The mode of each request: per key where configured, else the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModePolicy {
    default: SignatureMode,
    per_key: Vec<(String, SignatureMode)>,
}

impl ModePolicy {
    /// Reads SVAMLGATE_SIGNATURE_MODE and SVAMLGATE_SIGNATURE_MODE_KEYS.
    pub fn new(default: SignatureMode, per_key: Option<&str>) -> Result<ModePolicy, String> {
        let mut out = ModePolicy {
            default,
            per_key: Vec::new(),
        };
        for (i, entry) in per_key
            .unwrap_or("")
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (key, mode) = entry.rsplit_once(':').ok_or_else(|| {
                format!(
                    "entry {} of SVAMLGATE_SIGNATURE_MODE_KEYS is not `key:enforce` or `key:report`",
                    i + 1
                )
            })?;
            let mode = SignatureMode::from_str(mode, true).map_err(|_| {
                format!(
                    "entry {} of SVAMLGATE_SIGNATURE_MODE_KEYS: mode must be enforce or report",
                    i + 1
                )
            })?;
            if key.is_empty() {
                return Err(format!(
                    "entry {} of SVAMLGATE_SIGNATURE_MODE_KEYS has no key",
                    i + 1
                ));
            }
            out.per_key.push((key.to_owned(), mode));
        }
        Ok(out)
    }

    /// The mode for a request naming `key` (`None`: no key, or not a configured one).
    pub fn for_key(&self, key: Option<&str>) -> SignatureMode {
        key.and_then(|k| {
            self.per_key
                .iter()
                .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                .map(|(_, m)| *m)
        })
        .unwrap_or(self.default)
    }

    /// The default mode.
    pub fn default_mode(&self) -> SignatureMode {
        self.default
    }

    /// The keys in report mode while the default is enforce (or all, `None`, when the default is report).
    pub fn report_keys(&self) -> Option<Vec<&str>> {
        if self.default == SignatureMode::Report {
            return None;
        }
        Some(
            self.per_key
                .iter()
                .filter(|(_, m)| *m == SignatureMode::Report)
                .map(|(k, _)| k.as_str())
                .collect(),
        )
    }

    /// Whether any request may be answered despite a failed signature.
    pub fn any_report(&self) -> bool {
        self.report_keys().is_none_or(|keys| !keys.is_empty())
    }

    /// `enforce`, `report`, or `mixed` (some keys differ from the default).
    pub fn summary(&self) -> &'static str {
        if self.per_key.iter().any(|(_, m)| *m != self.default) {
            "mixed"
        } else {
            self.default.as_str()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_key_modes() {
        let p = ModePolicy::new(SignatureMode::Enforce, Some("a:report, b:ENFORCE")).unwrap();
        assert_eq!(p.for_key(Some("A")), SignatureMode::Report);
        assert_eq!(p.for_key(Some("b")), SignatureMode::Enforce);
        assert_eq!(p.for_key(Some("c")), SignatureMode::Enforce);
        assert_eq!(p.for_key(None), SignatureMode::Enforce);
        assert!(p.any_report());
        assert_eq!(p.summary(), "mixed");
        assert_eq!(p.report_keys(), Some(vec!["a"]));
        let all = ModePolicy::new(SignatureMode::Report, None).unwrap();
        assert!(all.any_report());
        assert_eq!(all.summary(), "report");
        assert!(!ModePolicy::default().any_report());
        assert!(ModePolicy::new(SignatureMode::Enforce, Some("a")).is_err());
        assert!(ModePolicy::new(SignatureMode::Enforce, Some("a:maybe")).is_err());
        assert!(ModePolicy::new(SignatureMode::Enforce, Some(":report")).is_err());
    }
}
