//! The gate: the last step before an ICE, ACE or PIE reply leaves. Every candidate reply is checked
//! against its event's schema and lint rules; an invalid one is replaced by that event's fallback, which
//! was itself checked at start: svamlgate refuses to start with a fallback or default that fails
//! normal mode (what Sinch rejects), and logs strict-mode findings on them as warnings.

use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::config::{read_inline_or_file, ServeArgs};
use crate::svaml::memo::Memo;
use crate::svaml::model::{Action, Svaml};
use crate::svaml::{CallContext, Mode, Report, Target, Validator};

/// The three events whose reply is SVAML.
pub const REPLY_TARGETS: [Target; 3] = [Target::Ice, Target::Ace, Target::Pie];

/// Built-in reply when no route matches: tell the caller, then hang up (ICE, PIE); continue the
/// call (ACE). A manage-call body is never a reply to an event: its slot holds a plain hang-up.
/// Built once, at start.
pub fn builtin_default(target: Target) -> Value {
    match target {
        Target::Ice => say_then_hang_up("Sorry, this number is not in service. Goodbye."),
        Target::Ace => Svaml::new(Action::Continue).to_value(),
        Target::Pie => say_then_hang_up("Thank you for calling. Goodbye."),
        Target::Manage => Svaml::new(Action::Hangup).to_value(),
    }
}

/// Built-in fallback: an apology and a clean hang-up (ICE, PIE); continue the call (ACE). Built
/// once, at start.
pub fn builtin_fallback(target: Target) -> Value {
    match target {
        Target::Ace => Svaml::new(Action::Continue).to_value(),
        Target::Ice | Target::Pie => say_then_hang_up(
            "We are sorry, we cannot take your call right now. Please try again later.",
        ),
        Target::Manage => Svaml::new(Action::Hangup).to_value(),
    }
}

fn say_then_hang_up(text: &str) -> Value {
    Svaml::builder().say(text, "en-US").hangup().to_value()
}

/// Outcome of passing a candidate through the gate.
#[derive(Debug)]
pub struct Verdict {
    /// What goes out: the candidate when valid, else the fallback.
    pub reply: Value,
    /// Whether the candidate passed.
    pub passed: bool,
    /// The candidate's report.
    pub report: Report,
    /// The candidate, when it was rejected (for the record of what did not go out).
    pub rejected: Option<Value>,
}

/// A reply set by `name` (SVAML inline, or `@path` to a file: [`read_inline_or_file`]), else the
/// built-in one.
fn configured_reply(setting: &Option<String>, name: &str, builtin: Value) -> anyhow::Result<Value> {
    match setting {
        None => Ok(builtin),
        Some(v) => {
            let text = read_inline_or_file(v).with_context(|| format!("reading {name}"))?;
            serde_json::from_str(&text).with_context(|| format!("{name} is not valid JSON"))
        }
    }
}

/// Checks a configured default or fallback: an error when it fails normal mode (Sinch would reject
/// it), else the strict-mode report when that has any finding (to log as a warning).
fn check_configured(
    validator: &Validator,
    target: Target,
    kind: &str,
    doc: &Value,
) -> anyhow::Result<Option<Report>> {
    let normal = validator.check(target, doc, Mode::Normal);
    if !normal.valid {
        bail!(
            "the configured {kind} reply for {} is not valid SVAML, refusing to start:\n{normal}",
            target.as_str().to_uppercase()
        );
    }
    // Strict mode finds the same violations, only with errors where normal mode warns: the normal
    // report, re-rated, is the strict one.
    Ok((!normal.violations.is_empty())
        .then(|| Report::finish(target.as_str(), Mode::Strict, normal.violations)))
}

/// Validators, mode, defaults and fallbacks, built once at start.
#[derive(Debug, Clone)]
pub struct Gate {
    validator: Arc<Validator>,
    mode: Mode,
    /// By [`Target::index`].
    defaults: [Value; 4],
    /// By [`Target::index`].
    fallbacks: [Value; 4],
    /// Reports of the documents checked before (a flow's reply is checked once, not per call).
    memo: Arc<Memo>,
}

impl Gate {
    /// Builds the gate from configuration; fails (refusing to start) when a configured default or
    /// fallback is not valid SVAML for its event in normal mode. Findings of strict mode (a
    /// spelling other than Sinch's canonical one) are logged as warnings, never a refusal.
    pub fn new(validator: Arc<Validator>, config: &ServeArgs) -> anyhow::Result<Gate> {
        let mode = if config.strict_replies {
            Mode::Strict
        } else {
            Mode::Normal
        };
        let default = |setting: &Option<String>, name: &str, t: Target| {
            configured_reply(setting, name, builtin_default(t))
        };
        let fallback = |setting: &Option<String>, name: &str, t: Target| {
            configured_reply(setting, name, builtin_fallback(t))
        };
        let defaults = [
            default(&config.default_ice, "SVAMLGATE_DEFAULT_ICE", Target::Ice)?,
            default(&config.default_ace, "SVAMLGATE_DEFAULT_ACE", Target::Ace)?,
            default(&config.default_pie, "SVAMLGATE_DEFAULT_PIE", Target::Pie)?,
            builtin_default(Target::Manage),
        ];
        let fallbacks = [
            fallback(&config.fallback_ice, "SVAMLGATE_FALLBACK_ICE", Target::Ice)?,
            fallback(&config.fallback_ace, "SVAMLGATE_FALLBACK_ACE", Target::Ace)?,
            fallback(&config.fallback_pie, "SVAMLGATE_FALLBACK_PIE", Target::Pie)?,
            builtin_fallback(Target::Manage),
        ];
        let gate = Gate {
            validator,
            mode,
            defaults,
            fallbacks,
            memo: Arc::new(Memo::new()),
        };
        gate.check_configured_replies()?;
        Ok(gate)
    }

    /// Refuses a default or fallback reply that is not valid for its event in normal mode; logs
    /// the findings of strict mode of one that passes.
    fn check_configured_replies(&self) -> anyhow::Result<()> {
        for t in REPLY_TARGETS {
            for (kind, doc) in [
                ("fallback", self.fallback(t)),
                ("default", self.default_reply(t)),
            ] {
                if let Some(report) = check_configured(&self.validator, t, kind, doc)? {
                    tracing::warn!(
                        event = t.as_str(),
                        reply = kind,
                        findings = report.violations.len(),
                        "the configured {kind} reply for {} passes, with findings of strict mode (canonical spelling):\n{report}",
                        t.as_str().to_uppercase()
                    );
                }
            }
        }
        Ok(())
    }

    /// The shared validator.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Reports remembered by [`Gate::pass_in_call`] (hits and misses, for tests and figures).
    pub fn memo(&self) -> &Memo {
        &self.memo
    }

    /// The mode replies are checked in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The pre-validated fallback for an event.
    pub fn fallback(&self, target: Target) -> &Value {
        &self.fallbacks[target.index()]
    }

    /// The pre-validated reply used when no route matches.
    pub fn default_reply(&self, target: Target) -> &Value {
        &self.defaults[target.index()]
    }

    /// Checks a candidate reply; the verdict carries what must go out. The cookie budget counts
    /// this reply's cookies only; see [`Gate::pass_in_call`].
    pub fn pass(&self, target: Target, candidate: Value) -> Verdict {
        self.pass_in_call(target, candidate, &CallContext::default())
    }

    /// Checks a candidate reply within its call: the cookie budget counts the last value of each
    /// key over the cookies the call set earlier (`context`) and this reply's. After the reply went
    /// out, [`crate::svaml::cookies_set`] gives the cookies it set, to add to the call's context.
    pub fn pass_in_call(&self, target: Target, candidate: Value, context: &CallContext) -> Verdict {
        let report =
            self.memo
                .check_in_call(&self.validator, target, &candidate, self.mode, context);
        if report.valid {
            Verdict {
                reply: candidate,
                passed: true,
                report,
                rejected: None,
            }
        } else {
            Verdict {
                reply: self.fallback(target).clone(),
                passed: false,
                report,
                rejected: Some(candidate),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_replies_are_the_documented_svaml() {
        let ice_default = json!({
            "instructions": [{"name": "say", "text": "Sorry, this number is not in service. Goodbye.", "locale": "en-US"}],
            "action": {"name": "hangup"}
        });
        let pie_default = json!({
            "instructions": [{"name": "say", "text": "Thank you for calling. Goodbye.", "locale": "en-US"}],
            "action": {"name": "hangup"}
        });
        let apology = json!({
            "instructions": [{"name": "say", "text": "We are sorry, we cannot take your call right now. Please try again later.", "locale": "en-US"}],
            "action": {"name": "hangup"}
        });
        let continue_call = json!({"action": {"name": "continue"}});
        // Byte for byte, as they are serialized into replies.
        let text = |v: Value| v.to_string();
        assert_eq!(text(builtin_default(Target::Ice)), text(ice_default));
        assert_eq!(
            text(builtin_default(Target::Ace)),
            text(continue_call.clone())
        );
        assert_eq!(text(builtin_default(Target::Pie)), text(pie_default));
        assert_eq!(text(builtin_fallback(Target::Ice)), text(apology.clone()));
        assert_eq!(text(builtin_fallback(Target::Ace)), text(continue_call));
        assert_eq!(text(builtin_fallback(Target::Pie)), text(apology));
    }

    fn gate_with(fallback_ice: &str) -> anyhow::Result<Gate> {
        let mut config = ServeArgs::for_tests();
        config.fallback_ice = Some(fallback_ice.to_owned());
        Gate::new(Arc::new(Validator::new()?), &config)
    }

    #[test]
    fn builtin_replies_pass_strict_mode_without_findings() -> anyhow::Result<()> {
        let validator = Validator::new()?;
        for t in REPLY_TARGETS {
            for doc in [builtin_default(t), builtin_fallback(t)] {
                assert!(check_configured(&validator, t, "built-in", &doc)?.is_none());
            }
        }
        Ok(())
    }

    #[test]
    fn a_fallback_with_strict_findings_only_is_accepted_and_reported() -> anyhow::Result<()> {
        // Legacy casing and an unknown property: Sinch's own pages publish such replies.
        let doc = json!({
            "instructions": [{"name": "Say", "text": "Sorry, goodbye.", "locale": "en-US"}],
            "action": {"name": "hangup", "hangupCause": 0}
        });
        let validator = Validator::new()?;
        let report = check_configured(&validator, Target::Ice, "fallback", &doc)?;
        let report = report.ok_or_else(|| anyhow::anyhow!("strict findings expected"))?;
        assert!(report.has_code("SVAML003") && report.has_code("schema:additionalProperties"));
        let gate = gate_with(&doc.to_string())?;
        assert_eq!(gate.fallback(Target::Ice), &doc);
        Ok(())
    }

    #[test]
    fn the_cookie_budget_spans_the_call() -> anyhow::Result<()> {
        let gate = Gate::new(Arc::new(Validator::new()?), &ServeArgs::for_tests())?;
        let reply = json!({"instructions": [{"name": "setCookie", "key": "step", "value": "x".repeat(600)}], "action": {"name": "hangup"}});
        assert!(gate.pass(Target::Pie, reply.clone()).passed);
        let context = CallContext {
            cookies: crate::svaml::cookies_set(
                &json!({"instructions": [{"name": "setCookie", "key": "first", "value": "y".repeat(600)}]}),
            ),
        };
        let verdict = gate.pass_in_call(Target::Pie, reply.clone(), &context);
        assert!(!verdict.passed && verdict.report.has_code("SVAML040"));
        assert_eq!(verdict.rejected, Some(reply));
        Ok(())
    }

    #[test]
    fn a_remembered_verdict_is_the_fresh_one() -> anyhow::Result<()> {
        let validator = Arc::new(Validator::new()?);
        let normal = Gate::new(validator.clone(), &ServeArgs::for_tests())?;
        let mut config = ServeArgs::for_tests();
        config.strict_replies = true;
        let strict = Gate::new(validator.clone(), &config)?;
        let raised = Arc::new(Validator::with_limits(crate::svaml::Limits {
            max_say_chars: 1000,
        })?);
        let roomy = Gate::new(raised, &ServeArgs::for_tests())?;
        // Passes in normal mode with a warning, fails strict mode (legacy casing).
        let casing =
            json!({"instructions": [{"name": "Say", "text": "Hi"}], "action": {"name": "hangup"}});
        // Fails Sinch's default say limit, passes a raised one.
        let long = json!({"instructions": [{"name": "say", "text": "a".repeat(700)}], "action": {"name": "hangup"}});
        for _ in 0..3 {
            for doc in [&casing, &long] {
                for gate in [&normal, &strict, &roomy] {
                    let fresh = gate.validator().check(Target::Ice, doc, gate.mode());
                    let verdict = gate.pass(Target::Ice, doc.clone());
                    assert_eq!(verdict.report, fresh);
                    assert_eq!(verdict.passed, fresh.valid);
                    if fresh.valid {
                        assert_eq!(&verdict.reply, doc);
                        assert!(verdict.rejected.is_none());
                    } else {
                        assert_eq!(&verdict.reply, gate.fallback(Target::Ice));
                        assert_eq!(verdict.rejected.as_ref(), Some(doc));
                    }
                }
            }
        }
        // Each gate checked each document once; every other verdict was remembered.
        for gate in [&normal, &strict, &roomy] {
            assert_eq!((gate.memo().misses(), gate.memo().hits()), (2, 4));
        }
        assert!(normal.pass(Target::Ice, casing.clone()).passed);
        assert!(!strict.pass(Target::Ice, casing).passed);
        assert!(!normal.pass(Target::Ice, long.clone()).passed);
        assert!(roomy.pass(Target::Ice, long).passed);
        Ok(())
    }

    #[test]
    fn a_fallback_sinch_rejects_refuses_to_start() {
        let err = gate_with(r#"{"action":{"name":"continue"}}"#)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            err.contains("fallback") && err.contains("ICE") && err.contains("SVAML001"),
            "{err}"
        );
    }
}
