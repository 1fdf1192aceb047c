//! Application credentials: one key and secret ([`AppCredential`]), and the set callbacks are
//! verified against ([`KeyRing`]), read from configuration. Secrets are decoded strictly and never
//! printed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Longest application key accepted in configuration.
const MAX_KEY_LEN: usize = 256;

/// Why a credential could not be configured. Messages name the key, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The application key is empty.
    #[error("Sinch application key is empty")]
    EmptyKey,
    /// The key contains characters that cannot occur in Sinch keys or in the key-list format.
    #[error(
        "Sinch application key `{key}` is invalid: keys are at most 256 characters and contain \
         no whitespace, control characters, ',' or ':'"
    )]
    InvalidKey {
        /// The offending key.
        key: String,
    },
    /// The secret is empty.
    #[error("Sinch application secret for key `{key}` is empty")]
    EmptySecret {
        /// The key the secret belongs to.
        key: String,
    },
    /// The secret is not strict, padded, standard-alphabet base64.
    #[error(
        "Sinch application secret for key `{key}` is not valid base64 (standard alphabet, \
         '=' padding, as shown in the Sinch dashboard); svamlgate decodes secrets strictly \
         instead of guessing like lenient decoders do"
    )]
    SecretNotBase64 {
        /// The key the secret belongs to.
        key: String,
    },
    /// An entry of a key list is not of the form `key:secret`.
    #[error("entry {position} of the Sinch application key list is not of the form `key:secret`")]
    MalformedListEntry {
        /// 1-based position of the entry in the list.
        position: usize,
    },
}

/// One Sinch application's key and secret.
///
/// The secret is held only as a pre-keyed HMAC state and a SHA-256 digest of its text (for the
/// optional Basic scheme); `Debug` prints the key alone.
#[derive(Clone)]
pub struct AppCredential {
    key: String,
    mac: HmacSha256,
    basic_digest: [u8; 32],
    /// HMAC keyed with the secret's base64 *text* (not decoded): only to explain a refusal signed
    /// that way (the SDK trap), never to accept one.
    text_mac: Box<HmacSha256>,
}

impl fmt::Debug for AppCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredential")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

impl AppCredential {
    /// Builds a credential from the application key and the base64 application secret exactly
    /// as the Sinch dashboard shows them. Surrounding whitespace is ignored.
    ///
    /// The secret is decoded **strictly** (standard alphabet, canonical `=` padding). A secret
    /// such as `app-secret` (used in the Node SDK's tests, which Node's lenient decoder turns
    /// into 7 arbitrary bytes) is refused here, at configuration time, rather than silently
    /// producing a key that never matches Sinch's.
    pub fn new(key: &str, secret_b64: &str) -> Result<Self, CredentialError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(CredentialError::EmptyKey);
        }
        if key.len() > MAX_KEY_LEN
            || key
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ':')
        {
            return Err(CredentialError::InvalidKey {
                key: key.to_owned(),
            });
        }
        let secret_b64 = secret_b64.trim();
        if secret_b64.is_empty() {
            return Err(CredentialError::EmptySecret {
                key: key.to_owned(),
            });
        }
        let decoded =
            STANDARD
                .decode(secret_b64)
                .map_err(|_| CredentialError::SecretNotBase64 {
                    key: key.to_owned(),
                })?;
        if decoded.is_empty() {
            return Err(CredentialError::EmptySecret {
                key: key.to_owned(),
            });
        }
        // HMAC accepts keys of any length; the error arm cannot occur but is handled anyway.
        let mac =
            HmacSha256::new_from_slice(&decoded).map_err(|_| CredentialError::SecretNotBase64 {
                key: key.to_owned(),
            })?;
        let text_mac = HmacSha256::new_from_slice(secret_b64.as_bytes()).map_err(|_| {
            CredentialError::SecretNotBase64 {
                key: key.to_owned(),
            }
        })?;
        Ok(Self {
            key: key.to_owned(),
            mac,
            basic_digest: sha256(secret_b64.as_bytes()),
            text_mac: Box::new(text_mac),
        })
    }

    /// The application key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Base64 HMAC-SHA256 of `string_to_sign` under this credential's secret.
    pub fn signature(&self, string_to_sign: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(string_to_sign.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    pub(super) fn verify_signature(&self, string_to_sign: &str, signature: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(signature).is_ok()
    }

    /// Like `verify_signature`, but with the secret's text used as the HMAC key without decoding
    /// it (only to explain a refusal).
    pub(super) fn verify_signature_undecoded(
        &self,
        string_to_sign: &str,
        signature: &[u8],
    ) -> bool {
        let mut mac = (*self.text_mac).clone();
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(signature).is_ok()
    }

    /// Whether `secret` is this credential's secret text (Basic scheme), in constant time.
    pub(super) fn basic_secret_matches(&self, secret: &str) -> bool {
        bool::from(self.basic_digest.ct_eq(&sha256(secret.as_bytes())))
    }

    fn same_credential(&self, other: &Self) -> bool {
        self.key == other.key && bool::from(self.basic_digest.ct_eq(&other.basic_digest))
    }
}

/// The set of credentials callbacks are verified against.
///
/// Keys are matched ASCII-case-insensitively (Sinch keys are GUIDs; the legacy Sinch server SDK
/// compares them as GUIDs). A key may appear several times with different secrets: during a
/// secret rotation, configure old and new secret and a request signed with either is accepted.
#[derive(Clone, Default)]
pub struct KeyRing {
    creds: Vec<AppCredential>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys())
            .field("credentials", &self.creds.len())
            .finish()
    }
}

impl KeyRing {
    /// An empty ring (every verification is refused with [`super::RefusalReason::NoKeysConfigured`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring of the given credentials (exact duplicates are dropped).
    #[cfg(test)]
    pub(crate) fn from_credentials(creds: impl IntoIterator<Item = AppCredential>) -> Self {
        let mut ring = Self::new();
        for c in creds {
            ring.add(c);
        }
        ring
    }

    /// Adds a credential; an identical key+secret pair already present is not added twice.
    pub fn add(&mut self, cred: AppCredential) {
        if !self.creds.iter().any(|c| c.same_credential(&cred)) {
            self.creds.push(cred);
        }
    }

    /// Parses a list of credentials: `key1:secret1,key2:secret2`.
    ///
    /// Entries are separated by `,` or whitespace (newlines allowed); empty entries are ignored,
    /// so an empty string gives an empty ring. Each entry is split at its first `:` into key and
    /// base64 secret (secrets contain `+`, `/`, `=` but never `:` or `,`). The same key may occur
    /// twice with different secrets (rotation). Errors name the entry position or key, never a
    /// secret.
    pub fn parse_list(s: &str) -> Result<Self, CredentialError> {
        let mut ring = Self::new();
        let entries = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let (key, secret) = entry
                .split_once(':')
                .ok_or(CredentialError::MalformedListEntry { position: i + 1 })?;
            if key.is_empty() || secret.is_empty() {
                return Err(CredentialError::MalformedListEntry { position: i + 1 });
            }
            ring.add(AppCredential::new(key, secret)?);
        }
        Ok(ring)
    }

    /// True when no credential is configured.
    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }

    /// Number of credentials (a rotated key counts once per secret).
    pub fn len(&self) -> usize {
        self.creds.len()
    }

    /// The distinct application keys, in configuration order.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for c in &self.creds {
            if !keys.contains(&c.key()) {
                keys.push(c.key());
            }
        }
        keys
    }

    /// The credential svamlgate signs its own requests with (the canary): the first configured.
    pub fn signing_credential(&self) -> Option<&AppCredential> {
        self.creds.first()
    }

    /// Every credential, in configuration order.
    pub(super) fn all(&self) -> impl Iterator<Item = &AppCredential> {
        self.creds.iter()
    }

    /// Keys configured more than once with different secrets: a rotation in progress, or a
    /// mistake (`svamlgate doctor` warns).
    pub fn repeated_keys(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        let mut repeated: Vec<&str> = Vec::new();
        for c in &self.creds {
            if seen.iter().any(|k| k.eq_ignore_ascii_case(&c.key)) {
                if !repeated.iter().any(|k| k.eq_ignore_ascii_case(&c.key)) {
                    repeated.push(&c.key);
                }
            } else {
                seen.push(&c.key);
            }
        }
        repeated
    }

    /// The credentials for `key` (ASCII-case-insensitive): one, or several while it is rotated.
    pub(super) fn matching<'s>(
        &'s self,
        key: &'s str,
    ) -> impl Iterator<Item = &'s AppCredential> + 's {
        self.creds
            .iter()
            .filter(move |c| c.key.eq_ignore_ascii_case(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::{V1_KEY, V1_SECRET};

    #[test]
    fn v7_invalid_base64_secret_is_refused_at_configuration() {
        let err = AppCredential::new("app-key", "app-secret").unwrap_err();
        assert_eq!(
            err,
            CredentialError::SecretNotBase64 {
                key: "app-key".to_owned()
            }
        );
        let text = err.to_string();
        assert!(text.contains("`app-key`"), "{text}");
        assert!(!text.contains("app-secret"), "{text}");
        assert!(text.contains("not valid base64"), "{text}");
    }

    #[test]
    fn credential_validation_and_redaction() {
        assert_eq!(
            AppCredential::new(" ", V1_SECRET).unwrap_err(),
            CredentialError::EmptyKey
        );
        assert_eq!(
            AppCredential::new("a b", V1_SECRET).unwrap_err(),
            CredentialError::InvalidKey { key: "a b".into() }
        );
        assert_eq!(
            AppCredential::new("a:b", V1_SECRET).unwrap_err(),
            CredentialError::InvalidKey { key: "a:b".into() }
        );
        assert_eq!(
            AppCredential::new("k", "  ").unwrap_err(),
            CredentialError::EmptySecret { key: "k".into() }
        );
        // Strict: missing padding and URL-safe alphabet are refused.
        for bad in [
            "BeIukql3pTKJ8RGL5zo0DA",
            "BeIukql3pTKJ8RGL5zo0DA=",
            "ab-_",
            "====",
        ] {
            assert_eq!(
                AppCredential::new("k", bad).unwrap_err(),
                CredentialError::SecretNotBase64 { key: "k".into() },
                "{bad}"
            );
        }
        // Surrounding whitespace (e.g. a trailing newline from a secrets file) is ignored.
        let cred = AppCredential::new(" k ", "BeIukql3pTKJ8RGL5zo0DA==\n").unwrap();
        assert_eq!(cred.key(), "k");
        let dbg = format!("{cred:?}");
        assert!(
            dbg.contains("<redacted>") && !dbg.contains("BeIukql3"),
            "{dbg}"
        );
        let ring = KeyRing::from_credentials([cred]);
        let dbg = format!("{ring:?}");
        assert!(dbg.contains("\"k\"") && !dbg.contains("BeIukql3"), "{dbg}");
    }

    #[test]
    fn key_list_format() {
        let ring = KeyRing::parse_list(&format!(
            "{V1_KEY}:{V1_SECRET}, my-key-id:bXkta2V5LXNlY3JldA==\n\n{V1_KEY}:JViE5vDor0Sw3WllZka15Q==,"
        ))
        .unwrap();
        assert_eq!(ring.keys(), vec![V1_KEY, "my-key-id"]);
        assert_eq!(ring.len(), 3);
        assert!(ring.matching("MY-KEY-ID").next().is_some());
        // Exact duplicates collapse.
        let dup = KeyRing::parse_list("k:bXk=,k:bXk=").unwrap();
        assert_eq!(dup.len(), 1);
        assert!(KeyRing::parse_list("").unwrap().is_empty());
        assert!(KeyRing::parse_list(" , \n").unwrap().is_empty());
        assert_eq!(
            KeyRing::parse_list("k:bXk=,c2VjcmV0").unwrap_err(),
            CredentialError::MalformedListEntry { position: 2 }
        );
        assert_eq!(
            KeyRing::parse_list(":bXk=").unwrap_err(),
            CredentialError::MalformedListEntry { position: 1 }
        );
        let err = KeyRing::parse_list("good:bXk=,bad:not-base64!").unwrap_err();
        assert_eq!(err, CredentialError::SecretNotBase64 { key: "bad".into() });
        assert!(!err.to_string().contains("not-base64!"));
        let err = KeyRing::parse_list("c2VjcmV0").unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
