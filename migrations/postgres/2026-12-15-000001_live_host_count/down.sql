DROP TRIGGER hosts_live_revoke ON hosts;
DROP TRIGGER hosts_live_delete ON hosts;
DROP TRIGGER hosts_live_insert ON hosts;
DROP FUNCTION hosts_live_count();
DROP TABLE host_totals;
