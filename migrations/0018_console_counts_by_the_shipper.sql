-- svamlgate: the console's per-minute counts added by the shipper, not by a trigger
-- (docs/console.md, "Speed"; docs/benchmarks.md, session 18). Forward-only.
--
-- The trigger callbacks_console_counts (0012) captured every inserted row of every statement
-- into a transition table and grouped it there: about a tenth of PostgreSQL's CPU per shipped
-- row (benches/rows.sh), on the one connection whose speed bounds the catch-up after a burst.
-- The shipper now groups the rows of each batch itself (it encodes the batch ahead of time,
-- while PostgreSQL writes the one before) and adds the groups with one call of
-- console_add_counts in the batch's transaction: the counts commit with the rows they count, or
-- not at all, as before. A batch shipped again adds only the rows it inserted (the staging path's
-- INSERT returns them).
--
-- A row inserted into callbacks by hand (psql) is not counted, nor are the rows an instance of an
-- earlier release ships into a database migrated past 0018 (two releases side by side during an
-- upgrade): `SELECT console_count_again(since)` counts every minute from `since` again from the
-- rows (docs/console.md).

DROP TRIGGER callbacks_console_counts ON callbacks;
DROP FUNCTION console_count_callbacks();

CREATE FUNCTION console_add_counts(
    minutes timestamptz[], event_types text[], reply_sources text[], fallback_reasons text[],
    gate_verdicts text[], counts bigint[],
    rule_minutes timestamptz[], codes text[], severities text[], sources text[],
    rule_verdicts text[], findings bigint[]
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO console_minutes AS m (minute, event_type, reply_source, fallback_reason, gate_verdict, callbacks)
    SELECT * FROM unnest(minutes, event_types, reply_sources, fallback_reasons, gate_verdicts, counts)
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (minute, event_type, reply_source, fallback_reason, gate_verdict)
    DO UPDATE SET callbacks = m.callbacks + EXCLUDED.callbacks;

    INSERT INTO console_rule_minutes AS r (minute, code, severity, source, gate_verdict, findings)
    SELECT * FROM unnest(rule_minutes, codes, severities, sources, rule_verdicts, findings)
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (minute, code, severity, source, gate_verdict)
    DO UPDATE SET findings = r.findings + EXCLUDED.findings;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'console counts not updated: %', SQLERRM;
END
$$;
COMMENT ON FUNCTION console_add_counts(timestamptz[], text[], text[], text[], text[], bigint[], timestamptz[], text[], text[], text[], text[], bigint[]) IS
    'Adds counts of callbacks (per minute, event type, reply source, fallback reason, gate verdict; empty text for NULL) to console_minutes and of the gate''s findings (per minute, rule code, severity, source, gate verdict) to console_rule_minutes; each key once per call. The shipper calls it in the transaction that inserts the rows counted. A failure is a warning, never a failed batch.';
COMMENT ON TABLE console_minutes IS
    'Callbacks per minute of arrival, by event type, reply source, fallback reason and gate verdict (empty text for NULL); added by the shipper in the transaction that inserts them (console_add_counts). Replays are counted (reply_source duplicate).';
COMMENT ON TABLE console_rule_minutes IS
    'Findings of the gate per minute: each violation of callbacks.validation (the report of the decided reply) by rule code, severity, the rule''s Sinch source and the gate verdict of the reply; added by the shipper (console_add_counts).';

CREATE FUNCTION console_count_again(since timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first timestamptz := date_trunc('minute', since);
    n bigint;
BEGIN
    -- A batch that has added its counts is waited for (its rows are then seen here); one that
    -- has not waits for this transaction, then adds its own: every row is counted once.
    LOCK TABLE console_minutes, console_rule_minutes IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM console_minutes WHERE minute >= first;
    DELETE FROM console_rule_minutes WHERE minute >= first;
    INSERT INTO console_minutes (minute, event_type, reply_source, fallback_reason, gate_verdict, callbacks)
    SELECT date_trunc('minute', received_at), event_type, coalesce(reply_source, ''),
           coalesce(fallback_reason, ''), coalesce(gate_verdict, ''), count(*)
    FROM callbacks
    WHERE received_at >= first
    GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO console_rule_minutes (minute, code, severity, source, gate_verdict, findings)
    SELECT date_trunc('minute', c.received_at), coalesce(v->>'code', ''), coalesce(v->>'severity', ''),
           coalesce(v->>'source', ''), coalesce(c.gate_verdict, ''), count(*)
    FROM callbacks c, jsonb_array_elements(c.validation->'violations') v
    WHERE c.received_at >= first AND jsonb_typeof(c.validation->'violations') = 'array'
    GROUP BY 1, 2, 3, 4, 5;
    SELECT coalesce(sum(callbacks), 0) INTO n FROM console_minutes WHERE minute >= first;
    RETURN n;
END
$$;
COMMENT ON FUNCTION console_count_again(timestamptz) IS
    'Counts again, from the rows in callbacks, every minute of console_minutes and console_rule_minutes from the minute of since (''-infinity'': all); returns the callbacks counted. For rows the shipper did not count (inserted by hand, or shipped by a release before 0018). Locks both tables against the shipper''s additions until the transaction ends.';
