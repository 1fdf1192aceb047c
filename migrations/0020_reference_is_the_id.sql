-- svamlgate: a callback's reference is its id (docs/database.md, docs/benchmarks.md, session 21).
-- Forward-only.
--
-- Every callback had two UUIDv7s: its id (the primary key) and its reference (the text in logs,
-- the console and error envelopes), and the unique index on reference cost every shipped row
-- 59 bytes of index, about 100 bytes of WAL and a uniqueness probe, on the one connection whose
-- speed bounds the catch-up after a burst. svamlgate now gives a new callback the text of its id
-- as its reference, so the primary key finds it and keeps it unique. The column stays (every
-- query, view and psql habit that reads c.reference works as before).
--
-- Rows written before (and records an older svamlgate put in its journal and ships after this)
-- have a reference of their own; only those are in the partial unique index below, so they are
-- still found by reference, and stay unique. A row whose reference is its id adds no entry to it.
--   SELECT … FROM callbacks WHERE id = '0193…';                               -- new rows
--   SELECT … FROM callbacks WHERE reference = 'x' AND reference <> id::text;   -- older rows
-- (the console's lookup by reference asks both).

ALTER TABLE callbacks DROP CONSTRAINT callbacks_reference_key;
CREATE UNIQUE INDEX callbacks_reference_own ON callbacks (reference) WHERE reference <> id::text;

COMMENT ON COLUMN callbacks.reference IS
    'Reference of this callback (logs, console, error envelopes). Since migration 0020 it is the text of id: find a callback by its id. Rows written before have a reference of their own, unique and indexed where reference <> id::text.';
