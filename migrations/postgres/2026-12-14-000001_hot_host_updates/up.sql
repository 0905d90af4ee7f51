-- Issue 19, postgres dialect; kept in step with the other dialect's
-- migration of the same name (which changes nothing: SQLite has neither).
--
-- Every greeting and every goodbye updates the host's row (online, last
-- seen, the hello's facts), and every schedule push and ack updates its
-- host_schedule_version row. PostgreSQL writes such an update as a new
-- row version; it can keep it on the same page without touching any
-- index (a HOT update) only if no indexed column changed and the page
-- has room. Counted during `connect --agents 15000`: 805 of 19,692 host
-- updates were HOT, so each of the others added an entry to all seven of
-- the hosts' indexes.
--
-- `online` flips on every connect and disconnect, so its index made every
-- such update a full one; a two-valued column's index is no faster than
-- reading the table for the counts and filters that use it. The pages
-- keep room for the next versions of their rows.
DROP INDEX hosts_online;
ALTER TABLE hosts SET (fillfactor = 70);
ALTER TABLE host_schedule_version SET (fillfactor = 50);
