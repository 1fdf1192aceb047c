//! Authentication of requests to the Calling API: Sinch's signed-request scheme (the same HMAC as
//! callbacks, computed by [`crate::signature::sign`] over the API path with an `x-timestamp`
//! header), or Basic when configured (`SINCH_API_BASIC_AUTH`).
//!
//! What is signed, exactly as sent:
//! * the method, upper-case;
//! * `Content-MD5` of the body, empty without a body;
//! * the content-type: `application/json` with a body, empty without one (no header is sent then,
//!   as Sinch's Java and .NET SDKs do);
//! * `x-timestamp:` and the header's value (UTC, milliseconds, `Z`);
//! * the path, no host, no query (svamlgate sends none).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use time::OffsetDateTime;

use crate::outcome::AuthScheme;
use crate::secret::Secret;
use crate::signature::{self, AppCredential, CredentialError};

/// Content type of every request body svamlgate sends to Sinch.
pub const JSON: &str = "application/json";

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// `authorization: application <key>:<signature>` plus `x-timestamp`.
    Signed(AppCredential),
    /// `authorization: Basic base64(key:secret)` (header value kept as a secret).
    Basic(Secret),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Signed(c) => write!(f, "Signed({})", c.key()),
            Auth::Basic(_) => f.write_str("Basic([redacted])"),
        }
    }
}

/// Headers that authenticate one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    /// Value of `authorization`.
    pub authorization: Secret,
    /// Value of `x-timestamp` (signed scheme only).
    pub x_timestamp: Option<String>,
}

impl Auth {
    /// Builds the authentication from the application key and base64 secret. The secret is
    /// checked as for callbacks (strict base64) in both schemes.
    pub fn new(key: &str, secret_b64: &str, basic: bool) -> Result<Auth, CredentialError> {
        let cred = AppCredential::new(key, secret_b64)?;
        if basic {
            let pair = format!("{}:{}", cred.key(), secret_b64.trim());
            Ok(Auth::Basic(Secret::new(format!(
                "Basic {}",
                STANDARD.encode(pair)
            ))))
        } else {
            Ok(Auth::Signed(cred))
        }
    }

    /// `signed` or `basic`, as stored in `outbound_attempts.auth_scheme`.
    pub fn scheme(&self) -> AuthScheme {
        match self {
            Auth::Signed(_) => AuthScheme::Signed,
            Auth::Basic(_) => AuthScheme::Basic,
        }
    }

    /// The headers for one request at time `now`. `body` is `None` for requests without one.
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> AuthHeaders {
        match self {
            Auth::Basic(value) => AuthHeaders {
                authorization: value.clone(),
                x_timestamp: None,
            },
            Auth::Signed(cred) => {
                let ts = signature::format_timestamp(now);
                let (content_type, bytes) = match body {
                    Some(b) => (Some(JSON), b),
                    None => (None, &[][..]),
                };
                let value = signature::sign(cred, method, path, content_type, &ts, bytes);
                AuthHeaders {
                    authorization: Secret::new(value),
                    x_timestamp: Some(ts),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_KEY: &str = "5F5C418A0F914BBC8234A9BF5EDDAD97";
    const V2_SECRET: &str = "JViE5vDor0Sw3WllZka15Q==";
    const V2_TS: &str = "2014-06-04T13:41:58Z";

    fn signature_of(method: &str, path: &str, ct: &str, body: &[u8]) -> String {
        let cred = AppCredential::new(V2_KEY, V2_SECRET).unwrap();
        let sts = signature::string_to_sign(method, &signature::content_md5(body), ct, V2_TS, path);
        cred.signature(&sts)
    }

    #[test]
    fn vector_v2_signed_request() {
        let body = br#"{"message":"Hello world"}"#;
        assert_eq!(signature::content_md5(body), "jANzQ+rgAHyf1MWQFSwvYw==");
        assert_eq!(
            signature_of("POST", "/v1/sms/+46700000000", JSON, body),
            "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM="
        );
    }

    #[test]
    fn calling_api_vectors() {
        let c1 = br#"{"method":"ttsCallout","ttsCallout":{"cli":"+14045001000","destination":{"type":"number","endpoint":"+14045005000"},"locale":"en-US","text":"Hello, this is a call from Sinch."}}"#;
        assert_eq!(signature::content_md5(c1), "G0putvD4si3GCkH9r34vAQ==");
        assert_eq!(
            signature_of("POST", "/calling/v1/callouts", JSON, c1),
            "xVrmUj3ihqI2ixhtAVA65IpfnGFPm0lqfpGwsVbEQow="
        );
        let path = "/calling/v1/calls/id/adf92089-df2a-4f14-a377-1e975f588fe4";
        assert_eq!(
            signature_of("GET", path, "", b""),
            "hQs4vtuIs7tqECjxurDdRErmq9oiuWxbOeeuqeFdQ+g="
        );
        assert_eq!(
            signature_of(
                "POST",
                "/calling/v1/callouts",
                JSON,
                br#"{"message":"Hello world"}"#
            ),
            "aS9fG2smJx6MIhPJDSNiaDQ1D3+e493HuL+VVA9pqyM="
        );
    }

    #[test]
    fn headers_sign_what_is_sent() {
        let auth = Auth::new(V2_KEY, V2_SECRET, false).unwrap();
        assert_eq!(auth.scheme(), AuthScheme::Signed);
        let now = time::macros::datetime!(2014-06-04 13:41:58 UTC);
        let body = br#"{"message":"Hello world"}"#;
        let h = auth.headers("post", "/v1/sms/+46700000000", Some(body), now);
        assert_eq!(h.x_timestamp.as_deref(), Some("2014-06-04T13:41:58.000Z"));
        let sts = signature::string_to_sign(
            "POST",
            "jANzQ+rgAHyf1MWQFSwvYw==",
            JSON,
            "2014-06-04T13:41:58.000Z",
            "/v1/sms/+46700000000",
        );
        let cred = AppCredential::new(V2_KEY, V2_SECRET).unwrap();
        assert_eq!(
            h.authorization.expose(),
            format!("application {V2_KEY}:{}", cred.signature(&sts))
        );
        // Without a body: empty MD5 and content-type lines.
        let h = auth.headers("GET", "/calling/v1/conferences/id/c1", None, now);
        let sts = signature::string_to_sign(
            "GET",
            "",
            "",
            "2014-06-04T13:41:58.000Z",
            "/calling/v1/conferences/id/c1",
        );
        assert!(h.authorization.expose().ends_with(&cred.signature(&sts)));
        assert_eq!(format!("{auth:?}"), format!("Signed({V2_KEY})"));
    }

    #[test]
    fn basic_only_when_asked() {
        let auth = Auth::new(V2_KEY, V2_SECRET, true).unwrap();
        assert_eq!(auth.scheme(), AuthScheme::Basic);
        let h = auth.headers("GET", "/x", None, OffsetDateTime::now_utc());
        assert_eq!(
            h.authorization.expose(),
            "Basic NUY1QzQxOEEwRjkxNEJCQzgyMzRBOUJGNUVEREFEOTc6SlZpRTV2RG9yMFN3M1dsbFprYTE1UT09"
        );
        assert_eq!(h.x_timestamp, None);
        assert!(!format!("{auth:?} {h:?}").contains("NUY1"));
        assert!(Auth::new(V2_KEY, "not base64!", false).is_err());
    }
}
