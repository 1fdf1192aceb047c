-- svamlgate: the time indexes of callbacks in ascending order (docs/benchmarks.md, session 15).
-- Forward-only.
--
-- callbacks_received (received_at DESC), callbacks_ice_called (called, received_at DESC) and
-- callbacks_ice_cli (caller, received_at DESC) put the newest callback first. Callbacks arrive in
-- time order, so every new entry went in at the low end of the index (or of its number's range):
-- no fast path for appends at the high end, and pages split in halves that stay half empty.
-- In ascending order new entries are appended at the high end, as PostgreSQL's B-tree expects of
-- increasing keys. benches/rows.sh measured 73 bytes less WAL per shipped row (1,302 against
-- 1,375, exact) and about 1 µs less of PostgreSQL's CPU (11.0 against 12.0 µs).
--
-- Nothing reads them differently: a B-tree is read backwards as fast as forwards, so
-- `ORDER BY received_at DESC` (with `called = …` or `caller = …` for the console's search) is
-- still one index scan, read from the newest end. The names stay.
--
-- Each index is built again. The builds come first: they lock the table against writes only (the
-- shipper's batches wait in the journal, replies do not; admin reads go on). The drops and
-- renames, which lock out reads too until the migration commits, come last and take no time.
-- The builds take time in proportion to the table (6.4 s for 10 million rows in the page cache on
-- the development machine; minutes for a hundred million, or read from the disk): the
-- shipper gives migrations an hour (src/recording/shipper.rs, MIGRATION_TIMEOUT), and on a large
-- database `svamlgate migrate` before the new release starts is better (README).

CREATE INDEX callbacks_received_asc ON callbacks (received_at);
CREATE INDEX callbacks_ice_called_asc ON callbacks (called, received_at) WHERE event_type = 'ice';
CREATE INDEX callbacks_ice_cli_asc ON callbacks (caller, received_at) WHERE event_type = 'ice';

DROP INDEX callbacks_received;
DROP INDEX callbacks_ice_called;
DROP INDEX callbacks_ice_cli;
ALTER INDEX callbacks_received_asc RENAME TO callbacks_received;
ALTER INDEX callbacks_ice_called_asc RENAME TO callbacks_ice_called;
ALTER INDEX callbacks_ice_cli_asc RENAME TO callbacks_ice_cli;
