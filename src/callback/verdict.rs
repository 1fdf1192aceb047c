//! The verdict on a decided reply, as a pure function: what the source produced and what the gate
//! said of it in, what goes out and how the record names it out. No I/O, no metrics, no clock.

use crate::flows::routes::GateMode;
use crate::outcome::{FallbackReason, GateVerdict, ReplySource};

/// What the reply source and the gate made of an event's candidate reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// The source produced a candidate and the gate checked it.
    Gated {
        /// Whether it passed the gate.
        passed: bool,
        /// Whether the gate enforces or only observes for this decision.
        mode: GateMode,
    },
    /// The source produced nothing usable (deadline, upstream or flow failure).
    Missing(FallbackReason),
}

/// Which reply goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sends {
    /// The candidate, as the gate passed it.
    Candidate,
    /// The candidate as it is, although the gate found it invalid (observe mode).
    InvalidAsIs,
    /// The event's pre-validated fallback.
    Fallback,
}

/// The verdict: what goes out, and what the record says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ruling {
    /// Which reply goes out.
    pub sends: Sends,
    /// The recorded reply source.
    pub source: ReplySource,
    /// The recorded gate verdict (none when there was no candidate to gate).
    pub gate_verdict: Option<GateVerdict>,
    /// Why a fallback went out, when one did.
    pub fallback_reason: Option<FallbackReason>,
}

/// Rules on the candidate of `source`: a passed candidate goes out as it is; an invalid one goes
/// out anyway in observe mode and is replaced by the fallback in enforce mode; without a candidate
/// the fallback goes out, for the source's reason.
pub(crate) fn rule(source: ReplySource, candidate: Candidate) -> Ruling {
    match candidate {
        Candidate::Gated { passed: true, .. } => Ruling {
            sends: Sends::Candidate,
            source,
            gate_verdict: Some(GateVerdict::Passed),
            fallback_reason: None,
        },
        Candidate::Gated {
            passed: false,
            mode: GateMode::Observe,
        } => Ruling {
            sends: Sends::InvalidAsIs,
            source,
            gate_verdict: Some(GateVerdict::Observed),
            fallback_reason: None,
        },
        Candidate::Gated {
            passed: false,
            mode: GateMode::Enforce,
        } => Ruling {
            sends: Sends::Fallback,
            source: ReplySource::Fallback,
            gate_verdict: Some(GateVerdict::Rejected),
            fallback_reason: Some(FallbackReason::Invalid),
        },
        Candidate::Missing(reason) => Ruling {
            sends: Sends::Fallback,
            source: ReplySource::Fallback,
            gate_verdict: None,
            fallback_reason: Some(reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: [ReplySource; 4] = [
        ReplySource::Flow,
        ReplySource::Upstream,
        ReplySource::Default,
        ReplySource::None,
    ];

    fn gated(passed: bool, mode: GateMode) -> Candidate {
        Candidate::Gated { passed, mode }
    }

    #[test]
    fn gated_candidates_table() {
        use GateMode::{Enforce, Observe};
        use GateVerdict::{Observed, Passed, Rejected};
        // (passed, mode) → (sends, recorded source is the decided one, verdict, fallback reason)
        let table = [
            (true, Enforce, Sends::Candidate, true, Passed, None),
            (true, Observe, Sends::Candidate, true, Passed, None),
            (false, Observe, Sends::InvalidAsIs, true, Observed, None),
            (
                false,
                Enforce,
                Sends::Fallback,
                false,
                Rejected,
                Some(FallbackReason::Invalid),
            ),
        ];
        for source in SOURCES {
            for (passed, mode, sends, keeps_source, verdict, reason) in table {
                let ruling = rule(source, gated(passed, mode));
                let case = format!("{source} passed={passed} {mode:?}");
                assert_eq!(ruling.sends, sends, "{case}");
                let recorded = if keeps_source {
                    source
                } else {
                    ReplySource::Fallback
                };
                assert_eq!(ruling.source, recorded, "{case}");
                assert_eq!(ruling.gate_verdict, Some(verdict), "{case}");
                assert_eq!(ruling.fallback_reason, reason, "{case}");
            }
        }
    }

    #[test]
    fn a_missing_candidate_sends_the_fallback_for_its_reason() {
        for &reason in FallbackReason::ALL {
            for source in SOURCES {
                let ruling = rule(source, Candidate::Missing(reason));
                assert_eq!(
                    ruling,
                    Ruling {
                        sends: Sends::Fallback,
                        source: ReplySource::Fallback,
                        gate_verdict: None,
                        fallback_reason: Some(reason),
                    },
                    "{source} {reason}"
                );
            }
        }
    }
}
