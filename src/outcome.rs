//! The fixed vocabulary of a callback's outcome: whether its signature was checked, what produced
//! its reply, why a fallback went out instead, and what the gate said. Each is an enum here, listed
//! once; it becomes text only at the edges (SQL columns, journal records, API bodies, metric
//! labels), always through `as_str`, and the column comments in `migrations/` list the same values
//! (a test holds them together).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! vocabulary {
    (
        $(#[doc = $doc:literal])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in SQL, JSON and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// Reads [`Self::as_str`] back.
            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let mut schema = text_schema(Self::ALL.iter().map(|v| v.as_str()));
                let doc: Vec<&str> = [$($doc),*].iter().map(|line| line.trim()).collect();
                schema.description = Some(doc.join("\n"));
                schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} {text:?}",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

/// The schema of a text that is one of `values` (for the OpenAPI document).
pub fn text_schema<'a>(values: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .build()
}

vocabulary! {
    /// Whether the callback's signature was checked (`callbacks.signature`). Refused requests are
    /// not callbacks: they are in `refusals`.
    SignatureState {
        /// Signed by a configured key.
        Verified => "verified",
        /// Signature checking is disabled by configuration.
        Unverified => "unverified",
        /// The signature failed and report mode answered anyway (the failure is in `refusals`).
        Reported => "reported",
    }
}

vocabulary! {
    /// What produced the reply that went out (`callbacks.reply_source`, the `source` label).
    ReplySource {
        /// A stored call flow.
        Flow => "flow",
        /// The customer's own app (proxy mode).
        Upstream => "upstream",
        /// The configured default reply (no route matched).
        Default => "default",
        /// The pre-validated fallback, instead of what was decided (see [`FallbackReason`]).
        Fallback => "fallback",
        /// A replay, answered with the original's reply.
        Duplicate => "duplicate",
        /// Nothing: an empty 200 (DICE, Notify, unknown events).
        None => "none",
        /// An error envelope (the body could not be read as an event).
        Error => "error",
    }
}

vocabulary! {
    /// Why the fallback went out instead of the decided reply (`callbacks.fallback_reason`, the
    /// `reason` label).
    FallbackReason {
        /// The gate refused the decided reply.
        Invalid => "invalid",
        /// No reply was decided before the event's deadline.
        Deadline => "deadline",
        /// The customer's app failed or answered something unusable.
        UpstreamError => "upstream_error",
        /// The flow could not be loaded or run.
        FlowError => "flow_error",
    }
}

vocabulary! {
    /// What the gate said about the decided reply (`callbacks.gate_verdict`, the `verdict` label).
    GateVerdict {
        /// Valid: it went out.
        Passed => "passed",
        /// Invalid, and sent as it was because the route (or the service) is in observe mode.
        Observed => "observed",
        /// Invalid: the fallback went out instead.
        Rejected => "rejected",
    }
}

/// Operations of the Calling API svamlgate performs (`outbound_requests.operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = SinchOperation, rename_all = "snake_case")]
pub enum Operation {
    /// `POST /calling/v1/callouts`.
    Callout,
    /// `GET /calling/v1/calls/id/{callId}`.
    GetCall,
    /// `PATCH /calling/v1/calls/id/{callId}`.
    ManageCall,
    /// `PATCH /calling/v1/calls/id/{callId}/leg/{callLeg}`.
    ManageCallLeg,
    /// `GET /calling/v1/conferences/id/{conferenceId}`.
    GetConference,
    /// `DELETE /calling/v1/conferences/id/{conferenceId}`.
    KickAll,
    /// `PATCH /calling/v1/conferences/id/{conferenceId}/{callId}`.
    ManageParticipant,
    /// `DELETE /calling/v1/conferences/id/{conferenceId}/{callId}`.
    KickParticipant,
}

impl Operation {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Callout => "callout",
            Operation::GetCall => "get_call",
            Operation::ManageCall => "manage_call",
            Operation::ManageCallLeg => "manage_call_leg",
            Operation::GetConference => "get_conference",
            Operation::KickAll => "kick_all",
            Operation::ManageParticipant => "manage_participant",
            Operation::KickParticipant => "kick_participant",
        }
    }

    /// HTTP method.
    pub fn method(self) -> &'static str {
        match self {
            Operation::Callout => "POST",
            Operation::GetCall | Operation::GetConference => "GET",
            Operation::ManageCall | Operation::ManageCallLeg | Operation::ManageParticipant => {
                "PATCH"
            }
            Operation::KickAll | Operation::KickParticipant => "DELETE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values a column comment lists after "One of:" (in its latest migration).
    fn listed_in_migrations(column: &str) -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let needle = format!("COMMENT ON COLUMN callbacks.{column} IS '");
        let mut last = None;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices(&needle) {
                let rest = &text[i + needle.len()..];
                last = Some(rest[..rest.find("';").unwrap()].to_owned());
            }
        }
        let comment = last.unwrap_or_else(|| panic!("no comment on callbacks.{column}"));
        let list = comment
            .split_once("One of: ")
            .unwrap_or_else(|| panic!("callbacks.{column}: no 'One of:' list in {comment:?}"))
            .1;
        // Drop the explanations in parentheses, then read the list up to its full stop.
        let mut bare = String::new();
        let mut depth = 0;
        for ch in list.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => bare.push(ch),
                _ => {}
            }
        }
        let bare = &bare[..bare.find('.').unwrap_or(bare.len())];
        bare.split(',').map(|v| v.trim().to_owned()).collect()
    }

    fn texts<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| f(*v).to_owned()).collect()
    }

    #[test]
    fn migration_comments_list_exactly_the_values_the_code_writes() {
        let cases = [
            (
                "signature",
                texts(SignatureState::ALL, SignatureState::as_str),
            ),
            ("reply_source", texts(ReplySource::ALL, ReplySource::as_str)),
            (
                "fallback_reason",
                texts(FallbackReason::ALL, FallbackReason::as_str),
            ),
            ("gate_verdict", texts(GateVerdict::ALL, GateVerdict::as_str)),
        ];
        for (column, values) in cases {
            assert_eq!(listed_in_migrations(column), values, "callbacks.{column}");
        }
    }

    #[test]
    fn text_round_trips_through_serde_and_parse() {
        for v in ReplySource::ALL {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<ReplySource>(&json).unwrap(), *v);
        }
        for v in FallbackReason::ALL {
            assert_eq!(FallbackReason::parse(v.as_str()), Some(*v));
        }
        assert!(serde_json::from_str::<GateVerdict>("\"maybe\"").is_err());
        assert_eq!(
            serde_json::from_str::<SignatureState>("\"verified\"").unwrap(),
            SignatureState::Verified
        );
    }
}
