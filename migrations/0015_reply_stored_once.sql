-- svamlgate: each distinct reply is stored once (docs/database.md, docs/benchmarks.md). Forward-only.
--
-- A flow sends the same SVAML document to every call that reaches the same node, and each
-- callback row held its own jsonb copy: the largest part of what a row cost PostgreSQL (8-14 µs
-- of CPU and about 630 bytes of WAL per row in benches/rows.sh). The documents now live in
-- replies, one row per distinct text, keyed by a digest of that text; callbacks.reply_id points
-- at it, and reply(callbacks), a function of the row, reads it back. As with body (0013), the
-- attribute notation keeps qualified reads working and an unqualified one fails loudly:
--   SELECT c.reply FROM callbacks c               -- reply(c): works
--   SELECT callbacks.reply FROM callbacks         -- works
--   SELECT reply FROM callbacks                   -- ERROR: column "reply" does not exist
-- The shipper (src/recording/ship.rs, src/db/replies.rs) inserts the distinct replies of each
-- batch (ON CONFLICT DO NOTHING) in the transaction that COPYs the rows pointing at them.
-- Redaction points a masked row at a masked copy; retention then deletes the replies no callback
-- points at any more, under a lock that makes the shipper's transactions wait (db::replies::sweep).
-- There is no foreign key: checking one would cost every shipped row a lookup and a trigger call.
-- The index on reply_id lets the sweep look up each reply instead of reading all of callbacks
-- under its lock (rows with the same reply share one posting list: a few bytes each).

CREATE TABLE replies (
    id    uuid  PRIMARY KEY,
    reply jsonb NOT NULL
);
COMMENT ON TABLE replies IS
    'Each distinct SVAML reply once: callbacks.reply_id points here, read it as c.reply. Rows no callback points at are deleted by retention and redaction.';
COMMENT ON COLUMN replies.id IS
    'The first 16 bytes of the SHA-256 of the reply''s text as svamlgate sent it (rows stored before 0015: of the jsonb''s text).';
COMMENT ON COLUMN replies.reply IS 'The reply (SVAML).';

ALTER TABLE callbacks ADD COLUMN reply_id uuid;
COMMENT ON COLUMN callbacks.reply_id IS
    'The reply that was sent (ICE, ACE, PIE): replies.id; NULL for an empty body. Read the reply as c.reply (reply(callbacks)).';

-- Rows stored before.
CREATE FUNCTION pg_temp.reply_digest(r jsonb) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(substring(sha256(convert_to(r::text, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
$$;
INSERT INTO replies (id, reply)
SELECT DISTINCT ON (d) d, reply
FROM (SELECT pg_temp.reply_digest(reply) AS d, reply FROM callbacks WHERE reply IS NOT NULL) s;
UPDATE callbacks SET reply_id = pg_temp.reply_digest(reply) WHERE reply IS NOT NULL;
CREATE INDEX callbacks_reply ON callbacks (reply_id);

DROP VIEW call_timeline;
DROP VIEW gate_misses;
ALTER TABLE callbacks DROP COLUMN reply;

CREATE FUNCTION reply(c callbacks) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.reply FROM replies r WHERE r.id = c.reply_id
$$;
COMMENT ON FUNCTION reply(callbacks) IS
    'The SVAML reply that was sent (NULL for an empty body); read it as c.reply or callbacks.reply.';

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
