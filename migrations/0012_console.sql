-- svamlgate: what the operator console reads fast with millions of callbacks.
-- Forward-only.
--
-- 1. Per-minute counts of callbacks (by event, reply source, fallback reason, gate verdict) and of
--    the gate's findings (by rule, severity, Sinch source, verdict), kept by a statement-level
--    trigger on callbacks: the Overview and Gate pages read a day as at most 1,440 minutes of
--    counts instead of scanning the day's callbacks. The trigger never stops a batch of records
--    from landing: if counting fails, the failure is a warning in PostgreSQL's log and the batch
--    goes in (records first, counts second).
-- 2. Indexes for the console's call search: by called number and by caller number of the ICE,
--    and for the outcomes searched for (fallbacks, observed replies).

CREATE TABLE console_minutes (
    minute           timestamptz NOT NULL,
    event_type       text        NOT NULL,
    reply_source     text        NOT NULL,
    fallback_reason  text        NOT NULL,
    gate_verdict     text        NOT NULL,
    callbacks        bigint      NOT NULL,
    PRIMARY KEY (minute, event_type, reply_source, fallback_reason, gate_verdict)
);
COMMENT ON TABLE console_minutes IS
    'Callbacks per minute of arrival, by event type, reply source, fallback reason and gate verdict (empty text for NULL); kept by the trigger callbacks_console_counts. Replays are counted (reply_source duplicate).';
COMMENT ON COLUMN console_minutes.minute IS 'The minute of received_at (date_trunc(''minute'')).';
COMMENT ON COLUMN console_minutes.event_type IS 'callbacks.event_type.';
COMMENT ON COLUMN console_minutes.reply_source IS 'callbacks.reply_source, or empty.';
COMMENT ON COLUMN console_minutes.fallback_reason IS 'callbacks.fallback_reason, or empty.';
COMMENT ON COLUMN console_minutes.gate_verdict IS 'callbacks.gate_verdict, or empty.';
COMMENT ON COLUMN console_minutes.callbacks IS 'How many callbacks.';

CREATE TABLE console_rule_minutes (
    minute        timestamptz NOT NULL,
    code          text        NOT NULL,
    severity      text        NOT NULL,
    source        text        NOT NULL,
    gate_verdict  text        NOT NULL,
    findings      bigint      NOT NULL,
    PRIMARY KEY (minute, code, severity, source, gate_verdict)
);
COMMENT ON TABLE console_rule_minutes IS
    'Findings of the gate per minute: each violation of callbacks.validation (the report of the decided reply) by rule code, severity, the rule''s Sinch source and the gate verdict of the reply; kept by the trigger callbacks_console_counts.';
COMMENT ON COLUMN console_rule_minutes.minute IS 'The minute of the callback''s received_at.';
COMMENT ON COLUMN console_rule_minutes.code IS 'Rule: schema:<keyword> or SVAMLnnn.';
COMMENT ON COLUMN console_rule_minutes.severity IS 'error or warning.';
COMMENT ON COLUMN console_rule_minutes.source IS 'Where the rule comes from (Sinch doc page or SDK file, or svamlgate).';
COMMENT ON COLUMN console_rule_minutes.gate_verdict IS 'passed, rejected or observed (empty when unknown).';
COMMENT ON COLUMN console_rule_minutes.findings IS 'How many findings.';

CREATE FUNCTION console_count_callbacks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        INSERT INTO console_minutes AS m (minute, event_type, reply_source, fallback_reason, gate_verdict, callbacks)
        SELECT date_trunc('minute', received_at), event_type, coalesce(reply_source, ''),
               coalesce(fallback_reason, ''), coalesce(gate_verdict, ''), count(*)
        FROM added
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (minute, event_type, reply_source, fallback_reason, gate_verdict)
        DO UPDATE SET callbacks = m.callbacks + EXCLUDED.callbacks;

        INSERT INTO console_rule_minutes AS r (minute, code, severity, source, gate_verdict, findings)
        SELECT date_trunc('minute', a.received_at), coalesce(v->>'code', ''), coalesce(v->>'severity', ''),
               coalesce(v->>'source', ''), coalesce(a.gate_verdict, ''), count(*)
        FROM added a, jsonb_array_elements(a.validation->'violations') v
        WHERE jsonb_typeof(a.validation->'violations') = 'array'
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (minute, code, severity, source, gate_verdict)
        DO UPDATE SET findings = r.findings + EXCLUDED.findings;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'console counts not updated: %', SQLERRM;
    END;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION console_count_callbacks() IS
    'Adds the callbacks of one INSERT statement (only rows actually inserted) to console_minutes and console_rule_minutes; a failure is a warning, never a failed insert.';

CREATE TRIGGER callbacks_console_counts
    AFTER INSERT ON callbacks
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION console_count_callbacks();

-- Callbacks recorded before this migration.
INSERT INTO console_minutes (minute, event_type, reply_source, fallback_reason, gate_verdict, callbacks)
SELECT date_trunc('minute', received_at), event_type, coalesce(reply_source, ''),
       coalesce(fallback_reason, ''), coalesce(gate_verdict, ''), count(*)
FROM callbacks
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO console_rule_minutes (minute, code, severity, source, gate_verdict, findings)
SELECT date_trunc('minute', c.received_at), coalesce(v->>'code', ''), coalesce(v->>'severity', ''),
       coalesce(v->>'source', ''), coalesce(c.gate_verdict, ''), count(*)
FROM callbacks c, jsonb_array_elements(c.validation->'violations') v
WHERE jsonb_typeof(c.validation->'violations') = 'array'
GROUP BY 1, 2, 3, 4, 5;

-- The console's call search.
CREATE INDEX callbacks_ice_called ON callbacks ((body->'to'->>'endpoint'), received_at DESC)
    WHERE event_type = 'ice';
CREATE INDEX callbacks_ice_cli ON callbacks ((body->>'cli'), received_at DESC)
    WHERE event_type = 'ice';
CREATE INDEX callbacks_fallbacks ON callbacks (received_at DESC) WHERE fallback_reason IS NOT NULL;
CREATE INDEX callbacks_observed ON callbacks (received_at DESC) WHERE gate_verdict = 'observed';
