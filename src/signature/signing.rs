//! The signing scheme Sinch uses in both directions: Content-MD5, the string to sign, the
//! `authorization` header ([`sign`]), and the path that is signed ([`signed_path`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt;

use super::AppCredential;

/// `Base64(MD5(body))`, or `""` for an empty body.
pub fn content_md5(body: &[u8]) -> String {
    if body.is_empty() {
        String::new()
    } else {
        STANDARD.encode(Md5::digest(body))
    }
}

/// Hex SHA-256 of the body (lower-case), for duplicate detection and refusal records.
pub fn body_digest(body: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(body) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The string to sign: `METHOD\nContent-MD5\ncontent-type\nx-timestamp:TS\npath` (method
/// upper-cased, everything else verbatim, no trailing newline).
pub fn string_to_sign(
    method: &str,
    content_md5: &str,
    content_type: &str,
    x_timestamp: &str,
    path: &str,
) -> String {
    format!(
        "{}\n{content_md5}\n{content_type}\nx-timestamp:{x_timestamp}\n{path}",
        method.to_ascii_uppercase()
    )
}

/// Signs a request and returns the full `authorization` header value
/// `application <key>:<signature>`.
///
/// The scheme word is lower-case `application`, as Sinch's Voice callback documentation shows
/// and the only form the .NET SDK's validator accepts. `x_timestamp` must be sent verbatim as
/// the `x-timestamp` header (see [`crate::timestamp::format`]); `path` is the URL path the receiver sees.
pub fn sign(
    cred: &AppCredential,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    x_timestamp: &str,
    body: &[u8],
) -> String {
    let sts = string_to_sign(
        method,
        &content_md5(body),
        content_type.unwrap_or(""),
        x_timestamp,
        path,
    );
    format!("application {}:{}", cred.key(), cred.signature(&sts))
}

/// The path Sinch signed, from the path svamlgate received.
///
/// Sinch signs the **path of the public callback URL** (no scheme, host, query or fragment).
/// * The query string and fragment are removed, as Sinch's Java SDK does
///   (`URI.getPath()`); Sinch's documentation defines the signed resource as the path only.
///   Unlike the Java SDK, the path is *not* percent-decoded: it is used byte for byte.
/// * `public_prefix`: if a reverse proxy publishes svamlgate under e.g.
///   `https://host/voice/callback` and strips `/voice` before forwarding `/callback`, configure
///   `Some("/voice")` and it is prepended again. Leading/trailing slashes of the prefix are
///   normalised (`"voice/"` = `"/voice"`); `None`, `""` and `"/"` mean no prefix. The prefix is
///   always prepended (a proxy that strips it never forwards it).
/// * An absolute URL (`https://host/p?q`) is reduced to its path; an empty path becomes `/`.
pub fn signed_path(request_path: &str, public_prefix: Option<&str>) -> String {
    let mut path = request_path;
    for scheme in ["https://", "http://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            path = rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("");
        }
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let prefix = public_prefix.map(str::trim).unwrap_or("").trim_matches('/');
    let mut out = String::with_capacity(prefix.len() + path.len() + 2);
    if !prefix.is_empty() {
        out.push('/');
        out.push_str(prefix);
    }
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::{v1_auth, V1_BODY, V1_KEY, V1_PATH, V1_SECRET, V1_SIG, V1_TS};

    #[test]
    fn v1_string_to_sign_and_signature() {
        assert_eq!(content_md5(V1_BODY), "REWF+X220L4/Gw1spXOU7g==");
        let sts = string_to_sign(
            "POST",
            &content_md5(V1_BODY),
            "application/json",
            V1_TS,
            V1_PATH,
        );
        assert_eq!(
            sts,
            "POST\nREWF+X220L4/Gw1spXOU7g==\napplication/json\nx-timestamp:2014-09-24T10:59:41Z\n/sinch/callback/ace"
        );
        let cred = AppCredential::new(V1_KEY, V1_SECRET).unwrap();
        assert_eq!(cred.signature(&sts), V1_SIG);
        assert_eq!(
            sign(
                &cred,
                "POST",
                V1_PATH,
                Some("application/json"),
                V1_TS,
                V1_BODY
            ),
            v1_auth()
        );
    }

    #[test]
    fn signed_path_semantics() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("/sinch/callback/ace", None, "/sinch/callback/ace"),
            ("/sinch/callback/ace?x=1&y=2", None, "/sinch/callback/ace"),
            ("/cb#frag", None, "/cb"),
            ("/callback", Some("/voice"), "/voice/callback"),
            ("/callback", Some("voice/"), "/voice/callback"),
            ("/callback?q", Some("/a/b/"), "/a/b/callback"),
            ("/callback", Some(""), "/callback"),
            ("/callback", Some("/"), "/callback"),
            ("", None, "/"),
            ("?only=query", None, "/"),
            ("", Some("/voice"), "/voice/"),
            ("callback", None, "/callback"),
            ("/a%20b/c", None, "/a%20b/c"),
            ("https://host.example/x/y?z", None, "/x/y"),
            ("https://host.example", None, "/"),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(signed_path(path, *prefix), *want, "{path:?} {prefix:?}");
        }
    }

    #[test]
    fn body_digest_is_hex_sha256() {
        assert_eq!(
            body_digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            body_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
