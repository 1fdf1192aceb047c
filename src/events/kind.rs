//! Which event a callback is: the one type every other "which event" derives from. What a reply
//! to each event is checked as (`EventKind::reply_target`) is the SVAML side's: `svaml::event_target`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest event name kept verbatim in [`EventKind::Unknown`] (in characters).
pub const MAX_UNKNOWN_EVENT_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Event kind
// ---------------------------------------------------------------------------------------------

/// The `event` discriminator of a callback.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Incoming Call Event.
    Ice,
    /// Answered Call Event.
    Ace,
    /// Disconnected Call Event.
    Dice,
    /// Prompt Input Event.
    Pie,
    /// Notification Event.
    Notify,
    /// Any other value, kept as given (truncated to [`MAX_UNKNOWN_EVENT_LEN`] characters).
    Unknown(String),
}

impl EventKind {
    /// The five events Sinch sends.
    pub const KNOWN: [EventKind; 5] = [
        EventKind::Ice,
        EventKind::Ace,
        EventKind::Dice,
        EventKind::Pie,
        EventKind::Notify,
    ];

    /// Parses an event name case-insensitively (surrounding whitespace ignored).
    pub fn parse(name: &str) -> Self {
        let t = name.trim();
        if t.eq_ignore_ascii_case("ice") {
            Self::Ice
        } else if t.eq_ignore_ascii_case("ace") {
            Self::Ace
        } else if t.eq_ignore_ascii_case("dice") {
            Self::Dice
        } else if t.eq_ignore_ascii_case("pie") {
            Self::Pie
        } else if t.eq_ignore_ascii_case("notify") {
            Self::Notify
        } else {
            Self::Unknown(name.chars().take(MAX_UNKNOWN_EVENT_LEN).collect())
        }
    }

    /// Lower-case name (`"ice"`, …); unknown kinds return the (truncated) name as received.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(s) => s,
            known => known.label(),
        }
    }

    /// Metric label (`event`): the lower-case name; unknown values collapse into `unknown`, so a
    /// caller cannot create label values at will.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ice => "ice",
            Self::Ace => "ace",
            Self::Dice => "dice",
            Self::Pie => "pie",
            Self::Notify => "notify",
            Self::Unknown(_) => "unknown",
        }
    }
}

impl From<&str> for EventKind {
    fn from(name: &str) -> Self {
        Self::parse(name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(EventKind::parse(&text))
    }
}

// `callbacks.event_type` and the other event columns: five known events and the name of any
// other as received, so a read never fails and gives back what was written.
crate::outcome::text_column!(EventKind, EventKind::as_str, |t: &str| Ok::<_, String>(
    EventKind::parse(t)
));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_event_keeps_its_name_through_json() {
        let kind: EventKind = serde_json::from_str("\"surprise\"").unwrap();
        assert_eq!(kind, EventKind::Unknown("surprise".into()));
        assert_eq!(serde_json::to_string(&kind).unwrap(), "\"surprise\"");
        let ice: EventKind = serde_json::from_str("\"ice\"").unwrap();
        assert_eq!(ice, EventKind::Ice);
        let empty: EventKind = serde_json::from_str("\"\"").unwrap();
        assert_eq!(empty.as_str(), "");
    }
}
