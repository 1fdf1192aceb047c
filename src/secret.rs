//! Secrets: a string that never prints its value (admin token, application secrets, database
//! password, upstream and webhook secrets). A value type with no dependencies, so that
//! configuration, flows (route upstream secrets), alerts and the Sinch client can all hold one.

use std::fmt;

/// A secret string (admin token, application secrets, database password). `Debug` and `Display` print
/// `[redacted]` and serializing writes [`Secret::REDACTED`], so API responses never carry it; the
/// value is reachable only through [`Secret::expose`]. Deserializing reads the plain value.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Self::REDACTED)
    }
}

impl Secret {
    /// What serializing writes instead of the secret.
    pub const REDACTED: &'static str = "<redacted>";

    /// `true` if the value is the redaction marker (a redacted document was sent back as is).
    pub fn is_redacted(&self) -> bool {
        self.0 == Self::REDACTED
    }

    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value. Call sites are easy to audit with `grep expose`.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}
