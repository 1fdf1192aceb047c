-- svamlgate: signature failures that explain themselves, report mode, bounded refusals, the canary.
-- Forward-only.

-- Why a signature was refused, in words, and what report mode let through.
ALTER TABLE refusals
    ADD COLUMN explanation   jsonb,
    ADD COLUMN cause         text,
    ADD COLUMN answered      boolean     NOT NULL DEFAULT false,
    ADD COLUMN summary_count bigint,
    ADD COLUMN first_at      timestamptz,
    ADD COLUMN last_at       timestamptz,
    ADD COLUMN peer          text;
COMMENT ON TABLE refusals IS
    'Callback requests whose signature check failed (bad, missing, stale, unknown key): attacks and misconfigurations. The body itself is not kept, only its digest. Each peer address and reason is recorded one by one up to SVAMLGATE_REFUSALS_PER_WINDOW per window; past that, one summary row per window (summary_count set) keeps the count, the first and last time and one sample.';
COMMENT ON COLUMN refusals.explanation IS 'Why, in words: {cause, message, fix, certain}. What variant of the request matches the signature (path prefix, trailing slash, percent-encoding, query string, content-type, another key, an undecoded secret), the clock difference for a stale timestamp, or what is certainly right when nothing matches. Never a secret or a signature. NULL when the reason needs no explanation or the row is a summary.';
COMMENT ON COLUMN refusals.cause IS 'explanation.cause, for grouping: path_prefix, path_rewritten, trailing_slash, percent_encoding, query_string, content_type, other_key, secret_not_decoded, body_changed, clock_skew, unknown_key, unexplained.';
COMMENT ON COLUMN refusals.answered IS 'true in report mode (SVAMLGATE_SIGNATURE_MODE=report): the callback was processed and answered normally despite the failure; errors.callback_id names its callback.';
COMMENT ON COLUMN refusals.summary_count IS 'Set on a summary row: how many refusals of this peer and reason the window had past the ones recorded one by one (this row is the first of them, as a sample). NULL on a row recorded one by one.';
COMMENT ON COLUMN refusals.first_at IS 'Summary row: the first refusal it counts.';
COMMENT ON COLUMN refusals.last_at IS 'Summary row: the last refusal it counts.';
COMMENT ON COLUMN refusals.peer IS 'Summary row: the peer address it counts (without port; * for peers past the tracked number).';
COMMENT ON COLUMN refusals.body_sha256 IS 'Hex SHA-256 of the body; empty when the request was refused from its headers before its body was read (no authorization, an unknown key).';
COMMENT ON COLUMN refusals.body_bytes IS 'Body length in bytes; the declared Content-Length when the body was not read.';
CREATE INDEX refusals_cause ON refusals (cause, received_at DESC) WHERE cause IS NOT NULL;

-- Report mode answers a callback whose signature failed.
COMMENT ON COLUMN callbacks.signature IS 'Whether the signature was checked. One of: verified (signed by a configured key), unverified (signature checking disabled by configuration), reported (the signature failed and report mode answered anyway; the failure is in refusals with answered = true). Refused requests are in refusals.';

-- The canary (SVAMLGATE_PUBLIC_URL) posts ICEs with a reserved call id prefix: kept apart by this
-- view (no new column: adding one would rewrite the callbacks table at start).
CREATE VIEW canary_callbacks AS
    SELECT id, reference, received_at, callid, http_status, reply_source, gate_verdict, latency_us
    FROM callbacks WHERE callid LIKE 'svamlgate-canary-%';
COMMENT ON VIEW canary_callbacks IS 'The canary''s own synthetic ICEs (call id prefix svamlgate-canary-), posted through SVAMLGATE_PUBLIC_URL; leave them out of call statistics.';
