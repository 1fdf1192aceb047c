-- svamlgate: observe mode per route, and Sinch's own verdicts on the replies it got.
-- Forward-only.

ALTER TABLE routes ADD COLUMN gate_mode text CHECK (gate_mode IN ('enforce', 'observe'));
COMMENT ON COLUMN routes.gate_mode IS 'enforce: an invalid reply is replaced by the fallback; observe: it goes out as it is, and the report, the rule counters and callbacks.gate_verdict = observed are kept. NULL: SVAMLGATE_GATE_MODE applies.';

ALTER TABLE callbacks ADD COLUMN gate_verdict text;
COMMENT ON COLUMN callbacks.gate_verdict IS 'What the gate said of the decided reply: passed, rejected (the fallback went out instead), observed (invalid, sent anyway in observe mode); NULL when no SVAML was decided (DICE, Notify, errors, duplicates, a source that failed).';

ALTER TABLE callbacks ADD COLUMN rejected_by_sinch jsonb;
COMMENT ON COLUMN callbacks.rejected_by_sinch IS 'Set on a reply Sinch reported it could not use (Notify callingerror 40001, or DICE reason CALLBACKERROR): {reportId, reportReference, kind, errorCode, message, reason, result}. A reply the gate passed that Sinch rejected is a gate miss (view gate_misses).';
CREATE INDEX callbacks_rejected_by_sinch ON callbacks (received_at DESC) WHERE rejected_by_sinch IS NOT NULL;

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
