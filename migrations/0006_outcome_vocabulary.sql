-- svamlgate: the column comments of a callback's outcome list exactly the values the code writes
-- (src/outcome.rs; a test compares the two). Forward-only.

COMMENT ON COLUMN callbacks.signature IS 'Whether the signature was checked. One of: verified (signed by a configured key), unverified (signature checking disabled by configuration). Refused requests are in refusals.';
COMMENT ON COLUMN callbacks.reply_source IS 'What produced the reply that went out. One of: flow, upstream (the customer app, proxy mode), default (no route matched), fallback (see fallback_reason), duplicate (a replay, answered with the original reply), none (an empty 200), error (an error envelope).';
COMMENT ON COLUMN callbacks.fallback_reason IS 'Why the fallback went out instead of the decided reply; NULL when no fallback. One of: invalid (the gate refused it), deadline (no answer in time), upstream_error, flow_error.';
COMMENT ON COLUMN callbacks.gate_verdict IS 'What the gate said of the decided reply; NULL when no SVAML was decided (DICE, Notify, errors, duplicates, a source that failed). One of: passed, observed (invalid, sent anyway in observe mode), rejected (the fallback went out instead).';
