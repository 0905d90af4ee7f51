DROP TRIGGER hosts_config_version ON hosts;
DROP FUNCTION hosts_config_version();
DROP TRIGGER repositories_config_version ON repositories;
DROP FUNCTION repositories_config_version();
ALTER TABLE hosts DROP COLUMN config_acked_at;
ALTER TABLE hosts DROP COLUMN acked_config_version;
ALTER TABLE hosts DROP COLUMN config_changed_at;
ALTER TABLE hosts DROP COLUMN config_version;
