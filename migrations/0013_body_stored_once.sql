-- svamlgate: the callback body is stored once (docs/database.md, docs/benchmarks.md). Forward-only.
--
-- callbacks.raw_body (the bytes as signed) and callbacks.body (the same event as jsonb) held the
-- same bytes twice, and the jsonb copy was most of what a row cost PostgreSQL beyond its bytes.
-- The column body is dropped; body(callbacks), a function of the row, parses raw_body when it is
-- read. PostgreSQL's attribute notation for functions of a composite type keeps qualified reads
-- working, and an unqualified one fails loudly instead of reading NULL:
--   SELECT c.body->>'cli' FROM callbacks c        -- body(c): works
--   SELECT callbacks.body FROM callbacks          -- works
--   SELECT body FROM callbacks                    -- ERROR: column "body" does not exist
-- The shipper still has PostgreSQL parse each body (in its staging table, src/db/ship.rs): a body
-- jsonb refuses is stored with body_json false (body NULL), never refused at read time.
-- The console's search by number reads two plain columns, called and caller, that the shipper
-- fills from the parsed ICE (indexes callbacks_ice_called and callbacks_ice_cli, now on them).
--
-- Rows already stored are rewritten once here (body_json, called and caller set from body). The
-- space of the dropped column is given back as rows are deleted by retention, or at once by
-- VACUUM FULL callbacks.

ALTER TABLE callbacks
    ADD COLUMN body_json boolean NOT NULL DEFAULT false,
    ADD COLUMN called text,
    ADD COLUMN caller text;
COMMENT ON COLUMN callbacks.body_json IS 'true when raw_body (without a byte-order mark) is JSON that jsonb takes: body(callbacks), read as c.body, is then raw_body as jsonb; false when the body did not parse (c.body is NULL).';
COMMENT ON COLUMN callbacks.called IS 'ICE only: to.endpoint of the event (the number or identity called), as sent; NULL for other events. Masked with the row.';
COMMENT ON COLUMN callbacks.caller IS 'ICE only: cli of the event (the caller''s number), as sent; NULL for other events. Masked with the row.';

UPDATE callbacks
SET body_json = true,
    called = CASE WHEN event_type = 'ice' THEN body->'to'->>'endpoint' END,
    caller = CASE WHEN event_type = 'ice' THEN body->>'cli' END
WHERE body IS NOT NULL;

DROP VIEW call_timeline;
ALTER TABLE callbacks DROP COLUMN body; -- and the indexes on it (callbacks_ice_called, callbacks_ice_cli)

CREATE FUNCTION body(c callbacks) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN c.body_json THEN
        convert_from(CASE WHEN substring(c.raw_body FROM 1 FOR 3) = '\xefbbbf'::bytea
                          THEN substring(c.raw_body FROM 4) ELSE c.raw_body END, 'UTF8')::jsonb
    END
$$;
COMMENT ON FUNCTION body(callbacks) IS
    'The callback body as jsonb, parsed from raw_body when read (NULL when body_json is false); read it as c.body or callbacks.body. Inlined by the planner.';

-- Rows stored before: a body that jsonb took from another text than raw_body (an early shipper
-- re-serialised it) is checked here once; one raw_body jsonb refuses is marked body_json false.
DO $$
DECLARE
    r record;
BEGIN
    BEGIN
        PERFORM count(c.body) FROM callbacks c WHERE c.body_json;
    EXCEPTION WHEN OTHERS THEN
        FOR r IN SELECT id FROM callbacks WHERE body_json LOOP
            BEGIN
                PERFORM c.body FROM callbacks c WHERE c.id = r.id;
            EXCEPTION WHEN OTHERS THEN
                UPDATE callbacks SET body_json = false WHERE id = r.id;
            END;
        END LOOP;
    END;
END
$$;

CREATE INDEX callbacks_ice_called ON callbacks (called, received_at DESC) WHERE event_type = 'ice';
CREATE INDEX callbacks_ice_cli ON callbacks (caller, received_at DESC) WHERE event_type = 'ice';

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
