-- svamlgate: records arrive through the local journal (see README, "Recording").
-- Forward-only.

-- Replays are detected in memory by each instance (rebuilt from its journal), never by a lookup
-- here. Two instances sharing this database may each record one copy of the same request as an
-- original (within the shipping lag), and neither row may be refused: the dedup key is no longer
-- unique, and no longer indexed (nothing looks it up; every index costs each shipped row).
DROP INDEX callbacks_dedup_key_original;

COMMENT ON COLUMN callbacks.fallback_reason IS 'Why the fallback reply was sent instead of the decided one: invalid (the gate refused it), deadline (no answer in time), upstream_error, flow_error; NULL when no fallback.';
COMMENT ON COLUMN callbacks.http_status IS 'HTTP status svamlgate answered with. Rows arrive from the journal once the reply is out, so it is always set.';
COMMENT ON COLUMN call_state.updated_at IS 'When the event that caused this state arrived; a change shipped later by another instance never overwrites a newer state.';
