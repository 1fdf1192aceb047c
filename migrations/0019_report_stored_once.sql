-- svamlgate: each distinct gate report is stored once, as replies are since 0015; neither needs an
-- index on callbacks any more (docs/database.md, docs/benchmarks.md, session 20). Forward-only.
--
-- Nearly every callback's report is the same clean pass ({"valid":true,…,"violations":[]}), and
-- each row held its own jsonb copy: about 130 bytes of WAL and 2 µs of PostgreSQL's CPU per row
-- on the one connection whose speed bounds the catch-up after a burst. The reports now live in
-- reports, one row per distinct text, keyed by a digest of that text; callbacks.validation_id
-- points at it, and validation(callbacks), a function of the row, reads it back. As with reply
-- (0015), the attribute notation keeps qualified reads working and an unqualified one fails
-- loudly:
--   SELECT c.validation FROM callbacks c           -- validation(c): works
--   SELECT validation FROM callbacks               -- ERROR: column "validation" does not exist
--
-- The sweep that deletes the replies and reports no callback points at (after retention or
-- redaction) no longer needs an index on callbacks (callbacks_reply cost every row about 1 µs
-- and 74 bytes of WAL): it finds the unreferenced documents with one read of callbacks, without a
-- lock, and deletes each only if its row version is still the one it found. The shipper's batch
-- writes a new version of every document it points at (INSERT … ON CONFLICT DO UPDATE), so a
-- document a batch started to use after that read is kept (src/db/documents.rs).
--
-- A call's state (call_state, one row for every new call) holds in its context only the values the
-- call has, and no call id when it is the row's own (src/flows/state.rs): the nulls and the
-- repeated id were a third of the row. Rows written before keep their full form; both read alike.

CREATE TABLE reports (
    id     uuid  PRIMARY KEY,
    report jsonb NOT NULL
);
COMMENT ON TABLE reports IS
    'Each distinct gate report once: callbacks.validation_id points here, read it as c.validation. Rows no callback points at are deleted by retention and redaction.';
COMMENT ON COLUMN reports.id IS
    'The first 16 bytes of the SHA-256 of the report''s text as svamlgate recorded it (rows stored before 0019: of the jsonb''s text).';
COMMENT ON COLUMN reports.report IS 'The SVAML validation report of the reply that was decided (valid, target, mode, bundleVersion, counts, violations).';

ALTER TABLE callbacks ADD COLUMN validation_id uuid;
COMMENT ON COLUMN callbacks.validation_id IS
    'The gate''s report on the reply that was decided: reports.id; NULL when no reply was checked. Read the report as c.validation (validation(callbacks)).';

-- Rows stored before.
CREATE FUNCTION pg_temp.report_digest(r jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(substring(sha256(convert_to(r::text, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
$$;
INSERT INTO reports (id, report)
SELECT DISTINCT ON (d) d, validation
FROM (SELECT pg_temp.report_digest(validation) AS d, validation FROM callbacks WHERE validation IS NOT NULL) s;
UPDATE callbacks SET validation_id = pg_temp.report_digest(validation) WHERE validation IS NOT NULL;

DROP VIEW gate_misses;
ALTER TABLE callbacks DROP COLUMN validation;
DROP INDEX callbacks_reply;

CREATE FUNCTION validation(c callbacks) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.report FROM reports r WHERE r.id = c.validation_id
$$;
COMMENT ON FUNCTION validation(callbacks) IS
    'The gate''s report on the reply that was decided (NULL when none was checked); read it as c.validation or callbacks.validation.';

CREATE VIEW gate_misses AS
SELECT c.id,
       c.reference,
       c.received_at,
       c.callid,
       c.event_type,
       c.reply_source,
       c.gate_verdict,
       c.reply,
       c.validation,
       c.rejected_by_sinch
FROM callbacks c
WHERE c.rejected_by_sinch IS NOT NULL
  AND c.gate_verdict IS DISTINCT FROM 'observed'
  AND (c.validation->>'valid')::boolean IS TRUE
ORDER BY c.received_at DESC;
COMMENT ON VIEW gate_misses IS 'Replies the gate passed and Sinch rejected: each names a rule the gate lacks. Newest first.';

COMMENT ON COLUMN call_state.context IS
    'Event values kept for placeholders: caller, called, custom, input, menuId, each only when the call has it; callid only when it is not the row''s own (rows written before 0019 hold every field, nulls included).';
