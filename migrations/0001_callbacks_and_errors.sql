-- svamlgate: the callback log, the error log and the refusal log.
-- Forward-only. Never edit a migration that has been applied: add a new one.
-- Every table and column carries a COMMENT so that `\d+ table` in psql explains itself.

CREATE TABLE callbacks (
    id               uuid        PRIMARY KEY,
    reference        text        NOT NULL UNIQUE,
    received_at      timestamptz NOT NULL,
    event_type       text        NOT NULL,
    event_known      boolean     NOT NULL,
    callid           text,
    application_key  text,
    event_timestamp  timestamptz,
    raw_body         bytea       NOT NULL,
    body             jsonb,
    parse_warnings   jsonb,
    signature        text        NOT NULL,
    dedup_key        text,
    duplicate_of     uuid        REFERENCES callbacks (id),
    http_status      smallint,
    reply            jsonb,
    reply_source     text,
    fallback_reason  text,
    validation       jsonb,
    latency_us       bigint,
    remote_addr      text,
    path             text        NOT NULL
);

COMMENT ON TABLE callbacks IS
    'One row per callback request that Sinch (or anyone) POSTed to the callback path and that passed signature checks: the event as received and the reply svamlgate sent. Refused requests are in refusals.';
COMMENT ON COLUMN callbacks.id IS 'Row id (UUIDv7, so ordering by id is ordering by arrival).';
COMMENT ON COLUMN callbacks.reference IS 'Reference id of this callback; appears in logs and, for errors, in the response body.';
COMMENT ON COLUMN callbacks.received_at IS 'When svamlgate received the request (server clock).';
COMMENT ON COLUMN callbacks.event_type IS 'The event field as sent, lower-cased: ice, ace, dice, pie, notify, or the unknown value; empty when the body could not be parsed.';
COMMENT ON COLUMN callbacks.event_known IS 'false when event_type is not one of the five Sinch Voice v1 events (or the body was unparseable).';
COMMENT ON COLUMN callbacks.callid IS 'Sinch call id (callid or callId in the body).';
COMMENT ON COLUMN callbacks.application_key IS 'applicationKey from the body, else the key that signed the request.';
COMMENT ON COLUMN callbacks.event_timestamp IS 'timestamp field of the event (Sinch clock), parsed leniently; NULL when absent or unparseable.';
COMMENT ON COLUMN callbacks.raw_body IS 'The request body byte for byte, exactly as signed.';
COMMENT ON COLUMN callbacks.body IS 'The body as JSON when it parsed, else NULL.';
COMMENT ON COLUMN callbacks.parse_warnings IS 'Fields that had the wrong type and were ignored, as [{pointer, message}]; NULL when none.';
COMMENT ON COLUMN callbacks.signature IS 'verified (signed by a configured key) or unverified (signature checking disabled by configuration).';
COMMENT ON COLUMN callbacks.dedup_key IS 'SHA-256 over the signed parts of the request; a byte-identical replay has the same key.';
COMMENT ON COLUMN callbacks.duplicate_of IS 'For a replayed request: the original callback it duplicates. The replay was answered with the original reply and not processed again.';
COMMENT ON COLUMN callbacks.http_status IS 'HTTP status svamlgate answered with; NULL while the request is still being processed.';
COMMENT ON COLUMN callbacks.reply IS 'The SVAML reply that was sent (ICE, ACE, PIE), NULL for an empty body.';
COMMENT ON COLUMN callbacks.reply_source IS 'What produced the reply: flow, upstream, default, fallback, duplicate, none (empty 200), error.';
COMMENT ON COLUMN callbacks.fallback_reason IS 'Why the fallback reply was sent instead of the decided one: invalid, deadline, upstream_error, flow_error, no_route; NULL when no fallback.';
COMMENT ON COLUMN callbacks.validation IS 'The gate report for the reply that went out (valid, violations, warnings).';
COMMENT ON COLUMN callbacks.latency_us IS 'Handling time in microseconds, from the first byte read to the reply being ready.';
COMMENT ON COLUMN callbacks.remote_addr IS 'Peer address of the request (as seen by svamlgate).';
COMMENT ON COLUMN callbacks.path IS 'Request path as received.';

CREATE UNIQUE INDEX callbacks_dedup_key_original ON callbacks (dedup_key)
    WHERE duplicate_of IS NULL AND dedup_key IS NOT NULL;
CREATE INDEX callbacks_callid_received ON callbacks (callid, received_at);
CREATE INDEX callbacks_received ON callbacks (received_at DESC);
CREATE INDEX callbacks_type_received ON callbacks (event_type, received_at DESC);

CREATE TABLE errors (
    reference    text        PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    error_code   integer     NOT NULL,
    http_status  smallint    NOT NULL,
    status       text        NOT NULL,
    message      text        NOT NULL,
    method       text,
    path         text,
    remote_addr  text,
    callback_id  uuid        REFERENCES callbacks (id),
    detail       jsonb
);
COMMENT ON TABLE errors IS
    'Every error svamlgate answered with (Sinch error envelope) or recorded while answering: one row per reference.';
COMMENT ON COLUMN errors.reference IS 'The reference id given in the error response body and in the logs.';
COMMENT ON COLUMN errors.occurred_at IS 'When the error happened.';
COMMENT ON COLUMN errors.error_code IS 'Sinch Voice errorCode (5 digits; the first three are the HTTP status).';
COMMENT ON COLUMN errors.http_status IS 'HTTP status of the response.';
COMMENT ON COLUMN errors.status IS 'Sinch status line, e.g. "400 InvalidRequest".';
COMMENT ON COLUMN errors.message IS 'The message sent to the client (never internals or secrets).';
COMMENT ON COLUMN errors.method IS 'HTTP method of the request that failed.';
COMMENT ON COLUMN errors.path IS 'Path of the request that failed.';
COMMENT ON COLUMN errors.remote_addr IS 'Peer address of the request that failed.';
COMMENT ON COLUMN errors.callback_id IS 'The callback row this error belongs to, when the request was a recorded callback.';
COMMENT ON COLUMN errors.detail IS 'Internal detail for operators (never returned to clients), e.g. the gate report of a rejected reply.';
CREATE INDEX errors_occurred ON errors (occurred_at DESC);
CREATE INDEX errors_code_occurred ON errors (error_code, occurred_at DESC);
CREATE INDEX errors_callback ON errors (callback_id);

CREATE TABLE refusals (
    reference        text        PRIMARY KEY REFERENCES errors (reference),
    received_at      timestamptz NOT NULL,
    reason           text        NOT NULL,
    error_code       integer     NOT NULL,
    application_key  text,
    remote_addr      text,
    method           text        NOT NULL,
    path             text        NOT NULL,
    headers          jsonb       NOT NULL,
    body_sha256      text        NOT NULL,
    body_bytes       integer     NOT NULL
);
COMMENT ON TABLE refusals IS
    'Callback requests refused by signature verification (bad, missing, stale, unknown key): attacks and misconfigurations. The body itself is not kept, only its digest.';
COMMENT ON COLUMN refusals.reference IS 'Reference of the refusal (also a row in errors).';
COMMENT ON COLUMN refusals.received_at IS 'When the request arrived.';
COMMENT ON COLUMN refusals.reason IS 'Machine-readable reason: no_keys_configured, authorization_missing, authorization_malformed, unsupported_scheme, basic_not_allowed, unknown_key, timestamp_missing, timestamp_invalid, signature_not_base64, signature_mismatch, basic_secret_mismatch, timestamp_too_old, timestamp_in_future.';
COMMENT ON COLUMN refusals.error_code IS 'Sinch errorCode answered (40100, 40101, 40102, 40105, 40107, 40108).';
COMMENT ON COLUMN refusals.application_key IS 'Application key named in the authorization header, if any.';
COMMENT ON COLUMN refusals.remote_addr IS 'Peer address of the request.';
COMMENT ON COLUMN refusals.method IS 'HTTP method.';
COMMENT ON COLUMN refusals.path IS 'Request path as received.';
COMMENT ON COLUMN refusals.headers IS 'Request headers, with the signature part of authorization removed.';
COMMENT ON COLUMN refusals.body_sha256 IS 'Hex SHA-256 of the body.';
COMMENT ON COLUMN refusals.body_bytes IS 'Body length in bytes.';
CREATE INDEX refusals_received ON refusals (received_at DESC);
CREATE INDEX refusals_reason ON refusals (reason, received_at DESC);

CREATE TABLE rejected_replies (
    id            uuid        PRIMARY KEY,
    callback_id   uuid        NOT NULL REFERENCES callbacks (id),
    reference     text        NOT NULL REFERENCES errors (reference),
    created_at    timestamptz NOT NULL DEFAULT now(),
    event_type    text        NOT NULL,
    source        text        NOT NULL,
    reply         jsonb,
    raw_reply     text,
    report        jsonb       NOT NULL
);
COMMENT ON TABLE rejected_replies IS
    'Replies the gate stopped: what the flow or upstream app wanted to send, and the full validation report. The fallback that went out instead is in callbacks.reply.';
COMMENT ON COLUMN rejected_replies.id IS 'Row id.';
COMMENT ON COLUMN rejected_replies.callback_id IS 'The callback this reply was for.';
COMMENT ON COLUMN rejected_replies.reference IS 'Error reference (errors row with errorCode 42202).';
COMMENT ON COLUMN rejected_replies.created_at IS 'When the reply was rejected.';
COMMENT ON COLUMN rejected_replies.event_type IS 'ice, ace or pie.';
COMMENT ON COLUMN rejected_replies.source IS 'What produced the rejected reply: flow, upstream, default.';
COMMENT ON COLUMN rejected_replies.reply IS 'The rejected reply when it was JSON.';
COMMENT ON COLUMN rejected_replies.raw_reply IS 'The rejected reply as text when it was not JSON (truncated).';
COMMENT ON COLUMN rejected_replies.report IS 'Full validation report: every violation with pointer, code, expected, found, message.';
CREATE INDEX rejected_replies_callback ON rejected_replies (callback_id);
CREATE INDEX rejected_replies_created ON rejected_replies (created_at DESC);

-- Views written to be queried by people.

CREATE VIEW call_timeline AS
SELECT c.callid,
       c.received_at,
       c.event_type,
       c.reference,
       c.http_status,
       c.reply_source,
       c.fallback_reason,
       c.duplicate_of IS NOT NULL AS is_duplicate,
       c.latency_us,
       c.reply,
       c.body
FROM callbacks c
WHERE c.callid IS NOT NULL;
COMMENT ON VIEW call_timeline IS
    'Every event and reply of every call; filter on callid and order by received_at for one call''s timeline.';

CREATE VIEW errors_today AS
SELECT e.reference, e.occurred_at, e.error_code, e.status, e.message, e.method, e.path, e.callback_id
FROM errors e
WHERE e.occurred_at >= date_trunc('day', now());
COMMENT ON VIEW errors_today IS 'Errors since midnight (database time zone), newest last.';

CREATE VIEW events_per_hour AS
SELECT date_trunc('hour', received_at) AS hour, event_type, count(*) AS events,
       count(*) FILTER (WHERE fallback_reason IS NOT NULL) AS fallbacks,
       count(*) FILTER (WHERE duplicate_of IS NOT NULL) AS duplicates,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_us) AS p50_latency_us,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_us) AS p99_latency_us
FROM callbacks
GROUP BY 1, 2;
COMMENT ON VIEW events_per_hour IS 'Callbacks per event type per hour, with fallback and duplicate counts and latency percentiles.';
