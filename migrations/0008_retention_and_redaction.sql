-- svamlgate: retention and redaction (svamlgate prune, SVAMLGATE_RETENTION_DAYS, SVAMLGATE_REDACT_AFTER_DAYS).
-- Forward-only. Never edit a migration that has been applied: add a new one.

ALTER TABLE callbacks ADD COLUMN redacted_at timestamptz;
ALTER TABLE errors ADD COLUMN redacted_at timestamptz;
ALTER TABLE outbound_requests ADD COLUMN redacted_at timestamptz;
COMMENT ON COLUMN callbacks.redacted_at IS 'When phone numbers and SIP identities in this row (body, raw_body, reply, validation) and in its rejected replies and upstream exchange were masked (SVAMLGATE_REDACT_AFTER_DAYS, svamlgate prune --redact-before); NULL while unmasked. raw_body is then the masked body, no longer the signed bytes.';
COMMENT ON COLUMN errors.redacted_at IS 'When phone numbers in message and detail were masked; NULL while unmasked.';
COMMENT ON COLUMN outbound_requests.redacted_at IS 'When phone numbers in body, destination, response_body, local_report and the attempts'' answers were masked; NULL while unmasked.';

-- Rows still to mask, oldest first.
CREATE INDEX callbacks_unredacted ON callbacks (received_at) WHERE redacted_at IS NULL;
CREATE INDEX errors_unredacted ON errors (occurred_at) WHERE redacted_at IS NULL;
CREATE INDEX outbound_requests_unredacted ON outbound_requests (created_at) WHERE redacted_at IS NULL;

-- Deleting a row checks the rows that reference it: without these, each deleted callback, error
-- or request would scan the referencing table.
CREATE INDEX callbacks_duplicate_of ON callbacks (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX rejected_replies_reference ON rejected_replies (reference);
CREATE INDEX outbound_attempts_request ON outbound_attempts (request_id);
