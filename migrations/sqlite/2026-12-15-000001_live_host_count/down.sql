DROP TRIGGER hosts_live_revoke;
DROP TRIGGER hosts_live_delete;
DROP TRIGGER hosts_live_insert;
DROP TABLE host_totals;
