-- svamlgate: the calls in progress are defined once. open_calls_within(max_age, untracked_max_age)
-- returns them; the view open_calls (migration 0005, same name and columns) is that function
-- without windows, and the callout cap and retention (src/db/outbound.rs) call the function.
-- Forward-only. Never edit a migration that has been applied: add a new one.
--
-- An SQL function, STABLE, not STRICT, without SET clauses: PostgreSQL inlines it into the query
-- that calls it, so the windows reach the indexes (callbacks_received on received_at,
-- outbound_requests_open_callouts; callbacks_callid_received for the DICE probe) as if the query
-- had been written out there.
-- A NULL window means "all history" (coalesce to -infinity keeps the comparison indexable).

CREATE FUNCTION open_calls_within(max_age interval, untracked_max_age interval)
RETURNS TABLE (callid text, opened_at timestamptz, source text, dice_expected boolean)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
WITH opened AS (
    SELECT c.callid, min(c.received_at) AS opened_at, 'callback' AS source, true AS dice_expected
    FROM callbacks c
    WHERE c.callid IS NOT NULL AND c.event_type IN ('ice', 'ace') AND c.duplicate_of IS NULL
      AND c.received_at > coalesce(now() - max_age, '-infinity')
    GROUP BY c.callid
    UNION ALL
    SELECT coalesce(r.callid, 'pending:' || r.reference), r.created_at, 'callout',
           r.outcome = 'success' AND coalesce(r.dice_expected, true)
    FROM outbound_requests r
    WHERE r.operation = 'callout' AND r.outcome IN ('pending', 'success', 'unknown')
      AND r.created_at > coalesce(now() - max_age, '-infinity')
), open AS (
    SELECT DISTINCT ON (o.callid) o.callid, o.opened_at, o.source, o.dice_expected
    FROM opened o
    WHERE NOT EXISTS (SELECT 1 FROM callbacks d WHERE d.event_type = 'dice' AND d.callid = o.callid)
    ORDER BY o.callid, (o.source = 'callout') DESC, o.opened_at
)
SELECT p.callid, p.opened_at, p.source, p.dice_expected
FROM open p
WHERE p.dice_expected
   OR p.opened_at > coalesce(now() - untracked_max_age, '-infinity')
$$;
COMMENT ON FUNCTION open_calls_within(interval, interval) IS
    'Calls svamlgate believes are in progress (the one definition; the view open_calls is this function with both windows NULL): an ICE or ACE arrived, or a callout was placed (or is in flight, or timed out and may have been placed), and no DICE arrived yet, opened within max_age, and within untracked_max_age when no DICE is expected (callouts without enableDice, in flight, or whose answer never came). A NULL window means all history. The SINCH_MAX_CALLS_IN_PROGRESS cap counts open_calls_within(SINCH_CALL_MAX_AGE_SECS, SINCH_UNTRACKED_CALL_SECS); retention keeps the records of open_calls_within(SINCH_CALL_MAX_AGE_SECS, SINCH_CALL_MAX_AGE_SECS). Callouts Sinch gave no call id have callid ''pending:'' || their reference.';

CREATE OR REPLACE VIEW open_calls AS
SELECT o.callid, o.opened_at, o.source, o.dice_expected
FROM open_calls_within(NULL, NULL) o;
COMMENT ON VIEW open_calls IS
    'Calls svamlgate believes are in progress, over all history: open_calls_within(NULL, NULL). An ICE or ACE arrived, or a callout was placed (or is in flight, or timed out and may have been placed), and no DICE arrived yet. The SINCH_MAX_CALLS_IN_PROGRESS cap counts open_calls_within(SINCH_CALL_MAX_AGE_SECS, SINCH_UNTRACKED_CALL_SECS): the same rows, ignoring those older than SINCH_CALL_MAX_AGE_SECS, and older than SINCH_UNTRACKED_CALL_SECS when no DICE is expected.';
