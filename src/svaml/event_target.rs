//! What a reply to each event is checked as: the SVAML side of [`EventKind`] (events sit below
//! svaml, so the mapping from an event to its [`Target`] lives here, next to `Target`).

use super::Target;
use crate::events::EventKind;

impl EventKind {
    /// Whether Sinch interprets a SVAML reply to this event (ICE, ACE, PIE).
    pub fn expects_svaml(&self) -> bool {
        self.reply_target().is_some()
    }

    /// What a reply to this event is checked as (its schema, lint rules, deadline, default and
    /// fallback replies); `None` for events whose reply Sinch ignores (DICE, Notify, unknown).
    pub fn reply_target(&self) -> Option<Target> {
        match self {
            Self::Ice => Some(Target::Ice),
            Self::Ace => Some(Target::Ace),
            Self::Pie => Some(Target::Pie),
            Self::Dice | Self::Notify | Self::Unknown(_) => None,
        }
    }
}
