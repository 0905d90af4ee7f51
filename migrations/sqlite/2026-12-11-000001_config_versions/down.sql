DROP TRIGGER hosts_config_version;
DROP TRIGGER repositories_config_version;
ALTER TABLE hosts DROP COLUMN config_acked_at;
ALTER TABLE hosts DROP COLUMN acked_config_version;
ALTER TABLE hosts DROP COLUMN config_changed_at;
ALTER TABLE hosts DROP COLUMN config_version;
