//! The alert rules: what is watched, the defaults (chosen for a phone line), and their overrides
//! (`SVAMLGATE_ALERT_RULES`).
//!
//! A rule has a threshold, a window and a cooldown. An event rule (fallbacks, gate misses,
//! signature failures, proxy-mode failures, Sinch API errors) fires when at least `threshold`
//! events fell in the last `window`, and resolves when fewer than `threshold` did. A condition
//! rule (journal lag, journal near its limit, embedded cluster restarting) fires when its value
//! reaches `threshold`, and resolves once it has stayed below for `window`. A firing rule does not
//! fire again; once resolved, it fires again no sooner than `cooldown` after it last fired.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Callers got the fallback reply, per reason.
    Fallback,
    /// Sinch rejected a reply the gate had passed (a gate miss).
    GateMiss,
    /// Callbacks refused by the signature check (a wrong key, a proxy changing the path).
    SignatureFailures,
    /// The customer's app (proxy mode) failing or late.
    Upstream,
    /// Sinch's Calling API answering 4xx or 5xx to callouts.
    SinchApi,
    /// The journal not draining into PostgreSQL: lag in seconds.
    JournalLag,
    /// The journal near its disk limit.
    JournalNearLimit,
    /// The embedded PostgreSQL cluster restarting.
    ClusterRestarting,
}

impl RuleKind {
    /// Every rule.
    pub const ALL: [RuleKind; 8] = [
        RuleKind::Fallback,
        RuleKind::GateMiss,
        RuleKind::SignatureFailures,
        RuleKind::Upstream,
        RuleKind::SinchApi,
        RuleKind::JournalLag,
        RuleKind::JournalNearLimit,
        RuleKind::ClusterRestarting,
    ];

    /// Name in settings and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Fallback => "fallback",
            RuleKind::GateMiss => "gate_miss",
            RuleKind::SignatureFailures => "signature_failures",
            RuleKind::Upstream => "upstream",
            RuleKind::SinchApi => "sinch_api",
            RuleKind::JournalLag => "journal_lag",
            RuleKind::JournalNearLimit => "journal_near_limit",
            RuleKind::ClusterRestarting => "cluster_restarting",
        }
    }

    /// Whether the rule watches a condition (a value looked at every tick) rather than events.
    pub fn is_condition(self) -> bool {
        matches!(
            self,
            RuleKind::JournalLag | RuleKind::JournalNearLimit | RuleKind::ClusterRestarting
        )
    }

    /// Where an operator looks first.
    pub fn admin_path(self) -> &'static str {
        match self {
            RuleKind::Fallback => "/admin/events",
            RuleKind::GateMiss => "/admin/gate/misses",
            RuleKind::SignatureFailures => "/admin/errors/{reference}",
            RuleKind::Upstream => "/admin/calls/{callid}",
            RuleKind::SinchApi => "/admin/sinch-errors",
            RuleKind::JournalLag | RuleKind::JournalNearLimit | RuleKind::ClusterRestarting => {
                "/readyz"
            }
        }
    }

    /// What firing means, in words.
    pub fn summary(self) -> &'static str {
        match self {
            RuleKind::Fallback => "callers are getting the fallback reply",
            RuleKind::GateMiss => "Sinch rejected a reply the gate had passed (gate miss)",
            RuleKind::SignatureFailures => {
                "callbacks are refused by the signature check (wrong key, or a proxy changing the path?)"
            }
            RuleKind::Upstream => "the proxy-mode app is failing or late",
            RuleKind::SinchApi => "Sinch's Calling API answers callouts with errors",
            RuleKind::JournalLag => "the journal is not draining into PostgreSQL",
            RuleKind::JournalNearLimit => "the journal is near its disk limit",
            RuleKind::ClusterRestarting => "the embedded PostgreSQL cluster is restarting",
        }
    }

    fn parse(name: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A rule's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// What it watches.
    pub kind: RuleKind,
    /// Events in the window (event rules), or the value (conditions: seconds of lag, 1 for a
    /// yes/no condition) at which it fires.
    pub threshold: f64,
    /// Event rules: how far back events count. Conditions: how long the value must stay below
    /// the threshold before the alert resolves.
    #[serde(serialize_with = "secs")]
    #[schema(value_type = f64)]
    pub window: Duration,
    /// Least time between two firings.
    #[serde(serialize_with = "secs")]
    #[schema(value_type = f64)]
    pub cooldown: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The defaults.
pub fn defaults() -> Vec<Rule> {
    let rule = |kind, threshold, window: u64, cooldown: u64| Rule {
        kind,
        threshold,
        window: Duration::from_secs(window),
        cooldown: Duration::from_secs(cooldown),
    };
    vec![
        // Five callers in a minute hearing the apology, for one reason.
        rule(RuleKind::Fallback, 5.0, 60, 300),
        // Each gate miss: Sinch dropped a call's reply that svamlgate thought valid.
        rule(RuleKind::GateMiss, 1.0, 300, 300),
        // A burst: ten refusals in a minute is a misconfiguration, not a stray scanner.
        rule(RuleKind::SignatureFailures, 10.0, 60, 300),
        rule(RuleKind::Upstream, 5.0, 60, 300),
        rule(RuleKind::SinchApi, 3.0, 300, 300),
        // Records more than a minute from PostgreSQL: admin reads lag, and the journal grows.
        rule(RuleKind::JournalLag, 60.0, 60, 300),
        rule(RuleKind::JournalNearLimit, 1.0, 60, 300),
        rule(RuleKind::ClusterRestarting, 1.0, 60, 300),
    ]
}

/// The defaults with `overrides` applied (`rule=threshold/window[/cooldown]`, comma-separated;
/// durations as `30s`, `5m`, `1h` or plain seconds).
pub fn parse(overrides: Option<&str>) -> anyhow::Result<Vec<Rule>> {
    let mut rules = defaults();
    let Some(text) = overrides else {
        return Ok(rules);
    };
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, spec) = item.split_once('=').ok_or_else(|| {
            anyhow::anyhow!(
                "SVAMLGATE_ALERT_RULES: `{item}` is not rule=threshold/window[/cooldown]"
            )
        })?;
        let kind = RuleKind::parse(name.trim()).ok_or_else(|| {
            let names: Vec<&str> = RuleKind::ALL.iter().map(|k| k.as_str()).collect();
            anyhow::anyhow!(
                "SVAMLGATE_ALERT_RULES: unknown rule `{name}` (rules: {})",
                names.join(", ")
            )
        })?;
        let parts: Vec<&str> = spec.split('/').map(str::trim).collect();
        let bad = || {
            anyhow::anyhow!(
                "SVAMLGATE_ALERT_RULES: `{item}` is not rule=threshold/window[/cooldown]"
            )
        };
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let threshold: f64 = parts[0]
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t > 0.0)
            .ok_or_else(bad)?;
        let window = duration(parts[1]).ok_or_else(bad)?;
        let rule = rules.iter_mut().find(|r| r.kind == kind).ok_or_else(bad)?;
        rule.threshold = threshold;
        rule.window = window;
        if let Some(c) = parts.get(2) {
            rule.cooldown = duration(c).ok_or_else(bad)?;
        }
    }
    Ok(rules)
}

/// `250ms`, `30s`, `5m`, `1h`, or seconds.
pub fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_the_defaults_of_their_rule_only() {
        let rules = parse(Some("fallback=2/10s, gate_miss=1/500ms/1m")).unwrap();
        let f = rules.iter().find(|r| r.kind == RuleKind::Fallback).unwrap();
        assert_eq!((f.threshold, f.window), (2.0, Duration::from_secs(10)));
        assert_eq!(f.cooldown, Duration::from_secs(300));
        let g = rules.iter().find(|r| r.kind == RuleKind::GateMiss).unwrap();
        assert_eq!(g.window, Duration::from_millis(500));
        assert_eq!(g.cooldown, Duration::from_secs(60));
        assert_eq!(rules.len(), RuleKind::ALL.len());
        for bad in [
            "nope=1/1s",
            "fallback",
            "fallback=1",
            "fallback=x/1s",
            "fallback=0/1s",
            "fallback=1/1y",
            "fallback=1/1s/1s/1s",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse(None).unwrap(), defaults());
    }
}
