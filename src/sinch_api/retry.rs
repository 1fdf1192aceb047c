//! When to try a request to Sinch again, and how long to wait first.
//!
//! * **Retried:** 429, 5xx and network errors, with exponential backoff and jitter
//!   ([`backoff`]); a `Retry-After` from Sinch is honoured ([`parse_retry_after`]) when it is
//!   no longer than the longest wait configured, otherwise svamlgate gives up at once and says so.
//! * **Never retried:** any other 4xx (the same request would fail the same way).
//! * **Callouts** are retried only when the request provably did not place a call
//!   ([`may_retry`]): no connection was made, or Sinch answered 429 or 503 (it refused to handle
//!   the request). A timeout or a broken exchange after the request was sent, and 500/502/504,
//!   are *not* retried for callouts: Sinch may have placed the call, and a second attempt could
//!   place a second one.

use std::time::Duration;

use time::OffsetDateTime;

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff of the first retry (before jitter).
    pub base: Duration,
    /// Longest single wait; also the longest Retry-After that is waited for.
    pub max_delay: Duration,
}

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Sinch answered with this HTTP status.
    Status(u16),
    /// No connection could be made (DNS, TCP, TLS, connect timeout): nothing was sent.
    Connect,
    /// No complete answer within the deadline after connecting: the request may have arrived.
    Timeout,
    /// The exchange broke after connecting: the request may have arrived.
    Io,
}

/// Whether an attempt that ended like this may be repeated. `callout` requests are only
/// repeated when Sinch provably did not act on them (see the module documentation).
pub fn may_retry(callout: bool, end: AttemptEnd) -> bool {
    match end {
        AttemptEnd::Status(429) | AttemptEnd::Connect => true,
        AttemptEnd::Status(503) => true,
        AttemptEnd::Status(s) if (500..600).contains(&s) => !callout,
        AttemptEnd::Status(_) => false,
        AttemptEnd::Timeout | AttemptEnd::Io => !callout,
    }
}

/// Backoff before retry number `retry` (1 for the first retry): `base · 2^(retry-1)`, capped at
/// `max_delay`, with "equal jitter": half of it fixed, the other half scaled by `jitter`
/// (a number in `[0, 1]`; values outside are clamped).
pub fn backoff(policy: &RetryPolicy, retry: u32, jitter: f64) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(20);
    let full = policy.base.saturating_mul(factor).min(policy.max_delay);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A random number in `[0, 1)` for [`backoff`] (from the OS random source, through UUIDv4).
pub fn jitter() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64; // 53 random bits
    bits as f64 / (1u64 << 53) as f64
}

/// Parses `Retry-After`: delta-seconds (`120`) or an HTTP-date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, relative to `now`; a date in the past is zero).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<u64>()
            .ok()
            .map(|s| Duration::from_secs(s.min(86_400 * 365)));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, &format)
        .ok()?
        .assume_utc();
    let delta = at - now;
    Some(if delta.is_negative() {
        Duration::ZERO
    } else {
        delta.unsigned_abs()
    })
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Stop: success, a final error, or not safe to repeat.
    Done,
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Retryable, but out of attempts or Sinch asked for a longer wait than allowed.
    GiveUp(String),
}

/// Decides after attempt number `attempt` (1-based) that ended with `end`; `retry_after` is
/// Sinch's `Retry-After`, parsed.
pub fn next(
    policy: &RetryPolicy,
    callout: bool,
    attempt: u32,
    end: AttemptEnd,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Next {
    let success = matches!(end, AttemptEnd::Status(s) if (200..300).contains(&s));
    if success || !may_retry(callout, end) {
        return Next::Done;
    }
    if attempt >= policy.max_attempts.max(1) {
        return Next::GiveUp(format!("gave up after {attempt} attempt(s)"));
    }
    if let Some(wait) = retry_after {
        if wait > policy.max_delay {
            return Next::GiveUp(format!(
                "Sinch asked to retry after {} s, longer than SINCH_API_RETRY_MAX_MS allows",
                wait.as_secs()
            ));
        }
    }
    let wait = backoff(policy, attempt, jitter).max(retry_after.unwrap_or_default());
    Next::RetryAfter(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(500),
        max_delay: Duration::from_secs(8),
    };

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        assert_eq!(backoff(&P, 1, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(&P, 1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(&P, 2, 0.5), Duration::from_millis(750));
        assert_eq!(backoff(&P, 3, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&P, 10, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&P, u32::MAX, 2.0), Duration::from_secs(8));
        assert_eq!(backoff(&P, 0, 1.0), Duration::from_millis(500));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
            let d = backoff(&P, 2, j);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = time::macros::datetime!(1994-11-06 08:49:00 UTC);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(37))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:48:37 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
        assert!(parse_retry_after("99999999999999999999", now).is_none());
    }

    #[test]
    fn what_is_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert!(may_retry(false, AttemptEnd::Status(s)), "{s}");
        }
        for s in [200, 204, 400, 401, 402, 403, 404, 409, 422] {
            assert!(!may_retry(false, AttemptEnd::Status(s)), "{s}");
            assert!(!may_retry(true, AttemptEnd::Status(s)), "{s}");
        }
        assert!(may_retry(false, AttemptEnd::Timeout));
        assert!(may_retry(false, AttemptEnd::Io));
        // Callouts: only when no call can have been placed.
        assert!(may_retry(true, AttemptEnd::Connect));
        assert!(may_retry(true, AttemptEnd::Status(429)));
        assert!(may_retry(true, AttemptEnd::Status(503)));
        for end in [
            AttemptEnd::Timeout,
            AttemptEnd::Io,
            AttemptEnd::Status(500),
            AttemptEnd::Status(502),
            AttemptEnd::Status(504),
        ] {
            assert!(!may_retry(true, end), "{end:?}");
        }
    }

    #[test]
    fn next_steps() {
        let st = AttemptEnd::Status;
        assert_eq!(next(&P, false, 1, st(200), None, 0.0), Next::Done);
        assert_eq!(next(&P, false, 1, st(404), None, 0.0), Next::Done);
        assert_eq!(
            next(&P, false, 1, st(500), None, 0.0),
            Next::RetryAfter(Duration::from_millis(250))
        );
        // Retry-After wins when longer than the backoff.
        assert_eq!(
            next(&P, true, 1, st(429), Some(Duration::from_secs(2)), 0.0),
            Next::RetryAfter(Duration::from_secs(2))
        );
        assert!(matches!(
            next(&P, true, 1, st(429), Some(Duration::from_secs(60)), 0.0),
            Next::GiveUp(m) if m.contains("60 s")
        ));
        assert!(matches!(
            next(&P, false, 4, st(503), None, 0.0),
            Next::GiveUp(_)
        ));
        assert_eq!(
            next(&P, true, 1, AttemptEnd::Timeout, None, 0.0),
            Next::Done
        );
        let one = RetryPolicy {
            max_attempts: 0,
            ..P
        };
        assert!(matches!(
            next(&one, false, 1, st(503), None, 0.0),
            Next::GiveUp(_)
        ));
    }
}
