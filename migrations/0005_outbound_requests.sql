-- svamlgate: requests svamlgate sends to Sinch's Calling API (callouts, call and conference control),
-- every attempt of each, and Sinch's answers and errors.
-- Forward-only. Never edit a migration that has been applied: add a new one.

CREATE TABLE outbound_requests (
    id               uuid        PRIMARY KEY,
    reference        text        NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    operation        text        NOT NULL,
    method           text        NOT NULL,
    path             text        NOT NULL,
    body             jsonb,
    callid           text,
    conference_id    text,
    call_leg         text,
    callout_method   text,
    destination      text,
    dice_expected    boolean,
    local_check      text        NOT NULL,
    local_report     jsonb,
    outcome          text        NOT NULL,
    http_status      smallint,
    attempts         smallint    NOT NULL DEFAULT 0,
    latency_us       bigint,
    response_body    jsonb,
    error_code       integer,
    error_status     text,
    error_message    text,
    error_reference  text,
    failure          text,
    idempotency_key  text
);
COMMENT ON TABLE outbound_requests IS
    'One row per request svamlgate was asked to send to Sinch''s Calling API (POST /admin/callouts, PATCH /admin/calls/..., the conference endpoints, svamlgate callout): what was asked, what the local checks said, and how it ended. Each HTTP exchange with Sinch is a row of outbound_attempts.';
COMMENT ON COLUMN outbound_requests.id IS 'Row id (UUIDv7, so ordering by id is ordering by creation).';
COMMENT ON COLUMN outbound_requests.reference IS 'svamlgate''s reference of the request, returned to the admin client (also in the errors table when the request failed).';
COMMENT ON COLUMN outbound_requests.created_at IS 'When svamlgate received the request.';
COMMENT ON COLUMN outbound_requests.finished_at IS 'When the outcome was known; NULL while in flight.';
COMMENT ON COLUMN outbound_requests.operation IS 'callout, get_call, manage_call, manage_call_leg, get_conference, kick_all, manage_participant, kick_participant.';
COMMENT ON COLUMN outbound_requests.method IS 'HTTP method sent to Sinch.';
COMMENT ON COLUMN outbound_requests.path IS 'Path on the Calling API host, e.g. /calling/v1/callouts (also the signed resource).';
COMMENT ON COLUMN outbound_requests.body IS 'The JSON body as given (and sent, byte for byte re-serialised from this value); NULL for GET and DELETE.';
COMMENT ON COLUMN outbound_requests.callid IS 'Sinch call id: from the path for call control, from Sinch''s answer for a callout; NULL when unknown.';
COMMENT ON COLUMN outbound_requests.conference_id IS 'Conference id, for conference operations and conference callouts.';
COMMENT ON COLUMN outbound_requests.call_leg IS 'caller, callee or both, for manage_call_leg.';
COMMENT ON COLUMN outbound_requests.callout_method IS 'ttsCallout, conferenceCallout or customCallout, for callouts.';
COMMENT ON COLUMN outbound_requests.destination IS 'destination.endpoint of a callout (the number or user called).';
COMMENT ON COLUMN outbound_requests.dice_expected IS 'For callouts: whether Sinch will send a DICE for the call (enableDice, or a customCallout), so that svamlgate learns when it ends. Calls without it count as in progress for SINCH_UNTRACKED_CALL_SECS only.';
COMMENT ON COLUMN outbound_requests.local_check IS 'What the checks before sending said: passed, invalid_number (40005), invalid_body (40001/40002), invalid_svaml (40001, report in local_report), cap_reached (42900), not_configured (50301), cap_unchecked (passed, but the calls in progress could not be counted).';
COMMENT ON COLUMN outbound_requests.local_report IS 'Details of a failed local check: the gate report of inline SVAML or a manage-call body, the offending field, or the calls-in-progress count.';
COMMENT ON COLUMN outbound_requests.outcome IS 'pending (in flight), success (Sinch answered 2xx), sinch_error (Sinch answered with an error), no_answer (no HTTP answer: connection failures, or timeouts of requests that are safe to repeat), unknown (a callout whose answer never came: it may or may not have placed a call), refused_locally (never sent).';
COMMENT ON COLUMN outbound_requests.http_status IS 'HTTP status of Sinch''s last answer; NULL when none came.';
COMMENT ON COLUMN outbound_requests.attempts IS 'Number of HTTP exchanges attempted (0 when refused locally).';
COMMENT ON COLUMN outbound_requests.latency_us IS 'Time from the first attempt to the outcome, retries and waits included, in microseconds.';
COMMENT ON COLUMN outbound_requests.response_body IS 'Sinch''s final answer when it was JSON (e.g. {"callId": ...}, call information, conference participants).';
COMMENT ON COLUMN outbound_requests.error_code IS 'errorCode of Sinch''s final error answer, as sent (number or numeric string); NULL when absent.';
COMMENT ON COLUMN outbound_requests.error_status IS 'status of Sinch''s final error answer, e.g. "402 PaymentRequired".';
COMMENT ON COLUMN outbound_requests.error_message IS 'message of Sinch''s final error answer.';
COMMENT ON COLUMN outbound_requests.error_reference IS 'reference of Sinch''s final error answer: quote it to Sinch support.';
COMMENT ON COLUMN outbound_requests.failure IS 'Why no answer came on the last attempt: connect, timeout, io, too_large; NULL when Sinch answered.';
COMMENT ON COLUMN outbound_requests.idempotency_key IS 'Idempotency-Key header of POST /admin/callouts: while a callout with the key is pending, placed or of unknown outcome, the same key places no second call (the first answer is replayed, or 409).';
CREATE UNIQUE INDEX outbound_requests_idempotency ON outbound_requests (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND outcome IN ('pending', 'success', 'unknown');
CREATE INDEX outbound_requests_callid ON outbound_requests (callid, created_at) WHERE callid IS NOT NULL;
CREATE INDEX outbound_requests_created ON outbound_requests (created_at DESC);
CREATE INDEX outbound_requests_open_callouts ON outbound_requests (created_at)
    WHERE operation = 'callout' AND outcome IN ('pending', 'success', 'unknown');

CREATE TABLE outbound_attempts (
    id               uuid        PRIMARY KEY,
    request_id       uuid        NOT NULL REFERENCES outbound_requests (id),
    attempt          smallint    NOT NULL,
    sent_at          timestamptz NOT NULL,
    latency_us       bigint      NOT NULL,
    auth_scheme      text        NOT NULL,
    x_timestamp      text,
    http_status      smallint,
    response_body    text,
    retry_after_ms   bigint,
    failure          text,
    failure_detail   text,
    error_code       integer,
    error_status     text,
    error_message    text,
    error_reference  text,
    classified_code  integer,
    code_mismatch    boolean,
    decision         text        NOT NULL,
    UNIQUE (request_id, attempt)
);
COMMENT ON TABLE outbound_attempts IS
    'Every HTTP exchange with Sinch''s Calling API: one row per attempt of an outbound_requests row, with Sinch''s answer (or why none came) and the error body parsed leniently.';
COMMENT ON COLUMN outbound_attempts.id IS 'Row id (UUIDv7).';
COMMENT ON COLUMN outbound_attempts.request_id IS 'The request (method, path, body, callid are there).';
COMMENT ON COLUMN outbound_attempts.attempt IS 'Attempt number, 1, 2, 3, …';
COMMENT ON COLUMN outbound_attempts.sent_at IS 'When the attempt started.';
COMMENT ON COLUMN outbound_attempts.latency_us IS 'Time until the answer (or the failure), in microseconds.';
COMMENT ON COLUMN outbound_attempts.auth_scheme IS 'signed (application key + HMAC signature with x-timestamp) or basic (SINCH_API_BASIC_AUTH).';
COMMENT ON COLUMN outbound_attempts.x_timestamp IS 'The x-timestamp sent and signed (signed scheme only).';
COMMENT ON COLUMN outbound_attempts.http_status IS 'HTTP status Sinch answered; NULL when no answer came.';
COMMENT ON COLUMN outbound_attempts.response_body IS 'Sinch''s answer body as text (lossy UTF-8, truncated to 64 KiB).';
COMMENT ON COLUMN outbound_attempts.retry_after_ms IS 'Retry-After of the answer, in milliseconds, when Sinch sent one.';
COMMENT ON COLUMN outbound_attempts.failure IS 'connect (no connection: the request never left), timeout (no answer in time), io (the exchange broke), too_large (answer over 64 KiB); NULL when Sinch answered.';
COMMENT ON COLUMN outbound_attempts.failure_detail IS 'The client library''s description of the failure.';
COMMENT ON COLUMN outbound_attempts.error_code IS 'errorCode of an error answer, whether Sinch sent it as a number or a string; NULL when absent or not numeric.';
COMMENT ON COLUMN outbound_attempts.error_status IS 'status of an error answer, e.g. "429 CapacityExceeded", as sent.';
COMMENT ON COLUMN outbound_attempts.error_message IS 'message of an error answer (or the body text when it was not JSON).';
COMMENT ON COLUMN outbound_attempts.error_reference IS 'reference of an error answer, for Sinch support; searchable through GET /admin/sinch-errors?reference=.';
COMMENT ON COLUMN outbound_attempts.classified_code IS 'The catalog code svamlgate reads the answer as: errorCode when it agrees with the HTTP status, else the code the status name or the HTTP status stands for.';
COMMENT ON COLUMN outbound_attempts.code_mismatch IS 'true when errorCode, status and the HTTP status disagree (as in some of Sinch''s own examples).';
COMMENT ON COLUMN outbound_attempts.decision IS 'What svamlgate did next: done (success or final error), retry (another attempt followed), give_up (retryable but out of attempts or time, or not safe to repeat).';
CREATE INDEX outbound_attempts_errors ON outbound_attempts (sent_at DESC) WHERE http_status >= 400;
CREATE INDEX outbound_attempts_error_reference ON outbound_attempts (error_reference) WHERE error_reference IS NOT NULL;

-- Views written to be queried by people.

CREATE VIEW outbound_log AS
SELECT r.reference, a.sent_at, r.operation, r.method, r.path, r.callid, a.attempt, a.http_status,
       a.latency_us, a.failure, a.error_code, a.error_status, a.error_message, a.error_reference,
       a.decision, r.outcome
FROM outbound_attempts a JOIN outbound_requests r ON r.id = a.request_id;
COMMENT ON VIEW outbound_log IS
    'Every exchange with Sinch''s Calling API, one line per attempt; order by sent_at.';

CREATE VIEW sinch_errors AS
SELECT a.sent_at, r.reference, r.operation, r.method, r.path, r.callid, a.attempt, a.http_status,
       a.error_code, a.classified_code, a.error_status, a.error_message, a.error_reference, a.code_mismatch
FROM outbound_attempts a JOIN outbound_requests r ON r.id = a.request_id
WHERE a.http_status >= 400;
COMMENT ON VIEW sinch_errors IS
    'Every error answer Sinch gave, with its errorCode, status, message and reference (the one Sinch support asks for).';

CREATE VIEW open_calls AS
SELECT DISTINCT ON (o.callid) o.callid, o.opened_at, o.source, o.dice_expected
FROM (
    SELECT c.callid, min(c.received_at) AS opened_at, 'callback' AS source, true AS dice_expected
    FROM callbacks c
    WHERE c.callid IS NOT NULL AND c.event_type IN ('ice', 'ace') AND c.duplicate_of IS NULL
    GROUP BY c.callid
    UNION ALL
    SELECT coalesce(r.callid, 'pending:' || r.reference), r.created_at, 'callout',
           r.outcome = 'success' AND coalesce(r.dice_expected, true)
    FROM outbound_requests r
    WHERE r.operation = 'callout' AND r.outcome IN ('pending', 'success', 'unknown')
) o
WHERE NOT EXISTS (SELECT 1 FROM callbacks d WHERE d.event_type = 'dice' AND d.callid = o.callid)
ORDER BY o.callid, (o.source = 'callout') DESC, o.opened_at;
COMMENT ON VIEW open_calls IS
    'Calls svamlgate believes are in progress: an ICE or ACE arrived, or a callout was placed (or is in flight, or timed out and may have been placed), and no DICE arrived yet. The SINCH_MAX_CALLS_IN_PROGRESS cap counts these rows, ignoring rows older than SINCH_CALL_MAX_AGE_SECS, and older than SINCH_UNTRACKED_CALL_SECS when no DICE is expected (callouts without enableDice, in flight, or whose answer never came).';
