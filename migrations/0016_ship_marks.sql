-- svamlgate: the shipper's mark for commits that do not wait for the disk (docs/recording.md,
-- "Commits that do not wait for PostgreSQL's disk"). Forward-only.
--
-- An unlogged table is emptied by crash recovery and kept by a clean shutdown. Each shipper writes
-- its own random token here in every transaction it commits without waiting for the flush, and
-- reads it back with PostgreSQL's flushed WAL position: a token gone means the server crashed
-- (a restart, or the postmaster reinitialising after a backend crashed) and may have lost commits
-- it had not flushed, so the shipper ships again from the journal's checkpoint.

CREATE UNLOGGED TABLE ship_marks (
    token uuid PRIMARY KEY
);
COMMENT ON TABLE ship_marks IS
    'One row per running shipper (a random token, written with each deferred commit); emptied by crash recovery, which tells the shipper to ship again what PostgreSQL had not flushed. Safe to empty: the shipper writes its token again.';
