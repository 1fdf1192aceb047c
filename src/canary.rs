//! The canary: with `SVAMLGATE_PUBLIC_URL` set, svamlgate posts a correctly signed synthetic ICE to
//! its own public callback URL every `SVAMLGATE_CANARY_INTERVAL_SECS` (60 s), through whatever
//! proxy, load balancer and TLS sit in front, and measures the whole path: DNS, TCP, TLS and the
//! certificate's expiry, the proxy, the signature and the gate.
//!
//! The canary's call id starts with [`CALLID_PREFIX`]: it is answered like any call, then recorded
//! with that call id (the `canary_callbacks` view picks it out)
//! and counted in `svamlgate_canary_callbacks_total` instead of `svamlgate_callbacks_total`; it is
//! never held as a call in progress.
//!
//! A failure, or an answer slower than `SVAMLGATE_CANARY_SLOW_MS`, or a certificate expiring
//! within `SVAMLGATE_CANARY_CERT_DAYS`, makes `/readyz` `degraded` with the run in
//! `checks.canary` (with the signature explanation when the signature is the cause), and is what
//! [`CanaryStatus::alert`] returns for alerting; `svamlgate_canary_up` is 0 meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::app::AppState;
use crate::signature::AppCredential;
use crate::svaml::Target;
use crate::verification::canary_status::CanaryRun;

/// The call id prefix reserved for the canary.
pub const CALLID_PREFIX: &str = "svamlgate-canary-";

/// Deadline of each network stage (DNS, connect, TLS).
const STAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// Whether a call id is the canary's.
pub fn is_canary(callid: Option<&str>) -> bool {
    callid.is_some_and(|c| c.starts_with(CALLID_PREFIX))
}

/// The public URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// https.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, as requested.
    pub target: String,
    /// The path alone (what is signed).
    pub path: String,
}

/// Splits `http(s)://host[:port]/path[?query]`.
pub fn parse_public_url(url: &str) -> Result<PublicUrl, String> {
    let url = url.trim();
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("SVAMLGATE_PUBLIC_URL must start with https:// or http://".to_owned());
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let target = if target.starts_with('?') {
        format!("/{target}")
    } else {
        target
    };
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("SVAMLGATE_PUBLIC_URL has an unclosed [")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| "SVAMLGATE_PUBLIC_URL has a bad port")?,
            None => default_port,
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| "SVAMLGATE_PUBLIC_URL has a bad port")?,
            ),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return Err("SVAMLGATE_PUBLIC_URL has no host".to_owned());
    }
    let path = crate::signature::signed_path(&target, None);
    Ok(PublicUrl {
        tls,
        host,
        port,
        target,
        path,
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Starts the periodic canary when SVAMLGATE_PUBLIC_URL is set (the first run one interval after start).
pub fn spawn(state: &actix_web::web::Data<AppState>) {
    if state.config.verification.public_url.is_none() {
        return;
    }
    let weak = Arc::downgrade(&state.clone().into_inner());
    let every = Duration::from_secs(state.config.verification.canary_interval_secs);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(state) = weak.upgrade() else { return };
            run_once(&state).await;
        }
    });
}

/// Runs the canary once, records the result in [`CanaryStatus`], counts and logs it.
pub async fn run_once(state: &AppState) -> CanaryRun {
    let started = Instant::now();
    let mut run = CanaryRun {
        at: OffsetDateTime::now_utc(),
        ok: false,
        failed_stage: None,
        message: String::new(),
        explanation: None,
        status: None,
        reference: None,
        dns_ms: None,
        connect_ms: None,
        tls_ms: None,
        answer_ms: None,
        total_ms: 0.0,
        cert_expires_at: None,
        consecutive_failures: 0,
    };
    let outcome = probe(state, &mut run).await;
    run.total_ms = ms(started.elapsed());
    match outcome.and_then(|()| in_time_and_certified(state, &run, started.elapsed())) {
        Ok(()) => {
            run.ok = true;
            run.message = format!("answered 200 in {:.0} ms", run.total_ms);
        }
        Err((stage, message)) => {
            run.failed_stage = Some(stage.to_owned());
            run.message = message;
        }
    }
    observe(state, &run, started.elapsed());
    state.verification.canary.record(run.clone());
    if run.ok {
        tracing::debug!(total_ms = run.total_ms, "canary ok");
    } else {
        tracing::warn!(
            stage = run.failed_stage.as_deref().unwrap_or("ok"),
            message = %run.message,
            explanation = run.explanation.as_deref().unwrap_or(""),
            "canary through SVAMLGATE_PUBLIC_URL failed"
        );
    }
    state.verification.canary.last().unwrap_or(run)
}

/// A run that answered is still a failure when it took longer than `SVAMLGATE_CANARY_SLOW_MS`
/// or the certificate expires within `SVAMLGATE_CANARY_CERT_DAYS`.
fn in_time_and_certified(state: &AppState, run: &CanaryRun, took: Duration) -> Result<(), Failure> {
    let v = &state.config.verification;
    if took > Duration::from_millis(v.canary_slow_ms) {
        return Err((
            "slow",
            format!(
                "answered in {:.0} ms, more than SVAMLGATE_CANARY_SLOW_MS={}",
                run.total_ms, v.canary_slow_ms
            ),
        ));
    }
    if let Some(expires) = run.cert_expires_at {
        let left = expires - OffsetDateTime::now_utc();
        if left < time::Duration::days(i64::try_from(v.canary_cert_days).unwrap_or(14)) {
            return Err((
                "certificate",
                format!(
                    "the certificate of {} expires in {} days ({})",
                    v.public_url.as_deref().unwrap_or(""),
                    left.whole_days(),
                    crate::timestamp::format(expires)
                ),
            ));
        }
    }
    Ok(())
}

/// Counts the run by result and times it, in total and per stage reached.
fn observe(state: &AppState, run: &CanaryRun, took: Duration) {
    let m = &state.metrics;
    let result = run.failed_stage.as_deref().unwrap_or("ok");
    m.inc("svamlgate_canary_runs_total", &[("result", result)]);
    m.observe(
        "svamlgate_canary_duration_seconds",
        &[("stage", "total")],
        took,
    );
    for (stage, value) in [
        ("dns", run.dns_ms),
        ("connect", run.connect_ms),
        ("tls", run.tls_ms),
        ("answer", run.answer_ms),
    ] {
        if let Some(v) = value {
            m.observe(
                "svamlgate_canary_duration_seconds",
                &[("stage", stage)],
                Duration::from_secs_f64(v / 1000.0),
            );
        }
    }
}

type Failure = (&'static str, String);

/// One signed ICE through the public URL, stage by stage (DNS, connect, TLS, the answer), each
/// timed into `run`; then what the answer says.
async fn probe(state: &AppState, run: &mut CanaryRun) -> Result<(), Failure> {
    let v = &state.config.verification;
    let url = v
        .public_url
        .as_deref()
        .ok_or(("config", "SVAMLGATE_PUBLIC_URL is not set".to_owned()))?;
    let url = parse_public_url(url).map_err(|e| ("config", e))?;
    let cred = state.keys.signing_credential().ok_or((
        "config",
        "no application key is configured to sign the canary with".to_owned(),
    ))?;
    let tcp = connect(&url, run).await?;
    let request = signed_request(&url, cred);
    let deadline = Duration::from_millis(v.canary_slow_ms.saturating_mul(3)).max(STAGE_TIMEOUT);
    let answer = if url.tls {
        let t = Instant::now();
        let tls = tokio::time::timeout(STAGE_TIMEOUT, tls_connect(&url.host, tcp))
            .await
            .map_err(|_| ("tls", "TLS handshake timed out".to_owned()))?
            .map_err(|e| ("tls", e))?;
        run.tls_ms = Some(ms(t.elapsed()));
        run.cert_expires_at = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| certificate_not_after(c.as_ref()));
        exchange(tls, &request, deadline, run).await?
    } else {
        exchange(tcp, &request, deadline, run).await?
    };
    judge_answer(state, run, answer)
}

/// Resolves the public URL's host and connects to it, timing both into `run`.
async fn connect(url: &PublicUrl, run: &mut CanaryRun) -> Result<tokio::net::TcpStream, Failure> {
    let t = Instant::now();
    let addr = tokio::time::timeout(
        STAGE_TIMEOUT,
        tokio::net::lookup_host((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| ("dns", format!("resolving {} timed out", url.host)))?
    .map_err(|e| ("dns", format!("resolving {}: {e}", url.host)))?
    .next()
    .ok_or(("dns", format!("{} resolves to no address", url.host)))?;
    run.dns_ms = Some(ms(t.elapsed()));

    let t = Instant::now();
    let tcp = tokio::time::timeout(STAGE_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| ("connect", format!("connecting to {addr} timed out")))?
        .map_err(|e| ("connect", format!("connecting to {addr}: {e}")))?;
    run.connect_ms = Some(ms(t.elapsed()));
    Ok(tcp)
}

/// The canary's ICE as Sinch would send it: an HTTP/1.1 request signed with `cred`, asking the
/// server to close.
fn signed_request(url: &PublicUrl, cred: &AppCredential) -> Vec<u8> {
    let body = ice_body(cred.key());
    let ts = crate::timestamp::format(OffsetDateTime::now_utc());
    let ct = "application/json; charset=utf-8";
    let auth = crate::signature::sign(cred, "POST", &url.path, Some(ct), &ts, &body);
    let host = if url.port == if url.tls { 443 } else { 80 } {
        url.host.clone()
    } else if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut request = format!(
        "POST {} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {ct}\r\nx-timestamp: {ts}\r\n\
         authorization: {auth}\r\ncontent-length: {}\r\nuser-agent: svamlgate-canary\r\n\
         connection: close\r\n\r\n",
        url.target,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// What the answer says: its status and reference into `run` (with the signature explanation
/// when refused); a 200 whose reply passes the gate is the only success.
fn judge_answer(state: &AppState, run: &mut CanaryRun, answer: Answer) -> Result<(), Failure> {
    let (status, headers, body) = answer;
    run.status = Some(status);
    run.reference = header(&headers, "x-svamlgate-reference");
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    if run.reference.is_none() {
        run.reference = json
            .as_ref()
            .and_then(|j| j.get("reference"))
            .and_then(|r| r.as_str())
            .map(str::to_owned);
    }
    if status == 401 {
        run.explanation = run
            .reference
            .as_deref()
            .and_then(|r| state.verification.explanation(r))
            .map(|e| e.line());
        let code = json
            .as_ref()
            .and_then(|j| j.get("errorCode"))
            .and_then(|c| c.as_u64())
            .unwrap_or(0);
        return Err((
            "signature",
            format!("the canary's signature was refused ({code}) at the public URL"),
        ));
    }
    if status != 200 {
        return Err((
            "status",
            format!("the public URL answered {status} instead of 200"),
        ));
    }
    let reply = json.ok_or(("gate", "the answer is not JSON".to_owned()))?;
    let verdict = state.gate.pass(Target::Ice, reply);
    if !verdict.passed {
        return Err((
            "gate",
            format!(
                "the reply received through the public URL does not pass the gate ({} errors)",
                verdict.report.error_count
            ),
        ));
    }
    Ok(())
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn ice_body(key: &str) -> Vec<u8> {
    serde_json::json!({
        "event": "ice",
        "callid": format!("{CALLID_PREFIX}{}", uuid::Uuid::now_v7()),
        "timestamp": crate::timestamp::format(OffsetDateTime::now_utc()),
        "version": 1,
        "cli": "+10000000000",
        "to": {"type": "did", "endpoint": "+10000000000"},
        "domain": "pstn",
        "applicationKey": key,
        "originationType": "PSTN"
    })
    .to_string()
    .into_bytes()
}

async fn tls_connect(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}: {e}"))
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Writes the request and reads the whole answer (the request asks the server to close).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    deadline: Duration,
    run: &mut CanaryRun,
) -> Result<Answer, Failure> {
    let t = Instant::now();
    let io = async {
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || buf.len() > MAX_ANSWER {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    let raw = tokio::time::timeout(deadline, io)
        .await
        .map_err(|_| {
            (
                "request",
                format!("no answer within {} ms", deadline.as_millis()),
            )
        })?
        .map_err(|e| ("request", format!("sending the canary: {e}")))?;
    run.answer_ms = Some(ms(t.elapsed()));
    parse_answer(&raw).ok_or((
        "request",
        "the answer is not an HTTP/1.1 response".to_owned(),
    ))
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    }
    Some((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// One DER element: tag, contents, and what follows it.
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let contents = b.get(header..header.checked_add(len)?)?;
    Some((tag, contents, &b[header + len..]))
}

/// `notAfter` of an X.509 certificate (DER).
pub fn certificate_not_after(cert: &[u8]) -> Option<OffsetDateTime> {
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der(cert)? else {
        return None;
    };
    let (tag, _, mut rest) = der(tbs)?;
    if tag == 0xA0 {
        rest = der(rest)?.2; // the serial number after the version
    }
    rest = der(rest)?.2; // signature algorithm
    rest = der(rest)?.2; // issuer
    let (0x30, validity, _) = der(rest)? else {
        return None;
    };
    let not_before_rest = der(validity)?.2;
    let (tag, text, _) = der(not_before_rest)?;
    let text = std::str::from_utf8(text).ok()?;
    let full = match tag {
        0x17 => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            format!(
                "{}{}",
                if yy < 50 { 2000 + yy } else { 1900 + yy },
                text.get(2..)?
            )
        }
        0x18 => text.to_owned(),
        _ => return None,
    };
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]Z");
    time::PrimitiveDateTime::parse(&full, &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verification::canary_status::CanaryStatus;
    use base64::Engine as _;

    /// A self-signed certificate for CN=canary.test, valid until 2036-11-29 05:55:16 UTC.
    const CERT: &str = "MIICCDCCAXGgAwIBAgIURSeXjyK3Cxd2icasWPaCdYmdBHQwDQYJKoZIhvcNAQELBQAwFjEUMBIGA1UEAwwLY2FuYXJ5LnRlc3QwHhcNMjYxMjAyMDU1NTE2WhcNMzYxMTI5MDU1NTE2WjAWMRQwEgYDVQQDDAtjYW5hcnkudGVzdDCBnzANBgkqhkiG9w0BAQEFAAOBjQAwgYkCgYEApLa74TGevAwY7WZdMhNETIJ8u4Nwnm/XdnIJUI2t2N+i775/LoOjYpTql8a+CUY8rjnf+ceKzJwW97VoWgeLUk7KoAwkO43OrUSFM4aerWVP/S4LKEmAmxSl1Kp0xtRS27XMgMsaDvUkQ49zQe0ehkLSsiDn8uujHpxDKoe5vacCAwEAAaNTMFEwHQYDVR0OBBYEFP3B5XYITjsb9XUY9/zY38z82KBdMB8GA1UdIwQYMBaAFP3B5XYITjsb9XUY9/zY38z82KBdMA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQELBQADgYEAaIDEUzyNp6cT71Fz+KgdXiAJ8SNNSaDeniEeFh41ZQqVE1aIvUCk7KUWOFvTVdGafd5+ihyiQCBN0gttDyiX3+j+YU/I4IL5JtpHzokoi/l7M6nKvEVkbEg5bFSiJnxMfmUNDrcdfjS5zBOqsXoaNVA4rJrnIIpMS8KvSRWY0dU=";

    #[test]
    fn reads_the_expiry_of_a_certificate() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(CERT)
            .unwrap();
        assert_eq!(
            certificate_not_after(&der),
            Some(time::macros::datetime!(2036-11-29 05:55:16 UTC))
        );
        assert_eq!(certificate_not_after(&der[..40]), None);
        assert_eq!(certificate_not_after(b""), None);
    }

    #[test]
    fn public_url_parts() {
        let u = parse_public_url("https://voice.example.com/gw/sinch/callback?t=1").unwrap();
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.port), ("voice.example.com", 443));
        assert_eq!(u.target, "/gw/sinch/callback?t=1");
        assert_eq!(u.path, "/gw/sinch/callback");
        let u = parse_public_url("http://127.0.0.1:8081").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 8081, "/")
        );
        let u = parse_public_url("http://[::1]:9/cb").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert!(parse_public_url("ftp://x/").is_err());
        assert!(parse_public_url("http://:80/").is_err());
        assert!(parse_public_url("http://h:port/").is_err());
    }

    #[test]
    fn answers_plain_and_chunked() {
        let (s, h, b) = parse_answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Svamlgate-Reference: r1\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        assert_eq!(header(&h, "x-svamlgate-reference").as_deref(), Some("r1"));
        let (_, _, b) = parse_answer(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(b, b"{}");
        assert!(parse_answer(b"garbage").is_none());
    }

    #[test]
    fn canary_call_ids() {
        assert!(is_canary(Some("svamlgate-canary-1")));
        assert!(!is_canary(Some("callId")));
        assert!(!is_canary(None));
        let body: serde_json::Value = serde_json::from_slice(&ice_body("k")).unwrap();
        assert!(is_canary(body["callid"].as_str()));
    }

    #[test]
    fn status_alerts_and_counts_failures_in_a_row() {
        let s = CanaryStatus::default();
        assert!(s.alert().is_none());
        assert_eq!(s.gauges(), "");
        let run = CanaryRun {
            at: OffsetDateTime::now_utc(),
            ok: false,
            failed_stage: Some("signature".into()),
            message: "refused".into(),
            explanation: Some("matches if the path is `/gw/x`".into()),
            status: Some(401),
            reference: None,
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            answer_ms: None,
            total_ms: 3.0,
            cert_expires_at: None,
            consecutive_failures: 0,
        };
        s.record(run.clone());
        s.record(run.clone());
        assert_eq!(s.last().unwrap().consecutive_failures, 2);
        let alert = s.alert().unwrap();
        assert!(
            alert.contains("(signature)") && alert.contains("/gw/x"),
            "{alert}"
        );
        assert!(s.gauges().contains("svamlgate_canary_up 0"));
        s.record(CanaryRun { ok: true, ..run });
        assert!(s.alert().is_none());
        assert!(s.gauges().contains("svamlgate_canary_up 1"));
    }
}
