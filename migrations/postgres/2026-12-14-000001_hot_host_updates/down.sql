ALTER TABLE host_schedule_version RESET (fillfactor);
ALTER TABLE hosts RESET (fillfactor);
CREATE INDEX hosts_online ON hosts (online);
